"""The usage report's speed: a year of one busy kitchen, read from the hourly sums,
beside the same sums taken from the raw ledger in the same run.

    python bench/usage.py [--days 365] [--orders-per-day 1000] [--runs 5]
        [--database URL] [--json PATH] [--smoke]

One merchant with the reference kitchen (a burger of beef, cheese and onion; its days
are Paris days), `--orders-per-day` one-burger orders a day from 10:00 to 22:00 UTC for
`--days` days, plus a restock and a waste of each ingredient a day. The data is written
by SQL (generate_series, a recursive CTE), not through HTTP: the ledger rows as
processing writes them, then the hourly sums (`usage_hour`, `sales_hour`) summed from
them as `kitchen.usage` keeps them. Runs on SQLite (a file of its own), then on
PostgreSQL when --database or KITCHEN_TEST_DATABASE_URL names one (its tables are
dropped: give it a database of its own).

Each run, alternating: `reports.usage_report` over the whole range (what GET
/reports/usage answers, less HTTP) against the baseline, one GROUP BY over the raw
ledger rows of the same UTC range (the ingredients' part only: the report also sums
the products). Figures are medians of `--runs`. A run counts only when both give the
same numbers, and those are what the data holds (exit code 1 otherwise). Target (issue
20): the report under a second for a year at 1,000 orders a day.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import peewee as pw  # noqa: E402

from kitchen import db, inventory, migrations, models, reports, seed  # noqa: E402
from kitchen.db import database, session, transaction, tuples  # noqa: E402
from kitchen.forecast import local_day  # noqa: E402
from kitchen.models import LedgerEntry, Merchant, Product  # noqa: E402

FIRST_DAY = datetime.date(2025, 1, 1)
ZONE = "Europe/Paris"
OPEN_HOUR, OPEN_HOURS = 10, 12  # orders from 10:00 to 22:00 UTC
RESTOCK_HOUR, WASTE_HOUR = 8, 21  # UTC; in Paris the same local day
WASTE = 5  # of each ingredient, every day
TARGET_MS = 1000.0
T = TypeVar("T")


def fill(url: str, days: int, per_day: int) -> tuple[int, dict[str, int]]:
    """A fresh database holding the year; returns the merchant and the tables' row counts."""
    base = db.bind(url)
    with session():
        base.drop_tables(list(reversed(models.TABLES)), safe=True)
    migrations.upgrade()
    with session():
        merchant = Merchant.create(name="bench", alert_email="b@x.org", timezone=ZONE)
    seed.seed(merchant.id, inventory.AlertRules(Fraction(1, 2), "notify"))
    with session():
        product = Product.get(Product.merchant == merchant.id)
        recipe = [(r.ingredient_id, r.grams) for r in product.recipe]
    postgres = url.startswith("postgres")
    with transaction():
        (_fill_postgresql if postgres else _fill_sqlite)(
            merchant.id, product.id, recipe, days, per_day
        )
    with session():
        database.execute_sql("ANALYZE")
        counts = {
            table: database.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("ledger", "usage_hour", "sales_hour")
        }
    return merchant.id, counts


def _fill_postgresql(
    merchant: int, product: int, recipe: list[tuple[int, int]], days: int, per_day: int
) -> None:
    values = ", ".join(f"({i}, {g})" for i, g in recipe)
    start = datetime.datetime.combine(FIRST_DAY, datetime.time())
    spacing = OPEN_HOURS * 3600 // per_day
    database.execute_sql(
        "INSERT INTO ledger (merchant_id, ingredient_id, grams, reason, order_id,"
        " stock_after, created_at)"
        " SELECT %s, r.i, -r.g, 'order', n + 1, 0,"
        "  %s + (n / %s) * interval '1 day' + (%s + (n %% %s) * %s) * interval '1 second'"
        f" FROM generate_series(0, %s - 1) AS n, (VALUES {values}) AS r(i, g)",
        (merchant, start, per_day, OPEN_HOUR * 3600, per_day, spacing, days * per_day),
    )
    for reason, hour, times, plus in _moves(per_day):
        database.execute_sql(
            "INSERT INTO ledger (merchant_id, ingredient_id, grams, reason, stock_after,"
            " created_at)"
            " SELECT %s, r.i, %s * r.g + %s, %s, 0, %s + d * interval '1 day'"
            f" FROM generate_series(0, %s - 1) AS d, (VALUES {values}) AS r(i, g)",
            (merchant, times, plus, reason, start + datetime.timedelta(hours=hour), days),
        )
    _sums(merchant, product, recipe[0][0], "date_trunc('hour', created_at)")


