"""The database binding: the same code on SQLite and PostgreSQL.

The binding is one module-level handle, said plainly: `database` is a peewee proxy that
every model (models.py) is declared against (peewee binds models to a database at class
creation), and `bind(url)` points it at the real database, once per process. Everything
else is given what it needs by its constructor. Tests call `bind` themselves (see
conftest). Here too: units of work (`transaction`, `session`), row locks, and the bulk
writes (`bulk_insert`, COPY) that processing's speed rests on.
"""

from __future__ import annotations

import datetime
import io
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
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


def utcnow() -> datetime.datetime:
    """Now as every timestamp column stores it: UTC without a zone (SQLite has no zones)."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


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


def ping() -> None:
    """Raise a peewee DatabaseError unless the database answers."""
    with session():
        database.execute_sql("SELECT 1")


# SQLite has one writer at a time. Left to its busy handler, a writer that finds the
# lock taken sleeps and tries again (sleeps growing to 100 ms, no queue), so with intake,
# processing and the relay writing from one process one of them waited 0.3-0.8 s at a
# time and the all-in-one's end-to-end p99 at 1,000 orders/s was seconds (py-spy, bench/
# e2e.py). The writers of this process take turns on this lock instead, which hands it
# on the moment a transaction ends; SQLite's own lock still keeps other processes out.
# Reentrant: a transaction may open another (a savepoint) in the same thread.
_sqlite_writers = threading.RLock()
WRITER_WAIT_SECONDS = 15.0  # as long as SQLite's busy_timeout would have waited


class _SqliteWriterTurn(AbstractContextManager[None]):
    def __enter__(self) -> None:
        if not _sqlite_writers.acquire(timeout=WRITER_WAIT_SECONDS):
            raise pw.OperationalError("database is locked (another writer of this process)")

    def __exit__(self, *exc: object) -> None:
        _sqlite_writers.release()


@contextmanager
def transaction() -> Iterator[None]:
    """One unit of work: a pooled connection and one transaction, committed on exit."""
    turn = _SqliteWriterTurn() if isinstance(database.obj, pw.SqliteDatabase) else nullcontext()
    with turn, database.connection_context(), database.atomic():
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


def keyed(model: type[pw.Model], keys: Iterable[tuple[int, int]]) -> pw.Expression:
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


def as_datetime(value: datetime.datetime | str) -> datetime.datetime:
    """A DateTimeField's value as `tuples` returns it (SQLite's text, PostgreSQL's
    datetime) as a datetime: fromisoformat costs a tenth of peewee's conversion."""
    return value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(value)


def _copy_escape(text: str) -> str:
    """COPY's text format escapes a backslash, tab, newline or carriage return in a value.
    (`str.replace`, four passes in C, takes a tenth of the time of one `str.translate`
    with a table, which looks up each character in a dict: 2.5 ms for a batch's 500
    outbox payloads, measured.)"""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_text(field: pw.Field, value: Any) -> str:
    """One value as COPY's text format spells it; None is NULL."""
    value = field.db_value(value)
    if value is None:
        return "\\N"
    return _copy_escape(str(value))


def _copy_rows(fields: list[pw.Field], rows: list[tuple[Any, ...]]) -> str:
    """Rows in COPY's text format, converted a column at a time: a column of integers
    (most of a ledger row) by `str` alone; any other column value by distinct value,
    since values repeat down a column (a batch's time, a ledger reason). Converting every
    value was 40 % of a processing batch's Python time, and a Python call per value
    still a quarter of what is left (py-spy)."""
    columns: list[Iterable[str]] = []
    for field, column in zip(fields, zip(*rows, strict=True), strict=True):
        if all(type(v) is int for v in column):
            columns.append(map(str, column))
        else:
            texts = {v: _copy_text(field, v) for v in set(column)}
            columns.append(map(texts.__getitem__, column))
    return "".join(["\t".join(row) + "\n" for row in zip(*columns, strict=True)])


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
