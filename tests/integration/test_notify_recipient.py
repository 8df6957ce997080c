"""Whoever can write to the notify topic cannot choose where Kitchen sends mail."""

from __future__ import annotations

import json

from confluent_kafka import Producer
from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session
from kitchen.kafka import producer_config
from kitchen.models import Alert
from tests.helpers import SmtpServer, eventually, onion

ATTACKER = "attacker@evil.example"


def publish(kitchen: Kitchen, payload: dict[str, object]) -> None:
    producer = Producer(producer_config(kitchen.bootstrap_servers))
    producer.produce(kitchen.settings.kafka.notify_topic, json.dumps(payload).encode(), key=b"1")
    assert producer.flush(10) == 0


def test_a_notify_for_a_real_alert_is_mailed_to_the_alerts_address(
    kitchen: Kitchen, api: TestClient, smtp: SmtpServer
) -> None:
    with session():
        alert = Alert.create(
            merchant=kitchen.merchant_id,
            ingredient=onion().id,
            email="chef@example.com",
            stock=480,
            full_stock=1000,
            threshold="1/2",
        )
    publish(kitchen, {"id": onion().id, "email": ATTACKER, "alert_id": alert.id, "stock": 1})

    eventually(lambda: len(smtp.messages) == 1)
    assert smtp.inbox.recipients == [["chef@example.com"]]
    assert smtp.messages[0]["To"] == "chef@example.com"
    # The figures are the alert's too, not the event's.
    assert smtp.messages[0]["Subject"] == "Low stock: onion is below 50% (480 g left)"


def test_a_bare_notify_is_mailed_to_the_merchants_alert_address(
    kitchen: Kitchen, api: TestClient, smtp: SmtpServer
) -> None:
    publish(kitchen, {"id": onion().id, "email": ATTACKER})

    eventually(lambda: len(smtp.messages) == 1)
    assert kitchen.settings.alerts.email == "merchant@example.com"
    assert smtp.inbox.recipients == [["merchant@example.com"]]
    assert smtp.messages[0]["To"] == "merchant@example.com"
