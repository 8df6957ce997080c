"""A dependency goes away under load and comes back: Kitchen answers clearly meanwhile,
and afterwards everything accepted drains, each order applied once."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from kitchen.db import session
from kitchen.models import Ingredient, Order
from tests.helpers import REAL_DATABASE, REAL_KAFKA, SmtpServer, eventually
from tests.reliability.harness import (
    ROOT,
    KitchenProcess,
    Tally,
    place_orders,
    seed_large_stock,
    settled_orders,
    stack_env,
    stock_after,
)
from tests.reliability.report import report
from tests.reliability.tcp_proxy import TcpProxy

# Outages of 10 and 30 s under load.
pytestmark = pytest.mark.slow

# Re-drive off: only Kafka redelivery may bring an event back, which is what is tested.
NO_REDRIVE = {"KITCHEN_SCHEDULER_REDRIVE_AFTER_SECONDS": "3600"}
KAFKA_DIR = os.environ.get("KITCHEN_TEST_KAFKA_DIR", "")


def settle(acknowledged: set[int], timeout: float = 90) -> dict[int, str]:
    statuses = settled_orders(timeout)
    assert set(statuses) == acknowledged
    return statuses


def stock() -> dict[str, int]:
    with session():
        return {i.name: i.stock for i in Ingredient.select()}


@pytest.mark.skipif(not REAL_DATABASE, reason="needs PostgreSQL: KITCHEN_TEST_DATABASE_URL")
def test_postgresql_down_answers_503_then_drains(
    tmp_path: Path, smtp: SmtpServer, clean_database: str
) -> None:
    real = urlparse(REAL_DATABASE)
    proxy = TcpProxy(real.hostname or "127.0.0.1", real.port or 5432)
    proxy.up()
    via_proxy = REAL_DATABASE.replace(real.netloc.split("@")[-1], f"127.0.0.1:{proxy.port}")
    env = stack_env(tmp_path, smtp.port, KITCHEN_DATABASE_URL=via_proxy, **NO_REDRIVE)
    kitchen = KitchenProcess(tmp_path, env)
    kitchen.start()
    try:
        seeded = seed_large_stock(kitchen.base, clean_database)  # the test reads PostgreSQL
        tally = Tally()
        # The clients retry each 503 with the same Idempotency-Key: their load runs on through
        # the outage, and what they were refused is accepted once the database is back.
        load = threading.Thread(
            target=place_orders,
            args=(kitchen.base, 600),
            kwargs={"clients": 6, "product_id": seeded.burger, "tally": tally},
        )
        load.start()
        eventually(lambda: len(tally.acknowledged) >= 150, timeout=60)
        proxy.down()  # mid-load: orders are being placed, events are still in flight
        with session():
            pending_at_cut = Order.select().where(Order.status == "pending").count()
        assert load.is_alive(), "the load ended before the cut"
        # Accepted but not yet applied: "drains afterwards" has something to drain.
        assert pending_at_cut > 0

        during = [
            httpx.post(f"{kitchen.base}/order", json=seeded.order(1), timeout=30) for _ in range(5)
        ]
        assert [r.status_code for r in during] == [503] * 5
        problem = during[0].json()
        assert problem["status"] == 503 and "database is unavailable" in problem["detail"]
        assert during[0].headers["content-type"] == "application/problem+json"
        # The README promises Retry-After on these 503s: clients know when to try again.
        assert [r.headers.get("retry-after") for r in during] == ["5"] * 5
        assert httpx.get(f"{kitchen.base}/ready", timeout=30).status_code == 503
        time.sleep(10)  # consumers fail, restart, commit nothing (an outage of 10 s)
        proxy.up()
        load.join(180)
        assert not load.is_alive()
        # The load's own clients met the outage too, and every 503 they saw said when to retry.
        assert tally.statuses.get(503, 0) > 0, tally.statuses
        assert tally.retry_after == {"5"}, tally.retry_after
        assert tally.sent == len(tally.acknowledged) == 600, tally.statuses
        assert tally.server_errors == [] and tally.refusals == []

        statuses = settle(set(tally.acknowledged.values()))
        burgers = sum(tally.quantities[k] for k in tally.acknowledged)
        assert set(statuses.values()) == {"applied"}
        assert stock() == stock_after(burgers)
        after = httpx.post(f"{kitchen.base}/order", json=seeded.order(1), timeout=30)
        assert after.status_code == 201
        report(
            "PostgreSQL down 10 s",
            backend="PostgreSQL + Kafka" if REAL_KAFKA else "PostgreSQL + embedded",
            orders_sent=tally.sent,
            acknowledged=len(tally.acknowledged),
            pending_at_cut=pending_at_cut,
            answers_503_during=len(during),
            applied=sum(1 for s in statuses.values() if s == "applied"),
            lost=tally.sent - len(tally.acknowledged),
        )
    finally:
        kitchen.stop()
        proxy.down()


@pytest.mark.skipif(
    not (REAL_KAFKA and KAFKA_DIR),
    reason="needs the real broker and its run folder: KITCHEN_TEST_KAFKA, KITCHEN_TEST_KAFKA_DIR",
)
def test_kafka_down_30_s_orders_still_accepted_then_drained(
    tmp_path: Path, smtp: SmtpServer, clean_database: str
) -> None:
    kitchen = KitchenProcess(tmp_path, stack_env(tmp_path, smtp.port, **NO_REDRIVE))
    kitchen.start()
    broker = [str(ROOT / "tools/kafka/run"), "--dir", KAFKA_DIR]
    outage: dict[str, float] = {}

    def take_kafka_down() -> None:
        time.sleep(3)
        subprocess.run([broker[0], "stop", *broker[1:]], check=True, capture_output=True)
        outage["down"] = time.monotonic()
        time.sleep(30)
        outage["restarting"] = time.monotonic()
        subprocess.run(
            [broker[0], "start", *broker[1:], "--keep-data"], check=True, capture_output=True
        )
        outage["up"] = time.monotonic()

    try:
        seeded = seed_large_stock(kitchen.base, clean_database)
        tally = Tally()
        chaos = threading.Thread(target=take_kafka_down)
        chaos.start()
        # About 30 orders a second for 40 s, before, during and after the outage; about
        # 1800 burgers, which the stock covers (beef: 2000).
        place_orders(
            kitchen.base,
            1200,
            clients=4,
            product_id=seeded.burger,
            tally=tally,
            pace=lambda: time.sleep(0.13),
        )
        chaos.join()
        during = [t for t in tally.acknowledged_at if outage["down"] <= t <= outage["restarting"]]
        assert tally.statuses == {201: tally.sent} and tally.retries == 0, tally.refusals
        assert len(during) > 100, "the load did not span the outage"

        statuses = settle(set(tally.acknowledged.values()), timeout=180)
        burgers = sum(tally.quantities[k] for k in tally.acknowledged)
        assert set(statuses.values()) == {"applied"}
        assert stock() == stock_after(burgers)
        report(
            "Kafka down 30 s",
            backend="PostgreSQL + Kafka" if REAL_DATABASE else "SQLite + Kafka",
            orders_sent=tally.sent,
            acknowledged=len(tally.acknowledged),
            acknowledged_while_down=len(during),
            broker_restart_seconds=round(outage["up"] - outage["restarting"], 1),
            applied=sum(1 for s in statuses.values() if s == "applied"),
            lost=tally.sent - len(tally.acknowledged),
        )
    finally:
        kitchen.stop()
