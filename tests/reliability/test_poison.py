"""Poison events: parked on `<topic>.dlq` with the reason, and the consumer goes on."""

from __future__ import annotations

import json

from confluent_kafka import Producer
from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session
from kitchen.kafka import producer_config
from kitchen.models import Ingredient
from tests.helpers import SmtpServer, eventually, read_topic


def test_poison_notify_events_are_dead_lettered(
    kitchen: Kitchen, api: TestClient, smtp: SmtpServer
) -> None:
    topic = kitchen.settings.kafka.notify_topic
    with session():
        onion = Ingredient.get(Ingredient.name == "onion")
    poison = {
        b"\x00\x01 not json": "bad NOTIFY: ",
        b'{"email": "a@b.c"}': "bad NOTIFY: needs an integer id and an email address",
        b'{"id": "3", "email": "a@b.c"}': "bad NOTIFY: needs an integer id and an email address",
        b'{"id": 3, "email": "nobody"}': "bad NOTIFY: needs an integer id and an email address",
        b'{"id": 987654, "email": "a@b.c"}': "unknown ingredient 987654",
        b"[]": "bad NOTIFY: not a JSON object",
        b'{"id": 9223372036854775808, "email": "a@b.c"}': "bad NOTIFY: needs an integer id",
        b"[" * 50_000: "bad NOTIFY: nested too deeply",
        b'{"id": 3, "email": "a@b.c", "alert_id": "x"}': "bad NOTIFY: alert_id must be",
        b'{"id": 3, "email": "a@b.c", "alert_id": 5555}': "unknown alert 5555",
    }
    # A NOTIFY in the bare public contract, from another producer: still mailed, once, to
    # the merchant's alert address (the event's is informative only, like its extras,
    # which are ignored when of the wrong type).
    valid = json.dumps({"id": onion.id, "email": "chef@example.com", "stock": "lots"}).encode()
    producer = Producer(producer_config(kitchen.bootstrap_servers))
    for value in [*poison, valid]:
        producer.produce(topic, value, key=b"1")
    assert producer.flush(10) == 0

    dead = read_topic(kitchen.bootstrap_servers, f"{topic}.dlq", expect=len(poison))
    assert sorted(d.value for d in dead) == sorted(poison)
    for d in dead:
        assert d.headers["kitchen-error"].startswith(poison[d.value]), d.headers
        assert d.headers["kitchen-source"].startswith(f"{topic}:")
        assert d.key == "1"

    eventually(lambda: len(smtp.messages) == 1)
    assert smtp.messages[0]["To"] == "merchant@example.com"
    assert smtp.inbox.recipients == [["merchant@example.com"]]
    assert smtp.messages[0]["Subject"] == "Low stock: onion is below 50% (1000 g left)"
