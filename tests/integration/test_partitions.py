"""PostgreSQL: the tables that grow with orders are partitioned by merchant, and the hot
queries read one partition of each (EXPLAIN says so), with several merchants' data."""

from __future__ import annotations

import datetime
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import pytest

from kitchen import (
    alerts,
    inventory,
    notifications,
    orders,
    partitioning,
    processing,
    seed,
    views,
)
from kitchen.db import database, session, transaction, utcnow
from kitchen.domain import Line
from kitchen.models import Alert, Ingredient, Merchant, Order, Product
from tests.helpers import REAL_DATABASE, SEED_RULES

pytestmark = pytest.mark.skipif(
    not REAL_DATABASE, reason="partitions are PostgreSQL's (set KITCHEN_TEST_DATABASE_URL)"
)

TOPIC, NOTIFY = "order_created", "notify"
LONG_AGO = utcnow() - datetime.timedelta(hours=1)
PARTITIONED = {model._meta.table_name for model in partitioning.PARTITIONED}
# Reads that look across merchants on purpose, listed in docs/scaling.md: which merchants
# have work for a re-drive (the work itself is then done merchant by merchant).
ACROSS_MERCHANTS = ('SELECT DISTINCT "t1"."merchant_id" FROM',)


def merchants(count: int) -> list[int]:
    """`count` merchants with the reference kitchen; their orders land in more than one
    partition (checked where it matters)."""
    ids = []
    for n in range(count):
        with session():
            merchant = Merchant.create(name=f"m{n}", alert_email=f"m{n}@example.com")
        seed.seed(merchant.id, SEED_RULES)
        ids.append(merchant.id)
    return ids


def burger(merchant_id: int) -> int:
    with session():
        return int(Product.get(Product.merchant == merchant_id).id)


def partitions_holding(table: str) -> set[str]:
    with session():
        cursor = database.execute_sql(f'SELECT DISTINCT tableoid::regclass::text FROM "{table}"')
        return {row[0] for row in cursor.fetchall()}


