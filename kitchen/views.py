"""Read views: the JSON shape of each resource the API returns, one function each.

Every endpoint that returns an order, ingredient, product, merchant, ledger entry or
alert shapes it here (the seed's answer and the dashboard are made of these), and
`kitchen.openapi` has one schema for each. Times are shown by `iso`, once.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable
from fractions import Fraction
from typing import Any, Protocol

from kitchen.alerts import LEVELS
from kitchen.db import session
from kitchen.domain import Line, is_below
from kitchen.forecast import Forecast
from kitchen.models import (
    Alert,
    Ingredient,
    LedgerEntry,
    Merchant,
    Notification,
    Order,
    OrderLine,
    Payment,
    Product,
    RecipeLine,
    Refund,
)

# What an order's status and a ledger entry's reason may be (GET /orders?status= takes
# the first; the OpenAPI enums are these).
ORDER_STATUSES = (
    Order.PENDING,
    Order.APPLIED,
    Order.REJECTED,
    Order.AWAITING_PAYMENT,
    Order.CANCELLED,
)
LEDGER_REASONS = (
    LedgerEntry.INITIAL,
    LedgerEntry.ORDER,
    LedgerEntry.RESTOCK,
    LedgerEntry.COUNT,
    LedgerEntry.WASTE,
    LedgerEntry.REFUND,  # stock an order took, given back (issue 18)
    LedgerEntry.COMPENSATION,
)
# What became of an alert's email (see `alert`).
SENT, FAILED, WAITING = MAIL_STATES = ("sent", "failed", "waiting")
# Whether an alert's ingredient is still below its line (see `alert`).
OPEN, RESOLVED = ALERT_STATES = ("open", "resolved")
# What may cause an alert (a ledger reason that takes stock, or a new level), and what
# may resolve it (one that gives stock, or a new level).
ALERT_CAUSES = (
    LedgerEntry.ORDER,
    LedgerEntry.COUNT,
    LedgerEntry.WASTE,
    LedgerEntry.INITIAL,
    LEVELS,
)
ALERT_RESOLUTIONS = (
    LedgerEntry.RESTOCK,
    LedgerEntry.COUNT,
    LedgerEntry.REFUND,
    LedgerEntry.COMPENSATION,
    LEVELS,
)

# Pages of the lists (GET /orders, /alerts, /ingredients/{id}/ledger): `limit` rows at
# most, by default PAGE (a ledger: LEDGER_PAGE).
MAX_PAGE = 500
PAGE = 20
LEDGER_PAGE = 50


def iso(at: datetime.datetime | None) -> str | None:
    """A stored (naive UTC) time as the API shows it."""
    return at.isoformat() + "Z" if at is not None else None


class OrderRow(Protocol):
    """What an order view reads: an Order row, or an order just saved (orders.Placed)."""

    @property
    def id(self) -> Any: ...
    @property
    def status(self) -> Any: ...
    @property
    def created_at(self) -> Any: ...
    @property
    def processed_at(self) -> Any: ...
    @property
    def reason(self) -> Any: ...
    @property
    def key_name(self) -> Any: ...


def order(o: OrderRow, lines: Iterable[Line], paid: Payment | None = None) -> dict[str, Any]:
    """An order as the API shows it, in the 201 of POST /order and in GET /order/{id};
    `paid` its payment (a merchant that requires payments), shown as `payment`."""
    view: dict[str, Any] = {
        "id": o.id,
        "status": o.status,
        "lines": [{"product_id": ln.product_id, "quantity": ln.quantity} for ln in lines],
        "created_at": iso(o.created_at),
        "processed_at": iso(o.processed_at),
        "key": o.key_name,  # the name of the API key that placed it; null without a key
        "payment": payment(paid) if paid is not None else None,
    }
    if o.reason:
        view["reason"] = o.reason
    return view


def payment(p: Payment) -> dict[str, Any]:
    """A payment as the API shows it, in its order's view: `id` is the provider's (null
    until the provider answered); `client_secret`, for the till to confirm the card with,
    only while the payment waits for it."""
    return {
        "id": p.provider_id,
        "provider": p.provider,
        "status": p.status,
        "amount": p.amount,
        "currency": p.currency,
        "refunded_amount": p.refunded_amount,
        "client_secret": p.client_secret if p.status == Payment.REQUIRES_PAYMENT else None,
    }


def payments_of(merchant_id: int, order_ids: list[int]) -> dict[int, Payment]:
    """The payments of these orders of the merchant, by order id: one query (the
    merchant's partition) for a whole page."""
    if not order_ids:
        return {}
    found = Payment.select().where(Payment.merchant == merchant_id, Payment.order.in_(order_ids))
    return {p.order_id: p for p in found}


def order_by_id(order_id: int, merchant_id: int) -> dict[str, Any] | None:
    with session():
        found = Order.get_or_none(Order.id == order_id, Order.merchant == merchant_id)
        if found is None:
            return None
        rows = OrderLine.select().where(
            OrderLine.merchant == merchant_id, OrderLine.order == order_id
        )
        rows = rows.order_by(OrderLine.id)
        paid = payments_of(merchant_id, [order_id]).get(order_id)
        return order(found, [Line(r.product_id, r.quantity) for r in rows], paid)


def recent_orders(
    merchant_id: int, limit: int, before: int | None, status: str | None = None
) -> list[dict[str, Any]]:
    """GET /orders: the merchant's orders, newest first; `before` an order id to page on,
    `status` only orders in that status."""
    with session():
        query = Order.select().where(Order.merchant == merchant_id)
        if before is not None:
            query = query.where(Order.id < before)
        if status is not None:
            query = query.where(Order.status == status)
        rows = list(query.order_by(Order.id.desc()).limit(limit))
        lines: dict[int, list[Line]] = defaultdict(list)
        if rows:
            found = OrderLine.select().where(
                OrderLine.merchant == merchant_id, OrderLine.order.in_([o.id for o in rows])
            )
            for r in found.order_by(OrderLine.id):
                lines[r.order_id].append(Line(r.product_id, r.quantity))
        paid = payments_of(merchant_id, [o.id for o in rows])
        return [order(o, lines[o.id], paid.get(o.id)) for o in rows]


def alert(
    a: Alert, ingredient_name: str, mail: Notification | None, unit: str = Ingredient.G
) -> dict[str, Any]:
    """An alert and what became of its email: `mail` is `sent` (at `mail_sent_at`),
    `failed` (never to be sent: a refused address) or `waiting` (not sent yet); `unit`
    the ingredient's, which its stock and par level are counted in."""
    status = WAITING
    if mail is not None and mail.sent_at is not None:
        status = SENT
    elif mail is not None and mail.failed_at is not None:
        status = FAILED
    return {
        "id": a.id,
        "ingredient_id": a.ingredient_id,
        "ingredient": ingredient_name,
        "unit": unit,  # stock and full_stock's
        "order_id": a.order_id,
        "stock": a.stock,
        "full_stock": a.full_stock,
        "threshold": float(Fraction(a.threshold)),
        "email": a.email,
        "created_at": iso(a.created_at),
        "mail": status,
        "mail_sent_at": iso(mail.sent_at) if mail is not None else None,
        # What took the stock below (null: an alert made before causes were recorded)
        "cause": a.cause,
        # Resolved once the stock is back at its threshold (`alerts.resolve`), by what
        "status": RESOLVED if a.resolved_at is not None else OPEN,
        "resolved_at": iso(a.resolved_at),
        "resolved_by": a.resolved_by,
    }


def recent_alerts(merchant_id: int, limit: int, before: int | None) -> list[dict[str, Any]]:
    """GET /alerts: the merchant's alerts, newest first; `before` an alert id to page on."""
    with session():
        query = (
            Alert.select(Alert, Ingredient.id, Ingredient.name, Ingredient.unit)
            .join(Ingredient)
            .where(Alert.merchant == merchant_id)
        )
        if before is not None:
            query = query.where(Alert.id < before)
        rows = list(query.order_by(Alert.id.desc()).limit(limit))
        mails: dict[int | None, Notification] = {}
        if rows:
            found = Notification.select().where(
                Notification.merchant == merchant_id, Notification.alert.in_([a.id for a in rows])
            )
            mails = {n.alert_id: n for n in found}
        return [alert(a, a.ingredient.name, mails.get(a.id), a.ingredient.unit) for a in rows]


def product(p: Product, stock: dict[int, int] | None = None) -> dict[str, Any]:
    """A product and its recipe (each line's amount in its ingredient's unit, and the
    ingredient's name: one join); with the merchant's stock by ingredient id, how many more
    it can make; `deleted_at` once deleted."""
    recipe = list(
        RecipeLine.select(RecipeLine, Ingredient.id, Ingredient.name, Ingredient.unit)
        .join(Ingredient)
        .where(RecipeLine.product == p.id)
        .order_by(RecipeLine.id)
    )
    shown: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "recipe": [recipe_line(r) for r in recipe],
        "price": p.price,  # minor units of the merchant's currency; null: no price
    }
    if stock is not None:
        # How many each line's stock makes; the least is what the product can make, and
        # its ingredient limits it (min keeps the first of equals: recipe order).
        makes = [(stock.get(r.ingredient_id, 0) // r.grams, r.ingredient_id) for r in recipe]
        fewest = min(makes, key=lambda m: m[0], default=(0, None))
        shown["can_make"], shown["limited_by"] = fewest
    if p.deleted_at is not None:
        shown["deleted_at"] = iso(p.deleted_at)
    return shown


def recipe_line(r: RecipeLine) -> dict[str, Any]:
    """A line of a recipe: `amount` of the ingredient in one product, in its `unit`;
    `grams` is the older name of `amount`, kept for the clients that read it."""
    return {
        "ingredient_id": r.ingredient_id,
        "grams": r.grams,
        "amount": r.grams,
        "unit": r.ingredient.unit,
        "ingredient": r.ingredient.name,
    }


def ingredient(i: Ingredient, threshold: Fraction, ahead: Forecast | None = None) -> dict[str, Any]:
    """An ingredient, with the threshold that applies to it (its own, else its merchant's,
    else the setting's: `inventory.threshold_of`), whether its stock is below it, and its
    forecast (kitchen/forecast.py)."""
    return {
        "id": i.id,
        "name": i.name,
        "stock": i.stock,
        "full_stock": i.full_stock,
        "threshold": float(threshold),
        "low": is_below(i.stock, i.full_stock, threshold),
        "alert_armed": i.alert_armed,
        "unit": i.unit,  # what stock and full_stock are counted in: g, ml or piece
        "lead_time_days": i.lead_time_days,  # how long a delivery takes
        "pack_size": i.pack_size,  # the supplier's pack, in `unit`; null: any amount
        "forecast": ahead.view() if ahead is not None else None,
    }


def merchant(m: Merchant, default_threshold: Fraction) -> dict[str, Any]:
    """A merchant; its threshold is its own, else the `[alerts] threshold` setting."""
    return {
        "id": m.id,
        "name": m.name,
        "alert_email": m.alert_email,
        "threshold": float(Fraction(m.threshold or default_threshold)),
        "payments": m.payments,
        "currency": m.currency,
        "digest_hour": m.digest_hour,  # null: no morning digest
        "timezone": m.timezone,
    }


def ledger_entry(e: LedgerEntry, unit: str = Ingredient.G) -> dict[str, Any]:
    """A ledger row; `amount` (== `grams`, its older name) and `stock_after` are in `unit`,
    its ingredient's."""
    return {
        "id": e.id,
        "grams": e.grams,
        "amount": e.grams,
        "unit": unit,
        "reason": e.reason,
        "order_id": e.order_id,
        "note": e.note,
        "stock_after": e.stock_after,
        "at": iso(e.created_at),
        "key": e.key_name,  # the name of the API key that made it; null: processing, no key
    }


def seeded(products: list[dict[str, Any]], ingredients: list[dict[str, Any]]) -> dict[str, Any]:
    """POST /order/seed: the reference kitchen's products and ingredients, each shown as
    GET /products and GET /ingredients show them."""
    return {"products": products, "ingredients": ingredients}


def refund(r: Refund) -> dict[str, Any]:
    """A refund as POST /order/{id}/refund answers it (`requested` until the payments role
    has had the provider make it)."""
    return {
        "id": r.id,
        "order_id": r.order_id,
        "amount": r.amount,
        "restock": r.restock,
        "status": r.status,
        "reason": r.reason,
    }
