"""The morning digest: one email per merchant per local day, at its `digest_hour`.

What is low, what runs out before its delivery could come, what to order, and what the
day before used, wasted, took in and refused. Each digest is a `Notification` row, unique
per merchant and local date (dedup_key `digest-YYYY-MM-DD`), inserted with ON CONFLICT
DO NOTHING: however many notification processes run the job at the same instant, and
however often they restart, one row is made, and the Sender claims it before its send,
as it does an alert mail. So a day is mailed once.

Days are local: the digest of a day is due at `digest_hour` on that day's clock in the
merchant's time zone (`instant`). Across a daylight-saving change a day still has one
such instant: an hour that does not exist (02:00 when clocks spring forward) is taken
as the hour after the gap, an hour that happens twice as its first time. A day whose
instant passed while no process ran is recorded when one comes back (up to `MISSED_DAYS`
back, never before the hour was set) and says that it is late.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from kitchen import admin, domain, inventory, usage
from kitchen.db import session, transaction
from kitchen.domain import amount_text
from kitchen.errors import NotFound
from kitchen.forecast import DAY, local_day
from kitchen.mail import Mailer
from kitchen.models import (
    Ingredient,
    LedgerEntry,
    Merchant,
    Notification,
    Order,
    Product,
    database_id,
)
from kitchen.notifications import send_one
from kitchen.views import iso

log = logging.getLogger(__name__)

EVERY = 60.0  # seconds between two looks for due digests (the notification role's job)
MISSED_DAYS = 7  # a digest missed longer ago than this is not worth sending
LATE = datetime.timedelta(hours=1)  # recorded later than this after its instant: "late"


def key(day: datetime.date) -> str:
    return f"digest-{day.isoformat()}"


def _naive(at: datetime.datetime) -> datetime.datetime:
    return at.astimezone(datetime.UTC).replace(tzinfo=None)


def instant(merchant: Merchant, day: datetime.date) -> datetime.datetime:
    """When the digest of local `day` is due, naive UTC. zoneinfo reads a local time in
    a spring-forward gap with the offset before it (02:00 is 03:00 summer time) and the
    repeated hour of a fall-back as its first time (fold=0): one instant a day."""
    zone = ZoneInfo(merchant.timezone)
    local = datetime.datetime.combine(day, datetime.time(merchant.digest_hour or 0), zone)
    return _naive(local)


def due(merchant: Merchant, now: datetime.datetime) -> list[datetime.date]:
    """The local days whose digest is due at `now` (aware) and not yet recorded, oldest
    first: instant at or before now, not before `digest_since`, within MISSED_DAYS."""
    if merchant.digest_hour is None:
        return []
    at = _naive(now)
    today = now.astimezone(ZoneInfo(merchant.timezone)).date()
    since = max(merchant.digest_since or at, at - MISSED_DAYS * DAY)
    days = [
        d
        for d in (today - back * DAY for back in range(MISSED_DAYS, -1, -1))
        if since <= instant(merchant, d) <= at
    ]
    if not days:
        return []
    recorded = {
        n.dedup_key
        for n in Notification.select(Notification.dedup_key).where(
            Notification.merchant == merchant.id,
            Notification.dedup_key.in_([key(d) for d in days]),
        )
    }
    return [d for d in days if key(d) not in recorded]


def _day_words(day: datetime.date) -> str:
    # "Monday 30 November": the C locale's English names (Kitchen never sets a locale).
    return f"{day:%A} {day.day} {day:%B}"


def compose(
    merchant: Merchant,
    day: datetime.date,
    now: datetime.datetime,
    late: bool,
    rules: inventory.AlertRules,
) -> tuple[str, str]:
    """Subject and body of the digest of local `day`, as the database stands at `now`
    (aware): call in a transaction."""
    zone = ZoneInfo(merchant.timezone)
    rows = list(
        Ingredient.select()
        .where(Ingredient.merchant == merchant.id)
        .order_by(Ingredient.name, Ingredient.id)
    )
    ahead = usage.forecasts(merchant, rows, now, rules.forecast)
    subject = f"Kitchen digest for {_day_words(day)}" + (" (late)" if late else "")
    lines = [f"Good morning, {merchant.name}. Your kitchen on {_day_words(day)} {day.year}."]
    if late:
        due_at = datetime.datetime.combine(day, datetime.time(merchant.digest_hour or 0))
        lines.append(
            f"This digest was due at {due_at:%H:%M} ({merchant.timezone}) and comes late: "
            "Kitchen was not sending mail then. Stock and forecasts are as of now."
        )

    def amount(i: Ingredient, value: int) -> str:
        return amount_text(value, i.unit, scaled=True)  # "1.5 kg": a person reads it

    low = [
        i
        for i in rows
        if domain.is_below(
            i.stock, i.full_stock, inventory.threshold_of(i, merchant, rules.default_threshold)
        )
    ]
    lines += ["", "Low stock:"]
    lines += [f"- {i.name}: {amount(i, i.stock)} of {amount(i, i.full_stock)}" for i in low]
    if not low:
        lines.append("- nothing is low")

    short = []
    for i in rows:
        f = ahead[i.id]
        if f.days_left is None or f.runs_out_at is None or f.days_left >= i.lead_time_days:
            continue
        when = f.runs_out_at.astimezone(zone)
        short.append(
            f"- {i.name}: lasts about {float(f.days_left):.1f} days (runs out {when:%A %H:%M}); "
            f"a delivery takes {i.lead_time_days} days"
        )
    lines += ["", "Runs out before a delivery could come:", *(short or ["- nothing"])]

    orders = []
    for i in rows:
        suggested = ahead[i.id].suggested_order
        if suggested <= 0:
            continue
        packs = f" ({suggested // i.pack_size} x {amount(i, i.pack_size)})" if i.pack_size else ""
        orders.append(f"- {i.name}: {amount(i, suggested)}{packs}")
    lines += ["", "Suggested orders:", *(orders or ["- nothing to order"])]

    yesterday = day - DAY
    start, end = local_day(yesterday, zone)
    sums = usage.totals(merchant.id, start, end)
    lines += ["", f"{_day_words(yesterday)}:"]
    moved = []
    for i in rows:
        s = sums.get(i.id, {})
        used = -sum(s.get(r, 0) for r in usage.USE)
        wasted, restocked = -s.get(LedgerEntry.WASTE, 0), s.get(LedgerEntry.RESTOCK, 0)
        if used or wasted or restocked:
            moved.append(
                f"- {i.name}: used {amount(i, used)}, wasted {amount(i, wasted)}, "
                f"restocked {amount(i, restocked)}"
            )
    lines += moved or ["- no stock moved"]
    # What sold, per product (an order of two products is in both: so no order count).
    sold = usage.sales(merchant.id, start, end)
    names: dict[int, str] = {
        p.id: p.name
        for p in Product.select(Product.id, Product.name).where(
            Product.merchant == merchant.id, Product.id.in_(list(sold))
        )
    }
    sales = sorted((names.get(p, f"product {p}"), q) for p, (_, q) in sold.items())
    lines.append("Sold: " + (", ".join(f"{name} {q}" for name, q in sales) or "nothing"))
    rejected = (
        Order.select()
        .where(
            Order.merchant == merchant.id,
            Order.status == Order.REJECTED,
            Order.processed_at >= start,
            Order.processed_at < end,
        )
        .count()
    )
    lines.append(f"Orders rejected: {rejected}.")
    return subject, "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Recorded:
    """A digest's row, and whether this call made it (False: it was there already)."""

    row: Notification
    new: bool


