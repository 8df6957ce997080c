"""Schema migrations: a database made by an earlier release is upgraded in place at start.

`upgrade()` creates the tables that are missing (a new database gets the newest schema at
once; on PostgreSQL the growing tables partitioned by merchant), then applies, in order,
each migration of `history()` that the database has not recorded, and records it, each
in its own transaction. Two processes starting at once
take turns (an advisory lock on PostgreSQL; SQLite's write lock), so each migration runs
once. A migration is append-only history: never edit or reorder one that has shipped.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

import peewee as pw
from playhouse.migrate import SchemaMigrator, SqliteMigrator, migrate

from kitchen import partitioning
from kitchen.db import database, session, transaction, utcnow
from kitchen.merchants import hash_key
from kitchen.models import (
    TABLES,
    Alert,
    ApiKey,
    DatabaseId,
    Ingredient,
    LedgerEntry,
    Merchant,
    Notification,
    Order,
    Outbox,
    Product,
    SalesHour,
    SchemaMigration,
    UsageHour,
)

log = logging.getLogger(__name__)

Migration = Callable[[SchemaMigrator], None]


def _outbox_refs_and_claims(m: SchemaMigrator) -> None:
    """Issue 8: re-drive skips events still in the outbox; relays claim their rows."""
    migrate(
        m.add_column("outbox", "ref_id", Outbox.ref_id),
        m.add_column("outbox", "claimed_until", Outbox.claimed_until),
        m.add_column("outbox", "claimed_by", Outbox.claimed_by),
    )


def _drop_indexes(m: SchemaMigrator, table: str, columns: list[str]) -> list[Any]:
    """Drop the indexes on exactly these columns, whatever they were named."""
    return [
        m.drop_index(table, index.name)
        for index in database.get_indexes(table)
        if list(index.columns) == columns
    ]


def _merchants_menu_and_ledger(m: SchemaMigrator) -> None:
    """Issue 9: hashed API keys, thresholds per merchant and ingredient, deleted products,
    and the ledger, whose first row for an existing ingredient is its stock."""
    migrate(
        # The column as this release made it (migration 0007 moves keys to their own table).
        m.add_column("merchant", "key_hash", pw.CharField(unique=True, null=True)),
        m.add_column("merchant", "threshold", Merchant.threshold),
        m.add_column("ingredient", "threshold", Ingredient.threshold),
        m.add_column("product", "deleted_at", Product.deleted_at),
    )
    # Keys were stored in clear: keep them working, stored as their hash from now on.
    # (Including the default merchant's fixed word "default", which was no secret:
    # migration 0006 takes that one away.)
    merchant = pw.Table("merchant")
    for merchant_id, key in database.execute_sql("SELECT id, api_key FROM merchant"):
        update = merchant.update({merchant.c.key_hash: hash_key(key)})
        update.where(merchant.c.id == merchant_id).execute(database)
    migrate(
        *_drop_indexes(m, "merchant", ["api_key"]),
        m.drop_column("merchant", "api_key"),
        # Names were unique among all products; now among those not deleted.
        *_drop_indexes(m, "product", ["merchant_id", "name"]),
    )
    Product._schema.create_indexes(safe=True)  # type: ignore[attr-defined]
    LedgerEntry.insert_from(
        Ingredient.select(
            Ingredient.merchant,
            Ingredient.id,
            Ingredient.stock,
            pw.Value(LedgerEntry.INITIAL),
            Ingredient.stock,
            pw.Value(utcnow()),
        ),
        [
            LedgerEntry.merchant,
            LedgerEntry.ingredient,
            LedgerEntry.grams,
            LedgerEntry.reason,
            LedgerEntry.stock_after,
            LedgerEntry.created_at,
        ],
    ).execute()


def _failed_mails_and_bounded_redrives(m: SchemaMigrator) -> None:
    """Issue 8: a mail that can never be sent ends as failed; alert re-drives are bounded."""
    migrate(m.add_column("notification", "failed_at", Notification.failed_at))
    # NOT NULL with a default in one statement, which both databases take as it is (peewee
    # would rebuild the table on SQLite, and the tables naming alerts forbid dropping it).
    database.execute_sql('ALTER TABLE "alert" ADD COLUMN "redrives" INTEGER NOT NULL DEFAULT 0')


def _ledger_without_foreign_keys(m: SchemaMigrator) -> None:
    """Issue 11: the ledger's foreign keys cost PostgreSQL's processing nearly half its
    speed (see models.LedgerEntry). SQLite keeps those of a database made before: dropping one
    there means rebuilding the table, for a development database whose checks are cheap
    in-process lookups."""
    if isinstance(m, SqliteMigrator):
        return
    migrate(
        *(
            m.drop_foreign_key_constraint("ledger", fk.column)
            for fk in database.get_foreign_keys("ledger")
        )
    )


# Each table that lacked merchant_id, and the merchant of each of its rows: an order's
# line is its order's; an outbox row's is its Kafka key (every writer keyed it so); a
# notification's is its alert's or, for a bare NOTIFY, its ingredient's.
MERCHANT_OF = {
    "order_lines": "SELECT merchant_id FROM orders WHERE orders.id = order_lines.order_id",
    "outbox": "SELECT CAST(outbox.key AS INTEGER)",
    "notification": (
        "SELECT COALESCE("
        "(SELECT merchant_id FROM alert WHERE alert.id = notification.alert_id), "
        "(SELECT merchant_id FROM ingredient WHERE ingredient.id = notification.ingredient_id))"
    ),
}


def _partitioned_by_merchant(m: SchemaMigrator, partitions: int) -> None:
    """Issue 12: every growing table names its merchant; on PostgreSQL they are
    partitioned by it, and a notification's key is unique per merchant."""
    for table, merchant_of in MERCHANT_OF.items():
        database.execute_sql(
            f'ALTER TABLE "{table}" ADD COLUMN "merchant_id" INTEGER REFERENCES "merchant" ("id")'
        )
        database.execute_sql(f'UPDATE "{table}" SET "merchant_id" = ({merchant_of})')
    if partitioning.enabled():
        partitioning.convert(partitions)  # new tables: NOT NULL, new keys and indexes
        return
    # SQLite keeps these plain tables. NOT NULL makes peewee rebuild each one, which is
    # safe here: no other table names these three.
    migrate(*(m.add_not_null(table, "merchant_id") for table in MERCHANT_OF))
    migrate(*_drop_indexes(m, "notification", ["dedup_key"]))
    Notification._schema.create_indexes(safe=True)  # type: ignore[attr-defined]


