"""PostgreSQL tables partitioned by merchant: the one place for their DDL.

On PostgreSQL the tables that grow with orders are declaratively partitioned by a hash
of `merchant_id`, so that a query naming the merchant reads one partition, and each
partition is a table of its own to vacuum, index and (on a distributed PostgreSQL such
as Citus) place on another node (docs/scaling.md). SQLite keeps plain tables: the code
above the database reads and writes the same columns either way.

Partitioning requires the partition key in every primary and unique key, so these
tables have PRIMARY KEY (merchant_id, id) and unique keys that start with merchant_id.
Ids stay unique across merchants, drawn from one (64-bit) sequence per table, which is
why peewee can keep `id` as the model's primary key. A foreign key to a partitioned table names
(merchant_id, id): a row can only point at a row of its own merchant.

The number of partitions is fixed when a table is created: rows are spread by
hash(merchant_id) modulo that number, and changing it would mean moving every row.
"""

from __future__ import annotations

import logging

import peewee as pw

from kitchen.db import database
from kitchen.models import (
    Alert,
    Base,
    LedgerEntry,
    Notification,
    Order,
    OrderLine,
    Outbox,
    Payment,
    PaymentEvent,
    Refund,
    SalesHour,
    UsageHour,
)
from kitchen.settings import Database

log = logging.getLogger(__name__)

DEFAULT = Database().partitions  # the setting's default

# The type of every id, as BIGSERIAL makes it for the other tables (32-bit until issue 16).
ID_TYPE = "BIGINT"

# Each before the tables whose foreign keys name it.
PARTITIONED: list[type[Base]] = [
    Order,
    OrderLine,
    Alert,
    Notification,
    LedgerEntry,
    Outbox,
    Payment,
    Refund,
    PaymentEvent,
    UsageHour,
    SalesHour,
]


def enabled() -> bool:
    """Partitioned tables exist only on PostgreSQL."""
    return isinstance(database.obj, pw.PostgresqlDatabase)


def create(model: type[Base], partitions: int) -> None:
    """Create `model`'s table partitioned by merchant into `partitions` hash partitions,
    with its indexes and a new id sequence."""
    sequence = f'"{model._meta.table_name}_id_seq"'
    database.execute_sql(f"CREATE SEQUENCE {sequence}")
    _create_table(model, partitions, sequence)
    create_indexes(model)


def _create_table(model: type[Base], partitions: int, sequence: str) -> None:
    """The table and its partitions; its ids come from `sequence`, which it then owns."""
    table = model._meta.table_name
    columns = [
        f"\"id\" {ID_TYPE} NOT NULL DEFAULT nextval('{sequence}'::regclass)",
        *(_column(f) for f in model._meta.sorted_fields if not f.primary_key),
        # Named as PostgreSQL would: the name an unpartitioned table's key had.
        f'CONSTRAINT "{table}_pkey" PRIMARY KEY ("merchant_id", "id")',
        *(_foreign_key(f) for f in model._meta.sorted_fields if _constrained(f)),
    ]
    database.execute_sql(
        f'CREATE TABLE "{table}" ({", ".join(columns)}) PARTITION BY HASH ("merchant_id")'
    )
    for n in range(partitions):
        database.execute_sql(
            f'CREATE TABLE "{table}_p{n}" PARTITION OF "{table}" '
            f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {n})"
        )
    # Dropped with the table, and what pg_get_serial_sequence finds.
    database.execute_sql(f'ALTER SEQUENCE {sequence} OWNED BY "{table}"."id"')


def create_indexes(model: type[Base]) -> None:
    """peewee's indexes of `model`, but not one on merchant_id alone: the primary key
    (merchant_id, id) serves that, and each index is paid for on every insert."""
    for index in model._meta.fields_to_index():
        if [f.name for f in index._expressions] == ["merchant"]:
            continue
        statement = model._schema._create_index(index)  # type: ignore[attr-defined]
        database.execute_sql(*database.get_sql_context().sql(statement).query())


def _column(field: pw.Field) -> str:
    """A column as peewee defines it (type, NOT NULL), without its foreign key, which
    `_foreign_key` writes: one to a partitioned table must name the merchant too."""
    sql, params = database.get_sql_context().sql(field.ddl(database.get_sql_context())).query()
    assert not params, sql
    return str(sql)


def _constrained(field: pw.Field) -> bool:
    """A foreign key with its constraint (not one of models.unconstrained's)."""
    return isinstance(field, pw.ForeignKeyField) and not field.deferred


