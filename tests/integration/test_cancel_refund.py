"""POST /order/{id}/cancel and POST /order/{id}/refund (issue 18): the order and payment
rows, the stock to the gram, the ledger, and the race of a cancel with the kitchen.

Paid orders are made here from rows and the cycle's own calls (open, the fake provider's
hold, authorized, processing, captured), as the payments role and the webhooks would; the
provider's answers to a refund are `Cycle.refunded` called by hand, as its worker would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jsonschema
import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import merchants, orders, processing, seed
from kitchen.db import session, transaction
from kitchen.domain import MAX_GRAMS, Line
from kitchen.errors import Conflict, Invalid
from kitchen.fake_provider import FakeProvider
from kitchen.models import (
    FakeIntent,
    Ingredient,
    LedgerEntry,
    Merchant,
    Order,
    OrderLine,
    Outbox,
    Payment,
    Product,
    Refund,
)
from kitchen.payments import Cycle
from kitchen.providers import Hold, idempotency_key
from kitchen.seed import BURGER
from tests.helpers import SEED_RULES, client, read_topic, stock_after

PRICE = 850  # cents, a burger


@dataclass
class Shop:
    """A Kitchen with the api role only (nothing consumes or relays: each step is taken by
    hand below), its reference kitchen seeded, and its cycle."""

    kitchen: Kitchen
    api: TestClient
    merchant: int
    burger: int
    cycle: Cycle
    provider: FakeProvider

    def apply(self, order_id: int) -> processing.BatchResult:
        s = self.kitchen.settings
        return processing.apply_orders(
            [order_id],
            s.kafka.notify_topic,
            s.kafka.order_events_topic,
            s.alerts.threshold_fraction,
            {order_id: self.merchant},
        )

    def events(self, order_id: int) -> list[str]:
        """The types of the order_events queued about an order, in order."""
        topic = self.kitchen.settings.kafka.order_events_topic
        with session():
            rows = Outbox.select().where(Outbox.ref_id == order_id, Outbox.topic == topic)
            return [json.loads(r.payload)["type"] for r in rows.order_by(Outbox.id)]

    def order_created_queued(self, order_id: int) -> int:
        """How many ORDER_CREATED of the order were queued for the kitchen."""
        topic = self.kitchen.settings.kafka.order_created_topic
        with session():
            query = Outbox.select().where(Outbox.ref_id == order_id, Outbox.topic == topic)
            return int(query.count())

    def pending_order(self, burgers: int = 1) -> int:
        """An order of a merchant without payments, placed and not yet processed."""
        topic = self.kitchen.settings.kafka.order_created_topic
        return orders.place_order(self.merchant, [Line(self.burger, burgers)], topic)[0].id

    def paid_order(self, burgers: int = 1, upto: str = "captured") -> tuple[int, int]:
        """An order paid by card, taken through the cycle up to `upto` (awaiting, pending,
        applied, captured): its id and its payment's."""
        m, amount = self.merchant, burgers * PRICE
        with transaction():
            Merchant.update(payments="required").where(Merchant.id == m).execute()
            Product.update(price=PRICE).where(Product.id == self.burger).execute()
            order = Order.create(merchant=m, status=Order.AWAITING_PAYMENT)
            OrderLine.create(merchant=m, order=order.id, product=self.burger, quantity=burgers)
            payment = self.cycle.open(m, order.id, amount, "EUR", "fake", 15)
        hold = Hold(order.id, m, amount, "EUR")
        intent = self.provider.create_hold(hold, idempotency_key(order.id, "hold", m))
        self.cycle.hold_made(m, payment.id, intent.id, intent.client_secret)
        if upto == "awaiting":
            return order.id, payment.id
        self.provider.authorize(intent.id)
        assert self.cycle.authorized(m, payment.id)
        if upto == "pending":
            return order.id, payment.id
        assert self.apply(order.id).applied == [order.id]
        assert self.cycle.order_applied(m, order.id)
        if upto == "applied":
            return order.id, payment.id
        self.provider.capture(intent.id, idempotency_key(order.id, "capture", m))
        assert self.cycle.captured(m, payment.id, amount)
        return order.id, payment.id


@pytest.fixture
def shop(make_kitchen: Callable[..., Kitchen]) -> Shop:
    return open_shop(make_kitchen("api"))


