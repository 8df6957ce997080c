"""The morning digest: its content, once per merchant per local day whoever sends it,
missed days sent late, daylight-saving days, and `app.py digest send`.

The job takes `now`: the tests drive it through chosen instants (hour by hour across a
daylight-saving change), never by sleeping. Mail goes through a real SMTP server."""

from __future__ import annotations

import datetime
import os
import sys
import threading
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

import app
from app import Kitchen
from kitchen import digest, usage
from kitchen import settings as config
from kitchen.db import session, transaction, utcnow
from kitchen.mail import SmtpMailer
from kitchen.models import Ingredient, LedgerEntry, Merchant, Notification, Order
from kitchen.notifications import send_due
from tests.helpers import Seeded, SmtpServer, eventually, history, hours_back, run_to_end

ROOT = Path(__file__).resolve().parents[2]
PARIS = ZoneInfo("Europe/Paris")
UTC = datetime.UTC


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime.datetime:
    """A local time in Paris, as the aware UTC instant the job is given."""
    return datetime.datetime(year, month, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def merchant(merchant_id: int) -> Merchant:
    with session():
        return Merchant.get_by_id(merchant_id)


def digest_rows() -> list[Notification]:
    with session():
        query = Notification.select().where(Notification.dedup_key.startswith("digest-"))
        return list(query.order_by(Notification.id))


def text_of(mail: Message) -> str:
    """The mail's text as its reader sees it (yagmail sends a multipart message)."""
    [part] = [p for p in mail.walk() if p.get_content_type() == "text/plain"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    # (Its last line end is the mailer's to keep or drop.)
    return payload.decode(part.get_content_charset() or "utf-8").rstrip("\n") + "\n"


# An instant before every day these tests choose: where the role's own job stands.
HELD = datetime.datetime(2000, 1, 1, tzinfo=UTC)


def hold_role_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The notification role runs the digest job on the real clock (at its start, then
    every minute), and would owe the real last week to a merchant whose digest began on a
    test's day, mailing it in the middle of the test. These tests run the job at the
    instants they choose: the role's own runs see `HELD`, before any digest began."""
    job = digest.job

    def held(
        rules: Any, wake: Callable[[], None], clock: Callable[[], datetime.datetime] = lambda: HELD
    ) -> Callable[[], None]:
        return job(rules, wake, clock)

    monkeypatch.setattr(digest, "job", held)


@pytest.fixture
def kitchen(make_kitchen: Callable[..., Kitchen], monkeypatch: pytest.MonkeyPatch) -> Kitchen:
    """The `api` fixture's all-roles Kitchen, its role's digest job held (above)."""
    hold_role_clock(monkeypatch)
    return make_kitchen()


def set_digest(
    api: TestClient, hour: int, zone: str = "Europe/Paris", since: datetime.datetime | None = None
) -> int:
    """Give the caller a digest hour through PATCH /merchant; `since`: when the hour was
    set, as if long ago (the tests' days are in the past of the real clock)."""
    r = api.patch("/merchant", json={"digest_hour": hour, "timezone": zone})
    assert r.status_code == 200, r.text
    merchant_id: int = r.json()["id"]
    if since is not None:
        with session():
            Merchant.update(digest_since=since.replace(tzinfo=None)).where(
                Merchant.id == merchant_id
            ).execute()
    return merchant_id


def mail_digests(test_settings: config.Settings, now: datetime.datetime) -> int:
    """What the notification role does each minute: record what is due, mail it."""
    made = digest.record_due(now, app.digest_rules(test_settings))
    send_due(SmtpMailer(test_settings.mail), test_settings.mail.claim_seconds)
    return made


# -- PATCH /merchant -------------------------------------------------------------------


def test_a_merchant_sets_its_digest_hour_and_time_zone(api: TestClient) -> None:
    before = api.get("/merchant").json()
    assert (before["digest_hour"], before["timezone"]) == (None, "UTC")

    r = api.patch("/merchant", json={"digest_hour": 7, "timezone": "Europe/Paris"})
    assert r.status_code == 200, r.text
    assert (r.json()["digest_hour"], r.json()["timezone"]) == (7, "Europe/Paris")
    got = api.get("/merchant").json()
    assert (got["digest_hour"], got["timezone"]) == (7, "Europe/Paris")
    since = merchant(got["id"]).digest_since
    assert since is not None and utcnow() - since < datetime.timedelta(minutes=1)

    # Another hour keeps when the digest began; null stops it, and forgets that.
    assert api.patch("/merchant", json={"digest_hour": 0}).json()["digest_hour"] == 0
    assert merchant(got["id"]).digest_since == since
    r = api.patch("/merchant", json={"digest_hour": None})
    assert (r.json()["digest_hour"], r.json()["timezone"]) == (None, "Europe/Paris")
    assert merchant(got["id"]).digest_since is None


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "must be an IANA time zone name"),
        ({"timezone": "europe/paris"}, "timezone", "must be an IANA time zone name"),
        ({"timezone": "../../etc/passwd"}, "timezone", "must be an IANA time zone name"),
        ({"timezone": "/usr/share/zoneinfo/UTC"}, "timezone", "must be an IANA time zone name"),
        ({"timezone": "Europe"}, "timezone", "must be an IANA time zone name"),
        ({"timezone": ""}, "timezone", "must be an IANA time zone name"),
        ({"timezone": 1}, "timezone", "must be an IANA time zone name"),
        ({"digest_hour": 24}, "digest_hour", "must be an hour from 0 to 23, or null for none"),
        ({"digest_hour": -1}, "digest_hour", "must be an hour from 0 to 23, or null for none"),
        ({"digest_hour": "7"}, "digest_hour", "must be an hour from 0 to 23, or null for none"),
        ({"digest_hour": 7.0}, "digest_hour", "must be an hour from 0 to 23, or null for none"),
        ({"digest_hour": True}, "digest_hour", "must be an hour from 0 to 23, or null for none"),
    ],
)
def test_a_bad_digest_hour_or_time_zone_is_a_422_naming_it(
    api: TestClient, body: dict[str, object], field: str, message: str
) -> None:
    r = api.patch("/merchant", json={"name": "Renamed", **body})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    [error] = r.json()["errors"]
    assert error["field"] == field
    assert error["message"].startswith(message)
    # Nothing of the change applied, the name neither.
    got = api.get("/merchant").json()
    assert (got["name"], got["digest_hour"], got["timezone"]) == ("default", None, "UTC")


