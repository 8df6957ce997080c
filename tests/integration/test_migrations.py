"""Upgrades keep data: a database of the previous release is upgraded in place."""

from __future__ import annotations

import json

import peewee as pw

from kitchen import catalogue, migrations
from kitchen.db import (
    Merchant,
    Order,
    Outbox,
    SchemaMigration,
    database,
    session,
    transaction,
    utcnow,
)


class OutboxBefore(pw.Model):
    """The outbox table as the release before issue 8 made it."""

    topic = pw.CharField()
    key = pw.CharField(null=True)
    payload = pw.TextField()
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True, index=True)

    class Meta:
        table_name = "outbox"


def make_previous_release_database(merchant_id: int) -> list[int]:
    """Turn this test's (newest) database into one the previous release made and filled:
    no migrations table, the old outbox, and some orders with their events."""
    with session():
        database.drop_tables([Outbox, SchemaMigration])
        with database.bind_ctx([OutboxBefore]):
            database.create_tables([OutboxBefore])
    catalogue.seed(merchant_id)
    ids = []
    with transaction(), database.bind_ctx([OutboxBefore]):
        for _ in range(3):
            order = Order.create(merchant=merchant_id)
            OutboxBefore.create(
                topic="order_created", key=str(merchant_id), payload=json.dumps({"id": order.id})
            )
            ids.append(order.id)
    return ids


def test_a_previous_release_database_is_upgraded_in_place(clean_database: str) -> None:
    with session():
        merchant_id = Merchant.create(name="default", api_key="k", alert_email="a@b.c").id
    ids = make_previous_release_database(merchant_id)
    with session():
        assert "ref_id" not in {c.name for c in database.get_columns("outbox")}

    assert migrations.upgrade() == ["0001_outbox_refs_and_claims"]
    assert migrations.upgrade() == []  # applied once, recorded

    with session():
        columns = {c.name for c in database.get_columns("outbox")}
        assert {"ref_id", "claimed_until", "claimed_by"} <= columns
        rows = list(Outbox.select().order_by(Outbox.id))
        assert [json.loads(r.payload)["id"] for r in rows] == ids
        assert all(r.sent_at is None and r.ref_id is None for r in rows)
        assert [o.id for o in Order.select().order_by(Order.id)] == ids
        assert [m.name for m in SchemaMigration.select()] == ["0001_outbox_refs_and_claims"]


def test_a_new_database_is_created_at_the_newest_schema(clean_database: str) -> None:
    # clean_database ran upgrade() on an empty database: every migration is recorded.
    with session():
        names = [m.name for m in SchemaMigration.select().order_by(SchemaMigration.id)]
    assert names == [name for name, _ in migrations.MIGRATIONS]
    assert migrations.upgrade() == []
