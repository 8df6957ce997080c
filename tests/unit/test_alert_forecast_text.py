"""The alert email's forecast sentence (notifications.compose), from a stored forecast:
its wording for each method, the time in the stored zone, and when it says nothing."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from kitchen.notifications import compose

HALF = Fraction(1, 2)


def ahead(**changes: Any) -> dict[str, Any]:
    stored = {
        "method": "recent",
        "daily_use": 320.0,
        "days_left": 1.5,
        "runs_out_at": "2026-12-03T13:00Z",  # a Thursday
        "suggested_order": 1000,
        "stock": 480,
        "timezone": "Europe/Paris",
    }
    return stored | changes


def sentence(stored: dict[str, Any] | None, unit: str = "g") -> str:
    plain_subject, plain = compose("onion", 480, 1000, HALF, unit)
    subject, body = compose("onion", 480, 1000, HALF, unit, stored)
    assert subject == plain_subject  # the subject says nothing of the forecast
    assert body.startswith(plain)  # the alert's own words come first, unchanged
    return body[len(plain) :]


def test_the_recent_pace_in_the_merchant_zone_with_the_suggested_order() -> None:
    assert sentence(ahead()) == (
        "\nAt this week's pace onion runs out in about 1.5 days (Thursday 14:00). "
        "Suggested order: 1 kg.\n"
    )
    # The zone stored with it: in Tokyo that instant is Thursday 22:00.
    assert "(Thursday 22:00)" in sentence(ahead(timezone="Asia/Tokyo"))


def test_the_weekday_pace_one_day_and_a_date_a_week_ahead() -> None:
    assert sentence(ahead(method="weekday", days_left=1.0), "ml") == (
        "\nAt the usual pace for each weekday onion runs out in about 1 day "
        "(Thursday 14:00). Suggested order: 1 l.\n"
    )
    far = sentence(ahead(days_left=9.2, runs_out_at="2026-12-11T08:30Z", suggested_order=1))
    assert far == (
        "\nAt this week's pace onion runs out in about 9.2 days (Friday 11 December 09:30). "
        "Suggested order: 1 g.\n"
    )


def test_within_the_hour_run_out_no_suggestion_and_nothing_known() -> None:
    assert sentence(ahead(days_left=0.0, suggested_order=0), "piece") == (
        "\nAt this week's pace onion runs out within about an hour (Thursday 14:00).\n"
    )
    assert sentence(ahead(days_left=0.0, stock=0, suggested_order=3), "piece") == (
        "\nonion has run out. Suggested order: 3 pieces.\n"
    )
    # Beyond the forecast's horizon: how long, but no time.
    assert sentence(ahead(days_left=400.0, runs_out_at=None)) == (
        "\nAt this week's pace onion runs out in about 400 days. Suggested order: 1 kg.\n"
    )
    # Never used (no pace), or an alert from before forecasts: the alert alone.
    assert sentence(ahead(days_left=None, daily_use=None, runs_out_at=None)) == ""
    assert sentence(None) == ""
