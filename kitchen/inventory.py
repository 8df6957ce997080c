"""Inventory: an ingredient's stock outside orders, and the ledger that accounts for it.

Each change (a new ingredient, a restock, a count, waste, a new par level or threshold)
is one transaction: the ingredient's row locked, the rule applied (`domain`), the row
written, one ledger row for any change of stock, and the alert raised if it crossed.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from kitchen import alerts, domain, forecast, usage, views
from kitchen.commands import CreateIngredient, PatchIngredient, StockMove
from kitchen.db import locked, session, transaction
from kitchen.errors import Conflict, FieldError, Invalid, NotFound
from kitchen.models import Alert, Ingredient, LedgerEntry, Merchant


@dataclass(frozen=True)
class AlertRules:
    """What every change needs to settle an alert: the `[alerts] threshold` setting (for
    merchants without their own) and the topic NOTIFY goes to."""

    default_threshold: Fraction
    notify_topic: str
    # The `[forecast]` settings: every ingredient view carries its forecast.
    forecast: forecast.Rules = field(default_factory=forecast.Rules)


def threshold_of(ingredient: Ingredient, merchant: Merchant, default: Fraction) -> Fraction:
    """The ingredient's own threshold, else its merchant's, else the setting's."""
    return Fraction(ingredient.threshold or merchant.threshold or default)


def ingredient_state(
    ingredient: Ingredient, merchant: Merchant, default: Fraction
) -> domain.IngredientState:
    """What the rules need of an ingredient row."""
    i = ingredient
    return domain.IngredientState(
        i.id,
        i.name,
        i.stock,
        i.full_stock,
        i.alert_armed,
        threshold_of(i, merchant, default),
        i.unit,
    )


def view(i: Ingredient, merchant: Merchant, rules: AlertRules) -> dict[str, Any]:
    """The ingredient as `views.ingredient` shows it, with the threshold that applies and
    its forecast as of now (as this transaction sees the ledger)."""
    return views_of([i], merchant, rules)[0]


def views_of(rows: list[Ingredient], merchant: Merchant, rules: AlertRules) -> list[dict[str, Any]]:
    """`view` of many ingredients of one merchant: their forecasts in two queries."""
    ahead = usage.forecasts(merchant, rows, datetime.datetime.now(datetime.UTC), rules.forecast)
    return [
        views.ingredient(i, threshold_of(i, merchant, rules.default_threshold), ahead[i.id])
        for i in rows
    ]


def create(
    merchant_id: int, new: CreateIngredient, rules: AlertRules, key_name: str | None = None
) -> dict[str, Any]:
    """POST /ingredients: name, stock, full_stock (the par level; default: the stock),
    threshold. Created below its threshold, it alerts once, as a crossing does (cause
    `initial`). `key_name`: the key that made it, written on its first ledger row."""
    name, stock, threshold = new.name, new.stock, new.threshold
    # The par level; stock may stand above it. It is the 100 % of the threshold: never 0.
    full = new.full_stock if new.full_stock is not None else max(stock, 1)
    with transaction():
        if _named(merchant_id, name) is not None:
            raise Conflict(f"an ingredient named {name!r} exists already")
        merchant = Merchant.get_by_id(merchant_id)
        row = Ingredient.create(
            merchant=merchant_id,
            name=name,
            stock=stock,
            full_stock=full,
            threshold=str(threshold) if threshold is not None else None,
            unit=new.unit,
            lead_time_days=new.lead_time_days,
            pack_size=new.pack_size,
        )
        state = ingredient_state(row, merchant, rules.default_threshold)
        # Armed until now: a new ingredient below its line is short from the start, which
        # its merchant hears as of any crossing (and it disarms until restocked).
        crossed = domain.settle_alert(state)
        row.alert_armed = state.armed
        row.save()
        _ledger(row, stock, LedgerEntry.INITIAL, None, key_name)
        if crossed:
            alert = alerts.raise_alert(
                merchant_id,
                state,
                merchant.alert_email,
                rules.notify_topic,
                cause=LedgerEntry.INITIAL,
            )
            _forecast(merchant, alert, row, rules)
        return view(row, merchant, rules)


