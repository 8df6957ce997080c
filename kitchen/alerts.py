"""Alerts: one row per threshold crossing, announced by a NOTIFY event.

This module is the one writer of NOTIFY: when processing records a crossing
(`raise_alert`, inside the batch's transaction) and again for alerts whose NOTIFY never
reached the notification role (`redrive`).
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import operator
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from kitchen import forecast, metrics, outbox, usage
from kitchen.db import locked, session, transaction, utcnow
from kitchen.domain import IngredientState
from kitchen.events import Notify
from kitchen.models import Alert, Ingredient, Merchant, Notification

log = logging.getLogger(__name__)


def raise_alert(
    merchant_id: int,
    ingredient: IngredientState,
    email: str,
    topic: str,
    order_id: int | None = None,
    cause: str | None = None,
) -> Alert:
    """Record that `ingredient` fell below its threshold (by `order_id`, or by a count,
    waste or a new level); queue the NOTIFY. Call inside the transaction of the change.
    `cause` says what took it below: a ledger reason (order, count, waste, initial) or
    LEVELS."""
    alert = Alert.create(
        merchant=merchant_id,
        ingredient=ingredient.id,
        order=order_id,
        email=email,
        stock=ingredient.stock,
        full_stock=ingredient.full_stock,
        threshold=str(ingredient.threshold),
        cause=cause,
    )
    outbox.add(topic, notify_event(alert, ingredient.name), alert.merchant_id, alert.id)
    return alert


def attach_forecasts(
    merchant: Merchant,
    raised: Iterable[tuple[Alert, Ingredient]],
    rules: forecast.Rules,
    now: datetime.datetime,
) -> None:
    """Store on each of the merchant's just raised alerts its ingredient's forecast at
    `now` (aware UTC), as this transaction sees the hourly sums: call it in the
    transaction that raised them, after the change's use is counted (`usage`), with the
    ingredient rows as they stand (their stock) at its end. The email is composed from
    this snapshot, never from a later read. Two queries for any number of alerts."""
    pairs = list(raised)
    if not pairs:
        return
    rows = {row.id: row for _, row in pairs}
    ahead = usage.forecasts(merchant, rows.values(), now, rules)
    for alert, row in pairs:
        # What the email needs besides the view: the zone it tells the time in, and the
        # stock the forecast started from.
        snapshot = ahead[row.id].view() | {"timezone": merchant.timezone, "stock": row.stock}
        alert.forecast = json.dumps(snapshot, sort_keys=True)
        Alert.update(forecast=alert.forecast).where(
            Alert.merchant == merchant.id, Alert.id == alert.id
        ).execute()


# The cause and the resolution of an alert that no ledger row explains: a new par level or
# threshold (the ingredient's, or its merchant's default).
LEVELS = "levels"


def resolve(merchant_id: int, ingredient_id: int, was_armed: bool, armed: bool, by: str) -> int:
    """Resolve the ingredient's open alerts if this change re-armed it (it was disarmed,
    and its stock is back at or above its threshold): now, `by` a ledger reason (restock,
    count, refund, compensation) or LEVELS. Call inside the transaction of every change
    that settles an alert and did not cross; the rule of a re-arm is here only. Returns
    how many it resolved."""
    if was_armed or not armed:
        return 0
    resolved: int = (
        Alert.update(resolved_at=utcnow(), resolved_by=by)
        .where(
            Alert.merchant == merchant_id,
            Alert.ingredient == ingredient_id,
            Alert.resolved_at.is_null(),
        )
        .execute()
    )
    return resolved


def notify_event(alert: Alert, ingredient_name: str) -> Notify:
    return Notify(
        ingredient_id=alert.ingredient_id,
        email=alert.email,
        alert_id=alert.id,
        merchant_id=alert.merchant_id,
        ingredient=ingredient_name,
        stock=alert.stock,
        full_stock=alert.full_stock,
        threshold=float(Fraction(alert.threshold)),
    )


# Each re-drive of one alert waits twice as long as the one before (30 s, 1 min, 2 min...
# with the default setting), and after this many Kitchen stops: a NOTIFY that is never
# recorded (dead-lettered each time: see `<topic>.dlq`) would otherwise be queued for ever.
MAX_REDRIVES = 6


def _redrive_merchant(
    merchant_id: int, waited: Any, topic: str, now: datetime.datetime, limit: int | None
) -> list[Alert]:
    """Re-drive one merchant's lost alerts (`waited` long enough), its partitions only."""
    with transaction():
        recorded = Notification.select(Notification.alert).where(
            Notification.merchant == merchant_id, Notification.alert.is_null(False)
        )
        lost = list(
            locked(
                Alert.select()
                .where(
                    Alert.merchant == merchant_id,
                    waited,
                    Alert.id.not_in(recorded),
                    Alert.id.not_in(outbox.unsent(topic, merchant_id)),
                )
                .order_by(Alert.id)
                .limit(limit)
            )
        )
        ids = {a.ingredient_id for a in lost}
        names = {i.id: i.name for i in Ingredient.select().where(Ingredient.id.in_(list(ids)))}
        for alert in lost:
            event = notify_event(alert, names[alert.ingredient_id])
            outbox.add(topic, event, alert.merchant_id, alert.id)
        if lost:
            Alert.update(emitted_at=now, redrives=Alert.redrives + 1).where(
                Alert.merchant == merchant_id, Alert.id.in_([a.id for a in lost])
            ).execute()
    return lost


def redrive(topic: str, older_than: datetime.timedelta, limit: int | None = 1000) -> int:
    """Queue NOTIFY again for alerts that never reached the notification role (no
    Notification row long after the event): the embedded Kafka or a crash lost it. An alert
    whose NOTIFY still waits in the outbox is left alone."""
    now = utcnow()
    waited = functools.reduce(
        operator.or_,
        (
            (Alert.redrives == k) & (Alert.emitted_at < now - older_than * 2**k)
            for k in range(MAX_REDRIVES)
        ),
    )
    with session():
        # The one read across merchants (alerts are few: one per crossing): which
        # merchants have unrecorded alerts due again. The work is done merchant by merchant.
        recorded = Notification.select(Notification.alert).where(Notification.alert.is_null(False))
        merchants = [
            a.merchant_id
            for a in Alert.select(Alert.merchant)
            .where(waited, Alert.id.not_in(recorded))
            .distinct()
            .order_by(Alert.merchant)
        ]
    lost: list[Alert] = []
    for merchant_id in merchants:
        if limit is not None and len(lost) >= limit:
            break
        left = None if limit is None else limit - len(lost)
        lost += _redrive_merchant(merchant_id, waited, topic, now, left)
    metrics.redriven(topic, len(lost))
    if lost:
        log.warning("re-drove %d alerts", len(lost))
    for alert in lost:
        if alert.redrives + 1 == MAX_REDRIVES:
            log.error(
                "alert %d: NOTIFY queued %d times and never recorded; not queued again "
                "(look for it on %s.dlq)",
                alert.id,
                MAX_REDRIVES,
                topic,
                extra={"alert_id": alert.id, "merchant_id": alert.merchant_id},
            )
    return len(lost)
