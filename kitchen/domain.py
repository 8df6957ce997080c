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


@dataclass
class Outcome:
    applied: bool
    reason: str | None = None
    # ingredients whose stock this order took below their threshold while armed
    crossed: list[int] = field(default_factory=list)


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


def apply_order(
    lines: Iterable[Line],
    recipes: Mapping[int, Recipe],
    ingredients: Mapping[int, IngredientState],
) -> Outcome:
    """Deduct one order all or nothing; report the threshold crossings it caused.

    Alerts fire once per crossing: a crossing disarms the ingredient, and only a
    restock (see `restock`) arms it again.
    """
    lines = list(lines)
    unknown = sorted({line.product_id for line in lines if line.product_id not in recipes})
    if unknown:
        return Outcome(False, f"unknown product {', '.join(map(str, unknown))}")
    needed = grams_needed(lines, recipes)
    short = [
        f"{ingredients[i].name} needs {grams} g, {ingredients[i].stock} g left"
        for i, grams in sorted(needed.items())
        if ingredients[i].stock < grams
    ]
    if short:
        return Outcome(False, "insufficient stock: " + "; ".join(short))
    outcome = Outcome(True)
    for ingredient_id, grams in sorted(needed.items()):
        ingredient = ingredients[ingredient_id]
        ingredient.stock -= grams
        if ingredient.armed and is_below(
            ingredient.stock, ingredient.full_stock, ingredient.threshold
        ):
            ingredient.armed = False
            outcome.crossed.append(ingredient_id)
    return outcome


def restock(ingredient: IngredientState, grams: int) -> None:
    """Add stock; climbing back to or above the threshold re-arms the alert, so the next
    crossing alerts again. (The rule is here for the restock endpoint of the merchants
    issue, which is its first caller outside the tests.)"""
    if grams <= 0:
        raise ValueError("restock needs a positive number of grams")
    ingredient.stock += grams
    ingredient.full_stock = max(ingredient.full_stock, ingredient.stock)
    if not is_below(ingredient.stock, ingredient.full_stock, ingredient.threshold):
        ingredient.armed = True
