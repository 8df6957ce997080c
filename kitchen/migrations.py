"""Schema migrations: a database made by an earlier release is upgraded in place at start.

`upgrade()` creates the tables that are missing (a new database gets the newest schema at
once), then applies, in order, each migration of `MIGRATIONS` that the database has not
recorded, and records it, each in its own transaction. Two processes starting at once
take turns (an advisory lock on PostgreSQL; SQLite's write lock), so each migration runs
once. A migration is append-only history: never edit or reorder one that has shipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate

from kitchen.db import TABLES, Outbox, SchemaMigration, database, session, transaction

log = logging.getLogger(__name__)

Operations = Callable[[SchemaMigrator], list[Any]]


def _outbox_refs_and_claims(m: SchemaMigrator) -> list[Any]:
    """Issue 8: re-drive skips events still in the outbox; relays claim their rows."""
    return [
        m.add_column("outbox", "ref_id", Outbox.ref_id),
        m.add_column("outbox", "claimed_until", Outbox.claimed_until),
        m.add_column("outbox", "claimed_by", Outbox.claimed_by),
    ]


# (name, operations), oldest first. The schema of the first release (issue 4) is the base.
MIGRATIONS: list[tuple[str, Operations]] = [
    ("0001_outbox_refs_and_claims", _outbox_refs_and_claims),
]


def _lock() -> None:
    """Serialise concurrent upgrades; call inside the transaction."""
    if isinstance(database.obj, pw.PostgresqlDatabase):
        database.execute_sql("SELECT pg_advisory_xact_lock(hashtext('kitchen-migrations'))")


def upgrade() -> list[str]:
    """Bring the database to the newest schema; returns the migrations applied now."""
    applied_now: list[str] = []
    with transaction():
        _lock()
        fresh = not database.table_exists("orders")
        # Only tables that do not exist: "CREATE INDEX IF NOT EXISTS" on an old table would
        # name columns that only a migration adds (and SQLite would even take such a
        # name for a string and index a constant).
        missing = [t for t in TABLES if not database.table_exists(t._meta.table_name)]
        database.create_tables(missing)
        if fresh:
            # Created at the newest schema: every migration is already in it.
            for name, _ in MIGRATIONS:
                SchemaMigration.create(name=name)
    with session():
        done = {row.name for row in SchemaMigration.select()}
    for name, operations in MIGRATIONS:
        if name in done:
            continue
        with transaction():
            _lock()
            if SchemaMigration.get_or_none(SchemaMigration.name == name) is not None:
                continue  # another process applied it meanwhile
            migrate(*operations(SchemaMigrator.from_database(database.obj)))
            SchemaMigration.create(name=name)
        log.info("database upgraded: %s", name)
        applied_now.append(name)
    return applied_now
