"""Units (issue 19): ingredients counted in g, ml or piece; requests name an amount
`amount` or `grams` (its older name), answers show both and the unit, and every message
names the amount in the ingredient's unit."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from starlette.testclient import TestClient

from kitchen import views
from kitchen.db import session
from kitchen.domain import MAX_GRAMS
from kitchen.models import Ingredient, LedgerEntry, Product, RecipeLine
from tests.helpers import SmtpServer, eventually


def made(api: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/ingredients", json=body)
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()
    return answer


def problem(r: Any) -> list[dict[str, str]]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    errors: list[dict[str, str]] = r.json()["errors"]
    return errors


def ledger(api: TestClient, ingredient_id: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = api.get(f"/ingredients/{ingredient_id}/ledger").json()
    return rows


def test_a_roll_in_pieces_and_millilitres_is_made_deducted_and_alerted_in_its_units(
    api: TestClient, smtp: SmtpServer
) -> None:
    bun = made(api, {"name": "bun", "unit": "piece", "stock": 10})
    milk = made(api, {"name": "milk", "unit": "ml", "stock": 2000})
    assert (bun["unit"], bun["stock"], bun["full_stock"]) == ("piece", 10, 10)
    assert (milk["unit"], milk["stock"]) == ("ml", 2000)
    assert api.get(f"/ingredients/{bun['id']}").json()["unit"] == "piece"
    beef = next(i for i in api.get("/ingredients").json() if i["name"] == "beef")
    assert beef["unit"] == "g"  # made without a unit: grams, as before

    # A recipe in pieces and ml, by the new name and the old one.
    recipe = [
        {"ingredient_id": bun["id"], "amount": 2},
        {"ingredient_id": milk["id"], "grams": 250},
    ]
    r = api.post("/products", json={"name": "Milk roll", "recipe": recipe})
    assert r.status_code == 201, r.text
    roll = r.json()
    assert roll["recipe"] == [
        {"ingredient_id": bun["id"], "grams": 2, "amount": 2, "unit": "piece", "ingredient": "bun"},
        {
            "ingredient_id": milk["id"],
            "grams": 250,
            "amount": 250,
            "unit": "ml",
            "ingredient": "milk",
        },
    ]
    assert roll["can_make"] == 5  # bun: 10 // 2; milk: 2000 // 250 = 8
    assert api.get(f"/products/{roll['id']}").json()["recipe"] == roll["recipe"]

    # Three rolls take exactly 6 pieces and 750 ml; the bun falls below half its par level.
    order = {"products": [{"product_id": roll["id"], "quantity": 3}]}
    placed = api.post("/order", json=order).json()
    eventually(lambda: api.get(f"/order/{placed['id']}").json()["status"] == "applied")
    assert api.get(f"/ingredients/{bun['id']}").json()["stock"] == 4
    assert api.get(f"/ingredients/{milk['id']}").json()["stock"] == 1250
    [used, initial] = ledger(api, bun["id"])
    assert (used["reason"], used["order_id"], used["stock_after"]) == ("order", placed["id"], 4)
    assert (used["amount"], used["grams"], used["unit"]) == (-6, -6, "piece")
    assert (initial["reason"], initial["amount"], initial["unit"]) == ("initial", 10, "piece")
    assert ledger(api, milk["id"])[0] | {"id": 0, "at": ""} == {
        "id": 0,
        "grams": -750,
        "amount": -750,
        "unit": "ml",
        "reason": "order",
        "order_id": placed["id"],
        "note": None,
        "stock_after": 1250,
        "at": "",
        "key": None,
    }

    [alert] = eventually(lambda: [a for a in api.get("/alerts").json() if a["mail"] == "sent"])
    assert (alert["ingredient"], alert["unit"], alert["stock"], alert["full_stock"]) == (
        "bun",
        "piece",
        4,
        10,
    )
    [mail] = smtp.messages
    assert mail["Subject"] == "Low stock: bun is below 50% (4 pieces left)"
    [part] = [p for p in mail.walk() if p.get_content_type() == "text/plain"]
    text = bytes(part.get_payload(decode=True)).decode()
    assert "bun is down to 4 pieces of its par level of 10 pieces, below the alert threshold " in (
        " ".join(text.split())
    )
    assert "of 50% (5 pieces)." in " ".join(text.split())

    # Three more cannot be made: processing's reason names pieces.
    refused = api.post("/order", json=order).json()
    eventually(lambda: api.get(f"/order/{refused['id']}").json()["status"] == "rejected")
    assert api.get(f"/order/{refused['id']}").json()["reason"] == (
        "insufficient stock: bun needs 6 pieces, 4 pieces left"
    )
    assert api.get(f"/ingredients/{bun['id']}").json()["stock"] == 4


def test_moves_take_amount_or_grams_and_their_messages_name_the_field_and_the_unit(
    api: TestClient,
) -> None:
    bun = made(api, {"name": "bun", "unit": "piece", "stock": 4})
    path = f"/ingredients/{bun['id']}"

    # The new name and the old one move the stock alike.
    assert api.post(f"{path}/restock", json={"amount": 1}).json()["stock"] == 5
    assert api.post(f"{path}/waste", json={"grams": 1, "note": "dropped"}).json()["stock"] == 4
    assert api.post(f"{path}/count", json={"amount": 3}).json()["stock"] == 3
    assert [(e["reason"], e["amount"], e["unit"]) for e in ledger(api, bun["id"])] == [
        ("count", -1, "piece"),
        ("waste", -1, "piece"),
        ("restock", 1, "piece"),
        ("initial", 4, "piece"),
    ]

    # A refused move names the field the caller used, and the amount in pieces.
    only = "only 3 pieces of bun are in stock"
    assert problem(api.post(f"{path}/waste", json={"amount": 4})) == [
        {"field": "amount", "message": only}
    ]
    assert problem(api.post(f"{path}/waste", json={"grams": 4})) == [
        {"field": "grams", "message": only}
    ]
    assert api.post(f"{path}/count", json={"amount": 1}).status_code == 200
    assert problem(api.post(f"{path}/waste", json={"amount": 2}))[0]["message"] == (
        "only 1 piece of bun are in stock"
    )
    assert problem(api.post(f"{path}/restock", json={"amount": MAX_GRAMS})) == [
        {
            "field": "amount",
            "message": f"bun would hold {MAX_GRAMS + 1} pieces, "
            f"more than the limit of {MAX_GRAMS} pieces",
        }
    ]
    assert problem(api.post(f"{path}/restock", json={"amount": 0})) == [
        {
            "field": "amount",
            "message": f"must be a positive integer in the ingredient's unit, at most {MAX_GRAMS}",
        }
    ]

    # Both names, saying different amounts: a 422 naming `amount`, and nothing moved.
    for kind in ("restock", "count", "waste"):
        assert problem(api.post(f"{path}/{kind}", json={"amount": 1, "grams": 2})) == [
            {"field": "amount", "message": "amount and grams differ: give one of them"}
        ]
    assert problem(api.post(f"{path}/restock", json={})) == [
        {"field": "amount", "message": "is required"}
    ]
    assert api.get(path).json()["stock"] == 1
    with session():
        rows = LedgerEntry.select().where(LedgerEntry.ingredient == bun["id"]).count()
    assert rows == 5

    # In millilitres.
    milk = made(api, {"name": "milk", "unit": "ml", "stock": 250})
    assert problem(api.post(f"/ingredients/{milk['id']}/waste", json={"amount": 300})) == [
        {"field": "amount", "message": "only 250 ml of milk are in stock"}
    ]


def test_a_recipe_line_with_both_names_differing_is_refused(api: TestClient) -> None:
    bun = made(api, {"name": "bun", "unit": "piece", "stock": 4})
    both = [{"ingredient_id": bun["id"], "amount": 1, "grams": 2}]
    assert problem(api.post("/products", json={"name": "Roll", "recipe": both})) == [
        {"field": "recipe[0].amount", "message": "amount and grams differ: give one of them"}
    ]
    zero = [{"ingredient_id": bun["id"], "amount": 0}]
    assert problem(api.post("/products", json={"name": "Roll", "recipe": zero})) == [
        {
            "field": "recipe[0].amount",
            "message": f"must be a positive integer in the ingredient's unit, at most {MAX_GRAMS}",
        }
    ]
    assert [p["name"] for p in api.get("/products").json()] == ["Burger"]


def test_the_unit_is_one_of_three_and_chosen_once(api: TestClient) -> None:
    assert problem(api.post("/ingredients", json={"name": "flour", "stock": 1, "unit": "kg"})) == [
        {"field": "unit", "message": "must be one of g, ml, piece"}
    ]
    stock = {"name": "egg", "unit": "piece", "stock": -1}
    assert problem(api.post("/ingredients", json=stock)) == [
        {
            "field": "stock",
            "message": f"must be an integer of 0 or more of pieces, at most {MAX_GRAMS}",
        }
    ]
    assert made(api, {"name": "flour", "stock": 1})["unit"] == "g"
    egg = made(api, {"name": "egg", "unit": "piece", "stock": 12})

    for unit in ("g", "piece", None):
        r = api.patch(f"/ingredients/{egg['id']}", json={"unit": unit, "name": "eggs"})
        assert problem(r) == [
            {"field": "unit", "message": "is chosen when the ingredient is made and cannot change"}
        ]
    with session():
        row = Ingredient.get_by_id(egg["id"])
        assert (row.name, row.unit, row.stock) == ("egg", "piece", 12)
    assert api.patch(f"/ingredients/{egg['id']}", json={"name": "eggs"}).json()["unit"] == "piece"


def test_a_recipe_shows_its_ingredients_with_one_query(
    api: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Each line's name and unit come from one join, not a query per line."""
    with session():
        burger = Product.get(Product.name == "Burger")
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            shown = views.product(burger)
    mine = [r for r in caplog.records if r.name == "peewee" and r.thread == threading.get_ident()]
    assert len(mine) == 1, [r.getMessage() for r in mine]
    assert [(line["ingredient"], line["amount"], line["unit"]) for line in shown["recipe"]] == [
        ("beef", 150, "g"),
        ("cheese", 30, "g"),
        ("onion", 20, "g"),
    ]


