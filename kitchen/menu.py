"""The menu: a merchant's products and their recipes (grams of each ingredient per unit).

A deleted product stays in the database for the orders that name it; new orders naming
it are refused (422), and it leaves the menu.
"""

from __future__ import annotations

from typing import Any

from kitchen import views
from kitchen.commands import KEEP, Claims, CreateProduct, PatchProduct, Recipe
from kitchen.db import session, transaction, utcnow
from kitchen.domain import UNIT_NAMES
from kitchen.errors import Conflict, FieldError, Invalid, NotFound
from kitchen.models import Ingredient, Product, RecipeLine


def _check_ingredients(merchant_id: int, recipe: Recipe, said: Claims) -> None:
    """Each ingredient of the recipe is the merchant's, and is what its line said of it
    (its unit and name, where the line said them): a line written for grams is not
    taken for an ingredient counted in pieces. (Its shape is checked at the edge:
    `commands`.)"""
    mine = {
        i.id: i
        for i in Ingredient.select(Ingredient.id, Ingredient.name, Ingredient.unit).where(
            Ingredient.merchant == merchant_id, Ingredient.id.in_(list(recipe))
        )
    }
    errors = [
        FieldError(f"recipe[{n}].ingredient_id", f"unknown ingredient {ingredient_id}")
        for n, ingredient_id in enumerate(recipe)
        if ingredient_id not in mine
    ]
    for ingredient_id, claim in said.items():
        row = mine.get(ingredient_id)
        if row is None:
            continue
        if claim.unit is not None and claim.unit != row.unit:
            errors.append(
                FieldError(
                    f"recipe[{claim.line}].unit",
                    f"{row.name} is counted in {UNIT_NAMES.get(row.unit, row.unit)}, "
                    f"not {claim.unit}",
                )
            )
        if claim.name is not None and claim.name != row.name:
            errors.append(
                FieldError(
                    f"recipe[{claim.line}].ingredient",
                    f"ingredient {row.id} is {row.name}, not {claim.name}",
                )
            )
    if errors:
        raise Invalid(errors)


def _stock(merchant_id: int) -> dict[int, int]:
    return {
        i.id: i.stock
        for i in Ingredient.select(Ingredient.id, Ingredient.stock).where(
            Ingredient.merchant == merchant_id
        )
    }


def _get(merchant_id: int, product_id: int) -> Product:
    found: Product | None = Product.get_or_none(
        Product.id == product_id, Product.merchant == merchant_id, Product.deleted_at.is_null()
    )
    if found is None:
        raise NotFound("product", product_id)
    return found


def _name_free(merchant_id: int, name: str, product_id: int | None = None) -> None:
    taken = Product.get_or_none(
        Product.merchant == merchant_id, Product.name == name, Product.deleted_at.is_null()
    )
    if taken is not None and taken.id != product_id:
        raise Conflict(f"a product named {name!r} exists already")


def create(merchant_id: int, new: CreateProduct) -> dict[str, Any]:
    """POST /products: `{"name", "recipe": [{"ingredient_id", "grams"}], "price"?}`."""
    with transaction():
        _check_ingredients(merchant_id, new.recipe, new.said)
        _name_free(merchant_id, new.name)
        product = Product.create(merchant=merchant_id, name=new.name, price=new.price)
        _write_recipe(product, new.recipe)
        return views.product(product, _stock(merchant_id))


def _write_recipe(product: Product, recipe: Recipe) -> None:
    RecipeLine.delete().where(RecipeLine.product == product.id).execute()
    RecipeLine.insert_many(
        [{"product": product.id, "ingredient": i, "grams": g} for i, g in recipe.items()]
    ).execute()


def all_of(merchant_id: int) -> list[dict[str, Any]]:
    with session():
        stock = _stock(merchant_id)
        rows = Product.select().where(Product.merchant == merchant_id, Product.deleted_at.is_null())
        return [views.product(p, stock) for p in rows.order_by(Product.id)]


def one(merchant_id: int, product_id: int) -> dict[str, Any]:
    with session():
        return views.product(_get(merchant_id, product_id), _stock(merchant_id))


def update(merchant_id: int, product_id: int, change: PatchProduct) -> dict[str, Any]:
    """PATCH /products/{id}: a new name, or the whole recipe, or a price (null removes
    it), or several. Orders already applied keep what they took; pending ones are
    applied with the recipe of the day. A paid order keeps the amount it was placed at."""
    name, recipe = change.name, change.recipe
    with transaction():
        product = _get(merchant_id, product_id)
        if recipe is not None:
            _check_ingredients(merchant_id, recipe, change.said)
        if name is not None:
            _name_free(merchant_id, name, product.id)
            product.name = name
        if change.price is not KEEP:
            product.price = change.price
        if name is not None or change.price is not KEEP:
            product.save()
        if recipe is not None:
            _write_recipe(product, recipe)
        return views.product(product, _stock(merchant_id))


def delete(merchant_id: int, product_id: int) -> None:
    """DELETE /products/{id}: off the menu; past orders keep their history."""
    with transaction():
        product = _get(merchant_id, product_id)
        product.deleted_at = utcnow()
        product.save()