# What the release before issue 9 stored as the default merchant's key: a fixed word,
# which migration 0002 hashed in place as if it were a secret.
OLD_DEFAULT_KEY = "default"
DEFAULT_INDEX = "merchant_one_default"  # models.Merchant's index: at most one default


def _default_merchant_mended(m: SchemaMigrator) -> None:
    """Issue 16: the default merchant is marked as such (it was found by its name, so
    renaming it made a new one at the next start); the old release's fixed key "default"
    stops working; merchant names need not be unique."""
    kind = "BOOLEAN" if isinstance(database.obj, pw.PostgresqlDatabase) else "INTEGER"
    database.execute_sql(
        f'ALTER TABLE "merchant" ADD COLUMN "is_default" {kind} NOT NULL DEFAULT FALSE'
    )
    merchant = pw.Table("merchant")
    # Kitchen made the default merchant at its first start, before any other (`merchant
    # create` opens the database first too): the oldest merchant is the default, even if
    # it was renamed (and another named "default" was made at the next start).
    oldest = merchant.select(pw.fn.MIN(merchant.c.id))
    merchant.update({merchant.c.is_default: True}).where(merchant.c.id == oldest).execute(database)
    # The well-known word was hashed in place as if it were a key: that merchant has no
    # key now, until an operator makes one.
    weak = merchant.c.key_hash == hash_key(OLD_DEFAULT_KEY)
    ids = [row["id"] for row in merchant.select(merchant.c.id).where(weak).execute(database)]
    if ids:
        merchant.update({merchant.c.key_hash: None}).where(weak).execute(database)
        log.warning(
            "merchant %s: the fixed key of an old release no longer works; make a key with "
            "`python app.py merchant rotate-key ID` or `merchant key add ID --name NAME`",
            ", ".join(map(str, ids)),
        )
    migrate(*_drop_indexes(m, "merchant", ["name"]))
    [one_default] = [i for i in Merchant._meta.fields_to_index() if i._name == DEFAULT_INDEX]
    statement = Merchant._schema._create_index(one_default)  # type: ignore[attr-defined]
    database.execute_sql(*database.get_sql_context().sql(statement).query())


