"""Merchants with their own keys, menu and stock: what each can see and do over HTTP."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import logs, merchants
from kitchen.db import session, utcnow
from kitchen.domain import MAX_GRAMS
from kitchen.errors import Conflict, NotFound
from kitchen.models import Alert, ApiKey, Ingredient, LedgerEntry, Merchant, Order, RecipeLine
from tests.helpers import Seeded, client, eventually


@pytest.fixture
def two(make_kitchen: Callable[..., Kitchen]) -> Iterator[tuple[TestClient, TestClient]]:
    """Two merchants, each with an onion and a product, through one Kitchen in production."""
    kitchen = make_kitchen(app={"env": "production"})
    _, key_a = merchants.create("Ada's", "ada@example.com")
    _, key_b = merchants.create("Bo's", "bo@example.com")
    with client(kitchen, key_a) as a, client(kitchen, key_b) as b:
        for c in (a, b):
            onion = c.post("/ingredients", json={"name": "onion", "stock": 1000}).json()
            soup = {"name": "Soup", "recipe": [{"ingredient_id": onion["id"], "grams": 100}]}
            assert c.post("/products", json=soup).status_code == 201
        yield a, b


def test_a_merchant_never_sees_or_touches_another_merchants_data(
    two: tuple[TestClient, TestClient],
) -> None:
    a, b = two
    [onion_b] = b.get("/ingredients").json()
    [soup_b] = b.get("/products").json()
    order_b = b.post("/order", json={"products": [{"product_id": soup_b["id"], "quantity": 1}]})
    assert order_b.status_code == 201
    # b's own order takes its 100 g: applied first, so that what follows starts from a
    # stock that only a's attempts could still move (it raced them before).
    order_path = f"/order/{order_b.json()['id']}"
    eventually(lambda: b.get(order_path).json()["status"] == "applied")

    for path in (
        f"/ingredients/{onion_b['id']}",
        f"/ingredients/{onion_b['id']}/ledger",
        f"/products/{soup_b['id']}",
        f"/order/{order_b.json()['id']}",
    ):
        assert a.get(path).status_code == 404, path
    for path, body in (
        (f"/ingredients/{onion_b['id']}/restock", {"grams": 5}),
        (f"/ingredients/{onion_b['id']}/waste", {"grams": 5}),
        (f"/ingredients/{onion_b['id']}/count", {"grams": 5}),
    ):
        assert a.post(path, json=body).status_code == 404, path
    assert a.patch(f"/ingredients/{onion_b['id']}", json={"name": "x"}).status_code == 404
    assert a.patch(f"/products/{soup_b['id']}", json={"name": "x"}).status_code == 404
    assert a.delete(f"/products/{soup_b['id']}").status_code == 404
    # An order naming another merchant's product is refused, field by field.
    r = a.post("/order", json={"products": [{"product_id": soup_b["id"], "quantity": 1}]})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "products[0].product_id", "message": f"unknown product {soup_b['id']}"}
    ]
    # A recipe naming another merchant's ingredient too.
    soup = {"name": "Stolen", "recipe": [{"ingredient_id": onion_b["id"], "grams": 1}]}
    assert a.post("/products", json=soup).status_code == 422
    # Nothing of b's moved but by b's own order.
    assert b.get(f"/ingredients/{onion_b['id']}").json()["stock"] == 900
    ledger = b.get(f"/ingredients/{onion_b['id']}/ledger").json()
    assert sorted(e["reason"] for e in ledger) == ["initial", "order"]
    assert a.get("/merchant").json()["name"] == "Ada's"
    assert b.get("/merchant").json()["name"] == "Bo's"


def test_production_needs_a_valid_key_and_refuses_the_seed(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen(app={"env": "production"})
    _, key = merchants.create("Ada's", "ada@example.com")
    with client(kitchen) as anonymous, client(kitchen, "kitchen_wrong") as wrong:
        for c in (anonymous, wrong):
            r = c.get("/ingredients")
            assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            assert r.headers["content-type"] == "application/problem+json"
            assert c.post("/order", json={"products": []}).status_code == 401
        assert anonymous.get("/health").status_code == 200
    with client(kitchen, key) as ada:
        assert ada.post("/order/seed").status_code == 403
        assert ada.get("/ingredients").json() == []
    rotated = merchants.rotate_key(merchants.by_key(key).merchant_id)  # type: ignore[union-attr]
    with client(kitchen, key) as old, client(kitchen, rotated) as new:
        assert old.get("/merchant").status_code == 401
        assert new.get("/merchant").json()["name"] == "Ada's"


def test_development_acts_as_the_default_merchant_without_a_key_but_not_with_a_wrong_one(
    kitchen: Kitchen, api: TestClient
) -> None:
    assert api.get("/merchant").json()["id"] == kitchen.merchant_id
    with client(kitchen, "kitchen_wrong") as wrong:
        assert wrong.get("/ingredients").status_code == 401
    _, key = merchants.create("Ada's", "ada@example.com")
    with client(kitchen, key) as ada:
        assert ada.get("/ingredients").json() == []  # her own, empty kitchen
        assert ada.post("/order/seed").status_code == 201  # the reference kitchen, hers


def test_patch_merchant(api: TestClient) -> None:
    r = api.patch("/merchant", json={"alert_email": "chef@example.com", "threshold": 0.25})
    assert r.status_code == 200
    assert r.json() | {"id": 0} == {
        "id": 0,
        "name": "default",
        "alert_email": "chef@example.com",
        "threshold": 0.25,
        "payments": "off",
        "currency": "EUR",
        "digest_hour": None,
        "timezone": "UTC",
    }
    bad = api.patch("/merchant", json={"alert_email": "nobody", "threshold": 1.5, "x": 1})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"alert_email", "threshold", "x"}
    assert api.get("/merchant").json()["alert_email"] == "chef@example.com"


def test_ingredients_and_products_can_make(api: TestClient) -> None:
    r = api.post("/ingredients", json={"name": "bun", "stock": 900, "full_stock": 2000})
    assert r.status_code == 201 and r.headers["Location"] == f"/ingredients/{r.json()['id']}"
    bun = r.json()
    assert (bun["stock"], bun["full_stock"], bun["threshold"], bun["low"]) == (900, 2000, 0.5, True)
    assert api.post("/ingredients", json={"name": "bun", "stock": 1}).status_code == 409
    bad = api.post("/ingredients", json={"name": "", "stock": -1, "threshold": 0})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"name", "stock", "threshold"}

    beef = next(i for i in api.get("/ingredients").json() if i["name"] == "beef")
    recipe = [
        {"ingredient_id": beef["id"], "grams": 150},
        {"ingredient_id": bun["id"], "grams": 100},
    ]
    r = api.post("/products", json={"name": "Bun burger", "recipe": recipe})
    assert r.status_code == 201
    assert r.json()["can_make"] == 9  # bun: 900 // 100; beef 20000 // 150 = 133
    menu = {p["name"]: p["can_make"] for p in api.get("/products").json()}
    assert menu == {"Burger": 50, "Bun burger": 9}  # Burger: onion 1000 // 20
    product_id = r.json()["id"]
    r = api.patch(f"/products/{product_id}", json={"recipe": recipe[:1]})
    assert r.json()["can_make"] == 133 and r.json()["name"] == "Bun burger"
    dup = api.post("/products", json={"name": "x", "recipe": recipe + recipe[:1]})
    assert dup.status_code == 422


def test_a_deleted_product_keeps_its_orders_but_takes_no_new_ones(
    api: TestClient, seeded: Seeded
) -> None:
    first = api.post("/order", json=seeded.order(1)).json()
    assert api.delete(f"/products/{seeded.burger}").status_code == 204
    assert api.get(f"/products/{seeded.burger}").status_code == 404
    assert api.get("/products").json() == []
    r = api.post("/order", json=seeded.order(1))
    assert r.status_code == 422
    eventually(lambda: api.get(f"/order/{first['id']}").json()["status"] == "applied")
    assert api.get(f"/order/{first['id']}").json()["lines"] == seeded.order(1)["products"]
    # Its name is free again.
    onion = next(i for i in api.get("/ingredients").json() if i["name"] == "onion")
    burger = {"name": "Burger", "recipe": [{"ingredient_id": onion["id"], "grams": 1}]}
    assert api.post("/products", json=burger).status_code == 201


def ledger(api: TestClient, ingredient_id: int, **query: Any) -> list[dict[str, Any]]:
    r = api.get(f"/ingredients/{ingredient_id}/ledger", params=query)
    assert r.status_code == 200, r.text
    return list(r.json())


def test_restock_count_waste_and_the_ledger(api: TestClient) -> None:
    onion = next(i for i in api.get("/ingredients").json() if i["name"] == "onion")
    path = f"/ingredients/{onion['id']}"
    assert api.post(f"{path}/waste", json={"grams": 100, "note": "dropped"}).json()["stock"] == 900
    assert api.post(f"{path}/count", json={"grams": 850}).json()["stock"] == 850
    r = api.post(f"{path}/restock", json={"grams": 400, "note": "delivery"}).json()
    assert (r["stock"], r["full_stock"]) == (1250, 1000)  # above par: the par level stays
    too_much = api.post(f"{path}/waste", json={"grams": 5000})
    assert too_much.status_code == 422
    assert too_much.json()["errors"][0]["message"] == "only 1250 g of onion are in stock"
    assert api.post(f"{path}/restock", json={"grams": 0}).status_code == 422
    assert api.post(f"{path}/count", json={"grams": 1.5}).status_code == 422

    rows = ledger(api, onion["id"])
    assert [(e["reason"], e["grams"], e["stock_after"], e["note"]) for e in rows] == [
        ("restock", 400, 1250, "delivery"),
        ("count", -50, 850, None),
        ("waste", -100, 900, "dropped"),
        ("initial", 1000, 1000, None),
    ]
    page = ledger(api, onion["id"], limit=2)
    assert [e["id"] for e in page] == [rows[0]["id"], rows[1]["id"]]
    rest = ledger(api, onion["id"], limit=2, before=page[-1]["id"])
    assert [e["id"] for e in rest] == [rows[2]["id"], rows[3]["id"]]
    assert api.get(f"{path}/ledger", params={"limit": 0}).status_code == 422
    with session():
        total = sum(
            e.grams for e in LedgerEntry.select().where(LedgerEntry.ingredient == onion["id"])
        )
    assert total == api.get(path).json()["stock"] == 1250


def test_a_new_threshold_alerts_once_and_rearms(api: TestClient) -> None:
    cheese = next(i for i in api.get("/ingredients").json() if i["name"] == "cheese")
    path = f"/ingredients/{cheese['id']}"
    assert api.post(f"{path}/waste", json={"grams": 2000}).json()["low"] is False  # 3000 g
    r = api.patch(path, json={"threshold": 0.7}).json()  # 3000 < 3500: low, one alert
    assert (r["low"], r["alert_armed"], r["threshold"]) == (True, False, 0.7)
    r = api.patch(path, json={"full_stock": 4000}).json()  # 3000 >= 2800: armed again
    assert (r["low"], r["alert_armed"]) == (False, True)
    with session():
        assert Alert.select().where(Alert.ingredient == cheese["id"]).count() == 1


def test_renaming_the_default_merchant_keeps_it_after_a_restart(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    """Issue 16 item 11: the default merchant is found by what it is, not by its name."""
    first = make_kitchen()
    with client(first) as c:
        assert c.post("/order/seed").status_code == 201
        assert c.patch("/merchant", json={"name": "Chez Default"}).status_code == 200
    restarted = make_kitchen()
    assert restarted.merchant_id == first.merchant_id
    with client(restarted) as c:
        assert c.get("/merchant").json() | {"alert_email": ""} == {
            "id": first.merchant_id,
            "name": "Chez Default",
            "alert_email": "",
            "threshold": 0.5,
            "payments": "off",
            "currency": "EUR",
            "digest_hour": None,
            "timezone": "UTC",
        }
        assert len(c.get("/ingredients").json()) == 3  # its stock, reachable without a key
    with session():
        assert Merchant.select().count() == 1


def test_merchant_names_need_not_be_unique(two: tuple[TestClient, TestClient]) -> None:
    """Item 12: a taken name is no 409, which would tell Ada that a merchant Bo's exists."""
    a, b = two
    r = a.patch("/merchant", json={"name": "Bo's"})
    assert r.status_code == 200 and r.json()["name"] == "Bo's"
    merchant, _ = merchants.create("Bo's", "bo2@example.com")
    assert merchant.id not in (a.get("/merchant").json()["id"], b.get("/merchant").json()["id"])
    assert b.get("/merchant").json()["name"] == "Bo's"


