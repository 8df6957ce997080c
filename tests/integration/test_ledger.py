"""Every gram accounted for: after a random mix of orders, restocks, counts and waste from
concurrent clients, each ingredient's stock is the sum of its ledger, row by row."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session
from kitchen.models import Ingredient, LedgerEntry
from tests.helpers import eventually, no_order_pending, seed_reference


def test_stock_is_the_sum_of_the_ledger_under_concurrent_changes(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen()
    with TestClient(kitchen.web_app()) as api:
        seeded = seed_reference(api)
        ids = [i["id"] for i in api.get("/ingredients").json()]
    errors: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with TestClient(kitchen.web_app()) as c:
            for _ in range(40):
                kind = rng.choice(["order", "order", "restock", "count", "waste"])
                if kind == "order":
                    body = seeded.order(rng.randint(1, 4))
                    r = c.post("/order", json=body)
                    ok = r.status_code == 201
                else:
                    most = {"count": 20_000, "restock": 5_000, "waste": 800}[kind]
                    grams = rng.randint(0 if kind == "count" else 1, most)
                    path = f"/ingredients/{rng.choice(ids)}/{kind}"
                    r = c.post(path, json={"grams": grams, "note": f"client {seed}"})
                    # Waste beyond the stock is refused (422), which is fine.
                    ok = r.status_code == 200 or (kind == "waste" and r.status_code == 422)
                if not ok:
                    errors.append(f"{kind}: {r.status_code} {r.text}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []

    eventually(no_order_pending, timeout=60)
    with session():
        reasons = set()
        for ingredient in Ingredient.select():
            entries = list(
                LedgerEntry.select()
                .where(LedgerEntry.ingredient == ingredient.id)
                .order_by(LedgerEntry.id)
            )
            running = 0
            for e in entries:  # each row follows from the one before it
                running += e.grams
                assert e.stock_after == running, (ingredient.name, e.id)
                reasons.add(e.reason)
            assert running == ingredient.stock >= 0, ingredient.name
        assert {"initial", "order", "restock", "count", "waste"} <= reasons
