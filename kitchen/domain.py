"""The kitchen's rules, as plain Python: no database, broker or web framework here.

Stock is an integer of the ingredient's unit (UNITS: grams, millilitres or pieces). A
threshold is an exact Fraction of an ingredient's par level (`full_stock`: set when it is
created, changed only by the merchant; stock may stand above it), so "below 50%" is
decided by integer arithmetic, never by float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeGuard

# ingredient id -> grams of it in one unit of a product
Recipe = Mapping[int, int]

# Ids are 64-bit signed integers, as the database stores them: a larger number names
# nothing (and SQLite's driver raises OverflowError instead of finding nothing).
MAX_ID = 2**63 - 1

# The most grams any one quantity may hold: a recipe line, a stock (whatever restocks
# add up to), a par level, one restock, count or waste. A thousand tonnes is more than
# any kitchen holds, and stays far inside the 64-bit columns: a stock plus a restock,
# a ledger row (-stock to +MAX_GRAMS) or a threshold product never comes near 2**63.
MAX_GRAMS = 10**12

# Prices and the amount of a paid order, in minor units (cents): ten billion euros, far
# inside the 64-bit columns whatever an order's quantities multiply them by before the
# sum is checked (Python's integers do not overflow).
MAX_PRICE = 10**12
MAX_ORDER_AMOUNT = 10**12

# Thresholds are kept to this many decimal places: what is checked is what is stored.
THRESHOLD_PLACES = 6

# What an ingredient is counted in (models.Ingredient.G, ML, PIECE), chosen when it is
# made. Every amount of it (stock, par level, recipe line, move, ledger row) is an integer
# of its unit; "grams" in names and fields is the older word for that amount.
UNITS = ("g", "ml", "piece")


# Grams and millilitres from a thousand on, as a cook says them: "1.5 kg", "2 l".
LARGER = {"g": "kg", "ml": "l"}


def amount_text(amount: int | Fraction, unit: str, scaled: bool = False) -> str:
    """An amount as every message names it: "480 g", "250 ml", "1 piece", "3 pieces"; a
    fraction (an alert's level: par level x threshold) shortly, "2.5 pieces". `scaled`:
    a whole amount of 1000 g or ml or more in kg or l, exactly ("1.25 kg"), for what a
    person will order or carry."""
    if scaled and unit in LARGER and isinstance(amount, int) and abs(amount) >= 1000:
        whole, rest = divmod(abs(amount), 1000)
        sign = "-" if amount < 0 else ""
        decimals = f".{rest:03d}".rstrip("0") if rest else ""
        return f"{sign}{whole}{decimals} {LARGER[unit]}"
    number = str(amount) if isinstance(amount, int) else f"{float(amount):g}"
    if unit == "piece":
        return f"{number} piece" if amount == 1 else f"{number} pieces"
    return f"{number} {unit}"


def is_id(value: Any) -> TypeGuard[int]:
    """A JSON value that can be an id: an int (not a bool) from 1 to MAX_ID."""
    return type(value) is int and 0 < value <= MAX_ID


@dataclass(frozen=True)
class Line:
    product_id: int
    quantity: int


def order_amount(lines: Iterable[Line], prices: Mapping[int, int]) -> int:
    """What an order costs: each line's price (by product id) times its quantity, summed,
    in minor units; never a client's figure."""
    return sum(prices[line.product_id] * line.quantity for line in lines)


@dataclass
class IngredientState:
    """What the rules need to know of one ingredient; `apply_order` updates it in place."""

    id: int
    name: str
    stock: int
    full_stock: int
    armed: bool
    threshold: Fraction  # from the settings: there is no second default here
    unit: str = "g"  # UNITS: what the messages name its amounts in


# Why an order was rejected, as a bounded class (the reason's text names grams and ids).
UNKNOWN_PRODUCT, INSUFFICIENT_STOCK = "unknown_product", "insufficient_stock"


@dataclass
class Outcome:
    applied: bool
    reason: str | None = None
    reason_class: str | None = None  # UNKNOWN_PRODUCT or INSUFFICIENT_STOCK when rejected
    # ingredients whose stock this order took below their threshold while armed
    crossed: list[int] = field(default_factory=list)
    # grams taken from each ingredient (for the ledger)
    used: dict[int, int] = field(default_factory=dict)


def grams_needed(lines: Iterable[Line], recipes: Mapping[int, Recipe]) -> dict[int, int]:
    """Recipe x quantity, summed per ingredient. Every product must have a recipe."""
    needed: dict[int, int] = {}
    for line in lines:
        for ingredient_id, grams in recipes[line.product_id].items():
            needed[ingredient_id] = needed.get(ingredient_id, 0) + grams * line.quantity
    return needed


def threshold(value: float) -> Fraction | None:
    """A threshold as it is stored: the number rounded to THRESHOLD_PLACES decimal places,
    exactly ("0.3" is 3/10); None unless that is strictly between 0 and 1 (1e-9 would be
    0, which never alerts, and 0.99999999 would be 1)."""
    if math.isnan(value) or math.isinf(value):
        return None
    rounded = round(Fraction(str(value)), THRESHOLD_PLACES)
    return rounded if 0 < rounded < 1 else None


def is_below(stock: int, full_stock: int, threshold: Fraction) -> bool:
    """stock < threshold x full_stock, exactly."""
    return stock * threshold.denominator < full_stock * threshold.numerator


def settle_alert(ingredient: IngredientState) -> bool:
    """The alert rule, after any change of stock, par level or threshold.

    Below the threshold while armed is a crossing: the alert fires once and disarms.
    At or above the threshold the alert is armed again, so the next crossing alerts.
    Returns whether this change is a crossing.
    """
    if is_below(ingredient.stock, ingredient.full_stock, ingredient.threshold):
        crossed = ingredient.armed
        ingredient.armed = False
        return crossed
    ingredient.armed = True
    return False


def apply_order(
    lines: Iterable[Line],
    recipes: Mapping[int, Recipe],
    ingredients: Mapping[int, IngredientState],
) -> Outcome:
    """Deduct one order all or nothing; report the threshold crossings it caused."""
    lines = list(lines)
    unknown = sorted({line.product_id for line in lines if line.product_id not in recipes})
    if unknown:
        return Outcome(False, f"unknown product {', '.join(map(str, unknown))}", UNKNOWN_PRODUCT)
    needed = grams_needed(lines, recipes)
    short = [
        f"{s.name} needs {amount_text(grams, s.unit)}, {amount_text(s.stock, s.unit)} left"
        for i, grams in sorted(needed.items())
        if (s := ingredients[i]).stock < grams
    ]
    if short:
        return Outcome(False, "insufficient stock: " + "; ".join(short), INSUFFICIENT_STOCK)
    outcome = Outcome(True)
    for ingredient_id, grams in sorted(needed.items()):
        ingredient = ingredients[ingredient_id]
        ingredient.stock -= grams
        outcome.used[ingredient_id] = grams
        if settle_alert(ingredient):
            outcome.crossed.append(ingredient_id)
    return outcome


class StockError(ValueError):
    """A stock change the rules refuse (the message says why)."""


def restock(ingredient: IngredientState, grams: int) -> bool:
    """Add stock, up to MAX_GRAMS in all; it may stand above the par level, which stays.
    Climbing back to or above the threshold re-arms the alert. Returns whether it crossed
    (never)."""
    if grams <= 0:
        raise StockError("grams must be a positive integer")
    if ingredient.stock + grams > MAX_GRAMS:
        unit = ingredient.unit
        raise StockError(
            f"{ingredient.name} would hold {amount_text(ingredient.stock + grams, unit)}, "
            f"more than the limit of {amount_text(MAX_GRAMS, unit)}"
        )
    ingredient.stock += grams
    return settle_alert(ingredient)


def give_back(ingredient: IngredientState, grams: int) -> bool:
    """Stock an order took, returned (its payment failed, or it was refunded with
    restock): a restock of exactly what the ledger says it took."""
    return restock(ingredient, grams)


def count(ingredient: IngredientState, grams: int) -> bool:
    """A physical count: the stock becomes what was counted, above the par level too (which
    stays). Returns whether it crossed."""
    if not 0 <= grams <= MAX_GRAMS:
        raise StockError(f"grams must be from 0 to {MAX_GRAMS}")
    ingredient.stock = grams
    return settle_alert(ingredient)


def waste(ingredient: IngredientState, grams: int) -> bool:
    """Remove spoiled or dropped stock, which may cross like an order. Returns whether it
    crossed."""
    if grams <= 0:
        raise StockError("grams must be a positive integer")
    if grams > ingredient.stock:
        in_stock = amount_text(ingredient.stock, ingredient.unit)
        raise StockError(f"only {in_stock} of {ingredient.name} are in stock")
    ingredient.stock -= grams
    return settle_alert(ingredient)


def change_levels(
    ingredient: IngredientState,
    full_stock: int | None = None,
    threshold: Fraction | None = None,
) -> bool:
    """A new par level or threshold, then the alert rule again: falling below by such a
    change alerts once, rising above re-arms. Returns whether it crossed."""
    if full_stock is not None:
        if not 0 < full_stock <= MAX_GRAMS:
            raise StockError(f"full_stock must be a positive integer, at most {MAX_GRAMS}")
        ingredient.full_stock = full_stock
    if threshold is not None:
        if not 0 < threshold < 1:
            raise StockError("threshold must be between 0 and 1")
        ingredient.threshold = threshold
    return settle_alert(ingredient)
