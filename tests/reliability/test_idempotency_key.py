"""Idempotency-Key on POST /order: a retried request places nothing more."""

from __future__ import annotations

import threading

from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session
from kitchen.models import Ingredient, Order, OrderLine, Outbox
from tests.helpers import Seeded, eventually


def beef() -> int:
    with session():
        return int(Ingredient.get(Ingredient.name == "beef").stock)


def test_a_retried_request_returns_the_first_order_and_deducts_once(
    kitchen: Kitchen, api: TestClient, seeded: Seeded
) -> None:
    first = api.post("/order", json=seeded.order(2), headers={"Idempotency-Key": "pos-7-ticket-1"})
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    order_id = first.json()["id"]
    eventually(lambda: api.get(f"/order/{order_id}").json()["status"] == "applied")

    again = api.post("/order", json=seeded.order(2), headers={"Idempotency-Key": "pos-7-ticket-1"})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == order_id and again.json()["status"] == "applied"
    with session():
        assert Order.select().count() == 1
        # One ORDER_CREATED (processing's ORDER_APPLIED goes to another topic).
        topic = kitchen.settings.kafka.order_created_topic
        assert Outbox.select().where(Outbox.topic == topic).count() == 1
    assert beef() == 20_000 - 2 * 150

    other = api.post("/order", json=seeded.order(2), headers={"Idempotency-Key": "pos-7-ticket-2"})
    assert other.status_code == 201 and other.json()["id"] != order_id


def test_the_same_key_with_another_order_is_refused(api: TestClient, seeded: Seeded) -> None:
    assert (
        api.post("/order", json=seeded.order(2), headers={"Idempotency-Key": "k1"}).status_code
        == 201
    )
    three = seeded.order(3)
    response = api.post("/order", json=three, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 422
    assert response.json()["title"] == "Idempotency-Key reused"
    with session():
        assert [ln.quantity for ln in OrderLine.select()] == [2]


def test_a_key_too_long_is_refused(api: TestClient, seeded: Seeded) -> None:
    response = api.post("/order", json=seeded.order(2), headers={"Idempotency-Key": "x" * 256})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    with session():
        assert Order.select().count() == 0


def test_concurrent_retries_place_one_order(api: TestClient, seeded: Seeded) -> None:
    answers: list[int] = []

    def post() -> None:
        r = api.post("/order", json=seeded.order(2), headers={"Idempotency-Key": "burst"})
        answers.append(r.json()["id"] if r.status_code == 201 else -r.status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8 and len(set(answers)) == 1 and answers[0] > 0
    with session():
        assert Order.select().count() == 1