def _forecast(merchant: Merchant, alert: Alert, row: Ingredient, rules: AlertRules) -> None:
    """The alert's forecast, for its email (`alerts.attach_forecasts`): after the change's
    ledger row and its sum are written."""
    now = datetime.datetime.now(datetime.UTC)
    alerts.attach_forecasts(merchant, [(alert, row)], rules.forecast, now)


def _named(merchant_id: int, name: str) -> Ingredient | None:
    found: Ingredient | None = Ingredient.get_or_none(
        Ingredient.merchant == merchant_id, Ingredient.name == name
    )
    return found


def _ledger(
    row: Ingredient, grams: int, reason: str, note: str | None, key_name: str | None
) -> LedgerEntry:
    return usage.write_ledger_row(
        merchant=row.merchant_id,
        ingredient=row.id,
        grams=grams,
        reason=reason,
        note=note,
        stock_after=row.stock,
        key_name=key_name,
    )


def all_of(merchant_id: int, rules: AlertRules) -> list[dict[str, Any]]:
    with session():
        merchant = Merchant.get_by_id(merchant_id)
        rows = Ingredient.select().where(Ingredient.merchant == merchant_id).order_by(Ingredient.id)
        return views_of(list(rows), merchant, rules)


def one(merchant_id: int, ingredient_id: int, rules: AlertRules) -> dict[str, Any]:
    with session():
        return view(_get(merchant_id, ingredient_id), Merchant.get_by_id(merchant_id), rules)


def _get(merchant_id: int, ingredient_id: int, lock: bool = False) -> Ingredient:
    query = Ingredient.select().where(
        Ingredient.id == ingredient_id, Ingredient.merchant == merchant_id
    )
    found: Ingredient | None = (locked(query) if lock else query).first()
    if found is None:
        raise NotFound("ingredient", ingredient_id)
    return found


Rule = Callable[[domain.IngredientState], bool]


def _change(
    merchant_id: int,
    ingredient_id: int,
    rules: AlertRules,
    rule: Rule,
    reason: str | None = None,
    note: str | None = None,
    edit: Callable[[Ingredient], None] = lambda row: None,
    field: str = "grams",
    key_name: str | None = None,
) -> dict[str, Any]:
    """Apply `rule` to one ingredient in one transaction (see the module's docstring);
    `edit` changes the row first (a new name or threshold); `field` is what the caller
    named a move's amount, for the message of a refused one. A crossing's alert and a
    re-arm's resolution name `reason` as their cause, or LEVELS without one."""
    with transaction():
        row = _get(merchant_id, ingredient_id, lock=True)
        edit(row)
        merchant = Merchant.get_by_id(merchant_id)
        state = ingredient_state(row, merchant, rules.default_threshold)
        before, was_armed = state.stock, row.alert_armed
        try:
            crossed = rule(state)
        except domain.StockError as exc:
            named = field if reason else "full_stock"
            raise Invalid([FieldError(named, str(exc))]) from None
        row.stock, row.full_stock, row.alert_armed = state.stock, state.full_stock, state.armed
        row.save()
        entry = None
        if reason is not None:
            # A count that finds what the books say is still a count worth recording.
            entry = _ledger(row, state.stock - before, reason, note, key_name)
        why = reason or alerts.LEVELS
        if crossed:
            alert = alerts.raise_alert(
                merchant_id, state, merchant.alert_email, rules.notify_topic, cause=why
            )
            _forecast(merchant, alert, row, rules)
        else:
            alerts.resolve(merchant_id, row.id, was_armed, state.armed, why)
        shown = view(row, merchant, rules)
        if entry is not None:
            # What the move recorded: a count's difference from the books, exactly.
            shown["change"] = views.ledger_entry(entry, row.unit)
        return shown


