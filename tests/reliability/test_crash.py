"""Kitchen stopped under load, by SIGKILL (a crash) or SIGTERM (a deploy): nothing
accepted is lost, nothing is applied or mailed twice; SIGTERM exits 0 within 10 s."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from kitchen.db import session
from kitchen.models import Ingredient
from tests.helpers import REAL_DATABASE, REAL_KAFKA, SmtpServer
from tests.reliability.harness import (
    KitchenProcess,
    Tally,
    mail_settled,
    place_orders,
    seed_large_stock,
    settled_orders,
    stack_env,
    stock_after,
)
from tests.reliability.report import report

# 2,000 orders under four stops each: minutes, not seconds.
pytestmark = pytest.mark.slow

ORDERS = 2000  # about 3000 burgers: beef runs out after 2000


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_stopped_at_random_moments_under_load_loses_nothing(
    tmp_path: Path, smtp: SmtpServer, clean_database: str, how: str
) -> None:
    kitchen = KitchenProcess(tmp_path, stack_env(tmp_path, smtp.port))
    kitchen.start()
    try:
        _run(kitchen, smtp, clean_database, how)
    finally:
        kitchen.stop()


def _run(kitchen: KitchenProcess, smtp: SmtpServer, database_url: str, how: str) -> None:
    seeded = seed_large_stock(kitchen.base, database_url)

    tally = Tally()
    kills: list[float] = []
    graceful: list[tuple[int, float]] = []  # SIGTERM: (exit code, seconds)
    load_done = threading.Event()

    def killer() -> None:
        # Four stops at random points of the load, by progress rather than by the clock,
        # so that a slow or fast machine still gets all four.
        rng = random.Random(5)
        marks = sorted(rng.sample(range(150, ORDERS - 150, 50), 4))
        started = time.monotonic()
        for mark in marks:
            while len(tally.acknowledged) < mark:
                if load_done.wait(0.02):
                    return
            time.sleep(rng.uniform(0, 0.3))  # not always on a request boundary
            if how == "SIGKILL":
                kitchen.kill()
            else:
                graceful.append(kitchen.terminate())
            kills.append(time.monotonic() - started)
            kitchen.start()

    chaos = threading.Thread(target=killer)
    chaos.start()
    place_orders(kitchen.base, ORDERS, clients=8, product_id=seeded.burger, tally=tally)
    load_done.set()
    chaos.join()
    assert len(kills) == 4, f"the load ended before four stops ({kills})"
    assert tally.server_errors == []

    acknowledged = set(tally.acknowledged.values())

    orders = settled_orders(timeout=180)
    with session():
        stock = {i.name: (i.stock, i.full_stock) for i in Ingredient.select()}
    # Every 201 is an order; no retry made a second one; none is left pending.
    assert set(orders) == acknowledged
    applied = [k for k, oid in tally.acknowledged.items() if orders[oid] == "applied"]
    burgers = sum(tally.quantities[k] for k in applied)
    assert {name: s for name, (s, _) in stock.items()} == stock_after(burgers)
    crossed = sorted(name for name, (s, full) in stock.items() if s * 2 < full)
    assert crossed == ["beef", "onion"]
    mail_settled(len(crossed))  # a late resend, a duplicate, has arrived by then
    subjects = sorted(str(m["Subject"]).split(" ")[2] for m in smtp.messages)
    message_ids = {m["Message-ID"] for m in smtp.messages}
    graceful.append(kitchen.terminate())

    report(
        f"{how} x{len(kills)} under load",
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
        stops=[(c, round(t, 1)) for c, t in graceful],
    )
    assert tally.sent == len(acknowledged) == ORDERS
    assert subjects == crossed
    assert len(message_ids) == len(smtp.messages) == len(crossed)
    for code, seconds in graceful:
        assert code == 0 and seconds < 10, kitchen.tail()
