"""The metrics an operator needs to trust the pipeline (issue 21): relay failures,
re-drives, SMTP time per outcome, each role's readiness, and how long an order waited to
be applied. Counters are per process and tests share one: each test compares a scrape
before with one after."""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import alerts, db, migrations, models, orders, outbox
from kitchen.db import session, transaction, utcnow
from kitchen.events import OrderCreated
from kitchen.kafka import Publisher, ensure_topics, producer_config
from kitchen.models import Order, Outbox
from kitchen.outbox import Relay
from tests.helpers import (
    REAL_KAFKA,
    Seeded,
    SmtpServer,
    eventually,
    free_port,
    lost_alert,
    raise_onion_alert,
    read_topic,
    seed_reference,
)
from tests.integration.test_metrics import Samples, total, value
from tests.integration.test_metrics_port import parse

LONG_AGO = datetime.timedelta(minutes=5)


def scrape(kitchen: Kitchen) -> Samples:
    """What Prometheus reads from this process's operations port."""
    with TestClient(kitchen.operations_app()) as ops:
        response = ops.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def unsent() -> int:
    with session():
        return int(Outbox.select().where(Outbox.sent_at.is_null()).count())


def test_rows_kafka_does_not_acknowledge_are_counted_then_sent(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api")  # the database and Kafka; the relays are made here
    topic = f"relay-{uuid.uuid4().hex[:8]}"
    if REAL_KAFKA:
        ensure_topics(kitchen.bootstrap_servers, [topic], 6)
    with transaction():
        for i in (1, 2, 3):
            outbox.add(topic, OrderCreated(i), merchant_id=1, ref_id=i)
    before = scrape(kitchen)

    # A broker nobody runs: each row times out unacknowledged after a second.
    nowhere = {**producer_config(f"127.0.0.1:{free_port()}"), "message.timeout.ms": 1000}
    relay = Relay(Publisher(Producer(nowhere)), batch_size=10)
    assert relay.publish_once() == 3
    middle = scrape(kitchen)
    assert grew(before, middle, "kitchen_relay_failures_total", kind="delivery") == 3
    assert grew(before, middle, "kitchen_relay_failures_total", kind="pass") == 0
    assert grew(before, middle, "kitchen_outbox_published_total") == 0
    assert unsent() == 3  # tried again later: nothing lost

    outbox.release_claims()  # that relay is gone: its rows need not wait out its lease
    relay = Relay(Publisher.to(kitchen.bootstrap_servers), batch_size=10)
    assert relay.publish_once() == 3
    assert unsent() == 0
    after = scrape(kitchen)
    assert grew(middle, after, "kitchen_relay_failures_total", kind="delivery") == 0
    assert grew(middle, after, "kitchen_outbox_published_total") == 3
    assert sorted(r.json()["id"] for r in read_topic(kitchen.bootstrap_servers, topic, 3)) == [
        1,
        2,
        3,
    ]


def test_a_failing_relay_pass_is_counted_and_its_role_reads_not_ready(
    make_kitchen: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
) -> None:
    kitchen = make_kitchen("api,relay")
    before = scrape(kitchen)
    assert value(before, "kitchen_role_ready", role="relay") == 1
    assert value(before, "kitchen_role_ready", role="api") == 1
    # 0 from the start, not absent: a rule's increase() sees the first failure.
    assert ("kitchen_relay_failures_total", frozenset({("kind", "pass")})) in before

    with caplog.at_level(logging.ERROR, logger="kitchen.outbox"):
        with db.session():
            db.database.drop_tables([models.Outbox])  # every relay pass now fails
        eventually(lambda: value(scrape(kitchen), "kitchen_role_ready", role="relay") == 0)
        migrations.upgrade()
        eventually(lambda: value(scrape(kitchen), "kitchen_role_ready", role="relay") == 1)
    after = scrape(kitchen)
    failed_passes = [r for r in caplog.records if r.getMessage() == "relay failed; retrying"]
    assert len(failed_passes) >= 3  # /ready says not working after 3 in a row
    assert grew(before, after, "kitchen_relay_failures_total", kind="pass") == len(failed_passes)
    assert grew(before, after, "kitchen_relay_failures_total", kind="delivery") == 0


def test_re_drives_are_counted_by_topic(make_kitchen: Callable[..., Kitchen]) -> None:
    kitchen = make_kitchen("api")  # no relay, no processing: orders stay pending
    k = kitchen.settings.kafka
    with TestClient(kitchen.web_app()) as api:
        seeded = seed_reference(api)
        placed = [api.post("/order", json=seeded.order(1)).json()["id"] for _ in range(3)]
    with session():
        # Two reached Kafka long ago (the relay marked them sent), which then lost them.
        Order.update(emitted_at=utcnow() - LONG_AGO).where(Order.id << placed[:2]).execute()
        Outbox.update(sent_at=utcnow()).execute()
    lost_alert(kitchen)  # an alert whose NOTIFY never reached the notification role
    before = scrape(kitchen)
    assert orders.redrive(k.order_created_topic, datetime.timedelta(seconds=30)) == 2
    assert alerts.redrive(k.notify_topic, datetime.timedelta(seconds=30)) == 1
    assert orders.redrive(k.order_created_topic, datetime.timedelta(seconds=30)) == 0
    after = scrape(kitchen)
    assert grew(before, after, "kitchen_redriven_total", topic=k.order_created_topic) == 2
    assert grew(before, after, "kitchen_redriven_total", topic=k.notify_topic) == 1
    assert grew(before, after, "kitchen_redriven_total") == 3


@pytest.mark.skipif(bool(REAL_KAFKA), reason="about the embedded Kafka, which starts empty")
def test_the_embedded_start_counts_what_it_queues_again(
    make_kitchen: Callable[..., Kitchen], test_settings: Any
) -> None:
    first = make_kitchen("api")
    with TestClient(first.web_app()) as api:
        seeded = seed_reference(api)
        for _ in range(3):
            assert api.post("/order", json=seeded.order(1)).status_code == 201
    with session():
        Outbox.update(sent_at=utcnow()).execute()  # sent, then lost with the cluster
    first.stop()
    before = scrape(first)

    second = Kitchen(test_settings).start()  # all roles: its relay requeues at once
    try:
        after = scrape(second)
    finally:
        second.stop()
    topic = test_settings.kafka.order_created_topic
    assert grew(before, after, "kitchen_redriven_total", topic=topic) == 3


def scrape_once(kitchen: Kitchen, done: Callable[[Samples], bool]) -> Samples:
    """The first scrape for which `done` holds (polled)."""

    def check() -> Samples | None:
        samples = scrape(kitchen)
        return samples if done(samples) else None

    found: Samples = eventually(check)
    return found


def smtp_count(samples: Samples, outcome: str) -> float:
    return value(samples, "kitchen_smtp_send_duration_seconds_count", outcome=outcome)


def test_smtp_time_is_observed_per_outcome(
    make_kitchen: Callable[..., Kitchen], smtp: SmtpServer
) -> None:
    smtp.inbox.data_delay = 0.3  # a server that thinks before it accepts
    kitchen = make_kitchen()
    before = scrape(kitchen)
    seeded = raise_onion_alert(kitchen)
    eventually(lambda: len(smtp.messages) == 1)
    sent = scrape_once(kitchen, lambda s: smtp_count(s, "sent") > smtp_count(before, "sent"))
    assert grew(before, sent, "kitchen_smtp_send_duration_seconds_count", outcome="sent") == 1
    seconds = grew(before, sent, "kitchen_smtp_send_duration_seconds_sum", outcome="sent")
    assert 0.3 <= seconds < 10  # connect to quit, the server's thinking included
    assert (
        grew(before, sent, "kitchen_smtp_send_duration_seconds_bucket", outcome="sent", le="0.25")
        == 0
    )
    assert (
        grew(before, sent, "kitchen_smtp_send_duration_seconds_bucket", outcome="sent", le="+Inf")
        == 1
    )

    # A recipient refused for good: one failed send, timed too. Onion restocked to its
    # par level (alert re-armed), then 26 burgers again: a second alert, a second mail.
    smtp.inbox.rcpt_reply = "550 5.1.1 <merchant@example.com>: no such user"
    smtp.inbox.data_delay = 0
    with TestClient(kitchen.web_app()) as api:
        restock = api.post(f"/ingredients/{seeded.onion}/restock", json={"amount": 520})
        assert restock.status_code == 200, restock.text
        assert api.post("/order", json=seeded.order(26)).status_code == 201
    failed = scrape_once(kitchen, lambda s: smtp_count(s, "failed") > smtp_count(sent, "failed"))
    assert grew(sent, failed, "kitchen_smtp_send_duration_seconds_count", outcome="failed") == 1
    assert grew(sent, failed, "kitchen_smtp_send_duration_seconds_count", outcome="sent") == 0
    assert grew(sent, failed, "kitchen_emails_total", outcome="failed") == 1
    assert 0 < grew(sent, failed, "kitchen_smtp_send_duration_seconds_sum", outcome="failed") < 10


def test_the_apply_delay_is_observed_for_each_applied_order(
    kitchen: Kitchen, api: TestClient, seeded: Seeded
) -> None:
    before = scrape(kitchen)
    started = time.monotonic()
    # 2 + 24 burgers are applied; 1000 need more beef than there is: rejected, not timed.
    placed = [api.post("/order", json=seeded.order(q)).json()["id"] for q in (2, 24, 1000)]

    def statuses() -> list[str]:
        return [api.get(f"/order/{o}").json()["status"] for o in placed]

    eventually(lambda: "pending" not in statuses())
    elapsed = time.monotonic() - started
    assert statuses() == ["applied", "applied", "rejected"]
    after = scrape(kitchen)
    assert grew(before, after, "kitchen_order_apply_delay_seconds_count") == 2
    assert grew(before, after, "kitchen_order_apply_delay_seconds_bucket", le="+Inf") == 2
    assert grew(before, after, "kitchen_orders_applied_total") == 2
    assert 0 < grew(before, after, "kitchen_order_apply_delay_seconds_sum") <= 2 * elapsed