MOVES: dict[str, Callable[[domain.IngredientState, int], bool]] = {
    LedgerEntry.RESTOCK: domain.restock,
    LedgerEntry.COUNT: domain.count,
    LedgerEntry.WASTE: domain.waste,
}


def move(
    merchant_id: int,
    ingredient_id: int,
    move: StockMove,
    rules: AlertRules,
    key_name: str | None = None,
) -> dict[str, Any]:
    """POST /ingredients/{id}/restock, /count or /waste: `{"amount" (or "grams"), "note"?}`;
    `key_name`, the key that moved it, is written on the ledger row."""
    step, grams = MOVES[move.kind], move.grams
    return _change(
        merchant_id,
        ingredient_id,
        rules,
        lambda s: step(s, grams),
        move.kind,
        move.note,
        field=move.field,
        key_name=key_name,
    )


def update(
    merchant_id: int, ingredient_id: int, change: PatchIngredient, rules: AlertRules
) -> dict[str, Any]:
    """PATCH /ingredients/{id}: name, full_stock (the par level), threshold, lead time and
    pack size; the alert is settled again (cause or resolution LEVELS). The only way the
    par level changes. It writes no ledger row (no stock moves), so it names no key."""
    name, full, threshold = change.name, change.full_stock, change.threshold

    def rename_and_rethreshold(row: Ingredient) -> None:
        if name is not None:
            other = _named(merchant_id, name)
            if other is not None and other.id != row.id:
                raise Conflict(f"an ingredient named {name!r} exists already")
            row.name = name
        if threshold is not None:
            row.threshold = str(threshold)
        if change.lead_time_days is not None:
            row.lead_time_days = change.lead_time_days
        if change.pack_size is not None or change.any_amount:
            row.pack_size = change.pack_size

    return _change(
        merchant_id,
        ingredient_id,
        rules,
        lambda s: domain.change_levels(s, full_stock=full),
        edit=rename_and_rethreshold,
    )


def settle_followers(merchant: Merchant, rules: AlertRules) -> None:
    """After the merchant's default threshold changed: settle every ingredient that has no
    threshold of its own. Call inside the transaction that changed it."""
    rows = locked(
        Ingredient.select()
        .where(Ingredient.merchant == merchant.id, Ingredient.threshold.is_null())
        .order_by(Ingredient.id)
    )
    raised: list[tuple[Alert, Ingredient]] = []
    for row in rows:
        state = ingredient_state(row, merchant, rules.default_threshold)
        if domain.settle_alert(state):
            alert = alerts.raise_alert(
                merchant.id, state, merchant.alert_email, rules.notify_topic, cause=alerts.LEVELS
            )
            raised.append((alert, row))
        else:
            alerts.resolve(merchant.id, row.id, row.alert_armed, state.armed, alerts.LEVELS)
        if state.armed != row.alert_armed:
            Ingredient.update(alert_armed=state.armed).where(Ingredient.id == row.id).execute()
    # The alerts' forecasts, for their emails: two queries for all of them.
    now = datetime.datetime.now(datetime.UTC)
    alerts.attach_forecasts(merchant, raised, rules.forecast, now)


def ledger(
    merchant_id: int, ingredient_id: int, limit: int, before: int | None
) -> list[dict[str, Any]]:
    """GET /ingredients/{id}/ledger: newest first, `before` an entry id to page on from."""
    with session():
        unit = _get(merchant_id, ingredient_id).unit
        query = LedgerEntry.select().where(
            LedgerEntry.merchant == merchant_id, LedgerEntry.ingredient == ingredient_id
        )
        if before is not None:
            query = query.where(LedgerEntry.id < before)
        rows = query.order_by(LedgerEntry.id.desc()).limit(limit)
        return [views.ledger_entry(e, unit) for e in rows]