def open_shop(kitchen: Kitchen) -> Shop:
    _, view = seed.seed(kitchen.merchant_id, SEED_RULES)
    burger = view["products"][0]["id"]
    return Shop(
        kitchen,
        client(kitchen),
        kitchen.merchant_id,
        burger,
        Cycle.of(kitchen.settings),
        FakeProvider(),
    )


def stock() -> dict[str, int]:
    with session():
        return {i.name: i.stock for i in Ingredient.select()}


def order_row(order_id: int) -> Order:
    with session():
        return Order.get_by_id(order_id)


def payment_row(payment_id: int) -> Payment:
    with session():
        return Payment.get_by_id(payment_id)


def ledger_of(order_id: int) -> list[tuple[str, str, int]]:
    """(ingredient, reason, grams) of the ledger rows of an order, in the order written."""
    with session():
        rows = (
            LedgerEntry.select(LedgerEntry, Ingredient.name)
            .join(Ingredient)
            .where(LedgerEntry.order == order_id)
            .order_by(LedgerEntry.id)
        )
        return [(r.ingredient.name, r.reason, r.grams) for r in rows]


# -- cancel ------------------------------------------------------------------------------


def test_cancel_a_pending_order_and_processing_skips_it(shop: Shop) -> None:
    order_id = shop.pending_order(2)
    r = shop.api.post(f"/order/{order_id}/cancel", json={"reason": "the customer left"})
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["id"] == order_id
    assert view["status"] == "cancelled"
    assert view["reason"] == "cancelled: the customer left"
    assert view["lines"] == [{"product_id": shop.burger, "quantity": 2}]
    assert shop.events(order_id) == ["ORDER_CANCELLED"]

    # The ORDER_CREATED still on its way meets a cancelled order: skipped, stock untouched.
    result = shop.apply(order_id)
    assert (result.applied, result.rejected, result.skipped) == ([], [], [order_id])
    assert stock() == stock_after(0)
    assert ledger_of(order_id) == []
    assert order_row(order_id).status == Order.CANCELLED

    # Again: the same answer, nothing more queued.
    again = shop.api.post(f"/order/{order_id}/cancel", json={"reason": "another reason"})
    assert again.status_code == 200
    assert again.json() == view
    assert shop.events(order_id) == ["ORDER_CANCELLED"]
    assert shop.api.get(f"/order/{order_id}").json() == view


def test_the_cancel_goes_out_on_order_events(make_kitchen: Callable[..., Kitchen]) -> None:
    """With every role running: ORDER_CANCELLED reaches the topic, keyed by merchant."""
    shop = open_shop(make_kitchen())
    order_id, _ = shop.paid_order(1, upto="awaiting")  # nothing moves it meanwhile
    r = shop.api.post(f"/order/{order_id}/cancel", json={"reason": "no show"})
    assert r.status_code == 200, r.text
    topic = shop.kitchen.settings.kafka.order_events_topic
    records = read_topic(shop.kitchen.bootstrap_servers, topic, expect=1)
    # (The payments role may add PAYMENT_VOIDED once it voided the hold.)
    mine = [
        x for x in records if x.json()["id"] == order_id and x.json()["type"] != "PAYMENT_VOIDED"
    ]
    assert [x.key for x in mine] == [str(shop.merchant)]
    assert mine[0].json() == {
        "type": "ORDER_CANCELLED",
        "id": order_id,
        "merchant_id": shop.merchant,
        "reason": "cancelled: no show",
    }