def test_a_key_without_the_bearer_scheme_is_told_so(make_kitchen: Callable[..., Kitchen]) -> None:
    """Item 19: `Authorization: <key>` says what is wrong (the scheme), not that the key is."""
    kitchen = make_kitchen(app={"env": "production"})
    _, key = merchants.create("Ada's", "ada@example.com")
    with TestClient(kitchen.web_app()) as c:
        for header in (key, f"Basic {key}"):
            r = c.get("/merchant", headers={"Authorization": header})
            assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
            assert "scheme must be Bearer" in r.json()["detail"]
            assert key not in r.text
        r = c.get("/merchant", headers={"Authorization": "Bearer "})
        assert r.status_code == 401 and "Bearer needs the key" in r.json()["detail"]
        assert c.get("/merchant", headers={"Authorization": f"bearer {key}"}).status_code == 200


def test_named_keys_act_each_under_its_name(
    make_kitchen: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
) -> None:
    """Item 24: a merchant's named keys each work; the order and the log name the key
    that acted (never the key); revoking one stops only it, within the cache's TTL."""
    kitchen = make_kitchen(app={"env": "production"})
    ada, primary = merchants.create("Ada's", "ada@example.com")
    till = merchants.add_key(ada.id, "till-1")
    screen = merchants.add_key(ada.id, "screen")
    with pytest.raises(Conflict):
        merchants.add_key(ada.id, "till-1")
    with client(kitchen, primary) as c:
        onion = c.post("/ingredients", json={"name": "onion", "stock": 1000}).json()
        soup = {"name": "Soup", "recipe": [{"ingredient_id": onion["id"], "grams": 1}]}
        product = c.post("/products", json=soup).json()["id"]
    order = {"products": [{"product_id": product, "quantity": 1}]}

    caplog.set_level(logging.INFO, "kitchen.merchants")
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(logs.JsonFormatter(logs.Redactor()))
    logging.getLogger().addHandler(handler)
    try:
        with client(kitchen, till) as t, client(kitchen, screen) as s:
            grouped = t.post("/order", json=order)  # the group commit
            assert grouped.status_code == 201 and grouped.json()["key"] == "till-1"
            alone = s.post("/order", json=order, headers={"Idempotency-Key": "k1"})
            assert alone.status_code == 201 and alone.json()["key"] == "screen"
            assert s.get(f"/order/{grouped.json()['id']}").json()["key"] == "till-1"
            assert t.get(f"/order/{alone.json()['id']}").json()["key"] == "screen"
            assert [o["key"] for o in t.get("/orders").json()] == ["screen", "till-1"]
            assert t.patch("/merchant", json={"threshold": 0.3}).status_code == 200
    finally:
        logging.getLogger().removeHandler(handler)
    changed = [json.loads(line) for line in lines.getvalue().splitlines()]
    [line] = [e for e in changed if "changed its threshold" in e["message"]]
    assert (line["key"], line["merchant_id"]) == ("till-1", ada.id)
    assert till not in lines.getvalue() and screen not in lines.getvalue()
    with session():
        stored = {o.id: o.key_name for o in Order.select()}
    assert stored == {grouped.json()["id"]: "till-1", alone.json()["id"]: "screen"}

    # Revoked, the till's key stops within the TTL; the others keep working.
    merchants.revoke_key(ada.id, "till-1")
    revoked = time.monotonic()
    with client(kitchen, till) as t:
        eventually(lambda: t.get("/merchant").status_code == 401, timeout=10)
        assert time.monotonic() - revoked < merchants.KnownKeys.TTL + 1
    with client(kitchen, screen) as s, client(kitchen, primary) as p:
        assert s.get("/merchant").status_code == p.get("/merchant").status_code == 200
    with pytest.raises(NotFound):
        merchants.revoke_key(ada.id, "till-1")

    # Last uses are written off the request path, by the api role's job.
    with session():
        assert {k.name: k.last_used_at for k in ApiKey.select()} == {
            "primary": None,
            "screen": None,
        }
    before = utcnow()
    kitchen.key_uses.flush()
    with session():
        used = {k.name: k.last_used_at for k in ApiKey.select()}
    assert set(used) == {"primary", "screen"}
    assert all(at is not None and at <= before for at in used.values())