def _fill_sqlite(
    merchant: int, product: int, recipe: list[tuple[int, int]], days: int, per_day: int
) -> None:
    values = " UNION ALL ".join(f"SELECT {i} AS i, {g} AS g" for i, g in recipe)
    spacing = OPEN_HOURS * 3600 // per_day
    database.execute_sql(
        "INSERT INTO ledger (merchant_id, ingredient_id, grams, reason, order_id,"
        " stock_after, created_at)"
        " WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k < ? - 1)"
        " SELECT ?, r.i, -r.g, 'order', k + 1, 0,"
        "  strftime('%Y-%m-%d %H:%M:%S', ?, '+' || (k / ?) || ' days',"
        "   '+' || (? + (k % ?) * ?) || ' seconds')"
        f" FROM n, ({values}) AS r",
        (
            days * per_day,
            merchant,
            FIRST_DAY.isoformat(),
            per_day,
            OPEN_HOUR * 3600,
            per_day,
            spacing,
        ),
    )
    for reason, hour, times, plus in _moves(per_day):
        database.execute_sql(
            "INSERT INTO ledger (merchant_id, ingredient_id, grams, reason, stock_after,"
            " created_at)"
            " WITH RECURSIVE n(d) AS (SELECT 0 UNION ALL SELECT d + 1 FROM n WHERE d < ? - 1)"
            " SELECT ?, r.i, ? * r.g + ?, ?, 0,"
            "  strftime('%Y-%m-%d %H:%M:%S', ?, '+' || d || ' days', ?)"
            f" FROM n, ({values}) AS r",
            (days, merchant, times, plus, reason, FIRST_DAY.isoformat(), f"+{hour} hours"),
        )
    _sums(merchant, product, recipe[0][0], "strftime('%Y-%m-%d %H:00:00', created_at)")


def _moves(per_day: int) -> list[tuple[str, int, int, int]]:
    """(reason, UTC hour, times the recipe's grams, plus) of the daily moves, each of
    every ingredient: a restock of the day's use, and a waste of WASTE."""
    return [
        (LedgerEntry.RESTOCK, RESTOCK_HOUR, per_day, 0),
        (LedgerEntry.WASTE, WASTE_HOUR, 0, -WASTE),
    ]


def _sums(merchant: int, product: int, first_ingredient: int, hour: str) -> None:
    """The hourly sums of the ledger just written, as kitchen.usage keeps them (the seed's
    initial rows have theirs already); each order is one ledger row of the recipe's first
    ingredient, so that counts the sales."""
    database.execute_sql(
        "INSERT INTO usage_hour (merchant_id, ingredient_id, hour, reason, amount, entries)"
        f" SELECT merchant_id, ingredient_id, {hour}, reason, SUM(grams), COUNT(*)"
        f" FROM ledger WHERE merchant_id = {merchant} AND reason <> '{LedgerEntry.INITIAL}'"
        " GROUP BY 1, 2, 3, 4"
    )
    database.execute_sql(
        "INSERT INTO sales_hour (merchant_id, product_id, hour, orders, quantity)"
        f" SELECT merchant_id, {product}, {hour}, COUNT(*), COUNT(*) FROM ledger"
        f" WHERE merchant_id = {merchant} AND ingredient_id = {first_ingredient}"
        " AND reason = 'order' GROUP BY 1, 2, 3"
    )


def baseline(
    merchant: int, since: datetime.datetime, until: datetime.datetime
) -> dict[tuple[int, str], int]:
    """The report's ingredient sums taken from the raw ledger, as it would be without
    the hourly sums."""
    with session():
        query = (
            LedgerEntry.select(
                LedgerEntry.ingredient, LedgerEntry.reason, pw.fn.SUM(LedgerEntry.grams)
            )
            .where(
                LedgerEntry.merchant == merchant,
                LedgerEntry.created_at >= since,
                LedgerEntry.created_at < until,
            )
            .group_by(LedgerEntry.ingredient, LedgerEntry.reason)
        )
        return {(i, r): int(s) for i, r, s in tuples(query)}


