"""Processing role: apply a batch of ORDER_CREATED events to the stock in one transaction.

Deltas are summed per ingredient and written once per batch. An order that is no longer
`pending` is skipped, so a redelivered or duplicated ORDER_CREATED changes nothing.
Rows are locked in order (orders by merchant then id, then ingredients by id) so that
several consumers never deadlock and never lose an update. Every order applied or
rejected is announced on `order_events` (ORDER_APPLIED / ORDER_REJECTED, for every
merchant: the payments role captures or voids on them), through the outbox in the
batch's transaction, in one insert for the batch.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import peewee as pw

from kitchen import alerts, db, domain, forecast, metrics, usage
from kitchen.db import among, as_datetime, bulk_insert, locked, transaction, tuples, utcnow
from kitchen.events import Handler, OrderCreated, OrderEvent, Received
from kitchen.inventory import ingredient_state
from kitchen.models import Alert, Ingredient, LedgerEntry, Merchant, Order, RecipeLine
from kitchen.orders import OUTBOX_FIELDS

log = logging.getLogger(__name__)


LEDGER_FIELDS: list[pw.Field] = [
    LedgerEntry.merchant,
    LedgerEntry.ingredient,
    LedgerEntry.grams,
    LedgerEntry.reason,
    LedgerEntry.order,
    LedgerEntry.stock_after,
    LedgerEntry.created_at,
]


@dataclass(frozen=True)
class BatchResult:
    applied: list[int]
    rejected: list[int]
    skipped: list[int]  # already processed: a redelivery
    unknown: list[int]  # no such order
    alerts: list[int]
    # rejected orders per reason class (domain.INSUFFICIENT_STOCK, ...), for the metrics
    rejected_by: dict[str, int] = dataclasses.field(default_factory=dict)


def apply_orders(
    order_ids: list[int],
    notify_topic: str,
    events_topic: str,
    threshold: Fraction,
    merchant_of: Mapping[int, int] | None = None,
    rules: forecast.Rules | None = None,
) -> BatchResult:
    """Apply the pending orders among `order_ids`, all in one transaction, with their
    ORDER_APPLIED / ORDER_REJECTED on `events_topic`. `merchant_of` names the merchant of
    the orders whose event said it (see `_lock_orders`); `rules`, the `[forecast]`
    settings, forecast the ingredients whose alert the batch raises."""
    ids = sorted(set(order_ids))
    with transaction():
        orders, lines = _lock_orders(ids, merchant_of or {})
        found = {order_id for order_id, _, _, _ in orders}
        pending = [(o, m) for o, m, status, _ in orders if status == Order.PENDING]
        skipped = [o for o, _, status, _ in orders if status != Order.PENDING]
        created = {o: at for o, _, status, at in orders if status == Order.PENDING}
        unknown = [i for i in ids if i not in found]
        if not pending:
            return BatchResult([], [], skipped, unknown, [])

        recipes = _recipes_of({line.product_id for ls in lines.values() for line in ls})
        merchants = {
            m.id: m for m in Merchant.select().where(Merchant.id.in_({m for _, m in pending}))
        }
        rows = _lock_ingredients({i for recipe in recipes.values() for i in recipe})
        state = {
            i: ingredient_state(row, merchants[row.merchant_id], threshold)
            for i, row in rows.items()
        }
        before = {i: (s.stock, s.armed) for i, s in state.items()}

        applied: list[int] = []
        rejected: list[int] = []
        raised: list[int] = []
        crossings: dict[int, list[tuple[Alert, int]]] = defaultdict(list)  # per merchant
        rejected_by: Counter[str] = Counter()
        notes: list[tuple[str, tuple[object, ...], dict[str, int]]] = []  # logged once committed
        ledger: list[tuple[object, ...]] = []
        used_sum: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])  # for usage
        events: list[tuple[object, ...]] = []  # the batch's order_events outbox rows
        now = utcnow()
        # (merchant, status, reason) -> the orders that end so: one UPDATE per group, not
        # peewee's bulk_update, whose CASE of 500 branches cost more to build than to run.
        outcomes: dict[tuple[int, str, str | None], list[int]] = defaultdict(list)
        for order_id, merchant_id in pending:
            outcome = domain.apply_order(lines[order_id], recipes, state)
            status = Order.APPLIED if outcome.applied else Order.REJECTED
            outcomes[(merchant_id, status, outcome.reason)].append(order_id)
            (applied if outcome.applied else rejected).append(order_id)
            payload = (
                OrderEvent.applied(order_id, merchant_id)
                if outcome.applied
                else OrderEvent(
                    OrderEvent.REJECTED, order_id, merchant_id, {"reason": outcome.reason}
                ).encode()
            )
            events.append((merchant_id, events_topic, str(merchant_id), payload, order_id, now))
            if not outcome.applied:
                rejected_by[outcome.reason_class or "other"] += 1
                notes.append(
                    (
                        "order %d rejected: %s",
                        (order_id, outcome.reason),
                        {"order_id": order_id, "merchant_id": merchant_id},
                    )
                )
            ledger += [
                (merchant_id, i, -grams, LedgerEntry.ORDER, order_id, state[i].stock, now)
                for i, grams in outcome.used.items()
            ]
            for i, grams in outcome.used.items():
                total = used_sum[(merchant_id, i)]
                total[0] -= grams
                total[1] += 1
            for ingredient_id in outcome.crossed:
                email = merchants[merchant_id].alert_email
                alert = alerts.raise_alert(
                    merchant_id,
                    state[ingredient_id],
                    email,
                    notify_topic,
                    order_id,
                    cause=LedgerEntry.ORDER,
                )
                raised.append(alert.id)
                crossings[merchant_id].append((alert, ingredient_id))
                notes.append(
                    (
                        "alert %d: %s fell to %d g, below its threshold",
                        (alert.id, state[ingredient_id].name, state[ingredient_id].stock),
                        {"alert_id": alert.id, "order_id": order_id, "merchant_id": merchant_id},
                    )
                )

        # A constant number of statements per batch, however many merchants it holds:
        # each statement's round trip and planning cost both processes and PostgreSQL
        # CPU, which share the machine (51 statements for a batch of 6 merchants before).
        bulk_insert(LEDGER_FIELDS, ledger)  # the batch's ledger rows in one statement
        bulk_insert(OUTBOX_FIELDS, events)  # and its order events in one more
        # Then the rest in one round trip: the orders' outcomes, the ledger's hourly sums
        # (the forecasts read them), the sales' sums, the summed delta of each ingredient.
        _send(
            _outcome_statements(outcomes, now)
            + _statement(
                usage.ledger_sums(
                    usage.Entry(m, i, LedgerEntry.ORDER, amount, now, entries)
                    for (m, i), (amount, entries) in used_sum.items()
                )
            )
            + _statement(usage.sales_sums(_sold(applied, pending, lines), now))
            + _stock_statements(
                [
                    (i, before[i][0] - s.stock, s.armed)
                    for i, s in state.items()
                    if before[i][0] != s.stock or s.armed != before[i][1]
                ]
            )
        )
        # Crossings are rare: only then a forecast, from the batch's end (its use counted
        # above, the stock it leaves), for the alert's email.
        for merchant_id, crossed in sorted(crossings.items()):
            for _, ingredient_id in crossed:
                rows[ingredient_id].stock = state[ingredient_id].stock
            alerts.attach_forecasts(
                merchants[merchant_id],
                [(alert, rows[i]) for alert, i in crossed],
                rules or forecast.Rules(),
                now.replace(tzinfo=datetime.UTC),
            )
    # Committed: how long each applied order waited since POST /order saved it.
    metrics.orders_applied_after([as_datetime(created[o]) for o in applied], utcnow())
    for message, args, about in notes:
        log.info(message, *args, extra=about)
    return BatchResult(applied, rejected, skipped, unknown, raised, dict(rejected_by))


# (id, merchant, status, created_at) of a locked order (created_at as the driver gives it)
LockedOrder = tuple[int, int, str, datetime.datetime | str]


def _postgres() -> bool:
    return isinstance(db.database.obj, pw.PostgresqlDatabase)


def _lock_orders(
    ids: list[int], merchant_of: Mapping[int, int]
) -> tuple[list[LockedOrder], dict[int, list[domain.Line]]]:
    """(id, merchant, status, created_at) of the orders among `ids`, their rows locked
    until the commit, in (merchant, id) order; and their lines.

    (merchant, id) is the order every locker uses (a re-drive locks one merchant's orders
    in id order), so that consumers never deadlock. An order whose event did not name its
    merchant (a bare `{"id"}` from another producer, with a key that is not its merchant)
    is looked up by id across every partition, which is slow, and locked after the
    others, out of that order (PostgreSQL would end a deadlock by failing the batch, which
    is retried): Kitchen's own events always name the merchant.
    """
    if not _postgres():
        # One table, no partitions: by id, with the database-wide lock of BEGIN IMMEDIATE.
        return _read_orders(ORDERS_BY_ID.format(marks=", ".join("?" * len(ids))), ids)
    known = [(merchant_of[i], i) for i in ids if i in merchant_of]
    orders, lines = _locked_orders(known)
    found = {order_id for order_id, _, _, _ in orders}
    missing = [i for i in ids if i not in found]
    if missing:
        query = Order.select(Order.id, Order.merchant).where(among(Order.id, missing))
        more, more_lines = _locked_orders([(m, i) for i, m in tuples(query)])
        orders += more
        lines.update(more_lines)
    return sorted(orders), lines


# A batch holds many merchants' orders. On PostgreSQL their tables are partitioned by
# merchant (kitchen/partitioning.py), and a query that names no merchant reads every
# partition, where no index serves an id alone. So a statement names each merchant with
# its ids, `(merchant_id = m AND id = ANY(ids)) OR ...`: PostgreSQL reads only those
# merchants' partitions, through their keys, in one statement for all the merchants
# (joining two arrays of keys row by row instead cost twice as much: a partition pruning
# per row). LockRows runs above the sort: rows are locked in (merchant, id) order.
ORDERS_BY_KEY = """
SELECT o.id, o.merchant_id, o.status, o.created_at, l.product_id, l.quantity
FROM orders o
LEFT JOIN order_lines l ON l.merchant_id = o.merchant_id AND l.order_id = o.id AND ({lines})
WHERE {orders}
ORDER BY o.merchant_id, o.id
FOR UPDATE OF o
"""
ORDERS_BY_ID = """
SELECT o.id, o.merchant_id, o.status, o.created_at, l.product_id, l.quantity
FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id
WHERE o.id IN ({marks})
ORDER BY o.merchant_id, o.id
"""


def _keys(merchant: str, id_: str, keys: Iterable[tuple[int, int]]) -> tuple[str, list[object]]:
    """`(merchant = m AND id = ANY(ids)) OR ...` for (merchant, id) keys, and its
    parameters (PostgreSQL: an array parameter per merchant)."""
    ids: dict[int, list[int]] = defaultdict(list)
    for m, i in sorted(keys):
        ids[m].append(i)
    sql = " OR ".join(f"({merchant} = %s AND {id_} = ANY(%s))" for _ in ids)
    return sql, [x for m, group in ids.items() for x in (m, group)]


def _locked_orders(
    keys: list[tuple[int, int]],
) -> tuple[list[LockedOrder], dict[int, list[domain.Line]]]:
    if not keys:
        return [], defaultdict(list)
    lines, line_params = _keys("l.merchant_id", "l.order_id", keys)
    orders, order_params = _keys("o.merchant_id", "o.id", keys)
    return _read_orders(
        ORDERS_BY_KEY.format(lines=lines, orders=orders), line_params + order_params
    )


def _read_orders(
    sql: str, params: Iterable[object]
) -> tuple[list[LockedOrder], dict[int, list[domain.Line]]]:
    """The orders and lines of one ORDERS_BY_ query: a row per line (an order without
    lines has one, with NULLs)."""
    orders: list[LockedOrder] = []
    lines: dict[int, list[domain.Line]] = defaultdict(list)
    last = None
    for order_id, merchant_id, status, created_at, product_id, quantity in db.database.execute_sql(
        sql, tuple(params)
    ).fetchall():
        if order_id != last:
            orders.append((order_id, merchant_id, status, created_at))
            last = order_id
        if product_id is not None:
            lines[order_id].append(domain.Line(product_id, quantity))
    return orders, lines


Statement = tuple[str, Sequence[object]]


def _statement(query: pw.Query | None) -> list[Statement]:
    return [] if query is None else [query.sql()]


def _send(statements: list[Statement]) -> None:
    """Run the statements in order, in one round trip on PostgreSQL (several statements
    in one query string: each round trip costs the consumer and PostgreSQL a wake-up on
    a machine whose cores they share)."""
    if not _postgres():
        for sql, params in statements:
            db.database.execute_sql(sql, params)
        return
    if not statements:
        return
    cursor = db.database.cursor()
    text = ";\n".join(cursor.mogrify(sql, params).decode() for sql, params in statements)
    # execute_sql hands the driver an empty tuple of parameters, which makes it read
    # `%%` as `%`: a `%` in a value (a rejection's reason) stays itself.
    db.database.execute_sql(text.replace("%", "%%"))


def _outcome_statements(
    outcomes: Mapping[tuple[int, str, str | None], list[int]], at: object
) -> list[Statement]:
    """Mark each order with its status and reason: one UPDATE per (status, reason), every
    merchant in it. Identical orders meet the same stock and end alike, so there are few
    (one, when all are applied). The rows are locked already."""
    groups: dict[tuple[str, str | None], list[tuple[int, int]]] = defaultdict(list)
    for (m, status, reason), ids in outcomes.items():
        groups[(status, reason)] += [(m, i) for i in ids]
    statements: list[Statement] = []
    for (status, reason), keys in sorted(groups.items(), key=str):
        if _postgres():
            where, params = _keys("merchant_id", "id", keys)
            statements.append(
                (
                    f"UPDATE orders SET status = %s, reason = %s, processed_at = %s WHERE {where}",
                    (status, reason, at, *params),
                )
            )
        else:  # no partitions: the ids alone
            query = Order.update(status=status, reason=reason, processed_at=at)
            statements.append(query.where(Order.id.in_([i for _, i in keys])).sql())
    return statements


def _stock_statements(changes: list[tuple[int, int, bool]]) -> list[Statement]:
    """Subtract each (ingredient, grams used, armed) from its stock and set its alert's
    arming, in one UPDATE (the rows are locked already)."""
    if not changes:
        return []
    if _postgres():
        return [
            (
                "UPDATE ingredient AS i SET stock = i.stock - k.used, alert_armed = k.armed "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::boolean[]) AS k(id, used, armed) "
                "WHERE i.id = k.id",
                tuple(map(list, zip(*changes, strict=True))),
            )
        ]
    values = ", ".join("(?, ?, ?)" for _ in changes)
    return [
        (
            "UPDATE ingredient SET stock = stock - v.column2, alert_armed = v.column3 "
            f"FROM (VALUES {values}) AS v WHERE ingredient.id = v.column1",
            tuple(x for i, used, armed in changes for x in (i, used, int(armed))),
        )
    ]


def _sold(
    applied: list[int], pending: list[tuple[int, int]], lines: Mapping[int, list[domain.Line]]
) -> dict[int, list[tuple[int, int, int]]]:
    """The applied orders' lines, (order, product, quantity), per merchant."""
    merchant_of = dict(pending)
    sold: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for order_id in applied:
        sold[merchant_of[order_id]] += [
            (order_id, li.product_id, li.quantity) for li in lines[order_id]
        ]
    return sold


