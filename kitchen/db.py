"""Tables (peewee) and the database binding: the same code on SQLite and PostgreSQL.

Every row belongs to a merchant. Today there is one default merchant; the column is
here from the start so that multi-merchant is a feature, not a migration.

The binding is one module-level handle, said plainly: `database` is a peewee proxy that
every model is declared against (peewee binds models to a database at class creation),
and `bind(url)` points it at the real database, once per process. Everything else is
given what it needs by its constructor. Tests call `bind` themselves (see conftest).
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlparse

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

database = pw.DatabaseProxy()


def is_data_error(exc: Exception) -> bool:
    """The database refused the data itself (a constraint, a value out of range): the
    same statement will fail again. Outages (OperationalError, InterfaceError) are not
    data errors, and neither is anything that is not the database's: a TypeError is a bug.
    """
    return isinstance(exc, (pw.IntegrityError, pw.DataError))


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Base(pw.Model):
    """Models declare `<fk>_id: int` annotations: peewee provides those column values,
    and the annotations let the type checker see them."""

    id = pw.AutoField()

    class Meta:
        database = database


class Merchant(Base):
    name = pw.CharField(unique=True)
    api_key = pw.CharField(unique=True)
    alert_email = pw.CharField()


class Ingredient(Base):
    merchant_id: int
    merchant = pw.ForeignKeyField(Merchant, backref="ingredients")
    name = pw.CharField()
    stock = pw.BigIntegerField()  # grams
    full_stock = pw.BigIntegerField()  # grams: 100% for the threshold
    alert_armed = pw.BooleanField(default=True)

    class Meta:
        indexes = ((("merchant", "name"), True),)


class Product(Base):
    merchant_id: int
    merchant = pw.ForeignKeyField(Merchant, backref="products")
    name = pw.CharField()

    class Meta:
        indexes = ((("merchant", "name"), True),)


class RecipeLine(Base):
    product_id: int
    ingredient_id: int
    product = pw.ForeignKeyField(Product, backref="recipe")
    ingredient = pw.ForeignKeyField(Ingredient)
    grams = pw.IntegerField()  # per unit of product

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

    class Meta:
        table_name = "orders"
        indexes = ((("merchant", "idempotency_key"), True),)


class OrderLine(Base):
    order_id: int
    product_id: int
    order = pw.ForeignKeyField(Order, backref="lines", on_delete="CASCADE")
    product = pw.ForeignKeyField(Product)
    quantity = pw.IntegerField()

    class Meta:
        table_name = "order_lines"


class Outbox(Base):
    """Events written in the same transaction as the change they announce."""

    topic = pw.CharField()
    key = pw.CharField(null=True)
    payload = pw.TextField()  # JSON
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True, index=True)


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
    redrives = pw.IntegerField(default=0)  # times NOTIFY was queued again (bounded)


class Notification(Base):
    """An alert email to send: one row per alert, so a redelivered NOTIFY sends nothing."""

    dedup_key = pw.CharField(unique=True)  # "alert-<id>", or where it was read (kafka.source)
    alert = pw.ForeignKeyField(Alert, null=True)
    ingredient_id = pw.IntegerField()
    email = pw.CharField()
    subject = pw.CharField()
    body = pw.TextField()
    message_id = pw.CharField()
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True, index=True)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow)
    # A sender owns the row until then, so two senders never mail the same alert.
    claimed_until = pw.DateTimeField(null=True)
    # A mail that can never be sent (refused address, permanent 5xx): never tried again;
    # the reason is in last_error.
    failed_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)


class DatabaseId(Base):
    """One row: a random id made when the tables are, so that names Kitchen gives out
    (Message-IDs, mail files) never repeat those of an earlier database (a reset, another
    deployment), where ids start at 1 again."""

    value = pw.CharField()


TABLES: list[type[Base]] = [
    DatabaseId,
    Merchant,
    Ingredient,
    Product,
    RecipeLine,
    Order,
    OrderLine,
    Outbox,
    Alert,
    Notification,
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
    raise ValueError(f"unsupported database url {url!r}: use sqlite:/// or postgresql://")


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


def create_tables() -> None:
    """Create the tables that are missing, and add the columns that are missing from
    tables made by an older Kitchen (each has a default or may be null); nothing else
    is ever altered."""
    with session():
        database.create_tables(TABLES, safe=True)
        migrator = SchemaMigrator.from_database(database.obj)
        for model in TABLES:
            table = model._meta.table_name
            have = {c.name for c in database.get_columns(table)}
            missing = [f for f in model._meta.sorted_fields if f.column_name not in have]
            if missing:
                migrate(*(migrator.add_column(table, f.column_name, f) for f in missing))
        # Several processes may start at once: the first insert wins, the others keep it.
        DatabaseId.insert(id=1, value=secrets.token_hex(8)).on_conflict_ignore().execute()


def database_id() -> str:
    """This database's random id (see DatabaseId)."""
    return str(DatabaseId.get_by_id(1).value)


def ping() -> None:
    """Raise a peewee DatabaseError unless the database answers."""
    with session():
        database.execute_sql("SELECT 1")


def ensure_default_merchant(alert_email: str) -> Merchant:
    """The one merchant of today; its alert email follows the settings."""
    merchant, created = Merchant.get_or_create(
        name="default", defaults={"api_key": "default", "alert_email": alert_email}
    )
    if not created and merchant.alert_email != alert_email:
        merchant.alert_email = alert_email
        merchant.save()
    return merchant


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