@pytest.mark.parametrize(
    ("body", "headers"),
    [(None, {}), (b"", {"content-type": "application/json"}), (b"{}", None)],
)
def test_cancel_needs_no_body(shop: Shop, body: bytes | None, headers: Any) -> None:
    order_id = shop.pending_order()
    if headers is None:
        headers = {"content-type": "application/json"}
    r = shop.api.post(f"/order/{order_id}/cancel", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["reason"]) == ("cancelled", "cancelled")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"reason": ""}, "reason", "must be text of 1 to 500 characters"),
        ({"reason": "x" * 501}, "reason", "must be text of 1 to 500 characters"),
        ({"reason": 7}, "reason", "must be text of 1 to 500 characters"),
        ({"reason": "bell\x07"}, "reason", "readable text"),
        ({"why": "x"}, "why", "is not a known field"),
        ([], "body", "must be a JSON object"),
    ],
)
def test_cancel_refuses_a_bad_reason(shop: Shop, body: Any, field: str, message: str) -> None:
    order_id = shop.pending_order()
    r = shop.api.post(f"/order/{order_id}/cancel", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    [error] = r.json()["errors"]
    assert error["field"] == field and message in error["message"], error
    assert order_row(order_id).status == Order.PENDING  # nothing changed


def test_cancel_a_reason_of_many_lines(shop: Shop) -> None:
    order_id = shop.pending_order()
    r = shop.api.post(f"/order/{order_id}/cancel", json={"reason": "  wrong table\n\tsorry "})
    assert r.status_code == 200
    assert r.json()["reason"] == "cancelled: wrong table\n\tsorry"


def test_cancel_an_applied_or_rejected_order_is_a_conflict(shop: Shop) -> None:
    applied = shop.pending_order(1)
    rejected = shop.pending_order(51)  # onion holds 50 burgers
    assert shop.apply(applied).applied == [applied]
    assert shop.apply(rejected).rejected == [rejected]
    r = shop.api.post(f"/order/{applied}/cancel")
    assert r.status_code == 409
    assert r.json()["detail"] == f"order {applied} is already applied: refund it"
    r = shop.api.post(f"/order/{rejected}/cancel")
    assert r.status_code == 409
    assert r.json()["detail"] == f"order {rejected} is already rejected"
    assert order_row(applied).status == Order.APPLIED
    assert order_row(rejected).status == Order.REJECTED
    assert stock() == stock_after(1)
    # Processing's events only: a refused cancel queues nothing.
    assert shop.events(applied) == ["ORDER_APPLIED"]
    assert shop.events(rejected) == ["ORDER_REJECTED"]


def test_cancel_another_merchants_order_or_none_is_not_found(shop: Shop) -> None:
    with session():
        other = Merchant.create(name="other", alert_email="other@example.com")
    seed.seed(other.id, SEED_RULES)
    _, view = seed.seed(other.id, SEED_RULES)
    theirs = orders.place_order(other.id, [Line(view["products"][0]["id"], 1)], "unused")[0].id
    for order_id in (theirs, 10**12, "abc"):
        r = shop.api.post(f"/order/{order_id}/cancel")
        assert r.status_code == 404, r.text
        assert r.json()["title"] == "Order not found"
    assert order_row(theirs).status == Order.PENDING


def test_cancel_an_order_awaiting_payment_voids_its_hold_and_a_late_authorization(
    shop: Shop,
) -> None:
    order_id, payment_id = shop.paid_order(2, upto="awaiting")
    r = shop.api.post(f"/order/{order_id}/cancel", json={"reason": "changed their mind"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    payment = payment_row(payment_id)
    # The payments role owes the provider a void; the hold is still there until it calls.
    assert (payment.status, payment.action) == (Payment.REQUIRES_PAYMENT, Payment.VOID)
    with session():
        assert FakeIntent.get(FakeIntent.intent_id == payment.provider_id).status == (
            "requires_payment_method"
        )

    # The card is authorized after all (the customer was slower than the cancel): the
    # order stays cancelled, never goes to the kitchen, and the hold is still voided.
    intent = str(payment.provider_id)
    shop.provider.authorize(intent)
    assert shop.cycle.authorized(shop.merchant, payment_id)
    payment = payment_row(payment_id)
    assert (payment.status, payment.action) == (Payment.AUTHORIZED, Payment.VOID)
    assert order_row(order_id).status == Order.CANCELLED
    assert shop.order_created_queued(order_id) == 0
    assert shop.events(order_id) == ["ORDER_CANCELLED", "PAYMENT_AUTHORIZED"]
    # The worker voids it: voided, nothing charged, no stock moved.
    shop.provider.cancel(intent, idempotency_key(order_id, "cancel", shop.merchant))
    assert shop.cycle.voided(shop.merchant, payment_id)
    payment = payment_row(payment_id)
    assert (payment.status, payment.action, payment.captured_amount) == (
        Payment.VOIDED,
        None,
        0,
    )
    assert stock() == stock_after(0)


def test_cancel_a_paid_pending_order_voids_its_hold(shop: Shop) -> None:
    order_id, payment_id = shop.paid_order(1, upto="pending")
    assert shop.cycle.cancel(shop.merchant, order_id, None).status == Order.CANCELLED
    assert payment_row(payment_id).action == Payment.VOID
    assert shop.apply(order_id).skipped == [order_id]
    assert shop.cycle.order_applied(shop.merchant, order_id) is False  # no capture owed
    assert payment_row(payment_id).action == Payment.VOID
    assert stock() == stock_after(0)


# -- refund ------------------------------------------------------------------------------


def test_refund_in_parts_until_nothing_is_left(shop: Shop) -> None:
    order_id, payment_id = shop.paid_order(2)  # 1,700 cents captured
    assert payment_row(payment_id).captured_amount == 1700

    r = shop.api.post(f"/order/{order_id}/refund", json={"amount": 500, "reason": "cold fries"})
    assert r.status_code == 202, r.text
    first = r.json()
    assert first == {
        "id": first["id"],
        "order_id": order_id,
        "amount": 500,
        "restock": False,
        "status": "requested",
        "reason": "cold fries",
    }
    document = shop.api.get("/openapi.json").json()
    schema = {"$ref": "#/components/schemas/Refund", "components": document["components"]}
    jsonschema.Draft202012Validator(schema).validate(first)
    # Requested, not made: the payment shows nothing refunded yet.
    assert (payment_row(payment_id).status, payment_row(payment_id).refunded_amount) == (
        Payment.CAPTURED,
        0,
    )
    # The 500 under way counts: 1,200 is left.
    r = shop.api.post(f"/order/{order_id}/refund", json={"amount": 1201})
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error == {
        "field": "amount",
        "message": "must be from 1 to 1200: 1200 of the 1700 captured is left to refund",
    }

    assert shop.cycle.refunded(shop.merchant, first["id"], "re_fake_1")
    payment = payment_row(payment_id)
    assert (payment.status, payment.refunded_amount) == (Payment.PARTIALLY_REFUNDED, 500)
    assert shop.cycle.refunded(shop.merchant, first["id"], "re_fake_1") is False  # once

    r = shop.api.post(f"/order/{order_id}/refund", json={})  # the rest
    assert r.status_code == 202, r.text
    rest = r.json()
    assert (rest["amount"], rest["reason"], rest["restock"]) == (1200, None, False)
    assert shop.cycle.refunded(shop.merchant, rest["id"], "re_fake_2")
    payment = payment_row(payment_id)
    assert (payment.status, payment.refunded_amount) == (Payment.REFUNDED, 1700)
    with session():
        refunds = Refund.select().where(Refund.payment == payment_id).order_by(Refund.id)
        assert [(x.amount, x.status) for x in refunds] == [(500, "succeeded"), (1200, "succeeded")]
    assert shop.events(order_id)[-2:] == ["ORDER_REFUNDED", "ORDER_REFUNDED"]

    r = shop.api.post(f"/order/{order_id}/refund", json={"amount": 1})
    assert r.status_code == 409
    assert r.json()["detail"] == f"order {order_id}'s payment is refunded, not captured"
    assert stock() == stock_after(2)  # no restock asked: the stock stays used


def test_nothing_left_while_refunds_are_under_way(shop: Shop) -> None:
    order_id, _ = shop.paid_order(1)
    assert shop.api.post(f"/order/{order_id}/refund", json={}).status_code == 202
    r = shop.api.post(f"/order/{order_id}/refund", json={})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "amount", "message": "nothing is left to refund of the 850 captured"}
    ]


def test_a_refund_the_provider_refused_may_be_asked_again(shop: Shop) -> None:
    order_id, payment_id = shop.paid_order(1)
    first = shop.api.post(f"/order/{order_id}/refund", json={"amount": 850}).json()
    assert shop.cycle.refund_refused(shop.merchant, first["id"], "card closed")
    again = shop.api.post(f"/order/{order_id}/refund", json={"amount": 850})
    assert again.status_code == 202, again.text
    assert shop.cycle.refunded(shop.merchant, again.json()["id"], "re_fake_3")
    payment = payment_row(payment_id)
    assert (payment.status, payment.refunded_amount) == (Payment.REFUNDED, 850)


def test_a_webhook_before_the_workers_record_counts_the_refund_once(shop: Shop) -> None:
    order_id, payment_id = shop.paid_order(2)
    refund = shop.api.post(f"/order/{order_id}/refund", json={"amount": 300}).json()
    # charge.refunded (total 300) arrives before the worker records the provider's answer.
    assert shop.cycle.refund_seen(shop.merchant, payment_id, 300)
    assert shop.cycle.refunded(shop.merchant, refund["id"], "re_fake_4")
    payment = payment_row(payment_id)
    assert (payment.status, payment.refunded_amount) == (Payment.PARTIALLY_REFUNDED, 300)
    # What is left is 1,400, not 1,100.
    r = shop.api.post(f"/order/{order_id}/refund", json={"amount": 1401})
    assert r.status_code == 422
    assert "1400 of the 1700 captured is left" in r.json()["errors"][0]["message"]


def test_a_refund_made_at_the_provider_counts_against_what_is_left(shop: Shop) -> None:
    order_id, payment_id = shop.paid_order(2)
    assert shop.cycle.refund_seen(shop.merchant, payment_id, 700)  # from its dashboard
    r = shop.api.post(f"/order/{order_id}/refund", json={"amount": 1001})
    assert r.status_code == 422
    assert "1000 of the 1700 captured is left" in r.json()["errors"][0]["message"]
    assert shop.api.post(f"/order/{order_id}/refund", json={"amount": 1000}).status_code == 202


def test_refund_with_restock_gives_the_stock_back(shop: Shop) -> None:
    order_id, payment_id = shop.paid_order(26)  # onion 1,000 -> 480 g: below half, alerted
    onion_before = stock()["onion"]
    assert onion_before == 480
    with session():
        assert Ingredient.get(Ingredient.name == "onion").alert_armed is False

    r = shop.api.post(f"/order/{order_id}/refund", json={"restock": True, "reason": "burnt"})
    assert r.status_code == 202, r.text
    assert (r.json()["amount"], r.json()["restock"]) == (26 * PRICE, True)
    # Back at once, exactly what the order took; the alert re-armed above the threshold.
    assert stock() == stock_after(0)
    with session():
        assert Ingredient.get(Ingredient.name == "onion").alert_armed is True
    given = [(name, grams) for name, reason, grams in ledger_of(order_id) if reason == "refund"]
    assert sorted(given) == sorted((name, 26 * grams) for name, grams in BURGER.items())
    with session():
        onion = Ingredient.get(Ingredient.name == "onion")
        last = LedgerEntry.select().where(LedgerEntry.ingredient == onion.id)
        assert last.order_by(LedgerEntry.id.desc()).first().stock_after == 1000
    # GET .../ledger shows it, as its OpenAPI schema says.
    [entry] = shop.api.get(f"/ingredients/{onion.id}/ledger", params={"limit": 1}).json()
    assert {k: entry[k] for k in ("grams", "reason", "order_id", "stock_after")} == {
        "grams": 26 * BURGER["onion"],
        "reason": "refund",
        "order_id": order_id,
        "stock_after": 1000,
    }
    document = shop.api.get("/openapi.json").json()
    schema = {"$ref": "#/components/schemas/LedgerEntry", "components": document["components"]}
    jsonschema.Draft202012Validator(schema).validate(entry)

    # The provider refuses the refund; asked again with restock, the stock is not given
    # back twice (the food is not coming back twice).
    assert shop.cycle.refund_refused(shop.merchant, r.json()["id"], "card closed")
    again = shop.api.post(f"/order/{order_id}/refund", json={"restock": True})
    assert again.status_code == 202, again.text
    assert stock() == stock_after(0)
    assert len([x for x in ledger_of(order_id) if x[1] == "refund"]) == len(BURGER)
    assert shop.cycle.refunded(shop.merchant, again.json()["id"], "re_fake_5")
    assert payment_row(payment_id).status == Payment.REFUNDED


def test_a_refund_with_restock_names_its_key_and_resolves_the_alert(shop: Shop) -> None:
    """Issue 19: the refund's ledger rows name the key that asked for it; the onion alert
    the order caused is resolved by the refund."""
    order_id, _ = shop.paid_order(26)  # onion 1,000 -> 480 g: below half, alerted
    [alert] = shop.api.get("/alerts").json()
    assert (alert["cause"], alert["order_id"], alert["status"]) == ("order", order_id, "open")
    office = merchants.add_key(shop.merchant, "office")
    with client(shop.kitchen, office) as keyed:
        r = keyed.post(f"/order/{order_id}/refund", json={"restock": True})
        assert r.status_code == 202, r.text
    with session():
        rows = LedgerEntry.select().where(LedgerEntry.order == order_id)
        keys = {(e.reason, e.key_name) for e in rows}
    assert keys == {("order", None), ("refund", "office")}
    [alert] = shop.api.get("/alerts").json()
    assert (alert["status"], alert["resolved_by"]) == ("resolved", "refund")
    assert alert["resolved_at"] is not None


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"amount": 0}, "amount", "must be a whole number of cents from 1 to"),
        ({"amount": -5}, "amount", "must be a whole number of cents from 1 to"),
        ({"amount": 1.5}, "amount", "must be a whole number of cents from 1 to"),
        ({"amount": 100.0}, "amount", "must be a whole number of cents from 1 to"),
        ({"amount": "100"}, "amount", "must be a whole number of cents from 1 to"),
        ({"amount": True}, "amount", "must be a whole number of cents from 1 to"),
        ({"amount": None}, "amount", "must be a whole number of cents from 1 to"),
        ({"amount": 2**63}, "amount", "must be a whole number of cents from 1 to"),
        ({"amount": 1701}, "amount", "must be from 1 to 1700: 1700 of the 1700 captured"),
        ({"restock": "yes"}, "restock", "must be true or false"),
        ({"restock": True, "amount": 1699}, "restock", "only with a full refund"),
        ({"reason": ""}, "reason", "must be text of 1 to 500 characters"),
        ({"cents": 5}, "cents", "is not a known field"),
    ],
)
def test_refund_refuses_bad_fields(shop: Shop, body: Any, field: str, message: str) -> None:
    order_id, _ = shop.paid_order(2)
    r = shop.api.post(f"/order/{order_id}/refund", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    [error] = r.json()["errors"]
    assert error["field"] == field and message in error["message"], error
    with session():
        assert Refund.select().count() == 0
    assert stock() == stock_after(2)


def test_refund_of_an_order_not_captured_is_a_conflict(shop: Shop) -> None:
    unpaid = shop.pending_order(1)  # placed while the merchant took no payments
    authorized, _ = shop.paid_order(1, upto="applied")
    for order_id, detail in (
        (authorized, f"order {authorized}'s payment is authorized, not captured"),
        (unpaid, f"order {unpaid} has no payment to refund"),
    ):
        r = shop.api.post(f"/order/{order_id}/refund", json={})
        assert r.status_code == 409, r.text
        assert r.json()["detail"] == detail
    assert shop.api.post("/order/999999999/refund", json={}).status_code == 404
    with session():
        assert Refund.select().count() == 0


def test_concurrent_refunds_never_exceed_what_was_captured(shop: Shop) -> None:
    """Four threads each ask 600 of 1,700 cents at once, round after round: two fit, the
    others find 500 left. Each locks the order's row before it counts what is left."""
    for _ in range(8):
        order_id, payment_id = shop.paid_order(2)
        ask = partial(shop.cycle.request_refund, shop.merchant, order_id, 600, False, None)
        results = at_once(ask, ask, ask, ask)
        made = [r for r in results if isinstance(r, Refund)]
        refused = [r for r in results if isinstance(r, Invalid)]
        assert (len(made), len(refused)) == (2, 2), results
        assert all("500 of the 1700 captured is left" in str(r) for r in refused)
        with session():
            asked = [r.amount for r in Refund.select().where(Refund.payment == payment_id)]
        assert asked == [600, 600]


# -- cancel racing the kitchen -----------------------------------------------------------


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` in threads released together: what each returned, or raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        barrier.wait(10)
        try:
            results[n] = calls[n]()
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def cancel_over_http(kitchen: Kitchen, order_id: int) -> tuple[int, str]:
    """POST /order/{id}/cancel from this thread: the status, and the order's status or
    the problem's detail."""
    r = client(kitchen).post(f"/order/{order_id}/cancel")
    body = r.json()
    return r.status_code, body.get("detail", body.get("status"))


def cancel_directly(shop: Shop, order_id: int) -> tuple[int, str]:
    try:
        return 200, shop.cycle.cancel(shop.merchant, order_id, None).status
    except Conflict as exc:
        return 409, str(exc)


@pytest.mark.parametrize("paid", [False, True], ids=["off", "paid"])
def test_cancel_racing_apply_ends_one_way_only(shop: Shop, paid: bool) -> None:
    """Processing applies an order while the till cancels it (over HTTP every other
    round), round after round: each order ends applied (the cancel got 409 "already
    applied") or cancelled (processing skipped it, no stock moved), never both."""
    rounds = 30
    outcomes: list[str] = []
    for n in range(rounds):
        if paid:
            order_id, payment_id = shop.paid_order(1, upto="pending")
        else:
            order_id = shop.pending_order(1)
        cancel = (
            partial(cancel_over_http, shop.kitchen, order_id)
            if n % 2 == 0
            else partial(cancel_directly, shop, order_id)
        )
        batch, cancelled = at_once(partial(shop.apply, order_id), cancel)
        status = order_row(order_id).status
        moved = [x for x in ledger_of(order_id) if x[1] == "order"]
        if status == Order.APPLIED:
            assert cancelled == (409, f"order {order_id} is already applied: refund it")
            assert batch.applied == [order_id]
            assert len(moved) == len(BURGER)
            assert "ORDER_CANCELLED" not in shop.events(order_id)
            if paid:
                assert shop.cycle.order_applied(shop.merchant, order_id)
                assert payment_row(payment_id).action == Payment.CAPTURE
        else:
            assert status == Order.CANCELLED
            assert cancelled == (200, "cancelled")
            assert (batch.applied, batch.skipped) == ([], [order_id])
            assert moved == []
            assert shop.events(order_id)[-1] == "ORDER_CANCELLED"
            if paid:
                assert shop.cycle.order_applied(shop.merchant, order_id) is False
                assert payment_row(payment_id).action == Payment.VOID
        outcomes.append(status)
        assert stock() == stock_after(outcomes.count(Order.APPLIED))
    # Both ends were met (15 to 24 of 30 rounds applied in runs on both stacks): the
    # two really raced.
    assert set(outcomes) == {Order.APPLIED, Order.CANCELLED}, outcomes


def test_a_restock_past_the_limit_of_grams_is_refused_whole(shop: Shop) -> None:
    order_id, payment_id = shop.paid_order(1)
    with session():
        Ingredient.update(stock=MAX_GRAMS - 5).where(Ingredient.name == "onion").execute()
    before = stock()
    r = shop.api.post(f"/order/{order_id}/refund", json={"restock": True})
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["field"] == "restock"
    assert f"more than the limit of {MAX_GRAMS} g" in error["message"]
    # Nothing half done: no refund, no stock back, no ledger row.
    assert stock() == before
    assert [x for x in ledger_of(order_id) if x[1] == "refund"] == []
    with session():
        assert Refund.select().count() == 0
    assert payment_row(payment_id).status == Payment.CAPTURED


def test_cancel_racing_the_authorization_always_voids_the_hold(shop: Shop) -> None:
    """The card is authorized while the till cancels the order, round after round: the
    order ends cancelled, the hold is owed a void, and the kitchen never cooks it, even
    when the authorization won and queued ORDER_CREATED."""
    for _ in range(20):
        order_id, payment_id = shop.paid_order(1, upto="awaiting")
        intent = str(payment_row(payment_id).provider_id)
        shop.provider.authorize(intent)
        authorized, cancelled = at_once(
            partial(shop.cycle.authorized, shop.merchant, payment_id),
            partial(cancel_directly, shop, order_id),
        )
        assert (authorized, cancelled) == (True, (200, "cancelled"))
        payment = payment_row(payment_id)
        assert (payment.status, payment.action) == (Payment.AUTHORIZED, Payment.VOID)
        assert order_row(order_id).status == Order.CANCELLED
        # Whichever won, an ORDER_CREATED that went out meets a cancelled order.
        if shop.order_created_queued(order_id):  # the authorization committed first
            assert shop.events(order_id) == ["PAYMENT_AUTHORIZED", "ORDER_CANCELLED"]
        else:
            assert shop.events(order_id) == ["ORDER_CANCELLED", "PAYMENT_AUTHORIZED"]
        assert shop.apply(order_id).skipped == [order_id]
    assert stock() == stock_after(0)
