"""Who and why (issue 19): ledger rows name the key that made them, alerts say what caused
them and what resolved them, and a product says which ingredient limits it."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from app import Kitchen
from kitchen import merchants
from kitchen.db import session
from kitchen.models import Alert
from tests.helpers import Seeded, client, eventually


def alerts_of(api: TestClient, ingredient_id: int) -> list[dict[str, Any]]:
    """GET /alerts of one ingredient, newest first."""
    return [a for a in api.get("/alerts").json() if a["ingredient_id"] == ingredient_id]


def last_entry(api: TestClient, ingredient_id: int) -> dict[str, Any]:
    [entry] = api.get(f"/ingredients/{ingredient_id}/ledger", params={"limit": 1}).json()
    return entry


def test_ledger_rows_name_the_key_that_made_them(
    kitchen: Kitchen, api: TestClient, seeded: Seeded
) -> None:
    office = merchants.add_key(kitchen.merchant_id, "office")
    with client(kitchen, office) as keyed:
        r = keyed.post(f"/ingredients/{seeded.onion}/restock", json={"grams": 500})
        assert r.status_code == 200, r.text
        entry = last_entry(keyed, seeded.onion)
        assert (entry["reason"], entry["grams"], entry["key"]) == ("restock", 500, "office")
        for kind, grams in (("count", 1400), ("waste", 10)):
            moved = keyed.post(f"/ingredients/{seeded.onion}/{kind}", json={"grams": grams})
            assert moved.status_code == 200, moved.text
            assert last_entry(keyed, seeded.onion)["key"] == "office", kind
        made = keyed.post("/ingredients", json={"name": "salt", "stock": 300})
        assert made.status_code == 201, made.text
        [initial] = keyed.get(f"/ingredients/{made.json()['id']}/ledger").json()
        assert (initial["reason"], initial["grams"], initial["key"]) == ("initial", 300, "office")

    # Without a key (development), and what processing did, name none.
    assert api.post(f"/ingredients/{seeded.onion}/restock", json={"grams": 1}).status_code == 200
    assert last_entry(api, seeded.onion)["key"] is None
    order = api.post("/order", json=seeded.order(1)).json()
    eventually(lambda: last_entry(api, seeded.onion)["order_id"] == order["id"])
    entry = last_entry(api, seeded.onion)
    assert (entry["reason"], entry["grams"], entry["key"]) == ("order", -20, None)
    seed_row = api.get(f"/ingredients/{seeded.beef}/ledger").json()[-1]
    assert (seed_row["reason"], seed_row["key"]) == ("initial", None)


def test_an_alert_says_what_caused_it_and_what_resolved_it(api: TestClient, seeded: Seeded) -> None:
    # 26 burgers: onion 1,000 -> 480 g, below half of its par level.
    order = api.post("/order", json=seeded.order(26)).json()
    [alert] = eventually(lambda: alerts_of(api, seeded.onion))
    assert (alert["cause"], alert["order_id"], alert["stock"]) == ("order", order["id"], 480)
    assert (alert["status"], alert["resolved_at"], alert["resolved_by"]) == ("open", None, None)

    # 490 g is still below 500: open. 500 g is back at the line: resolved by the restock.
    api.post(f"/ingredients/{seeded.onion}/restock", json={"grams": 10})
    assert alerts_of(api, seeded.onion)[0]["status"] == "open"
    api.post(f"/ingredients/{seeded.onion}/restock", json={"grams": 10})
    [alert] = alerts_of(api, seeded.onion)
    assert (alert["status"], alert["resolved_by"]) == ("resolved", "restock")
    assert alert["resolved_at"] >= alert["created_at"]

    # The next crossing is a new alert, open, caused by the waste; the first stays resolved.
    api.post(f"/ingredients/{seeded.onion}/waste", json={"grams": 1})
    waste, first = alerts_of(api, seeded.onion)
    assert first["id"] == alert["id"] and first["status"] == "resolved"
    assert (waste["cause"], waste["order_id"], waste["stock"]) == ("waste", None, 499)
    assert (waste["status"], waste["resolved_by"]) == ("open", None)

    # A count that finds enough resolves it; a count that finds too little alerts again.
    api.post(f"/ingredients/{seeded.onion}/count", json={"grams": 900})
    assert alerts_of(api, seeded.onion)[0]["resolved_by"] == "count"
    api.post(f"/ingredients/{seeded.onion}/count", json={"grams": 100})
    counted = alerts_of(api, seeded.onion)[0]
    assert (counted["cause"], counted["status"], counted["stock"]) == ("count", "open", 100)
    api.post(f"/ingredients/{seeded.onion}/count", json={"grams": 1000})

    # A new par level takes it below, and back: cause and resolution are "levels".
    r = api.patch(f"/ingredients/{seeded.onion}", json={"full_stock": 3000})
    assert r.status_code == 200 and r.json()["alert_armed"] is False
    levels = alerts_of(api, seeded.onion)[0]
    assert (levels["cause"], levels["status"], levels["stock"]) == ("levels", "open", 1000)
    api.patch(f"/ingredients/{seeded.onion}", json={"full_stock": 1000})
    levels = alerts_of(api, seeded.onion)[0]
    assert (levels["status"], levels["resolved_by"]) == ("resolved", "levels")

    # Every alert of the ingredient is resolved once, as stored.
    with session():
        rows = list(Alert.select().where(Alert.ingredient == seeded.onion).order_by(Alert.id))
    assert [(a.cause, a.resolved_by) for a in rows] == [
        ("order", "restock"),
        ("waste", "count"),
        ("count", "count"),
        ("levels", "levels"),
    ]
    assert all(a.resolved_at is not None for a in rows)


def test_the_merchants_threshold_causes_and_resolves_alerts(
    api: TestClient, seeded: Seeded
) -> None:
    """`settle_followers`: ingredients without a threshold of their own follow the
    merchant's; an ingredient made below its line alerts with cause `initial`."""
    api.post(f"/ingredients/{seeded.onion}/waste", json={"grams": 150})  # 850 of 1,000
    assert api.patch("/merchant", json={"threshold": 0.9}).status_code == 200
    [alert] = alerts_of(api, seeded.onion)
    assert (alert["cause"], alert["status"], alert["order_id"]) == ("levels", "open", None)
    assert api.patch("/merchant", json={"threshold": 0.5}).status_code == 200
    [alert] = alerts_of(api, seeded.onion)
    assert (alert["status"], alert["resolved_by"]) == ("resolved", "levels")

    made = api.post("/ingredients", json={"name": "saffron", "stock": 1, "full_stock": 10})
    [initial] = alerts_of(api, made.json()["id"])
    assert (initial["cause"], initial["status"], initial["stock"]) == ("initial", "open", 1)


