"""Typed commands (kitchen.commands): each body or set of CLI arguments becomes one frozen
dataclass, by one parse shared by the HTTP edge and the CLI; use-case errors carry no
HTTP status (kitchen.errors)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from fractions import Fraction
from typing import Any

import pytest

from kitchen import admin, commands, errors
from kitchen.errors import FieldError, Invalid
from kitchen.validation import email_problem, name_problem


@pytest.mark.parametrize(
    "parse, data, command",
    [
        (
            commands.CreateIngredient.parse,
            {"name": " flour ", "stock": 0, "full_stock": 900, "threshold": 0.25},
            commands.CreateIngredient("flour", 0, 900, Fraction(1, 4)),
        ),
        (
            commands.CreateIngredient.parse,
            {"name": "salt", "stock": 5},
            commands.CreateIngredient("salt", 5, None, None),
        ),
        (
            commands.PatchIngredient.parse,
            {"threshold": 0.3},
            commands.PatchIngredient(threshold=Fraction(3, 10)),
        ),
        (commands.PatchIngredient.parse, {"name": None}, commands.PatchIngredient()),
        (
            lambda data: commands.StockMove.parse("count", data),
            {"grams": 0, "note": "shelf"},
            commands.StockMove("count", 0, "shelf"),
        ),
        (
            lambda data: commands.StockMove.parse("waste", data),
            {"amount": 3},
            commands.StockMove("waste", 3, None, "amount"),
        ),
        (
            commands.CreateIngredient.parse,
            {"name": "egg", "stock": 12, "unit": "piece"},
            commands.CreateIngredient("egg", 12, None, None, "piece"),
        ),
        (
            commands.CreateProduct.parse,
            {"name": "Omelette", "recipe": [{"ingredient_id": 7, "amount": 3}]},
            commands.CreateProduct("Omelette", {7: 3}),
        ),
        (
            commands.CreateProduct.parse,
            {"name": "Soup", "recipe": [{"ingredient_id": 7, "grams": 100}]},
            commands.CreateProduct("Soup", {7: 100}),
        ),
        (commands.PatchProduct.parse, {"recipe": None}, commands.PatchProduct()),
        (
            commands.PatchMerchant.parse,
            {"alert_email": " a@example.com "},
            commands.PatchMerchant(alert_email="a@example.com"),
        ),
        (
            commands.CreateMerchant.parse,
            {"name": "Chez Ada", "alert_email": "ada@example.com"},
            commands.CreateMerchant("Chez Ada", "ada@example.com"),
        ),
        (commands.AddKey.parse, {"name": "till-1"}, commands.AddKey("till-1")),
    ],
)
def test_a_body_becomes_its_typed_command(parse: Any, data: Any, command: Any) -> None:
    parsed = parse(data)
    assert parsed == command and type(parsed) is type(command)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(parsed, dataclasses.fields(parsed)[0].name, None)


@pytest.mark.parametrize(
    "parse, data, field, message",
    [
        (
            lambda data: commands.StockMove.parse("waste", data),
            {"grams": 0},
            "grams",
            "must be a positive integer of grams",
        ),
        (commands.CreateProduct.parse, {"name": "Soup"}, "recipe", "must be a list of 1 to"),
        (
            commands.PatchProduct.parse,
            {"recipe": [{"ingredient_id": 7, "grams": 1}, {"ingredient_id": 7, "grams": 2}]},
            "recipe[1].ingredient_id",
            "is named twice",
        ),
        (commands.AddKey.parse, {"name": "a", "colour": "red"}, "colour", "is not a known"),
        (
            lambda data: commands.StockMove.parse("restock", data),
            {"amount": 1, "grams": 2},
            "amount",
            "amount and grams differ: give one of them",
        ),
        (
            lambda data: commands.StockMove.parse("count", data),
            {"amount": -1},
            "amount",
            "must be an integer of 0 or more in the ingredient's unit",
        ),
        (
            commands.CreateProduct.parse,
            {"name": "Soup", "recipe": [{"ingredient_id": 7, "amount": 1, "grams": "1"}]},
            "recipe[0].amount",
            "amount and grams differ: give one of them",
        ),
        (
            commands.CreateIngredient.parse,
            {"name": "a", "stock": 1, "unit": "l"},
            "unit",
            "must be one of g, ml, piece",
        ),
        (
            commands.CreateIngredient.parse,
            {"name": "milk", "stock": -1, "unit": "ml"},
            "stock",
            "must be an integer of 0 or more of millilitres",
        ),
        (
            commands.PatchIngredient.parse,
            {"unit": "ml"},
            "unit",
            "is chosen when the ingredient is made and cannot change",
        ),
    ],
)
def test_a_bad_body_names_its_field(parse: Any, data: Any, field: str, message: str) -> None:
    with pytest.raises(Invalid) as raised:
        parse(data)
    [error] = raised.value.errors
    assert error.field == field and error.message.startswith(message)


def _cli(capsys: pytest.CaptureFixture[str], **args: Any) -> tuple[int, str]:
    code = admin.run(argparse.Namespace(key_action=None, **args))
    return code, capsys.readouterr().err


def test_the_cli_says_what_the_api_says_naming_its_argument(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit 2 and one line, each message the API's for the same field (the same parse)."""
    code, err = _cli(capsys, action="create", name=" ", email="not-an-address")
    assert code == 2
    assert err == (
        f"merchant create: --email: {email_problem('not-an-address')}; "
        f"--name: {name_problem(' ')}\n"
    )
    with pytest.raises(Invalid) as raised:
        commands.PatchMerchant.parse({"name": " ", "alert_email": "not-an-address"})
    assert raised.value.errors == [
        FieldError("name", name_problem(" ") or ""),
        FieldError("alert_email", email_problem("not-an-address") or ""),
    ]


