"""Request validation: the shape of a body, checked before anything is saved.

Errors name every bad field (`products[0].quantity: must be a positive integer`) in a
`kitchen.errors.Invalid`, which the HTTP edge turns into a problem document and the CLI
into its one stderr line; the typed commands built on these rules are in
`kitchen.commands`. Whether a product exists is the database's to say, at the moment
the order is saved (see `orders.place_order`).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from kitchen.domain import (
    MAX_GRAMS,
    MAX_ID,
    MAX_PRICE,
    THRESHOLD_PLACES,
    UNIT_NAMES,
    Line,
    threshold,
)
from kitchen.errors import FieldError, Invalid, InvalidOrder, MalformedBody
from kitchen.events import decode_json

NAME_LENGTH = 100  # merchants, ingredients, products
NOTE_LENGTH = 500  # a restock, count or waste
MAX_RECIPE_LINES = 100  # lines of a product's recipe
KEY_LENGTH = 255  # an Idempotency-Key header
# A merchant's `payments`: "off" (orders go to the kitchen at once, unpaid) or
# "required" (an order waits for its payment's hold: kitchen/paid_orders.py).
PAYMENTS_OFF, PAYMENTS_REQUIRED = PAYMENT_MODES = ("off", "required")
# An ISO 4217 currency code's shape (whether the provider takes it is the provider's to say).
CURRENCY = re.compile("[A-Z]{3}")
# An amount of an ingredient: `amount`, or `grams`, its older name (Body.amount). What a
# message says an amount is counted in: the unit the body names (POST /ingredients), else
# the ingredient's, which the body does not say (moves, recipe lines, a new par level).
AMOUNT, GRAMS = "amount", "grams"
UNIT_WORDS = {unit: f"of {name}" for unit, name in UNIT_NAMES.items()}
IN_ITS_UNIT = "in the ingredient's unit"
MAX_DAYS = 365  # a lead time


class Body:
    """Reads the fields of a JSON object body, noting every bad one; `check()` raises
    Invalid naming them all. Fields it was not asked about are refused too."""

    def __init__(self, data: Any, allowed: set[str]) -> None:
        self.errors: list[FieldError] = []
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        if not isinstance(data, dict):
            self.errors.append(FieldError("body", "must be a JSON object"))
        for name in sorted(set(self.data) - allowed):
            self.errors.append(_unknown_field(name))

    def has(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.data:
            if required:
                self.errors.append(FieldError(name, "is required"))
            return None
        return self.data[name]

    def text(
        self,
        name: str,
        required: bool = True,
        max_length: int = NAME_LENGTH,
        rule: Callable[[object, int], str | None] | None = None,
    ) -> str | None:
        """Text a person reads, stripped: a name (`name_problem`) unless another rule
        is given."""
        value = self._get(name, required)
        if value is None and not required:
            return None
        problem = (rule or name_problem)(value, max_length)
        if problem is not None:
            if name in self.data:
                self.errors.append(FieldError(name, problem))
            return None
        assert isinstance(value, str)
        return value.strip()

    def note(self, name: str) -> str | None:
        """An optional note: readable text that may span lines (`note_problem`)."""
        return self.text(name, required=False, max_length=NOTE_LENGTH, rule=note_problem)

    def grams(
        self, name: str, required: bool = True, positive: bool = True, of: str = "of grams"
    ) -> int | None:
        """An amount of stock; `of` says its unit in the message (UNIT_WORDS)."""
        value = self._get(name, required)
        if value is None and name not in self.data:
            return None
        low = 1 if positive else 0
        if type(value) is not int or not low <= value <= MAX_GRAMS:
            kind = "a positive integer" if positive else "an integer of 0 or more"
            self.errors.append(FieldError(name, f"must be {kind} {of}, at most {MAX_GRAMS}"))
            return None
        return int(value)

    def amount(self, required: bool = True, positive: bool = True) -> tuple[str, int | None]:
        """An amount of an ingredient in its unit, as `amount` (its name) or `grams` (the
        older name, kept for the scripts that send it), not both. Returns the field the
        caller used, for the messages about it, and the amount. Both, equal, are taken: a
        line of GET sent back as it came."""
        both = AMOUNT in self.data and GRAMS in self.data
        # Both, equal: what GET answers (it shows both), sent back as it came.
        if both and (self.data[AMOUNT], type(self.data[AMOUNT])) != (
            self.data[GRAMS],
            type(self.data[GRAMS]),
        ):
            self.errors.append(FieldError(AMOUNT, "amount and grams differ: give one of them"))
            return AMOUNT, None
        if GRAMS in self.data and AMOUNT not in self.data:
            return GRAMS, self.grams(GRAMS, required, positive)
        return AMOUNT, self.grams(AMOUNT, required, positive, of=IN_ITS_UNIT)

    def days(self, name: str, most: int = MAX_DAYS) -> int | None:
        """A whole number of days from 0 to `most`; None when absent."""
        if name not in self.data:
            return None
        value = self.data[name]
        if type(value) is not int or not 0 <= value <= most:
            self.errors.append(FieldError(name, f"must be a whole number of days, 0 to {most}"))
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

    def price(self, name: str) -> int | None:
        """An optional price in minor units (cents), 0 to MAX_PRICE; null: no price. Use
        `has(name)` to tell null from absent."""
        value = self._get(name, False)
        if value is None:
            return None
        if type(value) is not int or not 0 <= value <= MAX_PRICE:
            self.errors.append(
                FieldError(
                    name,
                    f"must be an integer of minor units (cents) from 0 to {MAX_PRICE}, "
                    "or null for no price",
                )
            )
            return None
        return int(value)

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        """An optional value of `choices` (null: not given)."""
        value = self._get(name, False)
        if value is None:
            return None
        if not isinstance(value, str) or value not in choices:
            self.errors.append(FieldError(name, f"must be one of {', '.join(choices)}"))
            return None
        return value

    def currency(self, name: str) -> str | None:
        """An optional ISO 4217 code: three upper-case letters (EUR, USD, JPY); null: not
        given."""
        value = self._get(name, False)
        if value is None:
            return None
        if not isinstance(value, str) or not CURRENCY.fullmatch(value):
            self.errors.append(
                FieldError(name, "must be an ISO 4217 currency code: three upper-case letters")
            )
            return None
        return value

    def hour(self, name: str) -> int | None:
        """An optional hour of the day, 0 to 23; null (or absent): none. Use `has(name)`
        to tell null from absent."""
        value = self._get(name, False)
        if value is None:
            return None
        if type(value) is not int or not 0 <= value <= 23:
            self.errors.append(FieldError(name, "must be an hour from 0 to 23, or null for none"))
            return None
        return int(value)

    def timezone(self, name: str) -> str | None:
        """An optional IANA time zone name ("Europe/Paris"); null: not given."""
        value = self._get(name, False)
        if value is None:
            return None
        if not isinstance(value, str) or not is_timezone(value):
            self.errors.append(
                FieldError(name, 'must be an IANA time zone name, such as "Europe/Paris"')
            )
            return None
        return value

    def email(self, name: str, required: bool = True) -> str | None:
        value = self._get(name, required)
        if name not in self.data or (value is None and not required):
            return None
        value = value.strip() if isinstance(value, str) else value
        problem = email_problem(value)
        if problem is not None:
            self.errors.append(FieldError(name, problem))
            return None
        assert isinstance(value, str)
        return value

    def check(self) -> None:
        if self.errors:
            raise Invalid(self.errors)


# Text a person reads holds no control characters (Unicode's Cc: C0, DEL, C1; NUL among
# them, which PostgreSQL cannot store) and no lone surrogate (JSON's "\ud800" decodes to
# one, and no database driver or mailer can encode it). A name is one line: no line or
# paragraph separator either. A note may span lines and be indented (a delivery note,
# typed in a form): newline and tab are allowed there, but not CR, which sends a
# terminal's cursor back over what it has shown.
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_NOT_A_NOTE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _unreadable(value: str, bad: re.Pattern[str], what: str) -> str | None:
    found = bad.search(value)
    if found is None:
        return None
    char = ord(found.group())
    kind = "a control character"
    if 0xD800 <= char <= 0xDFFF:
        kind = "a lone surrogate"
    elif char in (0x2028, 0x2029):
        kind = "a line or paragraph separator"
    return f"must be {what}: U+{char:04X} is {kind}"


def _unknown_field(name: str) -> FieldError:
    """A field the body should not have, named as sent but for what a problem document
    cannot carry or a reader should not get: a lone surrogate (not even encodable as
    UTF-8) or a control character is shown as its \\u escape."""
    shown = _NOT_ONE_LINE.sub(lambda found: f"\\u{ord(found.group()):04x}", name)
    return FieldError(shown, "is not a known field")


def name_problem(value: object, max_length: int = NAME_LENGTH) -> str | None:
    """Why `value` is not a name (of a merchant, an ingredient, a product), or None: one
    line of 1 to `max_length` characters that a person can read."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        return f"must be text of 1 to {max_length} characters"
    return _unreadable(value, _NOT_ONE_LINE, "one line of readable text")


