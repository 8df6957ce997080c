"""A consumer-group rebalance mid-stream: a second processing member joins while orders
flow and takes partitions from the first; then the member applying the orders leaves with
a batch applied in the database but its offsets not committed (a crash between the two),
and the other takes its partitions and reads that batch again. Every order is applied
exactly once: exact stock, one ledger row per order and ingredient."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session
from kitchen.events import OrderCreated, Received
from kitchen.kafka import ConsumerWorker
from kitchen.models import Ingredient, LedgerEntry, Order
from tests.helpers import eventually, no_order_pending, seed_reference, stock_after

# Enough for the most the load can order (MAX_ORDERS of 3 burgers, beef 150 g each): no
# order is rejected for want of stock.
MAX_ORDERS = 20_000
STOCK = {"beef": 9_000_000, "cheese": 1_800_000, "onion": 1_200_000}
Rejected = list[tuple[Received[OrderCreated], str]]
Handler = Callable[[list[Received[OrderCreated]]], Rejected]


def test_a_member_joining_and_leaving_mid_stream_applies_every_order_once(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    first = make_kitchen()  # every role; its processing consumer is the group's first member
    [worker_a] = [w for w in first.workers if w.name == "processing"]
    quantities: dict[int, int] = {}  # order id -> burgers
    in_flight: list[int] = []  # orders the second member applied but did not commit
    seen_by_idle: set[int] = set()  # orders the other member read after that

    def seen_by(handler: Handler) -> Handler:
        def record(batch: list[Received[OrderCreated]]) -> Rejected:
            seen_by_idle.update(r.event.id for r in batch)
            return handler(batch)

        return record

    def dies_after(worker: ConsumerWorker[OrderCreated]) -> Handler:
        handler = worker.handler

        def apply_then_die(batch: list[Received[OrderCreated]]) -> Rejected:
            handler(batch)  # committed to the database
            in_flight.extend(r.event.id for r in batch)
            worker._stop.set()  # the worker ends at once, its offsets not committed
            raise RuntimeError("process gone before its offsets were committed")

        return apply_then_die

    errors: list[str] = []
    stop_load = threading.Event()
    with TestClient(first.web_app()) as api:
        seeded = seed_reference(api)
        for name, grams in STOCK.items():
            ingredient = getattr(seeded, name)
            r = api.post(f"/ingredients/{ingredient}/count", json={"grams": grams})
            assert r.status_code == 200, r.text

        def client(n: int) -> None:
            rng = random.Random(n)
            while not stop_load.is_set() and len(quantities) < MAX_ORDERS:
                burgers = rng.randint(1, 3)
                r = api.post("/order", json=seeded.order(burgers))
                if r.status_code == 201:
                    quantities[r.json()["id"]] = burgers
                else:
                    errors.append(f"{r.status_code} {r.text}")
                stop_load.wait(0.01)  # a steady flow (at most a few hundred a second)

        load = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in load:
            t.start()
        try:
            eventually(lambda: len(quantities) >= 100)
            second = make_kitchen("processing")  # joins the group: partitions move
            [worker_b] = [w for w in second.workers if w.name == "processing"]
            eventually(lambda: worker_a.assigned and worker_b.assigned, timeout=60)  # split
            # One merchant's orders all go to one partition (the key): whichever member owns
            # it now goes on applying them; the other waits.
            before = worker_a.processed, worker_b.processed
            busy, idle = eventually(
                lambda: (
                    (worker_a, worker_b)
                    if worker_a.processed >= before[0] + 20
                    else (worker_b, worker_a)
                    if worker_b.processed >= before[1] + 20
                    else None
                ),
                timeout=60,
            )
            # The busy one applies one more batch in the database and quits before
            # committing its offsets (a crash between the two): it leaves the group, and
            # the other member takes its partitions and reads that batch again.
            idle.handler, busy.handler = seen_by(idle.handler), dies_after(busy)
            eventually(lambda: not busy.alive, timeout=60)
            assert in_flight, "the member left with no batch in hand"
            joined = len(quantities)
            eventually(lambda: len(quantities) >= joined + 100, timeout=60)
        finally:
            stop_load.set()
            for t in load:
                t.join(60)
    assert errors == []

    eventually(no_order_pending, timeout=60)
    burgers = sum(quantities.values())
    with session():
        statuses = {o.id: o.status for o in Order.select()}
        assert statuses == {order_id: Order.APPLIED for order_id in quantities}
        stock = {i.name: i.stock for i in Ingredient.select()}
        per_order = (
            LedgerEntry.select(LedgerEntry.order, LedgerEntry.ingredient)
            .where(LedgerEntry.reason == LedgerEntry.ORDER)
            .tuples()
        )
        rows = list(per_order)
    assert stock == stock_after(burgers, STOCK)
    # One ledger row per order and ingredient: an order applied twice would add a second.
    assert len(rows) == len(set(rows)) == 3 * len(quantities)
    # The batch in flight went to the other member, which skipped what was applied.
    assert set(in_flight) <= seen_by_idle
