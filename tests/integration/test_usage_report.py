"""GET /reports/usage: per ingredient and per product, over the merchant's local days.

The ledger is real orders, moves and counts made now, plus past days written with
`helpers.history` at hours the test picks (a local day's first hour, the hour before
it): no sleeping."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import merchants, reports
from kitchen.db import session, transaction
from kitchen.forecast import local_day
from kitchen.models import Ingredient, LedgerEntry, Merchant
from kitchen.seed import BURGER
from tests.helpers import (
    REAL_DATABASE,
    Seeded,
    burgers,
    client,
    eventually,
    history,
    no_order_pending,
    seed_reference,
    stock_of,
)
from tests.integration.test_partitions import (
    assert_one_partition_each,
    statements,  # noqa: F401 (a fixture)
)
from tests.integration.test_partitions import merchants as shops

PARIS = ZoneInfo("Europe/Paris")
DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)


def in_paris() -> None:
    """The only merchant's days are Paris days (PATCH /merchant's timezone is part D's)."""
    with transaction():
        Merchant.update(timezone="Europe/Paris").execute()


def report(api: TestClient, first: datetime.date, last: datetime.date) -> dict[str, Any]:
    r = api.get("/reports/usage", params={"from": first.isoformat(), "to": last.isoformat()})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


def test_the_report_sums_each_reason_over_the_local_days(api: TestClient, seeded: Seeded) -> None:
    """Onion, in Paris days D-3 .. D (D: today): what history wrote at D-3's first hour
    and on D-2 counts, the hour before D-3 does not; today's orders, moves and count do."""
    in_paris()
    today = datetime.datetime.now(PARIS).date()
    start = local_day(today - 3 * DAY, PARIS)[0]
    history(seeded.onion, {start - HOUR: 7, start: 11, start + 30 * HOUR: 13})
    history(seeded.onion, {start + 2 * HOUR: 30}, LedgerEntry.WASTE)
    history(seeded.onion, {start + 3 * HOUR: -40}, LedgerEntry.RESTOCK)
    history(seeded.onion, {start + 4 * HOUR: -20}, LedgerEntry.REFUND)
    history(seeded.beef, {start + 5 * HOUR: -50}, LedgerEntry.COMPENSATION)
    burgers(api, 2)
    burgers(api, 3)
    eventually(no_order_pending)
    move = f"/ingredients/{seeded.onion}"
    assert api.post(f"{move}/restock", json={"amount": 100}).status_code == 200
    assert api.post(f"{move}/waste", json={"amount": 5}).status_code == 200
    counted = stock_of(seeded.onion) - 3
    assert api.post(f"{move}/count", json={"amount": counted}).status_code == 200
    assert stock_of(seeded.onion) == counted

    body = report(api, today - 3 * DAY, today)
    assert (body["from"], body["to"], body["timezone"]) == (
        (today - 3 * DAY).isoformat(),
        today.isoformat(),
        "Europe/Paris",
    )
    rows = by_name(body["ingredients"])
    assert rows["onion"] == {
        "ingredient_id": seeded.onion,
        "name": "onion",
        "unit": "g",
        "used": 11 + 13 + 5 * BURGER["onion"],
        "wasted": 30 + 5,
        "restocked": 40 + 100,
        "counted": -3,
        "refunded": 20,
    }
    assert rows["beef"] == {
        "ingredient_id": seeded.beef,
        "name": "beef",
        "unit": "g",
        "used": 5 * BURGER["beef"],
        "wasted": 0,
        "restocked": 0,
        "counted": 0,
        "refunded": 50,
    }
    assert rows["cheese"]["used"] == 5 * BURGER["cheese"]
    assert body["products"] == [
        {"product_id": seeded.burger, "name": "Burger", "orders": 2, "quantity": 5}
    ]

    # Up to yesterday: today's orders and moves are not in it, nor the hour before D-3.
    past = by_name(report(api, today - 3 * DAY, today - DAY)["ingredients"])["onion"]
    assert (past["used"], past["wasted"], past["restocked"]) == (24, 30, 40)
    assert (past["counted"], past["refunded"]) == (0, 20)
    assert report(api, today - DAY, today - DAY)["products"][0]["orders"] == 0
    # The day before: only the hour before D-3's first (Paris midnight, 22:00 or 23:00 UTC).
    before = by_name(report(api, today - 4 * DAY, today - 4 * DAY)["ingredients"])["onion"]
    assert before["used"] == 7


