"""The reference seed: the reference kitchen that `POST /order/seed` creates.

The reference menu is defined here once; the tests import it rather than copy it. The
seed makes its ingredients (with their first ledger rows) through `inventory.create` and
its product through `menu.create`, as a merchant's requests would: it writes no row of
its own.
"""

from __future__ import annotations

from typing import Any

import peewee as pw

from kitchen import inventory, menu, views
from kitchen.commands import CreateIngredient, CreateProduct
from kitchen.db import transaction
from kitchen.errors import Conflict
from kitchen.models import Ingredient, Merchant, Product

# Starting stock of the reference kitchen, in grams.
REFERENCE_STOCK = {"beef": 20_000, "cheese": 5_000, "onion": 1_000}
# Grams of each ingredient in one unit of each product.
REFERENCE_MENU = {"Burger": {"beef": 150, "cheese": 30, "onion": 20}}
BURGER = REFERENCE_MENU["Burger"]
# Made meanwhile by a seed running at the same moment: inventory and menu refuse a taken
# name (Conflict), or on PostgreSQL the unique index does once the other seed commits.
_TAKEN = (Conflict, pw.IntegrityError)


def seed(merchant_id: int, rules: inventory.AlertRules) -> tuple[bool, dict[str, Any]]:
    """Create the reference kitchen if missing; never duplicates, never resets stock, never
    changes a product that is there. Returns (created, the kitchen's products and
    ingredients, shown as GET /products and GET /ingredients show them). One transaction:
    two seeds at once make one kitchen, and one of them says it created it. Ingredients
    start at their par level, so none alerts (`rules`)."""
    created = False
    with transaction():
        ingredients = {}
        for name, grams in REFERENCE_STOCK.items():
            ingredients[name], new = _ingredient(merchant_id, name, grams, rules)
            created |= new
        products = []
        for product_name, recipe in REFERENCE_MENU.items():
            lines = {ingredients[name].id: grams for name, grams in recipe.items()}
            product, new = _product(merchant_id, product_name, lines)
            products.append(product)
            created |= new
        merchant = Merchant.get_by_id(merchant_id)
        mine = Ingredient.select().where(Ingredient.merchant == merchant_id)
        stock = {i.id: i.stock for i in mine}
        view = views.seeded(
            [views.product(p, stock) for p in products],
            [inventory.view(i, merchant, rules) for i in ingredients.values()],
        )
    return created, view


def _ingredient(
    merchant_id: int, name: str, grams: int, rules: inventory.AlertRules
) -> tuple[Ingredient, bool]:
    """The merchant's ingredient `name`, made with `grams` (its par level) if missing."""
    mine = (Ingredient.merchant == merchant_id) & (Ingredient.name == name)
    found: Ingredient | None = Ingredient.get_or_none(mine)
    if found is not None:
        return found, False
    try:
        new = CreateIngredient(name=name, stock=grams, full_stock=grams, threshold=None)
        made = inventory.create(merchant_id, new, rules)
    except _TAKEN:
        return Ingredient.get(mine), False
    return Ingredient.get_by_id(made["id"]), True


def _product(merchant_id: int, name: str, recipe: dict[int, int]) -> tuple[Product, bool]:
    """The merchant's product `name` (deleted or not, as it is), made with `recipe` (grams
    by ingredient id) if missing."""
    mine = (Product.merchant == merchant_id) & (Product.name == name)
    found: Product | None = Product.get_or_none(mine)
    if found is not None:
        return found, False
    try:
        made = menu.create(merchant_id, CreateProduct(name=name, recipe=recipe))
    except _TAKEN:
        return Product.get(mine), False
    return Product.get_by_id(made["id"]), True
