"""One email per alert, however slow the SMTP server, with several senders at once."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Producer
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import kafka
from kitchen import settings as config
from kitchen.db import session
from kitchen.kafka import producer_config
from kitchen.mail import SmtpMailer
from kitchen.merchants import ensure_default_merchant
from kitchen.models import Alert, Ingredient, Notification, database_id
from kitchen.notifications import send_due
from tests.helpers import REAL_KAFKA, SmtpServer, eventually, free_port

# A real broker refuses session timeouts under 6 s (group.min.session.timeout.ms), and
# librdkafka wants max.poll.interval.ms at least the session timeout.
SESSION_MS = 6000 if REAL_KAFKA else 3000
POLL_MS = 6000 if REAL_KAFKA else 3000


def due_mails(count: int) -> list[str]:
    """`count` alert mails waiting to be sent; their Message-IDs."""
    ids = [f"<kitchen-test-{i}@kitchen.local>" for i in range(count)]
    with session():
        merchant = ensure_default_merchant("chef@example.com")
        for i, message_id in enumerate(ids):
            Notification.create(
                merchant=merchant.id,
                dedup_key=f"test-{i}",
                ingredient_id=1,
                email="chef@example.com",
                subject=f"Low stock {i}",
                body="onion is low\n",
                message_id=message_id,
            )
    return ids


def rows() -> list[Notification]:
    with session():
        return list(Notification.select().order_by(Notification.id))


def test_a_slow_server_gets_each_alert_once_from_two_senders(
    clean_database: str, smtp: SmtpServer, test_settings: config.Settings
) -> None:
    ids = due_mails(3)
    smtp.inbox.data_delay = 1.0  # each mail takes a second; the batch three
    mailer = SmtpMailer(test_settings.mail)
    claim = 2  # longer than one send, shorter than the batch

    first = threading.Thread(target=send_due, args=(mailer, claim))
    first.start()
    # The other sender (another process's) comes along while the
    # first one is on its last mail, and keeps coming until that one is done.
    eventually(lambda: smtp.inbox.data_attempts == 3)
    while first.is_alive():
        send_due(mailer, claim)
        first.join(0.05)

    assert sorted(m["Message-ID"] for m in smtp.messages) == sorted(ids)
    assert [n.attempts for n in rows()] == [1, 1, 1]
    assert all(n.sent_at is not None for n in rows())


def test_a_dropped_connection_is_one_attempt_retried_by_kitchen(
    clean_database: str, smtp: SmtpServer, test_settings: config.Settings
) -> None:
    [message_id] = due_mails(1)
    smtp.inbox.drop_on_data = True
    mailer = SmtpMailer(test_settings.mail)

    assert send_due(mailer, test_settings.mail.claim_seconds) == 0
    # One DATA, not yagmail's three with 18 s of sleep in between: Kitchen's back-off
    # decides when to try again.
    assert smtp.inbox.data_attempts == 1
    [row] = rows()
    assert (row.attempts, row.sent_at, row.claimed_until) == (1, None, None)
    assert "SMTPServerDisconnected" in str(row.last_error)

    smtp.inbox.drop_on_data = False
    with session():
        Notification.update(next_attempt_at=row.created_at).execute()  # due again now
    assert send_due(mailer, test_settings.mail.claim_seconds) == 1
    assert [m["Message-ID"] for m in smtp.messages] == [message_id]


@pytest.fixture
def trickling_server() -> Iterator[int]:
    """A server that never finishes its greeting: one line of it every 0.2 s, for 30 s."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    listener.settimeout(30)
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            for _ in range(150):
                if stop.wait(0.2):
                    break
                try:
                    conn.sendall(b"220-still saying hello\r\n")
                except OSError:
                    break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()
    thread.join(5)


def test_a_send_ends_within_its_claim_however_slowly_the_server_talks(
    clean_database: str, trickling_server: int, test_settings: config.Settings
) -> None:
    due_mails(1)
    mail = dataclasses.replace(test_settings.mail, smtp_port=trickling_server, timeout_seconds=1)
    sender = threading.Thread(target=send_due, args=(SmtpMailer(mail), mail.claim_seconds))
    sender.start()
    sender.join(mail.claim_seconds)  # past this, another sender would take the mail

    assert not sender.is_alive()
    [row] = rows()
    assert row.sent_at is None
    assert f"cut after {mail.send_deadline_seconds} s" in str(row.last_error)


def test_a_slow_server_never_keeps_the_notify_consumer_from_polling(
    make_kitchen: Callable[..., Kitchen],
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # librdkafka throws a consumer out of its group when it has not polled for
    # max.poll.interval.ms (here a few seconds); the SMTP server takes half that per mail.
    config = kafka.consumer_config
    monkeypatch.setattr(
        kafka,
        "consumer_config",
        lambda *args, **kwargs: {
            **config(*args, **kwargs),
            "max.poll.interval.ms": POLL_MS,
            "heartbeat.interval.ms": 500,  # its default, 3 s, is the whole short session
        },
    )
    kitchen = make_kitchen(kafka={"session_timeout_ms": SESSION_MS})
    with TestClient(kitchen.web_app()) as api:
        assert api.post("/order/seed").status_code == 201
    notification = next(w for w in kitchen.workers if w.name == "notification")
    eventually(lambda: notification.assigned)  # in its group: the poll clock runs
    smtp.inbox.data_delay = POLL_MS / 2000
    alerts = 6  # three times the poll interval of SMTP
    with session():
        onion = Ingredient.get(
            Ingredient.merchant == kitchen.merchant_id, Ingredient.name == "onion"
        )
        ids = [
            Alert.create(
                merchant=kitchen.merchant_id,
                ingredient=onion.id,
                email="chef@example.com",
                stock=480 - i,
                full_stock=1000,
                threshold="1/2",
            ).id
            for i in range(alerts)
        ]
    producer = Producer(producer_config(kitchen.bootstrap_servers))
    for alert_id in ids:
        event = {"id": onion.id, "email": "chef@example.com", "alert_id": alert_id}
        producer.produce(kitchen.settings.kafka.notify_topic, json.dumps(event).encode(), key=b"1")
    assert producer.flush(10) == 0

    # Every NOTIFY recorded and its offset committed while the server is still busy.
    eventually(lambda: notification.processed == alerts)
    assert len(smtp.messages) < alerts
    eventually(lambda: len(smtp.messages) == alerts, timeout=alerts * POLL_MS / 1000)
    with session():
        expected = [f"<kitchen-{database_id()}-alert-{i}@kitchen.local>" for i in ids]
    assert sorted(m["Message-ID"] for m in smtp.messages) == sorted(expected)
    # The server holds the last mail before its sender hears "250" and records it.
    eventually(lambda: all(n.sent_at is not None for n in rows()))
    assert [n.attempts for n in rows()] == [1] * alerts
    # Never thrown out of the group: no failed commit, no batch read twice.
    assert (notification.failures, notification.processed) == (0, alerts)
