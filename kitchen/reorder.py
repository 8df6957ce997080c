"""GET /reorder: the supplier orders a merchant should place now (not customer orders).

One line per ingredient whose forecast suggests ordering (`forecast.suggest`: back to
the par level after the use expected while the delivery comes, in whole packs), the most
urgent first: the one that runs out first, those that never run out last, then by name.
Read from the hourly sums like every forecast (`usage.forecasts`): two queries for the
whole list.
"""

from __future__ import annotations

import datetime
from typing import Any

from kitchen import usage
from kitchen.db import session
from kitchen.forecast import Forecast, Rules
from kitchen.models import Ingredient, Merchant

# The fields of a line, in the order of the CSV's columns.
COLUMNS = (
    "ingredient_id",
    "name",
    "unit",
    "stock",
    "par_level",
    "lead_time_days",
    "pack_size",
    "daily_use",
    "days_left",
    "runs_out_at",
    "runs_out_before_delivery",
    "suggested_order",
    "packs",
)
NEVER = datetime.datetime.max.replace(tzinfo=datetime.UTC)  # sorts after any time


def line(i: Ingredient, ahead: Forecast) -> dict[str, Any]:
    """One ingredient to order, as the list shows it (rates as `Forecast.view` rounds them)."""
    shown = ahead.view()
    return {
        "ingredient_id": i.id,
        "name": i.name,
        "unit": i.unit,
        "stock": i.stock,
        "par_level": i.full_stock,
        "lead_time_days": i.lead_time_days,
        "pack_size": i.pack_size,
        "daily_use": shown["daily_use"],
        "days_left": shown["days_left"],
        "runs_out_at": shown["runs_out_at"],
        # Exact, not the rounded days_left: 1.96 days is before a 2-day delivery.
        "runs_out_before_delivery": (
            ahead.days_left is not None and ahead.days_left < i.lead_time_days
        ),
        "suggested_order": ahead.suggested_order,
        # suggest() rounds up to whole packs, so this divides exactly.
        "packs": ahead.suggested_order // i.pack_size if i.pack_size else None,
    }


def lines(merchant_id: int, rules: Rules, now: datetime.datetime) -> list[dict[str, Any]]:
    """The merchant's ingredients to order at `now` (aware UTC), most urgent first."""
    with session():
        merchant = Merchant.get_by_id(merchant_id)
        rows = list(Ingredient.select().where(Ingredient.merchant == merchant_id))
        ahead = usage.forecasts(merchant, rows, now, rules)
    due = [i for i in rows if ahead[i.id].suggested_order > 0]
    due.sort(key=lambda i: (ahead[i.id].runs_out_at or NEVER, i.name, i.id))
    return [line(i, ahead[i.id]) for i in due]


def view(merchant_id: int, rules: Rules, now: datetime.datetime) -> dict[str, Any]:
    """GET /reorder's JSON: the lines and the instant they were computed for."""
    at = now.astimezone(datetime.UTC).replace(microsecond=0, tzinfo=None)
    return {"lines": lines(merchant_id, rules, now), "generated_at": at.isoformat() + "Z"}
