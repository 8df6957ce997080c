"""Re-drive: what Kafka may have lost is queued again from the database."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable

from starlette.testclient import TestClient

from app import Kitchen
from kitchen import alerts, orders
from kitchen.db import session, utcnow
from kitchen.events import Notify
from kitchen.models import Alert, Order, Outbox
from tests.helpers import lost_alert, seed_reference

LONG_AGO = utcnow() - datetime.timedelta(minutes=5)
AFTER = datetime.timedelta(seconds=30)


def outbox(topic: str) -> list[dict[str, object]]:
    with session():
        rows = Outbox.select().where(Outbox.topic == topic).order_by(Outbox.id)
        return [json.loads(r.payload) for r in rows]


def test_orders_still_pending_are_published_again(make_kitchen: Callable[..., Kitchen]) -> None:
    kitchen = make_kitchen("api")  # no relay, no processing: orders stay pending
    topic = kitchen.settings.kafka.order_created_topic
    with TestClient(kitchen.web_app()) as api:
        seeded = seed_reference(api)
        old = api.post("/order", json=seeded.order(1)).json()
        new = api.post("/order", json=seeded.order(2)).json()
    with session():
        Order.update(emitted_at=LONG_AGO).where(Order.id == old["id"]).execute()
        # Their events reached Kafka (the relay marked them sent), which then lost them.
        Outbox.update(sent_at=utcnow()).execute()

    assert orders.redrive(topic, AFTER) == 1
    assert [event["id"] for event in outbox(topic)] == [old["id"], new["id"], old["id"]]
    assert orders.redrive(topic, AFTER) == 0  # re-driven just now: not again at once


def test_alerts_that_never_reached_the_notification_role_are_published_again(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api")
    topic = kitchen.settings.kafka.notify_topic
    alert = lost_alert(kitchen)

    assert alerts.redrive(topic, AFTER) == 1
    [payload] = outbox(topic)
    assert payload["id"] == alert.ingredient_id and payload["email"] == "chef@example.com"
    assert payload["alert_id"] == alert.id and payload["ingredient"] == "onion"
    notify = Notify.decode(json.dumps(payload).encode())  # what the notification role reads
    assert (notify.ingredient_id, notify.alert_id, notify.stock) == (
        alert.ingredient_id,
        alert.id,
        480,
    )
    assert alerts.redrive(topic, AFTER) == 0


def unsent_rows(topic: str) -> int:
    with session():
        return int(Outbox.select().where(Outbox.topic == topic, Outbox.sent_at.is_null()).count())


def test_redrive_adds_no_copy_while_the_event_still_waits_in_the_outbox(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    """Kafka down: the relay cannot send, orders stay pending. Re-drive cycles must not
    pile up copies (3 pending orders and 4 cycles once left 15 unsent rows)."""
    kitchen = make_kitchen("api")  # no relay: every event stays unsent, as with Kafka down
    order_topic = kitchen.settings.kafka.order_created_topic
    notify_topic = kitchen.settings.kafka.notify_topic
    with TestClient(kitchen.web_app()) as api:
        seeded = seed_reference(api)
        for _ in range(3):
            api.post("/order", json=seeded.order(1))
    lost_alert(kitchen)
    assert alerts.redrive(notify_topic, AFTER) == 1  # its first NOTIFY: now it waits
    for _ in range(4):
        with session():
            Order.update(emitted_at=LONG_AGO).execute()
            Alert.update(emitted_at=LONG_AGO).execute()
        assert orders.redrive(order_topic, AFTER) == 0
        assert alerts.redrive(notify_topic, AFTER) == 0
    assert unsent_rows(order_topic) == 3 and unsent_rows(notify_topic) == 1


def test_an_alert_whose_notify_is_never_recorded_is_re_driven_a_bounded_number_of_times(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api")  # no notification role: no NOTIFY is ever recorded
    topic = kitchen.settings.kafka.notify_topic
    alert = lost_alert(kitchen)

    queued = []
    for _ in range(20):
        queued.append(alerts.redrive(topic, AFTER))
        with session():  # a day passes between two runs: every back-off has run out,
            Alert.update(emitted_at=utcnow() - datetime.timedelta(days=1)).execute()
            Outbox.update(sent_at=utcnow()).execute()  # and the relay sent the last copy
    assert queued == [1] * alerts.MAX_REDRIVES + [0] * (20 - alerts.MAX_REDRIVES)
    assert [p["alert_id"] for p in outbox(topic)] == [alert.id] * alerts.MAX_REDRIVES


def test_each_re_drive_of_an_alert_waits_twice_as_long(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api")
    topic = kitchen.settings.kafka.notify_topic
    alert = lost_alert(kitchen)

    def queued_after(seconds: int) -> int:
        with session():
            Outbox.update(sent_at=utcnow()).execute()  # the relay sent the last copy
            Alert.update(emitted_at=utcnow() - datetime.timedelta(seconds=seconds)).where(
                Alert.id == alert.id
            ).execute()
        return alerts.redrive(topic, AFTER)

    assert queued_after(31) == 1  # first re-drive: after 30 s
    assert queued_after(31) == 0  # the second waits 60 s
    assert queued_after(61) == 1
    assert queued_after(119) == 0  # the third 120 s
    assert queued_after(121) == 1
