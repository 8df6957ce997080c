"""The alert email says how long the stock lasts and what to order (issue 20), from the
forecast stored on the alert in the transaction that raised it: a later change of stock,
history or time zone does not change what the email says."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session, transaction
from kitchen.models import Alert, Merchant, Order
from tests.helpers import SmtpServer, client, eventually, history

HOUR = datetime.timedelta(hours=1)


def made(api: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post(path, json=body)
    assert r.status_code in (200, 201), r.text
    answer: dict[str, Any] = r.json()
    return answer


def used_every_hour(ingredient_id: int, amount: int, hours: int) -> None:
    """`amount` used in each of the last `hours` whole hours (well inside the 7-day window,
    whichever hour processing runs in), and 5 more 200 hours ago: so the history is longer
    than the window, and the daily use is exactly amount x hours (+ what comes) / 7."""
    top = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    top = top.replace(tzinfo=None)
    past = {top - h * HOUR: amount for h in range(1, hours + 1)}
    history(ingredient_id, past | {top - 200 * HOUR: 5})


def stored_forecast(ingredient_id: int) -> dict[str, Any]:
    with session():
        alert = Alert.get(Alert.ingredient == ingredient_id)
        assert alert.forecast is not None
        found: dict[str, Any] = json.loads(alert.forecast)
        return found


def body_text(message: Any) -> str:
    [part] = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    return bytes(part.get_payload(decode=True)).decode()


def mail_about(smtp: SmtpServer, name: str) -> str:
    [mail] = [m for m in smtp.messages if f"Low stock: {name} " in m["Subject"]]
    return " ".join(body_text(mail).split())


def set_timezone(zone: str) -> None:
    # PATCH /merchant takes it once the digest lands (part D); the column is what counts.
    with transaction():
        Merchant.update(timezone=zone).where(Merchant.is_default == True).execute()  # noqa: E712


def test_an_order_alert_mails_the_forecast_of_its_batch_even_after_the_stock_changed(
    make_kitchen: Callable[..., Kitchen], smtp: SmtpServer
) -> None:
    # No notification role yet: the mail is composed only after everything changed.
    kitchen = make_kitchen("api,processing,relay")
    api = client(kitchen)
    shallot = made(
        api,
        "/ingredients",
        {"name": "shallot", "stock": 2130, "full_stock": 1000, "pack_size": 500},
    )
    soup = made(
        api,
        "/products",
        {"name": "Soup", "recipe": [{"ingredient_id": shallot["id"], "amount": 100}]},
    )
    set_timezone("Europe/Paris")
    used_every_hour(shallot["id"], 7, 150)  # 1,050 g in the window; stock 1,075 g

    # 7 soups take 700 g in one batch: 375 g left, below half of 1,000 g. Daily use is
    # (1,050 + 700) / 7 = 250 g: 1.5 days left. Delivery takes 2 days (500 g more
    # used), so 1,000 - (375 - 500) = 1,125 g brings it back to par: 3 packs of 500 g.
    order = made(api, "/order", {"products": [{"product_id": soup["id"], "quantity": 7}]})
    eventually(lambda: api.get(f"/order/{order['id']}").json()["status"] == "applied")
    with session():
        processed = Order.get_by_id(order["id"]).processed_at
    assert processed is not None
    at = processed.replace(tzinfo=datetime.UTC)
    runs_out = (at + datetime.timedelta(hours=36)).replace(second=0, microsecond=0)
    assert stored_forecast(shallot["id"]) == {
        "method": "recent",
        "daily_use": 250.0,
        "days_left": 1.5,
        "runs_out_at": runs_out.strftime("%Y-%m-%dT%H:%MZ"),
        "suggested_order": 1500,
        "stock": 375,
        "timezone": "Europe/Paris",
    }

    # Later: a restock, more use, another time zone. None of it reaches the email.
    assert (
        api.post(f"/ingredients/{shallot['id']}/restock", json={"amount": 4000}).status_code == 200
    )
    used_every_hour(shallot["id"], 3, 20)
    set_timezone("Asia/Tokyo")
    assert api.get(f"/ingredients/{shallot['id']}").json()["forecast"]["days_left"] != 1.5

    make_kitchen("notification")
    eventually(lambda: len(smtp.messages) == 1)
    paris = runs_out.astimezone(ZoneInfo("Europe/Paris"))
    text = mail_about(smtp, "shallot")
    assert text.startswith("shallot is down to 375 g of its par level of 1000 g")
    assert text.endswith(
        f"At this week's pace shallot runs out in about 1.5 days ({paris:%A %H:%M}). "
        "Suggested order: 1.5 kg."
    )


def test_stock_moves_and_a_new_default_threshold_mail_the_forecast_in_the_unit(
    kitchen: Kitchen, smtp: SmtpServer
) -> None:
    api = client(kitchen)
    # Made below its line, never used: it alerts, but nothing can be said of its pace.
    milk = made(
        api, "/ingredients", {"name": "milk", "unit": "ml", "stock": 100, "full_stock": 1000}
    )
    eventually(lambda: len(smtp.messages) == 1)
    assert stored_forecast(milk["id"]) == {
        "method": "recent",
        "daily_use": None,
        "days_left": None,
        "runs_out_at": None,
        "suggested_order": 900,
        "stock": 100,
        "timezone": "UTC",
    }
    text = mail_about(smtp, "milk")
    assert text.endswith("Kitchen sends no other alert for it.")
    assert "runs out" not in text and "Suggested order" not in text

    # Buns: 7 pieces an hour for 120 hours is 120 a day (655 left, above half of 1,000);
    # waste (not use) takes them below half: 156 pieces last 1.3 days, and 1,000 - (156 -
    # 240 used while the delivery comes) = 1,084 bring them back to par.
    bun = made(
        api, "/ingredients", {"name": "bun", "unit": "piece", "stock": 1500, "full_stock": 1000}
    )
    used_every_hour(bun["id"], 7, 120)
    assert api.get(f"/ingredients/{bun['id']}").json()["stock"] == 655
    before = datetime.datetime.now(datetime.UTC)
    r = api.post(f"/ingredients/{bun['id']}/waste", json={"amount": 499})
    assert r.status_code == 200 and r.json()["alert_armed"] is False
    after = datetime.datetime.now(datetime.UTC)
    ahead = stored_forecast(bun["id"])
    runs_out = datetime.datetime.strptime(ahead["runs_out_at"], "%Y-%m-%dT%H:%MZ")
    runs_out = runs_out.replace(tzinfo=datetime.UTC)
    lasts = datetime.timedelta(days=1.3)
    assert (before + lasts).replace(second=0, microsecond=0) <= runs_out <= after + lasts
    assert ahead | {"runs_out_at": None} == {
        "method": "recent",
        "daily_use": 120.0,
        "days_left": 1.3,
        "runs_out_at": None,
        "suggested_order": 1084,
        "stock": 156,
        "timezone": "UTC",
    }
    eventually(lambda: len(smtp.messages) == 2)
    assert mail_about(smtp, "bun").endswith(
        f"At this week's pace bun runs out in about 1.3 days ({runs_out:%A %H:%M}). "
        "Suggested order: 1084 pieces."
    )

    # Cream follows the merchant's threshold: 5 ml an hour for 140 hours is 100 ml a day,
    # 300 ml left (3 days); a new default of 40% (400 ml) takes it below.
    cream = made(
        api, "/ingredients", {"name": "cream", "unit": "ml", "stock": 1005, "full_stock": 1000}
    )
    used_every_hour(cream["id"], 5, 140)
    assert api.patch("/merchant", json={"threshold": 0.4}).status_code == 200
    ahead = stored_forecast(cream["id"])
    assert (ahead["days_left"], ahead["daily_use"], ahead["suggested_order"]) == (3.0, 100.0, 900)
    runs_out = datetime.datetime.strptime(ahead["runs_out_at"], "%Y-%m-%dT%H:%MZ")
    eventually(lambda: len(smtp.messages) == 3)
    assert mail_about(smtp, "cream").endswith(
        f"At this week's pace cream runs out in about 3 days ({runs_out:%A %H:%M}). "
        "Suggested order: 900 ml."
    )
