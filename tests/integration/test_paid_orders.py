"""POST /order for a merchant that requires payments (issue 18): the order waits for its
hold, the amount is Kitchen's, and a provider that fails leaves nothing held and the
order cancelled. The merchant's settings and the products' prices that it rests on."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import paid_orders
from kitchen.db import session
from kitchen.domain import MAX_PRICE, Line
from kitchen.fake_provider import FakeProvider
from kitchen.models import (
    FakeIntent,
    FakeRequest,
    Ingredient,
    Merchant,
    Order,
    OrderLine,
    Outbox,
    Payment,
    Product,
)
from kitchen.payments import Cycle
from kitchen.providers import Hold, Intent, PaymentRefused, ProviderUnavailable, idempotency_key
from tests.helpers import Seeded, client, eventually, seed_reference, stock_after

BURGER_PRICE = 850  # cents
FRIES_PRICE = 299


class Down(FakeProvider):
    """A provider that cannot be reached (for a hold; the rest as the fake one)."""

    def __init__(self) -> None:
        self.calls = 0

    def create_hold(self, hold: Hold, idempotency_key: str) -> Intent:
        self.calls += 1
        raise ProviderUnavailable("connection refused")


class Refusing(FakeProvider):
    """A provider that refuses every hold (say, a currency it does not take)."""

    def create_hold(self, hold: Hold, idempotency_key: str) -> Intent:
        raise PaymentRefused("currency XTS is not supported", "invalid_currency")


@pytest.fixture
def paying(kitchen: Kitchen) -> Iterator[tuple[TestClient, Seeded, int]]:
    """A client of an all-roles Kitchen whose merchant requires payments (EUR), with the
    reference Burger at 8.50 and Fries (20 g of onion) at 2.99; and the Fries' id."""
    with client(kitchen) as api:
        seeded = seed_reference(api)
        assert api.patch(f"/products/{seeded.burger}", json={"price": BURGER_PRICE}).json()[
            "price"
        ] == (BURGER_PRICE)
        fries = api.post(
            "/products",
            json={
                "name": "Fries",
                "recipe": [{"ingredient_id": seeded.onion, "grams": 20}],
                "price": FRIES_PRICE,
            },
        )
        assert fries.status_code == 201 and fries.json()["price"] == FRIES_PRICE
        r = api.patch("/merchant", json={"payments": "required", "currency": "EUR"})
        assert r.status_code == 200, r.text
        yield api, seeded, fries.json()["id"]


def order_of(seeded: Seeded, fries: int, burgers: int, portions: int) -> dict[str, Any]:
    return {
        "products": [
            {"product_id": seeded.burger, "quantity": burgers},
            {"product_id": fries, "quantity": portions},
        ]
    }


def stock() -> dict[str, int]:
    with session():
        return {i.name: i.stock for i in Ingredient.select()}


def order_created_rows(topic: str) -> list[int | None]:
    """The orders whose ORDER_CREATED was written to the outbox."""
    with session():
        return [o.ref_id for o in Outbox.select().where(Outbox.topic == topic)]


def order_events(topic: str, order_id: int) -> list[str]:
    with session():
        rows = Outbox.select().where(Outbox.topic == topic, Outbox.ref_id == order_id)
        return [json.loads(o.payload)["type"] for o in rows.order_by(Outbox.id)]


def counts() -> dict[str, int]:
    with session():
        return {
            "orders": Order.select().count(),
            "lines": OrderLine.select().count(),
            "payments": Payment.select().count(),
            "intents": FakeIntent.select().count(),
        }


