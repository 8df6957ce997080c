"""The reference seed: the reference kitchen that `POST /order/seed` creates.

The reference menu is defined here once; the tests import it rather than copy it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from kitchen import inventory, views
from kitchen.db import transaction
from kitchen.models import Ingredient, LedgerEntry, Merchant, Product, RecipeLine
from kitchen.settings import Alerts

# Starting stock of the reference kitchen, in grams.
REFERENCE_STOCK = {"beef": 20_000, "cheese": 5_000, "onion": 1_000}
# Grams of each ingredient in one unit of each product.
REFERENCE_MENU = {"Burger": {"beef": 150, "cheese": 30, "onion": 20}}
BURGER = REFERENCE_MENU["Burger"]
# The `[alerts] threshold` setting's default, for callers without settings (tests).
DEFAULT_THRESHOLD = Alerts().threshold_fraction


def seed(
    merchant_id: int, default_threshold: Fraction = DEFAULT_THRESHOLD
) -> tuple[bool, dict[str, Any]]:
    """Create the reference kitchen if missing; never duplicates, never resets stock.
    Returns (created, the kitchen's products and ingredients, shown as GET /products and
    GET /ingredients show them: `default_threshold` is the `[alerts] threshold` setting)."""
    created = False
    with transaction():
        ingredients = {}
        for name, grams in REFERENCE_STOCK.items():
            ingredient, new = Ingredient.get_or_create(
                merchant=merchant_id,
                name=name,
                defaults={"stock": grams, "full_stock": grams, "alert_armed": True},
            )
            if new:
                LedgerEntry.create(
                    merchant=merchant_id,
                    ingredient=ingredient.id,
                    grams=grams,
                    reason=LedgerEntry.INITIAL,
                    stock_after=grams,
                )
            ingredients[name] = ingredient
            created |= new
        products = []
        for product_name, recipe in REFERENCE_MENU.items():
            product, new = Product.get_or_create(merchant=merchant_id, name=product_name)
            created |= new
            for name, grams in recipe.items():
                _, new = RecipeLine.get_or_create(
                    product=product, ingredient=ingredients[name], defaults={"grams": grams}
                )
                created |= new
            products.append(product)
        merchant = Merchant.get_by_id(merchant_id)
        mine = Ingredient.select().where(Ingredient.merchant == merchant_id)
        stock = {i.id: i.stock for i in mine}
        view = views.seeded(
            [views.product(p, stock) for p in products],
            [inventory.view(i, merchant, default_threshold) for i in ingredients.values()],
        )
    return created, view
