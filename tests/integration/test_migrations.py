"""Upgrades keep data: a database of the previous release is upgraded in place."""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import peewee as pw
import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import merchants, migrations, models, orders, partitioning, seed, views
from kitchen.db import database, session, transaction, utcnow
from kitchen.domain import Line
from kitchen.events import OrderCreated
from kitchen.merchants import hash_key
from kitchen.models import (
    Alert,
    ApiKey,
    Ingredient,
    LedgerEntry,
    Merchant,
    Notification,
    Order,
    OrderLine,
    Outbox,
    Product,
    RecipeLine,
    SchemaMigration,
)
from kitchen.settings import Settings
from tests.helpers import REAL_DATABASE, SEED_RULES, eventually, no_order_pending

# The tables whose shape changed since the release that landed before issue 7, as that
# release made them. The others (recipe lines, orders, alerts, ...) are unchanged.


class Previous(pw.Model):
    id = pw.AutoField()

    class Meta:
        database = database


class PreviousMerchant(Previous):
    name = pw.CharField(unique=True)
    api_key = pw.CharField(unique=True)
    alert_email = pw.CharField()

    class Meta:
        table_name = "merchant"


class PreviousIngredient(Previous):
    merchant = pw.ForeignKeyField(PreviousMerchant)
    name = pw.CharField()
    stock = pw.BigIntegerField()
    full_stock = pw.BigIntegerField()
    alert_armed = pw.BooleanField(default=True)

    class Meta:
        table_name = "ingredient"
        indexes = ((("merchant", "name"), True),)


class PreviousProduct(Previous):
    merchant = pw.ForeignKeyField(PreviousMerchant)
    name = pw.CharField()

    class Meta:
        table_name = "product"
        indexes = ((("merchant", "name"), True),)


class PreviousOutbox(Previous):
    topic = pw.CharField()
    key = pw.CharField(null=True)
    payload = pw.TextField()
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True, index=True)

    class Meta:
        table_name = "outbox"


class PreviousOrderLine(Previous):
    order_id: int
    order = pw.ForeignKeyField(Order, on_delete="CASCADE")
    product = pw.ForeignKeyField(PreviousProduct)
    quantity = pw.IntegerField()

    class Meta:
        table_name = "order_lines"


class PreviousAlert(Previous):
    merchant = pw.ForeignKeyField(PreviousMerchant)
    ingredient = pw.ForeignKeyField(PreviousIngredient)
    order = pw.ForeignKeyField(Order, null=True)
    email = pw.CharField()
    stock = pw.BigIntegerField()
    full_stock = pw.BigIntegerField()
    threshold = pw.CharField()
    created_at = pw.DateTimeField(default=utcnow)
    emitted_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "alert"


class PreviousNotification(Previous):
    dedup_key = pw.CharField(unique=True)
    alert = pw.ForeignKeyField(PreviousAlert, null=True)
    ingredient_id = pw.IntegerField()
    email = pw.CharField()
    subject = pw.CharField()
    body = pw.TextField()
    message_id = pw.CharField()
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True, index=True)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow)
    claimed_until = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)

    class Meta:
        table_name = "notification"


PREVIOUS = [PreviousMerchant, PreviousIngredient, PreviousProduct, PreviousOutbox]
UNCHANGED = [RecipeLine, Order]
PREVIOUS_AFTER = [PreviousOrderLine, PreviousAlert, PreviousNotification]  # they name orders


def integer_columns() -> list[tuple[str, str]]:
    """PostgreSQL's 32-bit columns (table, column) and sequences (sequence, "")."""
    columns = database.execute_sql(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND data_type = 'integer' "
        "UNION ALL SELECT sequence_name, '' FROM information_schema.sequences "
        "WHERE sequence_schema = current_schema() AND data_type = 'integer' ORDER BY 1, 2"
    ).fetchall()
    return [(str(table), str(column)) for table, column in columns]


# What the previous release stored 64-bit on PostgreSQL: grams of stock, nothing else.
WERE_64BIT = {"stock", "full_stock"}


