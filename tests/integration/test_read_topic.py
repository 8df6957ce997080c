"""The topic readers the tests rely on wait for what they claim."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Producer

from kitchen.kafka import ensure_topics, producer_config
from tests.helpers import REAL_KAFKA, assert_topic_stays_empty


def produce_one(bootstrap: str, topic: str) -> None:
    producer = Producer(producer_config(bootstrap))
    producer.produce(topic, b"late")
    assert producer.flush(10) == 0


def new_topic(bootstrap: str) -> str:
    topic = f"empty-{uuid.uuid4().hex[:8]}"
    if REAL_KAFKA:
        ensure_topics(bootstrap, [topic], 6)
    return topic


def test_a_record_that_arrives_during_the_wait_is_caught(bootstrap: str) -> None:
    topic = new_topic(bootstrap)
    late = threading.Timer(1.0, produce_one, (bootstrap, topic))
    late.start()
    try:
        with pytest.raises(AssertionError, match=f"1 record\\(s\\) on {topic}"):
            assert_topic_stays_empty(bootstrap, topic, seconds=10)
    finally:
        late.join()


def test_an_empty_topic_is_watched_for_the_whole_wait(bootstrap: str) -> None:
    topic = new_topic(bootstrap)
    started = time.monotonic()
    assert_topic_stays_empty(bootstrap, topic, seconds=2)
    assert time.monotonic() - started >= 2
