"""Notification role: turn NOTIFY events into exactly one email per alert.

A NOTIFY is first recorded as a `Notification` row (unique per alert), then the batch's
offsets are committed, then due rows are mailed. A redelivered NOTIFY finds its row and
adds nothing; a mail that fails stays due and is retried with back-off. Each mail has a
Message-ID derived from the alert, so the one resend a crash can cause (mail accepted,
row not yet marked) is the same message to the recipient.
"""

from __future__ import annotations

import datetime
import json
import logging
from fractions import Fraction

from confluent_kafka import Message

from kitchen.db import Ingredient, Notification, session, transaction, utcnow
from kitchen.kafka import Handler
from kitchen.mail import Mailer

log = logging.getLogger(__name__)


def compose(ingredient: str, stock: int, full_stock: int, threshold: Fraction) -> tuple[str, str]:
    """Subject and body of a low-stock alert."""
    percent = f"{float(threshold) * 100:g}%"
    level = full_stock * threshold
    subject = f"Low stock: {ingredient} is below {percent} ({stock} g left)"
    body = (
        f"{ingredient} is down to {stock} g of its full {full_stock} g, below the alert "
        f"threshold of {percent} ({float(level):g} g).\n\n"
        f"Restock {ingredient} to re-arm this alert; until then Kitchen sends no other "
        f"alert for it.\n"
    )
    return subject, body


def record(messages: list[Message], threshold: Fraction) -> list[tuple[Message, str]]:
    """Store one Notification per alert in the batch; return the messages that are unusable."""
    rejected: list[tuple[Message, str]] = []
    with transaction():
        for m in messages:
            try:
                payload = json.loads(m.value() or b"")
                ingredient_id, email = payload["id"], payload["email"]
                if type(ingredient_id) is not int or not isinstance(email, str) or "@" not in email:
                    raise ValueError("needs an integer id and an email address")
            except (ValueError, KeyError, TypeError) as exc:
                rejected.append((m, f"bad NOTIFY: {exc}"))
                continue
            ingredient = Ingredient.get_or_none(Ingredient.id == ingredient_id)
            if ingredient is None:
                rejected.append((m, f"unknown ingredient {ingredient_id}"))
                continue
            alert_id = payload.get("alert_id")
            # Without an alert id (a producer that speaks only the bare contract), the
            # event's position in Kafka is what makes a redelivery recognisable.
            key = f"alert-{alert_id}" if alert_id else f"{m.topic()}-{m.partition()}-{m.offset()}"
            stock = payload.get("stock", ingredient.stock)
            full = payload.get("full_stock", ingredient.full_stock)
            subject, body = compose(ingredient.name, stock, full, threshold)
            Notification.insert(
                dedup_key=key,
                alert=alert_id,
                ingredient_id=ingredient_id,
                email=email,
                subject=subject,
                body=body,
                message_id=f"<kitchen-{key}@kitchen.local>",
            ).on_conflict_ignore().execute()
    return rejected


def backoff(attempts: int) -> datetime.timedelta:
    return datetime.timedelta(seconds=min(300, 2**attempts))


def send_due(mailer: Mailer, claim_seconds: int = 120, limit: int = 50) -> int:
    """Mail the due notifications; returns how many were sent."""
    now = utcnow()
    with session():
        due = list(
            Notification.select()
            .where(
                Notification.sent_at.is_null(),
                Notification.next_attempt_at <= now,
                Notification.claimed_until.is_null() | (Notification.claimed_until < now),
            )
            .order_by(Notification.id)
            .limit(limit)
        )
        sent = 0
        for n in due:
            claimed = (
                Notification.update(
                    claimed_until=now + datetime.timedelta(seconds=claim_seconds),
                    attempts=Notification.attempts + 1,
                )
                .where(
                    Notification.id == n.id,
                    Notification.sent_at.is_null(),
                    Notification.claimed_until.is_null() | (Notification.claimed_until < now),
                )
                .execute()
            )
            if not claimed:
                continue  # another sender has it
            try:
                mailer.send(n.email, n.subject, n.body, n.message_id)
            except Exception as exc:
                log.warning(
                    "alert mail %s failed (attempt %d): %s", n.dedup_key, n.attempts + 1, exc
                )
                Notification.update(
                    claimed_until=None,
                    last_error=f"{type(exc).__name__}: {exc}",
                    next_attempt_at=utcnow() + backoff(n.attempts + 1),
                ).where(Notification.id == n.id).execute()
                continue
            Notification.update(sent_at=utcnow(), claimed_until=None, last_error=None).where(
                Notification.id == n.id
            ).execute()
            sent += 1
            log.info("alert mail %s sent to %s", n.dedup_key, n.email)
    return sent


def notify_handler(mailer: Mailer, threshold: Fraction) -> Handler:
    """Consumer handler: record the batch, then try to mail it right away.

    Mailing happens after `record` committed; the worker commits the offsets after this
    returns, so a crash in between leaves a due row that the retry job sends.
    """

    def handler(messages: list[Message]) -> list[tuple[Message, str]]:
        rejected = record(messages, threshold)
        try:
            send_due(mailer)
        except Exception:
            log.exception("sending alert mails failed; the retry job will try again")
        return rejected

    return handler
