"""A three-broker Kafka cluster loses a broker under load, twice: the broker leading most
of the orders is SIGKILLed, comes back, then another one is. Nothing acknowledged is lost
or applied twice, one email per crossing, and the consumer groups go on by themselves.

Needs a cluster started by `tools/kafka/run start --brokers 3 --dir DIR`, named by
KITCHEN_TEST_KAFKA_CLUSTER_DIR (the test kills and restarts its nodes).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from peewee import fn

from kitchen import merchants
from kitchen.db import session
from kitchen.models import Ingredient, Order
from kitchen.seed import BURGER
from tests.helpers import REAL_DATABASE, SmtpServer, eventually
from tests.reliability.harness import (
    KitchenProcess,
    Tally,
    mail_settled,
    place_orders,
    settled_orders,
    stack_env,
)
from tests.reliability.report import report
from tools.kafka import cluster

# Three brokers, two killed under a load of 2,400 orders.
pytestmark = [pytest.mark.slow, pytest.mark.cluster]

CLUSTER_DIR = os.environ.get("KITCHEN_TEST_KAFKA_CLUSTER_DIR", "")

MERCHANTS = 4
ORDERS_PER_MERCHANT = 600  # 2400 orders, about 900 burgers a merchant
# Each merchant's stock: about 900 burgers take beef below half (after 667) and onion
# below half (after 600), and no ingredient runs out (onion: 1200).
STOCK = {"beef": 200_000, "cheese": 150_000, "onion": 24_000}
DOWN_SECONDS = 15  # between a kill and the restart: longer than the broker session (9 s)


@pytest.mark.skipif(
    not CLUSTER_DIR,
    reason="needs a 3-broker cluster from tools/kafka/run start --brokers 3: "
    "KITCHEN_TEST_KAFKA_CLUSTER_DIR",
)
def test_brokers_killed_under_load_lose_nothing(
    tmp_path: Path, smtp: SmtpServer, clean_database: str
) -> None:
    bootstrap = (Path(CLUSTER_DIR) / "bootstrap").read_text().strip()
    assert len(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).brokers) == 3
    env = stack_env(
        tmp_path,
        smtp.port,
        KITCHEN_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        # Re-drive off: only Kafka's copies may bring an event through, which is what
        # is tested.
        KITCHEN_SCHEDULER_REDRIVE_AFTER_SECONDS="3600",
    )
    kitchen = KitchenProcess(tmp_path, env)
    kitchen.start()
    try:
        _run(kitchen, smtp, bootstrap, env)
    finally:
        kitchen.stop()
        # Leave the cluster whole for whatever runs next, even after a failure.
        for node, folder in enumerate(cluster.node_dirs(Path(CLUSTER_DIR)), 1):
            if not cluster.running_pid(folder):
                cluster.start(Path(CLUSTER_DIR), node=node)


def _run(kitchen: KitchenProcess, smtp: SmtpServer, bootstrap: str, env: dict[str, str]) -> None:
    topic = env["KITCHEN_KAFKA_ORDER_CREATED_TOPIC"]
    topics = [topic, env["KITCHEN_KAFKA_NOTIFY_TOPIC"]]
    topics += [f"{t}.dlq" for t in topics]
    keys = _merchants(kitchen.base)
    admin = AdminClient({"bootstrap.servers": bootstrap})

    tallies = {m: Tally() for m in keys}
    chaos_done = threading.Event()
    kills: list[dict[str, Any]] = []

    def pace() -> None:
        # Steady load (about 30 orders/s in all) while brokers die; full speed after.
        if not chaos_done.is_set():
            time.sleep(0.25)

    def chaos() -> None:
        try:
            eventually(lambda: _applied_count() >= 200, timeout=120, interval=0.2)
            for _ in range(2):
                kills.append(_kill_and_restart(admin, bootstrap, topic, topics, tallies))
        finally:
            chaos_done.set()

    killer = threading.Thread(target=chaos)
    killer.start()
    loads = [
        threading.Thread(
            target=place_orders,
            args=(kitchen.base, ORDERS_PER_MERCHANT),
            kwargs={
                "clients": 2,
                "product_id": burger,
                "tally": tallies[m],
                "pace": pace,
                "api_key": key,
            },
        )
        for m, (key, burger, _) in keys.items()
    ]
    for t in loads:
        t.start()
    for t in loads:
        t.join()
    killer.join()
    assert len(kills) == 2, "the chaos thread failed: see the log above"
    assert kills[0]["node"] != kills[1]["node"], "the same broker was killed twice"

    acknowledged = {oid for t in tallies.values() for oid in t.acknowledged.values()}
    sent = sum(t.sent for t in tallies.values())
    orders = settled_orders(timeout=180)
    assert set(orders) == acknowledged
    stock = _stock()
    crossed: dict[int, list[str]] = {}
    for m, tally in tallies.items():
        burgers = sum(tally.quantities[k] for k in tally.acknowledged)
        assert {n: s for n, (s, _) in stock[m].items()} == {
            n: STOCK[n] - burgers * BURGER[n] for n in STOCK
        }, f"merchant {m}"
        crossed[m] = sorted(n for n, (s, full) in stock[m].items() if s * 2 < full)
        assert crossed[m] == ["beef", "onion"]
    expected = sum(len(c) for c in crossed.values())
    mail_settled(expected)  # a late resend, a duplicate, has arrived by then
    received = sorted((str(m["To"]), str(m["Subject"]).split(" ")[2]) for m in smtp.messages)
    message_ids = {m["Message-ID"] for m in smtp.messages}
    # The consumer groups took up their partitions again by themselves: everything
    # read is committed (a commit follows its database transaction by a moment).
    lag = _group_lag(bootstrap, env)
    deadline = time.monotonic() + 30
    while any(lag.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
        lag = _group_lag(bootstrap, env)

    report(
        "Kafka cluster: 2 broker kills under load",
        backend=("PostgreSQL" if REAL_DATABASE else "SQLite") + " + Kafka x3",
        merchants=MERCHANTS,
        orders_sent=sent,
        acknowledged=len(acknowledged),
        applied=sum(1 for s in orders.values() if s == "applied"),
        rejected=sum(1 for s in orders.values() if s == "rejected"),
        emails_expected=expected,
        emails_received=len(smtp.messages),
        lost=sent - len(acknowledged),
        duplicated=len(smtp.messages) - len(message_ids),
        consumer_lag_after=lag,
        kills=kills,
    )
    assert sent == len(acknowledged) == MERCHANTS * ORDERS_PER_MERCHANT
    assert received == sorted((keys[m][2], n) for m, names in crossed.items() for n in names)
    assert len(message_ids) == len(smtp.messages) == expected
    assert lag == {"processing": 0, "notification": 0}
    for k in kills:
        assert k["acknowledged_while_down"] > 0, "the load did not span the outage"


def _merchants(base: str) -> dict[int, tuple[str, int, str]]:
    """MERCHANTS merchants with the reference kitchen and STOCK:
    id -> (API key, the burger's product id, alert address)."""
    made = {}
    for i in range(MERCHANTS):
        email = f"kitchen{i}@example.com"
        merchant, key = merchants.create(f"Kitchen {i}", email)
        r = httpx.post(f"{base}/order/seed", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert r.status_code == 201
        burger = next(p["id"] for p in r.json()["products"] if p["name"] == "Burger")
        made[merchant.id] = (key, burger, email)
        with session():
            for name, grams in STOCK.items():
                Ingredient.update(stock=grams, full_stock=grams, alert_armed=True).where(
                    (Ingredient.merchant == merchant.id) & (Ingredient.name == name)
                ).execute()
    return made


def _kill_and_restart(
    admin: AdminClient,
    bootstrap: str,
    topic: str,
    topics: list[str],
    tallies: dict[int, Tally],
) -> dict[str, Any]:
    """SIGKILL the broker leading most orders, restart it DOWN_SECONDS later, wait until it
    is back in the ISR of Kitchen's partitions; how long each step took."""
    node = _busiest_leader(admin, bootstrap, topic)
    with session():
        last_before = Order.select(fn.MAX(Order.id)).scalar() or 0
    killed = time.monotonic()
    assert cluster.kill_node(Path(CLUSTER_DIR), node)
    # Every merchant's partition flows again, wherever its leader was: each merchant has
    # an order placed after the kill applied.
    eventually(
        lambda: _merchants_applied_after(last_before) == MERCHANTS, timeout=120, interval=0.2
    )
    applying_again = time.monotonic() - killed
    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - killed)))
    restarting = time.monotonic()
    cluster.start(Path(CLUSTER_DIR), node=node)
    restarted = time.monotonic()
    # `start` returns once the node serves; it may still be catching up.
    eventually(lambda: _in_every_isr(admin, topics, node), timeout=120, interval=0.2)
    return {
        "node": node,
        "applying_again_s": round(applying_again, 1),
        "down_s": round(restarting - killed, 1),
        "restart_s": round(restarted - restarting, 1),
        # From the restart: the broker's start, then catching up with the others.
        "back_in_isr_s": round(time.monotonic() - restarting, 1),
        "acknowledged_while_down": sum(
            1 for t in tallies.values() for at in t.acknowledged_at if killed <= at <= restarting
        ),
    }