def test_a_paid_order_waits_for_its_hold_and_goes_nowhere_before(
    kitchen: Kitchen, paying: tuple[TestClient, Seeded, int]
) -> None:
    api, seeded, fries = paying
    merchant = api.get("/merchant").json()
    assert (merchant["payments"], merchant["currency"]) == ("required", "EUR")

    r = api.post("/order", json=order_of(seeded, fries, 3, 2))

    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "awaiting_payment"
    assert r.headers["location"] == f"/order/{body['id']}"
    payment = body["payment"]
    assert payment["amount"] == 3 * BURGER_PRICE + 2 * FRIES_PRICE == 3148
    assert (payment["provider"], payment["status"], payment["currency"]) == (
        "fake",
        "requires_payment",
        "EUR",
    )
    assert payment["refunded_amount"] == 0
    assert payment["id"].startswith("pi_fake_")
    assert payment["client_secret"].startswith("pi_fake_secret_")
    with session():
        order = Order.get_by_id(body["id"])
        assert order.status == Order.AWAITING_PAYMENT
        [row] = Payment.select().where(Payment.order == body["id"])
        assert (row.provider_id, row.amount, row.currency, row.status) == (
            payment["id"],
            3148,
            "EUR",
            Payment.REQUIRES_PAYMENT,
        )
        [intent] = FakeIntent.select()
        assert (intent.intent_id, intent.amount, intent.currency, intent.order_id) == (
            payment["id"],
            3148,
            "EUR",
            body["id"],
        )
    # The same view from GET /order/{id} and GET /orders, which filters on the new status.
    assert api.get(f"/order/{body['id']}").json() == body
    assert api.get("/orders", params={"status": "awaiting_payment"}).json() == [body]
    assert api.get("/orders", params={"status": "pending"}).json() == []

    # Nothing for the kitchen: an order of an `off` merchant placed after it is applied,
    # and the stock is what that one order took, the paid one's untouched.
    topic = kitchen.settings.kafka.order_created_topic
    assert order_created_rows(topic) == []
    assert api.patch("/merchant", json={"payments": "off"}).json()["payments"] == "off"
    unpaid = api.post("/order", json=seeded.order(1))
    assert unpaid.status_code == 201
    assert unpaid.json()["payment"] is None and unpaid.json()["status"] == "pending"
    eventually(lambda: api.get(f"/order/{unpaid.json()['id']}").json()["status"] == "applied")
    assert stock() == stock_after(1)
    assert order_created_rows(topic) == [unpaid.json()["id"]]
    assert api.get(f"/order/{body['id']}").json()["status"] == "awaiting_payment"
    listed = {o["id"]: o["payment"] for o in api.get("/orders").json()}
    assert listed == {unpaid.json()["id"]: None, body["id"]: payment}


def test_every_product_needs_a_price_and_nothing_is_saved_without(
    paying: tuple[TestClient, Seeded, int],
) -> None:
    api, seeded, fries = paying
    assert api.patch(f"/products/{fries}", json={"price": None}).json()["price"] is None
    before = counts()

    r = api.post("/order", json=order_of(seeded, fries, 1, 1))

    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    [error] = r.json()["errors"]
    assert error["field"] == "products[1].product_id"
    assert f"product {fries} has no price" in error["message"]
    assert counts() == before == {"orders": 0, "lines": 0, "payments": 0, "intents": 0}

    unknown = api.post("/order", json={"products": [{"product_id": 999_999, "quantity": 1}]})
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [
        {"field": "products[0].product_id", "message": "unknown product 999999"}
    ]
    assert counts() == before


def test_the_client_names_no_amount_or_price(paying: tuple[TestClient, Seeded, int]) -> None:
    """The amount is the prices times the quantities: a client's figure is refused as any
    unknown field is, and the order stays unplaced."""
    api, seeded, fries = paying
    with_amount = {**order_of(seeded, fries, 1, 0), "amount": 1}
    with_amount["products"] = with_amount["products"][:1]
    r = api.post("/order", json=with_amount)
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "amount", "message": "is not a known field"}]
    line = {"product_id": seeded.burger, "quantity": 1, "price": 1}
    r = api.post("/order", json={"products": [line]})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "products[0].price", "message": "is not a known field"}]
    assert counts()["orders"] == 0


def test_an_amount_past_the_limit_is_refused(paying: tuple[TestClient, Seeded, int]) -> None:
    api, seeded, _ = paying
    assert api.patch(f"/products/{seeded.burger}", json={"price": MAX_PRICE}).status_code == 200
    assert api.post("/order", json=seeded.order(1)).status_code == 201
    r = api.post("/order", json=seeded.order(2))
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["field"] == "products"
    assert str(2 * MAX_PRICE) in error["message"]
    assert counts()["orders"] == 1