def as_32bit() -> None:
    """On PostgreSQL, the ids, foreign keys and quantities of the tables made from today's
    models (`UNCHANGED`, the keys naming them) as the previous release had them: 32-bit."""
    columns = database.execute_sql(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND data_type = 'bigint'"
    ).fetchall()
    for table, column in columns:
        if column not in WERE_64BIT:
            database.execute_sql(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE INTEGER')
    for (sequence,) in database.execute_sql(
        "SELECT sequence_name FROM information_schema.sequences "
        "WHERE sequence_schema = current_schema()"
    ).fetchall():
        database.execute_sql(f'ALTER SEQUENCE "{sequence}" AS INTEGER')


def previous_release_database() -> dict[str, object]:
    """Replace this test's database by one the previous release made, and fill it."""
    with session():
        database.drop_tables(list(reversed(models.TABLES)))
        database.create_tables(PREVIOUS)
        database.create_tables(UNCHANGED)
        database.create_tables(PREVIOUS_AFTER)
        if REAL_DATABASE:
            as_32bit()
    with transaction():
        default = PreviousMerchant.create(name="default", api_key="default", alert_email="a@x.io")
        other = PreviousMerchant.create(name="m2", api_key="key-m2", alert_email="b@x.io")
        stock = {}
        for merchant in (default, other):
            burger = PreviousProduct.create(merchant=merchant, name="Burger")
            for name, grams in {"beef": 19_700, "onion": 480}.items():
                i = PreviousIngredient.create(
                    merchant=merchant, name=name, stock=grams, full_stock=grams * 2
                )
                stock[i.id] = grams
                RecipeLine.create(product=burger.id, ingredient=i.id, grams=10)
            for status in (Order.APPLIED, Order.PENDING):
                order = Order.create(merchant=merchant.id, status=status)
                PreviousOrderLine.create(order=order, product=burger.id, quantity=2)
                PreviousOutbox.create(
                    topic="order_created",
                    key=str(merchant.id),
                    payload=json.dumps({"id": order.id}),
                )
            alert = PreviousAlert.create(
                merchant=merchant,
                ingredient=i,
                order=order.id,
                email="a@x.io",
                stock=480,
                full_stock=960,
                threshold="1/2",
            )
            PreviousNotification.create(
                dedup_key=f"alert-{alert.id}",
                alert=alert,
                ingredient_id=i.id,
                email="a@x.io",
                subject="Low stock",
                body="...",
                message_id=f"<kitchen-alert-{alert.id}@x>",
                sent_at=utcnow(),
            )
    return {"stock": stock, "merchants": {default.id: "default", other.id: "key-m2"}}


def test_a_previous_release_database_is_upgraded_in_place(clean_database: str) -> None:
    before = previous_release_database()
    with session():
        orders_before = [(o.id, o.merchant_id, o.status) for o in Order.select().order_by(Order.id)]
        lines_before = [(ln.order_id, ln.quantity) for ln in PreviousOrderLine.select()]
        outbox_before = [r.payload for r in PreviousOutbox.select().order_by(PreviousOutbox.id)]

    names = migrations.NAMES
    assert migrations.upgrade() == names
    assert migrations.upgrade() == []  # each applied once, and recorded

    with session():
        assert [m.name for m in SchemaMigration.select().order_by(SchemaMigration.id)] == names
        assert [(o.id, o.merchant_id, o.status) for o in Order.select()] == orders_before
        assert [(ln.order_id, ln.quantity) for ln in OrderLine.select()] == lines_before
        assert [r.payload for r in Outbox.select().order_by(Outbox.id)] == outbox_before
        assert {i.id: i.stock for i in Ingredient.select()} == before["stock"]
        # What existed was counted in grams (0010): every ingredient's unit is g.
        units = database.execute_sql('SELECT DISTINCT "unit" FROM "ingredient"').fetchall()
        assert [u for (u,) in units] == ["g"]
        # The stock of each ingredient is its first ledger row, so stock = sum(ledger).
        for i in Ingredient.select():
            [entry] = LedgerEntry.select().where(LedgerEntry.ingredient == i.id)
            assert (entry.reason, entry.grams, entry.stock_after) == ("initial", i.stock, i.stock)
            assert entry.merchant_id == i.merchant_id
        # Keys keep working, stored only as their hash, as each merchant's key "primary";
        # but not the default merchant's fixed word "default", which was no secret.
        keys = {(k.merchant_id, k.name): k.key_hash for k in ApiKey.select()}
        assert keys == {(2, "primary"): hash_key("key-m2")}
        assert before["merchants"] == {1: "default", 2: "key-m2"}
        assert not {"api_key", "key_hash"} & {c.name for c in database.get_columns("merchant")}
        assert [m.id for m in Merchant.select().where(Merchant.is_default)] == [1]
        assert [(a.redrives, a.stock) for a in Alert.select()] == [(0, 480), (0, 480)]
        assert [(n.failed_at, n.sent_at is not None) for n in Notification.select()] == [
            (None, True),
            (None, True),
        ]

    # The new rules hold on the upgraded tables: a deleted product frees its name.
    with transaction():
        burger = Product.get(Product.name == "Burger")
        with pytest.raises(pw.IntegrityError), database.atomic():
            Product.create(merchant=burger.merchant_id, name="Burger")
        Product.update(deleted_at=utcnow()).where(Product.id == burger.id).execute()
        Product.create(merchant=burger.merchant_id, name="Burger")


def test_a_new_database_is_created_at_the_newest_schema(clean_database: str) -> None:
    # clean_database ran upgrade() on an empty database: every migration is recorded.
    with session():
        names = [m.name for m in SchemaMigration.select().order_by(SchemaMigration.id)]
        if REAL_DATABASE:
            # Every id, foreign key, quantity and sequence is 64-bit from the start,
            # partitioned tables (partitioning.create) included.
            assert integer_columns() == []
    assert names == migrations.NAMES
    assert migrations.upgrade() == []


@pytest.mark.skipif(not REAL_DATABASE, reason="SQLite's integers are 64-bit already")
def test_an_older_postgresql_database_gets_64bit_ids_and_quantities(clean_database: str) -> None:
    previous_release_database()
    with session():
        old = integer_columns()
        assert ("recipe_lines", "grams") in old and ("orders_id_seq", "") in old  # 32-bit
        last_order = Order.select(pw.fn.MAX(Order.id)).scalar()
        before = {
            t: sorted(database.execute_sql(f'SELECT * FROM "{t}"').fetchall())
            for t in ("recipe_lines", "orders", "ingredient")
        }

    assert migrations.upgrade() == migrations.NAMES

    with session():
        assert integer_columns() == []
        types = dict(
            database.execute_sql(
                "SELECT table_name || '.' || column_name, data_type "
                "FROM information_schema.columns WHERE table_schema = current_schema()"
            ).fetchall()
        )
        for column in (
            "orders.id",
            "order_lines.order_id",
            "order_lines.quantity",
            "recipe_lines.grams",
            "recipe_lines.ingredient_id",
            "ledger.id",
            "ledger.grams",
            "ledger.stock_after",
            "ingredient.stock",
            "ingredient.full_stock",
            "alert.order_id",
            "outbox.merchant_id",
            "notification.ingredient_id",
            "merchant.id",
        ):
            assert types[column] == "bigint", column
        for table, rows in before.items():
            after = database.execute_sql(f'SELECT * FROM "{table}"').fetchall()
            assert sorted(row[: len(rows[0])] for row in after) == rows, table

    # Ids go on from where they were, and past 2**31 now.
    merchant_id = Order.get_by_id(last_order).merchant_id
    burger = Product.get(Product.merchant == merchant_id).id
    [placed] = orders.place_orders([orders.NewOrder(merchant_id, [Line(burger, 1)])], "t")
    assert isinstance(placed, orders.Placed) and placed.id == last_order + 1
    with transaction():
        database.execute_sql(
            "SELECT setval(pg_get_serial_sequence('orders', 'id'), %s)", (2**31 + 5,)
        )
        onion = Ingredient.get(Ingredient.merchant == merchant_id, Ingredient.name == "onion")
        RecipeLine.update(grams=5_000_000_000).where(RecipeLine.ingredient == onion.id).execute()
    [big] = orders.place_orders([orders.NewOrder(merchant_id, [Line(burger, 1)])], "t")
    assert isinstance(big, orders.Placed) and big.id == 2**31 + 6
    with session():
        assert OrderLine.get(OrderLine.order == big.id).quantity == 1
        assert RecipeLine.get(RecipeLine.ingredient == onion.id).grams == 5_000_000_000


@pytest.mark.skipif(not REAL_DATABASE, reason="SQLite's integers are 64-bit already")
def test_a_database_partitioned_with_32bit_keys_is_made_64bit(
    clean_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release before issue 16 partitioned the tables by a 32-bit merchant_id, which
    PostgreSQL cannot retype in place: 0008 makes them again, rows and ids kept."""
    previous_release_database()
    # Partitioned as that release did it: its DDL had 32-bit ids and keys.
    real_column = partitioning._column
    monkeypatch.setattr(partitioning, "ID_TYPE", "INTEGER")
    monkeypatch.setattr(
        partitioning,
        "_column",
        lambda f: (
            real_column(f).replace("BIGINT", "INTEGER")
            if f.column_name not in WERE_64BIT and f.model is not models.LedgerEntry
            else real_column(f)
        ),
    )
    real_history = migrations.history
    monkeypatch.setattr(migrations, "history", lambda n: real_history(n)[:5])
    assert migrations.upgrade(partitions=3)[-1] == "0005_partitioned_by_merchant"
    monkeypatch.undo()
    with session():
        assert ("orders", "merchant_id") in integer_columns()
        assert ("order_lines_p2", "merchant_id") in integer_columns()
        tables = [m._meta.table_name for m in partitioning.PARTITIONED]
        before = {
            t: sorted(database.execute_sql(f'SELECT * FROM "{t}"').fetchall()) for t in tables
        }
        last_order = Order.select(pw.fn.MAX(Order.id)).scalar()

    # 0006 and 0007 (issue 16, merchants and keys) come first; 0008 retypes the tables.
    assert migrations.upgrade(partitions=8) == migrations.NAMES[5:]

    with session():
        assert integer_columns() == []
        for model in partitioning.PARTITIONED:
            assert partitioning.count(model) == 3, model  # as many partitions as before
        # 0010 resolved the alerts of ingredients armed again: all else is kept.
        resolved = [c.name for c in database.get_columns("alert")].index("resolved_at")
        # 0011 summed the ledger by the hour (the hourly sums were empty before).
        assert (
            database.execute_sql(
                'SELECT SUM("amount"), SUM("entries") FROM "usage_hour"'
            ).fetchone()
            == database.execute_sql('SELECT SUM("grams"), COUNT(*) FROM "ledger"').fetchone()
        )
        for table, rows in before.items():
            after = sorted(database.execute_sql(f'SELECT * FROM "{table}"').fetchall())
            if table in ("usage_hour", "sales_hour"):
                continue
            if table == "alert":
                assert all(row[resolved] is not None for row in after)
                after = [row[:resolved] + row[resolved + 1 :] for row in after]
                rows = [row[:resolved] + row[resolved + 1 :] for row in rows]
            assert after == rows, table
        names = {
            name
            for (name,) in database.execute_sql(
                "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
            ).fetchall()
        }
        assert "orders_p0_pkey" in names and "orders_pkey" in names
        assert not [n for n in names if "32bit" in n]  # nothing left of the old tables
    merchant_id = Order.get_by_id(last_order).merchant_id
    burger = Product.get(Product.merchant == merchant_id).id
    [placed] = orders.place_orders([orders.NewOrder(merchant_id, [Line(burger, 1)])], "t")
    assert isinstance(placed, orders.Placed) and placed.id == last_order + 1
    with session():
        assert OrderLine.get(OrderLine.order == placed.id).merchant_id == merchant_id


@pytest.mark.skipif(not REAL_DATABASE, reason="partitions are PostgreSQL's")
def test_an_older_postgresql_database_is_partitioned_in_place(
    clean_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    previous_release_database()
    with session():
        before = {
            table: sorted(database.execute_sql(f'SELECT * FROM "{table}"').fetchall())
            for table in ("orders", "alert")
        }
        last_order = Order.select(pw.fn.MAX(Order.id)).scalar()
        assert partitioning.count(Order) == 0

    assert migrations.upgrade(partitions=4) == migrations.NAMES

    with session():
        for model in partitioning.PARTITIONED:
            assert partitioning.count(model) == 4, model
        # Every row is where it was (its columns of then), and each names its merchant.
        for table, rows in before.items():
            after = database.execute_sql(f'SELECT * FROM "{table}"').fetchall()
            assert sorted(row[: len(rows[0])] for row in after) == rows, table
        for line in OrderLine.select():
            assert line.merchant_id == Order.get_by_id(line.order_id).merchant_id
        for row in Outbox.select():
            assert str(row.merchant_id) == row.key
        for n in Notification.select():
            assert n.merchant_id == Alert.get_by_id(n.alert_id).merchant_id
    # Ids go on from the old sequence: a new order never takes an old order's id.
    merchant_id = Order.get_by_id(last_order).merchant_id
    burger = Product.get(Product.merchant == merchant_id).id
    [placed] = orders.place_orders([orders.NewOrder(merchant_id, [Line(burger, 1)])], "t")
    assert isinstance(placed, orders.Placed) and placed.id > last_order

    # The setting counts only when the tables are made: another count later is a warning.
    caplog.set_level(logging.WARNING, "kitchen.partitioning")
    assert migrations.upgrade(partitions=8) == []
    assert "database.partitions is 8 but the tables have 4 partitions" in caplog.text
    with session():
        assert partitioning.count(Order) == 4


def test_the_ledger_loses_its_foreign_keys_on_postgresql(clean_database: str) -> None:
    """Migration 0004 on a ledger made by an earlier release (with foreign keys): they
    are dropped and every row kept; a new database has none to begin with."""
    if not isinstance(database.obj, pw.PostgresqlDatabase):
        pytest.skip("SQLite keeps an earlier ledger's foreign keys (see migration 0004)")
    with session():
        assert database.get_foreign_keys("ledger") == []
        merchant = Merchant.create(name="m", alert_email="m@x.io")
    seed.seed(merchant.id, SEED_RULES)
    with transaction():
        # The ledger as release 0003 left it.
        # (Not its key to orders: this new database's orders are partitioned by merchant,
        # where id alone is no key; release 0003's were not.)
        for column, table in (("merchant", "merchant"), ("ingredient", "ingredient")):
            database.execute_sql(
                f'ALTER TABLE "ledger" ADD FOREIGN KEY ("{column}_id") REFERENCES "{table}" (id)'
            )
        SchemaMigration.delete().where(SchemaMigration.name.startswith("0004")).execute()
        assert len(database.get_foreign_keys("ledger")) == 2
        rows = LedgerEntry.select().count()

    assert migrations.upgrade() == ["0004_ledger_without_foreign_keys"]
    with session():
        assert database.get_foreign_keys("ledger") == []
        assert LedgerEntry.select().count() == rows == 3


def _production(make_kitchen: Callable[..., Kitchen], key: str | None) -> TestClient:
    kitchen = make_kitchen(app={"env": "production"})
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return TestClient(kitchen.web_app(), headers=headers)


ORDER = {"products": [{"product_id": 1, "quantity": 1}]}


def test_the_old_default_key_works_no_more_after_an_upgrade(
    clean_database: str, make_kitchen: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 16 item 1: the release before merchants stored the default merchant's key as
    the fixed word "default"; upgraded, that word is no key, and the merchant has none
    until an operator makes one. Other merchants' keys keep working (item 24)."""
    previous_release_database()
    with caplog.at_level(logging.WARNING, "kitchen.migrations"):
        kitchen = make_kitchen(app={"env": "production"})
    assert "merchant 1: the fixed key of an old release no longer works" in caplog.text
    with TestClient(kitchen.web_app(), headers={"Authorization": "Bearer default"}) as old:
        assert old.get("/ingredients").status_code == 401
        assert old.post("/order", json=ORDER).status_code == 401
        assert old.patch("/merchant", json={"alert_email": "evil@example.org"}).status_code == 401
    with session():
        assert Merchant.get_by_id(1).alert_email == "a@x.io"
        assert not ApiKey.select().where(ApiKey.merchant == 1).exists()
    # The other merchant's key is its key "primary" now, and its orders say so.
    with TestClient(kitchen.web_app(), headers={"Authorization": "Bearer key-m2"}) as m2:
        assert m2.get("/merchant").json()["id"] == 2
        placed = m2.post("/order", json={"products": [{"product_id": 2, "quantity": 1}]})
        assert placed.status_code == 201, placed.text
        assert m2.get(f"/order/{placed.json()['id']}").json()["key"] == "primary"
    # The operator makes the default merchant a key: it acts as that merchant.
    key = merchants.rotate_key(1)
    with TestClient(kitchen.web_app(), headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.get("/merchant").json()["id"] == 1
        assert {i["name"] for i in c.get("/ingredients").json()} == {"beef", "onion"}


def test_a_database_upgraded_with_the_old_default_key_is_mended(
    clean_database: str, make_kitchen: Callable[..., Kitchen], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 1: a database the previous Kitchen upgraded (migrations up to 0005, the word
    "default" hashed as the default merchant's key) loses that key at the next start."""
    previous_release_database()
    history = migrations.history
    with monkeypatch.context() as patched:
        patched.setattr(migrations, "history", lambda partitions: history(partitions)[:5])
        migrations.upgrade()
    with session():
        [(key_hash,)] = database.execute_sql("SELECT key_hash FROM merchant WHERE id = 1")
        assert key_hash == hash_key("default")  # what the previous Kitchen left

    with _production(make_kitchen, "default") as old:
        assert old.get("/ingredients").status_code == 401
    with session():
        done = {m.name for m in SchemaMigration.select()}
    assert {"0006_default_merchant_mended", "0007_named_keys"} <= done


def test_alerts_made_before_the_upgrade_stay_open_only_while_their_ingredient_is_short(
    clean_database: str,
) -> None:
    """Migration 0010: an earlier alert whose ingredient re-armed since (armed now, or
    alerted again later) is resolved (by null: not known); the newest alert of an
    ingredient still short stays open; none has a cause."""
    previous_release_database()
    with transaction():
        # Merchant 1's onion crossed again later and is short now; merchant 2's is armed.
        onion = PreviousIngredient.get(PreviousIngredient.merchant == 1, name="onion")
        PreviousIngredient.update(alert_armed=False).where(
            PreviousIngredient.id == onion.id
        ).execute()
        PreviousAlert.create(
            merchant=1, ingredient=onion, email="a@x.io", stock=470, full_stock=960, threshold="1/2"
        )
    assert "0010_units_and_causes" in migrations.upgrade()
    with session():
        rows = Alert.select().order_by(Alert.id)
        stored = [(a.merchant_id, a.stock, a.cause, a.resolved_by) for a in rows]
        assert stored == [(1, 480, None, None), (2, 480, None, None), (1, 470, None, None)]
        assert [a.resolved_at is not None for a in rows] == [True, True, False]
    shown = views.recent_alerts(1, 20, None)
    assert [(a["stock"], a["status"], a["resolved_by"]) for a in shown] == [
        (470, "open", None),
        (480, "resolved", None),
    ]
    assert [a["status"] for a in views.recent_alerts(2, 20, None)] == ["resolved"]


def test_the_default_merchant_is_the_oldest_even_renamed(
    clean_database: str, make_kitchen: Callable[..., Kitchen]
) -> None:
    """Item 11 on an old database: its default merchant was renamed, and the next start
    made another one named "default" (found by name). The oldest is the default again,
    and merchant names need not be unique any more (item 12)."""
    previous_release_database()
    with transaction():
        PreviousMerchant.update(name="Chez Default").where(PreviousMerchant.id == 1).execute()
        PreviousMerchant.create(name="default", api_key="x", alert_email="c@x.io")
    kitchen = make_kitchen()
    assert kitchen.merchant_id == 1
    with TestClient(kitchen.web_app()) as c:
        assert c.get("/merchant").json()["name"] == "Chez Default"
        assert c.patch("/merchant", json={"name": "m2"}).status_code == 200
    with transaction():
        Merchant.create(name="m2", alert_email="d@x.io")
        assert Merchant.select().where(Merchant.name == "m2").count() == 3


def _insert(table: str, **values: object) -> None:
    """A row with the columns `table` has at this schema (the others are left out)."""
    have = {c.name for c in database.get_columns(table)}
    row = {k: v for k, v in values.items() if k in have}
    pw.Table(table, list(row)).bind(database.obj).insert(**row).execute()


@pytest.mark.parametrize("schema", range(1, len(migrations.NAMES)), ids=migrations.NAMES[:-1])
def test_a_database_at_each_intermediate_schema_upgrades_and_works(
    clean_database: str,
    test_settings: Settings,
    make_kitchen: Callable[..., Kitchen],
    monkeypatch: pytest.MonkeyPatch,
    schema: int,
) -> None:
    """A database a release left at schema N (the base, then history[:N]), with an order
    placed at that schema, upgrades to the newest; every row is kept, and Kitchen applies
    the pending orders and takes new ones with the exact grams."""
    n = schema
    previous_release_database()
    history = migrations.history
    with monkeypatch.context() as patched:
        patched.setattr(migrations, "history", lambda partitions: history(partitions)[:n])
        assert migrations.upgrade() == migrations.NAMES[:n]
    # An order of 3 burgers placed by merchant 2 at schema N, with that schema's columns.
    with transaction():
        burger = database.execute_sql("SELECT id FROM product WHERE merchant_id = 2").fetchone()[0]
        late = Order.create(merchant=2, status=Order.PENDING)
        _insert("order_lines", merchant_id=2, order_id=late.id, product_id=burger, quantity=3)
        _insert(
            "outbox",
            merchant_id=2,
            topic="order_created",
            key="2",
            payload=OrderCreated(late.id, 2).encode(),
            ref_id=late.id,
            created_at=utcnow(),
        )
    with session():
        orders_before = [(o.id, o.merchant_id, o.status) for o in Order.select().order_by(Order.id)]
        lines_before = sorted(
            database.execute_sql("SELECT order_id, product_id, quantity FROM order_lines")
        )
        payloads = [r for (r,) in database.execute_sql("SELECT payload FROM outbox ORDER BY id")]

    assert migrations.upgrade() == migrations.NAMES[n:]

    with session():
        assert [m.name for m in SchemaMigration.select().order_by(SchemaMigration.id)] == (
            migrations.NAMES
        )
        assert [(o.id, o.merchant_id, o.status) for o in Order.select()] == orders_before
        lines = [(ln.order_id, ln.product_id, ln.quantity) for ln in OrderLine.select()]
        assert sorted(lines) == lines_before
        assert [r.payload for r in Outbox.select().order_by(Outbox.id)] == payloads
        assert {(i.merchant_id, i.name): i.stock for i in Ingredient.select()} == {
            (1, "beef"): 19_700,
            (1, "onion"): 480,
            (2, "beef"): 19_700,
            (2, "onion"): 480,
        }
    # The events the old release queued, on this test's topic, before the relay starts
    # (a relay that started first would publish them to the shared topic).
    with transaction():
        Outbox.update(topic=test_settings.kafka.order_created_topic).execute()
    kitchen = make_kitchen()
    with TestClient(kitchen.web_app()) as c:  # keyless: the default merchant, 1
        eventually(no_order_pending)
        [mine] = c.get("/products").json()  # merchant 1's burger, whatever its id
        # Counted in grams before units (0010), and shown so.
        assert {(i["name"], i["unit"]) for i in c.get("/ingredients").json()} == {
            ("beef", "g"),
            ("onion", "g"),
        }
        assert [line["unit"] for line in mine["recipe"]] == ["g", "g"]
        assert {a["unit"] for a in c.get("/alerts").json()} == {"g"}
        placed = c.post("/order", json={"products": [{"product_id": mine["id"], "quantity": 1}]})
        assert placed.status_code == 201, placed.text
        eventually(lambda: c.get(f"/order/{placed.json()['id']}").json()["status"] == "applied")
    with session():
        assert Order.get_by_id(late.id).status == Order.APPLIED
        # 10 g of each a burger: merchant 1, 2 pending + 1 new; merchant 2, 2 pending + 3.
        assert {(i.merchant_id, i.name): i.stock for i in Ingredient.select()} == {
            (1, "beef"): 19_670,
            (1, "onion"): 450,
            (2, "beef"): 19_650,
            (2, "onion"): 430,
        }
        for i in Ingredient.select():
            ledger = LedgerEntry.select(pw.fn.SUM(LedgerEntry.grams))
            assert ledger.where(LedgerEntry.ingredient == i.id).scalar() == i.stock


def test_two_processes_upgrading_at_once_apply_each_migration_once(
    clean_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two Kitchens starting together on an old database: they take turns, each migration
    runs once, neither fails, and the data is upgraded once."""
    previous_release_database()
    history = migrations.history

    def slow(operations: migrations.Migration) -> migrations.Migration:
        def run(m: Any) -> None:
            time.sleep(0.1)  # widens the race: both have read what is done before either ends
            operations(m)

        return run

    monkeypatch.setattr(
        migrations, "history", lambda p: [(name, slow(op)) for name, op in history(p)]
    )
    with session():
        lines_before = sorted(database.execute_sql("SELECT order_id, quantity FROM order_lines"))
    start = threading.Barrier(2)
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def kitchen_starting() -> None:
        try:
            start.wait(10)
            applied.append(migrations.upgrade())
        except BaseException as e:  # the test reports it
            errors.append(e)
        finally:
            database.close()

    threads = [threading.Thread(target=kitchen_starting) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(applied) == 2 and sorted(applied[0] + applied[1]) == sorted(migrations.NAMES)
    with session():
        assert [m.name for m in SchemaMigration.select().order_by(SchemaMigration.id)] == (
            migrations.NAMES
        )
        assert sorted((ln.order_id, ln.quantity) for ln in OrderLine.select()) == lines_before
        # 0002 gave each ingredient one initial ledger row: once, not twice.
        for i in Ingredient.select():
            assert LedgerEntry.select().where(LedgerEntry.ingredient == i.id).count() == 1


ELEVEN = migrations.NAMES.index("0011_forecasts_and_digests")


def test_0011_sums_the_ledger_by_the_hour_and_gives_ingredients_their_lead_time(
    clean_database: str, make_kitchen: Callable[..., Kitchen], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0011: the hourly sums that forecasts read are filled from the ledger and
    the applied orders that exist; ingredients get a 2-day lead time and no pack size,
    merchants no digest, in UTC; a mail row may name no ingredient (a digest)."""
    previous_release_database()
    history = migrations.history
    with monkeypatch.context() as patched:
        patched.setattr(migrations, "history", lambda partitions: history(partitions)[:ELEVEN])
        migrations.upgrade()
    with session():
        onion = PreviousIngredient.get(PreviousIngredient.merchant == 1, name="onion").id
    two_days_ago = utcnow().replace(minute=0, second=0, microsecond=0) - datetime.timedelta(days=2)
    uses = {two_days_ago: -40, two_days_ago + datetime.timedelta(minutes=20): -20}
    uses[two_days_ago + datetime.timedelta(hours=5, minutes=1)] = -30
    with transaction():
        applied = Order.get(Order.merchant == 1, Order.status == Order.APPLIED)
        Order.update(processed_at=two_days_ago).where(Order.id == applied.id).execute()
        for at, grams in uses.items():
            _insert(
                "ledger",
                merchant_id=1,
                ingredient_id=onion,
                grams=grams,
                reason="order",
                order_id=applied.id,
                stock_after=0,
                created_at=at,
            )
    assert migrations.upgrade() == migrations.NAMES[ELEVEN:]
    with session():
        sums = {
            (u.ingredient_id, u.hour, u.reason): (u.amount, u.entries)
            for u in models.UsageHour.select().where(models.UsageHour.merchant == 1)
        }
        five_later = two_days_ago + datetime.timedelta(hours=5)
        assert {k: v for k, v in sums.items() if k[0] == onion and k[2] == "order"} == {
            (onion, two_days_ago, "order"): (-60, 2),
            (onion, five_later, "order"): (-30, 1),
        }
        # Every ledger row is in the sums: the initial rows (0002) too.
        ledger = database.execute_sql('SELECT SUM("grams"), COUNT(*) FROM "ledger"').fetchone()
        summed = database.execute_sql(
            'SELECT SUM("amount"), SUM("entries") FROM "usage_hour"'
        ).fetchone()
        assert summed == ledger
        sold = [(s.merchant_id, s.hour, s.orders, s.quantity) for s in models.SalesHour.select()]
        assert sold == [(1, two_days_ago, 1, 2)]  # the applied order: 2 burgers
        assert {(i.lead_time_days, i.pack_size) for i in Ingredient.select()} == {(2, None)}
        assert {(m.digest_hour, m.timezone) for m in Merchant.select()} == {(None, "UTC")}
    with transaction():
        Notification.create(
            merchant=1,
            dedup_key="digest-2026-11-30",
            email="a@x.io",
            subject="Kitchen digest",
            body="...",
            message_id="<digest@x>",
        )
    with TestClient(make_kitchen().web_app()) as c:
        shown = {i["name"]: i["forecast"] for i in c.get("/ingredients").json()}
        # 90 g over the two days since the first use: 45 g a day.
        assert shown["onion"]["method"] == "recent"
        assert 44.0 <= shown["onion"]["daily_use"] <= 45.0
        assert shown["beef"]["daily_use"] is None


def idempotency_index() -> tuple[str, str]:
    """The name and definition of the (merchant, Idempotency-Key) index of orders."""
    if REAL_DATABASE:
        query = (
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'orders' "
            "AND strpos(indexdef, 'idempotency_key') > 0"
        )
    else:
        query = (
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders' "
            "AND sql LIKE '%idempotency_key%'"
        )
    [(name, sql)] = database.execute_sql(query).fetchall()
    return str(name), str(sql)


def test_0012_leaves_orders_without_a_key_out_of_the_idempotency_index(
    clean_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0012: the index is partial, as a new database's is; a key still finds
    one order per merchant, and any number of orders have none."""
    previous_release_database()
    history = migrations.history
    with monkeypatch.context() as patched:
        patched.setattr(migrations, "history", lambda partitions: history(partitions)[:-1])
        migrations.upgrade()
    # Migrations that rebuild the table (0005, 0008) made it from today's model: the index
    # as the release before this one had it, over every order.
    with transaction():
        name, _ = idempotency_index()
        database.execute_sql(f'DROP INDEX "{name}"')
        database.execute_sql(
            f'CREATE UNIQUE INDEX "{name}" ON "orders" ("merchant_id", "idempotency_key")'
        )
        assert "WHERE" not in idempotency_index()[1].upper()
    assert migrations.upgrade() == ["0012_partial_idempotency_index"]
    with session():
        assert "IS NOT NULL" in idempotency_index()[1].upper()
    with transaction():
        for _ in range(2):
            Order.create(merchant=1, status=Order.PENDING)
        Order.create(merchant=1, status=Order.PENDING, idempotency_key="k1")
        Order.create(merchant=2, status=Order.PENDING, idempotency_key="k1")
    with pytest.raises(pw.IntegrityError), transaction():
        Order.create(merchant=1, status=Order.PENDING, idempotency_key="k1")
