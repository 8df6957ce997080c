"""Notification role: turn NOTIFY events into exactly one email per alert.

The consumer only records: each NOTIFY becomes a `Notification` row (unique per alert),
then the batch's offsets are committed. A redelivered NOTIFY finds its row and adds
nothing. Mail goes out from the role's sender thread (`Sender`), never the consumer's:
SMTP can take 30 s a mail, and a consumer that stops polling that long
(max.poll.interval.ms) is thrown out of its group and reads the batch again. The handler
wakes the sender as soon as rows are recorded; it also looks for due rows every
`mail_retry_seconds`. Each row is claimed just before its send, so two senders (in one
process or several) never mail the same alert. A mail that fails stays due and is
retried with back-off, unless it can never be sent (an invalid address, a message that
cannot be built, a permanent 5xx answer): then it is marked failed, for good. Each mail
has a Message-ID derived from the alert, so the one resend a crash can cause (mail
accepted, row not yet marked) is the same message to the recipient.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from kitchen import forecast, logs, metrics
from kitchen.background import Background
from kitchen.db import session, transaction, utcnow
from kitchen.domain import amount_text
from kitchen.events import Handler, Notify, Received
from kitchen.inventory import threshold_of
from kitchen.mail import Mailer, PermanentMailError, SmtpMailer
from kitchen.models import Alert, Ingredient, Merchant, Notification, database_id

log = logging.getLogger(__name__)


def compose(
    ingredient: str,
    stock: int,
    full_stock: int,
    threshold: Fraction,
    unit: str = "g",
    ahead: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """Subject and body of a low-stock alert, its amounts in the ingredient's `unit`;
    with `ahead`, the forecast stored on the alert when it was raised (`Alert.forecast`),
    how long the stock lasts and what to order."""
    percent = f"{float(threshold) * 100:g}%"
    level = amount_text(full_stock * threshold, unit)
    left, par = amount_text(stock, unit), amount_text(full_stock, unit)
    subject = f"Low stock: {ingredient} is below {percent} ({left} left)"
    body = (
        f"{ingredient} is down to {left} of its par level of {par}, below the alert "
        f"threshold of {percent} ({level}).\n\n"
        f"Restock {ingredient} to re-arm this alert; until then Kitchen sends no other "
        f"alert for it.\n"
    )
    lasts = None if ahead is None else forecast_text(ingredient, ahead, unit)
    if lasts is not None:
        body += f"\n{lasts}\n"
    return subject, body


def forecast_text(ingredient: str, ahead: Mapping[str, Any], unit: str) -> str | None:
    """ "At this week's pace onion runs out in about 1.5 days (Thursday 14:00). Suggested
    order: 1000 g.", from an alert's stored forecast (the time in the merchant's zone as
    it was then); none when nothing was used, so that nothing can be said."""
    days = ahead.get("days_left")
    if days is None:
        return None
    pace = (
        "At the usual pace for each weekday"
        if ahead.get("method") == forecast.WEEKDAY
        else "At this week's pace"
    )
    if ahead.get("stock", 1) <= 0:
        text = f"{ingredient} has run out."
    else:
        span = "within about an hour" if days == 0 else f"in about {days:g} day"
        span += "s" if days not in (0, 1) else ""
        when = _local_time(ahead.get("runs_out_at"), ahead.get("timezone", "UTC"), days)
        text = f"{pace} {ingredient} runs out {span}{when}."
    order = ahead.get("suggested_order") or 0
    if order > 0:
        text += f" Suggested order: {amount_text(order, unit, scaled=True)}."
    return text


def _local_time(at: str | None, zone: str, days: float) -> str:
    """ " (Thursday 14:00)" in the merchant's zone; a week or more ahead, with the date
    (" (Thursday 10 December 14:00)"), which the weekday alone would not tell."""
    if at is None:
        return ""
    instant = datetime.datetime.strptime(at, "%Y-%m-%dT%H:%MZ").replace(tzinfo=datetime.UTC)
    local = instant.astimezone(forecast.zone(zone))
    if days < 6:
        return f" ({local:%A %H:%M})"
    return f" ({local:%A} {local.day} {local:%B %H:%M})"


def record(
    batch: list[Received[Notify]], threshold: Fraction
) -> list[tuple[Received[Notify], str]]:
    """Store one Notification per alert in the batch; return the events that are unusable."""
    rejected: list[tuple[Received[Notify], str]] = []
    with transaction():
        # In every Message-ID: alert ids start at 1 again in a new database, and a mail
        # client may hide a new alert whose Message-ID it has seen as a duplicate.
        db_id = database_id()
        for r in batch:
            notify = r.event
            ingredient = Ingredient.get_or_none(Ingredient.id == notify.ingredient_id)
            if ingredient is None:
                rejected.append((r, f"unknown ingredient {notify.ingredient_id}"))
                continue
            # The address comes from the database, never from the event: whoever can
            # write to the topic must not choose where Kitchen sends mail.
            if notify.alert_id is None:
                # A producer that speaks only the bare contract: the merchant owning the
                # ingredient is told, and the event's position in Kafka is what makes a
                # redelivery recognisable.
                key = r.source
                merchant = Merchant.get_by_id(ingredient.merchant_id)
                to = merchant.alert_email
                stock = ingredient.stock if notify.stock is None else notify.stock
                full = ingredient.full_stock if notify.full_stock is None else notify.full_stock
                line = threshold_of(ingredient, merchant, threshold)
                subject, body = compose(ingredient.name, stock, full, line, ingredient.unit)
            else:
                # Looked up in the ingredient's merchant's partition: an alert of another
                # merchant is as unknown as one that does not exist.
                alert = Alert.get_or_none(
                    Alert.merchant == ingredient.merchant_id, Alert.id == notify.alert_id
                )
                if alert is None:
                    rejected.append((r, f"unknown alert {notify.alert_id}"))
                    continue
                if alert.ingredient_id != ingredient.id:
                    rejected.append(
                        (r, f"alert {alert.id} is not about ingredient {ingredient.id}")
                    )
                    continue
                key, to = f"alert-{alert.id}", alert.email
                subject, body = compose(
                    ingredient.name,
                    alert.stock,
                    alert.full_stock,
                    Fraction(alert.threshold),
                    ingredient.unit,
                    json.loads(alert.forecast) if alert.forecast else None,
                )
            Notification.insert(
                merchant=ingredient.merchant_id,
                dedup_key=key,
                alert=notify.alert_id,
                ingredient_id=notify.ingredient_id,
                email=to,
                subject=subject,
                body=body,
                message_id=f"<kitchen-{db_id}-{key}@kitchen.local>",
            ).on_conflict_ignore().execute()
    return rejected


def backoff(attempts: int) -> datetime.timedelta:
    return datetime.timedelta(seconds=min(300, 2**attempts))


def _claim(merchant_id: int, row_id: int, claim_seconds: int) -> Notification | None:
    """Take one due mail for `claim_seconds` from now, unless another sender has it."""
    now = utcnow()  # now, not when the batch began: a claim must start with its send
    claimed = (
        Notification.update(
            claimed_until=now + datetime.timedelta(seconds=claim_seconds),
            attempts=Notification.attempts + 1,
        )
        .where(
            Notification.merchant == merchant_id,
            Notification.id == row_id,
            Notification.sent_at.is_null(),
            Notification.failed_at.is_null(),
            Notification.next_attempt_at <= now,
            Notification.claimed_until.is_null() | (Notification.claimed_until < now),
        )
        .execute()
    )
    if not claimed:
        return None
    return Notification.get(Notification.merchant == merchant_id, Notification.id == row_id)


def send_due(
    mailer: Mailer, claim_seconds: int, limit: int = 50, stop: threading.Event | None = None
) -> int:
    """Mail the due notifications; returns how many were sent.

    Each row is claimed just before its send, for `claim_seconds`: longer than one send
    can take (the mailer cuts a send at its deadline), however long the sends before it
    took. A sender that died mid-send (SIGKILL) holds its row that long, then another
    sender takes it. The due mails are one queue across merchants (few rows: the index
    of unsent mails in each partition); each mail is then claimed in its own merchant's.
    Once `stop` is set, no other mail is begun.
    """
    with session():
        due = [
            (n.merchant_id, n.id)
            for n in Notification.select(Notification.merchant, Notification.id)
            .where(
                Notification.sent_at.is_null(),
                Notification.failed_at.is_null(),
                Notification.next_attempt_at <= utcnow(),
                Notification.claimed_until.is_null() | (Notification.claimed_until < utcnow()),
            )
            .order_by(Notification.id)
            .limit(limit)
        ]
        sent = 0
        for merchant_id, row_id in due:
            if stop is not None and stop.is_set():
                break  # the rest stay due, for the next sender
            n = _claim(merchant_id, row_id, claim_seconds)
            if n is None:
                continue  # another sender has it, or has sent it
            if _send(mailer, n):
                sent += 1
    return sent


def _send(mailer: Mailer, n: Notification) -> bool:
    """Mail one claimed notification and record how it went; whether it was sent."""
    ids = {"alert_id": n.alert_id} if n.alert_id is not None else {}
    smtp = isinstance(mailer, SmtpMailer)  # a FolderMailer's file is no SMTP exchange
    started = time.perf_counter()
    try:
        mailer.send(n.email, n.subject, n.body, n.message_id)
    except PermanentMailError as exc:
        if smtp:
            metrics.smtp_send("failed", time.perf_counter() - started)
        metrics.email("failed")
        log.error("mail %s to %r failed for good: %s", n.dedup_key, n.email, exc, extra=ids)
        Notification.update(claimed_until=None, failed_at=utcnow(), last_error=str(exc)).where(
            Notification.merchant == n.merchant_id, Notification.id == n.id
        ).execute()
        return False
    except Exception as exc:
        if smtp:
            metrics.smtp_send("retried", time.perf_counter() - started)
        metrics.email("retried")
        log.warning(
            "mail %s failed (attempt %d): %s",
            n.dedup_key,
            n.attempts,
            exc,
            extra=ids,
        )
        Notification.update(
            claimed_until=None,
            last_error=f"{type(exc).__name__}: {exc}",
            next_attempt_at=utcnow() + backoff(n.attempts),
        ).where(Notification.merchant == n.merchant_id, Notification.id == n.id).execute()
        return False
    if smtp:
        metrics.smtp_send("sent", time.perf_counter() - started)
    Notification.update(sent_at=utcnow(), claimed_until=None, last_error=None).where(
        Notification.merchant == n.merchant_id, Notification.id == n.id
    ).execute()
    metrics.email("sent")
    log.info("mail %s sent to %s", n.dedup_key, n.email, extra=ids)
    return True


def send_one(mailer: Mailer, merchant_id: int, row_id: int, claim_seconds: int) -> bool:
    """Mail one notification now, if it is due and no sender has it (as `send_due`
    would: claimed first); whether it was sent now."""
    with session():
        n = _claim(merchant_id, row_id, claim_seconds)
        return n is not None and _send(mailer, n)


class Sender(Background):
    """The notification role's mail thread: sends due mails when woken (rows were just
    recorded) and every `every` seconds (mails waiting for their retry), until stopped.

    Nothing it meets stops it: an error (the database away) is logged, and it tries again
    at its next round.
    """

    BATCH = 50  # mails claimed one by one from each look at the due rows

    def __init__(self, mailer: Mailer, claim_seconds: int, every: float) -> None:
        super().__init__("notification-mail")
        self.mailer = mailer
        self.claim_seconds = claim_seconds
        self.every = every

    def _run(self) -> None:
        with logs.role("notification"):
            while not self._stop.is_set():
                self._wake.clear()  # before looking: a wake during the sends is kept
                sent = 0
                try:
                    sent = send_due(self.mailer, self.claim_seconds, self.BATCH, self._stop)
                except Exception:
                    log.exception("sending alert mails failed; trying again in %g s", self.every)
                if sent < self.BATCH:  # a full batch: more may be due at once
                    self._wake.wait(self.every)


def notify_handler(threshold: Fraction, wake: Callable[[], None]) -> Handler[Notify]:
    """Consumer handler: record the batch, then wake the sender and return, so that the
    worker commits the offsets at once, whatever SMTP does. A crash after the record
    leaves due rows, which the sender mails after the restart."""

    def handler(batch: list[Received[Notify]]) -> list[tuple[Received[Notify], str]]:
        rejected = record(batch, threshold)
        wake()
        return rejected

    return handler