def test_provider_down_cancels_the_order_and_charges_nothing(
    kitchen: Kitchen, paying: tuple[TestClient, Seeded, int]
) -> None:
    api, seeded, fries = paying
    down = Down()
    with client(kitchen, provider=down) as failing:
        r = failing.post(
            "/order", json=order_of(seeded, fries, 1, 1), headers={"Idempotency-Key": "k1"}
        )

    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["detail"] == (
        "payment provider unavailable: connection refused; nothing was charged, "
        "the order is cancelled"
    )
    assert down.calls == 1
    with session():
        [order] = Order.select()
        [payment] = Payment.select()
        assert (order.status, order.idempotency_key) == (Order.CANCELLED, None)
        assert "connection refused" in str(order.reason)
        assert (payment.status, payment.provider_id) == (Payment.FAILED, None)
        assert FakeIntent.select().count() == 0
    assert order_created_rows(kitchen.settings.kafka.order_created_topic) == []
    events = order_events(kitchen.settings.kafka.order_events_topic, order.id)
    assert events == ["PAYMENT_FAILED", "ORDER_CANCELLED"]
    shown = api.get(f"/order/{order.id}").json()
    assert (shown["status"], shown["payment"]["status"]) == ("cancelled", "failed")
    assert api.get("/orders", params={"status": "cancelled"}).json() == [shown]
    assert stock() == stock_after(0)

    # The provider is back: the same key places a new order (the first one told the
    # client it was cancelled), held once.
    again = api.post(
        "/order", json=order_of(seeded, fries, 1, 1), headers={"Idempotency-Key": "k1"}
    )
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != order.id
    assert again.json()["payment"]["status"] == "requires_payment"
    assert counts()["intents"] == 1


def test_a_refused_hold_is_a_402_and_cancels_the_order(
    kitchen: Kitchen, paying: tuple[TestClient, Seeded, int]
) -> None:
    _, seeded, _ = paying
    with client(kitchen, provider=Refusing()) as refused:
        r = refused.post("/order", json=seeded.order(1))
    assert r.status_code == 402, r.text
    assert r.json()["detail"] == (
        "the payment provider refused the payment: currency XTS is not supported; "
        "nothing was charged, the order is cancelled"
    )
    with session():
        [order] = Order.select()
        [payment] = Payment.select()
    assert (order.status, payment.status) == (Order.CANCELLED, Payment.FAILED)
    assert order_created_rows(kitchen.settings.kafka.order_created_topic) == []


def test_a_retry_with_the_same_key_finds_the_order_and_its_one_hold(
    paying: tuple[TestClient, Seeded, int],
) -> None:
    api, seeded, fries = paying
    body, key = order_of(seeded, fries, 2, 1), {"Idempotency-Key": "till-7-0042"}
    first = api.post("/order", json=body, headers=key)
    second = api.post("/order", json=body, headers=key)

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert second.json() == first.json()
    assert first.json()["payment"]["amount"] == 2 * BURGER_PRICE + FRIES_PRICE
    assert counts() == {"orders": 1, "lines": 2, "payments": 1, "intents": 1}
    with session():
        assert FakeRequest.select().count() == 1

    other = api.post("/order", json=seeded.order(5), headers=key)
    assert other.status_code == 422
    assert other.json()["title"] == "Idempotency-Key reused"
    assert counts()["orders"] == 1


