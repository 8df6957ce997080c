"""Request validation: the shape of a POST /order body, checked before anything is saved.

Errors name every bad field (`products[0].quantity: must be a positive integer`), which
the HTTP layer turns into a problem document. Whether a product exists is the database's
to say, at the moment the order is saved (see `orders.place`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kitchen.domain import MAX_ID, Line
from kitchen.events import decode_json


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


def decode_body(body: bytes) -> Any:
    try:
        return decode_json(body)
    except ValueError as exc:
        raise MalformedBody([FieldError("body", f"is {exc}")]) from None


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
