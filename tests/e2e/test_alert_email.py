"""HTTP in, email out: the low-stock alert reaches a real SMTP server exactly once."""

from __future__ import annotations

from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session
from kitchen.models import Alert, Notification, Outbox, database_id
from tests.helpers import SmtpServer, burgers, eventually, onion, read_topic


def body_text(message: object) -> str:
    for part in message.walk():  # type: ignore[attr-defined]
        if part.get_content_type() == "text/plain":
            return str(part.get_payload(decode=True).decode())
    raise AssertionError("no text/plain part")


def test_onion_below_half_sends_one_notify_and_one_email(
    kitchen: Kitchen, api: TestClient, smtp: SmtpServer
) -> None:
    for _ in range(5):
        burgers(api, 5, applied=True)  # 25 burgers: onion at exactly 500 g, not below 50%
    assert onion().stock == 500 and onion().alert_armed
    burgers(api, 1, applied=True)  # 480 g: below
    eventually(lambda: len(smtp.messages) == 1)

    notify = read_topic(kitchen.bootstrap_servers, kitchen.settings.kafka.notify_topic, expect=1)
    assert len(notify) == 1
    payload = notify[0].json()
    assert (payload["id"], payload["email"]) == (onion().id, "merchant@example.com")
    assert payload["stock"] == 480

    mail = smtp.messages[0]
    assert mail["To"] == "merchant@example.com"
    assert mail["Subject"] == "Low stock: onion is below 50% (480 g left)"
    with session():
        db_id = database_id()  # this database's random id: no other database's mail has it
    assert mail["Message-ID"] == f"<kitchen-{db_id}-alert-{payload['alert_id']}@kitchen.local>"
    text = body_text(mail)
    assert text.startswith("onion is down to 480 g of its par level of 1000 g, below the ")
    assert "threshold of 50% (500 g).\n\nRestock onion to re-arm this alert" in text
    assert "<br>" not in text

    for _ in range(3):
        burgers(api, 2, applied=True)  # further use below 50%: nothing more
    assert onion().stock == 360 and not onion().alert_armed
    with session():
        eventually(lambda: Outbox.select().where(Outbox.sent_at.is_null()).count() == 0)
    again = read_topic(kitchen.bootstrap_servers, kitchen.settings.kafka.notify_topic, expect=1)
    assert again == notify
    assert len(smtp.messages) == 1
    with session():
        assert Notification.select().count() == 1


def test_a_restock_rearms_exactly_one_further_email(
    kitchen: Kitchen, api: TestClient, smtp: SmtpServer
) -> None:
    burgers(api, 26, applied=True)  # onion 480 g: the first alert
    eventually(lambda: len(smtp.messages) == 1)
    path = f"/ingredients/{onion().id}"
    assert api.post(f"{path}/restock", json={"grams": 10}).json()["alert_armed"] is False  # 490
    burgers(api, 1, applied=True)  # 470 g: still the same crossing, no mail
    assert api.post(f"{path}/restock", json={"grams": 530}).json()["alert_armed"] is True  # 1000
    assert len(smtp.messages) == 1  # a restock itself mails nothing
    burgers(api, 25, applied=True)  # 500 g: at the line
    burgers(api, 1, applied=True)  # 480 g: the second crossing, the second mail
    eventually(lambda: len(smtp.messages) == 2)
    burgers(api, 3, applied=True)  # 420 g: nothing more
    with session():
        eventually(lambda: Outbox.select().where(Outbox.sent_at.is_null()).count() == 0)
        eventually(lambda: Notification.select().where(Notification.sent_at.is_null()).count() == 0)
    assert len(smtp.messages) == 2
    assert smtp.messages[0]["Message-ID"] != smtp.messages[1]["Message-ID"]
    assert [m["Subject"] for m in smtp.messages] == [
        "Low stock: onion is below 50% (480 g left)"
    ] * 2


def test_an_ingredient_created_below_its_threshold_alerts_once(
    kitchen: Kitchen, api: TestClient, smtp: SmtpServer
) -> None:
    r = api.post("/ingredients", json={"name": "olive oil", "stock": 500, "full_stock": 5000})
    assert r.status_code == 201
    oil = r.json()
    assert (oil["low"], oil["alert_armed"]) == (True, False)
    eventually(lambda: len(smtp.messages) == 1)
    assert smtp.messages[0]["Subject"] == "Low stock: olive oil is below 50% (500 g left)"
    with session():
        [alert] = Alert.select().where(Alert.ingredient == oil["id"])
        assert (alert.order_id, alert.stock, alert.full_stock) == (None, 500, 5000)
    notify = read_topic(kitchen.bootstrap_servers, kitchen.settings.kafka.notify_topic, expect=1)
    assert [n.json()["alert_id"] for n in notify] == [alert.id]

    # Changes that keep it low raise nothing more; one that makes an ingredient low does.
    path = f"/ingredients/{oil['id']}"
    assert api.patch(path, json={"name": "olive oil (extra virgin)", "threshold": 0.2}).json()[
        "low"
    ]
    assert api.patch(path, json={"full_stock": 6000}).json()["low"] is True
    assert api.post("/ingredients", json={"name": "salt", "stock": 800}).json()["low"] is False
    salt = next(i for i in api.get("/ingredients").json() if i["name"] == "salt")
    assert api.patch(f"/ingredients/{salt['id']}", json={"full_stock": 2000}).json()["low"]
    eventually(lambda: len(smtp.messages) == 2)
    assert smtp.messages[1]["Subject"] == "Low stock: salt is below 50% (800 g left)"
    with session():
        eventually(lambda: Outbox.select().where(Outbox.sent_at.is_null()).count() == 0)
        eventually(lambda: Notification.select().where(Notification.sent_at.is_null()).count() == 0)
        assert Alert.select().count() == 2
    assert len(smtp.messages) == 2
