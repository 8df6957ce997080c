"""Request validation: the shape of a body, checked before anything is saved.

Errors name every bad field (`products[0].quantity: must be a positive integer`), which
the HTTP layer turns into a problem document. Whether a product exists is the database's
to say, at the moment the order is saved (see `orders.place_order`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kitchen.domain import MAX_GRAMS, MAX_ID, THRESHOLD_PLACES, Line, threshold
from kitchen.events import decode_json


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class Invalid(Exception):
    """A request that names bad fields (422), or a body that is not JSON (400)."""

    status = 422
    title = "Invalid request"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


class InvalidOrder(Invalid):
    title = "Invalid order"


class MalformedBody(InvalidOrder):
    """The body is not JSON at all (400), as opposed to JSON of the wrong shape (422)."""

    status = 400
    title = "Malformed JSON"


class NotFound(Exception):
    """What the request names does not exist for this merchant (404)."""

    def __init__(self, what: str, ident: object) -> None:
        super().__init__(f"there is no {what} {ident}")
        self.what = what


class Conflict(Exception):
    """The request clashes with what exists (409), e.g. a name already taken."""


class Body:
    """Reads the fields of a JSON object body, noting every bad one; `check()` raises
    Invalid naming them all. Fields it was not asked about are refused too."""

    def __init__(self, data: Any, allowed: set[str]) -> None:
        self.errors: list[FieldError] = []
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        if not isinstance(data, dict):
            self.errors.append(FieldError("body", "must be a JSON object"))
        for name in sorted(set(self.data) - allowed):
            self.errors.append(FieldError(name, "is not a known field"))

    def has(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.data:
            if required:
                self.errors.append(FieldError(name, "is required"))
            return None
        return self.data[name]

    def text(self, name: str, required: bool = True, max_length: int = 100) -> str | None:
        value = self._get(name, required)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > max_length:
            if name in self.data:
                self.errors.append(
                    FieldError(name, f"must be text of 1 to {max_length} characters")
                )
            return None
        return value.strip()

    def grams(self, name: str, required: bool = True, positive: bool = True) -> int | None:
        value = self._get(name, required)
        if value is None and name not in self.data:
            return None
        low = 1 if positive else 0
        if type(value) is not int or not low <= value <= MAX_GRAMS:
            kind = "a positive integer" if positive else "an integer of 0 or more"
            self.errors.append(FieldError(name, f"must be {kind} of grams, at most {MAX_GRAMS}"))
            return None
        return int(value)

    def fraction(self, name: str) -> Fraction | None:
        """A threshold: a number strictly between 0 and 1 once rounded to the decimal places
        that are stored (see domain.threshold), kept exact ("0.3" is 3/10)."""
        value = self._get(name, False)
        if value is None and name not in self.data:
            return None
        stored = threshold(value) if type(value) in (int, float) else None
        if stored is None:
            smallest = Fraction(1, 10**THRESHOLD_PLACES)
            self.errors.append(
                FieldError(
                    name,
                    f"must be a number from {float(smallest):f} to {float(1 - smallest):f} "
                    f"({THRESHOLD_PLACES} decimal places are kept)",
                )
            )
            return None
        return stored

    def email(self, name: str, required: bool = True) -> str | None:
        value = self.text(name, required, max_length=254)
        if value is not None and not is_email(value):
            self.errors.append(FieldError(name, "must be an email address"))
            return None
        return value

    def check(self) -> None:
        if self.errors:
            raise Invalid(self.errors)


def is_email(value: str) -> bool:
    """One plain address (local@domain), without display names or line breaks."""
    return re.fullmatch(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+", value) is not None


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
