"""Several consumers at once: every order applied exactly once, stock exact to the gram."""

from __future__ import annotations

import datetime
import json
import random
import threading
from collections import Counter
from collections.abc import Callable

from app import Kitchen
from kitchen import orders, seed
from kitchen.db import session, utcnow
from kitchen.domain import Line
from kitchen.models import Ingredient, LedgerEntry, Merchant, Order, Outbox
from kitchen.processing import apply_orders
from kitchen.seed import BURGER
from tests.helpers import SEED_RULES, eventually, stock_after


def new_merchant(name: str) -> int:
    with session():
        merchant = Merchant.create(name=name, alert_email=f"{name}@example.com")
    seed.seed(merchant.id, SEED_RULES)
    return merchant.id


def burger_of(merchant_id: int) -> int:
    _, view = seed.seed(merchant_id, SEED_RULES)  # idempotent: returns the existing kitchen
    return int(view["products"][0]["id"])


def stock_of(merchant_id: int) -> dict[str, int]:
    with session():
        rows = Ingredient.select().where(Ingredient.merchant == merchant_id)
        return {i.name: i.stock for i in rows}


def test_concurrent_batches_with_overlapping_orders_apply_each_once(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api")  # database only: batches are applied by hand below
    burger = burger_of(kitchen.merchant_id)
    ids = [
        orders.place_order(kitchen.merchant_id, [Line(burger, 1 + i % 2)], "unused")[0].id
        for i in range(40)
    ]  # 20 x (1 + 2) = 60 burgers: onion 1000 - 1200 would not fit, so some are rejected

    topic, events, threshold = (
        kitchen.settings.kafka.notify_topic,
        kitchen.settings.kafka.order_events_topic,
        kitchen.settings.alerts.threshold_fraction,
    )
    errors: list[BaseException] = []

    def consumer(seed: int) -> None:
        # Each "consumer" sees every order, in its own order and batches: redelivery at worst.
        rng = random.Random(seed)
        mine = ids[:]
        rng.shuffle(mine)
        try:
            while mine:
                size = rng.randint(1, 7)
                batch, mine = mine[:size], mine[size:]
                apply_orders(batch, topic, events, threshold)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consumer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []

    with session():
        done = {o.id: (o.status, o.reason) for o in Order.select()}
        lines = {o.id: 1 + i % 2 for i, o in enumerate(Order.select().order_by(Order.id))}
    assert all(status != "pending" for status, _ in done.values())
    applied = sum(lines[i] for i, (status, _) in done.items() if status == "applied")
    rejected = [reason for status, reason in done.values() if status == "rejected"]
    assert stock_of(kitchen.merchant_id) == stock_after(applied)
    assert all(str(r).startswith("insufficient stock: onion") for r in rejected)
    assert rejected and applied <= 50  # onion allows 50 burgers: the overflow was refused whole
    # Each order announced once, as it ended, however many consumers met it.
    with session():
        announced = [json.loads(e.payload) for e in Outbox.select().where(Outbox.topic == events)]
    ends = {"applied": "ORDER_APPLIED", "rejected": "ORDER_REJECTED"}
    assert sorted((e["id"], e["type"]) for e in announced) == sorted(
        (i, ends[status]) for i, (status, _) in done.items()
    )


def test_two_processing_consumers_in_one_group_share_a_stream(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    intake = make_kitchen("api,relay")
    first, second = make_kitchen("processing"), make_kitchen("processing")
    workers = [w for k in (first, second) for w in k.workers]
    # Both members own partitions before the stream starts, so both get a share.
    eventually(lambda: all(w.assigned for w in workers), timeout=60)
    # Events are keyed by merchant: several merchants spread them over the partitions.
    merchants = [intake.merchant_id] + [new_merchant(f"m{n}") for n in range(5)]
    burgers = {m: burger_of(m) for m in merchants}
    topic = intake.settings.kafka.order_created_topic
    rng = random.Random(7)
    placed: dict[int, int] = {m: 0 for m in merchants}
    ids = []
    for _ in range(180):
        merchant = rng.choice(merchants)
        quantity = 1  # about 30 burgers a merchant: its 50 burgers of onion never run out
        ids.append(orders.place_order(merchant, [Line(burgers[merchant], quantity)], topic)[0].id)
        placed[merchant] += quantity
        if len(ids) % 50 == 0:
            intake.wake_relay()
    intake.wake_relay()

    def pending() -> int:
        with session():
            return int(Order.select().where(Order.status == Order.PENDING).count())

    eventually(lambda: pending() == 0, timeout=60)
    with session():
        assert {o.status for o in Order.select()} == {"applied"}
    for merchant in merchants:
        assert stock_of(merchant) == stock_after(placed[merchant])
    assert all(w.alive for w in workers)
    assert all(w.processed > 0 for w in workers), [w.processed for w in workers]
    assert sum(w.processed for w in workers) >= len(ids)


def test_redrive_and_processing_lock_orders_in_the_same_order(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    """Re-drive and processing both lock orders, in id order: run side by side on the same
    pending orders, neither deadlocks (PostgreSQL would abort one with DeadlockDetected)."""
    kitchen = make_kitchen("api")  # database only: both jobs are run by hand below
    burger = burger_of(kitchen.merchant_id)
    topic = kitchen.settings.kafka.order_created_topic
    ids = [
        orders.place_order(kitchen.merchant_id, [Line(burger, 1)], topic)[0].id for _ in range(300)
    ]
    rng = random.Random(3)
    with session():
        # Scatter the rows on disk (PostgreSQL writes a new row version per update), so that
        # a statement without ORDER BY meets them out of id order.
        for i in rng.sample(ids, len(ids)):
            Order.update(emitted_at=Order.emitted_at).where(Order.id == i).execute()
    errors: list[BaseException] = []
    threshold = kitchen.settings.alerts.threshold_fraction
    now = datetime.timedelta(0)

    def redriver() -> None:
        try:
            for _ in range(60):
                with session():
                    Outbox.update(sent_at=utcnow()).execute()  # as if Kafka lost them
                orders.redrive(topic, now, limit=None)
        except BaseException as exc:
            errors.append(exc)

    def processor(seed: int) -> None:
        mine = ids[:]
        random.Random(seed).shuffle(mine)
        try:
            while mine:
                batch, mine = mine[:40], mine[40:]
                k = kitchen.settings.kafka
                apply_orders(batch, k.notify_topic, k.order_events_topic, threshold)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=redriver)]
    threads += [threading.Thread(target=processor, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with session():
        status = {o.id: o.status for o in Order.select()}
        ledger = list(LedgerEntry.select().where(LedgerEntry.reason == LedgerEntry.ORDER))
    assert set(status.values()) <= {Order.APPLIED, Order.REJECTED}
    applied = sorted(i for i, s in status.items() if s == Order.APPLIED)
    # Onion allows exactly 50 one-burger orders: an order applied twice (by both processors,
    # or by a processor after re-drive) would use onion for fewer applied orders.
    assert len(applied) == 50
    assert stock_of(kitchen.merchant_id) == stock_after(50)
    # One ledger row per ingredient of each applied order, none for the rejected ones.
    assert sorted(e.order_id or 0 for e in ledger) == sorted(applied * len(BURGER))
    assert Counter(e.grams for e in ledger) == Counter({-g: 50 for g in BURGER.values()})
