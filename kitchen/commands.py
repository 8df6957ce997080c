"""Typed commands: what a request body or a CLI command asks a use case to do.

Each command is a frozen dataclass with one `parse` that builds it from a JSON object
(a request's body, or the CLI's arguments under the same field names), by the rules of
`kitchen.validation`, and raises `kitchen.errors.Invalid` naming every bad field. The
HTTP edge and the CLI call the same `parse`, so both say the same thing about the same
mistake (the CLI names its own argument in the message: `--email: ...`). Use cases take
the command, never a body.

They live here together, not beside their use cases, because they belong to the edges:
`kitchen.http` and `kitchen.admin` import them without reaching into `inventory` or
`menu`, the use cases import them only as argument types, and every field an edge
accepts, with its limit, can be read in one file. What needs the database (an
ingredient of this merchant, a name not taken) stays with the use case.

POST /order's command (`orders.NewOrder` of `domain.Line`) is parsed by
`validation.parse_order`, written for the intake's hot path.

A PATCH field that is absent or null is left as it is (None here), but for a product's
price, which null removes: there `KEEP` marks "not given".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

from kitchen.domain import MAX_ID, UNITS, is_id
from kitchen.errors import FieldError, Invalid
from kitchen.models import LedgerEntry
from kitchen.validation import (
    GRAMS,
    IN_ITS_UNIT,
    MAX_RECIPE_LINES,
    PAYMENT_MODES,
    UNIT_WORDS,
    Body,
)

Recipe = dict[int, int]  # ingredient id -> its amount in one product, each ingredient once


class Keep(enum.Enum):
    """A PATCH field that was not given, where null means something (a price removed)."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP


LEAD_TIME, PACK_SIZE = "lead_time_days", "pack_size"


@dataclass(frozen=True)
class CreateIngredient:
    """POST /ingredients."""

    name: str
    stock: int
    full_stock: int | None  # the par level; None: the stock
    threshold: Fraction | None  # None: the merchant's
    unit: str = "g"  # domain.UNITS; stock and par level are counted in it
    lead_time_days: int = 2  # how long a delivery takes
    pack_size: int | None = None  # what its supplier sells it by, in `unit`

    @classmethod
    def parse(cls, data: Any) -> CreateIngredient:
        body = Body(
            data,
            {"name", "stock", "full_stock", "threshold", "unit", "lead_time_days", "pack_size"},
        )
        name = body.text("name")
        unit = body.choice("unit", UNITS) or "g"
        stock = body.grams("stock", positive=False, of=UNIT_WORDS[unit])
        full = body.grams("full_stock", required=False, of=UNIT_WORDS[unit])
        threshold = body.fraction("threshold")
        lead = body.days(LEAD_TIME)
        # null: any amount, as when it is left out
        pack = (
            None if body.data.get(PACK_SIZE) is None else body.grams(PACK_SIZE, of=UNIT_WORDS[unit])
        )
        body.check()
        assert name is not None and stock is not None
        return cls(name, stock, full, threshold, unit, 2 if lead is None else lead, pack)


@dataclass(frozen=True)
class PatchIngredient:
    """PATCH /ingredients/{id}: None leaves a field as it is."""

    name: str | None = None
    full_stock: int | None = None
    threshold: Fraction | None = None
    lead_time_days: int | None = None
    pack_size: int | None = None
    # pack_size sent as null: the supplier sells any amount (a pack_size of None above
    # leaves it as it is).
    any_amount: bool = False

    @classmethod
    def parse(cls, data: Any) -> PatchIngredient:
        body = Body(
            data, {"name", "full_stock", "threshold", "unit", "lead_time_days", "pack_size"}
        )
        name = body.text("name", required=False)
        full = body.grams("full_stock", required=False, of=IN_ITS_UNIT)
        threshold = body.fraction("threshold")
        lead = body.days(LEAD_TIME)
        any_amount = body.has(PACK_SIZE) and body.data[PACK_SIZE] is None
        pack = None if body.data.get(PACK_SIZE) is None else body.grams(PACK_SIZE, of=IN_ITS_UNIT)
        if body.has("unit"):
            # Every stored amount of it (stock, recipes, the ledger) is in its unit.
            body.errors.append(
                FieldError("unit", "is chosen when the ingredient is made and cannot change")
            )
        body.check()
        return cls(name, full, threshold, lead, pack, any_amount)


