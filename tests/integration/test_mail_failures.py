"""A mail that can never be sent ends as failed and is left alone; a temporary failure
is retried until the server accepts."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import alerts, metrics
from kitchen import settings as config
from kitchen.db import session
from kitchen.mail import FolderMailer, PermanentMailError, SmtpMailer
from kitchen.models import Ingredient, Notification
from kitchen.notifications import backoff, send_due
from tests.helpers import Seeded, SmtpServer, eventually, raise_onion_alert


def mail_row() -> Notification:
    with session():
        return eventually(lambda: Notification.get_or_none())


def row_where(check: Callable[[Notification], object]) -> Notification:
    def fetch() -> Notification | None:
        with session():
            n = Notification.get_or_none()
        return n if n is not None and check(n) else None

    return eventually(fetch)


def test_a_recipient_refused_for_good_is_one_attempt_then_a_failed_mail(
    kitchen: Kitchen, smtp: SmtpServer
) -> None:
    smtp.inbox.rcpt_reply = "550 5.1.1 <merchant@example.com>: no such user"
    raise_onion_alert(kitchen)

    row = row_where(lambda n: n.failed_at is not None or n.attempts >= 2)
    assert row.failed_at is not None and row.sent_at is None
    assert "550" in str(row.last_error) and "no such user" in str(row.last_error)
    # Room for the retries a transient failure would get: its back-off, then two more
    # rounds of the sender (every second here).
    time.sleep(backoff(1).total_seconds() + 2 * kitchen.settings.scheduler.mail_retry_seconds)
    assert smtp.inbox.rcpt_attempts == 1
    assert mail_row().attempts == 1
    assert smtp.messages == []


def test_a_temporary_refusal_is_retried_until_the_server_accepts(
    kitchen: Kitchen, smtp: SmtpServer
) -> None:
    smtp.inbox.rcpt_reply = "451 4.3.0 try again later"
    raise_onion_alert(kitchen)

    row = row_where(lambda n: n.attempts >= 2 and n.claimed_until is None)
    assert row.failed_at is None and row.sent_at is None and "451" in str(row.last_error)
    smtp.inbox.rcpt_reply = ""
    eventually(lambda: len(smtp.messages) == 1)
    row = row_where(lambda n: n.sent_at is not None)
    assert row.failed_at is None and row.last_error is None
    assert smtp.inbox.recipients == [["merchant@example.com"]]


@pytest.mark.parametrize(
    "address",
    ["nobody", "chef@example.com\r\nBcc: spy@evil.example", "chef@example.com, spy@evil.example"],
    ids=["no-at", "header-injection", "two-addresses"],
)
def test_an_invalid_address_fails_without_smtp_and_is_not_redriven(
    make_kitchen: Callable[..., Kitchen], smtp: SmtpServer, address: str
) -> None:
    kitchen = make_kitchen(alerts={"email": address})
    raise_onion_alert(kitchen)

    row = row_where(lambda n: n.failed_at is not None or n.sent_at is not None)
    assert row.sent_at is None and row.failed_at is not None
    assert row.email == address and "invalid address" in str(row.last_error)
    assert smtp.inbox.ehlos == 0  # Kitchen never even connected
    assert smtp.messages == []
    # Its NOTIFY was recorded, as a failed mail: there is nothing to re-drive.
    assert alerts.redrive(kitchen.settings.kafka.notify_topic, datetime.timedelta(0)) == 0


def emails(outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("kitchen_emails_total", {"outcome": outcome}) or 0.0


def test_a_message_that_cannot_be_built_fails_once_for_good(
    kitchen: Kitchen,
    api: TestClient,
    seeded: Seeded,
    smtp: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The API refuses such a name; one saved before it did (or by hand) is in the database.
    evil = "salt\u000bBcc: evil@example.org"
    with session():
        Ingredient.update(name=evil).where(
            Ingredient.merchant == kitchen.merchant_id, Ingredient.name == "onion"
        ).execute()
    failed = emails("failed")
    r = api.post("/order", json=seeded.order(26))
    assert r.status_code == 201

    row = row_where(lambda n: n.failed_at is not None or n.attempts >= 2)
    assert row.failed_at is not None and row.sent_at is None and row.attempts == 1
    assert "header injection refused" in str(row.last_error)
    assert smtp.inbox.ehlos == 0 and smtp.messages == []
    assert emails("failed") == failed + 1
    assert metrics.REGISTRY.get_sample_value("kitchen_emails_pending") == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(":")[0] for r in errors] == [
        f"mail {row.dedup_key} to 'merchant@example.com' failed for good"
    ]
    # Due again or not, no sender takes a failed mail.
    with session():
        Notification.update(next_attempt_at=row.created_at).execute()
    assert send_due(SmtpMailer(kitchen.settings.mail), 30) == 0
    assert mail_row().attempts == 1 and smtp.inbox.ehlos == 0


@pytest.mark.parametrize(
    "subject",
    [
        "salt\u000bBcc: evil@example.org",  # the email package raises
        "salt\x1cBcc: evil@example.org",
        "salt\x1c",  # written as a second line of the header block
        "salt\u2028x",
        "salt\x85x",
        "salt\x1b[31m",
    ],
)
def test_a_subject_with_a_line_break_or_control_character_is_refused_for_good(
    test_settings: config.Settings, tmp_path: Path, subject: str
) -> None:
    mailer = FolderMailer(dataclasses.replace(test_settings.mail, folder=str(tmp_path / "out")))
    with pytest.raises(PermanentMailError, match="header injection refused"):
        mailer.send("chef@example.com", subject, "body\n", "<kitchen-1@kitchen.local>")
    assert not (tmp_path / "out").exists()


def test_text_the_email_package_cannot_encode_is_a_permanent_failure(
    test_settings: config.Settings, tmp_path: Path
) -> None:
    mailer = FolderMailer(dataclasses.replace(test_settings.mail, folder=str(tmp_path / "out")))
    with pytest.raises(PermanentMailError, match="cannot be built: UnicodeEncodeError"):
        mailer.send("chef@example.com", "Low stock", "bad\ud800x\n", "<kitchen-1@kitchen.local>")
    assert not (tmp_path / "out").exists()
