"""Forecast rules: how long an ingredient lasts, and what to order. Pure: no database.

Use comes in per UTC hour (kitchen/usage.py: what orders took, net of what was given
back for orders). Two methods:

- RECENT: daily use = the use of the last `window_days` (or of the history since the
  first order row, if shorter; never less than an hour) divided by that span in days;
  days left = stock / daily use.
- WEEKDAY: with at least two full weeks of history, each local weekday's own average
  over the last full weeks (up to `weekday_weeks`) drives the days ahead, day by day,
  in the merchant's time zone: a kitchen that sells twice as much on Saturday runs out
  on Saturday. Daily use is then the week's average day.

Amounts are Fractions until they are shown: stock and orders stay integers of the unit;
a rate (so much a day) is shown to one decimal.
"""

from __future__ import annotations

import bisect
import datetime
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)

RECENT, WEEKDAY = "recent", "weekday"
DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)
# A forecast looks this far ahead at most: beyond, an ingredient "does not run out".
HORIZON_DAYS = 366

Use = Mapping[datetime.datetime, int]  # naive UTC hour -> amount used in it


@dataclass(frozen=True)
class Rules:
    window_days: int = 7
    weekday_weeks: int = 4


@dataclass(frozen=True)
class Forecast:
    method: str  # RECENT or WEEKDAY
    daily_use: Fraction | None  # in the unit, per day; none: nothing used
    days_left: Fraction | None  # none: nothing used, so it does not run out
    runs_out_at: datetime.datetime | None  # aware UTC
    suggested_order: int  # in the unit, whole packs; 0: nothing to order
    lead_use: int  # the use expected during the lead time (rounded up)

    def view(self) -> dict[str, Any]:
        """As the API shows it: rates to one decimal, the time in ISO 8601 UTC."""
        return {
            "method": self.method,
            "daily_use": _one_place(self.daily_use),
            "days_left": _one_place(self.days_left),
            "runs_out_at": _minute(self.runs_out_at),
            "suggested_order": self.suggested_order,
        }


def _minute(at: datetime.datetime | None) -> str | None:
    """To the minute: a forecast is no finer, and a time that moves every read would make
    two reads of one state differ."""
    if at is None:
        return None
    return at.replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%MZ")


def _one_place(value: Fraction | None) -> float | None:
    if value is None:
        return None
    return round(value * 10) / 10  # round() of a Fraction is exact (half to even)


def forecast(
    *,
    stock: int,
    par: int,
    lead_time_days: int,
    pack_size: int | None,
    used: Use,
    first_use: datetime.datetime | None,
    now: datetime.datetime,
    zone: ZoneInfo,
    rules: Rules,
) -> Forecast:
    """The forecast of one ingredient at `now` (aware UTC). `used`: its hourly use, at
    least over the window (and the weekday weeks); `first_use`: the hour of its first
    order row (naive UTC), none if it was never used."""
    rate = _weekday_rate(used, first_use, now, zone, rules)
    method = WEEKDAY
    if rate is None:
        method = RECENT
        recent = _recent_daily(used, first_use, now, rules.window_days)
        rate = None if recent is None else (lambda _day, d=recent: d)
    if rate is None:
        return Forecast(method, None, None, None, suggest(stock, par, 0, pack_size), 0)
    lead_use = math.ceil(_use_between(rate, now, now + lead_time_days * DAY, zone, method))
    order = suggest(stock, par, lead_use, pack_size)
    week = [rate(now.date() + d * DAY) for d in range(7)]
    daily = sum(week, Fraction(0)) / 7  # RECENT: the same every day
    if daily == 0:
        return Forecast(method, daily, None, None, order, lead_use)
    days_left: Fraction | None
    if method == RECENT:
        days_left = Fraction(max(stock, 0)) / daily
        out = now + _span(days_left) if days_left <= HORIZON_DAYS else None
    else:
        out = _runs_out(max(stock, 0), rate, now, zone)
        days_left = None if out is None else _seconds(out - now) / 86400
    return Forecast(method, daily, days_left, out, order, lead_use)


def _span(days: Fraction) -> datetime.timedelta:
    """`days` as a timedelta, to the microsecond."""
    return datetime.timedelta(microseconds=round(days * 86400 * 10**6))


