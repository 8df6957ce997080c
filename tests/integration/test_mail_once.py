"""One email per alert, however slow the SMTP server, with several senders at once."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator

import pytest

from kitchen import settings as config
from kitchen.db import Notification, ensure_default_merchant, session
from kitchen.mail import SmtpMailer
from kitchen.notifications import send_due
from tests.helpers import SmtpServer, eventually, free_port


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
    # The other sender (the retry job, or the notify handler) comes along while the
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
