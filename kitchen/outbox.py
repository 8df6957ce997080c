"""Transactional outbox: events are rows written with the change they announce, and the
relay role publishes them to Kafka, marking each row sent only once Kafka confirmed it.

A crash between the send and the mark publishes a row twice; every consumer is
idempotent, so that costs nothing. Losing a row is what this module exists to prevent.
Several relays may run: each claims the rows it sends (a lease in the row, taken with
`FOR UPDATE SKIP LOCKED` on PostgreSQL), so no two relays send the same row.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from typing import Any, NamedTuple, Protocol

import peewee as pw

from kitchen import metrics
from kitchen.background import Background
from kitchen.db import database, keyed, session, transaction, utcnow
from kitchen.kafka import Delivered, Publisher
from kitchen.models import Outbox

log = logging.getLogger(__name__)


class Event(Protocol):
    def encode(self) -> str: ...


def add(topic: str, event: Event, merchant_id: int, ref_id: int) -> None:
    """Queue an event about row `ref_id`; call inside the transaction that makes it true.

    Keyed by merchant: one merchant's events stay in order on one partition.
    """
    Outbox.create(
        merchant_id=merchant_id,
        topic=topic,
        key=str(merchant_id),
        payload=event.encode(),
        ref_id=ref_id,
    )


def unsent(topic: str, merchant_id: int) -> Any:
    """A subquery: the merchant's rows whose event on `topic` is still waiting in the
    outbox. A re-drive skips them: queuing the event again would only add a copy."""
    return Outbox.select(Outbox.ref_id).where(
        Outbox.merchant_id == merchant_id,
        Outbox.topic == topic,
        Outbox.sent_at.is_null(),
        Outbox.ref_id.is_null(False),
    )


def purge(keep: datetime.timedelta = datetime.timedelta(days=1)) -> int:
    """Sent rows are history; keep a day of them for inspection."""
    with session():
        return int(Outbox.delete().where(Outbox.sent_at < utcnow() - keep).execute())


def release_claims() -> int:
    """Void every relay's claim: only when no other relay can be running."""
    with session():
        return int(
            Outbox.update(claimed_until=None, claimed_by=None)
            .where(Outbox.sent_at.is_null(), Outbox.claimed_until.is_null(False))
            .execute()
        )


