"""Topic creation at start: a broker that will not create topics is not fatal."""

from __future__ import annotations

import logging
import time

import pytest

from kitchen import kafka
from kitchen.kafka import EmbeddedKafka, ensure_topics


def test_a_broker_that_never_answers_create_topics_is_logged_not_fatal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # librdkafka's mock cluster answers metadata but never CreateTopics, as a second
    # process sharing it sees; a managed cluster with ACLs refuses it outright.
    monkeypatch.setattr(kafka, "CREATE_TOPICS_SECONDS", 1.0, raising=False)
    cluster = EmbeddedKafka()
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            ensure_topics(cluster.bootstrap_servers, ["refused-topic"], 6)
        assert time.monotonic() - started < 10
    finally:
        cluster.close()
    assert "topic refused-topic not created" in caplog.text