def test_a_retry_makes_the_hold_a_crashed_first_request_did_not_record(
    kitchen: Kitchen, paying: tuple[TestClient, Seeded, int]
) -> None:
    """The first request saved the order and died before its hold was recorded (maybe
    after the provider made it): the retry asks the provider with the same key and gets
    the same hold."""
    api, seeded, _ = paying
    lines = [Line(seeded.burger, 2)]
    placed = paid_orders.place(
        Cycle.of(kitchen.settings),
        "fake",
        15,
        kitchen.merchant_id,
        lines,
        "crashed",
    )
    assert placed.created and placed.payment is not None
    made = FakeProvider().create_hold(
        Hold(placed.order.id, kitchen.merchant_id, 2 * BURGER_PRICE, "EUR"),
        idempotency_key(placed.order.id, "hold", kitchen.merchant_id),
    )

    # A retry while the provider is down leaves the order waiting (the first request, or
    # the hold's expiry, decides its end).
    with client(kitchen, provider=Down()) as failing:
        down = failing.post("/order", json=seeded.order(2), headers={"Idempotency-Key": "crashed"})
    assert down.status_code == 503
    assert down.json()["detail"] == (
        "payment provider unavailable: connection refused; nothing was charged, "
        "the order waits for its payment"
    )
    with session():
        assert Order.get_by_id(placed.order.id).status == Order.AWAITING_PAYMENT
        assert Payment.get_by_id(placed.payment.id).status == Payment.REQUIRES_PAYMENT

    r = api.post("/order", json=seeded.order(2), headers={"Idempotency-Key": "crashed"})

    assert r.status_code == 201, r.text
    assert r.headers["idempotent-replayed"] == "true"
    assert r.json()["id"] == placed.order.id
    assert r.json()["payment"]["id"] == made.id
    assert r.json()["payment"]["client_secret"] == made.client_secret
    assert counts()["intents"] == 1


def test_a_retry_after_payments_were_switched_off_still_shows_the_payment(
    paying: tuple[TestClient, Seeded, int],
) -> None:
    api, seeded, _ = paying
    key = {"Idempotency-Key": "before-the-switch"}
    first = api.post("/order", json=seeded.order(1), headers=key)
    assert first.status_code == 201 and first.json()["payment"]["amount"] == BURGER_PRICE
    assert api.patch("/merchant", json={"payments": "off"}).status_code == 200
    again = api.post("/order", json=seeded.order(1), headers=key)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert counts()["orders"] == 1


def test_payment_modes_are_remembered_for_a_moment_and_forgotten_on_change() -> None:
    now = [100.0]
    modes = paid_orders.PaymentModes(clock=lambda: now[0])
    assert modes.get(7) is None
    modes.remember(7, True)
    modes.remember(8, False)
    assert (modes.get(7), modes.get(8)) == (True, False)
    now[0] += modes.TTL + 0.01
    assert modes.get(7) is None  # read again from the database
    modes.remember(7, True)
    modes.forget(7)  # a PATCH /merchant of this process
    assert modes.get(7) is None


def test_the_orders_list_reads_a_pages_payments_in_one_query(
    make_kitchen: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
) -> None:
    kitchen = make_kitchen("api")  # no other role reads payments meanwhile
    with client(kitchen) as api:
        seeded = seed_reference(api)
        assert api.patch(f"/products/{seeded.burger}", json={"price": BURGER_PRICE}).is_success
        unpaid = api.post("/order", json=seeded.order(1)).json()
        assert api.patch("/merchant", json={"payments": "required"}).is_success
        paid = [api.post("/order", json=seeded.order(n)).json() for n in (1, 2, 3)]
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            listed = api.get("/orders").json()
        queries = [str(r.msg) for r in caplog.records if r.name == "peewee"]
    assert [o["payment"] for o in listed] == [o["payment"] for o in reversed(paid)] + [None]
    assert [o["payment"]["amount"] for o in listed[:3]] == [2550, 1700, 850]
    assert listed[3]["id"] == unpaid["id"]
    assert len([q for q in queries if 'FROM "payment"' in q]) == 1, queries