@dataclass(frozen=True)
class StockMove:
    """POST /ingredients/{id}/restock, /count or /waste: `kind` is the ledger's reason."""

    kind: str  # LedgerEntry.RESTOCK, COUNT or WASTE
    grams: int  # added, counted or wasted, in the ingredient's unit
    note: str | None = None
    field: str = GRAMS  # what the caller named the amount: "amount" or "grams"

    @classmethod
    def parse(cls, kind: str, data: Any) -> StockMove:
        body = Body(data, {"amount", "grams", "note"})
        field, grams = body.amount(positive=kind != LedgerEntry.COUNT)
        note = body.note("note")
        body.check()
        assert grams is not None
        return cls(kind, grams, note, field)


@dataclass(frozen=True)
class Said:
    """What a recipe line said of its ingredient beyond the id (`unit`, `ingredient`: the
    name), as GET /products shows them: a line sent back as it came is taken, and the
    use case checks that both still hold (`menu`). `line` is its index, for messages."""

    line: int
    unit: str | None
    name: str | None


Claims = dict[int, Said]  # ingredient id -> what its recipe line said of it


@dataclass(frozen=True)
class CreateProduct:
    """POST /products."""

    name: str
    recipe: Recipe
    price: int | None = None  # minor units (cents); None: no price
    said: Claims = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any) -> CreateProduct:
        body = Body(data, {"name", "recipe", "price"})
        name = body.text("name")
        price = body.price("price")
        body.check()
        said: Claims = {}
        recipe = _recipe(body.data.get("recipe"), required=True, said=said)
        assert name is not None and recipe is not None
        return cls(name, recipe, price, said)


@dataclass(frozen=True)
class PatchProduct:
    """PATCH /products/{id}: a new name, or the whole recipe, or a price, or several;
    None leaves a name or recipe, KEEP a price (None removes the price)."""

    name: str | None = None
    recipe: Recipe | None = None
    price: int | Keep | None = KEEP
    said: Claims = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any) -> PatchProduct:
        body = Body(data, {"name", "recipe", "price"})
        name = body.text("name", required=False)
        price = body.price("price") if body.has("price") else KEEP
        body.check()
        said: Claims = {}
        recipe = _recipe(body.data.get("recipe"), required=False, said=said)
        return cls(name, recipe, price, said)


def _recipe(data: Any, required: bool, said: Claims) -> Recipe | None:
    """`recipe: [{"ingredient_id", "amount" (or "grams")}]`, each ingredient once; `unit`
    and `ingredient` (its name) may come too, as GET shows them, and go to `said`.
    Whether each is the merchant's, and what it said holds, is for the use case to say
    (`menu`)."""
    errors: list[FieldError] = []
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_RECIPE_LINES:
        if data is None and not required:
            return None
        raise Invalid([FieldError("recipe", f"must be a list of 1 to {MAX_RECIPE_LINES} lines")])
    recipe: Recipe = {}
    for n, line in enumerate(data):
        body = Body(line, {"ingredient_id", "amount", "grams", "unit", "ingredient"})
        ingredient_id = line.get("ingredient_id") if isinstance(line, dict) else None
        _, grams = body.amount()
        unit = body.text("unit", required=False)
        name = body.text("ingredient", required=False)
        if is_id(ingredient_id) and (unit is not None or name is not None):
            said[ingredient_id] = Said(n, unit, name)
        if not is_id(ingredient_id):
            body.errors.append(FieldError("ingredient_id", "must be an ingredient id"))
        elif ingredient_id in recipe:
            body.errors.append(FieldError("ingredient_id", "is named twice"))
        errors += [FieldError(f"recipe[{n}].{e.field}", e.message) for e in body.errors]
        if not body.errors and grams is not None and is_id(ingredient_id):
            recipe[ingredient_id] = grams
    if errors:
        raise Invalid(errors)
    return recipe