def _busiest_leader(admin: AdminClient, bootstrap: str, topic: str) -> int:
    """The broker leading the partitions of `topic` that hold the most events."""
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "busiest"})
    try:
        events: dict[int, int] = {}
        for p in partitions:
            _, high = reader.get_watermark_offsets(TopicPartition(topic, p.id), timeout=10)
            events[p.leader] = events.get(p.leader, 0) + high
    finally:
        reader.close()
    return max(events, key=lambda leader: events[leader])


def _merchants_applied_after(order_id: int) -> int:
    """How many merchants have an order newer than `order_id` that is settled."""
    with session():
        return int(
            Order.select(fn.COUNT(fn.DISTINCT(Order.merchant)))
            .where((Order.id > order_id) & (Order.status != Order.PENDING))
            .scalar()
        )


def _in_every_isr(admin: AdminClient, topics: list[str], node: int) -> bool:
    metadata = admin.list_topics(timeout=10)
    return all(node in p.isrs for t in topics for p in metadata.topics[t].partitions.values())


def _applied_count() -> int:
    with session():
        return int(Order.select().where(Order.status != Order.PENDING).count())


def _stock() -> dict[int, dict[str, tuple[int, int]]]:
    """Each merchant's ingredients: name -> (stock, full stock)."""
    found: dict[int, dict[str, tuple[int, int]]] = {}
    with session():
        for i in Ingredient.select():
            found.setdefault(i.merchant_id, {})[i.name] = (i.stock, i.full_stock)
    return found


def _group_lag(bootstrap: str, env: dict[str, str]) -> dict[str, int]:
    """Events each consumer group has not committed yet, over all its partitions."""
    lag = {}
    groups = {
        "processing": (
            env["KITCHEN_KAFKA_PROCESSING_GROUP"],
            env["KITCHEN_KAFKA_ORDER_CREATED_TOPIC"],
        ),
        "notification": (
            env["KITCHEN_KAFKA_NOTIFICATION_GROUP"],
            env["KITCHEN_KAFKA_NOTIFY_TOPIC"],
        ),
    }
    for role, (group, topic) in groups.items():
        reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
            committed = reader.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
            lag[role] = 0
            for tp in committed:
                low, high = reader.get_watermark_offsets(tp, timeout=10)
                lag[role] += high - (tp.offset if tp.offset >= 0 else low)
        finally:
            reader.close()
    return lag