def test_an_off_merchant_orders_as_before(api: TestClient, seeded: Seeded) -> None:
    """Payments off (the default): no price needed, the order is pending at once and its
    ORDER_CREATED is in the outbox; no payment."""
    merchant = api.get("/merchant").json()
    assert (merchant["payments"], merchant["currency"]) == ("off", "EUR")
    r = api.post("/order", json=seeded.order(1))
    assert r.status_code == 201
    assert (r.json()["status"], r.json()["payment"]) in {("pending", None), ("applied", None)}
    with session():
        assert Outbox.select().where(Outbox.ref_id == r.json()["id"]).count() >= 1
        assert Payment.select().count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"payments": "maybe"}, "payments"),
        ({"payments": True}, "payments"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "EU"}, "currency"),
        ({"currency": 978}, "currency"),
        ({"currency": "€UR"}, "currency"),
    ],
)
def test_patch_merchant_refuses_bad_payments_and_currency(
    api: TestClient, change: dict[str, Any], field: str
) -> None:
    r = api.patch("/merchant", json=change)
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["field"] == field
    merchant = api.get("/merchant").json()
    assert (merchant["payments"], merchant["currency"]) == ("off", "EUR")


def test_patch_merchant_sets_payments_and_currency(api: TestClient) -> None:
    r = api.patch("/merchant", json={"payments": "required", "currency": "JPY"})
    assert r.status_code == 200
    assert (r.json()["payments"], r.json()["currency"]) == ("required", "JPY")
    # Null or absent leaves them as they are.
    r = api.patch("/merchant", json={"payments": None, "name": "Chez JP"})
    assert (r.json()["payments"], r.json()["currency"], r.json()["name"]) == (
        "required",
        "JPY",
        "Chez JP",
    )
    assert api.get("/merchant").json() == r.json()


@pytest.mark.parametrize("price", [1.5, 850.0, "850", True, -1, MAX_PRICE + 1, [850]])
def test_a_price_is_a_whole_number_of_cents(api: TestClient, seeded: Seeded, price: Any) -> None:
    recipe = [{"ingredient_id": seeded.onion, "grams": 5}]
    created = api.post("/products", json={"name": "Soup", "recipe": recipe, "price": price})
    patched = api.patch(f"/products/{seeded.burger}", json={"price": price})
    for r in (created, patched):
        assert r.status_code == 422, r.text
        [error] = r.json()["errors"]
        assert error["field"] == "price"
        assert "minor units" in error["message"]
    assert api.get(f"/products/{seeded.burger}").json()["price"] is None


def test_a_price_is_set_kept_and_removed(api: TestClient, seeded: Seeded) -> None:
    recipe = [{"ingredient_id": seeded.onion, "grams": 5}]
    soup = api.post("/products", json={"name": "Soup", "recipe": recipe, "price": 0}).json()
    assert soup["price"] == 0  # free is a price
    plain = api.post("/products", json={"name": "Tea", "recipe": recipe}).json()
    assert plain["price"] is None
    path = f"/products/{seeded.burger}"
    assert api.get(path).json()["price"] is None
    assert api.patch(path, json={"price": MAX_PRICE}).json()["price"] == MAX_PRICE
    renamed = api.patch(path, json={"name": "Big burger"}).json()
    assert (renamed["name"], renamed["price"]) == ("Big burger", MAX_PRICE)
    assert api.patch(path, json={"price": None}).json()["price"] is None
    listed = {p["id"]: p["price"] for p in api.get("/products").json()}
    assert listed == {seeded.burger: None, soup["id"]: 0, plain["id"]: None}


def test_a_kitchen_without_a_provider_lets_no_merchant_require_payments(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen(payments={"provider": "none"})
    with client(kitchen) as api:
        seeded = seed_reference(api)
        r = api.patch("/merchant", json={"payments": "required"})
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [
            {
                "field": "payments",
                "message": "this Kitchen takes no payments ([payments] provider = none)",
            }
        ]
        assert api.get("/merchant").json()["payments"] == "off"
        # One that required them before the provider was taken away: 503, nothing held.
        with session():
            Merchant.update(payments="required").execute()
            Product.update(price=850).execute()
        r = api.post("/order", json=seeded.order(1))
        assert r.status_code == 503, r.text
        assert "no payment provider" in r.json()["detail"]
        with session():
            assert [o.status for o in Order.select()] == [Order.CANCELLED]
        assert api.post("/order", json=seeded.order(1)).status_code == 503
