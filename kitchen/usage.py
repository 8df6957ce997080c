"""The ledger summed by the hour: what forecasts, the digest and usage reports read.

Every ledger row is added to its (ingredient, UTC hour, reason) sum in the transaction
that writes it (`count_ledger`), and every applied order to its products' (product, hour)
sums (`count_sales`): a processing batch adds a few upserts, not one row per order. A
year of one busy kitchen is then a few thousand rows per ingredient, which a report sums
in milliseconds where the raw ledger would be a million rows (bench/usage.py).

Hours are UTC. A merchant's local day is a range of them: exact wherever the time zone's
offset is a whole number of hours; where it is not (India's +05:30), the hour that
straddles midnight counts in the day it starts in.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import peewee as pw

from kitchen.db import tuples
from kitchen.forecast import Forecast, Rules, forecast, zone
from kitchen.models import Ingredient, LedgerEntry, Merchant, SalesHour, UsageHour


def hour_of(at: datetime.datetime) -> datetime.datetime:
    """The UTC hour `at` (naive UTC, as stored) falls in."""
    return at.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Entry:
    """One ledger row, as the sums need it."""

    merchant_id: int
    ingredient_id: int
    reason: str
    amount: int  # signed, as the ledger's
    at: datetime.datetime  # naive UTC
    rows: int = 1  # ledger rows summed in `amount` (a processing batch sums its own)


def count_ledger(entries: Iterable[Entry]) -> None:
    """Add ledger rows to their hourly sums; call in the transaction that writes them.
    Rows with the same key are summed first: a processing batch upserts one row per
    ingredient, which it holds locked already, so consumers never wait on each other here
    more than they do on the stock."""
    query = ledger_sums(entries)
    if query is not None:
        query.execute()


def ledger_sums(entries: Iterable[Entry]) -> pw.Query | None:
    """The upsert of `count_ledger`, not run (None: nothing to count), for a caller that
    sends it with other statements."""
    sums: dict[tuple[int, int, datetime.datetime, str], list[int]] = defaultdict(lambda: [0, 0])
    for e in entries:
        total = sums[(e.merchant_id, e.ingredient_id, hour_of(e.at), e.reason)]
        total[0] += e.amount
        total[1] += e.rows
    if not sums:
        return None
    rows = [
        {
            UsageHour.merchant: m,
            UsageHour.ingredient: i,
            UsageHour.hour: h,
            UsageHour.reason: r,
            UsageHour.amount: amount,
            UsageHour.entries: n,
        }
        for (m, i, h, r), (amount, n) in sorted(sums.items())  # one lock order for all
    ]
    return (
        UsageHour.insert_many(rows)
        .returning()
        .on_conflict(
            conflict_target=[
                UsageHour.merchant,
                UsageHour.ingredient,
                UsageHour.hour,
                UsageHour.reason,
            ],
            update={
                UsageHour.amount: UsageHour.amount + pw.EXCLUDED.amount,
                UsageHour.entries: UsageHour.entries + pw.EXCLUDED.entries,
            },
        )
    )


def write_ledger_row(**fields: Any) -> LedgerEntry:
    """Write one ledger row (a move, a give-back) with its hourly sum, in the caller's
    transaction: the one way a single row is written, so that no row misses its sum.
    (Processing writes a batch's rows in bulk and sums them itself.)"""
    entry: LedgerEntry = LedgerEntry.create(**fields)
    at = entry.created_at
    count_ledger([Entry(entry.merchant_id, entry.ingredient_id, entry.reason, entry.grams, at)])
    return entry


def count_sales(
    merchant_id: int, lines: Iterable[tuple[int, int, int]], at: datetime.datetime
) -> None:
    """Add applied orders' lines, (order id, product id, quantity), to their products'
    hourly sums; call in the transaction that applies them."""
    query = sales_sums({merchant_id: lines}, at)
    if query is not None:
        query.execute()


def sales_sums(
    lines: Mapping[int, Iterable[tuple[int, int, int]]], at: datetime.datetime
) -> pw.Query | None:
    """The upsert of `count_sales` for several merchants' lines (merchant id -> its
    lines), not run (None: nothing to count): a processing batch holds many merchants'
    orders, and sends it with its other statements."""
    orders: dict[tuple[int, int], set[int]] = defaultdict(set)
    quantity: dict[tuple[int, int], int] = defaultdict(int)
    for merchant_id, sold in lines.items():
        for order_id, product_id, q in sold:
            orders[(merchant_id, product_id)].add(order_id)
            quantity[(merchant_id, product_id)] += q
    if not quantity:
        return None
    hour = hour_of(at)
    rows = [
        {
            SalesHour.merchant: m,
            SalesHour.product: p,
            SalesHour.hour: hour,
            SalesHour.orders: len(orders[(m, p)]),
            SalesHour.quantity: quantity[(m, p)],
        }
        for m, p in sorted(quantity)  # one lock order for all
    ]
    return (
        SalesHour.insert_many(rows)
        .returning()
        .on_conflict(
            conflict_target=[SalesHour.merchant, SalesHour.product, SalesHour.hour],
            update={
                SalesHour.orders: SalesHour.orders + pw.EXCLUDED.orders,
                SalesHour.quantity: SalesHour.quantity + pw.EXCLUDED.quantity,
            },
        )
    )


# What an order's use nets against: ingredients given back for an order (refunded with
# restock, or compensated when its payment failed) were not used after all.
USE = (LedgerEntry.ORDER, LedgerEntry.REFUND, LedgerEntry.COMPENSATION)


def used_by_hour(
    merchant_id: int,
    ingredient_ids: Iterable[int],
    since: datetime.datetime,
    until: datetime.datetime | None = None,
) -> dict[int, dict[datetime.datetime, int]]:
    """Per ingredient, per UTC hour from `since` (until `until`, excluded), what orders
    used net of what was given back for orders, in the ingredient's unit: positive, but
    for an hour where a refund gave back more than orders took (forecast.py counts no
    less than nothing). Hours with no use are absent."""
    ids = sorted(set(ingredient_ids))
    used: dict[int, dict[datetime.datetime, int]] = {i: {} for i in ids}
    if not ids:
        return used
    query = (
        UsageHour.select(UsageHour.ingredient, UsageHour.hour, pw.fn.SUM(UsageHour.amount))
        .where(
            UsageHour.merchant == merchant_id,
            UsageHour.ingredient.in_(ids),
            UsageHour.hour >= hour_of(since),
            UsageHour.reason.in_(USE),
        )
        .group_by(UsageHour.ingredient, UsageHour.hour)
    )
    if until is not None:
        query = query.where(UsageHour.hour < until)
    for ingredient_id, hour, amount in tuples(query):
        if amount:
            used[ingredient_id][_datetime(hour)] = -int(amount)
    return used


def first_use(merchant_id: int, ingredient_ids: Iterable[int]) -> dict[int, datetime.datetime]:
    """The hour of each ingredient's first order row, for those that have one."""
    ids = sorted(set(ingredient_ids))
    if not ids:
        return {}
    query = (
        UsageHour.select(UsageHour.ingredient, pw.fn.MIN(UsageHour.hour))
        .where(
            UsageHour.merchant == merchant_id,
            UsageHour.ingredient.in_(ids),
            UsageHour.reason == LedgerEntry.ORDER,
        )
        .group_by(UsageHour.ingredient)
    )
    return {i: _datetime(h) for i, h in tuples(query) if h is not None}


def totals(
    merchant_id: int, since: datetime.datetime, until: datetime.datetime
) -> dict[int, dict[str, int]]:
    """Per ingredient, per ledger reason, the signed sum of the merchant's ledger rows
    from `since` to `until` (UTC hours; `until` excluded)."""
    query = (
        UsageHour.select(UsageHour.ingredient, UsageHour.reason, pw.fn.SUM(UsageHour.amount))
        .where(
            UsageHour.merchant == merchant_id,
            UsageHour.hour >= since,
            UsageHour.hour < until,
        )
        .group_by(UsageHour.ingredient, UsageHour.reason)
    )
    sums: dict[int, dict[str, int]] = defaultdict(dict)
    for ingredient_id, reason, amount in tuples(query):
        sums[ingredient_id][reason] = int(amount)
    return dict(sums)


def sales(
    merchant_id: int, since: datetime.datetime, until: datetime.datetime
) -> dict[int, tuple[int, int]]:
    """Per product, (orders, quantity) applied from `since` to `until` (UTC hours)."""
    query = (
        SalesHour.select(
            SalesHour.product, pw.fn.SUM(SalesHour.orders), pw.fn.SUM(SalesHour.quantity)
        )
        .where(
            SalesHour.merchant == merchant_id,
            SalesHour.hour >= since,
            SalesHour.hour < until,
        )
        .group_by(SalesHour.product)
    )
    return {p: (int(o), int(q)) for p, o, q in tuples(query)}


def _datetime(value: object) -> datetime.datetime:
    """A DATETIME as the driver returns it: psycopg2 a datetime, sqlite3 its text."""
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(str(value))


def forecasts(
    merchant: Merchant, ingredients: Iterable[Ingredient], now: datetime.datetime, rules: Rules
) -> dict[int, Forecast]:
    """The forecast of each of the merchant's `ingredients` at `now` (aware UTC), from
    the hourly sums as this transaction sees them: two queries for any number of them."""
    rows = list(ingredients)
    ids = [i.id for i in rows]
    days = max(rules.window_days, 7 * rules.weekday_weeks + 2)
    naive = now.astimezone(datetime.UTC).replace(tzinfo=None)
    used = used_by_hour(merchant.id, ids, naive - datetime.timedelta(days=days))
    first = first_use(merchant.id, ids)
    local = zone(merchant.timezone)
    return {
        i.id: forecast(
            stock=i.stock,
            par=i.full_stock,
            lead_time_days=i.lead_time_days,
            pack_size=i.pack_size,
            used=used[i.id],
            first_use=first.get(i.id),
            now=now,
            zone=local,
            rules=rules,
        )
        for i in rows
    }
