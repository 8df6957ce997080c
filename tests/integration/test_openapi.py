"""GET /openapi.json: every route of the app is in it, and it is valid OpenAPI 3.

It iterates over the app's actual routes, so a route added later without its docstring
YAML (see the top of kitchen/http.py) fails here.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import openapi
from kitchen.commands import MAX_AMOUNT
from kitchen.db import session, utcnow
from kitchen.domain import MAX_GRAMS, MAX_ID, THRESHOLD_PLACES
from kitchen.http import Api, build_app
from kitchen.models import Order, Payment
from kitchen.settings import Settings
from tests.helpers import Seeded


@pytest.fixture
def document(api: TestClient) -> dict[str, Any]:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """`node`, or what its `$ref` names in `doc`."""
    while isinstance(node, dict) and "$ref" in node:
        found: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


def parameters(doc: dict[str, Any], op: dict[str, Any]) -> list[dict[str, Any]]:
    return [resolve(doc, p) for p in op.get("parameters", [])]


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method.upper()): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    }


def test_every_route_and_method_is_described(kitchen: Kitchen, document: dict[str, Any]) -> None:
    routes = [r for r in kitchen.web_app().routes if isinstance(r, Route)]
    assert routes
    expected = {(r.path, m) for r in routes for m in (r.methods or ["GET"]) if m != "HEAD"}
    described = operations(document)
    assert expected - set(described) == set(), "routes without OpenAPI YAML in their docstring"
    assert set(described) - expected == set()
    for (path, method), op in described.items():
        assert op.get("summary"), f"{method} {path} has no summary"
        assert op.get("responses"), f"{method} {path} has no responses"


def test_the_document_is_valid_openapi_3(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    validate(document)  # raises with the path of what is wrong


def test_bodies_and_problem_responses(document: dict[str, Any]) -> None:
    assert "Problem" in document["components"]["schemas"]
    responses = document["components"]["responses"]
    for (path, method), op in operations(document).items():
        # The seed and the fake card take no body; the webhook's is raw and signed.
        bodiless = path == "/order/seed" or path.startswith("/payments/fake/")
        if method in ("POST", "PATCH") and not bodiless:
            assert "requestBody" in op, f"{method} {path} documents no request body"
        if "requestBody" in op and path != "/payments/webhook":
            assert "415" in op["responses"], f"{method} {path} documents no 415"
        for status, response in op["responses"].items():
            if int(status) < 400 or path == "/ready":
                continue
            if "$ref" in response:
                response = responses[response["$ref"].rsplit("/", 1)[1]]
            content = response["content"]
            assert list(content) == ["application/problem+json"], (method, path, status)
            schema = content["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}
    open_ones = {p for (p, _), op in operations(document).items() if op.get("security") == []}
    # The dashboard page holds no data: its script asks for the key.
    assert open_ones == {"/health", "/ready", "/openapi.json", "/", "/payments/webhook"}
    # The webhook is signed instead: it states the 400 and 413 it answers, and no 415 or
    # 422 (any content type, no field to name).
    webhook = operations(document)[("/payments/webhook", "POST")]
    assert sorted(webhook["responses"]) == ["200", "400", "413"]
    # /metrics takes the scrape token, not a merchant's key.
    assert operations(document)[("/metrics", "GET")]["security"] == [{"metrics_token": []}]
    assert document["components"]["securitySchemes"]["metrics_token"]["scheme"] == "bearer"


def test_list_endpoints_state_their_query_parameters(document: dict[str, Any]) -> None:
    ops = operations(document)
    for path, names in {
        "/orders": ["limit", "before", "status"],
        "/alerts": ["limit", "before"],
        "/ingredients/{id}/ledger": ["limit", "before"],
        "/ingredients": [],
        "/products": [],
    }.items():
        op = ops[(path, "GET")]
        query = [p["name"] for p in parameters(document, op) if p["in"] == "query"]
        assert query == names
        assert "422" in op["responses"], path  # an unknown query parameter
    status = next(p for p in parameters(document, ops[("/orders", "GET")]) if p["name"] == "status")
    assert status["schema"] == {
        "enum": ["pending", "applied", "rejected", "awaiting_payment", "cancelled"]
    }


def test_real_answers_match_their_schemas(
    api: TestClient, seeded: Seeded, document: dict[str, Any]
) -> None:
    def check(instance: Any, name: str) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
        jsonschema.Draft202012Validator(schema).validate(instance)

    order = api.post("/order", json=seeded.order(2)).json()
    check(order, "Order")
    check(api.get(f"/order/{order['id']}").json(), "Order")
    for ingredient in api.get("/ingredients").json():
        check(ingredient, "Ingredient")
    for product in api.get("/products").json():
        check(product, "Product")
    check(api.get("/merchant").json(), "Merchant")
    for entry in api.get(f"/ingredients/{seeded.beef}/ledger").json():
        check(entry, "LedgerEntry")
    check(api.get("/health").json(), "Health")
    check(api.post("/order/seed").json(), "Seeded")
    low = api.post("/ingredients", json={"name": "saffron", "stock": 0, "full_stock": 10})
    assert low.status_code == 201  # made below its threshold: an alert
    for name, path in (("Order", "/orders"), ("Alert", "/alerts")):
        listed = api.get(path).json()
        assert listed, path
        for each in listed:
            check(each, name)
    check(api.get("/dashboard").json(), "Dashboard")
    problem = api.post("/order", json=seeded.order(0))
    assert problem.headers["content-type"] == "application/problem+json"
    check(problem.json(), "Problem")
    check({"products": [{"product_id": 1, "quantity": 2}]}, "NewOrder")
    with pytest.raises(jsonschema.ValidationError):
        check({"products": [{"product_id": 1, "quantity": 0}]}, "NewOrder")

    # A merchant that requires payments: its products' prices, its orders' payments.
    assert api.patch(f"/products/{seeded.burger}", json={"price": 850}).status_code == 200
    check(api.get(f"/products/{seeded.burger}").json(), "Product")
    merchant = api.patch("/merchant", json={"payments": "required", "currency": "USD"})
    check(merchant.json(), "Merchant")
    paid = api.post("/order", json=seeded.order(2))
    assert paid.status_code == 201, paid.text
    check(paid.json(), "Order")
    assert paid.json()["payment"]["client_secret"]
    check(api.get(f"/order/{paid.json()['id']}").json(), "Order")
    for each in api.get("/orders").json():
        check(each, "Order")


def test_the_seed_answers_as_the_lists_do(make_kitchen: Callable[..., Kitchen]) -> None:
    """POST /order/seed shows its ingredients and products as GET /ingredients and GET
    /products do (threshold and low included), with the threshold that applies."""
    kitchen = make_kitchen(roles="api", alerts={"threshold": 0.7})
    with TestClient(kitchen.web_app()) as api:
        created = api.post("/order/seed")
        assert created.status_code == 201
        again = api.post("/order/seed")
        assert again.status_code == 200
        for answer in (created.json(), again.json()):
            assert answer["ingredients"] == api.get("/ingredients").json()
            assert answer["products"] == api.get("/products").json()
        assert {i["threshold"] for i in again.json()["ingredients"]} == {0.7}
        assert [p["can_make"] for p in again.json()["products"]] == [50]  # onion: 1000 / 20


def test_the_order_limits_are_the_settings(make_kitchen: Callable[..., Kitchen]) -> None:
    """An order's limits are settings: the document states the ones the server runs with."""
    kitchen = make_kitchen(roles="api", orders={"max_lines": 3, "max_quantity": 7})
    with TestClient(kitchen.web_app()) as api:
        schemas = api.get("/openapi.json").json()["components"]["schemas"]
        assert schemas["NewOrder"]["properties"]["products"]["maxItems"] == 3
        assert schemas["OrderLine"]["properties"]["quantity"]["maximum"] == 7
        burger = api.post("/order/seed").json()["products"][0]["id"]
        line = {"product_id": burger, "quantity": 7}
        assert api.post("/order", json={"products": [line] * 3}).status_code == 201
        assert api.post("/order", json={"products": [line] * 4}).status_code == 422
        too_many = api.post("/order", json={"products": [{**line, "quantity": 8}]})
        assert too_many.status_code == 422


def test_a_bad_docstring_names_its_endpoint() -> None:
    api = Api(Settings(), 1)

    async def broken(request: Any) -> Any:
        """Prose.
        ---
        summary: a: b
        """

    app = build_app(api)
    app.router.routes.append(Route("/broken", broken, methods=["GET"]))
    with pytest.raises(ValueError, match=r"docstring of .*broken"):
        openapi.document(app.routes)


Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Case:
    """One value of one field, and what the server must make of it: accept it (`ok`),
    refuse it with a 422 naming the field (`bad`), or refuse it only as naming no row
    (`unknown`: an id the column holds, but of nothing)."""

    field: Path
    value: Any
    expect: str  # ok, bad, unknown
    why: str
    # Properties left out of the object for this case: the other names of one value
    # (`amount` or `grams`: a schema's `oneOf` of `required`), since two is a 422.
    without: tuple[str, ...] = ()


MISSING = object()  # as a Case's value: the field is left out


def shown(field: Path) -> str:
    """A field as problem documents name it: products[0].quantity."""
    text = ""
    for part in field:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class Values:
    """Valid values the schemas cannot give: fresh names (a taken one is a 409) and lists
    of lines (a recipe names each ingredient once)."""

    def __init__(self, lines: dict[str, Callable[[int], list[dict[str, Any]]]]) -> None:
        self.lines = lines
        self.made = 0

    def text(self, length: int, schema: dict[str, Any]) -> str:
        self.made += 1
        if schema.get("format") == "email":
            size = min(64, length - 2)  # what is left is the domain, 1 character or more
            local = f"m{self.made}".ljust(size, "x")[:size]
            domain = length - len(local) - 1
            labels = ["d" * 63] * ((domain - 1) // 64) + ["d" * ((domain - 1) % 64 + 1)]
            address = local + "@" + ".".join(labels)
            assert len(address) == length
            return address
        if length <= 3:  # a short name, unique all the same
            return chr(0x4E00 + self.made) * length
        return f"n{self.made}".ljust(length, "x")


def cases(doc: dict[str, Any], schema: dict[str, Any], at: Path, values: Values) -> list[Case]:
    """What each property of `schema` (an object at `at` of the body) states: its least and
    greatest value or length or count are accepted, one less or one more refused; the
    required ones may not be left out, and no other property is taken."""
    schema = resolve(doc, schema)
    found: list[Case] = []
    assert schema.get("additionalProperties") is False, f"{at}: unknown properties refused"
    found.append(Case((*at, "bogus"), 1, "bad", "an unknown property"))
    for name in schema.get("required", []):
        found.append(Case((*at, name), MISSING, "bad", "required"))
    # One of these names is required (none is a 422 naming the first), and only one
    # (test_units.py sends two).
    names = [one for alt in schema.get("oneOf", []) for one in alt["required"]]
    if names:
        found.append(Case((*at, names[0]), MISSING, "bad", "one name required", tuple(names)))
    for name, prop in schema["properties"].items():
        prop = resolve(doc, prop)
        if prop.get("readOnly"):
            continue  # what GET shows, taken back if it still holds (test_units.py)
        field = (*at, name)
        start = len(found)
        if {"type": "null"} in prop.get("oneOf", []):  # null is a value of its own (a price)
            found.append(Case(field, None, "ok", "null"))
            [prop] = [resolve(doc, p) for p in prop["oneOf"] if p != {"type": "null"}]
        kind = prop.get("type")
        if "enum" in prop:
            found += [Case(field, v, "ok", "in the enum") for v in prop["enum"]]
            found.append(Case(field, "other", "bad", "not in the enum"))
        elif kind in ("integer", "number"):
            assert "minimum" in prop and "maximum" in prop, f"{shown(field)} states no limits"
            step = 1 if kind == "integer" else 10**-THRESHOLD_PLACES
            low, high = prop["minimum"], prop["maximum"]
            # An id at its maximum is one the column holds, but of no row.
            top = "unknown" if name.endswith("_id") and high == MAX_ID else "ok"
            found += [
                Case(field, low, "ok", "minimum"),
                Case(field, high, top, "maximum"),
                Case(field, low - step, "bad", "minimum - 1"),
                Case(field, high + step, "bad", "maximum + 1"),
            ]
        elif kind == "string" and "pattern" in prop:
            # A code of a stated shape (a currency): its example, and the example spoilt.
            [good] = prop["examples"][:1]
            found += [
                Case(field, good, "ok", "the example"),
                Case(field, good.lower(), "bad", "not the pattern"),
                Case(field, good + good[0], "bad", "maxLength + 1"),
                Case(field, good[:-1], "bad", "minLength - 1"),
            ]
        elif kind == "string":
            assert "maxLength" in prop, f"{shown(field)} states no maxLength"
            low, high = prop.get("minLength", 0), prop["maxLength"]
            found += [
                Case(field, values.text(max(low, 1), prop), "ok", "minLength"),
                Case(field, values.text(high, prop), "ok", "maxLength"),
                Case(field, values.text(high + 1, prop), "bad", "maxLength + 1"),
            ]
            if low:
                found.append(Case(field, "", "bad", "minLength - 1"))
        elif kind == "array":
            assert "minItems" in prop and "maxItems" in prop, f"{shown(field)} states no count"
            low, high = prop["minItems"], prop["maxItems"]
            lines = values.lines[name]
            found += [
                Case(field, lines(low), "ok", "minItems"),
                Case(field, lines(high), "ok", "maxItems"),
                Case(field, lines(low - 1), "bad", "minItems - 1"),
                Case(field, lines(high + 1), "bad", "maxItems + 1"),
            ]
            found += cases(doc, prop["items"], (*field, 0), values)
        else:
            raise AssertionError(f"{shown(field)}: no test for a schema like {prop}")
        if name in names:  # its cases leave the other names out
            others = tuple(n for n in names if n != name)
            found[start:] = [dataclasses.replace(c, without=others) for c in found[start:]]
    return found


def with_case(body: dict[str, Any], case: Case) -> dict[str, Any]:
    body = copy.deepcopy(body)
    *parents, last = case.field
    into: Any = body
    for part in parents:
        into = into[part]
    for other in case.without:
        into.pop(other, None)
    if case.value is MISSING:
        into.pop(last, None)
    else:
        into[last] = copy.deepcopy(case.value)
    return body


def check(response: Any, case: Case, where: str) -> None:
    what = f"{where}: {shown(case.field)} = {str(case.value)[:60]!r} ({case.why})"
    if case.expect == "ok":
        assert response.status_code < 300, f"{what} refused: {response.text[:300]}"
        return
    assert response.status_code == 422, f"{what}: {response.status_code} {response.text[:300]}"
    named = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert shown(case.field) in named, f"{what}: the 422 names {named}"
    if case.expect == "unknown":
        assert "unknown" in named[shown(case.field)], f"{what}: {named}"


def test_each_request_schema_states_what_validation_accepts(
    api: TestClient, document: dict[str, Any]
) -> None:
    """For each operation that takes a body, each property of its schema (and of the
    objects in its lists): the stated minimum and maximum (value, length, count) are
    accepted and one past either is a 422 naming the field; required properties are
    required; unknown ones refused; enums hold. The query parameters likewise. So a
    limit the server changes, or one the document leaves out, fails here."""
    seeded = api.post("/order/seed").json()
    burger = next(p["id"] for p in seeded["products"] if p["name"] == "Burger")
    beef = next(i["id"] for i in seeded["ingredients"] if i["name"] == "beef")
    recipes = document["components"]["schemas"]["NewProduct"]["properties"]["recipe"]
    pool = [
        api.post("/ingredients", json={"name": f"pool {n}", "stock": 0}).json()["id"]
        for n in range(recipes["maxItems"] + 1)
    ]
    values = Values(
        {
            "products": lambda n: [{"product_id": burger, "quantity": 1}] * n,
            "recipe": lambda n: [{"ingredient_id": i, "grams": 1} for i in pool[:n]],
        }
    )

    def ingredient(stock: int = 0) -> str:
        made = api.post("/ingredients", json={"name": values.text(8, {}), "stock": stock})
        assert made.status_code == 201, made.text
        return f"/ingredients/{made.json()['id']}"

    def product() -> str:
        body = {"name": values.text(8, {}), "recipe": values.lines["recipe"](1)}
        made = api.post("/products", json=body)
        assert made.status_code == 201, made.text
        return f"/products/{made.json()['id']}"

    # Orders to cancel (awaiting payment: no role moves them meanwhile) and to refund (the
    # most a refund may ask, captured).
    merchant = api.get("/merchant").json()["id"]

    def unpaid_order() -> int:
        with session():
            return int(Order.create(merchant=merchant, status=Order.AWAITING_PAYMENT).id)

    def captured_order() -> int:
        with session():
            order = Order.create(merchant=merchant, status=Order.APPLIED)
            Payment.create(
                merchant=merchant,
                order=order.id,
                provider="fake",
                status=Payment.CAPTURED,
                amount=MAX_AMOUNT,
                captured_amount=MAX_AMOUNT,
                currency="EUR",
                expires_at=utcnow(),
            )
            return int(order.id)

    # Each operation that takes a body: a fresh target and a valid body for each request.
    Target = Callable[[], tuple[str, dict[str, Any]]]
    targets: dict[tuple[str, str], Target] = {
        ("/order", "POST"): lambda: ("/order", {"products": values.lines["products"](1)}),
        ("/merchant", "PATCH"): lambda: ("/merchant", {}),
        ("/ingredients", "POST"): lambda: (
            "/ingredients",
            {"name": values.text(8, {}), "stock": 0},
        ),
        ("/ingredients/{id}", "PATCH"): lambda: (ingredient(), {}),
        ("/ingredients/{id}/restock", "POST"): lambda: (f"{ingredient()}/restock", {"grams": 1}),
        ("/ingredients/{id}/count", "POST"): lambda: (f"{ingredient()}/count", {"grams": 0}),
        # Waste of the most there can be needs that much in stock.
        ("/ingredients/{id}/waste", "POST"): lambda: (
            f"{ingredient(MAX_GRAMS)}/waste",
            {"grams": 1},
        ),
        ("/products", "POST"): lambda: (
            "/products",
            {"name": values.text(8, {}), "recipe": values.lines["recipe"](1)},
        ),
        ("/products/{id}", "PATCH"): lambda: (product(), {"recipe": values.lines["recipe"](1)}),
        ("/order/{id}/cancel", "POST"): lambda: (f"/order/{unpaid_order()}/cancel", {}),
        ("/order/{id}/refund", "POST"): lambda: (f"/order/{captured_order()}/refund", {}),
    }
    # The webhook's body is the provider's event, signed (tests/integration/test_webhooks.py).
    with_body = {
        key
        for key, op in operations(document).items()
        if "requestBody" in op and key != ("/payments/webhook", "POST")
    }
    assert set(targets) == with_body, "an operation that takes a body has no target here"

    probed = 0
    for (path, method), target in targets.items():
        op = operations(document)[(path, method)]
        schema = resolve(document, op["requestBody"])["content"]["application/json"]["schema"]
        for case in cases(document, schema, (), values):
            url, body = target()
            response = api.request(method, url, json=with_case(body, case))
            check(response, case, f"{method} {path}")
            probed += 1
        for param in [p for p in parameters(document, op) if p["in"] == "header"]:
            low, high = param["schema"]["minLength"], param["schema"]["maxLength"]
            for length, expect in ((low, "ok"), (high, "ok"), (high + 1, "bad")):
                value = f"k{values.made}".ljust(length, "k")[-length:]  # ASCII, as headers are
                values.made += 1
                case = Case((param["name"],), value, expect, "a header")
                url, body = target()
                response = api.request(method, url, json=body, headers={param["name"]: case.value})
                check(response, case, f"{method} {path}")
                probed += 1

    for (path, method), op in operations(document).items():
        query = [p for p in parameters(document, op) if p["in"] == "query"]
        # Each parameter is probed with the required others valid (a date: one day).
        required = {p["name"]: "2026-01-01" for p in query if p.get("required")}
        for param in query:
            schema = param["schema"]
            if "enum" in schema:
                tries = [(v, "ok") for v in schema["enum"]] + [("other", "bad")]
            elif schema.get("format") == "date":
                tries = [("2026-01-01", "ok"), ("2026-02-30", "bad"), ("2026-1-1", "bad")]
            else:
                low, high = schema["minimum"], schema["maximum"]
                tries = [(low, "ok"), (high, "ok"), (low - 1, "bad"), (high + 1, "bad")]
            for value, expect in tries:
                case = Case((param["name"],), value, expect, "a query parameter")
                url = path.replace("{id}", str(beef))
                response = api.request(method, url, params={**required, param["name"]: value})
                check(response, case, f"{method} {path}")
                probed += 1
    assert probed > 100, probed
