"""Read views: the JSON shapes of orders, products and ingredients, one place each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kitchen.db import Ingredient, Order, OrderLine, Product, RecipeLine, session
from kitchen.domain import Line


def order(o: Order, lines: Iterable[Line]) -> dict[str, Any]:
    """An order as the API shows it, in the 201 of POST /order and in GET /order/{id}."""
    view: dict[str, Any] = {
        "id": o.id,
        "status": o.status,
        "lines": [{"product_id": ln.product_id, "quantity": ln.quantity} for ln in lines],
        "created_at": o.created_at.isoformat() + "Z",
        "processed_at": o.processed_at.isoformat() + "Z" if o.processed_at else None,
    }
    if o.reason:
        view["reason"] = o.reason
    return view


def order_by_id(order_id: int, merchant_id: int) -> dict[str, Any] | None:
    with session():
        found = Order.get_or_none(Order.id == order_id, Order.merchant == merchant_id)
        if found is None:
            return None
        rows = OrderLine.select().where(OrderLine.order == order_id).order_by(OrderLine.id)
        return order(found, [Line(r.product_id, r.quantity) for r in rows])


def product(p: Product) -> dict[str, Any]:
    recipe = RecipeLine.select().where(RecipeLine.product == p.id).order_by(RecipeLine.id)
    return {
        "id": p.id,
        "name": p.name,
        "recipe": [{"ingredient_id": r.ingredient_id, "grams": r.grams} for r in recipe],
    }


def ingredient(i: Ingredient) -> dict[str, Any]:
    return {
        "id": i.id,
        "name": i.name,
        "stock": i.stock,
        "full_stock": i.full_stock,
        "alert_armed": i.alert_armed,
    }