def test_csv_parses_back_to_the_json(api: TestClient, seeded: Seeded) -> None:
    burgers(api, 4)
    eventually(no_order_pending)
    today = datetime.datetime.now(datetime.UTC).date()
    dates = {"from": (today - DAY).isoformat(), "to": today.isoformat()}
    body = api.get("/reports/usage", params=dates).json()

    r = api.get("/reports/usage", params=dates, headers={"Accept": "text/csv"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    name = f"usage-ingredients-{dates['from']}-{dates['to']}.csv"
    assert r.headers["content-disposition"] == f'attachment; filename="{name}"'
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert r.text.splitlines()[0] == ",".join(reports.INGREDIENT_COLUMNS)
    assert table == [{k: str(v) for k, v in row.items()} for row in body["ingredients"]]
    assert by_name(table)["onion"]["used"] == str(4 * BURGER["onion"])

    r = api.get(
        "/reports/usage", params={**dates, "rows": "products"}, headers={"Accept": "text/csv"}
    )
    assert list(csv.DictReader(io.StringIO(r.text))) == [
        {"product_id": str(seeded.burger), "name": "Burger", "orders": "1", "quantity": "4"}
    ]
    # JSON always has both lists, whatever `rows` says.
    assert api.get("/reports/usage", params={**dates, "rows": "products"}).json() == body


REQUIRED, NOT_A_DATE = "is required (a date, YYYY-MM-DD)", "must be a date, YYYY-MM-DD"
ONE_DAY = {"from": "2026-01-01", "to": "2026-01-01"}


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"to": "2026-01-01"}, [("from", REQUIRED)]),
        ({}, [("from", REQUIRED), ("to", REQUIRED)]),
        ({"from": "2026-13-01", "to": "2026-12-01"}, [("from", NOT_A_DATE)]),
        ({"from": "2026-1-5", "to": "2026-12-01"}, [("from", NOT_A_DATE)]),
        ({"from": "2026-02-01", "to": "2026-02-30"}, [("to", NOT_A_DATE)]),
        ({"from": "yesterday", "to": "today"}, [("from", NOT_A_DATE), ("to", NOT_A_DATE)]),
        ({"from": "2026-03-02", "to": "2026-03-01"}, [("to", "must not be before from")]),
        (
            {"from": "2024-01-01", "to": "2025-01-01"},
            [("to", "must be at most 366 days from from")],
        ),
        ({**ONE_DAY, "rows": "orders"}, [("rows", "must be one of ingredients, products")]),
        ({**ONE_DAY, "form": "x"}, [("form", "is not a known query parameter")]),
    ],
)
def test_bad_dates_are_a_422_naming_the_parameter(
    api: TestClient, params: dict[str, str], errors: list[tuple[str, str]]
) -> None:
    r = api.get("/reports/usage", params=params, headers={"Accept": "text/csv"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [(e["field"], e["message"]) for e in r.json()["errors"]] == errors


def test_a_leap_year_is_366_days_and_fits(api: TestClient) -> None:
    body = report(api, datetime.date(2024, 1, 1), datetime.date(2024, 12, 31))
    assert {row["used"] for row in body["ingredients"]} == {0}
    r = api.get("/reports/usage?from=2026-01-01&to=2026-01-01&to=2026-01-02")
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "to", "message": "is given more than once"}]


