"""The forecast rules (kitchen/forecast.py), pure: hourly use in, days left and what to
order out. Each history is built hour by hour at instants the test chooses."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from kitchen.forecast import RECENT, WEEKDAY, Forecast, Rules, forecast, local_day, suggest

UTC = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")
HOUR = datetime.timedelta(hours=1)
DEFAULT = Rules()  # the settings' defaults: 7 days, 4 weeks


def at(text: str, zone: ZoneInfo = UTC) -> datetime.datetime:
    """An aware instant from local wall time in `zone`, as UTC."""
    local = datetime.datetime.fromisoformat(text).replace(tzinfo=zone)
    return local.astimezone(datetime.UTC)


def naive(instant: datetime.datetime) -> datetime.datetime:
    return instant.astimezone(datetime.UTC).replace(tzinfo=None)


def hourly(
    start: datetime.datetime, end: datetime.datetime, amount: Callable[[datetime.datetime], int]
) -> dict[datetime.datetime, int]:
    """Every UTC hour from `start` to `end` (aware, end excluded), naive as the sums store
    them, each with `amount(its aware UTC start)`."""
    hours = {}
    hour = start
    while hour < end:
        hours[naive(hour)] = amount(hour)
        hour += HOUR
    return hours


def run(
    used: dict[datetime.datetime, int],
    now: datetime.datetime,
    *,
    stock: int = 1000,
    par: int = 1000,
    lead_time_days: int = 2,
    pack_size: int | None = None,
    zone: ZoneInfo = UTC,
    rules: Rules = DEFAULT,
) -> Forecast:
    """The forecast with the first use taken from the history, as usage.first_use does."""
    return forecast(
        stock=stock,
        par=par,
        lead_time_days=lead_time_days,
        pack_size=pack_size,
        used=used,
        first_use=min(used) if used else None,
        now=now,
        zone=zone,
        rules=rules,
    )


# -- the recent method -----------------------------------------------------------------


def test_recent_pace_days_left_and_packs() -> None:
    """Three days at 10 g an hour: 240 g a day. 1000 g last 4 1/6 days (to Friday 16:00);
    the two days a delivery takes use 480 g, so 480 g bring it back to par: two 250 g
    bags."""
    now = at("2026-11-30T12:00")
    used = hourly(now - 72 * HOUR, now, lambda _: 10)
    ahead = run(used, now, pack_size=250)
    assert ahead.method == RECENT
    assert ahead.daily_use == 240
    assert ahead.days_left == Fraction(1000, 240)
    assert ahead.lead_use == 480
    assert ahead.view() == {
        "method": "recent",
        "daily_use": 240.0,
        "days_left": 4.2,
        "runs_out_at": "2026-12-04T16:00Z",
        "suggested_order": 500,
    }
    # Without a pack size, exactly what is missing.
    assert run(used, now).suggested_order == 480


def test_less_than_an_hour_of_history_counts_as_an_hour() -> None:
    """The first use came 10 minutes ago: 30 g in those minutes is a pace of 30 g an hour
    (720 a day), not 30 g every 10 minutes (4,320 a day)."""
    now = at("2026-11-30T12:10")
    ahead = run({naive(at("2026-11-30T12:00")): 30}, now)
    assert ahead.view()["daily_use"] == 720.0
    assert ahead.view()["days_left"] == round(1000 / 720, 1)
    # At the very hour of the first use, too (no division by zero).
    assert run({naive(at("2026-11-30T12:00")): 30}, at("2026-11-30T12:00")).daily_use == 720


def test_the_window_leaves_older_use_out() -> None:
    """Thirteen days of history (fewer than two full weeks: the recent method): the six
    oldest at 100 g an hour, the last seven at 10 g. Only the window's counts."""
    now = at("2026-11-30T12:00")
    used = hourly(now - 13 * 24 * HOUR, now, lambda h: 10 if h >= now - 7 * 24 * HOUR else 100)
    ahead = run(used, now)
    assert (ahead.method, ahead.daily_use) == (RECENT, 240)
    # A window of 3 days sees 3 days; one of 10 days sees 3 of the heavy days too.
    assert run(used, now, rules=Rules(window_days=3)).daily_use == 240
    assert run(used, now, rules=Rules(window_days=10)).daily_use == (7 * 240 + 3 * 2400) / 10


