"""Use cases take typed commands (kitchen.commands), and their errors (kitchen.errors) get
their HTTP status in one table, the app's exception handlers."""

from __future__ import annotations

import asyncio
import inspect
import json
from fractions import Fraction

import pytest

from app import Kitchen
from kitchen import errors, inventory, menu, merchants
from kitchen.commands import (
    CreateIngredient,
    CreateProduct,
    PatchIngredient,
    PatchMerchant,
    PatchProduct,
    StockMove,
)
from kitchen.db import session
from kitchen.errors import FieldError
from kitchen.http import Api, build_app
from kitchen.models import Ingredient, LedgerEntry, Merchant, RecipeLine
from kitchen.settings import Settings


def test_each_use_case_error_has_its_status_and_title(test_settings: Settings) -> None:
    app = build_app(Api(test_settings, merchant_id=1))
    expected: dict[type[Exception], tuple[Exception, int, str]] = {
        errors.MalformedBody: (
            errors.MalformedBody([FieldError("body", "is bad")]),
            400,
            "Malformed JSON",
        ),
        errors.InvalidOrder: (
            errors.InvalidOrder([FieldError("products", "x")]),
            422,
            "Invalid order",
        ),
        errors.Invalid: (errors.Invalid([FieldError("name", "x")]), 422, "Invalid request"),
        errors.KeyReused: (errors.KeyReused("k1"), 422, "Idempotency-Key reused"),
        errors.NotFound: (errors.NotFound("product", 3), 404, "Product not found"),
        errors.Conflict: (
            errors.Conflict("a product named 'Soup' exists already"),
            409,
            "Conflict",
        ),
    }
    raised = {
        kind
        for _, kind in inspect.getmembers(errors, inspect.isclass)
        if kind.__module__ == errors.__name__ and issubclass(kind, Exception)
    }
    assert raised == set(expected), "an error of kitchen.errors without a status here"
    for exc, status, title in expected.values():
        handler = next(
            app.exception_handlers[k] for k in type(exc).__mro__ if k in app.exception_handlers
        )
        response = asyncio.run(handler(None, exc))
        body = json.loads(bytes(response.body))
        assert (response.status_code, body["title"], body["detail"]) == (status, title, str(exc))
        assert response.headers["content-type"] == "application/problem+json"
        if isinstance(exc, errors.Invalid):
            assert body["errors"] == [{"field": e.field, "message": e.message} for e in exc.errors]


def test_use_cases_take_typed_commands(kitchen: Kitchen) -> None:
    me = kitchen.merchant_id
    rules = inventory.AlertRules(Fraction(1, 5), kitchen.settings.kafka.notify_topic)
    flour = inventory.create(me, CreateIngredient("flour", 300, 1000, None), rules)
    assert (flour["stock"], flour["full_stock"], flour["low"]) == (300, 1000, False)
    moved = inventory.move(me, flour["id"], StockMove(LedgerEntry.WASTE, 120, "wet"), rules)
    assert moved["stock"] == 180 and moved["low"] is True
    patched = inventory.update(me, flour["id"], PatchIngredient(name="wheat"), rules)
    assert (patched["name"], patched["stock"]) == ("wheat", 180)
    bread = menu.create(me, CreateProduct("Bread", {flour["id"]: 100}))
    assert menu.update(me, bread["id"], PatchProduct(recipe={flour["id"]: 90}))["can_make"] == 2
    merchants.update(me, PatchMerchant(name="Chez Ada", threshold=Fraction(1, 2)), rules)
    with session():
        row = Ingredient.get_by_id(flour["id"])
        assert (row.name, row.stock, row.full_stock) == ("wheat", 180, 1000)
        ledger = (
            LedgerEntry.select().where(LedgerEntry.ingredient == row.id).order_by(LedgerEntry.id)
        )
        assert [(e.reason, e.grams, e.note) for e in ledger] == [
            (LedgerEntry.INITIAL, 300, None),
            (LedgerEntry.WASTE, -120, "wet"),
        ]
        recipe = RecipeLine.select().where(RecipeLine.product == bread["id"])
        assert [(r.ingredient_id, r.grams) for r in recipe] == [(row.id, 90)]
        merchant = Merchant.get_by_id(me)
        assert (merchant.name, Fraction(str(merchant.threshold))) == ("Chez Ada", Fraction(1, 2))


def test_use_cases_raise_errors_that_carry_no_http_status(kitchen: Kitchen) -> None:
    me = kitchen.merchant_id
    rules = inventory.AlertRules(Fraction(1, 5), kitchen.settings.kafka.notify_topic)
    salt = inventory.create(me, CreateIngredient("salt", 50, None, None), rules)
    with pytest.raises(errors.Conflict) as taken:
        inventory.create(me, CreateIngredient("salt", 10, None, None), rules)
    with pytest.raises(errors.Invalid) as too_much:
        inventory.move(me, salt["id"], StockMove(LedgerEntry.WASTE, 51, None), rules)
    assert [e.field for e in too_much.value.errors] == ["grams"]
    with pytest.raises(errors.NotFound) as missing:
        menu.update(me, 999_999, PatchProduct(name="Soup"))
    for exc in (taken.value, too_much.value, missing.value):
        assert not any(hasattr(exc, a) for a in ("status", "status_code", "title")), exc
    with session():
        assert Ingredient.get_by_id(salt["id"]).stock == 50