def test_use_case_errors_carry_no_http_status() -> None:
    kinds = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]
    raised = [k for k in kinds if issubclass(k, Exception)]
    assert {k.__name__ for k in raised} >= {"Invalid", "NotFound", "Conflict", "KeyReused"}
    for kind in raised:
        assert not any(hasattr(kind, a) for a in ("status", "status_code", "title")), kind


def test_the_cli_has_an_exit_code_for_each_error_a_use_case_raises_to_it() -> None:
    def code(exc: Exception) -> int:
        return next(c for kind, c in admin.EXIT_CODES.items() if isinstance(exc, kind))

    assert code(errors.Invalid([FieldError("name", "bad")])) == 2
    assert code(errors.NotFound("merchant", 9)) == 1
    assert code(errors.Conflict("taken")) == 1


@pytest.mark.parametrize(
    "parse, data, command",
    [
        (commands.CancelOrder.parse, None, commands.CancelOrder()),
        (commands.CancelOrder.parse, {}, commands.CancelOrder()),
        (commands.CancelOrder.parse, {"reason": " late\n"}, commands.CancelOrder("late")),
        (commands.RefundOrder.parse, {}, commands.RefundOrder(None, False, None)),
        (
            commands.RefundOrder.parse,
            {"amount": 1, "restock": False, "reason": "cold"},
            commands.RefundOrder(1, False, "cold"),
        ),
        (
            commands.RefundOrder.parse,
            {"amount": commands.MAX_AMOUNT, "restock": True},
            commands.RefundOrder(commands.MAX_AMOUNT, True, None),
        ),
    ],
)
def test_cancel_and_refund_bodies_become_commands(parse: Any, data: Any, command: Any) -> None:
    parsed = parse(data)
    assert parsed == command and type(parsed) is type(command)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(parsed, dataclasses.fields(parsed)[0].name, None)


@pytest.mark.parametrize(
    "data, fields",
    [
        ({"amount": 0}, ["amount"]),
        ({"amount": commands.MAX_AMOUNT + 1}, ["amount"]),
        ({"amount": 2.0}, ["amount"]),
        ({"amount": False}, ["amount"]),
        ({"restock": 1}, ["restock"]),
        ({"restock": None}, ["restock"]),
        ({"amount": "5", "restock": "no", "reason": " "}, ["amount", "restock", "reason"]),
        ([], ["body"]),
    ],
)
def test_a_bad_refund_names_every_field(data: Any, fields: list[str]) -> None:
    with pytest.raises(Invalid) as raised:
        commands.RefundOrder.parse(data)
    assert [e.field for e in raised.value.errors] == fields