def test_use_net_of_give_backs_and_nothing_used() -> None:
    """Never used: no pace, no days left, nothing runs out; what is owed is par - stock."""
    now = at("2026-11-30T12:00")
    never = run({}, now, stock=300, par=1000, pack_size=250)
    assert never.view() == {
        "method": "recent",
        "daily_use": None,
        "days_left": None,
        "runs_out_at": None,
        "suggested_order": 750,  # 700 missing: three bags
    }
    assert never.lead_use == 0
    # Used once, long ago (outside the window): a pace of 0, it does not run out.
    old = run({naive(now - 30 * 24 * HOUR): 50}, now, rules=Rules(weekday_weeks=0))
    assert old.view() == {
        "method": "recent",
        "daily_use": 0.0,
        "days_left": None,
        "runs_out_at": None,
        "suggested_order": 0,
    }


def test_out_of_stock_runs_out_now() -> None:
    now = at("2026-11-30T12:34")
    used = hourly(now.replace(minute=0) - 24 * HOUR, now.replace(minute=0), lambda _: 10)
    ahead = run(used, now, stock=0, par=1000)
    assert ahead.view()["days_left"] == 0.0
    assert ahead.view()["runs_out_at"] == "2026-11-30T12:34Z"
    # par - (0 - 2 days of use): 1000 + 480, to the gram.
    assert ahead.suggested_order == 1000 + ahead.lead_use


# -- the weekday method ----------------------------------------------------------------


def saturday_double(hour: datetime.datetime) -> int:
    """10 g each hour, 20 g on Saturdays (Paris time)."""
    return 20 if hour.astimezone(PARIS).weekday() == 5 else 10


@pytest.mark.parametrize("weeks", [3, 4])
def test_weekday_pace_runs_out_on_saturday(weeks: int) -> None:
    """Weeks of history in Paris (winter, UTC+1): 240 g a day, 480 g on Saturdays. From
    Wednesday 08:00 local, 880 g last the rest of Wednesday (160), Thursday and Friday
    (480) and 240 g of Saturday: out on Saturday at 12:00 local, 11:00 UTC. The average
    day would have said Saturday 13:00 local."""
    now = at("2026-12-02T08:00", PARIS)  # a Wednesday
    start = at("2026-12-02T00:00", PARIS) - (weeks * 7 + 1) * 24 * HOUR
    used = hourly(start, now, saturday_double)
    ahead = run(used, now, stock=880, par=2000, zone=PARIS)
    assert ahead.method == WEEKDAY
    assert ahead.daily_use == Fraction(6 * 240 + 480, 7)
    assert ahead.runs_out_at == at("2026-12-05T12:00", PARIS)
    assert ahead.view() == {
        "method": "weekday",
        "daily_use": 274.3,
        "days_left": 3.2,  # 3 days 4 hours
        "runs_out_at": "2026-12-05T11:00Z",
        # The next two days (to Friday 08:00) take 160 + 240 + 80 = 480, where the
        # average day would say 549: par 2000 - (880 - 480).
        "suggested_order": 1600,
    }
    assert ahead.lead_use == 480
    # The recent method on the same use: the week's average every day.
    recent = run(used, now, stock=880, par=2000, zone=PARIS, rules=Rules(weekday_weeks=1))
    assert recent.method == RECENT
    assert recent.view()["runs_out_at"] == "2026-12-05T12:00Z"


@pytest.mark.parametrize(("days", "method"), [(14, RECENT), (15, WEEKDAY)])
def test_two_full_weeks_are_needed_for_the_weekday_method(days: int, method: str) -> None:
    """The first day is not full (it is left out); today is not over: 15 local days of
    history from midnight make 14 full ones, two weeks."""
    now = at("2026-12-02T08:00", PARIS)
    start = at("2026-12-02T00:00", PARIS) - days * 24 * HOUR
    ahead = run(hourly(start, now, saturday_double), now, zone=PARIS)
    assert ahead.method == method