def _foreign_key(field: pw.ForeignKeyField) -> str:
    target = field.rel_model._meta.table_name
    columns, keys = f'"{field.column_name}"', '"id"'
    if field.rel_model in PARTITIONED:
        columns, keys = f'"merchant_id", {columns}', f'"merchant_id", {keys}'
    on_delete = f" ON DELETE {field.on_delete}" if field.on_delete else ""
    return f'FOREIGN KEY ({columns}) REFERENCES "{target}" ({keys}){on_delete}'


def count(model: type[Base]) -> int:
    """How many partitions `model`'s table has (0: not partitioned)."""
    cursor = database.execute_sql(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass(%s)",
        (f'"{model._meta.table_name}"',),
    )
    return int(cursor.fetchone()[0])


def convert(partitions: int) -> None:
    """Partition tables made by an earlier release, in place, in the caller's transaction.

    Each old table is renamed aside, its rows copied into the new partitioned table of
    the same name, then dropped. The new table takes over the old one's id sequence, so
    ids go on from where they were and never repeat. Only these tables name each other
    in foreign keys, so the old ones are dropped together, and the indexes made after
    that, under the names the old ones had.
    """
    _replace(partitions, "unpartitioned")


def rebuild_64bit() -> None:
    """Make the partitioned tables again with today's 64-bit columns, when an earlier
    release made them with a 32-bit `merchant_id` (migration 0008).

    PostgreSQL cannot change the type of a partition key's column in place, so the
    tables are replaced as `convert` replaces plain ones: same partition count, same rows,
    ids going on from the same sequences. A no-op where they are 64-bit already.
    """
    cursor = database.execute_sql(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = %s AND column_name = 'merchant_id'",
        (Order._meta.table_name,),
    )
    row = cursor.fetchone()
    if count(Order) and row is not None and row[0] == "integer":
        _replace(count(Order), "32bit")


def _replace(partitions: int, suffix: str) -> None:
    """Replace each table of PARTITIONED (plain or partitioned) by a new partitioned one
    of `partitions` partitions holding its rows (see `convert`). The old table, its
    partitions and their key indexes are renamed with `suffix` first, so that the new
    ones can take their names; rows are copied in the columns both have."""
    aside: dict[type[Base], str] = {}
    sequences: dict[type[Base], str] = {}
    for model in PARTITIONED:
        table = model._meta.table_name
        cursor = database.execute_sql("SELECT pg_get_serial_sequence(%s, 'id')", (f'"{table}"',))
        sequences[model] = str(cursor.fetchone()[0])
        aside[model] = f"{table}_{suffix}"
        old_partitions = [
            str(name)
            for (name,) in database.execute_sql(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass(%s)",
                (f'"{table}"',),
            ).fetchall()
        ]
        database.execute_sql(f'ALTER TABLE "{table}" RENAME TO "{aside[model]}"')
        # Its primary key's index would take the name the new table's wants.
        database.execute_sql(f'ALTER INDEX "{table}_pkey" RENAME TO "{aside[model]}_pkey"')
        for name in old_partitions:
            renamed = aside[model] + name[len(table) :]
            database.execute_sql(f'ALTER TABLE "{name}" RENAME TO "{renamed}"')
            database.execute_sql(f'ALTER INDEX "{name}_pkey" RENAME TO "{renamed}_pkey"')
    for model in PARTITIONED:
        _create_table(model, partitions, sequences[model])
        had = {c.name for c in database.get_columns(aside[model])}
        columns = ", ".join(
            f'"{f.column_name}"' for f in model._meta.sorted_fields if f.column_name in had
        )
        database.execute_sql(
            f'INSERT INTO "{model._meta.table_name}" ({columns}) '
            f'SELECT {columns} FROM "{aside[model]}"'
        )
    old = ", ".join(f'"{table}"' for table in aside.values())
    database.execute_sql(f"DROP TABLE {old}")
    for model in PARTITIONED:
        create_indexes(model)
        # New tables have no statistics until autovacuum gets to them, and meanwhile the
        # planner can take a per-merchant scan of the whole index for a few rows
        # (processing ran at half speed so, measured).
        database.execute_sql(f'ANALYZE "{model._meta.table_name}"')


def check(partitions: int) -> None:
    """Log a warning when the setting asks for another count than the tables have: it
    counts only when they are created."""
    existing = count(Order)
    if existing and existing != partitions:
        log.warning(
            "database.partitions is %d but the tables have %d partitions: the setting "
            "counts only when the tables are created, so it is not used",
            partitions,
            existing,
        )
