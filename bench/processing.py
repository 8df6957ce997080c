"""Processing speed: apply a backlog of pending orders in batches, as the consumer does.

    python bench/processing.py [--orders 20000] [--batch 500] [--database URL]

Measures `stock.apply_orders` alone (no Kafka), so that a change to the batch's database
work (the ledger, say) shows in the figure. Prints orders/s for the median of 3 runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kitchen import catalogue, db, migrations, stock
from kitchen.db import Ingredient, Merchant, Order, OrderLine, session, transaction


def fill(url: str, orders: int) -> list[int]:
    """A fresh database with the reference kitchen, stock for every order, and a backlog."""
    database = db.bind(url)
    with session():
        database.drop_tables(list(reversed(db.TABLES)), safe=True)
    migrations.upgrade()
    with session():
        merchant = Merchant.create(name="bench", alert_email="bench@example.com")
    _, kitchen = catalogue.seed(merchant.id)
    burger = kitchen["products"][0]["id"]
    with transaction():
        Ingredient.update(
            stock=Ingredient.stock * orders, full_stock=Ingredient.full_stock * orders
        ).execute()
        ids = []
        for start in range(0, orders, 1000):
            rows = [{"merchant": merchant.id} for _ in range(min(1000, orders - start))]
            first = len(ids)
            for row in rows:
                ids.append(Order.insert(row).execute())
            OrderLine.insert_many(
                [{"order": i, "product": burger, "quantity": 1} for i in ids[first:]]
            ).execute()
    return ids


def run(url: str, orders: int, batch: int) -> float:
    ids = fill(url, orders)
    started = time.perf_counter()
    for start in range(0, len(ids), batch):
        stock.apply_orders(ids[start : start + batch], "notify", Fraction(1, 2))
    elapsed = time.perf_counter() - started
    with session():
        assert Order.select().where(Order.status == Order.APPLIED).count() == orders
    return orders / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        rates = [run(url, args.orders, args.batch) for _ in range(3)]
    print(
        f"processing: {statistics.median(rates):,.0f} orders/s "
        f"(median of {', '.join(f'{r:,.0f}' for r in rates)}; {args.orders} orders, "
        f"batches of {args.batch}, {url.split(':')[0]})"
    )


if __name__ == "__main__":
    main()
