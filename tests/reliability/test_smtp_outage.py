"""SMTP down while alerts fire: they wait, are retried with back-off, and each is mailed
exactly once when the server is back, even if its NOTIFY is delivered again."""

from __future__ import annotations

import datetime
import time

from confluent_kafka import Producer
from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session
from kitchen.kafka import producer_config
from kitchen.models import Ingredient, Notification
from tests.helpers import Seeded, SmtpServer, eventually, read_topic, stock_after
from tests.reliability.harness import settled_orders
from tests.reliability.report import report

# Full levels chosen so that 200 one-burger orders cross 50 % three times, at different
# orders: beef at burger 101, cheese at 134, onion at 151; beef runs out at exactly 200.
STOCK = {"beef": 30_000, "cheese": 8_000, "onion": 6_000}


def test_alerts_wait_for_smtp_and_are_mailed_once(
    kitchen: Kitchen, api: TestClient, seeded: Seeded, smtp: SmtpServer
) -> None:
    with session():
        for name, grams in STOCK.items():
            Ingredient.update(stock=grams, full_stock=grams).where(
                Ingredient.name == name
            ).execute()
    smtp.stop()
    down_at = time.monotonic()
    ids = []
    for _ in range(201):  # the 201st finds no beef left
        r = api.post("/order", json=seeded.order(1))
        assert r.status_code == 201
        ids.append(r.json()["id"])

    settled = settled_orders(timeout=60)
    with session():
        eventually(lambda: Notification.select().count() == 3)
        eventually(
            # Two attempts made and none under way (a claimed row is mid-attempt).
            lambda: all(n.attempts >= 2 and n.claimed_until is None for n in Notification.select()),
            timeout=30,
            interval=0.2,
        )
        waiting = list(Notification.select())
    assert all(n.sent_at is None and "Connection refused" in str(n.last_error) for n in waiting)
    # Back-off: the next try is further away than the one before (2 s, then 4 s, ...).
    for n in waiting:
        assert n.next_attempt_at - n.created_at >= datetime.timedelta(seconds=2 + 4 - 1)
    assert smtp.messages == []

    smtp.start()
    outage = time.monotonic() - down_at
    eventually(lambda: len(smtp.messages) == 3, timeout=60)

    # Kafka delivers every NOTIFY again (a rebalance, a relay that resent): no new mail.
    notify = kitchen.settings.kafka.notify_topic
    again = read_topic(kitchen.bootstrap_servers, notify, expect=3)
    producer = Producer(producer_config(kitchen.bootstrap_servers))
    for record in again:
        producer.produce(notify, record.value, key=record.key)
    assert producer.flush(10) == 0
    notification = next(w for w in kitchen.workers if w.name == "notification")
    eventually(lambda: notification.processed >= 6)
    time.sleep(1.5)  # the sender looks every second: room for a wrong resend

    subjects = sorted(str(m["Subject"]) for m in smtp.messages)
    assert subjects == [
        "Low stock: beef is below 50% (14850 g left)",
        "Low stock: cheese is below 50% (3980 g left)",
        "Low stock: onion is below 50% (2980 g left)",
    ]
    with session():
        stock = {i.name: i.stock for i in Ingredient.select()}
        attempts = sorted(n.attempts for n in Notification.select())
    statuses = [settled[i] for i in ids]
    assert statuses == ["applied"] * 200 + ["rejected"]
    assert stock == stock_after(200, STOCK)
    report(
        "SMTP down",
        backend=kitchen.settings.database.url.split(":")[0]
        + " + "
        + ("embedded" if kitchen.embedded else "Kafka"),
        orders_sent=len(ids),
        acknowledged=len(ids),
        applied=statuses.count("applied"),
        rejected=statuses.count("rejected"),
        smtp_down_seconds=round(outage, 1),
        send_attempts=attempts,
        notify_redelivered=len(again),
        emails_expected=3,
        emails_received=len(smtp.messages),
        lost=3 - len({m["Message-ID"] for m in smtp.messages}),
        duplicated=len(smtp.messages) - len({m["Message-ID"] for m in smtp.messages}),
    )
    assert len({m["Message-ID"] for m in smtp.messages}) == 3