class Relay(Background):
    """Publishes unsent outbox rows in id order, in batches: produce all, then flush once."""

    # How long a relay owns the rows it claimed: longer than one pass can take (a flush of
    # at most 30 s). A relay that died mid-pass holds its rows that long, then another
    # relay (or itself, restarted) sends them.
    LEASE = datetime.timedelta(seconds=60)

    def __init__(self, publisher: Publisher, batch_size: int = 500) -> None:
        super().__init__("relay")
        self.publisher = publisher
        self.batch_size = batch_size
        self.name = f"relay-{uuid.uuid4().hex[:12]}"  # whose claim a row carries
        self.published = 0
        # (`failing` counts passes in a row that failed: an error, or Kafka refusing
        # every row.)
        # Rows produced and not yet answered for (row id -> merchant id), and the keys
        # (merchant id, row id) of those Kafka confirmed.
        self._inflight: dict[int, int] = {}
        self._delivered: list[tuple[int, int]] = []
        self._undelivered = 0
        for kind in metrics.RELAY_FAILURE_KINDS:  # each series from the start: 0, not absent
            metrics.relay_failure(kind, 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.publish_once() == 0:
                    self._wake.wait(0.2)
                    self._wake.clear()
            except Exception as exc:
                self.failing += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                metrics.relay_failure("pass")
                log.exception("relay failed; retrying")
                self._stop.wait(1.0)
        self.publisher.flush(10)

    def publish_once(self) -> int:
        """Claim a batch of unsent rows, send them, and mark those Kafka acknowledged.
        Returns how many rows were claimed."""
        rows = self._claim()
        for row in rows:
            self.publisher.publish(
                row.topic, row.key, row.payload, self._on_delivery(row.id, row.merchant_id)
            )
            # Only once publish() took it: a row it refused (queue full) is claimed again.
            self._inflight[row.id] = row.merchant_id
        self.publisher.flush(30)
        delivered, self._delivered = self._delivered, []
        undelivered, self._undelivered = self._undelivered, 0
        if delivered:
            with session():
                _mark_sent(delivered)
            self.published += len(delivered)
            metrics.outbox_published(len(delivered))
        if delivered or not (rows or self._inflight):
            self.failing = 0  # progress, or nothing to do
        elif undelivered:
            self.failing += 1  # Kafka refused or timed out every row it answered for
        return len(rows)

    def _claim(self) -> list[Claimed]:
        """Take the lease on up to `batch_size` unsent rows nobody else holds, in id order,
        and renew it on the rows still queued in librdkafka (broker down): those are not
        produced twice, and no other relay takes them meanwhile.

        One queue across merchants, on purpose: events go out in the order they were
        made, and one query (an index scan of each partition's unsent rows, merged by
        id) serves every merchant; a round of per-merchant claims would cost a query per
        merchant for a few rows each (docs/scaling.md).
        """
        if not self._inflight:
            # The usual pass, in one statement: claim and read in one round trip, no
            # model instances (py-spy, all roles in one process: building this pass's
            # SQL and rows in peewee cost the relay as much CPU per order as HTTP).
            return _claim_rows(self.name, self.batch_size, self.LEASE)
        now = utcnow()
        with transaction():
            query = (
                Outbox.select()
                .where(
                    Outbox.sent_at.is_null(),
                    Outbox.claimed_until.is_null()
                    | (Outbox.claimed_until < now)
                    | (Outbox.claimed_by == self.name),
                )
                .order_by(Outbox.id)
                .limit(self.batch_size)
            )
            if self._inflight:
                query = query.where(Outbox.id.not_in(list(self._inflight)))
            if isinstance(database.obj, pw.PostgresqlDatabase):
                # Rows another relay is claiming right now are skipped, not waited for.
                query = query.for_update(skip_locked=True)
            rows = list(query)
            mine = [(r.merchant_id, r.id) for r in rows]
            mine += [(merchant_id, i) for i, merchant_id in self._inflight.items()]
            if mine:
                Outbox.update(claimed_until=now + self.LEASE, claimed_by=self.name).where(
                    keyed(Outbox, mine), Outbox.sent_at.is_null()
                ).execute()
        return [Claimed(r.id, r.merchant_id, r.topic, r.key, r.payload) for r in rows]

    def _on_delivery(self, row_id: int, merchant_id: int) -> Delivered:
        def callback(error: str | None) -> None:
            self._inflight.pop(row_id, None)
            if error is None:
                self._delivered.append((merchant_id, row_id))
            else:
                self._undelivered += 1
                self.last_error = str(error)
                metrics.relay_failure("delivery")
                log.warning("outbox row %d not delivered (%s); will retry", row_id, error)

        return callback


class Claimed(NamedTuple):
    """An outbox row as the relay sends it (a tuple, no peewee instance: `_claim_rows`)."""

    id: int
    merchant_id: int
    topic: str
    key: str | None
    payload: str


_CLAIM = """
UPDATE outbox SET claimed_until = {p}, claimed_by = {p}
WHERE ({key}) IN (
    SELECT {key} FROM outbox
    WHERE sent_at IS NULL
      AND (claimed_until IS NULL OR claimed_until < {p} OR claimed_by = {p})
    ORDER BY id LIMIT {p} {lock}
)
RETURNING id, merchant_id, topic, key, payload
"""
# PostgreSQL: the (merchant_id, id) key of the partitioned table, and rows another relay
# is claiming right now are skipped, not waited for. SQLite: one writer at a time.
_CLAIM_PG = _CLAIM.format(p="%s", key="merchant_id, id", lock="FOR UPDATE SKIP LOCKED")
_CLAIM_SQLITE = _CLAIM.format(p="?", key="id", lock="")


def _claim_rows(relay: str, limit: int, lease: datetime.timedelta) -> list[Claimed]:
    """Take the lease on up to `limit` unsent rows nobody else holds, lowest ids first,
    and return them in id order: one UPDATE ... RETURNING, its own transaction."""
    now = utcnow()
    postgres = isinstance(database.obj, pw.PostgresqlDatabase)
    with transaction():
        cursor = database.execute_sql(
            _CLAIM_PG if postgres else _CLAIM_SQLITE, (now + lease, relay, now, relay, limit)
        )
        rows = sorted(cursor.fetchall())
    return [Claimed._make(row) for row in rows]


def _mark_sent(keys: list[tuple[int, int]]) -> None:
    """Mark the rows with these (merchant_id, id) keys sent: one statement, whose ids go as
    arrays (PostgreSQL) or one parameter each (SQLite), not built by peewee value by value."""
    now = utcnow()
    if isinstance(database.obj, pw.PostgresqlDatabase):
        database.execute_sql(
            "UPDATE outbox SET sent_at = %s, claimed_until = NULL"
            " WHERE (merchant_id, id) IN (SELECT * FROM unnest(%s::bigint[], %s::bigint[]))",
            (now, [m for m, _ in keys], [i for _, i in keys]),
        )
        return
    ids = [i for _, i in keys]
    with transaction():  # one write (and this process's writers take turns: db.transaction)
        for start in range(0, len(ids), 500):  # SQLite's limit on parameters, with room
            part = ids[start : start + 500]
            marks = ", ".join("?" * len(part))
            database.execute_sql(
                f"UPDATE outbox SET sent_at = ?, claimed_until = NULL WHERE id IN ({marks})",
                (now, *part),
            )
