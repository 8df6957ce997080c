"""Tables (peewee) and the database binding: the same code on SQLite and PostgreSQL.

Every row belongs to a merchant, and every table that grows with orders has a
`merchant_id` column: on PostgreSQL those tables are partitioned by it (see
partitioning.py, the one place for their DDL); on SQLite they are plain tables.

The binding is one module-level handle, said plainly: `database` is a peewee proxy that
every model is declared against (peewee binds models to a database at class creation),
and `bind(url)` points it at the real database, once per process. Everything else is
given what it needs by its constructor. Tests call `bind` themselves (see conftest).
"""

from __future__ import annotations

import datetime
import hashlib
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import peewee as pw
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from kitchen.settings import mask_url

database = pw.DatabaseProxy()


def is_data_error(exc: Exception) -> bool:
    """The database refused the data itself (a constraint, a value out of range): the
    same statement will fail again. Outages (OperationalError, InterfaceError) are not
    data errors, and neither is anything that is not the database's: a TypeError is a bug.
    """
    return isinstance(exc, (pw.IntegrityError, pw.DataError))


def hash_key(key: str) -> str:
    """How an API key is stored and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Base(pw.Model):
    """Models declare `<fk>_id: int` annotations: peewee provides those column values,
    and the annotations let the type checker see them.

    Every integer column is 64-bit on PostgreSQL (BIGSERIAL ids, and foreign keys follow
    their target's type): the ledger gets a row per ingredient per order, which would run
    through 32-bit ids in days. SQLite's integers are 64-bit anyway."""

    id = pw.BigAutoField()

    class Meta:
        database = database


class Merchant(Base):
    # Not unique: ids identify merchants, and a taken name would tell one merchant that
    # another exists. Its keys are ApiKey rows.
    name = pw.CharField()
    alert_email = pw.CharField()
    # Default alert threshold of its ingredients, an exact fraction ("1/2"); empty means
    # the `[alerts] threshold` setting.
    threshold = pw.CharField(null=True)
    # The default merchant (see ensure_default_merchant): found by this mark, not by its
    # name, which its owner may change.
    is_default = pw.BooleanField(default=False)


# At most one default merchant: two processes starting at once cannot both make one.
Merchant.add_index(
    Merchant.index(Merchant.is_default, unique=True, name="merchant_one_default").where(
        Merchant.is_default == True  # noqa: E712 (SQL, not a Python comparison)
    )
)


class BigForeignKeyField(pw.ForeignKeyField):
    """A 64-bit reference, whatever the width of the id it names (ids become 64-bit in
    migration 0008; a new table starts so)."""

    field_type = "BIGINT"


class ApiKey(Base):
    """One named key of a merchant (a till, a screen): each can be revoked on its own."""

    PRIMARY = "primary"  # the key `merchant create` makes and `rotate-key` replaces

    id = pw.BigAutoField()
    merchant_id: int
    merchant = BigForeignKeyField(Merchant, backref="api_keys", index=False)
    name = pw.CharField()  # unique per merchant; the log and each order say which acted
    # SHA-256 of the key: the key itself is shown once, when made, and never stored.
    # (A key is 256 random bits, so a fast hash is enough: there is nothing to guess.)
    key_hash = pw.CharField(unique=True)
    created_at = pw.DateTimeField(default=utcnow)
    # When a request last used it, to about a minute (see merchants.KeyUses).
    last_used_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "api_key"
        indexes = ((("merchant", "name"), True),)


class Ingredient(Base):
    merchant_id: int
    merchant = pw.ForeignKeyField(Merchant, backref="ingredients")
    name = pw.CharField()
    stock = pw.BigIntegerField()  # grams
    # The par level, in grams: 100% for the threshold. Set when the ingredient is created,
    # changed only by PATCH; restocks and counts may take the stock above it.
    full_stock = pw.BigIntegerField()
    alert_armed = pw.BooleanField(default=True)
    threshold = pw.CharField(null=True)  # exact fraction; empty means the merchant's

    class Meta:
        indexes = ((("merchant", "name"), True),)


class Product(Base):
    merchant_id: int
    merchant = pw.ForeignKeyField(Merchant, backref="products")
    name = pw.CharField()
    # A deleted product stays for the orders that name it; new orders cannot.
    deleted_at = pw.DateTimeField(null=True)


# A name is unique among a merchant's products that are not deleted (a partial index).
Product.add_index(
    Product.index(Product.merchant, Product.name, unique=True, name="product_live_name").where(
        Product.deleted_at.is_null()
    )
)


class RecipeLine(Base):
    product_id: int
    ingredient_id: int
    product = pw.ForeignKeyField(Product, backref="recipe")
    ingredient = pw.ForeignKeyField(Ingredient)
    grams = pw.BigIntegerField()  # per unit of product

    class Meta:
        table_name = "recipe_lines"
        indexes = ((("product", "ingredient"), True),)


class Order(Base):
    merchant_id: int
    PENDING, APPLIED, REJECTED = "pending", "applied", "rejected"

    merchant = pw.ForeignKeyField(Merchant, backref="orders")
    status = pw.CharField(default=PENDING, index=True)
    reason = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    # When ORDER_CREATED was last queued; the re-drive job queues it again if the
    # order is still pending long after (the embedded Kafka forgets on restart).
    emitted_at = pw.DateTimeField(default=utcnow)
    processed_at = pw.DateTimeField(null=True)
    # Idempotency-Key of the request that created it, and a hash of that request's lines:
    # a retried request finds its order instead of placing a second one.
    idempotency_key = pw.CharField(null=True)
    request_hash = pw.CharField(null=True)
    # The name of the API key that placed it (never the key); none without a key.
    key_name = pw.CharField(null=True)

    class Meta:
        table_name = "orders"
        indexes = ((("merchant", "idempotency_key"), True),)


class OrderLine(Base):
    merchant_id: int
    order_id: int
    product_id: int
    # The order's merchant, copied: on PostgreSQL the table is partitioned by it.
    merchant = pw.ForeignKeyField(Merchant, index=False)
    order = pw.ForeignKeyField(Order, backref="lines", on_delete="CASCADE")
    product = pw.ForeignKeyField(Product)
    quantity = pw.BigIntegerField()

    class Meta:
        table_name = "order_lines"


class Outbox(Base):
    """Events written in the same transaction as the change they announce."""

    # Whose event (also its key). Not a foreign key: the outbox is a queue of events whose
    # rows were checked where they were made, and a key is one more lookup per order.
    merchant_id = pw.BigIntegerField()
    topic = pw.CharField()
    key = pw.CharField(null=True)
    payload = pw.TextField()  # JSON
    # The row the event is about (the order of an ORDER_CREATED, the alert of a NOTIFY):
    # a re-drive does not queue an event again while an earlier copy is still unsent.
    ref_id = pw.BigIntegerField(null=True, index=True)
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True, index=True)
    # A relay owns the row until then (see outbox.Relay), so two relays never send it.
    claimed_until = pw.DateTimeField(null=True)
    claimed_by = pw.CharField(null=True)