def scanned(sql: str, params: Any) -> dict[str, set[str]]:
    """The partitions `sql` reads, per partitioned table, as EXPLAIN plans it."""
    with session():
        cursor = database.execute_sql(f"EXPLAIN (FORMAT JSON) {sql}", params)
        [[plan]] = cursor.fetchall()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    found: dict[str, set[str]] = defaultdict(set)

    def walk(node: dict[str, Any]) -> None:
        relation = node.get("Relation Name", "")
        table, _, n = relation.rpartition("_p")
        if table in PARTITIONED and n.isdigit():
            found[table].add(relation)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[tuple[str, Any]]]]:
    """Records the statements Kitchen sends; call it to take those sent so far."""
    sent: list[tuple[str, Any]] = []
    real = database.obj.execute_sql

    def record(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        sent.append((sql, params))
        return real(sql, params, *args, **kwargs)

    monkeypatch.setattr(database.obj, "execute_sql", record)

    def take() -> list[tuple[str, Any]]:
        taken = list(sent)
        sent.clear()
        return taken

    yield take


def assert_one_partition_each(sent: list[tuple[str, Any]]) -> int:
    """Every SELECT, UPDATE or DELETE of a partitioned table in `sent` reads at most one
    of its partitions; returns how many such statements there were."""
    checked = 0
    for sql, params in sent:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            continue
        if sql.startswith(ACROSS_MERCHANTS):
            continue
        plan = scanned(sql, params)
        for table, parts in plan.items():
            assert len(parts) == 1, f"{sql} reads {sorted(parts)} of {table}"
        checked += bool(plan)
    return checked


def assert_merchants_partitions(sent: list[tuple[str, Any]], merchant_ids: list[int]) -> int:
    """Every SELECT, UPDATE or DELETE of a partitioned table in `sent` reads only the
    partitions that hold these merchants' rows; returns how many such statements there
    were."""
    checked = 0
    for sql, params in sent:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            continue
        plan = scanned(sql, params)
        for table, parts in plan.items():
            with session():
                cursor = database.execute_sql(
                    f'SELECT DISTINCT tableoid::regclass::text FROM "{table}" '
                    "WHERE merchant_id = ANY(%s)",
                    (merchant_ids,),
                )
                holding = {row[0] for row in cursor.fetchall()}
            assert parts <= holding, f"{sql} reads {sorted(parts - holding)} of {table}"
        checked += bool(plan)
    return checked


def test_a_new_database_is_partitioned_by_merchant(clean_database: str) -> None:
    with session():
        for model in partitioning.PARTITIONED:
            assert partitioning.count(model) == partitioning.DEFAULT, model


def test_hot_queries_read_one_partition(
    clean_database: str, statements: Callable[[], list[tuple[str, Any]]]
) -> None:
    shops = merchants(6)
    burgers = {m: burger(m) for m in shops}
    # Place: with an Idempotency-Key (looked up first), and in a group across merchants.
    statements()
    for m in shops:
        orders.place_order(m, [Line(burgers[m], 1)], TOPIC, idempotency_key=f"key-{m}")
    orders.place_orders(
        [orders.NewOrder(m, [Line(burgers[m], 15)]) for m in shops for _ in range(3)], TOPIC
    )
    assert assert_one_partition_each(statements()) >= len(shops)
    assert len(partitions_holding("orders")) > 1, "the merchants share one partition"

    # Apply a batch of every merchant's orders: 3 x 15 burgers take onion below half.
    # As the events say it (ORDER_CREATED names the merchant).
    with session():
        merchant_of = {o.id: o.merchant_id for o in Order.select(Order.id, Order.merchant)}
    ids = list(merchant_of)
    statements()  # the test's own reads
    result = processing.apply_orders(ids, NOTIFY, "order_events", Fraction(1, 2), merchant_of)
    assert len(result.applied) == len(ids) and len(result.alerts) == len(shops)
    # A batch's statements name every merchant of the batch (one statement for all of
    # them, not one per merchant): each reads those merchants' partitions, and no other.
    # (Its writes go in one query string, statements apart.)
    sent = [
        (sql, params if sql == text else None)
        for text, params in statements()
        for sql in text.split(";\n")
    ]
    assert assert_merchants_partitions(sent, shops) >= 3
    assert sum("orders" in scanned(sql, params) for sql, params in sent) == 2  # lock, mark

    # Re-drive stuck orders and lost alerts (the cross-merchant look-ups aside).
    later = orders.place_orders([orders.NewOrder(m, [Line(burgers[m], 1)]) for m in shops], TOPIC)
    with transaction():
        Order.update(emitted_at=LONG_AGO).execute()
        Alert.update(emitted_at=LONG_AGO).execute()
        database.execute_sql("UPDATE outbox SET sent_at = now()")
    statements()
    assert orders.redrive(TOPIC, datetime.timedelta(seconds=30)) == len(later)
    assert alerts.redrive(NOTIFY, datetime.timedelta(seconds=30)) == len(shops)
    assert assert_one_partition_each(statements()) >= 2 * len(shops)

    # Read an order, its merchant's orders and alerts, the ledger of an ingredient.
    for p in later:
        assert isinstance(p, orders.Placed)
        assert views.order_by_id(p.id, p.merchant_id) is not None
        assert views.recent_orders(p.merchant_id, 10, None)
        assert views.recent_alerts(p.merchant_id, 10, None)
        # Ingredients with their forecasts, read from the hourly sums of the ledger.
        assert inventory.all_of(p.merchant_id, SEED_RULES)[0]["forecast"]["daily_use"]
    assert assert_one_partition_each(statements()) >= 5 * len(shops)


def test_notifications_are_claimed_in_their_merchants_partition(
    clean_database: str, statements: Callable[[], list[tuple[str, Any]]]
) -> None:
    shops = merchants(4)
    with transaction():
        for m in shops:
            onion = Ingredient.get(Ingredient.merchant == m, Ingredient.name == "onion")
            database.execute_sql(
                "INSERT INTO notification (merchant_id, dedup_key, ingredient_id, email, subject,"
                " body, message_id, created_at, attempts, next_attempt_at)"
                " VALUES (%s, %s, %s, 'a@x.io', 's', 'b', %s, now(), 0, now())",
                (m, f"k-{m}", onion.id, f"<{m}@x>"),
            )
    sent: list[str] = []

    class Folder:
        def send(self, to: str, subject: str, body: str, message_id: str) -> None:
            sent.append(message_id)

    statements()
    assert notifications.send_due(Folder(), 60) == len(shops)
    sent_sql = statements()
    # The due mails are one queue across merchants (docs/scaling.md); each claim and
    # each mark reads its merchant's partition only.
    due, *claims = [s for s in sent_sql if "notification" in s[0]]
    assert len(scanned(*due)["notification"]) == partitioning.DEFAULT
    assert assert_one_partition_each(claims) >= 2 * len(shops)
