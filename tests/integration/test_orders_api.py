"""POST /order and friends: what is saved, what reaches the topic, what bad input gets."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session
from kitchen.models import Ingredient, Order, OrderLine, Outbox, Product, RecipeLine
from tests.helpers import Seeded, eventually, read_topic, seed_reference, serve


@pytest.fixture
def intake(make_kitchen: Callable[..., Kitchen]) -> Kitchen:
    # Intake and relay only: orders stay pending, so what was saved is what is checked.
    return make_kitchen("api,relay")


@pytest.fixture
def seeded_api(intake: Kitchen) -> Iterator[tuple[TestClient, Seeded]]:
    """`api` and `seeded` (conftest) of this intake-only Kitchen."""
    with TestClient(intake.web_app()) as c:
        yield c, seed_reference(c)


def counts() -> tuple[int, int, int]:
    with session():
        return Order.select().count(), OrderLine.select().count(), Outbox.select().count()


def test_valid_order_is_saved_and_announced(
    intake: Kitchen, api: TestClient, seeded: Seeded
) -> None:
    response = api.post("/order", json=seeded.order(2))

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending" and body["lines"] == seeded.order(2)["products"]
    assert response.headers["location"] == f"/order/{body['id']}"
    with session():
        order = Order.get_by_id(body["id"])
        assert (order.status, order.merchant_id) == ("pending", intake.merchant_id)
        lines = OrderLine.select().where(OrderLine.order == order.id)
        assert [(ln.product_id, ln.quantity) for ln in lines] == [(seeded.burger, 2)]
    events = read_topic(
        intake.bootstrap_servers, intake.settings.kafka.order_created_topic, expect=1
    )
    assert [(e.key, e.json()) for e in events] == [
        (str(intake.merchant_id), {"id": body["id"], "merchant_id": intake.merchant_id})
    ]
    with session():
        eventually(lambda: Outbox.select().where(Outbox.sent_at.is_null()).count() == 0)


def test_get_order(api: TestClient, seeded: Seeded) -> None:
    order_id = api.post("/order", json=seeded.order(3)).json()["id"]
    view = api.get(f"/order/{order_id}").json()
    assert view["id"] == order_id and view["status"] == "pending"
    assert view["lines"] == seeded.order(3)["products"]
    missing = api.get("/order/999999")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "there is no order 999999"


def test_seed_twice_duplicates_nothing(api: TestClient) -> None:
    again = api.post("/order/seed")
    assert again.status_code == 200
    with session():
        assert Product.select().count() == 1
        assert RecipeLine.select().count() == 3
        stock = {i.name: (i.stock, i.full_stock) for i in Ingredient.select()}
    assert stock == {"beef": (20000, 20000), "cheese": (5000, 5000), "onion": (1000, 1000)}
    burger = again.json()["products"][0]
    assert burger["name"] == "Burger"
    assert sorted(r["grams"] for r in burger["recipe"]) == [20, 30, 150]


BAD_REQUESTS: list[tuple[str, bytes, int, str]] = [
    ("malformed JSON", b'{"products": [', 400, "body"),
    ("not UTF-8", b"\xff\xfe{}", 400, "body"),
    ("not an object", b"[1, 2]", 422, "body"),
    ("missing products", b"{}", 422, "products"),
    ("empty products", b'{"products": []}', 422, "products"),
    ("products not a list", b'{"products": "burger"}', 422, "products"),
    ("line not an object", b'{"products": [7]}', 422, "products[0]"),
    (
        "unknown product",
        b'{"products": [{"product_id": 99, "quantity": 1}]}',
        422,
        "products[0].product_id",
    ),
    (
        "string product id",
        b'{"products": [{"product_id": "1", "quantity": 1}]}',
        422,
        "products[0].product_id",
    ),
    (
        "zero quantity",
        b'{"products": [{"product_id": 1, "quantity": 0}]}',
        422,
        "products[0].quantity",
    ),
    (
        "negative quantity",
        b'{"products": [{"product_id": 1, "quantity": -1}]}',
        422,
        "products[0].quantity",
    ),
    (
        "fractional quantity",
        b'{"products": [{"product_id": 1, "quantity": 1.5}]}',
        422,
        "products[0].quantity",
    ),
    (
        "string quantity",
        b'{"products": [{"product_id": 1, "quantity": "2"}]}',
        422,
        "products[0].quantity",
    ),
    (
        "absurd quantity",
        b'{"products": [{"product_id": 1, "quantity": 1000000000000}]}',
        422,
        "products[0].quantity",
    ),
    (
        "one good line, one unknown",
        b'{"products": [{"product_id": 1, "quantity": 1}, {"product_id": 5, "quantity": 1}]}',
        422,
        "products[1].product_id",
    ),
]


@pytest.mark.parametrize(
    "case, body, status, field", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_is_refused_with_a_reason_and_saves_nothing(
    api: TestClient, case: str, body: bytes, status: int, field: str
) -> None:
    before = counts()
    response = api.post("/order", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert field in [e["field"] for e in problem["errors"]]
    assert counts() == before


def test_oversized_body_is_refused(api: TestClient) -> None:
    before = counts()
    line = b'{"product_id": 1, "quantity": 1},'
    body = b'{"products": [' + line * 3000 + b'{"product_id": 1, "quantity": 1}]}'
    response = api.post("/order", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "at most 65536 bytes" in response.json()["detail"]
    assert counts() == before


def test_health_and_readiness(api: TestClient) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    ready = api.get("/ready")
    assert ready.status_code == 200 and ready.json()["roles"] == {"relay": True}


def test_ingredients_are_listed_in_grams(api: TestClient) -> None:
    listed = api.get("/ingredients").json()
    assert [(i["name"], i["stock"], i["full_stock"]) for i in listed] == [
        ("beef", 20000, 20000),
        ("cheese", 5000, 5000),
        ("onion", 1000, 1000),
    ]


def test_a_client_sending_megabytes_reads_the_413(intake: Kitchen) -> None:
    """Over a real socket, from a client that sends `Connection: close` (as nginx does
    towards its upstreams) and sends its body at network pace: it reads a 413 problem
    document, not a connection reset while it is still sending."""
    before = counts()
    size = 4 * 1024 * 1024
    with serve(intake.web_app()) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                b"POST /order HTTP/1.1\r\nHost: kitchen\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode()
            )
            for _ in range(size // 65536):
                s.sendall(b" " * 65536)
                time.sleep(0.005)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert problem["status"] == 413 and problem["title"] == "Payload too large"
    assert "at most 65536 bytes" in problem["detail"]
    assert counts() == before


def test_a_client_gone_mid_body_saves_nothing_and_is_no_error(
    intake: Kitchen, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that gives up mid-body (its timeout, a closed tab) is routine under load:
    nothing is saved, and the log gets one info line, not an error with a traceback."""
    before = counts()
    with caplog.at_level(logging.INFO), serve(intake.web_app()) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                b"POST /order HTTP/1.1\r\nHost: kitchen\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"products": [{"product_id": 1,'
            )
        eventually(lambda: "disconnected before sending its body" in caplog.text, timeout=10)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert counts() == before
