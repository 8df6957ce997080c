"""API role, orders: validate a request, save the order with its ORDER_CREATED event.

The order, its lines and the outbox row are one transaction: an accepted order always
has its event, and a rejected request leaves no row behind.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import peewee as pw

from kitchen import outbox
from kitchen.db import (
    MAX_ID,
    Ingredient,
    Order,
    OrderLine,
    Product,
    RecipeLine,
    session,
    transaction,
)
from kitchen.domain import Line


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidOrder(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


class MalformedBody(InvalidOrder):
    """The body is not JSON at all (400), as opposed to JSON of the wrong shape (422)."""


def _positive_int(value: Any) -> bool:
    # bool is an int in Python, and 2.0 is not an integer in JSON's sense here.
    return type(value) is int and value > 0


def parse_order(data: Any, max_lines: int, max_quantity: int) -> list[Line]:
    """Check the shape of a POST /order body; raise InvalidOrder naming every bad field."""
    if not isinstance(data, dict):
        raise InvalidOrder([FieldError("body", "must be a JSON object with a products list")])
    products = data.get("products")
    if products is None:
        raise InvalidOrder([FieldError("products", "is required")])
    if not isinstance(products, list):
        raise InvalidOrder([FieldError("products", "must be a list")])
    if not products:
        raise InvalidOrder([FieldError("products", "must not be empty")])
    if len(products) > max_lines:
        raise InvalidOrder([FieldError("products", f"at most {max_lines} lines per order")])
    errors: list[FieldError] = []
    lines: list[Line] = []
    for i, item in enumerate(products):
        where = f"products[{i}]"
        if not isinstance(item, dict):
            errors.append(FieldError(where, "must be an object with product_id and quantity"))
            continue
        product_id = _positive_field(item, "product_id", where, errors)
        if product_id is not None and product_id > MAX_ID:
            errors.append(FieldError(f"{where}.product_id", f"unknown product {product_id}"))
        quantity = _positive_field(item, "quantity", where, errors)
        if quantity is not None and quantity > max_quantity:
            errors.append(FieldError(f"{where}.quantity", f"must be at most {max_quantity}"))
        if not errors and product_id is not None and quantity is not None:
            lines.append(Line(product_id, quantity))
    if errors:
        raise InvalidOrder(errors)
    return lines


def _positive_field(
    item: dict[str, Any], name: str, where: str, errors: list[FieldError]
) -> int | None:
    """item[name] if it is a positive integer; otherwise note the error and return None."""
    if name not in item:
        errors.append(FieldError(f"{where}.{name}", "is required"))
        return None
    value = item[name]
    if not _positive_int(value):
        errors.append(FieldError(f"{where}.{name}", "must be a positive integer"))
        return None
    return int(value)


def decode_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, bad UTF-8 and integers of over 4300 digits;
        # RecursionError, nesting deeper than the parser's stack.
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise MalformedBody([FieldError("body", f"is not valid JSON ({reason})")]) from None


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
                Product.id.in_(list(wanted)), Product.merchant == merchant_id
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
        # Keyed by merchant: one merchant's orders stay in order on one partition.
        outbox.add(topic, {"id": order.id}, key=str(merchant_id))
    return order


def order_view(order_id: int, merchant_id: int) -> dict[str, Any] | None:
    with session():
        order = Order.get_or_none(Order.id == order_id, Order.merchant == merchant_id)
        if order is None:
            return None
        lines = OrderLine.select().where(OrderLine.order == order_id).order_by(OrderLine.id)
        view: dict[str, Any] = {
            "id": order.id,
            "status": order.status,
            "lines": [{"product_id": ln.product_id, "quantity": ln.quantity} for ln in lines],
            "created_at": order.created_at.isoformat() + "Z",
            "processed_at": order.processed_at.isoformat() + "Z" if order.processed_at else None,
        }
        if order.reason:
            view["reason"] = order.reason
        return view


# The reference kitchen: grams of each ingredient per Burger, and the starting stock.
SEED_STOCK = {"beef": 20_000, "cheese": 5_000, "onion": 1_000}
SEED_RECIPES = {"Burger": {"beef": 150, "cheese": 30, "onion": 20}}


def seed(merchant_id: int) -> tuple[bool, dict[str, Any]]:
    """Create the reference kitchen if missing; never duplicates, never resets stock."""
    created = False
    with transaction():
        ingredients = {}
        for name, grams in SEED_STOCK.items():
            ingredient, new = Ingredient.get_or_create(
                merchant=merchant_id,
                name=name,
                defaults={"stock": grams, "full_stock": grams, "alert_armed": True},
            )
            ingredients[name] = ingredient
            created |= new
        products = []
        for product_name, recipe in SEED_RECIPES.items():
            product, new = Product.get_or_create(merchant=merchant_id, name=product_name)
            created |= new
            for name, grams in recipe.items():
                _, new = RecipeLine.get_or_create(
                    product=product, ingredient=ingredients[name], defaults={"grams": grams}
                )
                created |= new
            products.append(product)
        view = {
            "products": [
                {
                    "id": p.id,
                    "name": p.name,
                    "recipe": [
                        {"ingredient_id": r.ingredient_id, "grams": r.grams}
                        for r in RecipeLine.select().where(RecipeLine.product == p.id)
                    ],
                }
                for p in products
            ],
            "ingredients": [ingredient_view(i) for i in ingredients.values()],
        }
    return created, view


def ingredient_view(i: Ingredient) -> dict[str, Any]:
    return {
        "id": i.id,
        "name": i.name,
        "stock": i.stock,
        "full_stock": i.full_stock,
        "alert_armed": i.alert_armed,
    }


def ingredients_view(merchant_id: int) -> list[dict[str, Any]]:
    with session():
        rows = Ingredient.select().where(Ingredient.merchant == merchant_id).order_by(Ingredient.id)
        return [ingredient_view(i) for i in rows]