class Alert(Base):
    """One threshold crossing of one ingredient."""

    merchant_id: int
    ingredient_id: int
    order_id: int

    merchant = pw.ForeignKeyField(Merchant)
    ingredient = pw.ForeignKeyField(Ingredient, backref="alerts")
    order = pw.ForeignKeyField(Order, null=True)
    email = pw.CharField()
    stock = pw.BigIntegerField()  # grams just after the crossing
    full_stock = pw.BigIntegerField()
    threshold = pw.CharField()  # exact fraction, e.g. "1/2"
    created_at = pw.DateTimeField(default=utcnow)
    emitted_at = pw.DateTimeField(default=utcnow)  # when NOTIFY was last queued
    redrives = pw.BigIntegerField(default=0)  # times NOTIFY was queued again (bounded)


class Notification(Base):
    """An alert email to send: one row per alert, so a redelivered NOTIFY sends nothing."""

    merchant_id: int
    alert_id: int | None
    merchant = pw.ForeignKeyField(Merchant, index=False)  # whose ingredient
    # "alert-<id>", or where it was read (kafka.source); unique per merchant (partitions).
    dedup_key = pw.CharField()
    alert = pw.ForeignKeyField(Alert, null=True)
    ingredient_id = pw.BigIntegerField()
    email = pw.CharField()
    subject = pw.CharField()
    body = pw.TextField()
    message_id = pw.CharField()
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True, index=True)
    attempts = pw.BigIntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow)
    # A sender owns the row until then, so two senders never mail the same alert.
    claimed_until = pw.DateTimeField(null=True)
    # A mail that can never be sent (refused address, permanent 5xx): never tried again;
    # the reason is in last_error.
    failed_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)

    class Meta:
        indexes = ((("merchant", "dedup_key"), True),)


F = TypeVar("F", bound=pw.ForeignKeyField)


def unconstrained(field: F) -> F:
    """A reference that peewee joins and names like any foreign key, but for which
    create_table writes no FOREIGN KEY constraint (peewee skips "deferred" foreign keys,
    which is what a DeferredForeignKey resolves to)."""
    field.deferred = True
    return field


