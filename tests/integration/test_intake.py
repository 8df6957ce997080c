"""POST /order's group commit (kitchen.intake): many requests at once, each its own order.

Concurrent requests share transactions; what a client sees must not change: a 201 is an
order saved with its lines and its ORDER_CREATED event, a 422 saved nothing, and one bad
request in a group fails only itself.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import peewee as pw
import pytest

from app import Kitchen
from kitchen import intake, orders, seed
from kitchen.db import session, utcnow
from kitchen.domain import Line
from kitchen.errors import InvalidOrder
from kitchen.events import OrderCreated
from kitchen.models import Merchant, Order, OrderLine, Outbox, Product
from tests.helpers import SEED_RULES, eventually_async, serve


def test_concurrent_orders_each_saved_once_with_their_event(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api")  # the database only: nothing consumes the events
    _, reference = seed.seed(kitchen.merchant_id, SEED_RULES)
    burger = reference["products"][0]["id"]
    with session():
        other = Merchant.create(name="other", alert_email="other@example.com")
    _, theirs = seed.seed(other.id, SEED_RULES)
    their_burger = theirs["products"][0]["id"]

    def body(n: int) -> dict[str, Any]:
        # Every 7th names another merchant's product and every 11th no product at all:
        # both are unknown to this merchant.
        product = their_burger if n % 7 == 0 else 999_999 if n % 11 == 0 else burger
        return {"products": [{"product_id": product, "quantity": n % 5 + 1}]}

    with serve(kitchen.web_app()) as url:

        def client(first: int) -> list[tuple[int, int, Any]]:
            with httpx.Client(base_url=url, timeout=30) as http:
                answers = []
                for n in range(first, first + 40):
                    r = http.post("/order", json=body(n))
                    answers.append((n, r.status_code, r.json()))
                return answers

        with ThreadPoolExecutor(8) as pool:
            answers = [a for part in pool.map(client, range(0, 320, 40)) for a in part]

    accepted = {n: view for n, status, view in answers if status == 201}
    refused = [(n, view) for n, status, view in answers if status != 201]
    assert len(accepted) + len(refused) == 320
    assert all(n % 7 == 0 or n % 11 == 0 for n, _ in refused)
    assert all(view["title"] == "Invalid order" for _, view in refused)
    assert len(accepted) == len([n for n in range(320) if n % 7 and n % 11])
    ids = [view["id"] for view in accepted.values()]
    assert len(set(ids)) == len(ids)

    with session():
        saved = {o.id: o for o in Order.select()}
        lines = Counter((ln.order_id, ln.product_id, ln.quantity) for ln in OrderLine.select())
        events = [(e.topic, e.key, json.loads(e.payload), e.ref_id or 0) for e in Outbox.select()]
    assert sorted(saved) == sorted(ids)  # the refused requests left no order behind
    for n, view in accepted.items():
        assert saved[view["id"]].merchant_id == kitchen.merchant_id
        assert saved[view["id"]].status == Order.PENDING
        assert view["lines"] == [{"product_id": burger, "quantity": n % 5 + 1}]
        assert lines[(view["id"], burger, n % 5 + 1)] == 1
    assert sum(lines.values()) == len(ids)
    topic = kitchen.settings.kafka.order_created_topic
    assert sorted(events, key=lambda e: e[3]) == [
        (topic, str(kitchen.merchant_id), {"id": i, "merchant_id": kitchen.merchant_id}, i)
        for i in sorted(ids)
    ]


def test_one_order_the_database_refuses_fails_alone(
    make_kitchen: Callable[..., Kitchen], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group the database refuses is saved again one order at a time, so that the one
    bad order gets its error and the others their orders."""
    kitchen = make_kitchen("api")
    _, reference = seed.seed(kitchen.merchant_id, SEED_RULES)
    burger = reference["products"][0]["id"]
    place_orders = orders.place_orders
    groups: list[list[int]] = []
    gate = threading.Event()

    def refusing(requests: list[orders.NewOrder], topic: str) -> Any:
        groups.append([r.lines[0].quantity for r in requests])
        gate.wait(10)  # the first group waits until the others queued up behind it
        # The database's own refusal, as a constraint or a value out of range gives it.
        if any(r.lines[0].quantity == 13 for r in requests):
            raise pw.IntegrityError("refused: quantity 13")
        return place_orders(requests, topic)

    monkeypatch.setattr(orders, "place_orders", refusing)
    writer = intake.Intake(kitchen.settings.kafka.order_created_topic)

    def order(quantity: int) -> Any:
        return writer.place(orders.NewOrder(kitchen.merchant_id, [Line(burger, quantity)]))

    async def place_all() -> list[Any]:
        first = asyncio.ensure_future(order(1))
        await eventually_async(lambda: groups)  # the writer holds the first order
        rest = [asyncio.ensure_future(order(q)) for q in (2, 13, 4, 5)]
        await eventually_async(lambda: writer._queue.qsize() == 4)  # all four queued
        gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(place_all())
    writer.stop()
    assert groups == [[1], [2, 13, 4, 5], [2], [13], [4], [5]]
    assert isinstance(results[2], pw.IntegrityError)
    placed = [r for r in results if isinstance(r, orders.Placed)]
    assert len(placed) == 4
    with session():
        saved = {o.id: [ln.quantity for ln in o.lines] for o in Order.select()}  # type: ignore[attr-defined]
    assert saved == {p.id: [q] for p, q in zip(placed, [1, 2, 4, 5], strict=True)}


