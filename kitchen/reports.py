"""The usage report: what each ingredient did and each product sold over local days.

Read from the hourly sums (kitchen/usage.py), never the raw ledger: a year of a busy
kitchen is a few thousand rows per ingredient there (bench/usage.py measures both).
The days are the merchant's, in its time zone: `from` and `to` both count, each from
its local midnight (`forecast.local_day`), so a report over a daylight-saving change
covers 23 or 25 hours of that day.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from kitchen import usage
from kitchen.db import session
from kitchen.errors import FieldError, Invalid
from kitchen.forecast import local_day
from kitchen.models import Ingredient, LedgerEntry, Merchant, Product

# A year, a leap one too: longer ranges are a spreadsheet's job over several reports.
MAX_DAYS = 366

INGREDIENT_COLUMNS = (
    "ingredient_id",
    "name",
    "unit",
    "used",
    "wasted",
    "restocked",
    "counted",
    "refunded",
)
PRODUCT_COLUMNS = ("product_id", "name", "orders", "quantity")

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class Period:
    """Local days `first` to `last`, both included."""

    first: datetime.date
    last: datetime.date

    @classmethod
    def parse(cls, first: str | None, last: str | None) -> Period:
        """The `from` and `to` query parameters, or Invalid naming each one wrong."""
        errors = []
        dates: dict[str, datetime.date] = {}
        for name, raw in (("from", first), ("to", last)):
            if raw is None:
                errors.append(FieldError(name, "is required (a date, YYYY-MM-DD)"))
                continue
            try:
                if not _DATE.fullmatch(raw):
                    raise ValueError(raw)
                dates[name] = datetime.date.fromisoformat(raw)
            except ValueError:
                errors.append(FieldError(name, "must be a date, YYYY-MM-DD"))
        if not errors:
            days = (dates["to"] - dates["from"]).days + 1
            if days < 1:
                errors.append(FieldError("to", "must not be before from"))
            elif days > MAX_DAYS:
                errors.append(FieldError("to", f"must be at most {MAX_DAYS} days from from"))
        if errors:
            raise Invalid(errors)
        return cls(dates["from"], dates["to"])


def usage_report(merchant_id: int, period: Period) -> dict[str, Any]:
    """Per ingredient, what orders used, waste, restocks, counts and refunds did; per
    product, the orders and quantity applied; over the merchant's local days `period`.
    Amounts are positive integers of the ingredient's unit, except `counted`: a count's
    signed variance (found more +, less -). `used` is what orders took, before anything
    was given back; `refunded` is what refunds and failed payments' compensations gave
    back, so the net use is `used - refunded`."""
    with session():
        merchant = Merchant.get_by_id(merchant_id)
        zone = ZoneInfo(merchant.timezone)
        since, until = local_day(period.first, zone)[0], local_day(period.last, zone)[1]
        sums = usage.totals(merchant_id, since, until)
        sold = usage.sales(merchant_id, since, until)
        ingredients = list(
            Ingredient.select(Ingredient.id, Ingredient.name, Ingredient.unit)
            .where(Ingredient.merchant == merchant_id)
            .order_by(Ingredient.name, Ingredient.id)
        )
        # A deleted product still counts for the days it sold.
        products = list(
            Product.select(Product.id, Product.name)
            .where(
                Product.merchant == merchant_id,
                Product.deleted_at.is_null() | Product.id.in_(sorted(sold) or [0]),
            )
            .order_by(Product.name, Product.id)
        )
    return {
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "timezone": merchant.timezone,
        "ingredients": [_ingredient(i, sums.get(i.id, {})) for i in ingredients],
        "products": [
            {
                "product_id": p.id,
                "name": p.name,
                "orders": sold.get(p.id, (0, 0))[0],
                "quantity": sold.get(p.id, (0, 0))[1],
            }
            for p in products
        ],
    }


def _ingredient(row: Ingredient, sums: dict[str, int]) -> dict[str, Any]:
    """One ingredient's line from its signed sums per ledger reason (an order's use is
    negative there, a restock positive)."""
    given_back = sums.get(LedgerEntry.REFUND, 0) + sums.get(LedgerEntry.COMPENSATION, 0)
    return {
        "ingredient_id": row.id,
        "name": row.name,
        "unit": row.unit,
        "used": -sums.get(LedgerEntry.ORDER, 0),
        "wasted": -sums.get(LedgerEntry.WASTE, 0),
        "restocked": sums.get(LedgerEntry.RESTOCK, 0),
        "counted": sums.get(LedgerEntry.COUNT, 0),
        "refunded": given_back,
    }