class LedgerEntry(Base):
    """One change of one ingredient's stock, written in the transaction of the change:
    an ingredient's stock is the sum of its ledger."""

    ORDER, RESTOCK, COUNT, WASTE, INITIAL = "order", "restock", "count", "waste", "initial"

    merchant_id: int
    ingredient_id: int
    order_id: int | None
    # One index only, (ingredient, id), which the ledger's pages read: every index is paid
    # for on each of a processing batch's ledger rows (three more halved its PostgreSQL
    # speed), and nothing looks ledger rows up by merchant or order.
    # For the same reason no foreign-key constraint (see `unconstrained`; migration 0004
    # drops the old ones): checking three references on each ledger
    # row took 45 % of PostgreSQL's processing time (9,700 against 17,700 orders/s in
    # batches of 1,000, measured). They guarded nothing Kitchen does: a ledger row is
    # written only in the transaction that holds the rows it names locked, and Kitchen
    # never deletes a merchant, an ingredient or an order.
    merchant = unconstrained(pw.ForeignKeyField(Merchant, index=False))
    ingredient = unconstrained(pw.ForeignKeyField(Ingredient, backref="ledger", index=False))
    grams = pw.BigIntegerField()  # signed: what the change added (+) or took (-)
    reason = pw.CharField()
    order = unconstrained(pw.ForeignKeyField(Order, null=True, index=False))
    note = pw.TextField(null=True)
    stock_after = pw.BigIntegerField()
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "ledger"
        indexes = ((("ingredient", "id"), False),)


class SchemaMigration(Base):
    """One row per schema migration applied to this database (see migrations.py)."""

    name = pw.CharField(unique=True)
    applied_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "schema_migrations"


class DatabaseId(Base):
    """One row: a random id made when the tables are, so that names Kitchen gives out
    (Message-IDs, mail files) never repeat those of an earlier database (a reset, another
    deployment), where ids start at 1 again."""

    value = pw.CharField()


TABLES: list[type[Base]] = [
    SchemaMigration,
    DatabaseId,
    Merchant,
    ApiKey,
    Ingredient,
    Product,
    RecipeLine,
    Order,
    OrderLine,
    Outbox,
    Alert,
    Notification,
    LedgerEntry,
]


def open_database(url: str) -> pw.Database:
    """sqlite:///relative.db, sqlite:////abs/path.db or postgresql://user:pass@host:port/db."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
        return PooledSqliteDatabase(
            path or ":memory:",
            max_connections=64,
            timeout=30,
            # Pooled connections move between threads, one thread at a time.
            check_same_thread=False,
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": 15000,
                "foreign_keys": 1,
                "synchronous": "normal",
            },
            # A deferred transaction that reads, then writes cannot wait for the write
            # lock and fails with "database is locked": take the lock at BEGIN.
            lock_type="IMMEDIATE",
        )
    if parsed.scheme in ("postgres", "postgresql"):
        # A pool hands each unit of work a connection and drops broken ones, so the
        # service recovers by itself after PostgreSQL restarts.
        return PooledPostgresqlDatabase(
            parsed.path.lstrip("/"),
            max_connections=64,
            timeout=30,
            user=unquote(parsed.username or "") or None,
            password=unquote(parsed.password or "") or None,
            host=parsed.hostname or None,
            port=parsed.port or 5432,
            connect_timeout=5,
        )
    # settings.check refuses such a URL first; this guards other callers (and hides the
    # password, as every message about a URL must).
    raise ValueError(f"unsupported database url {mask_url(url)}: use sqlite:/// or postgresql://")


_bound_url: str | None = None


def bind(url: str) -> pw.Database:
    """Point every model at the database at `url`.

    Binding the same URL again (several roles or test Kitchens in one process) keeps the
    open database: swapping it under running threads would break their connections.
    """
    global _bound_url
    if _bound_url != url or database.obj is None:
        database.initialize(open_database(url))
        _bound_url = url
    return database.obj


def database_id() -> str:
    """This database's random id (see DatabaseId; made by migrations.upgrade)."""
    return str(DatabaseId.get_by_id(1).value)


def ping() -> None:
    """Raise a peewee DatabaseError unless the database answers."""
    with session():
        database.execute_sql("SELECT 1")


def ensure_default_merchant(alert_email: str) -> Merchant:
    """The default merchant (a keyless request acts as it in development), created with
    `alert_email` and no key if missing. Found by its mark, whatever it is called now.

    The setting only seeds the address: in a split deployment every process has its own
    copy of it, and the last one to start must not decide where alerts go.
    """
    with transaction():
        found: Merchant | None = Merchant.get_or_none(Merchant.is_default == True)  # noqa: E712
        if found is not None:
            return found
        try:
            with database.atomic():
                return Merchant.create(name="default", alert_email=alert_email, is_default=True)
        except pw.IntegrityError:  # another process made it meanwhile
            return Merchant.get(Merchant.is_default == True)  # noqa: E712