def test_weekday_zero_on_closed_days() -> None:
    """A kitchen closed on Sundays and Mondays: its stock waits over them."""
    now = at("2026-12-05T12:00")  # Saturday noon, UTC
    start = at("2026-12-05T00:00") - 29 * 24 * HOUR
    used = hourly(start, now, lambda h: 0 if h.weekday() in (6, 0) else 10)
    # 120 g for the rest of Saturday, then nothing until Tuesday: out at Tuesday 06:00.
    ahead = run(used, now, stock=180)
    assert ahead.method == WEEKDAY
    assert ahead.view()["runs_out_at"] == "2026-12-08T06:00Z"
    assert ahead.view()["days_left"] == 2.8  # 2 days 18 hours


# -- daylight-saving changes (Europe/Paris) --------------------------------------------


def test_local_days_are_23_and_25_hours_long() -> None:
    assert local_day(datetime.date(2026, 3, 29), PARIS) == (
        datetime.datetime(2026, 3, 28, 23),
        datetime.datetime(2026, 3, 29, 22),
    )
    assert local_day(datetime.date(2026, 10, 25), PARIS) == (
        datetime.datetime(2026, 10, 24, 22),
        datetime.datetime(2026, 10, 25, 23),
    )
    assert local_day(datetime.date(2026, 11, 30), PARIS) == (
        datetime.datetime(2026, 11, 29, 23),
        datetime.datetime(2026, 11, 30, 23),
    )


@pytest.mark.parametrize(
    ("now", "sunday", "out", "days_left"),
    [
        # Spring forward: Sunday is 23 hours. Half of its 240 g is gone 11.5 hours after
        # its start (23:00 UTC): 10:30 UTC, 12:30 local summer time.
        ("2026-03-28T12:00", 230, "2026-03-29T10:30Z", 1.0),  # 23.5 h
        # Fall back: Sunday is 25 hours: half of it 12.5 hours after 22:00 UTC.
        ("2026-10-24T12:00", 250, "2026-10-25T10:30Z", 1.0),  # 24.5 h
    ],
)
def test_a_dst_week(now: str, sunday: int, out: str, days_left: float) -> None:
    """Four weeks at 10 g every real hour, to Saturday noon before a change: each weekday
    240 g. 240 g in stock last the rest of Saturday (120) and half of Sunday, whose hours
    are as many as the clocks make it. A week later that Sunday counts its own hours:
    230 g or 250 g."""
    saturday = at(now, PARIS)
    used = hourly(saturday - 29 * 24 * HOUR, saturday, lambda _: 10)
    ahead = run(used, saturday, stock=240, zone=PARIS)
    assert ahead.method == WEEKDAY
    assert ahead.view()["runs_out_at"] == out
    assert ahead.view()["days_left"] == days_left

    wednesday = saturday + 4 * 24 * HOUR  # the same wall time: after the change
    used = hourly(saturday - 29 * 24 * HOUR, wednesday, lambda _: 10)
    later = run(used, wednesday, stock=240, zone=PARIS)
    assert later.method == WEEKDAY
    # Four Sundays averaged: three of 240 g and this one.
    assert later.daily_use == (6 * 240 + Fraction(3 * 240 + sunday, 4)) / 7


# -- suggested orders ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stock", "par", "lead_use", "pack", "order"),
    [
        (1000, 1000, 0, None, 0),  # at par, nothing used meanwhile
        (1000, 1000, 0, 250, 0),
        (1500, 1000, 480, 250, 0),  # above par by more than the lead time takes
        (1480, 1000, 480, 250, 0),  # exactly back at par when the delivery comes
        (1000, 1000, 480, None, 480),
        (1000, 1000, 480, 250, 500),  # rounded up to whole packs
        (1000, 1000, 500, 250, 500),  # already whole
        (520, 1000, 480, 5000, 5000),  # one sack, however little is missing
        (0, 12, 3, 6, 18),  # pieces: 15 missing, three boxes of 6
    ],
)
def test_suggestions_are_whole_packs(
    stock: int, par: int, lead_use: int, pack: int | None, order: int
) -> None:
    assert suggest(stock, par, lead_use, pack) == order