def note_problem(value: object, max_length: int = NOTE_LENGTH) -> str | None:
    """Why `value` is not a note (of a stock move), or None: like a name, but it may hold
    newlines and tabs."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        return f"must be text of 1 to {max_length} characters"
    return _unreadable(value, _NOT_A_NOTE, "readable text (newlines and tabs allowed)")


# The one rule for an email address, wherever one is typed (settings, API, CLI) and where
# mail goes out (kitchen.mail): what smtplib can put in MAIL FROM / RCPT TO and a header
# without SMTPUTF8 (which yagmail never asks for). The local part is RFC 5321's
# dot-atom, in ASCII; the domain is host names' letters, digits and hyphens, and may
# have no dot: the default sender is kitchen@localhost, and a local relay delivers to
# such addresses. Quoted local parts and [address literals] are refused: no kitchen needs
# them, and each is a way to smuggle a space or a comma into a header.
_ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
EMAIL_LENGTH = 254  # the longest address SMTP's 256-octet path holds, <> included


def email_problem(value: object) -> str | None:
    """Why `value` is not an address Kitchen can mail, or None."""
    example = "like name@example.com"
    if not isinstance(value, str) or not value:
        return f"must be an email address {example}"
    if len(value) > EMAIL_LENGTH:
        return f"must be an email address of at most {EMAIL_LENGTH} characters"
    if not value.isascii():
        return (
            f"must be an email address in plain ASCII ({example}): "
            "the mailer cannot send to other characters"
        )
    if not _EMAIL.fullmatch(value):
        return f"must be an email address {example} (one address; no name, spaces or quotes)"
    if len(value.partition("@")[0]) > 64:
        return "must be an email address whose part before @ is at most 64 characters"
    return None


def is_timezone(name: str) -> bool:
    """Whether `name` is a time zone zoneinfo knows. A name with path parts (absolute,
    "..", a backslash) is refused before zoneinfo opens a file by it."""
    if not name or len(name) > 64 or name.startswith("/") or "\\" in name or ".." in name:
        return False
    if not all(c.isascii() and (c.isalnum() or c in "/_+-") for c in name):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


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
    errors: list[FieldError] = []
    # Unknown fields are refused, as everywhere else; the checks cost a len() per object
    # when there are none (this is the intake's hot path).
    if len(data) != 1 or "products" not in data:
        errors += [_unknown_field(name) for name in sorted(data) if name != "products"]
    products = data.get("products")
    if products is None:
        raise InvalidOrder([*errors, FieldError("products", "is required")])
    if not isinstance(products, list):
        raise InvalidOrder([*errors, FieldError("products", "must be a list")])
    if not products:
        raise InvalidOrder([*errors, FieldError("products", "must not be empty")])
    if len(products) > max_lines:
        raise InvalidOrder(
            [*errors, FieldError("products", f"at most {max_lines} lines per order")]
        )
    lines: list[Line] = []
    for i, item in enumerate(products):
        where = f"products[{i}]"
        if not isinstance(item, dict):
            errors.append(FieldError(where, "must be an object with product_id and quantity"))
            continue
        if len(item) != 2 or "product_id" not in item or "quantity" not in item:
            errors += [
                _unknown_field(f"{where}.{n}") for n in sorted(item) if n not in _LINE_FIELDS
            ]
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


_LINE_FIELDS = ("product_id", "quantity")


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
