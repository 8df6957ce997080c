"""The dashboard's read endpoints (GET /orders, /alerts, /dashboard) and the page itself,
over HTTP without a browser (tests/e2e/test_dashboard.py drives the page in one)."""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.testclient import TestClient

from app import Kitchen
from kitchen import dashboard, merchants
from tests.helpers import SmtpServer, burgers, client, eventually


def test_orders_newest_first_and_alerts_with_their_email(api: TestClient, smtp: SmtpServer) -> None:
    first, second = burgers(api, 2), burgers(api, 24)
    eventually(lambda: api.get(f"/order/{second['id']}").json()["status"] == "applied")

    listed = api.get("/orders").json()
    assert [o["id"] for o in listed] == [second["id"], first["id"]]
    assert listed[0] == api.get(f"/order/{second['id']}").json()
    assert [o["id"] for o in api.get("/orders?limit=1").json()] == [second["id"]]
    assert [o["id"] for o in api.get(f"/orders?before={second['id']}").json()] == [first["id"]]
    bad = api.get("/orders?limit=0")
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"field": "limit", "message": "must be a whole number from 1 to 500"}
    ]

    # 26 burgers took onion to 480 g: one alert, and its email goes out.
    eventually(lambda: len(smtp.messages) == 1)
    [alert] = eventually(lambda: [a for a in api.get("/alerts").json() if a["mail"] == "sent"])
    onion = next(i for i in api.get("/ingredients").json() if i["name"] == "onion")
    assert alert | {"id": 0, "created_at": "", "mail_sent_at": ""} == {
        "id": 0,
        "ingredient_id": onion["id"],
        "ingredient": "onion",
        "unit": "g",
        "order_id": second["id"],
        "stock": 480,
        "full_stock": 1000,
        "threshold": 0.5,
        "email": "merchant@example.com",
        "created_at": "",
        "mail": "sent",
        "mail_sent_at": "",
        "cause": "order",
        "status": "open",
        "resolved_at": None,
        "resolved_by": None,
    }
    assert alert["created_at"].endswith("Z") and alert["mail_sent_at"] >= alert["created_at"]
    assert api.get(f"/alerts?before={alert['id']}").json() == []
    assert api.get("/alerts?limit=501").status_code == 422

    board = api.get("/dashboard")
    assert board.status_code == 200 and board.headers["cache-control"] == "no-store"
    view = board.json()
    assert view["merchant"]["name"] == "default"
    # The same ingredients; a forecast is of the moment it is read (runs_out_at moves).
    listed_ingredients = api.get("/ingredients").json()
    assert [dict(i, forecast=None) for i in view["ingredients"]] == [
        dict(i, forecast=None) for i in listed_ingredients
    ]
    assert [i["forecast"]["method"] for i in view["ingredients"]] == ["recent"] * 3
    assert view["products"] == api.get("/products").json()
    assert view["orders"] == listed
    assert view["alerts"] == [alert]


def test_a_merchant_sees_only_its_own_orders_alerts_and_dashboard(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    # No notification role: the alert's email stays "waiting".
    kitchen = make_kitchen("api,processing,relay", app={"env": "production"})
    _, key_a = merchants.create("Ada's", "ada@example.com")
    _, key_b = merchants.create("Bo's", "bo@example.com")
    with client(kitchen, key_a) as a, client(kitchen, key_b) as b, client(kitchen) as nobody:
        onion = b.post("/ingredients", json={"name": "onion", "stock": 1000}).json()
        soup = {"name": "Soup", "recipe": [{"ingredient_id": onion["id"], "grams": 100}]}
        soup_id = b.post("/products", json=soup).json()["id"]
        line = {"product_id": soup_id, "quantity": 1}
        assert b.post("/order", json={"products": [line]}).status_code == 201
        waste = b.post(f"/ingredients/{onion['id']}/waste", json={"grams": 600})
        assert waste.status_code == 200

        [alert] = b.get("/alerts").json()
        assert (alert["ingredient"], alert["order_id"], alert["email"]) == (
            "onion",
            None,
            "bo@example.com",
        )
        assert (alert["mail"], alert["mail_sent_at"]) == ("waiting", None)
        assert len(b.get("/orders").json()) == 1
        assert b.get("/dashboard").json()["merchant"]["name"] == "Bo's"

        assert a.get("/orders").json() == []
        assert a.get("/alerts").json() == []
        assert a.get("/dashboard").json() == {
            "merchant": {"id": a.get("/merchant").json()["id"], "name": "Ada's"},
            "ingredients": [],
            "products": [],
            "orders": [],
            "alerts": [],
        }
        for path in ("/orders", "/alerts", "/dashboard"):
            r = nobody.get(path)
            assert r.status_code == 401, path
            assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_page_needs_no_key_and_loads_nothing_from_elsewhere(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    """The page holds no data (the script fetches it with the key), so production serves
    it to anyone; everything it loads is Kitchen's own."""
    kitchen = make_kitchen(app={"env": "production"})
    with client(kitchen) as browser:
        page = browser.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert page.headers["referrer-policy"] == "no-referrer"
        html = page.text
        assert 'data-env="production"' in html
        assert '<meta name="viewport"' in html
        assert '<label for="key">' in html and 'type="password"' in html
        # The form never submits the key in a URL, even without the script.
        assert '<form id="login-form" method="post"' in html
        loaded = re.findall(r'(?:src|href)="([^"]*)"', html)
        # Kitchen's own files only, each served, none reaching elsewhere or writing HTML.
        # (Every script and stylesheet in kitchen/static is on the page: none forgotten.)
        assert all(path.startswith("/static/") for path in loaded), loaded
        shipped = {
            "/static/" + str(p.relative_to(dashboard.STATIC))
            for p in dashboard.STATIC.rglob("*")
            if p.suffix in (".js", ".css")
        }
        assert set(loaded) == shipped
        for path in loaded:
            kind = "javascript" if path.endswith(".js") else "css"
            r = browser.get(path)
            assert r.status_code == 200 and kind in r.headers["content-type"], path
            if "/vendor/" in path:
                continue  # a vendored library, as published (its VERSION file says which)
            assert not re.search(r"https?://", r.text), f"{path} loads from another site"
            assert "innerHTML" not in r.text, path
        missing = browser.get("/static/nothing.js")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