@contextmanager
def transaction() -> Iterator[None]:
    """One unit of work: a pooled connection and one transaction, committed on exit."""
    with database.connection_context(), database.atomic():
        yield


@contextmanager
def session() -> Iterator[None]:
    """A pooled connection for reads (and single-statement writes)."""
    with database.connection_context():
        yield


def locked(query: Any) -> Any:
    """SELECT ... FOR UPDATE where the database has row locks (PostgreSQL).

    SQLite has none and needs none: its write transactions start with BEGIN IMMEDIATE,
    which serialises writers for the whole database.
    """
    if isinstance(database.obj, pw.PostgresqlDatabase):
        return query.for_update()
    return query


def keyed(model: type[Base], keys: Iterable[tuple[int, int]]) -> pw.Expression:
    """The rows of `model` with these (merchant_id, id) keys: on PostgreSQL, the primary
    key of a table partitioned by merchant, which `id` alone cannot use."""
    return pw.Tuple(model.merchant_id, model.id).in_(sorted(keys))  # type: ignore[attr-defined]


def among(field: pw.Field, ids: list[int]) -> pw.Expression:
    """`field IN ids`, for the hundreds of ids of a processing batch.

    peewee renders an IN list one parameter at a time in Python (a third of a batch's
    statement-building time); on PostgreSQL the ids go as one array parameter instead,
    `field = ANY(%s)`, which psycopg2 adapts in C."""
    if isinstance(database.obj, pw.PostgresqlDatabase):
        return field == pw.fn.ANY(pw.Value(list(ids), unpack=False))
    return field.in_(ids)


def tuples(query: Any) -> list[tuple[Any, ...]]:
    """The rows of a SELECT as the driver returns them: plain tuples, no model instance
    and no per-value conversion, which cost more than reading a processing batch's 500
    orders and their lines (py-spy). For integer and text columns, whose driver values are
    already what peewee would make of them."""
    return list(database.execute(query).fetchall())


# COPY's text format: a backslash, tab, newline or carriage return in a value is escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(field: pw.Field, value: Any) -> str:
    """One value as COPY's text format spells it; None is NULL."""
    value = field.db_value(value)
    if value is None:
        return "\\N"
    return str(value).translate(_COPY_ESCAPES)


def _copy_rows(fields: list[pw.Field], rows: list[tuple[Any, ...]]) -> str:
    """Rows in COPY's text format. Integers (most of a ledger row) are written as they
    are; other values repeat down a column (a batch's time, a ledger reason) and are
    converted once each: converting every one was 40 % of a processing batch's Python time
    (py-spy)."""
    texts: dict[tuple[int, Any], str] = {}

    def text(column: int, value: Any) -> str:
        if type(value) is int:
            return str(value)
        key = (column, value)
        if key not in texts:
            texts[key] = _copy_text(fields[column], value)
        return texts[key]

    columns = range(len(fields))
    return "".join("\t".join(map(text, columns, row)) + "\n" for row in rows)


# Fields whose Python values (int, str, datetime, None) sqlite3 stores as they are,
# so `bulk_insert` passes them without peewee's per-value db_value.
AS_IS = (pw.IntegerField, pw.CharField, pw.TextField, pw.DateTimeField, pw.ForeignKeyField)


def bulk_insert(fields: list[pw.Field], rows: list[tuple[Any, ...]]) -> None:
    """Insert many rows of one table in one round trip, inside the caller's transaction.

    peewee's insert_many builds its SQL value by value in Python, which cost more than the
    rest of a processing batch (54 ms for 1,500 ledger rows against 11 ms here, measured).
    SQLite gets one parameterised executemany; PostgreSQL gets COPY, which neither builds
    nor parses a statement of 10,000 values (1,500 ledger rows: 28 ms with psycopg2's
    execute_values, 23.6 ms with COPY, measured).
    Rows hold plain values in `fields`' order: ids as ints, never model instances.
    """
    if not rows:
        return
    table = fields[0].model._meta.table_name
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    cursor = database.cursor()
    # peewee's wrapper turns the driver's errors into peewee's, as for every other
    # statement: a refused row is a pw.IntegrityError, which is_data_error recognises.
    with pw.__exception_wrapper__:  # type: ignore[attr-defined]
        if isinstance(database.obj, pw.PostgresqlDatabase):
            text = _copy_rows(fields, rows)
            cursor.copy_expert(f'COPY "{table}" ({columns}) FROM STDIN', io.StringIO(text))
        else:
            values = rows
            if not all(isinstance(f, AS_IS) for f in fields):
                values = [
                    tuple(f.db_value(v) for f, v in zip(fields, r, strict=True)) for r in rows
                ]
            marks = ", ".join("?" for _ in fields)
            cursor.executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', values)