@dataclass(frozen=True)
class PatchMerchant:
    """PATCH /merchant: None leaves a field as it is."""

    name: str | None = None
    alert_email: str | None = None
    threshold: Fraction | None = None
    payments: str | None = None  # validation.PAYMENT_MODES
    currency: str | None = None  # ISO 4217, upper case
    digest_hour: int | None = None  # the local hour of the morning digest (0-23)
    no_digest: bool = False  # digest_hour sent as null: no digest from now on
    timezone: str | None = None  # an IANA name (validation.is_timezone)

    @classmethod
    def parse(cls, data: Any) -> PatchMerchant:
        body = Body(
            data,
            {"name", "alert_email", "threshold", "payments", "currency", "digest_hour", "timezone"},
        )
        name = body.text("name", required=False)
        email = body.email("alert_email", required=False)
        threshold = body.fraction("threshold")
        payments = body.choice("payments", PAYMENT_MODES)
        currency = body.currency("currency")
        hour = body.hour("digest_hour")
        no_digest = body.has("digest_hour") and body.data["digest_hour"] is None
        zone = body.timezone("timezone")
        body.check()
        return cls(name, email, threshold, payments, currency, hour, no_digest, zone)


@dataclass(frozen=True)
class CreateMerchant:
    """`merchant create --name --email`."""

    name: str
    alert_email: str

    @classmethod
    def parse(cls, data: Any) -> CreateMerchant:
        body = Body(data, {"name", "alert_email"})
        name = body.text("name")
        email = body.email("alert_email")
        body.check()
        assert name is not None and email is not None
        return cls(name, email)


@dataclass(frozen=True)
class AddKey:
    """`merchant key add MERCHANT --name`: the name of a new key."""

    name: str

    @classmethod
    def parse(cls, data: Any) -> AddKey:
        body = Body(data, {"name"})
        name = body.text("name")
        body.check()
        assert name is not None
        return cls(name)


# The most a refund may ask, in cents: what the (64-bit) amount columns hold.
MAX_AMOUNT = MAX_ID


@dataclass(frozen=True)
class CancelOrder:
    """POST /order/{id}/cancel: the body is optional (None: no body)."""

    reason: str | None = None

    @classmethod
    def parse(cls, data: Any) -> CancelOrder:
        if data is None:
            return cls()
        body = Body(data, {"reason"})
        reason = body.note("reason")
        body.check()
        return cls(reason)


@dataclass(frozen=True)
class RefundOrder:
    """POST /order/{id}/refund: `amount` in cents (None: all that is left); `restock`
    gives the order's ingredients back, with a full refund only. Whether the amount is
    left to refund is the payment's to say (`payments.Cycle.request_refund`). `key_name`:
    the key that asks (the edge's to say, not the body's), named on restock's ledger rows."""

    amount: int | None = None
    restock: bool = False
    reason: str | None = None
    key_name: str | None = None

    @classmethod
    def parse(cls, data: Any, key_name: str | None = None) -> RefundOrder:
        body = Body(data, {"amount", "restock", "reason"})
        amount = body.data.get("amount")
        if body.has("amount") and (type(amount) is not int or not 1 <= amount <= MAX_AMOUNT):
            body.errors.append(
                FieldError("amount", f"must be a whole number of cents from 1 to {MAX_AMOUNT}")
            )
        restock = body.data.get("restock", False)
        if type(restock) is not bool:
            body.errors.append(FieldError("restock", "must be true or false"))
        reason = body.note("reason")
        body.check()
        return cls(amount, restock, reason, key_name)
