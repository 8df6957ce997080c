"""GET /reorder: what to order from suppliers (not customer orders), most urgent first,
as JSON or as CSV; and the lead time and pack size it is computed from.

The history is written at past hours (`helpers.history`): days of use in one
transaction, no sleeping. The server reads the clock itself, so paces are checked to
their shown decimal, and amounts where whole packs make them exact."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Callable
from typing import Any

import jsonschema
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import merchants
from kitchen.models import LedgerEntry
from kitchen.reorder import COLUMNS
from tests.helpers import Seeded, client, history, hours_back, stock_of

DAY = datetime.timedelta(days=1)


def pace(per_hour: int, hours: int, now: datetime.datetime) -> float:
    """The daily use the server finds for `per_hour` over the `hours` before this hour
    began (and none in the minutes of this one): the span runs from the first hour."""
    first = now.replace(minute=0, second=0, microsecond=0) - datetime.timedelta(hours=hours)
    return per_hour * hours / ((now - first) / DAY)


def when(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def kitchen_week(api: TestClient, seeded: Seeded) -> datetime.datetime:
    """The reference kitchen after three days of burgers: beef 150 g an hour (3,600 a
    day) down to 9 kg, delivered in 3 days by 5 kg cases; onion 10 g an hour (240 a day)
    at its par level of 1 kg, delivered in 2 days by 250 g bags; cheese unused at par;
    and a new herb, at 0, never used."""
    now = datetime.datetime.now(datetime.UTC)
    for ingredient, change in (
        (seeded.beef, {"pack_size": 5000, "lead_time_days": 3}),
        (seeded.onion, {"pack_size": 250}),
    ):
        r = api.patch(f"/ingredients/{ingredient}", json=change)
        assert r.status_code == 200, r.text
    history(seeded.beef, hours_back(now, 72, lambda _: 150))
    history(seeded.onion, hours_back(now, 72, lambda _: 10))
    for ingredient, amount in ((seeded.beef, 9000), (seeded.onion, 1000)):
        assert api.post(f"/ingredients/{ingredient}/count", json={"amount": amount}).is_success
    # A formula-looking name with a comma: a spreadsheet must show it as text.
    herb = api.post("/ingredients", json={"name": "=SUM(1,2)", "stock": 0, "full_stock": 100})
    assert herb.status_code == 201, herb.text
    return now


def test_the_lines_most_urgent_first(api: TestClient, seeded: Seeded) -> None:
    now = kitchen_week(api, seeded)
    r = api.get("/reorder")
    assert r.status_code == 200
    body = r.json()
    generated = when(body["generated_at"])
    assert now - datetime.timedelta(seconds=1) <= generated <= now + datetime.timedelta(minutes=1)
    lines = body["lines"]
    # Beef runs out in 2.5 days, onion in 4.2; the herb never runs out (never used).
    # Cheese, unused and at its par level, is owed nothing: not listed.
    assert [line["name"] for line in lines] == ["beef", "onion", "=SUM(1,2)"]
    beef, onion, herb = lines
    assert list(beef) == list(COLUMNS)
    herb_id = next(i["id"] for i in api.get("/ingredients").json() if i["name"] == "=SUM(1,2)")

    beef_pace = pace(150, 72, now)
    assert abs(beef["daily_use"] - beef_pace) <= 0.1
    assert abs(beef["days_left"] - 9000 / beef_pace) <= 0.1
    assert abs(when(beef["runs_out_at"]) - (now + 9000 / beef_pace * DAY)) <= datetime.timedelta(
        minutes=2
    )
    # 3 days take about 10.8 kg: 20 kg - (9 kg - 10.8 kg) = 21.8 kg, five 5 kg cases.
    assert {
        k: v for k, v in beef.items() if k not in ("daily_use", "days_left", "runs_out_at")
    } == {
        "ingredient_id": seeded.beef,
        "name": "beef",
        "unit": "g",
        "stock": 9000,
        "par_level": 20000,
        "lead_time_days": 3,
        "pack_size": 5000,
        "runs_out_before_delivery": True,
        "suggested_order": 25000,
        "packs": 5,
    }
    assert stock_of(seeded.beef) == 9000

    # 2 days take 480 g: two 250 g bags bring it back to 1 kg; it lasts past the delivery.
    assert abs(onion["days_left"] - 1000 / pace(10, 72, now)) <= 0.1
    assert (onion["ingredient_id"], onion["stock"], onion["par_level"]) == (
        seeded.onion,
        1000,
        1000,
    )
    assert (onion["runs_out_before_delivery"], onion["suggested_order"], onion["packs"]) == (
        False,
        500,
        2,
    )
    assert herb == {
        "ingredient_id": herb_id,
        "name": "=SUM(1,2)",
        "unit": "g",
        "stock": 0,
        "par_level": 100,
        "lead_time_days": 2,
        "pack_size": None,
        "daily_use": None,
        "days_left": None,
        "runs_out_at": None,
        "runs_out_before_delivery": False,
        "suggested_order": 100,
        "packs": None,
    }
    # The same numbers as the ingredient's own forecast.
    forecast = api.get(f"/ingredients/{seeded.onion}").json()["forecast"]
    assert forecast["suggested_order"] == onion["suggested_order"]
    assert forecast["runs_out_at"] == onion["runs_out_at"]

    # Once restocked above what the lead time takes, beef leaves the list.
    assert api.post(f"/ingredients/{seeded.beef}/restock", json={"amount": 30000}).is_success
    assert [line["name"] for line in api.get("/reorder").json()["lines"]] == ["onion", "=SUM(1,2)"]


def test_csv_is_the_same_lines(api: TestClient, seeded: Seeded) -> None:
    kitchen_week(api, seeded)
    lines = api.get("/reorder").json()["lines"]
    r = api.get("/reorder", headers={"Accept": "text/csv"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="reorder.csv"'
    reader = csv.DictReader(io.StringIO(r.text, newline=""))
    rows = list(reader)
    assert reader.fieldnames == list(COLUMNS)
    assert len(rows) == len(lines) == 3
    paces = ("daily_use", "days_left", "runs_out_at")
    for row, line in zip(rows, lines, strict=True):
        for name in COLUMNS:
            value = line[name]
            if name in paces and value is not None:
                continue  # computed at another instant: compared below
            if name == "name" and value.startswith("="):
                value = "'" + value  # text, not a formula, to a spreadsheet
            assert row[name] == ("" if value is None else str(value)), (name, row, line)
        if line["daily_use"] is not None:
            assert abs(float(row["daily_use"]) - line["daily_use"]) <= 0.1
            assert abs(float(row["days_left"]) - line["days_left"]) <= 0.1
            assert abs(when(row["runs_out_at"]) - when(line["runs_out_at"])) <= datetime.timedelta(
                minutes=2
            )
    assert [r["name"] for r in rows] == ["beef", "onion", "'=SUM(1,2)"]
    assert rows[0]["runs_out_before_delivery"] == "True" and rows[0]["packs"] == "5"

    # Nothing to order: the header alone.
    for ingredient in (seeded.beef, seeded.onion):
        assert api.post(f"/ingredients/{ingredient}/restock", json={"amount": 50000}).is_success
    herb = next(i["id"] for i in api.get("/ingredients").json() if i["name"] == "=SUM(1,2)")
    assert api.post(f"/ingredients/{herb}/restock", json={"amount": 100}).is_success
    assert api.get("/reorder").json()["lines"] == []
    empty = api.get("/reorder", headers={"Accept": "text/csv"}).text
    assert empty == ",".join(COLUMNS) + "\r\n"


def test_the_answer_matches_its_openapi_schema(api: TestClient, seeded: Seeded) -> None:
    kitchen_week(api, seeded)
    document = api.get("/openapi.json").json()
    schema = {"$ref": "#/components/schemas/Reorder", "components": document["components"]}
    body = api.get("/reorder").json()
    jsonschema.Draft202012Validator(schema).validate(body)
    for ingredient in api.get("/ingredients").json():
        forecast = {"$ref": "#/components/schemas/Forecast", "components": document["components"]}
        jsonschema.Draft202012Validator(forecast).validate(ingredient["forecast"])
    operation = document["paths"]["/reorder"]["get"]
    assert "customer orders" in operation["description"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}


def test_query_parameters_are_refused(api: TestClient) -> None:
    r = api.get("/reorder", params={"limit": 5})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == ["limit"]


def errors(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def test_lead_time_and_pack_size_are_checked(api: TestClient, seeded: Seeded) -> None:
    """0 to 365 whole days; a pack is a positive integer of the unit, or null. A refused
    request changes nothing."""
    before = api.get("/ingredients").json()
    for field, value in (
        ("lead_time_days", -1),
        ("lead_time_days", 366),
        ("lead_time_days", 1.5),
        ("lead_time_days", "2"),
        ("lead_time_days", True),
        ("lead_time_days", None),
        ("pack_size", 0),
        ("pack_size", -250),
        ("pack_size", 2.5),
        ("pack_size", "250"),
        ("pack_size", True),
    ):
        new = {"name": "leek", "stock": 100, field: value}
        assert field in errors(api.post("/ingredients", json=new)), (field, value)
        patch = api.patch(f"/ingredients/{seeded.onion}", json={field: value})
        assert field in errors(patch), (field, value)
    assert api.get("/ingredients").json() == before
    assert (
        "0 to 365"
        in errors(api.post("/ingredients", json={"name": "x", "stock": 1, "lead_time_days": 400}))[
            "lead_time_days"
        ]
    )

    # The limits themselves are taken.
    made = api.post(
        "/ingredients",
        json={"name": "leek", "stock": 5, "unit": "piece", "lead_time_days": 365, "pack_size": 1},
    )
    assert made.status_code == 201, made.text
    assert (made.json()["lead_time_days"], made.json()["pack_size"]) == (365, 1)
    same_day = api.patch(f"/ingredients/{seeded.onion}", json={"lead_time_days": 0})
    assert same_day.json()["lead_time_days"] == 0


def test_pack_size_null_resets_to_any_amount(api: TestClient, seeded: Seeded) -> None:
    now = datetime.datetime.now(datetime.UTC)
    history(seeded.onion, hours_back(now, 72, lambda _: 10))
    assert api.post(f"/ingredients/{seeded.onion}/count", json={"amount": 1000}).is_success

    def onion_line() -> dict[str, Any]:
        [line] = [x for x in api.get("/reorder").json()["lines"] if x["name"] == "onion"]
        return line

    assert api.patch(f"/ingredients/{seeded.onion}", json={"pack_size": 300}).status_code == 200
    assert (onion_line()["suggested_order"], onion_line()["packs"]) == (600, 2)
    # A PATCH without pack_size leaves it.
    r = api.patch(f"/ingredients/{seeded.onion}", json={"lead_time_days": 1})
    assert (r.json()["lead_time_days"], r.json()["pack_size"]) == (1, 300)
    assert (onion_line()["suggested_order"], onion_line()["packs"]) == (300, 1)
    # null: any amount again, what the lead time takes (a day at about 240 g), exactly.
    r = api.patch(f"/ingredients/{seeded.onion}", json={"pack_size": None})
    assert r.status_code == 200 and r.json()["pack_size"] is None
    assert api.get(f"/ingredients/{seeded.onion}").json()["pack_size"] is None
    line = onion_line()
    assert line["pack_size"] is None and line["packs"] is None
    assert 236 <= line["suggested_order"] <= 240  # ceil(one day at 720 g / (72 h + minutes))
    assert (
        line["suggested_order"]
        == api.get(f"/ingredients/{seeded.onion}").json()["forecast"]["suggested_order"]
    )


def test_another_merchants_ingredients_are_never_listed(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    """Two merchants with an onion each, both below par; Bo's is used heavily. Each list
    holds its own onion, with its own pace."""
    kitchen = make_kitchen(app={"env": "production"})
    _, key_a = merchants.create("Ada's", "ada@example.com")
    _, key_b = merchants.create("Bo's", "bo@example.com")
    with client(kitchen, key_a) as a, client(kitchen, key_b) as b:
        onion = {"name": "onion", "stock": 0, "full_stock": 1000}
        onion_a = a.post("/ingredients", json=onion).json()["id"]
        onion_b = b.post("/ingredients", json={**onion, "stock": 5000}).json()["id"]
        now = datetime.datetime.now(datetime.UTC)
        history(onion_b, hours_back(now, 48, lambda _: 100))  # 4.8 kg in two days

        [line_a] = a.get("/reorder").json()["lines"]
        assert (line_a["ingredient_id"], line_a["daily_use"], line_a["suggested_order"]) == (
            onion_a,
            None,
            1000,
        )
        [line_b] = b.get("/reorder").json()["lines"]
        assert line_b["ingredient_id"] == onion_b and line_b["stock"] == 200
        assert abs(line_b["daily_use"] - pace(100, 48, now)) <= 0.1
        assert line_b["runs_out_before_delivery"] is True
        for caller, mine in ((a, onion_a), (b, onion_b)):
            rows = list(
                csv.DictReader(
                    io.StringIO(caller.get("/reorder", headers={"Accept": "text/csv"}).text)
                )
            )
            assert [r["ingredient_id"] for r in rows] == [str(mine)]
    # Without a key, in production: 401, no list.
    with client(kitchen) as nobody:
        assert nobody.get("/reorder").status_code == 401


def test_a_refund_of_an_older_order_is_not_negative_use(api: TestClient, seeded: Seeded) -> None:
    """Onion used 200 g eight days ago, given back by a refund yesterday: over the 7-day
    window no use (not a negative pace that ran out in the past and sorted first)."""
    now = datetime.datetime.now(datetime.UTC)
    top = now.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    history(seeded.onion, {top - 8 * DAY: 200})
    history(seeded.onion, {top - DAY: -200}, reason=LedgerEntry.REFUND)
    history(seeded.beef, hours_back(now, 24, lambda _: 100))
    assert api.post(f"/ingredients/{seeded.onion}/count", json={"amount": 500}).is_success
    lines = api.get("/reorder").json()["lines"]
    assert [line["name"] for line in lines] == ["beef", "onion"]
    assert {k: lines[1][k] for k in ("daily_use", "days_left", "runs_out_at")} == {
        "daily_use": 0.0,
        "days_left": None,
        "runs_out_at": None,
    }
    assert (lines[1]["runs_out_before_delivery"], lines[1]["suggested_order"]) == (False, 500)
