"""The payment cycle end to end, as a till and a cook see it: HTTP in, the fake provider's
card, Kafka between the roles, money and stock out. One all-roles Kitchen (embedded Kafka,
or the real broker and PostgreSQL in CI's second run)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session
from kitchen.models import FakeIntent, FakeRequest, Ingredient, LedgerEntry
from tests.helpers import Seeded, eventually, read_topic, stock_after

PRICE = 1250  # cents: a Burger at 12.50 EUR


def paid_kitchen(api: TestClient, seeded: Seeded) -> None:
    """The reference kitchen, requiring payments, with a price on its Burger."""
    r = api.patch("/merchant", json={"payments": "required", "currency": "EUR"})
    assert r.status_code == 200, r.text
    r = api.patch(f"/products/{seeded.burger}", json={"price": PRICE})
    assert r.status_code == 200, r.text


def order(api: TestClient, seeded: Seeded, burgers: int) -> dict[str, Any]:
    r = api.post("/order", json=seeded.order(burgers))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def get(api: TestClient, order_id: int) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/order/{order_id}").json()
    return body


def status_of(api: TestClient, order_id: int) -> tuple[str, str]:
    body = get(api, order_id)
    return body["status"], body["payment"]["status"]


def stock() -> dict[str, int]:
    with session():
        return {i.name: i.stock for i in Ingredient.select()}


def test_an_order_is_held_cooked_captured_and_partly_refunded(
    kitchen: Kitchen, api: TestClient, seeded: Seeded
) -> None:
    paid_kitchen(api, seeded)
    placed = order(api, seeded, 2)
    payment = placed["payment"]
    assert placed["status"] == "awaiting_payment"
    assert payment["status"] == "requires_payment" and payment["provider"] == "fake"
    assert (payment["amount"], payment["currency"]) == (2 * PRICE, "EUR")
    assert payment["client_secret"]
    # Not paid yet: the kitchen has not seen it.
    assert stock() == stock_after(0)

    r = api.post(f"/payments/fake/{payment['id']}/authorize")
    assert r.status_code == 200, r.text
    eventually(lambda: status_of(api, placed["id"]) == ("applied", "captured"))
    assert stock() == stock_after(2)
    with session():
        intent = FakeIntent.get(FakeIntent.intent_id == payment["id"])
    assert (intent.status, intent.amount_received) == ("succeeded", 2 * PRICE)

    r = api.post(f"/order/{placed['id']}/refund", json={"amount": 1000, "reason": "cold fries"})
    assert r.status_code == 202, r.text
    eventually(lambda: get(api, placed["id"])["payment"]["status"] == "partially_refunded")
    assert get(api, placed["id"])["payment"]["refunded_amount"] == 1000
    with session():
        assert FakeIntent.get(FakeIntent.intent_id == payment["id"]).amount_refunded == 1000
    assert stock() == stock_after(2)  # no restock asked: the food was eaten

    # The rest, with the stock back: the ledger says refund, the stock is whole again.
    r = api.post(f"/order/{placed['id']}/refund", json={"restock": False})
    assert r.status_code == 202, r.text
    eventually(lambda: get(api, placed["id"])["payment"]["status"] == "refunded")
    assert get(api, placed["id"])["payment"]["refunded_amount"] == 2 * PRICE

    events = read_topic(
        kitchen.bootstrap_servers, kitchen.settings.kafka.order_events_topic, expect=5
    )
    kinds = Counter(e.json()["type"] for e in events if e.json()["id"] == placed["id"])
    assert kinds == {
        "PAYMENT_AUTHORIZED": 1,
        "ORDER_APPLIED": 1,
        "ORDER_PAID": 1,
        "ORDER_REFUNDED": 2,
    }
    assert all(e.key == str(events[0].json()["merchant_id"]) for e in events)
    with session():
        # One capture asked of the provider, whatever was retried or redelivered.
        captures = FakeRequest.select().where(FakeRequest.key.endswith(f"-{placed['id']}-capture"))
        assert captures.count() == 1


def test_short_stock_voids_the_hold_and_charges_nothing(
    kitchen: Kitchen, api: TestClient, seeded: Seeded
) -> None:
    paid_kitchen(api, seeded)
    placed = order(api, seeded, 200)  # 30 kg of beef: there are 20
    api.post(f"/payments/fake/{placed['payment']['id']}/authorize")
    eventually(lambda: status_of(api, placed["id"]) == ("rejected", "voided"))
    assert stock() == stock_after(0)
    with session():
        intent = FakeIntent.get(FakeIntent.intent_id == placed["payment"]["id"])
    assert (intent.status, intent.amount_received) == ("canceled", 0)


def test_a_declined_card_cancels_the_order(
    kitchen: Kitchen, api: TestClient, seeded: Seeded
) -> None:
    paid_kitchen(api, seeded)
    placed = order(api, seeded, 1)
    assert api.post(f"/payments/fake/{placed['payment']['id']}/decline").status_code == 200
    assert status_of(api, placed["id"]) == ("cancelled", "failed")
    assert "declined" in get(api, placed["id"])["reason"]
    assert stock() == stock_after(0)


def test_cancel_before_the_card_then_a_late_authorization_voids_the_hold(
    kitchen: Kitchen, api: TestClient, seeded: Seeded
) -> None:
    paid_kitchen(api, seeded)
    placed = order(api, seeded, 1)
    r = api.post(f"/order/{placed['id']}/cancel", json={"reason": "customer left"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    api.post(f"/payments/fake/{placed['payment']['id']}/authorize")  # the card comes late
    eventually(lambda: status_of(api, placed["id"]) == ("cancelled", "voided"))
    assert stock() == stock_after(0)
    with session():
        intent = FakeIntent.get(FakeIntent.intent_id == placed["payment"]["id"])
    assert (intent.status, intent.amount_received) == ("canceled", 0)


def test_an_applied_order_cannot_be_cancelled_but_refunded_with_its_stock(
    kitchen: Kitchen, api: TestClient, seeded: Seeded
) -> None:
    paid_kitchen(api, seeded)
    placed = order(api, seeded, 3)
    api.post(f"/payments/fake/{placed['payment']['id']}/authorize")
    eventually(lambda: status_of(api, placed["id"]) == ("applied", "captured"))
    r = api.post(f"/order/{placed['id']}/cancel")
    assert r.status_code == 409 and "refund it" in r.json()["detail"]

    r = api.post(f"/order/{placed['id']}/refund", json={"restock": True, "reason": "burnt"})
    assert r.status_code == 202, r.text
    assert stock() == stock_after(0)  # the stock is back at once
    with session():
        back = LedgerEntry.select().where(LedgerEntry.reason == "refund")
        assert sorted(e.grams for e in back) == sorted([3 * 150, 3 * 30, 3 * 20])
    eventually(lambda: get(api, placed["id"])["payment"]["status"] == "refunded")


def test_an_off_merchant_orders_as_before(
    kitchen: Kitchen, api: TestClient, seeded: Seeded
) -> None:
    r = api.post("/order", json=seeded.order(1))
    assert r.status_code == 201 and r.json()["status"] == "pending"
    assert r.json()["payment"] is None
    eventually(lambda: get(api, r.json()["id"])["status"] == "applied")
    # Processing tells order_events about every merchant's orders.
    events = read_topic(
        kitchen.bootstrap_servers, kitchen.settings.kafka.order_events_topic, expect=1
    )
    assert [e.json()["type"] for e in events] == ["ORDER_APPLIED"]
