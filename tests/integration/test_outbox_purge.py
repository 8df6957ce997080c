"""The relay role's hourly purge of the outbox: sent rows older than a day go, nothing
else does, in every merchant's partition on PostgreSQL."""

from __future__ import annotations

import datetime

from kitchen import outbox, partitioning
from kitchen.db import database, session, transaction, utcnow
from kitchen.models import Outbox
from tests.helpers import REAL_DATABASE

HOUR = datetime.timedelta(hours=1)
MERCHANTS = range(1, 13)  # spread over the partitions on PostgreSQL (4 by default)


def partitions_holding_rows() -> int:
    with session():
        cursor = database.execute_sql('SELECT DISTINCT tableoid FROM "outbox"')
        return len(cursor.fetchall())


def test_purge_deletes_only_rows_sent_more_than_a_day_ago(clean_database: str) -> None:
    now = utcnow()
    # What each kind of row looks like: (sent_at, claimed_until); all created 3 days ago.
    kinds = {
        "sent 2 days ago": (now - 48 * HOUR, None),
        "sent 25 hours ago": (now - 25 * HOUR, None),
        "sent 23 hours ago": (now - 23 * HOUR, None),
        "unsent": (None, None),
        "unsent, an old claim": (None, now - 48 * HOUR),
    }
    ids: dict[str, list[int]] = {kind: [] for kind in kinds}
    with transaction():
        for merchant_id in MERCHANTS:
            for kind, (sent_at, claimed_until) in kinds.items():
                row = Outbox.create(
                    merchant_id=merchant_id,
                    topic="order_created",
                    key=str(merchant_id),
                    payload="{}",
                    created_at=now - 72 * HOUR,
                    sent_at=sent_at,
                    claimed_until=claimed_until,
                    claimed_by="relay-dead" if claimed_until else None,
                )
                ids[kind].append(row.id)
    if REAL_DATABASE:
        with session():
            assert partitioning.count(Outbox) > 1
        assert partitions_holding_rows() > 1  # the purge has several partitions to reach

    assert outbox.purge() == 2 * len(MERCHANTS)
    with session():
        left = sorted(o.id for o in Outbox.select())
    kept = ids["sent 23 hours ago"] + ids["unsent"] + ids["unsent, an old claim"]
    assert left == sorted(kept)
    assert outbox.purge() == 0  # nothing more to purge

    # A shorter keep takes the recent sent rows too, and still no unsent one.
    assert outbox.purge(keep=HOUR) == len(MERCHANTS)
    with session():
        assert Outbox.select().where(Outbox.sent_at.is_null(False)).count() == 0
        assert Outbox.select().count() == 2 * len(MERCHANTS)