def record(
    merchant: Merchant, day: datetime.date, now: datetime.datetime, rules: inventory.AlertRules
) -> Recorded:
    """The digest of local `day`: one Notification row per merchant and day, made now
    unless it exists (then nothing changes). Late when made more than an hour after its
    instant."""
    with transaction():
        # Without a digest hour (`digest send` for one who has none) nothing is late.
        late = merchant.digest_hour is not None and _naive(now) - instant(merchant, day) > LATE
        subject, body = compose(merchant, day, now, late, rules)
        dedup = key(day)
        made = (
            Notification.insert(
                merchant=merchant.id,
                dedup_key=dedup,
                alert=None,
                ingredient_id=None,
                email=merchant.alert_email,
                subject=subject,
                body=body,
                message_id=f"<kitchen-{database_id()}-digest-{merchant.id}-{day}@kitchen.local>",
            )
            .on_conflict_ignore()
            .as_rowcount()
            .execute()
        )
        row = Notification.get(
            Notification.merchant == merchant.id, Notification.dedup_key == dedup
        )
    if made:
        log.info(
            "digest of %s recorded%s",
            day,
            " (late)" if late else "",
            extra={"merchant_id": merchant.id},
        )
    return Recorded(row, bool(made))


def record_due(now: datetime.datetime, rules: inventory.AlertRules) -> int:
    """Record every digest due at `now` (aware) for every merchant with a digest hour;
    returns how many rows this call made."""
    with session():
        merchants = list(Merchant.select().where(Merchant.digest_hour.is_null(False)))
    made = 0
    for merchant in merchants:
        try:
            with session():
                days = due(merchant, now)
            for day in days:
                made += record(merchant, day, now, rules).new
        except Exception:  # one merchant's trouble must not keep the others' digests back
            log.exception(
                "digest of merchant %d failed; trying again at the next look", merchant.id
            )
    return made


