"""The kitchen's rules, as plain Python: no database, broker or web framework here.

Stock is integer grams. A threshold is an exact Fraction of an ingredient's full level,
so "below 50%" is decided by integer arithmetic, never by float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeGuard

# ingredient id -> grams of it in one unit of a product
Recipe = Mapping[int, int]

# Ids are 64-bit signed integers, as the database stores them: a larger number names
# nothing (and SQLite's driver raises OverflowError instead of finding nothing).
MAX_ID = 2**63 - 1


def is_id(value: Any) -> TypeGuard[int]:
    """A JSON value that can be an id: an int (not a bool) from 1 to MAX_ID."""
    return type(value) is int and 0 < value <= MAX_ID


@dataclass(frozen=True)
class Line:
    product_id: int
    quantity: int


@dataclass
class IngredientState:
    """What the rules need to know of one ingredient; `apply_order` updates it in place."""

    id: int
    name: str
    stock: int
    full_stock: int
    armed: bool
    threshold: Fraction  # from the settings: there is no second default here


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


def is_below(stock: int, full_stock: int, threshold: Fraction) -> bool:
    """stock < threshold x full_stock, exactly."""
    return stock * threshold.denominator < full_stock * threshold.numerator


def settle_alert(ingredient: IngredientState) -> bool:
    """The alert rule, after any change of stock, full level or threshold.

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
        f"{ingredients[i].name} needs {grams} g, {ingredients[i].stock} g left"
        for i, grams in sorted(needed.items())
        if ingredients[i].stock < grams
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
    """Add stock; above the full level, the full level rises to it. Climbing back to or
    above the threshold re-arms the alert. Returns whether it crossed (never)."""
    if grams <= 0:
        raise StockError("grams must be a positive integer")
    ingredient.stock += grams
    ingredient.full_stock = max(ingredient.full_stock, ingredient.stock)
    return settle_alert(ingredient)


def count(ingredient: IngredientState, grams: int) -> bool:
    """A physical count: the stock becomes what was counted. Returns whether it crossed."""
    if grams < 0:
        raise StockError("grams must not be negative")
    ingredient.stock = grams
    ingredient.full_stock = max(ingredient.full_stock, ingredient.stock)
    return settle_alert(ingredient)


def waste(ingredient: IngredientState, grams: int) -> bool:
    """Remove spoiled or dropped stock, which may cross like an order. Returns whether it
    crossed."""
    if grams <= 0:
        raise StockError("grams must be a positive integer")
    if grams > ingredient.stock:
        raise StockError(f"only {ingredient.stock} g of {ingredient.name} are in stock")
    ingredient.stock -= grams
    return settle_alert(ingredient)


def change_levels(
    ingredient: IngredientState,
    full_stock: int | None = None,
    threshold: Fraction | None = None,
) -> bool:
    """A new full level or threshold, then the alert rule again: falling below by such a
    change alerts once, rising above re-arms. Returns whether it crossed."""
    if full_stock is not None:
        if full_stock <= 0:
            raise StockError("full_stock must be a positive integer")
        ingredient.full_stock = full_stock
    if threshold is not None:
        if not 0 < threshold < 1:
            raise StockError("threshold must be between 0 and 1")
        ingredient.threshold = threshold
    return settle_alert(ingredient)