def test_a_remembered_key_works_at_most_its_ttl() -> None:
    """KnownKeys: a key revoked elsewhere keeps working here at most TTL seconds."""
    now = [100.0]
    known = merchants.KnownKeys(clock=lambda: now[0])
    caller = merchants.Caller(1, 7, "till-1")
    known.remember("kitchen_k", caller)
    now[0] += merchants.KnownKeys.TTL
    assert known.get("kitchen_k") == caller
    now[0] += 0.001
    assert known.get("kitchen_k") is None
    assert known.get("kitchen_other") is None


def test_remembered_keys_are_bounded_whatever_clients_send() -> None:
    """KnownKeys holds at most LIMIT keys: past that it forgets them all and starts over
    (each forgotten key is asked of the database again), so a client sending endless
    valid keys cannot grow it without end."""
    known = merchants.KnownKeys(clock=lambda: 100.0)  # time stands still: nothing expires
    limit = merchants.KnownKeys.LIMIT
    for n in range(limit):
        known.remember(f"kitchen_{n}", merchants.Caller(1, n, f"key-{n}"))
    assert known.get("kitchen_0") == merchants.Caller(1, 0, "key-0")
    assert known.get(f"kitchen_{limit - 1}") is not None
    known.remember("kitchen_one_more", merchants.Caller(1, limit, "one-more"))
    assert known.get("kitchen_one_more") == merchants.Caller(1, limit, "one-more")
    assert known.get("kitchen_0") is None and known.get(f"kitchen_{limit - 1}") is None
    assert len(known._known) <= limit


