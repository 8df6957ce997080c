"""Processing role: apply a batch of orders to the stock in one transaction.

Deltas are summed per ingredient and written once per batch. An order that is no longer
`pending` is skipped, so a redelivered or duplicated ORDER_CREATED changes nothing.
Rows are locked in id order (orders, then ingredients) so that several consumers
never deadlock and never lose an update.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from confluent_kafka import Message

from kitchen import domain, outbox
from kitchen.db import (
    Alert,
    Ingredient,
    Merchant,
    Order,
    OrderLine,
    RecipeLine,
    is_id,
    locked,
    transaction,
    utcnow,
)
from kitchen.kafka import Handler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    applied: list[int]
    rejected: list[int]
    skipped: list[int]  # already processed: a redelivery
    unknown: list[int]  # no such order
    alerts: list[int]


def apply_orders(order_ids: list[int], notify_topic: str, threshold: Fraction) -> BatchResult:
    """Apply the pending orders among `order_ids`, all in one transaction."""
    ids = sorted(set(order_ids))
    with transaction():
        orders = list(locked(Order.select().where(Order.id.in_(ids)).order_by(Order.id)))
        found = {o.id for o in orders}
        pending = [o for o in orders if o.status == Order.PENDING]
        skipped = [o.id for o in orders if o.status != Order.PENDING]
        unknown = [i for i in ids if i not in found]
        if not pending:
            return BatchResult([], [], skipped, unknown, [])

        lines: dict[int, list[domain.Line]] = defaultdict(list)
        for line in OrderLine.select().where(OrderLine.order.in_([o.id for o in pending])):
            lines[line.order_id].append(domain.Line(line.product_id, line.quantity))
        product_ids = {line.product_id for order_lines in lines.values() for line in order_lines}
        recipes: dict[int, dict[int, int]] = defaultdict(dict)
        for r in RecipeLine.select().where(RecipeLine.product.in_(list(product_ids))):
            recipes[r.product_id][r.ingredient_id] = r.grams
        ingredient_ids = sorted({i for recipe in recipes.values() for i in recipe})
        rows = locked(
            Ingredient.select().where(Ingredient.id.in_(ingredient_ids)).order_by(Ingredient.id)
        )
        state = {
            i.id: domain.IngredientState(
                i.id, i.name, i.stock, i.full_stock, i.alert_armed, threshold
            )
            for i in rows
        }
        before = {i: (s.stock, s.armed) for i, s in state.items()}
        emails = {m.id: m.alert_email for m in Merchant.select()}

        applied: list[int] = []
        rejected: list[int] = []
        alerts: list[int] = []
        now = utcnow()
        for order in pending:
            outcome = domain.apply_order(lines[order.id], recipes, state)
            order.status = Order.APPLIED if outcome.applied else Order.REJECTED
            order.reason = outcome.reason
            order.processed_at = now
            (applied if outcome.applied else rejected).append(order.id)
            for ingredient_id in outcome.crossed:
                ingredient = state[ingredient_id]
                alert = Alert.create(
                    merchant=order.merchant_id,
                    ingredient=ingredient_id,
                    order=order.id,
                    email=emails[order.merchant_id],
                    stock=ingredient.stock,
                    full_stock=ingredient.full_stock,
                    threshold=str(threshold),
                )
                alerts.append(alert.id)
                queue_notify(notify_topic, alert, ingredient.name)

        Order.bulk_update(pending, fields=[Order.status, Order.reason, Order.processed_at])
        for ingredient_id, s in state.items():
            used = before[ingredient_id][0] - s.stock
            if used or s.armed != before[ingredient_id][1]:
                # The batch's summed delta, in one UPDATE per ingredient.
                Ingredient.update(stock=Ingredient.stock - used, alert_armed=s.armed).where(
                    Ingredient.id == ingredient_id
                ).execute()
    return BatchResult(applied, rejected, skipped, unknown, alerts)


def queue_notify(topic: str, alert: Alert, ingredient_name: str) -> None:
    """Write the NOTIFY event of an alert to the outbox (inside the caller's transaction)."""
    outbox.add(
        topic,
        {
            # The public contract is {"id", "email"}; the other fields are extras.
            "id": alert.ingredient_id,
            "email": alert.email,
            "alert_id": alert.id,
            "merchant_id": alert.merchant_id,
            "ingredient": ingredient_name,
            "stock": alert.stock,
            "full_stock": alert.full_stock,
            "threshold": float(Fraction(alert.threshold)),
        },
        key=str(alert.merchant_id),
    )


def order_created_handler(
    notify_topic: str, threshold: Fraction, on_alert: Callable[[], None] | None = None
) -> Handler:
    """Build the consumer handler: decode ORDER_CREATED events, apply them as one batch."""

    def handler(messages: list[Message]) -> list[tuple[Message, str]]:
        rejected: list[tuple[Message, str]] = []
        by_id: dict[int, list[Message]] = defaultdict(list)
        for m in messages:
            try:
                payload = json.loads(m.value() or b"")
                order_id = payload["id"]
                if not is_id(order_id):
                    raise ValueError("id must be a positive integer")
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                # Unusable whatever happens: retrying it would stall the partition.
                rejected.append((m, f"bad ORDER_CREATED: {exc!r}"))
                continue
            by_id[order_id].append(m)
        if by_id:
            result = apply_orders(list(by_id), notify_topic, threshold)
            rejected += [(m, "unknown order id") for i in result.unknown for m in by_id[i]]
            if result.alerts and on_alert is not None:
                on_alert()
            log.info(
                "batch of %d: %d applied, %d rejected, %d already done, %d alerts",
                len(messages),
                len(result.applied),
                len(result.rejected),
                len(result.skipped),
                len(result.alerts),
            )
        return rejected

    return handler
