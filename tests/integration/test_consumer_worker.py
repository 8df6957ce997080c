"""The consumer thread: outages are retried, one bad event is dead-lettered alone."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer

from kitchen import kafka
from kitchen.db import is_data_error
from kitchen.events import Received
from kitchen.kafka import ConsumerWorker, ensure_topics, producer_config
from tests.helpers import REAL_KAFKA, assert_topic_stays_empty, eventually, read_topic


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer(producer_config(bootstrap))
    for value in values:
        producer.produce(topic, value, key=b"same partition")
    assert producer.flush(10) == 0


def raw(value: bytes | None) -> bytes:
    """Events that are plain bytes: every record is usable."""
    return value or b""


def test_an_unusable_event_is_dead_lettered_alone(bootstrap: str) -> None:
    topic = f"events-{uuid.uuid4().hex[:8]}"
    if REAL_KAFKA:
        ensure_topics(bootstrap, [topic, f"{topic}.dlq"], 6)
    applied: list[bytes] = []

    def handler(batch: list[Received[bytes]]) -> list[tuple[Received[bytes], str]]:
        values = [r.event for r in batch]
        if b"bad" in values:  # like a transaction: all or nothing
            raise ValueError("cannot use 'bad'")
        applied.extend(values)
        return []

    worker = ConsumerWorker(
        "test", bootstrap, f"g-{topic}", [topic], raw, handler, unusable=lambda e: True
    )
    produce(bootstrap, topic, [b"a", b"b", b"bad", b"c"])
    worker.start()
    try:
        eventually(lambda: worker.processed == 4)
        assert sorted(applied) == [b"a", b"b", b"c"]
        dead = read_topic(bootstrap, f"{topic}.dlq", expect=1)
        assert [d.value for d in dead] == [b"bad"]
        assert dead[0].headers["kitchen-error"] == "unusable: ValueError(\"cannot use 'bad'\")"
        assert worker.failures == 0 and worker.alive
    finally:
        worker.stop()


def test_an_outage_is_retried_without_committing(bootstrap: str) -> None:
    topic = f"events-{uuid.uuid4().hex[:8]}"
    if REAL_KAFKA:
        ensure_topics(bootstrap, [topic], 6)
    applied: list[bytes] = []
    outage = {"left": 2}

    def handler(batch: list[Received[bytes]]) -> list[tuple[Received[bytes], str]]:
        if outage["left"]:
            outage["left"] -= 1
            raise ConnectionError("database down")
        applied.extend(r.event for r in batch)
        return []

    worker = ConsumerWorker("test", bootstrap, f"g-{topic}", [topic], raw, handler)
    produce(bootstrap, topic, [b"1", b"2", b"3"])
    worker.start()
    try:
        eventually(lambda: worker.processed == 3, timeout=60)
        assert sorted(applied) == [b"1", b"2", b"3"]  # nothing skipped, nothing twice
        assert worker.failures == 2 and worker.last_error == "ConnectionError: database down"
    finally:
        worker.stop()


def test_a_handler_bug_is_retried_not_dead_lettered(bootstrap: str) -> None:
    """A bug (an error that is not a data error) stops the stream loudly: nothing is
    dead-lettered or committed, the worker reports not ready, and once the bug is gone
    every event is applied once."""
    topic = f"events-{uuid.uuid4().hex[:8]}"
    if REAL_KAFKA:
        ensure_topics(bootstrap, [topic, f"{topic}.dlq"], 6)
    applied: list[bytes] = []
    bug = {"on": True}

    def handler(batch: list[Received[bytes]]) -> list[tuple[Received[bytes], str]]:
        if bug["on"]:
            raise KeyError("a handler bug")  # was once dead-lettered as "bad data"
        applied.extend(r.event for r in batch)
        return []

    worker = ConsumerWorker(
        "test", bootstrap, f"g-{topic}", [topic], raw, handler, unusable=is_data_error
    )
    produce(bootstrap, topic, [b"1", b"2"])
    worker.start()
    try:
        eventually(lambda: worker.failures >= 3, timeout=60)
        assert not worker.ready and worker.alive and worker.processed == 0
        assert worker.last_error == "KeyError: 'a handler bug'"
        bug["on"] = False
        eventually(lambda: worker.processed == 2, timeout=60)
        assert sorted(applied) == [b"1", b"2"] and worker.ready
        assert_topic_stays_empty(bootstrap, f"{topic}.dlq", seconds=2)
    finally:
        worker.stop()


def test_a_fenced_consumer_is_made_anew(bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A static member fenced off (after a session timeout while a broker was down) gets
    _FATAL with fatal() False (confluent-kafka-python issue 869), and fetches nothing more:
    the worker must replace its consumer, not idle on it for good."""
    topic = f"events-{uuid.uuid4().hex[:8]}"
    if REAL_KAFKA:
        ensure_topics(bootstrap, [topic], 6)
    fenced = KafkaError(
        KafkaError._FATAL,
        "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id",
        fatal=False,  # as the client delivers it
    )

    class FencedMessage:
        def error(self) -> KafkaError:
            return fenced

    real_take_batch = kafka.take_batch
    consumers: list[int] = []

    def take_batch(consumer: Any, size: int, wait: float = 0.5) -> list[Any]:
        batch = real_take_batch(consumer, size, wait)
        if id(consumer) not in consumers:
            consumers.append(id(consumer))
        if len(consumers) == 1 and batch:  # the first consumer is fenced at its first event
            return [FencedMessage()]
        return batch

    monkeypatch.setattr(kafka, "take_batch", take_batch)
    applied: list[bytes] = []

    def handler(batch: list[Received[bytes]]) -> list[tuple[Received[bytes], str]]:
        applied.extend(r.event for r in batch)
        return []

    worker = ConsumerWorker("test", bootstrap, f"g-{topic}", [topic], raw, handler)
    produce(bootstrap, topic, [b"a", b"b"])
    worker.start()
    try:
        eventually(lambda: sorted(applied) == [b"a", b"b"], timeout=60)
        assert worker.failures == 1 and "fenced" in (worker.last_error or "")
        assert len(consumers) == 2  # made anew once
    finally:
        worker.stop()


def test_consumers_of_the_embedded_kafka_wait_less_for_a_fetch(kitchen: Any) -> None:
    """librdkafka's mock cluster answers a fetch only when its wait runs out (a broker
    answers as soon as data comes), so the embedded Kafka's consumers ask with a short
    wait: with the broker's 100 ms, that wait was most of an idle all-in-one's time from
    201 to applied (bench/analysis.md). Which one each consumer of this Kitchen uses, and
    that librdkafka gets it."""
    wanted = kafka.FETCH_WAIT_MS if REAL_KAFKA else kafka.EMBEDDED_FETCH_WAIT_MS
    assert kitchen.workers and {w.fetch_wait_ms for w in kitchen.workers} == {wanted}
    config = kafka.consumer_config("127.0.0.1:9092", "g", fetch_wait_ms=wanted)
    assert config["fetch.wait.max.ms"] == wanted
    assert kafka.consumer_config("127.0.0.1:9092", "g")["fetch.wait.max.ms"] == 100