def test_suggestion_in_packs_from_the_forecast() -> None:
    """The lead time's use is rounded up to the unit before packs are counted."""
    now = at("2026-11-30T12:00")
    used = hourly(now - 24 * HOUR, now, lambda h: 1 if h.hour % 3 else 0)  # 16 pieces a day
    ahead = run(used, now, stock=20, par=20, lead_time_days=1, pack_size=6)
    assert ahead.lead_use == 16
    assert ahead.suggested_order == 18  # 16 missing: three boxes of 6
    assert run(used, now, stock=20, par=20, lead_time_days=0, pack_size=6).suggested_order == 0


# -- give-backs (refunds with restock, compensations) ----------------------------------


def test_a_refund_of_an_older_order_is_no_use_not_negative_use() -> None:
    """An order 8 days ago used 200 g; its refund gave them back yesterday. Within the
    7-day window the net is -200 g: that is no use (before this fix: -28.6 g a day, -35
    days left, run out a month ago)."""
    now = at("2026-11-30T12:00")
    used = {naive(now - 8 * 24 * HOUR): 200, naive(now - 24 * HOUR): -200}
    ahead = run(used, now)
    assert ahead.view() == {
        "method": "recent",
        "daily_use": 0.0,
        "days_left": None,
        "runs_out_at": None,
        "suggested_order": 0,
    }
    assert ahead.lead_use == 0
    # Within the window the two still net out against other use.
    used[naive(now - 2 * 24 * HOUR)] = 900
    assert run(used, now).daily_use == Fraction(700, 7)


def test_a_weekday_whose_give_backs_outweigh_its_use_counts_as_none() -> None:
    """Three weeks at 240 g a day, closed on Tuesdays, where last Tuesday a refund gave
    480 g back: Tuesdays use nothing (not -160 g, which would refill the stock)."""
    now = at("2026-11-30T00:00")  # a Monday
    used = hourly(now - 22 * 24 * HOUR, now, lambda h: 0 if h.weekday() == 1 else 10)
    used[naive(at("2026-11-24T12:00"))] = -480
    ahead = run(used, now, stock=300)
    assert ahead.method == WEEKDAY
    assert ahead.daily_use == Fraction(6 * 240, 7)
    # Monday takes 240, Tuesday nothing, Wednesday the last 60 g by 06:00.
    assert ahead.view()["runs_out_at"] == "2026-12-02T06:00Z"


# -- stock that lasts weeks ------------------------------------------------------------


def test_weeks_ahead_at_the_weekday_pace() -> None:
    """Ten weeks (1,920 g each) more than the Saturday case: out ten Saturdays later, at
    the same local hour; beyond a year (the horizon), it does not run out."""
    now = at("2026-12-02T08:00", PARIS)
    used = hourly(at("2026-12-02T00:00", PARIS) - 29 * 24 * HOUR, now, saturday_double)
    ahead = run(used, now, stock=880 + 10 * 1920, zone=PARIS)
    assert ahead.method == WEEKDAY
    assert ahead.view()["runs_out_at"] == "2027-02-13T11:00Z"
    assert ahead.view()["days_left"] == 73.2  # 73 days 4 hours
    never = run(used, now, stock=53 * 1920, zone=PARIS)
    assert (never.runs_out_at, never.days_left) == (None, None)
    assert never.daily_use == Fraction(1920, 7)


def test_a_week_ahead_into_the_spring_change() -> None:
    """From Saturday noon a week before the change, 240 g a day: the rest of Saturday, a
    week, and half of the 23-hour Sunday."""
    saturday = at("2026-03-21T12:00", PARIS)
    used = hourly(saturday - 29 * 24 * HOUR, saturday, lambda _: 10)
    ahead = run(used, saturday, stock=120 + 7 * 240 + 120, zone=PARIS)
    assert ahead.method == WEEKDAY
    assert ahead.view()["runs_out_at"] == "2026-03-29T10:30Z"


def test_recent_pace_beyond_a_year_keeps_its_days_left() -> None:
    """1 g an hour (24 a day) and 10 kg in stock: 416.7 days, past the one-year horizon,
    so no time it runs out, but the days are still stock / pace."""
    now = at("2026-11-30T12:00")
    ahead = run(hourly(now - 72 * HOUR, now, lambda _: 1), now, stock=10_000, par=100)
    assert ahead.view() == {
        "method": "recent",
        "daily_use": 24.0,
        "days_left": 416.7,
        "runs_out_at": None,
        "suggested_order": 0,
    }