def _named_keys(m: SchemaMigrator) -> None:
    """Issue 24: a merchant has named keys. Its one key so far becomes its key named
    "primary" (and keeps working); an order records the name of the key that placed it."""
    merchant = pw.Table("merchant")
    ApiKey.insert_from(
        merchant.select(
            merchant.c.id, pw.Value(ApiKey.PRIMARY), merchant.c.key_hash, pw.Value(utcnow())
        ).where(merchant.c.key_hash.is_null(False)),
        [ApiKey.merchant, ApiKey.name, ApiKey.key_hash, ApiKey.created_at],
    ).execute()
    migrate(*_drop_indexes(m, "merchant", ["key_hash"]), m.drop_column("merchant", "key_hash"))
    # On PostgreSQL, 0005 in the same upgrade made the orders table anew, with the column.
    if "key_name" not in {c.name for c in database.get_columns("orders")}:
        migrate(m.add_column("orders", "key_name", pw.CharField(null=True)))


def _64bit_ids(m: SchemaMigrator) -> None:
    """Issue 16: every integer column and id sequence becomes 64-bit on PostgreSQL (ids,
    foreign keys, grams, quantities, counters), as a new database has them (models.Base).
    SQLite's integers are 64-bit already.

    Found in the catalogue rather than listed, so that it converts whatever tables exist
    at this point, those of migrations before it included. A partitioned table is
    converted on its parent, which converts its partitions; those partitioned by a 32-bit
    merchant_id are made again (see partitioning.rebuild_64bit). Each table is rewritten
    once (all its columns in one ALTER TABLE), holding its lock meanwhile: on a large
    database the upgrade takes as long as copying the tables.
    """
    if isinstance(m, SqliteMigrator):
        return
    # PostgreSQL cannot change a partition key's type in place: those tables are made
    # again (partitioning.rebuild_64bit); the ALTERs below then find nothing left in them.
    partitioning.rebuild_64bit()
    columns = database.execute_sql(
        """
        SELECT c.table_name, c.column_name
        FROM information_schema.columns c
        JOIN pg_class k
          ON k.oid = to_regclass(quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))
        WHERE c.table_schema = current_schema() AND c.data_type = 'integer'
          AND k.relkind IN ('r', 'p') AND NOT k.relispartition
        ORDER BY c.table_name, c.ordinal_position
        """
    ).fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in columns:
        tables.setdefault(table, []).append(column)
    for table, names in tables.items():
        changes = ", ".join(f'ALTER COLUMN "{c}" TYPE BIGINT' for c in names)
        database.execute_sql(f'ALTER TABLE "{table}" {changes}')
        # A new column type drops the column's statistics (see partitioning._replace).
        database.execute_sql(f'ANALYZE "{table}"')
    sequences = database.execute_sql(
        "SELECT sequence_name FROM information_schema.sequences "
        "WHERE sequence_schema = current_schema() AND data_type = 'integer'"
    ).fetchall()
    for (sequence,) in sequences:
        # Its maximum was integer's, so it becomes bigint's; the next value is unchanged.
        database.execute_sql(f'ALTER SEQUENCE "{sequence}" AS BIGINT')


def _payments(m: SchemaMigrator) -> None:
    """Issue 18: merchants may require payments, in a currency; products have prices.
    (The payment tables are new: `upgrade` creates them.)"""
    # In SQL rather than peewee's add_column, which makes a NOT NULL column on SQLite by
    # rebuilding the table: other tables name merchant in foreign keys.
    database.execute_sql(
        """ALTER TABLE "merchant" ADD COLUMN "payments" VARCHAR(255) NOT NULL DEFAULT 'off'"""
    )
    database.execute_sql(
        """ALTER TABLE "merchant" ADD COLUMN "currency" VARCHAR(255) NOT NULL DEFAULT 'EUR'"""
    )
    migrate(m.add_column("product", "price", Product.price))