def test_an_invalid_order_in_a_group_saves_nothing_of_its_own(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api")
    _, reference = seed.seed(kitchen.merchant_id, SEED_RULES)
    burger = reference["products"][0]["id"]
    group = [
        orders.NewOrder(kitchen.merchant_id, [Line(burger, 1)]),
        orders.NewOrder(kitchen.merchant_id, [Line(burger, 1), Line(424242, 1)]),
        orders.NewOrder(kitchen.merchant_id, [Line(burger, 2)]),
    ]
    first, invalid, third = orders.place_orders(group, "order_created")
    assert isinstance(invalid, InvalidOrder)
    assert [e.field for e in invalid.errors] == ["products[1].product_id"]
    assert isinstance(first, orders.Placed) and isinstance(third, orders.Placed)
    with session():
        assert sorted(o.id for o in Order.select()) == [first.id, third.id]
        assert sorted(ln.quantity for ln in OrderLine.select()) == [1, 2]
        assert sorted(e.ref_id or 0 for e in Outbox.select()) == [first.id, third.id]


def test_a_group_saves_each_event_as_order_created_encodes_it(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    """PostgreSQL writes a group in one statement that spells the event in SQL: the
    payload must be OrderCreated's own encoding, the key the merchant, and a product that
    is deleted or another merchant's must be refused by name, as on SQLite."""
    kitchen = make_kitchen("api")
    _, reference = seed.seed(kitchen.merchant_id, SEED_RULES)
    burger = reference["products"][0]["id"]
    with session():
        other = Merchant.create(name="other", alert_email="other@example.com")
        gone = Product.create(merchant=kitchen.merchant_id, name="Soup", deleted_at=utcnow()).id
    _, theirs = seed.seed(other.id, SEED_RULES)
    their_burger = theirs["products"][0]["id"]
    group = [
        orders.NewOrder(kitchen.merchant_id, [Line(burger, 3)], key_name="till"),
        orders.NewOrder(kitchen.merchant_id, [Line(burger, 1), Line(gone, 1)]),
        orders.NewOrder(other.id, [Line(their_burger, 2)]),
        orders.NewOrder(kitchen.merchant_id, [Line(their_burger, 1), Line(burger, 1)]),
    ]
    mine, deleted, theirs_placed, foreign = orders.place_orders(group, "order_created")
    assert isinstance(deleted, InvalidOrder) and isinstance(foreign, InvalidOrder)
    assert [str(e) for e in deleted.errors] == [f"products[1].product_id: unknown product {gone}"]
    assert [str(e) for e in foreign.errors] == [
        f"products[0].product_id: unknown product {their_burger}"
    ]
    assert isinstance(mine, orders.Placed) and isinstance(theirs_placed, orders.Placed)
    assert mine.id < theirs_placed.id  # ids in request order
    assert (mine.merchant_id, mine.key_name) == (kitchen.merchant_id, "till")
    with session():
        events = {e.ref_id: (e.topic, e.key, e.payload) for e in Outbox.select()}
        saved = {o.id: (o.merchant_id, o.status, o.key_name) for o in Order.select()}
        lines = sorted((ln.order_id, ln.product_id, ln.quantity) for ln in OrderLine.select())
    assert events == {
        p.id: ("order_created", str(p.merchant_id), OrderCreated(p.id, p.merchant_id).encode())
        for p in (mine, theirs_placed)
    }
    assert saved == {
        mine.id: (kitchen.merchant_id, Order.PENDING, "till"),
        theirs_placed.id: (other.id, Order.PENDING, None),
    }
    assert lines == [(mine.id, burger, 3), (theirs_placed.id, their_burger, 2)]