def test_a_key_rotated_while_one_app_serves_stops_within_the_ttl(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    """Rotation through one running app (its key cache warm): the new key works at once,
    the old one stops within KnownKeys.TTL. A fresh app per request would pass this even
    if remembered keys never expired."""
    kitchen = make_kitchen("api", app={"env": "production"})
    ada, old = merchants.create("Ada's", "ada@example.com")
    with TestClient(kitchen.web_app()) as c:

        def status(key: str) -> int:
            return c.get("/merchant", headers={"Authorization": f"Bearer {key}"}).status_code

        assert status(old) == 200  # looked up once: this app remembers it now
        new = merchants.rotate_key(ada.id)
        rotated = time.monotonic()
        assert status(new) == 200
        eventually(lambda: status(old) == 401, timeout=10, interval=0.05)
        assert time.monotonic() - rotated < merchants.KnownKeys.TTL + 1
        assert status(new) == 200


def test_stock_above_the_par_level_leaves_it_and_alerts_from_it(api: TestClient) -> None:
    """full_stock is the par level: a count or restock above it leaves it, and the
    threshold stays a fraction of it (onion: 1000 g par, low below 500 g)."""
    onion = next(i for i in api.get("/ingredients").json() if i["name"] == "onion")
    path = f"/ingredients/{onion['id']}"
    r = api.post(f"{path}/count", json={"grams": 1450}).json()
    assert (r["stock"], r["full_stock"], r["low"]) == (1450, 1000, False)  # 145 % of par
    r = api.post(f"{path}/restock", json={"grams": 50}).json()
    assert (r["stock"], r["full_stock"]) == (1500, 1000)
    assert api.post(f"{path}/waste", json={"grams": 1000}).json()["low"] is False  # 500 g
    r = api.post(f"{path}/waste", json={"grams": 1}).json()
    assert (r["stock"], r["full_stock"], r["low"], r["alert_armed"]) == (499, 1000, True, False)
    with session():
        [alert] = Alert.select().where(Alert.ingredient == onion["id"])
        assert (alert.stock, alert.full_stock) == (499, 1000)
    # Only PATCH changes it; created above its par level, an ingredient keeps both.
    assert api.patch(path, json={"full_stock": 900}).json()["full_stock"] == 900
    r = api.post("/ingredients", json={"name": "salt", "stock": 3000, "full_stock": 2000})
    assert (r.json()["stock"], r.json()["full_stock"]) == (3000, 2000)


@pytest.mark.parametrize("value", [1e-9, 0.0000004, 0.99999999, 0.9999996])
def test_a_threshold_that_would_be_stored_as_0_or_1_is_refused(
    api: TestClient, seeded: Seeded, value: float
) -> None:
    path = f"/ingredients/{seeded.cheese}"
    before = api.get(path).json()
    for method, url, extra in (
        (api.patch, path, {}),
        (api.patch, "/merchant", {}),
        (api.post, "/ingredients", {"name": "salt", "stock": 100}),
    ):
        r = method(url, json={"threshold": value, **extra})
        assert r.status_code == 422, (url, r.text)
        [error] = r.json()["errors"]
        assert error == {
            "field": "threshold",
            "message": "must be a number from 0.000001 to 0.999999 (6 decimal places are kept)",
        }
    assert api.get(path).json() == before
    with session():
        assert [i.threshold for i in Ingredient.select()] == [None, None, None]
        assert Merchant.get().threshold is None


def test_a_threshold_is_stored_as_it_was_checked(api: TestClient, seeded: Seeded) -> None:
    r = api.patch(f"/ingredients/{seeded.cheese}", json={"threshold": 0.000001})
    assert r.status_code == 200 and r.json()["threshold"] == 0.000001
    r = api.patch("/merchant", json={"threshold": 0.999999})
    assert r.status_code == 200 and r.json()["threshold"] == 0.999999
    r = api.post("/ingredients", json={"name": "salt", "stock": 100, "threshold": 0.1234564})
    assert r.status_code == 201 and r.json()["threshold"] == 0.123456  # what is stored
    with session():
        stored = {i.name: i.threshold for i in Ingredient.select()}
        assert stored == {"beef": None, "cheese": "1/1000000", "onion": None, "salt": "1929/15625"}
        assert Fraction(str(stored["salt"])) == Fraction("0.123456")
        assert Merchant.get().threshold == "999999/1000000"
    # The onion follows the merchant's 0.999999: 1000 g of a 1000 g par is not below it.
    assert api.get(f"/ingredients/{seeded.onion}").json()["low"] is False


def test_grams_up_to_the_stated_limit_fit_the_columns(api: TestClient) -> None:
    """10^12 g of stock and 5 * 10^9 g per recipe line are stored and used exactly on
    both databases (64-bit columns); above the limit is a 422, never a 500."""
    r = api.post("/ingredients", json={"name": "flour", "stock": MAX_GRAMS})
    assert r.status_code == 201, r.text
    flour = r.json()["id"]
    recipe = [{"ingredient_id": flour, "grams": 5_000_000_000}]
    r = api.post("/products", json={"name": "Silo", "recipe": recipe})
    assert r.status_code == 201, r.text
    line = {"amount": 5_000_000_000, "unit": "g", "ingredient": "flour"}
    assert r.json()["recipe"] == [recipe[0] | line] and r.json()["can_make"] == 200
    with session():
        assert RecipeLine.get(RecipeLine.ingredient == flour).grams == 5_000_000_000
    order = api.post("/order", json={"products": [{"product_id": r.json()["id"], "quantity": 3}]})
    assert order.status_code == 201
    eventually(lambda: api.get(f"/order/{order.json()['id']}").json()["status"] == "applied")
    assert api.get(f"/ingredients/{flour}").json()["stock"] == MAX_GRAMS - 15_000_000_000
    assert ledger(api, flour)[0]["grams"] == -15_000_000_000

    too_much = [{"ingredient_id": flour, "grams": MAX_GRAMS + 1}]
    r = api.post("/products", json={"name": "Silo 2", "recipe": too_much})
    assert r.status_code == 422
    assert r.json()["errors"][0]["message"] == (
        f"must be a positive integer of grams, at most {MAX_GRAMS}"
    )
    # A restock may not take the stock past the limit either: stock + restock never
    # overflows, and every stock fits.
    r = api.post(f"/ingredients/{flour}/restock", json={"grams": 15_000_000_001})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {
            "field": "grams",
            "message": f"flour would hold {MAX_GRAMS + 1} g, more than the limit of {MAX_GRAMS} g",
        }
    ]
    r = api.post(f"/ingredients/{flour}/restock", json={"grams": 15_000_000_000})
    assert r.status_code == 200 and r.json()["stock"] == MAX_GRAMS


def test_requests_that_miss_the_key_cache_at_once_make_one_lookup(
    make_kitchen: Callable[..., Kitchen], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a key is not (or no longer) remembered and many requests with it arrive at
    once, the database is asked once, not once per request (kitchen/single_flight.py);
    each request gets its answer. The lookup is the real one, made slower, and counted."""
    kitchen = make_kitchen("api", app={"env": "production"})
    _, key = merchants.create("Ada's", "ada@example.com")
    real = merchants.by_key
    lookups: list[str] = []

    def slow_lookup(k: str) -> merchants.Caller | None:
        lookups.append(k)
        time.sleep(0.3)  # every request below arrives while this one runs
        return real(k)

    monkeypatch.setattr(merchants, "by_key", slow_lookup)
    with client(kitchen, key) as c, ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: c.get("/merchant").status_code, range(16)))
        assert statuses == [200] * 16
        assert len(lookups) == 1
        # A wrong key is never remembered: concurrent requests with it share one lookup
        # too, and each gets its 401.
        wrong = {"Authorization": "Bearer kitchen_wrong"}
        statuses = list(
            pool.map(lambda _: c.get("/merchant", headers=wrong).status_code, range(16))
        )
        assert statuses == [401] * 16
        assert len(lookups) == 2
