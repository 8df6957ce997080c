"""SIGKILL under load: nothing accepted is lost, nothing is applied or mailed twice."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx

from kitchen import db
from kitchen.db import Ingredient, Order, session
from tests.conftest import REAL_DATABASE, REAL_KAFKA, SmtpServer, eventually
from tests.reliability.harness import KitchenProcess, Tally, place_orders, stack_env
from tests.reliability.report import report

BURGER = {"beef": 150, "cheese": 30, "onion": 20}
# Enough for most of ~3000 burgers: beef runs out after 2000, onion and beef cross 50 %.
STOCK = {"beef": 300_000, "cheese": 150_000, "onion": 50_000}
ORDERS = 2000


def test_sigkill_at_random_moments_loses_nothing(
    tmp_path: Path, smtp: SmtpServer, clean_database: str
) -> None:
    kitchen = KitchenProcess(tmp_path, stack_env(tmp_path, smtp.port))
    kitchen.start()
    try:
        _run(kitchen, smtp, clean_database)
    finally:
        kitchen.stop()


def _run(kitchen: KitchenProcess, smtp: SmtpServer, database_url: str) -> None:
    assert httpx.post(f"{kitchen.base}/order/seed").status_code == 201
    db.bind(database_url)
    with session():
        for name, grams in STOCK.items():
            Ingredient.update(stock=grams, full_stock=grams).where(
                Ingredient.name == name
            ).execute()

    tally = Tally()
    kills: list[float] = []
    load_done = threading.Event()

    def killer() -> None:
        rng = random.Random(5)
        started = time.monotonic()
        while not load_done.is_set() and len(kills) < 4:
            if load_done.wait(rng.uniform(1.0, 3.0)):
                break
            kitchen.kill()
            kills.append(time.monotonic() - started)
            kitchen.start()

    chaos = threading.Thread(target=killer)
    chaos.start()
    place_orders(kitchen.base, ORDERS, clients=8, product_id=1, tally=tally)
    load_done.set()
    chaos.join()
    assert len(kills) >= 3, f"the load ended before three kills ({kills})"
    assert tally.server_errors == []

    acknowledged = set(tally.acknowledged.values())

    def settled() -> bool:
        with session():
            return not Order.select().where(Order.status == Order.PENDING).exists()

    eventually(settled, timeout=180, interval=0.5)
    with session():
        orders = {o.id: o.status for o in Order.select()}
        stock = {i.name: (i.stock, i.full_stock) for i in Ingredient.select()}
    # Every 201 is an order; no retry made a second one; none is left pending.
    assert set(orders) == acknowledged
    applied = [k for k, oid in tally.acknowledged.items() if orders[oid] == "applied"]
    burgers = sum(tally.quantities[k] for k in applied)
    assert {name: s for name, (s, _) in stock.items()} == {
        name: STOCK[name] - burgers * grams for name, grams in BURGER.items()
    }
    crossed = sorted(name for name, (s, full) in stock.items() if s * 2 < full)
    assert crossed == ["beef", "onion"]
    eventually(lambda: len(smtp.messages) >= len(crossed), timeout=60)
    time.sleep(2)  # room for a duplicate to show up
    subjects = sorted(str(m["Subject"]).split(" ")[2] for m in smtp.messages)
    message_ids = {m["Message-ID"] for m in smtp.messages}
    code, seconds = kitchen.terminate()

    report(
        f"crash (SIGKILL x{len(kills)})",
        backend="PostgreSQL + Kafka" if REAL_DATABASE and REAL_KAFKA else "SQLite + embedded",
        orders_sent=tally.sent,
        acknowledged=len(acknowledged),
        applied=len(applied),
        rejected=sum(1 for s in orders.values() if s == "rejected"),
        pending=sum(1 for s in orders.values() if s == "pending"),
        client_retries=tally.retries,
        emails_expected=len(crossed),
        emails_received=len(smtp.messages),
        lost=tally.sent - len(acknowledged),
        duplicated=len(smtp.messages) - len(message_ids),
        sigterm_exit=code,
        sigterm_seconds=round(seconds, 1),
    )
    assert tally.sent == len(acknowledged) == ORDERS
    assert subjects == crossed
    assert len(message_ids) == len(smtp.messages) == len(crossed)
    assert code == 0 and seconds < 10
