"""The processing role: stock in exact grams, all or nothing, once per order."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Producer
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import processing as processing_module
from kitchen import seed
from kitchen.db import session
from kitchen.kafka import producer_config
from kitchen.models import Ingredient, LedgerEntry, Order
from tests import helpers
from tests.helpers import assert_topic_stays_empty, eventually, read_topic, stock_after


def order(api: TestClient, burgers: int) -> int:
    return int(helpers.burgers(api, burgers)["id"])


def status(order_id: int) -> str:
    with session():
        return str(Order.get_by_id(order_id).status)


def stock() -> dict[str, int]:
    with session():
        return {i.name: i.stock for i in Ingredient.select()}


def test_two_burgers_take_the_reference_grams(api: TestClient) -> None:
    order_id = order(api, 2)
    eventually(lambda: status(order_id) == "applied")
    assert stock() == {"beef": 19_700, "cheese": 4_940, "onion": 960}
    view = api.get(f"/order/{order_id}").json()
    assert view["status"] == "applied" and view["processed_at"]


def test_an_order_the_stock_cannot_cover_is_rejected_whole(api: TestClient) -> None:
    order_id = order(api, 51)  # onion: 51 x 20 g = 1020 g > 1000 g; beef and cheese would do
    eventually(lambda: status(order_id) == "rejected")
    assert stock() == {"beef": 20_000, "cheese": 5_000, "onion": 1_000}
    view = api.get(f"/order/{order_id}").json()
    assert view["reason"] == "insufficient stock: onion needs 1020 g, 1000 g left"
    # The next order that fits still goes through.
    next_id = order(api, 50)
    eventually(lambda: status(next_id) == "applied")
    assert stock() == {"beef": 12_500, "cheese": 3_500, "onion": 0}


def test_a_reason_with_a_percent_sign_is_stored_as_it_is(api: TestClient) -> None:
    """A batch's writes go to PostgreSQL in one query string: a `%` in a value (here the
    ingredient's name, in the reason) is written as itself."""
    with session():
        Ingredient.update(name="onion 50% chopped").where(Ingredient.name == "onion").execute()
    order_id = order(api, 51)
    eventually(lambda: status(order_id) == "rejected")
    view = api.get(f"/order/{order_id}").json()
    assert view["reason"] == "insufficient stock: onion 50% chopped needs 1020 g, 1000 g left"
    assert stock() == {"beef": 20_000, "cheese": 5_000, "onion 50% chopped": 1_000}


def test_the_same_order_created_twice_is_deducted_once(kitchen: Kitchen, api: TestClient) -> None:
    order_id = order(api, 2)
    eventually(lambda: status(order_id) == "applied")
    # Kafka redelivers, or a relay publishes twice after a crash: the same event again.
    producer = Producer(producer_config(kitchen.bootstrap_servers))
    for _ in range(2):
        producer.produce(kitchen.settings.kafka.order_created_topic, json.dumps({"id": order_id}))
    assert producer.flush(10) == 0
    processing = next(w for w in kitchen.workers if w.name == "processing")
    eventually(lambda: processing.processed >= 3)
    assert stock() == {"beef": 19_700, "cheese": 4_940, "onion": 960}


def test_many_orders_sum_exactly(api: TestClient) -> None:
    ids = [order(api, 1 + i % 3) for i in range(24)]  # 8 x (1 + 2 + 3) = 48 burgers
    eventually(lambda: all(status(i) != "pending" for i in ids))
    assert {status(i) for i in ids} == {"applied"}
    assert stock() == stock_after(48)


def test_poison_events_go_to_the_dead_letter_topic(kitchen: Kitchen, api: TestClient) -> None:
    topic = kitchen.settings.kafka.order_created_topic
    producer = Producer(producer_config(kitchen.bootstrap_servers))
    poison = {
        b"not json": "bad ORDER_CREATED: not valid JSON (Expecting value",
        b'{"id": "seven"}': "bad ORDER_CREATED: id must be a positive integer",
        b'{"id": 424242}': "unknown order id",
        b'{"id": 9223372036854775808}': "bad ORDER_CREATED: id must be",
        b"[" * 50_000: "bad ORDER_CREATED: nested too deeply",
        b"[1]": "bad ORDER_CREATED: not a JSON object",
    }
    for value in poison:
        producer.produce(topic, value)
    assert producer.flush(10) == 0
    dead = read_topic(kitchen.bootstrap_servers, f"{topic}.dlq", expect=len(poison))
    assert sorted(d.value for d in dead) == sorted(poison)
    for d in dead:
        assert d.headers["kitchen-error"].startswith(poison[d.value]), d.headers
    # The consumer went on: a real order behind the poison is applied.
    order_id = order(api, 2)
    eventually(lambda: status(order_id) == "applied")
    assert stock() == {"beef": 19_700, "cheese": 4_940, "onion": 960}


def test_a_processing_bug_stops_loudly_and_loses_nothing(
    kitchen: Kitchen, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error that is not bad data (here a TypeError from a broken apply) is retried and
    shows in /ready; the order is not dead-lettered, and it is applied once the bug is gone."""
    real_apply = processing_module.apply_orders

    def broken(*args: object, **kwargs: object) -> processing_module.BatchResult:
        raise TypeError("a bug in processing")

    monkeypatch.setattr(processing_module, "apply_orders", broken)
    order_id = order(api, 2)
    processing = next(w for w in kitchen.workers if w.name == "processing")
    eventually(lambda: api.get("/ready").status_code == 503)
    assert api.get("/ready").json()["roles"]["processing"] is False
    assert processing.last_error == "TypeError: a bug in processing"
    assert status(order_id) == "pending"

    monkeypatch.setattr(processing_module, "apply_orders", real_apply)
    eventually(lambda: status(order_id) == "applied", timeout=60)
    assert stock() == stock_after(2)
    eventually(lambda: api.get("/ready").status_code == 200)
    topic = kitchen.settings.kafka.order_created_topic
    assert_topic_stays_empty(kitchen.bootstrap_servers, f"{topic}.dlq", seconds=2)


def test_every_gram_an_order_takes_is_a_ledger_row(api: TestClient) -> None:
    ids = [order(api, 1 + i % 3) for i in range(12)] + [order(api, 60)]  # the last: no onion
    eventually(lambda: all(status(i) != "pending" for i in ids))
    with session():
        for ingredient in Ingredient.select():
            entries = list(
                LedgerEntry.select()
                .where(LedgerEntry.ingredient == ingredient.id)
                .order_by(LedgerEntry.id)
            )
            assert entries[0].reason == "initial"
            assert sum(e.grams for e in entries) == ingredient.stock
            assert entries[-1].stock_after == ingredient.stock
            by_order = {e.order_id: e.grams for e in entries if e.reason == "order"}
            grams = seed.BURGER[ingredient.name]
            assert by_order == {i: -grams * (1 + n % 3) for n, i in enumerate(ids[:12])}
