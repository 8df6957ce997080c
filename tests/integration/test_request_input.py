"""What the HTTP edge accepts (issue 16, items 4, 5, 9, 16, 23): bodies only as JSON,
names and notes only as text a person can read, one email-address rule everywhere,
no unknown fields in an order, and list endpoints that refuse query parameters they
do not take. Each refusal is a problem document naming the field, and saves nothing.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from kitchen import admin
from kitchen import settings as config
from kitchen.db import session
from kitchen.mail import PermanentMailError, check_message
from kitchen.models import Ingredient, LedgerEntry, Merchant, Order, Product
from kitchen.validation import email_problem
from tests.helpers import eventually

JSON = {"content-type": "application/json"}
BEEF, CHEESE, ONION = 1, 2, 3  # the seeded ingredients
BURGER = 1


def send(api: TestClient, method: str, url: str, data: Any, **headers: str) -> Any:
    """`data` as JSON text escaped to ASCII: a lone surrogate goes as `\\ud800`, as a
    client in any language can send it (httpx's own encoder cannot)."""
    body = json.dumps(data).encode()
    return api.request(method, url, content=body, headers={**JSON, **headers})


def state() -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    with session():
        return {
            "merchants": [(m.name, m.alert_email) for m in Merchant.select().order_by(Merchant.id)],
            "ingredients": [
                (i.name, i.stock, i.full_stock, i.threshold)
                for i in Ingredient.select().order_by(Ingredient.id)
            ],
            "ledger": [(e.grams, e.note) for e in LedgerEntry.select().order_by(LedgerEntry.id)],
            "products": [(p.name, p.deleted_at) for p in Product.select().order_by(Product.id)],
            "orders": Order.select().count(),
        }


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    if field is not None:
        assert [e["field"] for e in problem["errors"]] == [field], problem
    return problem


# --- item 4: a body is JSON, sent as JSON ---------------------------------------------------

BODIES = [
    ("POST", "/order", {"products": [{"product_id": BURGER, "quantity": 1}]}),
    ("PATCH", "/merchant", {"name": "Evil", "alert_email": "evil@example.org"}),
    ("POST", "/ingredients", {"name": "salt", "stock": 100}),
    ("PATCH", f"/ingredients/{BEEF}", {"name": "veal", "threshold": 0.9}),
    ("POST", f"/ingredients/{ONION}/restock", {"grams": 500}),
    ("POST", f"/ingredients/{ONION}/count", {"grams": 4}),
    ("POST", f"/ingredients/{ONION}/waste", {"grams": 100}),
    ("POST", "/products", {"name": "Salad", "recipe": [{"ingredient_id": ONION, "grams": 5}]}),
    ("PATCH", f"/products/{BURGER}", {"name": "Evil burger"}),
]
NOT_JSON = [
    None,
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonp",
    "",
]


@pytest.mark.parametrize("method, url, data", BODIES, ids=[f"{m} {u}" for m, u, _ in BODIES])
def test_a_body_not_sent_as_json_is_415_and_saves_nothing(
    api: TestClient, method: str, url: str, data: Any
) -> None:
    before = state()
    for kind in NOT_JSON:
        # What any web page can send to another origin without a CORS preflight.
        headers = {"origin": "https://evil.example"}
        if kind is not None:
            headers["content-type"] = kind
        response = api.request(method, url, content=json.dumps(data).encode(), headers=headers)
        problem = assert_problem(response, 415)
        assert "Content-Type: application/json" in problem["detail"], kind
        assert response.headers[f"accept-{method.lower()}"] == "application/json"
        assert state() == before, kind


@pytest.mark.parametrize("kind", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_with_a_charset_or_in_capitals_is_json(api: TestClient, kind: str) -> None:
    response = send(
        api, "POST", f"/ingredients/{ONION}/restock", {"grams": 500}, **{"content-type": kind}
    )
    assert response.status_code == 200, response.text
    assert response.json()["stock"] == 1500


def test_requests_without_a_body_need_no_content_type(api: TestClient) -> None:
    assert api.post("/order/seed").status_code == 200  # as the README's curl sends it
    assert api.delete(f"/products/{BURGER}").status_code == 204


# --- item 5: names and notes are text a person can read -------------------------------------

UNREADABLE = {
    "lone surrogate": ("bad\ud800x", "U+D800 is a lone surrogate"),
    "NUL": ("nul\x00x", "U+0000 is a control character"),
    "escape": ("red\x1b[31m", "U+001B is a control character"),
    "tab": ("a\tb", "U+0009 is a control character"),
    "newline": ("a\nb", "U+000A is a control character"),
    "DEL": ("a\x7fb", "U+007F is a control character"),
    "C1 next line": ("a\x85b", "U+0085 is a control character"),
    "line separator": ("a\u2028b", "U+2028 is a line or paragraph separator"),
}
NAMED: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/ingredients", {"stock": 100}),
    ("PATCH", f"/ingredients/{BEEF}", {}),
    ("POST", "/products", {"recipe": [{"ingredient_id": ONION, "grams": 5}]}),
    ("PATCH", f"/products/{BURGER}", {}),
    ("PATCH", "/merchant", {}),
]


@pytest.mark.parametrize("text, message", UNREADABLE.values(), ids=list(UNREADABLE))
def test_a_name_that_is_not_one_readable_line_is_422(
    api: TestClient, text: str, message: str
) -> None:
    before = state()
    for method, url, rest in NAMED:
        response = send(api, method, url, {"name": text, **rest})
        problem = assert_problem(response, 422, "name")
        expected = f"must be one line of readable text: {message}"
        assert problem["errors"][0]["message"] == expected, (method, url)
        assert state() == before, (method, url)


NOTES = {
    "lone surrogate": ("bad\udfffx", "U+DFFF is a lone surrogate"),
    "NUL": ("nul\x00", "U+0000 is a control character"),
    "CR": ("over\rwrite", "U+000D is a control character"),
    "escape": ("\x1b[2J", "U+001B is a control character"),
    "C1": ("\x9bx", "U+009B is a control character"),
}


@pytest.mark.parametrize("text, message", NOTES.values(), ids=list(NOTES))
def test_a_note_with_control_characters_is_422(api: TestClient, text: str, message: str) -> None:
    before = state()
    for move in ("restock", "count", "waste"):
        data = {"grams": 10, "note": text}
        response = send(api, "POST", f"/ingredients/{ONION}/{move}", data)
        problem = assert_problem(response, 422, "note")
        expected = f"must be readable text (newlines and tabs allowed): {message}"
        assert problem["errors"][0]["message"] == expected, move
        assert state() == before, move


def test_a_note_may_span_lines_and_names_may_be_any_language(api: TestClient) -> None:
    note = "Monday delivery\n\t2 crates short, 🧅 oignons d'Espagne"
    response = send(api, "POST", f"/ingredients/{ONION}/restock", {"grams": 600, "note": note})
    assert response.status_code == 200 and response.json()["stock"] == 1600
    assert api.get(f"/ingredients/{ONION}/ledger?limit=1").json()[0]["note"] == note
    renamed = send(api, "PATCH", f"/ingredients/{ONION}", {"name": "Zwiebel 洋葱 🧅"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Zwiebel 洋葱 🧅"


# --- item 9: one rule for an email address ----------------------------------------------------

# Each: does the rule take it, and why. The mailer can send neither non-ASCII (smtplib
# without SMTPUTF8, which yagmail never asks for) nor more than one address.
ADDRESSES = [
    ("chef@example.com", True),
    ("chef.de-partie+alerts@mail.example.co.uk", True),
    ("a!#$%&'*+/=?^_`{|}~-b@example.com", True),
    ("chef@localhost", True),  # dotless, as the default sender kitchen@localhost
    ("josé@example.com", False),
    ("chef@exämple.com", False),
    (".chef@example.com", False),
    ("ch..ef@example.com", False),
    ("chef@-example.com", False),
    ("chef@example..com", False),
    ("a,b@example.com", False),
    ("chef@example.com, spy@evil.example", False),
    ("Chef <chef@example.com>", False),
    ('"a b"@example.com', False),
    ("chef@[127.0.0.1]", False),
    ("a@b@example.com", False),
    ("chef@example.com\r\nBcc: spy@evil.example", False),
    ("x" * 65 + "@example.com", False),
    ("chef@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 60 + ".com", False),
    ("", False),
]


@pytest.mark.parametrize("address, good", ADDRESSES, ids=[a[:40] for a, _ in ADDRESSES])
def test_settings_and_the_mailer_agree_on_an_address(address: str, good: bool) -> None:
    assert (email_problem(address) is None) is good
    for settings in (
        config.Settings(alerts=config.Alerts(email=address)),
        config.Settings(mail=config.Mail(sender=address)),
    ):
        problems = config.check(settings)
        assert (problems == []) is good, problems
    try:
        check_message(address, "Low stock: onion")
        mailable = True
    except PermanentMailError:
        mailable = False
    assert mailable is good


def test_the_api_takes_the_addresses_the_mailer_takes(api: TestClient) -> None:
    for address, good in ADDRESSES:
        before = state()
        response = send(api, "PATCH", "/merchant", {"alert_email": address})
        if good:
            assert response.status_code == 200, (address, response.text)
            assert response.json()["alert_email"] == address
        else:
            assert_problem(response, 422, "alert_email")
            assert state() == before, address


def test_the_cli_refuses_an_address_the_mailer_cannot_send_to(clean_database: str) -> None:
    args = argparse.Namespace(action="create", name="Chez José", email="josé@example.com")
    assert admin.run(args) == 2
    with session():
        assert Merchant.select().where(Merchant.name == "Chez José").count() == 0


def test_a_non_ascii_alert_address_is_refused_with_the_reason(api: TestClient) -> None:
    response = send(api, "PATCH", "/merchant", {"alert_email": "josé@example.com"})
    problem = assert_problem(response, 422, "alert_email")
    assert "plain ASCII" in problem["errors"][0]["message"]


# --- item 16: an order has no unknown fields ----------------------------------------------------


@pytest.mark.parametrize(
    "data, field",
    [
        ({"products": [{"product_id": BURGER, "quantity": 1, "qty": 2}]}, "products[0].qty"),
        ({"products": [{"product_id": BURGER, "quantity": 1}], "table": 5}, "table"),
    ],
    ids=["in a line", "at the top"],
)
def test_an_order_with_an_unknown_field_is_422(api: TestClient, data: Any, field: str) -> None:
    before = state()
    response = api.post("/order", json=data)
    problem = assert_problem(response, 422, field)
    assert problem["errors"][0]["message"] == "is not a known field"
    assert state() == before


# --- item 23: list endpoints take only the query parameters they document -----------------------


def test_orders_filter_by_status(api: TestClient) -> None:
    too_many = api.post("/order", json={"products": [{"product_id": BURGER, "quantity": 1000}]})
    fine = api.post("/order", json={"products": [{"product_id": BURGER, "quantity": 1}]})
    rejected, applied = too_many.json()["id"], fine.json()["id"]
    eventually(lambda: api.get(f"/order/{applied}").json()["status"] == "applied")
    eventually(lambda: api.get(f"/order/{rejected}").json()["status"] == "rejected")

    assert [o["id"] for o in api.get("/orders?status=rejected").json()] == [rejected]
    assert [o["id"] for o in api.get("/orders?status=applied").json()] == [applied]
    assert api.get("/orders?status=pending").json() == []
    assert [o["id"] for o in api.get("/orders").json()] == [applied, rejected]
    assert api.get("/orders?status=cancelled").json() == []
    problem = assert_problem(api.get("/orders?status=paid"), 422, "status")
    assert problem["errors"][0]["message"] == (
        "must be one of pending, applied, rejected, awaiting_payment, cancelled"
    )


UNKNOWN_QUERIES = [
    ("/orders?stauts=rejected", "stauts"),
    ("/orders?status=rejected&page=2", "page"),
    ("/alerts?status=sent", "status"),
    ("/ingredients?name=beef", "name"),
    ("/products?limit=1", "limit"),
    (f"/ingredients/{BEEF}/ledger?reason=order", "reason"),
]


def test_an_unknown_query_parameter_is_422(api: TestClient) -> None:
    for url, field in UNKNOWN_QUERIES:
        problem = assert_problem(api.get(url), 422, field)
        assert problem["errors"][0]["message"] == "is not a known query parameter", url


def test_a_query_parameter_given_twice_is_422(api: TestClient) -> None:
    problem = assert_problem(api.get("/orders?limit=1&limit=500"), 422, "limit")
    assert problem["errors"][0]["message"] == "is given more than once"


def test_the_documented_query_parameters_still_work(api: TestClient) -> None:
    for url in ("/orders?limit=5&before=10", "/alerts?limit=5", f"/ingredients/{BEEF}/ledger"):
        assert api.get(url).status_code == 200, url


def test_an_unknown_field_named_with_unreadable_text_is_named_escaped(api: TestClient) -> None:
    # The name goes back in the problem document: a lone surrogate cannot be encoded.
    before = state()
    for method, url, data, field in [
        ("POST", "/order", {"products": [], "\ud800": 1}, "\\ud800"),
        ("POST", "/order", {"products": [{"\udfff": 0, "": 0}]}, "products[0].\\udfff"),
        ("PATCH", "/merchant", {"x\x1b[2J": 1}, "x\\u001b[2J"),
        ("POST", "/products", {"name": "S", "recipe": [{"\ud800": 1}]}, "recipe[0].\\ud800"),
    ]:
        response = send(api, method, url, data)
        problem = assert_problem(response, 422)
        assert {"field": field, "message": "is not a known field"} in problem["errors"], url
    assert state() == before