def check(
    report: dict[str, Any], raw: dict[tuple[int, str], int], days: int, per_day: int
) -> list[str]:
    """What is wrong with the report: against the raw ledger's sums and the data made."""
    wrong = []
    for row in report["ingredients"]:
        i = row["ingredient_id"]
        expected_from_raw = {
            "used": -raw.get((i, LedgerEntry.ORDER), 0),
            "restocked": raw.get((i, LedgerEntry.RESTOCK), 0),
            "wasted": -raw.get((i, LedgerEntry.WASTE), 0),
        }
        for field, value in expected_from_raw.items():
            if row[field] != value:
                wrong.append(f"{row['name']} {field}: report {row[field]}, ledger {value}")
        if row["used"] != row["restocked"] or not row["used"]:  # a day's use, each day
            wrong.append(f"{row['name']}: used {row['used']}, restocked {row['restocked']}")
        if row["wasted"] != days * WASTE:
            wrong.append(f"{row['name']}: wasted {row['wasted']}, made {days * WASTE}")
    orders = sum(p["orders"] for p in report["products"])
    if orders != days * per_day:
        wrong.append(f"orders: report {orders}, made {days * per_day}")
    return wrong


def timed(work: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = work()
    return (time.perf_counter() - started) * 1000, result


def bench(url: str, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    merchant, counts = fill(url, args.days, args.orders_per_day)
    built = time.perf_counter() - started
    last = FIRST_DAY + datetime.timedelta(days=args.days - 1)
    period = reports.Period(FIRST_DAY, last)
    zone = ZoneInfo(ZONE)
    since, until = local_day(FIRST_DAY, zone)[0], local_day(last, zone)[1]
    print(
        f"usage ({backend}): {args.days} days x {args.orders_per_day:,} orders;"
        f" ledger {counts['ledger']:,} rows, usage_hour {counts['usage_hour']:,},"
        f" sales_hour {counts['sales_hour']:,}; built in {built:.1f} s",
        flush=True,
    )
    report_ms, baseline_ms, wrong = [], [], []
    for _ in range(args.runs):
        ms, report = timed(lambda: reports.usage_report(merchant, period))
        report_ms.append(ms)
        ms, raw = timed(lambda: baseline(merchant, since, until))
        baseline_ms.append(ms)
        wrong += check(report, raw, args.days, args.orders_per_day)
    result = {
        "stage": "usage",
        "backend": backend,
        "days": args.days,
        "orders_per_day": args.orders_per_day,
        "rows": counts,
        "build_seconds": round(built, 1),
        "report_ms": round(statistics.median(report_ms), 1),
        "report_runs_ms": [round(x, 1) for x in report_ms],
        "baseline_ms": round(statistics.median(baseline_ms), 1),
        "baseline_runs_ms": [round(x, 1) for x in baseline_ms],
        "correct": not wrong,
        "wrong": wrong[:10],
    }
    result["speedup"] = round(result["baseline_ms"] / max(result["report_ms"], 0.001), 1)
    print(
        f"usage ({backend}): report {result['report_ms']} ms (median of {args.runs}),"
        f" raw ledger {result['baseline_ms']} ms"
        f" (ratio {result['speedup']}x);"
        f" target < {TARGET_MS:.0f} ms: {'met' if result['report_ms'] < TARGET_MS else 'MISSED'};"
        f" numbers {'right' if not wrong else 'WRONG: ' + '; '.join(wrong[:3])}",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--orders-per-day", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument(
        "--database",
        default=os.environ.get("KITCHEN_TEST_DATABASE_URL", ""),
        help="a PostgreSQL of its own (tables dropped); default KITCHEN_TEST_DATABASE_URL",
    )
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument("--smoke", action="store_true", help="7 days x 100 orders, one run")
    args = parser.parse_args()
    if args.smoke:
        args.days, args.orders_per_day, args.runs = 7, 100, 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(bench(f"sqlite:///{tmp}/usage.db", "sqlite", args))
        database.close_all()  # type: ignore[attr-defined]
    if args.database:
        results.append(bench(args.database, "postgresql", args))
        database.close_all()  # type: ignore[attr-defined]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["correct"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
