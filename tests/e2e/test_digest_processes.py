"""The morning digest as pods run it: `python app.py --roles notification` processes on
one database, each looking for due digests at its start and every minute. However many
run, and whichever dies (SIGKILL) and comes back, each merchant's day is mailed once."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitchen.db import session, utcnow
from kitchen.models import Merchant, Notification
from tests.helpers import SmtpServer, eventually

ROOT = Path(__file__).resolve().parents[2]


def due_now(name: str) -> int:
    """A merchant whose digest hour (UTC) is the current one, set two hours ago: today's
    digest is due, and not late."""
    now = utcnow()
    with session():
        merchant = Merchant.create(
            name=name,
            alert_email=f"{name}@example.com",
            digest_hour=now.hour,
            digest_since=now - datetime.timedelta(hours=2),
        )
    return int(merchant.id)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """The processes a test `start`s, killed at its end whatever happened."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def start(started: list[subprocess.Popen[str]], url: str, smtp: SmtpServer, cwd: Path) -> None:
    """One more `python app.py --roles notification` on the test's database and SMTP."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env.update(
        {
            "KITCHEN_DATABASE_URL": url,
            "KITCHEN_MAIL_SMTP_HOST": "127.0.0.1",
            "KITCHEN_MAIL_SMTP_PORT": str(smtp.port),
        }
    )
    started.append(
        subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--roles", "notification"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )


def test_two_processeses_and_a_killed_one_mail_each_day_once(
    clean_database: str,
    smtp: SmtpServer,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
) -> None:
    first = due_now("ada")
    start(processes, clean_database, smtp, tmp_path)
    start(processes, clean_database, smtp, tmp_path)
    eventually(lambda: len(smtp.messages) == 1, timeout=60)

    # One dies mid-day; another merchant's digest comes due; a new process starts.
    processes[0].send_signal(signal.SIGKILL)
    processes[0].wait(30)
    second = due_now("bo")
    start(processes, clean_database, smtp, tmp_path)
    eventually(lambda: len(smtp.messages) == 2, timeout=60)
    time.sleep(3)  # what a second sender would send meanwhile (the jobs run at start)

    today = utcnow().date()
    assert sorted(m["To"] for m in smtp.messages) == ["ada@example.com", "bo@example.com"]
    with session():
        rows = Notification.select().where(Notification.dedup_key == f"digest-{today}")
        assert sorted((n.merchant_id, n.attempts, n.sent_at is not None) for n in rows) == [
            (first, 1, True),
            (second, 1, True),
        ]
    assert all(p.poll() is None for p in processes[1:])  # still running
