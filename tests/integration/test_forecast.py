"""Forecasts on the API: days of stock left and what to order, from the ledger's use.

The history is written at past hours the test chooses (`helpers.history`): weeks of a
kitchen's use in one transaction, no sleeping."""

from __future__ import annotations

import datetime

import pytest
from starlette.testclient import TestClient

from kitchen.db import session
from kitchen.models import Merchant
from tests.helpers import Seeded, history, hours_back, stock_of


def test_days_left_and_the_suggested_order_follow_the_last_days_of_use(
    api: TestClient, seeded: Seeded
) -> None:
    """Onion: 1 kg par, 2 days' lead time, sold in 250 g bags. Three days at 10 g an
    hour make 240 g a day: 1000 g last 4.2 days; over the two days a delivery takes
    480 g go, so 480 g bring it back to its par level: two bags, 500 g."""
    now = datetime.datetime.now(datetime.UTC)
    assert api.patch(f"/ingredients/{seeded.onion}", json={"pack_size": 250}).status_code == 200
    history(seeded.onion, hours_back(now, 72, lambda hour: 10))
    assert api.post(f"/ingredients/{seeded.onion}/count", json={"amount": 1000}).status_code == 200

    onion = api.get(f"/ingredients/{seeded.onion}").json()
    assert stock_of(seeded.onion) == 1000
    assert (onion["lead_time_days"], onion["pack_size"]) == (2, 250)
    ahead = onion["forecast"]
    assert ahead["method"] == "recent"
    # 720 g since the first use, 72 hours before this hour began, plus its minutes
    first = now.replace(minute=0, second=0, microsecond=0) - datetime.timedelta(hours=72)
    daily = 720 / ((now - first) / datetime.timedelta(days=1))
    assert abs(ahead["daily_use"] - daily) <= 0.1
    assert abs(ahead["days_left"] - 1000 / daily) <= 0.1
    runs_out = datetime.datetime.fromisoformat(ahead["runs_out_at"].replace("Z", "+00:00"))
    assert abs(runs_out - (now + datetime.timedelta(days=1000 / daily))) <= datetime.timedelta(
        minutes=2
    )
    assert ahead["suggested_order"] == 500

    # Cheese was never used: it does not run out, and at its par level nothing is owed.
    cheese = api.get(f"/ingredients/{seeded.cheese}").json()["forecast"]
    assert cheese == {
        "method": "recent",
        "daily_use": None,
        "days_left": None,
        "runs_out_at": None,
        "suggested_order": 0,
    }


def test_a_time_zone_this_machine_does_not_know_is_taken_as_utc(
    api: TestClient, seeded: Seeded, caplog: pytest.LogCaptureFixture
) -> None:
    """A zone PATCH accepted where the time-zone database was newer: the page still
    gets its forecasts (in UTC, said in the log), never a 500."""
    with session():
        Merchant.update(timezone="Mars/Olympus").where(Merchant.is_default).execute()
    history(seeded.onion, hours_back(datetime.datetime.now(datetime.UTC), 72, lambda hour: 10))
    shown = api.get("/ingredients")
    assert shown.status_code == 200
    onion = next(i for i in shown.json() if i["id"] == seeded.onion)
    assert onion["forecast"]["method"] == "recent" and onion["forecast"]["daily_use"] > 0
    assert "time zone 'Mars/Olympus' is unknown on this machine: forecasts use UTC" in caplog.text