def _units_and_causes(m: SchemaMigrator) -> None:
    """Issue 19: ingredients have a unit (what existed was grams); ledger rows say which
    key made them; alerts say what caused them and what resolved them. An earlier
    migration that made a table from today's model (0002's ledger, 0005's partitioned
    tables) made these columns already: only missing ones are added."""

    def missing(table: str, *fields: pw.Field) -> list[Any]:
        return [m.add_column(table, f.column_name, f) for f in _missing(table, *fields)]

    if "unit" not in {c.name for c in database.get_columns("ingredient")}:
        # In SQL, as in 0009: a NOT NULL column without a table rebuild on SQLite.
        database.execute_sql(
            """ALTER TABLE "ingredient" ADD COLUMN "unit" VARCHAR(255) NOT NULL DEFAULT 'g'"""
        )
    migrate(
        *missing("ledger", LedgerEntry.key_name),
        *missing("alert", Alert.cause, Alert.resolved_at, Alert.resolved_by),
    )
    # An alert made before is resolved already if its ingredient re-armed since: it is
    # armed now, or a later alert of it exists (only a re-arm lets it cross again). When
    # and by what are not known: resolved at the upgrade, by null. The others stay open,
    # for the next re-arm to resolve (`alerts.resolve`).
    newer = (
        'SELECT 1 FROM "alert" AS "newer" WHERE "newer"."ingredient_id" = '
        '"alert"."ingredient_id" AND "newer"."id" > "alert"."id"'
    )
    armed = Ingredient.select(Ingredient.id).where(Ingredient.alert_armed)
    Alert.update(resolved_at=utcnow()).where(
        Alert.resolved_at.is_null() & (Alert.ingredient.in_(armed) | pw.SQL(f"EXISTS ({newer})"))
    ).execute()


def _missing(table: str, *fields: pw.Field) -> list[pw.Field]:
    """Those of `fields` that `table` has no column for yet: a table that an earlier
    migration (or `upgrade`) made from today's model has them all already."""
    have = {c.name for c in database.get_columns(table)}
    return [f for f in fields if f.column_name not in have]


def _forecasts_and_digests(m: SchemaMigrator) -> None:
    """Issue 20: ingredients have a lead time and a pack size; merchants a digest hour
    and a time zone; alerts keep the forecast they were raised with; a mail may be about
    no one ingredient (a digest). The hourly sums (usage_hour, sales_hour: new tables,
    which `upgrade` made) are filled from the ledger and the applied orders."""
    # NOT NULL columns with a default, in SQL (as 0009): no table rebuild on SQLite.
    for table, field, ddl in (
        ("ingredient", Ingredient.lead_time_days, "BIGINT NOT NULL DEFAULT 2"),
        ("merchant", Merchant.timezone, "VARCHAR(255) NOT NULL DEFAULT 'UTC'"),
    ):
        if _missing(table, field):
            database.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{field.column_name}" {ddl}')
    optional = (
        ("ingredient", Ingredient.pack_size),
        ("merchant", Merchant.digest_hour),
        ("merchant", Merchant.digest_since),
        ("alert", Alert.forecast),
    )
    migrate(*(m.add_column(t, f.column_name, f) for t, f in optional if _missing(t, f)))
    if any(c.name == "ingredient_id" and not c.null for c in database.get_columns("notification")):
        migrate(m.drop_not_null("notification", "ingredient_id"))
    hour = _hour_sql()
    UsageHour.delete().execute()  # (empty; `upgrade` made it) so that a rerun adds nothing
    database.execute_sql(
        'INSERT INTO "usage_hour" ("merchant_id", "ingredient_id", "hour", "reason", '
        '"amount", "entries") '
        f'SELECT "merchant_id", "ingredient_id", {hour.format("created_at")}, "reason", '
        'SUM("grams"), COUNT(*) FROM "ledger" GROUP BY 1, 2, 3, 4'
    )
    SalesHour.delete().execute()
    database.execute_sql(
        'INSERT INTO "sales_hour" ("merchant_id", "product_id", "hour", "orders", "quantity") '
        f'SELECT o."merchant_id", l."product_id", {hour.format("o.processed_at")}, '
        'COUNT(DISTINCT o."id"), SUM(l."quantity") FROM "orders" AS o '
        'JOIN "order_lines" AS l ON l."order_id" = o."id" AND l."merchant_id" = o."merchant_id" '
        'WHERE o."status" = \'applied\' AND o."processed_at" IS NOT NULL GROUP BY 1, 2, 3'
    )


def _hour_sql() -> str:
    """SQL that truncates the timestamp column `{}` to its hour, as usage.hour_of does."""
    if isinstance(database.obj, pw.PostgresqlDatabase):
        return "date_trunc('hour', {})"
    return "strftime('%Y-%m-%d %H:00:00', {})"


