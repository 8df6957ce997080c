"""Processing role: apply a batch of ORDER_CREATED events to the stock in one transaction.

Deltas are summed per ingredient and written once per batch. An order that is no longer
`pending` is skipped, so a redelivered or duplicated ORDER_CREATED changes nothing.
Rows are locked in order (orders by merchant then id, then ingredients by id) so that
several consumers never deadlock and never lose an update.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

import peewee as pw

from kitchen import alerts, domain, metrics
from kitchen.db import (
    Ingredient,
    LedgerEntry,
    Merchant,
    Order,
    OrderLine,
    RecipeLine,
    bulk_insert,
    locked,
    transaction,
    utcnow,
)
from kitchen.events import Handler, OrderCreated, Received
from kitchen.inventory import ingredient_state

log = logging.getLogger(__name__)


LEDGER_FIELDS: list[pw.Field] = [
    LedgerEntry.merchant,
    LedgerEntry.ingredient,
    LedgerEntry.grams,
    LedgerEntry.reason,
    LedgerEntry.order,
    LedgerEntry.stock_after,
    LedgerEntry.created_at,
]


@dataclass(frozen=True)
class BatchResult:
    applied: list[int]
    rejected: list[int]
    skipped: list[int]  # already processed: a redelivery
    unknown: list[int]  # no such order
    alerts: list[int]
    # rejected orders per reason class (domain.INSUFFICIENT_STOCK, ...), for the metrics
    rejected_by: dict[str, int] = dataclasses.field(default_factory=dict)


def apply_orders(
    order_ids: list[int],
    notify_topic: str,
    threshold: Fraction,
    merchant_of: Mapping[int, int] | None = None,
) -> BatchResult:
    """Apply the pending orders among `order_ids`, all in one transaction. `merchant_of`
    names the merchant of the orders whose event said it (see `_lock_orders`)."""
    ids = sorted(set(order_ids))
    with transaction():
        orders = _lock_orders(ids, merchant_of or {})
        found = {o.id for o in orders}
        pending = [o for o in orders if o.status == Order.PENDING]
        skipped = [o.id for o in orders if o.status != Order.PENDING]
        unknown = [i for i in ids if i not in found]
        if not pending:
            return BatchResult([], [], skipped, unknown, [])

        lines = _lines_of(pending)
        recipes = _recipes_of({line.product_id for ls in lines.values() for line in ls})
        merchants = {
            m.id: m
            for m in Merchant.select().where(Merchant.id.in_({o.merchant_id for o in pending}))
        }
        state = _lock_ingredients(
            {i for recipe in recipes.values() for i in recipe}, merchants, threshold
        )
        before = {i: (s.stock, s.armed) for i, s in state.items()}

        applied: list[int] = []
        rejected: list[int] = []
        raised: list[int] = []
        rejected_by: Counter[str] = Counter()
        notes: list[tuple[str, tuple[object, ...], dict[str, int]]] = []  # logged once committed
        ledger: list[tuple[object, ...]] = []
        now = utcnow()
        for order in pending:
            outcome = domain.apply_order(lines[order.id], recipes, state)
            order.status = Order.APPLIED if outcome.applied else Order.REJECTED
            order.reason = outcome.reason
            order.processed_at = now
            (applied if outcome.applied else rejected).append(order.id)
            if not outcome.applied:
                rejected_by[outcome.reason_class or "other"] += 1
                notes.append(
                    (
                        "order %d rejected: %s",
                        (order.id, outcome.reason),
                        {"order_id": order.id, "merchant_id": order.merchant_id},
                    )
                )
            ledger += [
                (order.merchant_id, i, -grams, LedgerEntry.ORDER, order.id, state[i].stock, now)
                for i, grams in outcome.used.items()
            ]
            for ingredient_id in outcome.crossed:
                email = merchants[order.merchant_id].alert_email
                alert = alerts.raise_alert(
                    order.merchant_id, state[ingredient_id], email, notify_topic, order.id
                )
                raised.append(alert.id)
                notes.append(
                    (
                        "alert %d: %s fell to %d g, below its threshold",
                        (alert.id, state[ingredient_id].name, state[ingredient_id].stock),
                        {
                            "alert_id": alert.id,
                            "order_id": order.id,
                            "merchant_id": order.merchant_id,
                        },
                    )
                )

        _mark(pending, now)
        bulk_insert(LEDGER_FIELDS, ledger)  # the batch's ledger rows in one statement
        for ingredient_id, s in state.items():
            used = before[ingredient_id][0] - s.stock
            if used or s.armed != before[ingredient_id][1]:
                # The batch's summed delta, in one UPDATE per ingredient.
                Ingredient.update(stock=Ingredient.stock - used, alert_armed=s.armed).where(
                    Ingredient.id == ingredient_id
                ).execute()
    for message, args, about in notes:
        log.info(message, *args, extra=about)
    return BatchResult(applied, rejected, skipped, unknown, raised, dict(rejected_by))


# A batch holds many merchants' orders. On PostgreSQL their tables are partitioned by
# merchant (kitchen/partitioning.py), and a query that names no merchant reads every
# partition, where no index serves an id alone: so each step below runs merchant by
# merchant, one partition per query.


def _lock_orders(ids: list[int], merchant_of: Mapping[int, int]) -> list[Order]:
    """The orders among `ids`, their rows locked until the commit, in id order.

    Rows are locked merchant by merchant, each in id order: (merchant, id) is the order
    every locker uses (a re-drive locks one merchant's orders in id order), so that
    consumers never deadlock. An order whose event did not name its merchant (a bare
    `{"id"}` from another producer, with a key that is not its merchant) is looked up by
    id across every partition, which is slow, and locked after the others, out of that
    order (PostgreSQL would end a deadlock by failing the batch, which is retried):
    Kitchen's own events always name the merchant.
    """
    orders = _lock_by_merchant(ids, merchant_of)
    found = {o.id for o in orders}
    missing = [i for i in ids if i not in found]
    if missing:
        query = Order.select(Order.id, Order.merchant).where(Order.id.in_(missing))
        orders += _lock_by_merchant(missing, {o.id: o.merchant_id for o in query})
    return sorted(orders, key=lambda o: o.id)


def _by_merchant(ids: Iterable[int], merchant_of: Mapping[int, int]) -> dict[int, list[int]]:
    """The ids whose merchant is known, per merchant, in (merchant, id) order."""
    grouped: dict[int, list[int]] = defaultdict(list)
    for i in sorted(ids):
        if i in merchant_of:
            grouped[merchant_of[i]].append(i)
    return dict(sorted(grouped.items()))


def _lock_by_merchant(ids: list[int], merchant_of: Mapping[int, int]) -> list[Order]:
    orders: list[Order] = []
    for merchant_id, group in _by_merchant(ids, merchant_of).items():
        query = Order.select().where(Order.merchant == merchant_id, Order.id.in_(group))
        orders.extend(locked(query.order_by(Order.id)))
    return orders


def _lines_of(orders: list[Order]) -> dict[int, list[domain.Line]]:
    lines: dict[int, list[domain.Line]] = defaultdict(list)
    merchant_of = {o.id: o.merchant_id for o in orders}
    for merchant_id, ids in _by_merchant(merchant_of, merchant_of).items():
        query = OrderLine.select().where(
            OrderLine.merchant == merchant_id, OrderLine.order.in_(ids)
        )
        for line in query:
            lines[line.order_id].append(domain.Line(line.product_id, line.quantity))
    return lines


def _mark(orders: list[Order], now: datetime.datetime) -> None:
    """Save the orders' outcome: one UPDATE per merchant and outcome (status, reason)."""
    groups: dict[tuple[int, str, str | None], list[int]] = defaultdict(list)
    for o in orders:
        groups[(o.merchant_id, o.status, o.reason)].append(o.id)
    for (merchant_id, status, reason), ids in sorted(groups.items(), key=lambda g: g[0][0]):
        Order.update(status=status, reason=reason, processed_at=now).where(
            Order.merchant == merchant_id, Order.id.in_(ids)
        ).execute()


def _recipes_of(product_ids: set[int]) -> dict[int, dict[int, int]]:
    recipes: dict[int, dict[int, int]] = defaultdict(dict)
    for r in RecipeLine.select().where(RecipeLine.product.in_(list(product_ids))):
        recipes[r.product_id][r.ingredient_id] = r.grams
    return recipes


def _lock_ingredients(
    ids: set[int], merchants: dict[int, Merchant], default: Fraction
) -> dict[int, domain.IngredientState]:
    """The ingredients' state, their rows locked in id order until the commit."""
    rows = locked(Ingredient.select().where(Ingredient.id.in_(sorted(ids))).order_by(Ingredient.id))
    return {i.id: ingredient_state(i, merchants[i.merchant_id], default) for i in rows}


def order_created_handler(
    notify_topic: str, threshold: Fraction, on_alert: Callable[[], None] | None = None
) -> Handler[OrderCreated]:
    """Build the consumer handler: apply a batch of ORDER_CREATED events; an id that names
    no order is returned as unusable."""

    def handler(
        batch: list[Received[OrderCreated]],
    ) -> list[tuple[Received[OrderCreated], str]]:
        by_id: dict[int, list[Received[OrderCreated]]] = defaultdict(list)
        for r in batch:
            by_id[r.event.id].append(r)
        # Kitchen's events name the merchant; a bare one's key usually does (see _lock_orders).
        merchant_of = {
            r.event.id: m for r in batch if (m := r.event.merchant_id or r.merchant_key) is not None
        }
        result = apply_orders(list(by_id), notify_topic, threshold, merchant_of)
        metrics.orders_processed(len(result.applied), result.rejected_by, len(result.alerts))
        if result.alerts and on_alert is not None:
            on_alert()
        log.info(
            "batch of %d: %d applied, %d rejected, %d already done, %d alerts",
            len(batch),
            len(result.applied),
            len(result.rejected),
            len(result.skipped),
            len(result.alerts),
        )
        return [(r, "unknown order id") for i in result.unknown for r in by_id[i]]

    return handler
