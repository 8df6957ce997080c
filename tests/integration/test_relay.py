"""The relay: every outbox row reaches Kafka once, however many relays run."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import outbox
from kitchen.db import session, transaction, utcnow
from kitchen.events import OrderCreated
from kitchen.kafka import Publisher, ensure_topics, producer_config
from kitchen.models import Order, Outbox
from kitchen.outbox import Relay
from tests.helpers import REAL_KAFKA, eventually, read_topic, seed_reference


def fresh_topic(bootstrap: str) -> str:
    topic = f"relay-{uuid.uuid4().hex[:8]}"
    if REAL_KAFKA:
        ensure_topics(bootstrap, [topic], 6)
    return topic


def queue(topic: str, count: int) -> None:
    with transaction():
        for i in range(1, count + 1):
            outbox.add(topic, OrderCreated(i), merchant_id=i % 5, ref_id=i)


def unsent() -> int:
    with session():
        return int(Outbox.select().where(Outbox.sent_at.is_null()).count())


def test_two_relays_send_every_row_once(make_kitchen: Callable[..., Kitchen]) -> None:
    kitchen = make_kitchen("api")  # the database and Kafka; the relays are started here
    topic = fresh_topic(kitchen.bootstrap_servers)
    queue(topic, 3000)
    relays = [Relay(Publisher.to(kitchen.bootstrap_servers), batch_size=200) for _ in range(2)]
    for relay in relays:
        relay.start()
    try:
        eventually(lambda: unsent() == 0, timeout=60)
    finally:
        for relay in relays:
            relay.stop()
    assert all(relay.published > 0 for relay in relays), "both relays took a share"
    assert sum(relay.published for relay in relays) == 3000
    records = read_topic(kitchen.bootstrap_servers, topic, expect=3000)
    ids = sorted(r.json()["id"] for r in records)
    assert ids == list(range(1, 3001)), f"{len(ids)} records for 3000 rows"


class RefusingProducer(Producer):
    """A real producer whose queue is full once, for one row: produce() raises."""

    def __init__(self, config: dict[str, Any], refuse: bytes) -> None:
        super().__init__(config)
        self.refuse: bytes | None = refuse

    def produce(self, topic: str, value: Any = None, *args: Any, **kwargs: Any) -> None:
        if value is not None and value.encode() == self.refuse:
            self.refuse = None
            raise BufferError("Local: Queue full")
        super().produce(topic, value, *args, **kwargs)


def test_a_row_the_producer_refused_is_sent_on_the_next_pass(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api")
    topic = fresh_topic(kitchen.bootstrap_servers)
    queue(topic, 3)
    producer = RefusingProducer(
        producer_config(kitchen.bootstrap_servers), refuse=OrderCreated(2).encode().encode()
    )
    relay = Relay(Publisher(producer), batch_size=10)
    with pytest.raises(BufferError):
        relay.publish_once()  # row 1 went out; row 2 was refused, row 3 never tried
    relay.publish_once()
    relay.publish_once()
    assert unsent() == 0
    records = read_topic(kitchen.bootstrap_servers, topic, expect=3)
    assert sorted(r.json()["id"] for r in records) == [1, 2, 3]


@pytest.mark.skipif(bool(REAL_KAFKA), reason="about the embedded Kafka, which starts empty")
def test_a_restart_on_the_embedded_kafka_queues_lost_orders_at_once(
    make_kitchen: Callable[..., Kitchen], test_settings: Any
) -> None:
    first = make_kitchen("api")
    with TestClient(first.web_app()) as api:
        seeded = seed_reference(api)
        placed = [api.post("/order", json=seeded.order(1)).json() for _ in range(3)]
    with session():
        # The last run sent these events, then died with its embedded cluster: they are gone.
        Outbox.update(sent_at=utcnow()).execute()
        Order.update(emitted_at=utcnow() - datetime.timedelta(seconds=5)).execute()
    first.stop()

    # A new run with its own embedded cluster; re-drive would wait 30 s.
    second = Kitchen(test_settings).start()
    try:
        assert test_settings.scheduler.redrive_after_seconds == 30
        ids = [p["id"] for p in placed]

        def applied() -> bool:
            with session():
                return all(Order.get_by_id(i).status == Order.APPLIED for i in ids)

        eventually(applied, timeout=15)
    finally:
        second.stop()


def test_a_relay_that_died_mid_pass_has_its_rows_sent_once_its_lease_expires(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    """A relay that claimed rows and died before sending them holds them until its lease
    expires (so no second relay sends them meanwhile); then another relay sends them,
    each once."""
    kitchen = make_kitchen("api")
    topic = fresh_topic(kitchen.bootstrap_servers)
    queue(topic, 300)
    dead = Relay(Publisher.to(kitchen.bootstrap_servers), batch_size=100)
    dead.LEASE = datetime.timedelta(seconds=8)  # the default (60 s) is too long to wait here
    lease_ends = time.monotonic() + 8
    claimed = sorted(row.id for row in dead._claim())  # then it dies: nothing produced
    assert len(claimed) == 100

    alive = Relay(Publisher.to(kitchen.bootstrap_servers), batch_size=100)
    alive.start()
    try:
        eventually(lambda: alive.published >= 200, timeout=30)
        with session():
            waiting = sorted(o.id for o in Outbox.select().where(Outbox.sent_at.is_null()))
        assert time.monotonic() < lease_ends, "too slow to see the lease hold"
        assert waiting == claimed  # still the dead relay's, untouched while its lease holds
        eventually(lambda: unsent() == 0, timeout=30)
    finally:
        alive.stop()
    assert time.monotonic() >= lease_ends
    assert alive.published == 300
    records = read_topic(kitchen.bootstrap_servers, topic, expect=300)
    assert sorted(r.json()["id"] for r in records) == list(range(1, 301))  # each once