def _partial_idempotency_index(m: SchemaMigrator) -> None:
    """Issue 21: the (merchant, Idempotency-Key) index leaves out the orders without a key
    (models.Order says why)."""
    [index] = [
        i
        for i in Order._meta.fields_to_index()
        if [f.name for f in i._expressions] == ["merchant", "idempotency_key"]
    ]
    # The full index has the partial one's name (peewee's, from table and columns);
    # PostgreSQL's catalogue as peewee reads it does not list a partitioned table's indexes.
    database.execute_sql(f'DROP INDEX IF EXISTS "{index._name}"')
    migrate(*_drop_indexes(m, "orders", ["merchant_id", "idempotency_key"]))
    statement = Order._schema._create_index(index, safe=False)  # type: ignore[attr-defined]
    database.execute_sql(*database.get_sql_context().sql(statement).query())


def history(partitions: int) -> list[tuple[str, Migration]]:
    """(name, migration), oldest first. The schema of the first release (issue 4) is the
    base. `partitions` is the setting, for the migration that partitions the tables."""
    return [
        ("0001_outbox_refs_and_claims", _outbox_refs_and_claims),
        ("0002_merchants_menu_and_ledger", _merchants_menu_and_ledger),
        ("0003_failed_mails_and_bounded_redrives", _failed_mails_and_bounded_redrives),
        ("0004_ledger_without_foreign_keys", _ledger_without_foreign_keys),
        ("0005_partitioned_by_merchant", lambda m: _partitioned_by_merchant(m, partitions)),
        ("0006_default_merchant_mended", _default_merchant_mended),
        ("0007_named_keys", _named_keys),
        ("0008_64bit_ids", _64bit_ids),
        ("0009_payments", _payments),
        ("0010_units_and_causes", _units_and_causes),
        ("0011_forecasts_and_digests", _forecasts_and_digests),
        ("0012_partial_idempotency_index", _partial_idempotency_index),
    ]


NAMES = [name for name, _ in history(partitioning.DEFAULT)]


def _lock() -> None:
    """Serialise concurrent upgrades; call inside the transaction."""
    if isinstance(database.obj, pw.PostgresqlDatabase):
        database.execute_sql("SELECT pg_advisory_xact_lock(hashtext('kitchen-migrations'))")


def upgrade(partitions: int = partitioning.DEFAULT) -> list[str]:
    """Bring the database to the newest schema; returns the migrations applied now.
    `partitions`: the `[database] partitions` setting (PostgreSQL only)."""
    applied_now: list[str] = []
    migrations = history(partitions)
    with transaction():
        _lock()
        fresh = not database.table_exists("orders")
        # Only tables that do not exist: "CREATE INDEX IF NOT EXISTS" on an old table would
        # name columns that only a migration adds (and SQLite would even take such a
        # name for a string and index a constant).
        missing = [t for t in TABLES if not database.table_exists(t._meta.table_name)]
        # Partitioned from the start on a new database. An older one's missing tables are
        # made plain, as its others are, and the migration that partitions them converts
        # them all at once.
        if partitioning.enabled() and (fresh or partitioning.count(Order)):
            database.create_tables([t for t in missing if t not in partitioning.PARTITIONED])
            # A table new in this release gets as many partitions as the others have.
            count = partitioning.count(Order) or partitions
            for table in partitioning.PARTITIONED:
                if table in missing:
                    partitioning.create(table, count)
        else:
            database.create_tables(missing)
        if fresh:
            # Created at the newest schema: every migration is already in it.
            for name, _ in migrations:
                SchemaMigration.create(name=name)
        # This database's random id, made once (see models.DatabaseId).
        DatabaseId.insert(id=1, value=secrets.token_hex(8)).on_conflict_ignore().execute()
    with session():
        done = {row.name for row in SchemaMigration.select()}
    for name, operations in migrations:
        if name in done:
            continue
        with transaction():
            _lock()
            if SchemaMigration.get_or_none(SchemaMigration.name == name) is not None:
                continue  # another process applied it meanwhile
            operations(SchemaMigrator.from_database(database.obj))
            SchemaMigration.create(name=name)
        log.info("database upgraded: %s", name)
        applied_now.append(name)
    if partitioning.enabled():
        with session():
            partitioning.check(partitions)
    return applied_now