def test_a_product_names_the_ingredient_that_limits_it(api: TestClient, seeded: Seeded) -> None:
    def burger() -> dict[str, Any]:
        found: dict[str, Any] = api.get(f"/products/{seeded.burger}").json()
        return found

    # beef 20,000 / 150 = 133, cheese 5,000 / 30 = 166, onion 1,000 / 20 = 50.
    assert (burger()["can_make"], burger()["limited_by"]) == (50, seeded.onion)
    listed = {p["id"]: p for p in api.get("/products").json()}
    assert listed[seeded.burger]["limited_by"] == seeded.onion
    # Beef counted at 1,500 g makes 10: beef is the limit.
    api.post(f"/ingredients/{seeded.beef}/count", json={"grams": 1500})
    assert (burger()["can_make"], burger()["limited_by"]) == (10, seeded.beef)
    # A tie (beef 10, cheese 10): the first in recipe order, beef.
    api.post(f"/ingredients/{seeded.cheese}/count", json={"grams": 300})
    assert (burger()["can_make"], burger()["limited_by"]) == (10, seeded.beef)
    # Beef back up (20), cheese 10: cheese.
    api.post(f"/ingredients/{seeded.beef}/count", json={"grams": 3000})
    assert (burger()["can_make"], burger()["limited_by"]) == (10, seeded.cheese)
    dashboard = api.get("/dashboard").json()
    [shown] = [p for p in dashboard["products"] if p["id"] == seeded.burger]
    assert shown["limited_by"] == seeded.cheese


def test_a_move_answers_the_ledger_row_it_wrote(api: TestClient, seeded: Seeded) -> None:
    """A count's answer says the difference it found, exactly as the ledger keeps it (the
    page shows it); a PATCH, which writes no ledger row, answers none."""
    assert api.post("/order", json=seeded.order(2)).status_code == 201
    eventually(lambda: api.get(f"/ingredients/{seeded.onion}").json()["stock"] == 960)
    counted = api.post(f"/ingredients/{seeded.onion}/count", json={"amount": 905, "note": "eve"})
    assert counted.status_code == 200, counted.text
    change = counted.json()["change"]
    assert (change["amount"], change["reason"], change["stock_after"]) == (-55, "count", 905)
    assert change == last_entry(api, seeded.onion)
    restocked = api.post(f"/ingredients/{seeded.onion}/restock", json={"amount": 95})
    assert restocked.json()["change"]["amount"] == 95
    assert restocked.json()["stock"] == 1000
    patched = api.patch(f"/ingredients/{seeded.onion}", json={"full_stock": 2000})
    assert patched.status_code == 200 and "change" not in patched.json()