def _recipes_of(product_ids: set[int]) -> dict[int, dict[int, int]]:
    recipes: dict[int, dict[int, int]] = defaultdict(dict)
    query = RecipeLine.select(RecipeLine.product, RecipeLine.ingredient, RecipeLine.grams)
    for product_id, ingredient_id, grams in tuples(
        query.where(RecipeLine.product.in_(list(product_ids)))
    ):
        recipes[product_id][ingredient_id] = grams
    return recipes


def _lock_ingredients(ids: set[int]) -> dict[int, Ingredient]:
    """The ingredients' rows, locked in id order until the commit."""
    rows = locked(Ingredient.select().where(Ingredient.id.in_(sorted(ids))).order_by(Ingredient.id))
    return {i.id: i for i in rows}


def order_created_handler(
    notify_topic: str,
    events_topic: str,
    threshold: Fraction,
    on_events: Callable[[], None] | None = None,
    rules: forecast.Rules | None = None,
) -> Handler[OrderCreated]:
    """Build the consumer handler: apply a batch of ORDER_CREATED events; an id that names
    no order is returned as unusable. `on_events` (the relay's wake) is called after a
    batch that queued events; `rules` (the `[forecast]` settings) go to `apply_orders`."""

    def handler(
        batch: list[Received[OrderCreated]],
    ) -> list[tuple[Received[OrderCreated], str]]:
        by_id: dict[int, list[Received[OrderCreated]]] = defaultdict(list)
        for r in batch:
            by_id[r.event.id].append(r)
        # Kitchen's events name the merchant; a bare one's key usually does (see _lock_orders).
        merchant_of = {
            r.event.id: m for r in batch if (m := r.event.merchant_id or r.merchant_key) is not None
        }
        result = apply_orders(
            list(by_id), notify_topic, events_topic, threshold, merchant_of, rules
        )
        metrics.orders_processed(len(result.applied), result.rejected_by, len(result.alerts))
        if (result.applied or result.rejected) and on_events is not None:
            on_events()
        log.info(
            "batch of %d: %d applied, %d rejected, %d already done, %d alerts",
            len(batch),
            len(result.applied),
            len(result.rejected),
            len(result.skipped),
            len(result.alerts),
        )
        return [(r, "unknown order id") for i in result.unknown for r in by_id[i]]

    return handler