def job(
    rules: inventory.AlertRules,
    wake: Callable[[], None],
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
) -> Callable[[], None]:
    """The notification role's job: record what is due, then wake the Sender to mail it."""

    def run() -> None:
        if record_due(clock(), rules):
            wake()

    return run


@dataclass(frozen=True)
class Sent:
    """What `send` did: the day, and the row's sent time (None: the mail failed)."""

    day: datetime.date
    sent_now: bool
    row: Notification


def send(
    merchant_id: int,
    day: datetime.date | None,
    now: datetime.datetime,
    mailer: Mailer,
    claim_seconds: int,
    rules: inventory.AlertRules,
) -> Sent:
    """`digest send`: record the digest of `day` (default: the merchant's local today)
    as the job would, and mail it now unless it was mailed already (or is being sent by
    another sender). A day after the local today is refused (ValueError)."""
    with session():
        merchant = Merchant.get_or_none(Merchant.id == merchant_id)
    if merchant is None:
        raise NotFound("merchant", merchant_id)
    today = now.astimezone(ZoneInfo(merchant.timezone)).date()
    day = day or today
    if day > today:
        raise ValueError(f"{day} has not begun in {merchant.timezone} yet (today is {today})")
    recorded = record(merchant, day, now, rules)
    sent_now = send_one(mailer, merchant.id, recorded.row.id, claim_seconds)
    with session():
        row = Notification.get(
            Notification.merchant == merchant.id, Notification.id == recorded.row.id
        )
    return Sent(day, sent_now, row)


def add_command(commands: argparse._SubParsersAction) -> None:
    """`python app.py digest send MERCHANT [--date YYYY-MM-DD]`."""
    digest = commands.add_parser("digest", help="send a merchant's morning digest now")
    actions = digest.add_subparsers(dest="action", required=True)
    send_now = actions.add_parser(
        "send", help="record a day's digest (as the notification role would) and mail it now"
    )
    send_now.add_argument("merchant", metavar="MERCHANT", help="merchant id")
    send_now.add_argument(
        "--date", help="the local day, YYYY-MM-DD (default: today in the merchant's time zone)"
    )


def run_command(
    args: argparse.Namespace, mailer: Mailer, claim_seconds: int, rules: inventory.AlertRules
) -> int:
    """`digest send`: one line on stdout (0), or one on stderr: 2 for a wrong argument or
    an unknown merchant, 1 when the mail failed (the notification role retries it)."""
    try:
        ident = admin.merchant_id(args.merchant)
        day = None
        if args.date is not None:
            try:
                day = datetime.date.fromisoformat(args.date)
            except ValueError:
                raise admin.Usage(
                    f"--date must be a date, YYYY-MM-DD, not {admin.shown(args.date)!r}"
                ) from None
        now = datetime.datetime.now(datetime.UTC)
        try:
            done = send(ident, day, now, mailer, claim_seconds, rules)
        except ValueError as exc:
            raise admin.Usage(f"--date: {exc}") from None
    except (admin.Usage, NotFound) as exc:
        print(f"digest send: {admin.shown(str(exc))}", file=sys.stderr)
        return 2
    row, what = done.row, f"digest of {done.day} for merchant {ident}"
    if done.sent_now:
        print(f"{what} sent to {admin.shown(row.email)}: {admin.shown(row.subject)}")
        return 0
    if row.sent_at is not None:
        print(f"{what} was sent already, at {iso(row.sent_at)}: nothing sent now")
        return 0
    if row.failed_at is None and row.last_error is None:
        print(f"{what} is being sent by another process: nothing sent now")
        return 0
    error = admin.shown(str(row.last_error))
    then = "it is not tried again" if row.failed_at is not None else "the role retries it"
    print(f"digest send: {what} is recorded but its mail failed ({error}); {then}", file=sys.stderr)
    return 1