def _seconds(span: datetime.timedelta) -> Fraction:
    """A span in seconds, exactly (to the microsecond)."""
    return Fraction(span // datetime.timedelta(microseconds=1), 10**6)


def suggest(stock: int, par: int, lead_use: int, pack_size: int | None) -> int:
    """What to order now so that stock is back at its par level after the use expected
    while the delivery comes: par - (stock - lead_use), rounded up to whole packs."""
    need = par - (stock - lead_use)
    if need <= 0:
        return 0
    if pack_size:
        return -(-need // pack_size) * pack_size
    return need


def _recent_daily(
    used: Use, first_use: datetime.datetime | None, now: datetime.datetime, window_days: int
) -> Fraction | None:
    if first_use is None:
        return None
    naive_now = now.astimezone(datetime.UTC).replace(tzinfo=None)
    start = max(naive_now - window_days * DAY, first_use)
    span = max(naive_now - start, HOUR)
    hour = start.replace(minute=0, second=0, microsecond=0)
    total = sum(amount for h, amount in used.items() if h >= hour)
    # A refund in the window of an order made before it gives back more than the window
    # used: no use, not a negative one (which would run out in the past).
    return Fraction(max(total, 0)) / _seconds(span) * 86400


def _weekday_rate(
    used: Use,
    first_use: datetime.datetime | None,
    now: datetime.datetime,
    zone: ZoneInfo,
    rules: Rules,
) -> Callable[[datetime.date], Fraction] | None:
    """Each local weekday's average use over the last full local weeks, or none when
    there are fewer than two full weeks of history."""
    if first_use is None:
        return None
    today = now.astimezone(zone).date()
    first_day = first_use.replace(tzinfo=datetime.UTC).astimezone(zone).date()
    # Full local days of history before today; the first day counts as full only if
    # the first use came at its very start, so it is left out.
    full_days = (today - first_day).days - 1
    weeks = min(rules.weekday_weeks, full_days // 7)
    if weeks < 2:
        return None
    # Each hour's use to its local day, once (an hour straddling a half-hour zone's
    # midnight counts in the day it starts in); then the last full weeks by weekday.
    # The day is found by bisection among the days' starts (each ends where the next
    # starts), and summed in integers: half the time of a time-zone conversion and a
    # Fraction per hour, for every ingredient on every dashboard poll.
    first_counted = today - datetime.timedelta(days=weeks * 7)
    starts = [local_day(first_counted + d * DAY, zone)[0] for d in range(weeks * 7 + 1)]
    per_weekday = [0] * 7  # integers of the unit, as the sums: Fractions only to divide
    for hour, amount in used.items():
        index = bisect.bisect_right(starts, hour) - 1
        if 0 <= index < weeks * 7:
            per_weekday[(first_counted + index * DAY).weekday()] += amount
    # Never below 0: a weekday whose give-backs outweigh its use (see _recent_daily).
    averages = [Fraction(max(total, 0), weeks) for total in per_weekday]
    return lambda day: averages[day.weekday()]


def zone(name: str) -> ZoneInfo:
    """The merchant's time zone for a forecast, or UTC if this machine does not know it
    (a name PATCH accepted where the time-zone database was newer): a forecast a few
    hours off, said in the log, rather than a page or an alert email that fails."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("time zone %r is unknown on this machine: forecasts use UTC", name)
        return ZoneInfo("UTC")


def local_day(day: datetime.date, zone: ZoneInfo) -> tuple[datetime.datetime, datetime.datetime]:
    """The naive UTC instants where the local `day` starts and the next one does: 23 or
    25 hours apart across a daylight-saving change."""

    def start(d: datetime.date) -> datetime.datetime:
        local = datetime.datetime.combine(d, datetime.time(), tzinfo=zone)
        return local.astimezone(datetime.UTC).replace(tzinfo=None)

    return start(day), start(day + DAY)


def _day_fraction_left(now: datetime.datetime, zone: ZoneInfo) -> Fraction:
    """The part of the local day still ahead of `now` (by real time)."""
    start, end = local_day(now.astimezone(zone).date(), zone)
    naive = now.astimezone(datetime.UTC).replace(tzinfo=None)
    return _seconds(end - naive) / _seconds(end - start)


def _runs_out(
    stock: int, rate: Callable[[datetime.date], Fraction], now: datetime.datetime, zone: ZoneInfo
) -> datetime.datetime | None:
    """When the stock reaches 0 at the weekday rates, walking local days from now."""
    if stock <= 0:
        return now
    left = Fraction(stock)
    day = now.astimezone(zone).date()
    fraction = _day_fraction_left(now, zone)
    at = now.astimezone(datetime.UTC).replace(tzinfo=None)
    week = sum((rate(day + d * DAY) for d in range(7)), Fraction(0))
    walked = 0  # local days walked from today's
    while walked < HORIZON_DAYS:
        if walked == 1 and week > 0:
            # Whole weeks at once (each uses `week`), stopping short of the one it runs
            # out in: a stock that lasts months is not walked day by day.
            skip = -(-left // week) - 1
            if walked + 7 * skip >= HORIZON_DAYS:
                return None
            left -= skip * week
            day += 7 * skip * DAY
            walked += 7 * skip
            at = local_day(day, zone)[0]
        _, end = local_day(day, zone)
        use = rate(day) * fraction
        if use >= left and use > 0:
            # Within this day, at its even pace: the part of what is left of it.
            taken = (end - at) * float(left / use)
            return (at + taken).replace(tzinfo=datetime.UTC)
        left -= use
        day, at, fraction = day + DAY, end, Fraction(1)
        walked += 1
    return None


def _use_between(
    rate: Callable[[datetime.date], Fraction],
    start: datetime.datetime,
    end: datetime.datetime,
    zone: ZoneInfo,
    method: str,
) -> Fraction:
    """The use expected from `start` to `end` (aware)."""
    if method == RECENT:
        return rate(start.date()) * _seconds(end - start) / 86400
    total = Fraction(0)
    at = start.astimezone(datetime.UTC).replace(tzinfo=None)
    stop = end.astimezone(datetime.UTC).replace(tzinfo=None)
    day = start.astimezone(zone).date()
    while at < stop:
        day_start, day_end = local_day(day, zone)
        until = min(day_end, stop)
        total += rate(day) * _seconds(until - at) / _seconds(day_end - day_start)
        day, at = day + DAY, day_end
    return total