def test_a_recipe_read_is_taken_back_as_it_came_if_it_still_holds(api: TestClient) -> None:
    """GET shows each line with amount, grams, unit and the ingredient's name: a script that
    sends a recipe back as it read it is understood, and a line whose unit or name no
    longer fits its ingredient is refused, saying which."""
    bun = made(api, {"name": "bun", "unit": "piece", "stock": 40})
    milk = made(api, {"name": "milk", "unit": "ml", "stock": 5000})
    recipe = [
        {"ingredient_id": bun["id"], "amount": 2},
        {"ingredient_id": milk["id"], "amount": 250},
    ]
    roll = api.post("/products", json={"name": "Roll", "recipe": recipe})
    assert roll.status_code == 201, roll.text
    read = api.get(f"/products/{roll.json()['id']}").json()["recipe"]
    assert read[0] == {
        "ingredient_id": bun["id"],
        "grams": 2,
        "amount": 2,
        "unit": "piece",
        "ingredient": "bun",
    }
    read[1]["amount"] = read[1]["grams"] = 300
    again = api.patch(f"/products/{roll.json()['id']}", json={"recipe": read})
    assert again.status_code == 200, again.text
    with session():
        lines = RecipeLine.select().where(RecipeLine.product == roll.json()["id"])
        assert sorted((r.ingredient_id, r.grams) for r in lines) == [
            (bun["id"], 2),
            (milk["id"], 300),
        ]

    wrong = [dict(read[0], unit="g"), dict(read[1], ingredient="cream")]
    assert problem(api.patch(f"/products/{roll.json()['id']}", json={"recipe": wrong})) == [
        {"field": "recipe[0].unit", "message": "bun is counted in pieces, not g"},
        {"field": "recipe[1].ingredient", "message": f"ingredient {milk['id']} is milk, not cream"},
    ]
    with session():
        lines = RecipeLine.select().where(RecipeLine.product == roll.json()["id"])
        assert sorted((r.ingredient_id, r.grams) for r in lines) == [
            (bun["id"], 2),
            (milk["id"], 300),
        ]
