"""Topic creation at start: replicated on a cluster, existing topics left alone, and a
broker that will not create topics is not fatal."""

from __future__ import annotations

import functools
import logging
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from app import Kitchen
from kitchen import kafka
from kitchen.kafka import EmbeddedKafka, ensure_topics
from tests.helpers import REAL_KAFKA, eventually


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


def known_to_every_broker(bootstrap: str, topic: str) -> None:
    """Wait until each broker's metadata has the topic: a new topic reaches the brokers
    one after the other, and a client asks any of them."""
    brokers = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).brokers
    for b in brokers.values():
        # Asking for a topic's metadata must not create it (brokers auto-create topics).
        one = AdminClient(
            {"bootstrap.servers": f"{b.host}:{b.port}", "allow.auto.create.topics": False}
        )
        eventually(functools.partial(knows, one, topic))


def knows(admin: AdminClient, topic: str) -> bool:
    """The broker has the topic with its partitions (a topic whose partitions a broker
    does not list yet is one that ensure_topics passes over: seen once on a new cluster)."""
    found = admin.list_topics(topic, timeout=10).topics.get(topic)
    return found is not None and found.error is None and bool(found.partitions)


def topic_copies(bootstrap: str, topic: str) -> tuple[int, list[int], str]:
    """(brokers, copies of each partition, min.insync.replicas) of a topic, as the
    cluster reports them."""
    known_to_every_broker(bootstrap, topic)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions.values()
    resource = ConfigResource("topic", topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    replicas = [len(p.replicas) for p in sorted(partitions, key=lambda p: p.id)]
    return len(metadata.brokers), replicas, configs["min.insync.replicas"].value


@pytest.mark.skipif(not REAL_KAFKA, reason="needs a real broker: KITCHEN_TEST_KAFKA")
def test_kitchen_creates_its_topics_and_dead_letter_topics_replicated(kitchen: Kitchen) -> None:
    k = kitchen.settings.kafka
    for topic in [k.order_created_topic, k.notify_topic]:
        for name in [topic, f"{topic}.dlq"]:
            brokers, replicas, min_insync = topic_copies(REAL_KAFKA, name)
            # Three copies, two in sync, on a cluster of three or more; on fewer brokers
            # one copy per broker, and a broker may still be lost.
            want = {1: (1, "1"), 2: (2, "1")}.get(brokers, (3, "2"))
            assert (replicas, min_insync) == ([want[0]] * k.partitions, want[1]), name


@pytest.mark.skipif(not REAL_KAFKA, reason="needs a real broker: KITCHEN_TEST_KAFKA")
def test_an_existing_topic_is_left_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    topic = f"existing-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": REAL_KAFKA})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(
        timeout=20
    )
    known_to_every_broker(REAL_KAFKA, topic)
    with caplog.at_level(logging.WARNING):
        ensure_topics(REAL_KAFKA, [topic], 6, replication_factor=3, min_insync_replicas=2)
    brokers, replicas, min_insync = topic_copies(REAL_KAFKA, topic)
    assert (replicas, min_insync) == ([1, 1], "1")
    # One copy is all a single broker can hold; on a cluster, one copy is too few.
    warned = f"topic {topic} keeps 1 copies of some partitions, fewer than the" in caplog.text
    assert warned == (brokers > 1)
