"""The reference seed (POST /order/seed): made through inventory and menu, once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import inventory, menu, seed
from kitchen.db import session
from kitchen.models import Ingredient, LedgerEntry, Merchant, Product, RecipeLine
from tests.helpers import SEED_RULES


@pytest.fixture
def client(make_kitchen: Callable[..., Kitchen]) -> Iterator[TestClient]:
    """The api role alone, nothing seeded yet."""
    with TestClient(make_kitchen("api").web_app()) as c:
        yield c


def test_the_seed_makes_its_rows_through_inventory_and_menu(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    for module in (inventory, menu):
        real = module.create

        def create(merchant_id: int, data: Any, *args: Any, real: Any = real) -> Any:
            made.append(data.name)
            return real(merchant_id, data, *args)

        monkeypatch.setattr(module, "create", create)

    first = client.post("/order/seed")
    assert first.status_code == 201
    assert made == ["beef", "cheese", "onion", "Burger"]
    answer = first.json()
    assert [(i["name"], i["stock"], i["full_stock"]) for i in answer["ingredients"]] == [
        ("beef", 20_000, 20_000),
        ("cheese", 5_000, 5_000),
        ("onion", 1_000, 1_000),
    ]
    ids = {i["name"]: i["id"] for i in answer["ingredients"]}
    assert answer["products"][0]["recipe"] == [
        {
            "ingredient_id": ids[name],
            "grams": grams,
            "amount": grams,
            "unit": "g",
            "ingredient": name,
        }
        for name, grams in (("beef", 150), ("cheese", 30), ("onion", 20))
    ]
    with session():
        ledger = [(e.ingredient_id, e.grams, e.reason, e.stock_after) for e in LedgerEntry.select()]
    assert sorted(ledger) == sorted(
        (ids[name], grams, "initial", grams) for name, grams in seed.REFERENCE_STOCK.items()
    )

    again = client.post("/order/seed")
    assert again.status_code == 200 and again.json() == answer
    assert made == ["beef", "cheese", "onion", "Burger"]  # nothing made twice


def test_seeding_again_leaves_a_changed_recipe_alone(client: TestClient) -> None:
    burger = client.post("/order/seed").json()["products"][0]
    mine = burger["recipe"][:2]  # no onion on this merchant's burger
    change = [{"ingredient_id": line["ingredient_id"], "amount": line["amount"]} for line in mine]
    assert client.patch(f"/products/{burger['id']}", json={"recipe": change}).status_code == 200

    again = client.post("/order/seed")
    assert again.status_code == 200
    assert again.json()["products"][0]["recipe"] == mine
    assert client.get(f"/products/{burger['id']}").json()["recipe"] == mine


def seeded_at_once(merchant_id: int) -> list[bool]:
    """Two seeds of one merchant started together; whether each said it created."""
    start = threading.Barrier(2)
    created: list[bool] = []

    def run() -> None:
        start.wait()
        created.append(seed.seed(merchant_id, SEED_RULES)[0])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return created


def test_two_seeds_at_once_make_one_kitchen(clean_database: str) -> None:
    for round in range(5):
        with session():
            merchant = Merchant.create(name=f"m{round}", alert_email="m@example.com")
        assert sorted(seeded_at_once(merchant.id)) == [False, True]
        with session():
            ingredients = Ingredient.select().where(Ingredient.merchant == merchant.id)
            assert {i.name: i.stock for i in ingredients} == seed.REFERENCE_STOCK
            products = Product.select().where(Product.merchant == merchant.id)
            assert [p.name for p in products] == ["Burger"]
            lines = RecipeLine.select().join(Product).where(Product.merchant == merchant.id)
            assert lines.count() == 3
            ledger = LedgerEntry.select().where(LedgerEntry.merchant == merchant.id)
            assert ledger.count() == 3