def test_another_merchants_rows_never_count(make_kitchen: Callable[..., Kitchen]) -> None:
    kitchen = make_kitchen()
    _, key_a = merchants.create("Ada's", "ada@example.com")
    _, key_b = merchants.create("Bo's", "bo@example.com")
    with client(kitchen, key_a) as a, client(kitchen, key_b) as b:
        ada, bo = seed_reference(a), seed_reference(b)
        burgers(a, 1)
        burgers(b, 6)
        assert b.post(f"/ingredients/{bo.onion}/waste", json={"amount": 9}).status_code == 200
        eventually(no_order_pending)
        today = datetime.datetime.now(datetime.UTC).date()
        history(bo.onion, {datetime.datetime.combine(today - DAY, datetime.time(12)): 70})
        mine, theirs = report(a, today - DAY, today), report(b, today - DAY, today)
    assert {r["ingredient_id"] for r in mine["ingredients"]} == {ada.beef, ada.cheese, ada.onion}
    assert by_name(mine["ingredients"])["onion"] == {
        "ingredient_id": ada.onion,
        "name": "onion",
        "unit": "g",
        "used": BURGER["onion"],
        "wasted": 0,
        "restocked": 0,
        "counted": 0,
        "refunded": 0,
    }
    assert mine["products"] == [
        {"product_id": ada.burger, "name": "Burger", "orders": 1, "quantity": 1}
    ]
    onion_b = by_name(theirs["ingredients"])["onion"]
    assert (onion_b["used"], onion_b["wasted"]) == (6 * BURGER["onion"] + 70, 9)
    assert theirs["products"][0]["quantity"] == 6


@pytest.mark.skipif(
    not REAL_DATABASE, reason="partitions are PostgreSQL's (set KITCHEN_TEST_DATABASE_URL)"
)
def test_the_report_reads_one_partition(
    clean_database: str,
    statements: Callable[[], list[tuple[str, Any]]],  # noqa: F811 (the fixture)
) -> None:
    ids = shops(6)
    for m in ids:
        with session():
            onion = Ingredient.get(Ingredient.merchant == m, Ingredient.name == "onion").id
        history(onion, {datetime.datetime(2026, 3, 2, 12): 10 * m})
    statements()
    period = reports.Period(datetime.date(2026, 3, 1), datetime.date(2026, 3, 31))
    for m in ids:
        used = {r["used"] for r in reports.usage_report(m, period)["ingredients"]}
        assert used == {0, 10 * m}
    assert assert_one_partition_each(statements()) >= 2 * len(ids)


def test_a_refund_with_restock_is_refunded_and_its_order_still_used(
    api: TestClient, seeded: Seeded
) -> None:
    """A paid order of 3 burgers, applied, captured, then refunded with its ingredients
    put back: used counts the 3, refunded gives them back (net use 0)."""
    assert api.patch("/merchant", json={"payments": "required"}).status_code == 200
    assert api.patch(f"/products/{seeded.burger}", json={"price": 1250}).status_code == 200
    placed = api.post("/order", json=seeded.order(3)).json()
    api.post(f"/payments/fake/{placed['payment']['id']}/authorize")
    eventually(lambda: api.get(f"/order/{placed['id']}").json()["payment"]["status"] == "captured")
    r = api.post(f"/order/{placed['id']}/refund", json={"restock": True})
    assert r.status_code == 202, r.text

    today = datetime.datetime.now(datetime.UTC).date()
    body = report(api, today, today)
    for name in ("beef", "cheese", "onion"):
        row = by_name(body["ingredients"])[name]
        assert (row["used"], row["refunded"]) == (3 * BURGER[name], 3 * BURGER[name]), name
    assert body["products"] == [
        {"product_id": seeded.burger, "name": "Burger", "orders": 1, "quantity": 3}
    ]


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (datetime.date(2026, 3, 29), 23),  # spring forward: 02:00 does not exist
        (datetime.date(2026, 10, 25), 25),  # fall back: 02:00 twice
    ],
)
def test_a_daylight_saving_day_is_its_23_or_25_hours(
    api: TestClient, seeded: Seeded, day: datetime.date, hours: int
) -> None:
    """One gram of onion each UTC hour around the day: the report of that Paris day
    counts exactly the hours from its local midnight to the next."""
    in_paris()
    start = datetime.datetime.combine(day - DAY, datetime.time(12))
    history(seeded.onion, {start + n * HOUR: 1 for n in range(48)})
    onion = by_name(report(api, day, day)["ingredients"])["onion"]
    assert onion["used"] == hours
    # The days either side take the rest: noon UTC to noon UTC is inside them.
    three = by_name(report(api, day - DAY, day + DAY)["ingredients"])["onion"]
    assert three["used"] == 48
