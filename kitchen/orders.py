"""Orders: save a valid order with its ORDER_CREATED event, and re-drive stuck ones.

The order, its lines and the outbox row are one transaction: an accepted order always
has its event, and a rejected request leaves no row behind. This module is the one
writer of ORDER_CREATED, first (`place_order`) and again (`redrive`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging

import peewee as pw

from kitchen import outbox
from kitchen.db import Order, OrderLine, Product, locked, session, transaction, utcnow
from kitchen.domain import Line
from kitchen.events import OrderCreated
from kitchen.validation import FieldError, InvalidOrder

log = logging.getLogger(__name__)


class KeyReused(Exception):
    """An Idempotency-Key sent again with a different order."""


def request_hash(lines: list[Line]) -> str:
    canonical = json.dumps([[ln.product_id, ln.quantity] for ln in lines])
    return hashlib.sha256(canonical.encode()).hexdigest()


def place_order(
    merchant_id: int, lines: list[Line], topic: str, idempotency_key: str | None = None
) -> tuple[Order, bool]:
    """Save an order and its ORDER_CREATED event; returns (order, created).

    With an idempotency key already used for the same lines, returns that first order
    (created False); used for other lines, raises KeyReused. Unknown products raise
    InvalidOrder.
    """
    if idempotency_key is None:
        return _create(merchant_id, lines, topic), True
    fingerprint = request_hash(lines)
    for _ in range(2):
        with session():
            first = Order.get_or_none(
                Order.merchant == merchant_id, Order.idempotency_key == idempotency_key
            )
        if first is not None:
            if first.request_hash != fingerprint:
                raise KeyReused(idempotency_key)
            return first, False
        try:
            return _create(merchant_id, lines, topic, idempotency_key, fingerprint), True
        except pw.IntegrityError:
            continue  # a concurrent request with the same key won: read its order
    raise KeyReused(idempotency_key)


def _create(
    merchant_id: int,
    lines: list[Line],
    topic: str,
    key: str | None = None,
    fingerprint: str | None = None,
) -> Order:
    with transaction():
        wanted = {line.product_id for line in lines}
        known = {
            p.id
            for p in Product.select(Product.id).where(
                Product.id.in_(list(wanted)),
                Product.merchant == merchant_id,
                Product.deleted_at.is_null(),
            )
        }
        unknown = [
            FieldError(f"products[{i}].product_id", f"unknown product {line.product_id}")
            for i, line in enumerate(lines)
            if line.product_id not in known
        ]
        if unknown:
            raise InvalidOrder(unknown)
        order = Order.create(
            merchant=merchant_id,
            idempotency_key=key,
            request_hash=fingerprint,
        )
        OrderLine.insert_many(
            [{"order": order.id, "product": ln.product_id, "quantity": ln.quantity} for ln in lines]
        ).execute()
        outbox.add(topic, OrderCreated(order.id), merchant_id, order.id)
    return order


def redrive(topic: str, older_than: datetime.timedelta, limit: int | None = 1000) -> int:
    """Queue ORDER_CREATED again for orders still pending long after their event.

    Kafka is not the source of truth: the embedded cluster forgets on restart, and a crash
    can lose an event in flight. Processing skips orders that are no longer pending, so a
    re-driven event that was not lost after all costs nothing. An order whose event still
    waits in the outbox (Kafka down) is left alone: another copy would only pile up.
    The rows are locked in id order, as processing locks them, so the two never deadlock.
    """
    cutoff = utcnow() - older_than
    with transaction():
        stuck = list(
            locked(
                Order.select(Order.id, Order.merchant)
                .where(
                    Order.status == Order.PENDING,
                    Order.emitted_at < cutoff,
                    Order.id.not_in(outbox.unsent(topic)),
                )
                .order_by(Order.id)
                .limit(limit)
            )
        )
        for order in stuck:
            outbox.add(topic, OrderCreated(order.id), order.merchant_id, order.id)
        if stuck:
            Order.update(emitted_at=utcnow()).where(Order.id.in_([o.id for o in stuck])).execute()
    if stuck:
        log.warning("re-drove %d pending orders", len(stuck))
    return len(stuck)
