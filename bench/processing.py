"""Processing speed: Kitchen's processing consumer on a pre-filled topic, beside a baseline.

    python bench/processing.py [--stage processing|scale-out] [--orders 20000]
        [--naive-orders 1000] [--runs 3] [--batch 500]
        [--database URL] [--kafka BOOTSTRAP] [--json PATH]

The database (its tables are dropped: give it one of its own) holds N pending orders of
one burger each, and a fresh topic holds their N ORDER_CREATED events, keyed by merchant
as the outbox keys them. Each run resets the orders to pending and the stock, and reads
the topic again with a fresh consumer group. Runs alternate between the two rows of a
stage; each figure is the median of `--runs`.

- stage "processing", one merchant: Kitchen's processing consumer (the real
  `kafka.ConsumerWorker` with `processing.order_created_handler`, in a process of its own as
  the processing role runs) against a naive consumer (one transaction applying one order,
  then one synchronous offset commit, per message), which reads only the first
  `--naive-orders` events since it is slow: rates are compared. Targets (issue 21): >= 150x,
  and on PostgreSQL >= 20,000 orders/s.
- stage "scale-out": 12 merchants, each with its own reference kitchen, on a topic of 12
  partitions: one processing consumer against two in one group, each a separate OS
  process (one Python process has one GIL). Target: >= 1.5x.

A run counts only when it is right: every order applied, none rejected, each ingredient's
stock exact to the gram and equal to the sum of its ledger, and one alert per ingredient
(the stock is sized so that the last orders take it below half, once). Timing starts when
the consumer group has formed (a consumer got its partitions; the consumers' processes are
up before) and ends when every order is applied; the time the group took to form is
reported beside it. Without --kafka the topic lives in librdkafka's embedded mock
cluster, which creates topics with 4 partitions whatever is asked and waits 3 s before it
forms a group.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import peewee as pw  # noqa: E402
import psycopg2  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from kitchen import db, inventory, migrations, models, processing, seed  # noqa: E402
from kitchen.db import bulk_insert, session, transaction, utcnow  # noqa: E402
from kitchen.events import OrderCreated  # noqa: E402
from kitchen.kafka import (  # noqa: E402
    ConsumerWorker,
    EmbeddedKafka,
    close_with_timeout,
    consumer_config,
    ensure_topics,
    producer_config,
)
from kitchen.models import Alert, Ingredient, LedgerEntry, Merchant, Order, OrderLine, Outbox  # noqa: E402

NOTIFY_TOPIC = "bench-notify"
EVENTS_TOPIC = "bench-order-events"
THRESHOLD = Fraction(1, 2)
# The stock of each ingredient is this many times what the orders take: they leave 40 %
# of it, so the last orders cross the 50 % threshold, once per ingredient.
STOCK_PER_USE = Fraction(5, 3)
# Embedded mock cluster: topics get this many partitions, whatever is asked.
MOCK_PARTITIONS = 4


@dataclass
class Kitchen:
    """What the bench set up: the merchants, each one's burger, its orders' ids."""

    url: str
    bootstrap: str
    topic: str
    orders: dict[int, list[int]]  # merchant id -> its order ids, in topic order
    burgers: dict[int, int]  # merchant id -> its burger's product id

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.orders.values())


def balanced_merchant_ids(merchants: int, partitions: int) -> list[int]:
    """Merchant ids whose keys the producer spreads evenly over `partitions`.

    librdkafka's default partitioner puts a key on CRC32(key) mod partitions: ids 1-12 on
    12 partitions would share 8 of them, and the stage would measure that skew instead of
    a second consumer. Choosing the ids makes it "12 merchants on 12 partitions"."""
    per_partition = -(-merchants // partitions)
    taken: dict[int, int] = {}
    ids: list[int] = []
    candidate = 0
    while len(ids) < merchants:
        candidate += 1
        p = zlib.crc32(str(candidate).encode()) % partitions
        if taken.get(p, 0) < per_partition:
            taken[p] = taken.get(p, 0) + 1
            ids.append(candidate)
    return ids


def fill(
    url: str, merchant_ids: list[int], orders: int
) -> tuple[dict[int, list[int]], dict[int, int]]:
    """A fresh database: the merchants, each with the reference kitchen, and `orders`
    pending one-burger orders dealt round robin among them."""
    database = db.bind(url)
    with session():
        database.drop_tables(list(reversed(models.TABLES)), safe=True)
    migrations.upgrade()
    burgers: dict[int, int] = {}
    for merchant_id in merchant_ids:
        with session():
            Merchant.create(id=merchant_id, name=f"bench-{merchant_id}", alert_email="b@x.org")
        _, view = seed.seed(merchant_id, inventory.AlertRules(THRESHOLD, NOTIFY_TOPIC))
        burgers[merchant_id] = view["products"][0]["id"]
    by_merchant: dict[int, list[int]] = {m: [] for m in merchant_ids}
    now = utcnow()
    order_rows, line_rows = [], []
    for order_id in range(1, orders + 1):
        merchant_id = merchant_ids[(order_id - 1) % len(merchant_ids)]
        by_merchant[merchant_id].append(order_id)
        order_rows.append((order_id, merchant_id, Order.PENDING, now, now))
        line_rows.append((merchant_id, order_id, burgers[merchant_id], 1))
    with transaction():
        fields: list[pw.Field] = [
            Order.id,
            Order.merchant,
            Order.status,
            Order.created_at,
            Order.emitted_at,
        ]
        bulk_insert(fields, order_rows)
        line_fields = [OrderLine.merchant, OrderLine.order, OrderLine.product, OrderLine.quantity]
        bulk_insert(line_fields, line_rows)
        if isinstance(database, pw.PostgresqlDatabase):
            database.execute_sql("SELECT setval('orders_id_seq', %s)", (orders,))
    return by_merchant, burgers


def initial_stock(orders: int) -> dict[str, int]:
    """Each reference ingredient's starting (and full) stock for `orders` burgers."""
    return {
        name: -(-grams * orders * STOCK_PER_USE.numerator // STOCK_PER_USE.denominator)
        for name, grams in seed.BURGER.items()
    }


def reset(kitchen: Kitchen) -> None:
    """Every order pending again, the stock full, no ledger rows of orders, no alerts."""
    with transaction():
        Order.update(status=Order.PENDING, reason=None, processed_at=None).execute()
        LedgerEntry.delete().where(LedgerEntry.reason == LedgerEntry.ORDER).execute()
        Alert.delete().execute()
        Outbox.delete().execute()
        for merchant_id, ids in kitchen.orders.items():
            for name, grams in initial_stock(len(ids)).items():
                Ingredient.update(stock=grams, full_stock=grams, alert_armed=True).where(
                    Ingredient.merchant == merchant_id, Ingredient.name == name
                ).execute()
                # The ledger's initial row carries the stock, so stock = sum of the ledger.
                LedgerEntry.update(grams=grams, stock_after=grams).where(
                    LedgerEntry.reason == LedgerEntry.INITIAL,
                    LedgerEntry.ingredient.in_(
                        Ingredient.select(Ingredient.id).where(
                            Ingredient.merchant == merchant_id, Ingredient.name == name
                        )
                    ),
                ).execute()
    if isinstance(db.database.obj, pw.PostgresqlDatabase):
        # Each run leaves a dead version of every order row; clear them so that later
        # runs meet the same table as the first; and give the freshly filled order lines
        # statistics, without which the planner may scan a merchant's whole key index per
        # batch (half the speed, measured with 64-bit keys). (VACUUM needs a connection of
        # its own, outside any transaction.)
        connection = psycopg2.connect(kitchen.url)
        connection.autocommit = True
        try:
            connection.cursor().execute("VACUUM ANALYZE orders, order_lines, ledger, ingredient")
        finally:
            connection.close()


def check(kitchen: Kitchen, applied: dict[int, int]) -> None:
    """Refuse a wrong run: exactly `applied[m]` orders of merchant m applied, nothing
    rejected, the stock exact and equal to its ledger, one alert per
    crossing."""
    with session():
        statuses: dict[str, int] = dict(
            db.database.execute_sql("SELECT status, COUNT(*) FROM orders GROUP BY status")
        )
        want = sum(applied.values())
        if statuses.get(Order.APPLIED, 0) != want or statuses.get(Order.REJECTED, 0):
            raise SystemExit(f"wrong run: {statuses}, expected {want} applied")
        alerts = 0
        for merchant_id, count in applied.items():
            full = initial_stock(len(kitchen.orders[merchant_id]))
            for i in Ingredient.select().where(Ingredient.merchant == merchant_id):
                expected = full[i.name] - count * seed.BURGER[i.name]
                ledger = (
                    LedgerEntry.select(pw.fn.SUM(LedgerEntry.grams))
                    .where(LedgerEntry.ingredient == i.id)
                    .scalar()
                )
                if not i.stock == ledger == expected:
                    raise SystemExit(
                        f"wrong stock: merchant {merchant_id} {i.name} {i.stock} g, "
                        f"ledger {ledger} g, expected {expected} g"
                    )
                alerts += int(expected * THRESHOLD.denominator < full[i.name] * THRESHOLD.numerator)
        raised = Alert.select().count()
        if raised != alerts:
            raise SystemExit(f"wrong alerts: {raised} raised, {alerts} crossings")


def produce(kitchen: Kitchen) -> dict[int, set[int]]:
    """ORDER_CREATED for every order, keyed by merchant like the outbox's. Returns the
    partitions each merchant's events went to."""
    producer = Producer(producer_config(kitchen.bootstrap))
    partitions: dict[int, set[int]] = {m: set() for m in kitchen.orders}

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            partitions[int(message.key())].add(message.partition())

    for merchant_id, ids in kitchen.orders.items():
        for order_id in ids:
            producer.produce(
                kitchen.topic,
                OrderCreated(order_id, merchant_id).encode(),
                str(merchant_id),
                on_delivery=delivered,
            )
            producer.poll(0)
    if producer.flush(60) > 0:
        raise SystemExit("could not fill the topic")
    return partitions


def consumer_process(
    url: str,
    bootstrap: str,
    topic: str,
    group: str,
    batch: int,
    processed: Any,
    joined: Any,
    go: Event,
    done: Event,
) -> None:
    """One processing consumer, as the processing role runs it. Reports what it has
    committed, and when it first got partitions (time.monotonic, the same clock in every
    process)."""
    db.bind(url)
    worker = ConsumerWorker(
        "processing",
        bootstrap,
        group,
        [topic],
        OrderCreated.decode,
        processing.order_created_handler(NOTIFY_TOPIC, EVENTS_TOPIC, THRESHOLD),
        batch,
        unusable=db.is_data_error,
    )
    processed.value = 0  # ready
    go.wait()
    worker.start()
    while not done.wait(0.002):
        if not joined.value and worker.assigned:
            joined.value = time.monotonic()
        processed.value = worker.processed
    worker.stop()


def run_kitchen(kitchen: Kitchen, consumers: int, batch: int) -> tuple[float, float]:
    """Orders/s of `consumers` processing processes in one fresh group, from the moment
    the group has formed (the first consumer got partitions) until every order is applied;
    and how long the group took to form. (librdkafka's mock cluster waits 3 s before it
    forms a group; a broker with group.initial.rebalance.delay.ms = 0, like tools/kafka's,
    does not. The consumers' processes are up before the clock starts.)"""
    reset(kitchen)
    spawn = multiprocessing.get_context("spawn")
    group = f"bench-{uuid.uuid4().hex[:8]}"
    go, done = spawn.Event(), spawn.Event()
    processed = [spawn.Value("q", -1, lock=False) for _ in range(consumers)]
    joined = [spawn.Value("d", 0.0, lock=False) for _ in range(consumers)]
    procs = [
        spawn.Process(
            target=consumer_process,
            args=(kitchen.url, kitchen.bootstrap, kitchen.topic, group, batch, c, j, go, done),
        )
        for c, j in zip(processed, joined, strict=True)
    ]
    for p in procs:
        p.start()
    while any(c.value < 0 for c in processed):  # imported and bound: ready to start
        time.sleep(0.01)
    started = time.monotonic()
    go.set()
    try:
        while True:
            # A rebalance can hand a batch to the other consumer again: the counters then
            # pass the total before every order is applied, so the database has the word.
            if sum(c.value for c in processed) >= kitchen.total and not _pending():
                break
            if not all(p.is_alive() for p in procs):
                raise SystemExit("a consumer process died")
            time.sleep(0.002)
        finished = time.monotonic()
    finally:
        done.set()
        for p in procs:
            p.join(30)
    check(kitchen, {m: len(ids) for m, ids in kitchen.orders.items()})
    formed = min(j.value for j in joined if j.value)
    return kitchen.total / (finished - formed), formed - started


def _pending() -> bool:
    with session():
        return Order.select().where(Order.status == Order.PENDING).exists()


class NaiveConsumer:
    """The baseline: for each message, one transaction applying one order (the same rules,
    ledger and alerts: Kitchen's own apply_orders, given one id), then one synchronous
    offset commit."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(consumer_config(bootstrap, f"naive-{uuid.uuid4().hex[:8]}"))
        self.topic = topic
        self.joined = 0.0  # time.monotonic() when it got its partitions

    def _assigned(self, _consumer: Any, _partitions: Any) -> None:
        self.joined = self.joined or time.monotonic()

    def run(self, count: int) -> None:
        self.consumer.subscribe([self.topic], on_assign=self._assigned)
        applied = 0
        try:
            while applied < count:
                message = self.consumer.poll(1.0)
                if message is None or message.error() is not None:
                    continue
                order = OrderCreated.decode(message.value())
                processing.apply_orders([order.id], NOTIFY_TOPIC, EVENTS_TOPIC, THRESHOLD)
                self.consumer.commit(message=message, asynchronous=False)
                applied += 1
        finally:
            close_with_timeout(self.consumer)


def run_naive(kitchen: Kitchen, count: int) -> float:
    """Orders/s of the naive consumer over the topic's first `count` events, from the
    moment it got its partition, as for Kitchen's."""
    reset(kitchen)
    (merchant_id,) = kitchen.orders  # one merchant, one partition: events in id order
    naive = NaiveConsumer(kitchen.bootstrap, kitchen.topic)
    naive.run(count)
    elapsed = time.monotonic() - naive.joined
    check(kitchen, {merchant_id: count})
    return count / elapsed


def kafka_label(bootstrap: str | None) -> str:
    """ "embedded", or the Apache Kafka version of tools/kafka's jars when they are here."""
    if not bootstrap:
        return "embedded"
    cache = Path(os.environ.get("KAFKA_CACHE_DIR", ROOT / "tools" / "kafka" / ".cache"))
    jars = sorted((cache / "libs").glob("kafka_2.13-*.jar"))
    return f"apache-kafka {jars[0].name[len('kafka_2.13-') : -len('.jar')]}" if jars else "kafka"


def row(name: str, runs: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "median": round(statistics.median(runs), 1),
        "runs": [round(r, 1) for r in runs],
        "extra": extra,
    }


def target(what: str, value: float, at_least: float) -> dict[str, Any]:
    return {
        "what": what,
        "value": round(value, 2),
        "target": f">= {at_least:g}",
        "met": value >= at_least,
    }


def stage_processing(args: argparse.Namespace, kitchen: Kitchen, backend: str) -> dict[str, Any]:
    kitchen_runs: list[float] = []
    naive_runs: list[float] = []
    joins: list[float] = []
    for _ in range(args.runs):
        rate, join = run_kitchen(kitchen, 1, args.batch)
        kitchen_runs.append(rate)
        joins.append(join)
        naive_runs.append(run_naive(kitchen, args.naive_orders))
        print(f"  kitchen {kitchen_runs[-1]:,.0f} orders/s, naive {naive_runs[-1]:,.0f}")
    ratio = statistics.median(kitchen_runs) / statistics.median(naive_runs)
    targets = [target("Kitchen / naive", ratio, 150)]
    if backend == "postgresql":
        targets.append(
            target("Kitchen orders/s per consumer", statistics.median(kitchen_runs), 20_000)
        )
    return {
        "rows": [
            row("naive consumer", naive_runs, orders=args.naive_orders),
            row(
                "Kitchen processing consumer",
                kitchen_runs,
                orders=kitchen.total,
                group_join_s=round(statistics.median(joins), 2),
            ),
        ],
        "targets": targets,
        "method": (
            f"{kitchen.total:,} pre-filled ORDER_CREATED, one merchant; Kitchen's "
            f"ConsumerWorker in batches of {args.batch}; naive consumer (1 transaction + "
            f"1 synchronous commit per message) on the first {args.naive_orders:,}; "
            f"median of {args.runs} alternating runs"
        ),
    }


def stage_scale_out(args: argparse.Namespace, kitchen: Kitchen, partitions: int) -> dict[str, Any]:
    one: list[float] = []
    two: list[float] = []
    joins: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.runs):
        for consumers, rates in ((1, one), (2, two)):
            rate, join = run_kitchen(kitchen, consumers, args.batch)
            rates.append(rate)
            joins[consumers].append(join)
        print(f"  one consumer {one[-1]:,.0f} orders/s, two {two[-1]:,.0f}")
    ratio = statistics.median(two) / statistics.median(one)
    return {
        "rows": [
            row(
                f"{name} processing consumer{'s' if n > 1 else ''}",
                rates,
                orders=kitchen.total,
                partitions=partitions,
                group_join_s=round(statistics.median(joins[n]), 2),
            )
            for n, name, rates in ((1, "one", one), (2, "two", two))
        ],
        "targets": [target("two consumers / one", ratio, 1.5)],
        "method": (
            f"{kitchen.total:,} pre-filled ORDER_CREATED, {len(kitchen.orders)} merchants "
            f"on {partitions} partitions; one vs two ConsumerWorker processes in one group, "
            f"batches of {args.batch}; median of {args.runs} alternating runs"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", choices=["processing", "scale-out"], default="processing")
    parser.add_argument("--orders", type=int, default=20_000, help="events on the topic")
    parser.add_argument("--naive-orders", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="[kafka] batch_size")
    parser.add_argument("--database", default="", help="default: an SQLite file")
    parser.add_argument("--kafka", default="", help="bootstrap servers; default: embedded")
    parser.add_argument(
        "--kafka-label", default="", help="for the result, e.g. 'apache-kafka 4.4.0'"
    )
    parser.add_argument("--json", default="", help="write the result here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    scale_out = args.stage == "scale-out"
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        backend = "postgresql" if url.startswith("postgres") else "sqlite"
        embedded = None if args.kafka else EmbeddedKafka()
        bootstrap = args.kafka or (embedded.bootstrap_servers if embedded else "")
        partitions = (12 if scale_out else 1) if args.kafka else MOCK_PARTITIONS
        merchant_ids = balanced_merchant_ids(12 if scale_out else 1, partitions)
        if not scale_out and args.naive_orders > args.orders:
            raise SystemExit("--naive-orders must not exceed --orders")
        orders, burgers = fill(url, merchant_ids, args.orders)
        topic = f"bench-order-created-{uuid.uuid4().hex[:8]}"
        if args.kafka:
            ensure_topics(args.kafka, [topic], partitions)
        kitchen = Kitchen(url, bootstrap, topic, orders, burgers)
        spread = produce(kitchen)
        used = sorted(p for ps in spread.values() for p in ps)
        if any(len(ps) != 1 for ps in spread.values()) or len(set(used)) != min(
            partitions, len(spread)
        ):
            raise SystemExit(f"merchants not spread one per partition: {spread}")
        print(f"{args.stage}: {kitchen.total:,} orders on {topic} ({backend})")
        try:
            if scale_out:
                result = stage_scale_out(args, kitchen, partitions)
            else:
                result = stage_processing(args, kitchen, backend)
        finally:
            if args.kafka:
                admin = AdminClient({"bootstrap.servers": args.kafka})
                for future in admin.delete_topics([topic]).values():
                    future.result(30)  # the request is only sent while we wait
            if embedded is not None:
                embedded.close()
    result = {
        "stage": args.stage,
        "backend": backend,
        "kafka": args.kafka_label or kafka_label(args.kafka),
        "unit": "orders/s",
        **result,
    }
    for r in result["rows"]:
        print(f"  {r['name']}: {r['median']:,.0f} orders/s (runs {r['runs']})")
    for t in result["targets"]:
        met = "met" if t["met"] else "NOT met"
        print(f"  {t['what']}: {t['value']} (target {t['target']}: {met})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