# -- content ---------------------------------------------------------------------------


def test_the_digest_says_what_is_low_runs_out_what_to_order_and_yesterday(
    api: TestClient, seeded: Seeded, smtp: SmtpServer, test_settings: config.Settings
) -> None:
    """Monday 30 November 2026, 07:00 in Paris (06:00 UTC). Onion (1 kg par, sold in
    500 g bags) was used 10 g an hour for the three days before: 240 g a day. Sunday
    (local) it also had 30 g wasted and a 500 g delivery; two orders were refused."""
    now = paris(2026, 11, 30, 7)
    merchant_id = set_digest(api, 7, since=paris(2026, 11, 30, 6))
    assert api.patch(f"/ingredients/{seeded.onion}", json={"pack_size": 500}).status_code == 200
    history(seeded.onion, hours_back(now, 72, lambda hour: 10))
    sunday_noon = datetime.datetime(2026, 11, 29, 11)  # naive UTC: 12:00 in Paris
    history(seeded.onion, {sunday_noon: 30}, LedgerEntry.WASTE)
    history(seeded.onion, {sunday_noon: -500}, LedgerEntry.RESTOCK)
    # Cheese is down to 1 kg of 5: low, unused, so it never runs out.
    history(seeded.cheese, {datetime.datetime(2026, 11, 1, 9): 4000}, LedgerEntry.WASTE)
    with transaction():  # three orders of 4 burgers applied on Sunday, as processing counts them
        usage.count_sales(merchant_id, [(1, seeded.burger, 2), (2, seeded.burger, 1)], sunday_noon)
        usage.count_sales(merchant_id, [(3, seeded.burger, 1)], datetime.datetime(2026, 11, 29, 22))
    with session():
        for at in (sunday_noon, datetime.datetime(2026, 11, 29, 22, 59)):  # 23:59 in Paris
            Order.create(merchant=merchant_id, status=Order.REJECTED, processed_at=at)
        # Saturday's last minute and Monday's first are another day's.
        for at in (datetime.datetime(2026, 11, 28, 22, 59), datetime.datetime(2026, 11, 29, 23)):
            Order.create(merchant=merchant_id, status=Order.REJECTED, processed_at=at)

    assert mail_digests(test_settings, now) == 1

    [mail] = smtp.messages
    assert mail["To"] == "merchant@example.com"
    assert mail["Subject"] == "Kitchen digest for Monday 30 November"
    assert mail["Message-ID"].startswith("<kitchen-")
    assert mail["Message-ID"].endswith(f"-digest-{merchant_id}-2026-11-30@kitchen.local>")
    text = text_of(mail)
    print(f"Subject: {mail['Subject']}\n\n{text}")  # the README shows it
    # Onion: 1000 - 720 used - 30 wasted + 500 = 750 g, at 240 g a day 3.1 days: it lasts
    # past its 2-day delivery; by then 480 g more are gone: 730 g bring it to its par
    # level, two 500 g bags. Cheese needs 4 kg: no pack size, so exactly that.
    assert text == (
        "Good morning, default. Your kitchen on Monday 30 November 2026.\n"
        "\n"
        "Low stock:\n"
        "- cheese: 1 kg of 5 kg\n"
        "\n"
        "Runs out before a delivery could come:\n"
        "- nothing\n"
        "\n"
        "Suggested orders:\n"
        "- cheese: 4 kg\n"
        "- onion: 1 kg (2 x 500 g)\n"
        "\n"
        "Sunday 29 November:\n"
        "- onion: used 240 g, wasted 30 g, restocked 500 g\n"
        "Sold: Burger 4\n"
        "Orders rejected: 2.\n"
    )


