"""Background jobs (apscheduler): re-drive what Kafka may have lost, retry alert mails.

Kafka is not the source of truth: an event can be lost with the embedded cluster's
memory, or never arrive after a crash. The database knows what is still to do, and
these jobs queue it again. Consumers are idempotent, so a re-driven event that was not
lost after all costs nothing.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from kitchen import outbox
from kitchen.db import Alert, Ingredient, Notification, Order, Outbox, session, transaction, utcnow
from kitchen.stock import queue_notify

log = logging.getLogger(__name__)


def redrive_orders(topic: str, older_than: datetime.timedelta, limit: int = 1000) -> int:
    """Queue ORDER_CREATED again for orders still pending long after their event."""
    cutoff = utcnow() - older_than
    with transaction():
        stuck = list(
            Order.select(Order.id, Order.merchant)
            .where(Order.status == Order.PENDING, Order.emitted_at < cutoff)
            .order_by(Order.id)
            .limit(limit)
        )
        for order in stuck:
            outbox.add(topic, {"id": order.id}, key=str(order.merchant_id))
        if stuck:
            Order.update(emitted_at=utcnow()).where(Order.id.in_([o.id for o in stuck])).execute()
    if stuck:
        log.warning("re-drove %d pending orders", len(stuck))
    return len(stuck)


def redrive_alerts(topic: str, older_than: datetime.timedelta, limit: int = 1000) -> int:
    """Queue NOTIFY again for alerts that never reached the notification role."""
    cutoff = utcnow() - older_than
    with transaction():
        recorded = Notification.select(Notification.alert).where(Notification.alert.is_null(False))
        lost = list(
            Alert.select()
            .where(Alert.emitted_at < cutoff, Alert.id.not_in(recorded))
            .order_by(Alert.id)
            .limit(limit)
        )
        ids = {a.ingredient_id for a in lost}
        names = {i.id: i.name for i in Ingredient.select().where(Ingredient.id.in_(list(ids)))}
        for alert in lost:
            queue_notify(topic, alert, names[alert.ingredient_id])
        if lost:
            Alert.update(emitted_at=utcnow()).where(Alert.id.in_([a.id for a in lost])).execute()
    if lost:
        log.warning("re-drove %d alerts", len(lost))
    return len(lost)


def purge_outbox(keep: datetime.timedelta = datetime.timedelta(days=1)) -> int:
    """Sent outbox rows are history; keep a day of them for inspection."""
    with session():
        return Outbox.delete().where(Outbox.sent_at < utcnow() - keep).execute()


def start(jobs: list[tuple[Callable[[], object], float]]) -> BackgroundScheduler:
    """Run each (job, every seconds); a job never runs twice at once."""
    scheduler = BackgroundScheduler(daemon=True)
    for job, seconds in jobs:
        scheduler.add_job(job, "interval", seconds=seconds, max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler
