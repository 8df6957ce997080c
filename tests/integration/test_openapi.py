"""GET /openapi.json: every route of the app is in it, and it is valid OpenAPI 3.

It iterates over the app's actual routes, so a route added later without its docstring
YAML (see the top of kitchen/http.py) fails here.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import openapi
from kitchen.http import Api, build_app
from kitchen.settings import Settings
from tests.helpers import Seeded


@pytest.fixture
def document(api: TestClient) -> dict[str, Any]:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


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
        if method in ("POST", "PATCH") and path != "/order/seed":
            assert "requestBody" in op, f"{method} {path} documents no request body"
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
    assert open_ones == {"/health", "/ready", "/openapi.json", "/"}
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
        assert [p["name"] for p in op.get("parameters", []) if p["in"] == "query"] == names
        assert "422" in op["responses"], path  # an unknown query parameter
    status = next(p for p in ops[("/orders", "GET")]["parameters"] if p["name"] == "status")
    assert status["schema"] == {"enum": ["pending", "applied", "rejected"]}


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
    problem = api.post("/order", json=seeded.order(0))
    assert problem.headers["content-type"] == "application/problem+json"
    check(problem.json(), "Problem")
    check({"products": [{"product_id": 1, "quantity": 2}]}, "NewOrder")
    with pytest.raises(jsonschema.ValidationError):
        check({"products": [{"product_id": 1, "quantity": 0}]}, "NewOrder")


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


def test_each_limit_is_stated_and_is_the_servers(api: TestClient, document: dict[str, Any]) -> None:
    """The largest value each schema states is accepted, and one more is a 422: the
    limits the columns hold (64-bit ids, MAX_GRAMS grams, 6 decimal places of threshold)."""
    schemas = document["components"]["schemas"]
    grams = schemas["RecipeLine"]["properties"]["grams"]["maximum"]
    assert grams == schemas["StockMove"]["properties"]["grams"]["maximum"] == 10**12
    assert schemas["NewIngredient"]["properties"]["stock"]["maximum"] == grams
    assert schemas["IngredientChange"]["properties"]["full_stock"]["maximum"] == grams
    assert "par level" in schemas["Ingredient"]["properties"]["full_stock"]["description"]
    threshold = schemas["IngredientChange"]["properties"]["threshold"]
    assert (threshold["minimum"], threshold["maximum"]) == (0.000001, 0.999999)
    assert document["components"]["parameters"]["id"]["schema"]["maximum"] == 2**63 - 1
    before = [
        p["schema"]["maximum"]
        for op in operations(document).values()
        for p in op.get("parameters", [])
        if p.get("name") == "before"
    ]
    assert before == [2**63 - 1] * 3

    r = api.post("/ingredients", json={"name": "flour", "stock": grams, "threshold": 0.000001})
    assert r.status_code == 201, r.text
    path = f"/ingredients/{r.json()['id']}"
    assert api.post(f"{path}/count", json={"grams": grams}).status_code == 200
    assert api.post(f"{path}/count", json={"grams": grams + 1}).status_code == 422
    assert api.patch(path, json={"full_stock": grams, "threshold": 0.999999}).status_code == 200
    assert api.patch(path, json={"full_stock": grams + 1}).status_code == 422
    assert api.get("/ingredients/9223372036854775807").status_code == 404
    assert api.get("/orders", params={"before": 2**63 - 1}).status_code == 200
    assert api.get("/orders", params={"before": 2**63}).status_code == 422