def test_what_runs_out_before_its_delivery_is_named_with_its_local_time(
    api: TestClient, seeded: Seeded, smtp: SmtpServer, test_settings: config.Settings
) -> None:
    """Onion: 240 g a day left with 280 g lasts 1.2 days, to 11:00 on Tuesday in
    Paris, before a 2-day delivery."""
    now = paris(2026, 11, 30, 7)
    set_digest(api, 7, since=paris(2026, 11, 30, 6))
    history(seeded.onion, hours_back(now, 72, lambda hour: 10))
    with session():
        onion = Ingredient.get_by_id(seeded.onion)
    assert onion.stock == 280

    assert mail_digests(test_settings, now) == 1

    text = text_of(smtp.messages[0])
    assert (
        "Low stock:\n- onion: 280 g of 1 kg\n\n"
        "Runs out before a delivery could come:\n"
        "- onion: lasts about 1.2 days (runs out Tuesday 11:00); a delivery takes 2 days\n\n"
        "Suggested orders:\n- onion: 1.2 kg\n"
    ) in text


# -- once per merchant per local day ---------------------------------------------------


def test_each_day_is_mailed_once_by_two_notification_processes_and_after_a_restart(
    make_kitchen: Callable[..., Kitchen], smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two Kitchens with the notification role on one database run the digest job at the
    same instants, for two merchants; then one is restarted and runs it again."""
    hold_role_clock(monkeypatch)
    first, second = make_kitchen("notification"), make_kitchen("notification")
    with TestClient(first.web_app()) as api:
        chef = set_digest(api, 7, since=paris(2026, 11, 30, 6))
    with session():
        other = Merchant.create(
            name="Bo's",
            alert_email="bo@example.com",
            digest_hour=6,
            timezone="America/New_York",
            digest_since=datetime.datetime(2026, 11, 30),
        )

    def jobs(kitchens: list[Kitchen], now: datetime.datetime) -> None:
        """Each Kitchen's job at the same instant, in threads released together."""
        start = threading.Barrier(len(kitchens))
        failed: list[BaseException] = []

        def run(k: Kitchen) -> None:
            assert k.sender is not None
            start.wait()
            try:  # a job that loses the race must lose it quietly, not raise
                digest.job(app.digest_rules(k.settings), k.sender.wake, lambda: now)()
            except BaseException as exc:
                failed.append(exc)

        threads = [threading.Thread(target=run, args=(k,)) for k in kitchens]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert failed == []

    # Monday 30 November, every 20 minutes from 05:00 to 13:00 UTC: Paris's digest is
    # due at 06:00 UTC, New York's at 11:00 UTC.
    instants = [
        datetime.datetime(2026, 11, 30, 5, tzinfo=UTC) + n * datetime.timedelta(minutes=20)
        for n in range(25)
    ]
    for now in instants[:12]:
        jobs([first, second], now)
    eventually(lambda: len(smtp.messages) == 1)
    first.stop()  # a restart: the other keeps going, a new one starts
    third = make_kitchen("notification")
    for now in instants[12:]:
        jobs([second, third], now)
    eventually(lambda: len(smtp.messages) == 2)
    jobs([second, third], instants[-1])

    assert sorted((m["To"], m["Subject"]) for m in smtp.messages) == [
        ("bo@example.com", "Kitchen digest for Monday 30 November"),
        ("merchant@example.com", "Kitchen digest for Monday 30 November"),
    ]
    rows = digest_rows()
    assert sorted((r.merchant_id, r.dedup_key, r.attempts) for r in rows) == sorted(
        [(chef, "digest-2026-11-30", 1), (other.id, "digest-2026-11-30", 1)]
    )
    assert all(r.sent_at is not None for r in rows)
    assert len({m["Message-ID"] for m in smtp.messages}) == 2


def test_the_notification_role_runs_the_digest_job_every_minute(
    make_kitchen: Callable[..., Kitchen], smtp: SmtpServer
) -> None:
    """The job as Kitchen schedules it, on the real clock: a merchant whose hour (UTC)
    is the current one, set two hours ago, gets today's digest from the role's sender."""
    kitchen = make_kitchen("notification")
    now = datetime.datetime.now(UTC)
    with session():
        m = Merchant.create(
            name="Ada's",
            alert_email="ada@example.com",
            digest_hour=now.hour,
            digest_since=now.replace(tzinfo=None) - datetime.timedelta(hours=2),
        )
    assert kitchen.jobs is not None
    [job] = [j for j in kitchen.jobs.get_jobs() if j.trigger.interval.total_seconds() == 60]
    job.func()

    eventually(lambda: len(smtp.messages) == 1)
    today = now.date()
    assert smtp.messages[0]["Subject"] == f"Kitchen digest for {today:%A} {today.day} {today:%B}"
    assert smtp.messages[0]["To"] == "ada@example.com"
    [row] = digest_rows()
    assert (row.merchant_id, row.dedup_key) == (m.id, f"digest-{today}")


def test_one_merchants_trouble_keeps_no_other_digest_back(
    api: TestClient, smtp: SmtpServer, test_settings: config.Settings
) -> None:
    set_digest(api, 7, since=paris(2026, 11, 30, 6))
    with session():  # a zone this machine does not know (its tzdata is older, say)
        Merchant.create(
            name="Bo's",
            alert_email="bo@example.com",
            digest_hour=6,
            timezone="Mars/Olympus",
            digest_since=datetime.datetime(2026, 11, 1),
        )

    assert mail_digests(test_settings, paris(2026, 11, 30, 7)) == 1
    assert [m["To"] for m in smtp.messages] == ["merchant@example.com"]


def test_days_missed_while_down_are_sent_once_marked_late(
    api: TestClient, smtp: SmtpServer, test_settings: config.Settings
) -> None:
    """A digest at 07:00 in Paris, set on 27 November at 06:00. The job ran on Friday 27 at 07:00,
    then nothing ran until Sunday 29 at 07:20: Saturday's digest comes then, late, and
    Sunday's on time; a look a minute later, or another process's, sends nothing."""
    set_digest(api, 7, since=paris(2026, 11, 27, 6))
    assert mail_digests(test_settings, paris(2026, 11, 27, 7)) == 1
    assert mail_digests(test_settings, paris(2026, 11, 29, 7, 20)) == 2
    assert mail_digests(test_settings, paris(2026, 11, 29, 7, 21)) == 0
    assert mail_digests(test_settings, paris(2026, 11, 30, 6, 59)) == 0

    assert [m["Subject"] for m in smtp.messages] == [
        "Kitchen digest for Friday 27 November",
        "Kitchen digest for Saturday 28 November (late)",
        "Kitchen digest for Sunday 29 November",
    ]
    late = text_of(smtp.messages[1])
    assert late.startswith(
        "Good morning, default. Your kitchen on Saturday 28 November 2026.\n"
        "This digest was due at 07:00 (Europe/Paris) and comes late: Kitchen was not "
        "sending mail then. Stock and forecasts are as of now.\n"
    )
    on_time = text_of(smtp.messages[2])
    assert "late" not in on_time


def test_a_digest_is_owed_for_at_most_a_week_and_never_before_it_was_set(
    api: TestClient, smtp: SmtpServer, test_settings: config.Settings
) -> None:
    """Set on 1 November at 09:00 (after that day's 07:00), down from then until 20
    November at 08:00: the seven days before the 20th's are not owed, only the 14th's
    to the 20th's (instants within the last 7 days), the 20th's on time."""
    set_digest(api, 7, since=paris(2026, 11, 1, 9))
    assert mail_digests(test_settings, paris(2026, 11, 1, 10)) == 0  # its 07:00 was before
    assert mail_digests(test_settings, paris(2026, 11, 20, 7, 30)) == 7
    assert [m["Subject"].removeprefix("Kitchen digest for ") for m in smtp.messages] == [
        "Saturday 14 November (late)",
        "Sunday 15 November (late)",
        "Monday 16 November (late)",
        "Tuesday 17 November (late)",
        "Wednesday 18 November (late)",
        "Thursday 19 November (late)",
        "Friday 20 November",
    ]


# -- daylight saving -------------------------------------------------------------------


@pytest.mark.parametrize("hour", [2, 7])
@pytest.mark.parametrize(
    ("first", "changed"),
    [
        # Spring forward: 02:00 becomes 03:00; Sunday lasts 23 hours, 02:00 never shows.
        (datetime.date(2026, 3, 27), datetime.date(2026, 3, 29)),
        # Fall back: 03:00 becomes 02:00 again; Sunday lasts 25 hours, 02:00 shows twice.
        (datetime.date(2026, 10, 23), datetime.date(2026, 10, 25)),
    ],
)
def test_a_daylight_saving_change_neither_skips_nor_doubles_a_day(
    api: TestClient,
    smtp: SmtpServer,
    test_settings: config.Settings,
    hour: int,
    first: datetime.date,
    changed: datetime.date,
) -> None:
    """The job every hour (UTC) for four local days around the change: one digest a
    day, each at the first hour that reaches its local `hour` (02:00 on the day it does
    not exist: the first instant after the gap, 03:00 summer time), none late."""
    start = datetime.datetime.combine(first, datetime.time(), PARIS).astimezone(UTC)
    set_digest(api, hour, since=start)
    made: dict[datetime.datetime, int] = {}
    for n in range(4 * 24 + 1):
        now = start + n * datetime.timedelta(hours=1)
        if count := mail_digests(test_settings, now):
            made[now] = count

    days = [first + d * datetime.timedelta(days=1) for d in range(4)]
    assert [m["Subject"] for m in smtp.messages] == [
        f"Kitchen digest for {d:%A} {d.day} {d:%B}" for d in days
    ]
    local = {now.astimezone(PARIS).strftime("%a %H:%M %Z"): count for now, count in made.items()}
    expected_hour = {d: hour for d in days}
    if hour == 2 and changed.month == 3:
        expected_hour[changed] = 3  # 02:00 that day is 03:00 CEST
    assert local == {
        datetime.datetime.combine(d, datetime.time(h), PARIS).strftime("%a %H:%M %Z"): 1
        for d, h in expected_hour.items()
    }
    assert [r.dedup_key for r in digest_rows()] == [f"digest-{d}" for d in days]


# -- the CLI ---------------------------------------------------------------------------


@pytest.fixture
def cli(
    clean_database: str, smtp: SmtpServer, tmp_path: Path
) -> Iterator[Callable[..., CompletedProcess[str]]]:
    """`python app.py digest send ...` as an operator runs it, on this test's database
    and SMTP server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env.update(
        {
            "KITCHEN_DATABASE_URL": clean_database,
            "KITCHEN_MAIL_SMTP_HOST": "127.0.0.1",
            "KITCHEN_MAIL_SMTP_PORT": str(smtp.port),
        }
    )

    def run(*args: str) -> CompletedProcess[str]:
        return run_to_end(
            [sys.executable, str(ROOT / "app.py"), "digest", "send", *args], tmp_path, env
        )

    yield run


def test_digest_send_mails_one_now_and_never_twice(
    cli: Callable[..., CompletedProcess[str]], smtp: SmtpServer
) -> None:
    with session():
        m = Merchant.create(name="Ada's", alert_email="ada@example.com", timezone="Europe/Paris")
    today = datetime.datetime.now(PARIS).date()
    words = f"{today:%A} {today.day} {today:%B}"

    done = cli(str(m.id))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"digest of {today} for merchant {m.id} sent to ada@example.com: "
        f"Kitchen digest for {words}\n"
    )
    [mail] = smtp.messages
    assert (mail["To"], mail["Subject"]) == ("ada@example.com", f"Kitchen digest for {words}")

    again = cli(str(m.id), "--date", today.isoformat())
    assert again.returncode == 0
    assert again.stdout.startswith(f"digest of {today} for merchant {m.id} was sent already, at ")
    assert again.stdout.endswith("Z: nothing sent now\n")
    # An earlier day, asked for by support: sent (no digest hour, so not "late").
    earlier = today - datetime.timedelta(days=3)
    assert cli(str(m.id), "--date", earlier.isoformat()).returncode == 0
    assert [m["Subject"] for m in smtp.messages][1:] == [
        f"Kitchen digest for {earlier:%A} {earlier.day} {earlier:%B}"
    ]
    assert len(digest_rows()) == 2


def test_digest_send_says_when_the_mail_failed_and_leaves_it_to_the_role(
    cli: Callable[..., CompletedProcess[str]], smtp: SmtpServer
) -> None:
    with session():
        m = Merchant.create(name="Ada's", alert_email="ada@example.com")
    smtp.stop()  # nobody answers on its port

    done = cli(str(m.id))

    assert done.returncode == 1
    assert done.stdout == ""
    today = datetime.datetime.now(UTC).date()
    assert f"digest send: digest of {today} for merchant {m.id} is recorded but its mail " in (
        done.stderr
    )
    assert done.stderr.rstrip("\n").endswith("; the role retries it")
    [row] = digest_rows()
    assert (row.sent_at, row.failed_at, row.attempts) == (None, None, 1)
    assert "ConnectionRefusedError" in str(row.last_error)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["999"], "digest send: there is no merchant 999\n"),
        (["x1"], "digest send: MERCHANT must be a merchant id from 1 to"),
        (
            ["{m}", "--date", "2026-13-01"],
            "digest send: --date must be a date, YYYY-MM-DD, not '2026-13-01'",
        ),
        (
            ["{m}", "--date", "tomorrow"],
            "digest send: --date must be a date, YYYY-MM-DD, not 'tomorrow'",
        ),
        (
            ["{m}", "--date", "2999-01-01"],
            "digest send: --date: 2999-01-01 has not begun in UTC yet",
        ),
    ],
)
def test_digest_send_refuses_an_unknown_merchant_or_a_bad_date_in_one_line(
    cli: Callable[..., CompletedProcess[str]], smtp: SmtpServer, args: list[str], message: str
) -> None:
    with session():
        m = Merchant.create(name="Ada's", alert_email="ada@example.com")
    done = cli(*[a.format(m=m.id) for a in args])
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(message)
    assert done.stderr.count("\n") == 1
    assert smtp.messages == [] and digest_rows() == []
