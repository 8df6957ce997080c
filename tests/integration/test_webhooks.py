"""POST /payments/webhook and development's fake card (issue 18): signed events move a
payment forward once, whatever arrives twice, late, forged or at the same time. Run on
both stacks: SQLite serialises the deliveries (BEGIN IMMEDIATE), PostgreSQL's row locks
make them take turns (KITCHEN_TEST_DATABASE_URL).

The merchant's paid order is made of rows (as POST /order makes it for a merchant that
requires payments): an order awaiting payment, its payment opened by the Cycle and a
hold at the fake provider.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import merchants, payment_worker, payments, providers, webhooks
from kitchen.db import session, transaction
from kitchen.events import OrderEvent
from kitchen.fake_provider import FakeProvider, event
from kitchen.http import Api, build_app
from kitchen.models import (
    FakeIntent,
    Merchant,
    Order,
    OrderLine,
    Outbox,
    Payment,
    PaymentEvent,
    Product,
)
from kitchen.providers import Hold, idempotency_key
from kitchen.settings import App, Settings
from tests.helpers import (
    assert_topic_stays_empty,
    client,
    eventually,
    read_topic,
    seed_reference,
    stock_after,
)

SECRET = "whsec_test_0123456789abcdef"
PRICE = 850  # a burger, in cents
BURGERS = 2


@dataclasses.dataclass(frozen=True)
class Paid:
    """A merchant that requires payments, its key and client, and one order of
    BURGERS burgers awaiting its payment."""

    api: TestClient
    kitchen: Kitchen
    merchant_id: int
    key: str
    order_id: int
    payment_id: int
    intent_id: str

    def intent(self, **changes: Any) -> dict[str, Any]:
        """The PaymentIntent as the provider shows it, with `changes`."""
        with session():
            row = FakeIntent.get(FakeIntent.intent_id == self.intent_id)
        return {
            "id": row.intent_id,
            "object": "payment_intent",
            "status": row.status,
            "amount": row.amount,
            "amount_received": row.amount_received,
            "amount_refunded": row.amount_refunded,
            "currency": row.currency.lower(),
            "metadata": {"order_id": str(row.order_id), "merchant_id": str(row.merchant_id)},
            **changes,
        }

    def state(self) -> dict[str, Any]:
        """What a webhook may change: the order, the payment, the events recorded and
        queued."""
        with session():
            order = Order.get_by_id(self.order_id)
            payment = Payment.get(
                Payment.merchant == self.merchant_id, Payment.id == self.payment_id
            )
            return {
                "order": (order.status, order.reason),
                "payment": (
                    payment.status,
                    payment.captured_amount,
                    payment.refunded_amount,
                    payment.failure,
                    payment.action,
                ),
                "payment_events": PaymentEvent.select()
                .where(PaymentEvent.merchant == self.merchant_id)
                .count(),
                "outbox": [
                    (o.topic, o.payload)
                    for o in Outbox.select()
                    .where(Outbox.merchant_id == self.merchant_id)
                    .order_by(Outbox.id)
                ],
            }

    def order_events(self) -> list[str]:
        """The types of the payment cycle's events queued on order_events, in order
        (processing's ORDER_APPLIED left out: it comes whenever the kitchen cooks)."""
        topic = self.kitchen.settings.kafka.order_events_topic
        with session():
            rows = Outbox.select().where(
                Outbox.merchant_id == self.merchant_id, Outbox.topic == topic
            )
            kinds = [json.loads(o.payload)["type"] for o in rows.order_by(Outbox.id)]
        return [k for k in kinds if k != OrderEvent.APPLIED]

    def order_created(self) -> int:
        """ORDER_CREATED rows queued for the order."""
        topic = self.kitchen.settings.kafka.order_created_topic
        with session():
            return (
                Outbox.select()
                .where(
                    Outbox.merchant_id == self.merchant_id,
                    Outbox.topic == topic,
                    Outbox.ref_id == self.order_id,
                )
                .count()
            )

    def payment(self) -> Payment:
        with session():
            found: Payment = Payment.get(
                Payment.merchant == self.merchant_id, Payment.id == self.payment_id
            )
            return found

    def order(self) -> Order:
        with session():
            found: Order = Order.get_by_id(self.order_id)
            return found


def awaiting_payment(kitchen: Kitchen, merchant_id: int, product_id: int) -> tuple[int, int, str]:
    """An order of BURGERS burgers waiting for its payment, as POST /order leaves it for a
    merchant that requires payments: (order id, payment id, the provider's intent id)."""
    cycle = payments.Cycle.of(kitchen.settings)
    amount = BURGERS * PRICE
    with transaction():
        order = Order.create(merchant=merchant_id, status=Order.AWAITING_PAYMENT)
        OrderLine.create(merchant=merchant_id, order=order.id, product=product_id, quantity=BURGERS)
        payment = cycle.open(merchant_id, order.id, amount, "EUR", "fake", 15)
    hold = Hold(order.id, merchant_id, amount, "EUR")
    intent = FakeProvider().create_hold(hold, idempotency_key(order.id, "hold", merchant_id))
    cycle.hold_made(merchant_id, payment.id, intent.id, intent.client_secret)
    return order.id, payment.id, intent.id


def paid_merchant(kitchen: Kitchen, name: str = "Paid") -> tuple[TestClient, int, str]:
    """A merchant that requires payments, seeded with the reference kitchen (the burger
    priced), and its client."""
    merchant, key = merchants.create(name, f"{name.lower()}@example.com")
    api = client(kitchen, key)
    seeded = seed_reference(api)
    with transaction():
        Merchant.update(payments="required").where(Merchant.id == merchant.id).execute()
        Product.update(price=PRICE).where(Product.id == seeded.burger).execute()
    return api, merchant.id, key


# Every role but payments: these tests bring the provider's news by hand, and the payments
# role would capture an applied order's hold meanwhile (tests/integration/test_payment_worker.py
# has the whole cycle).
ROLES = "api,processing,notification,relay"


@pytest.fixture
def make_paid(make_kitchen: Callable[..., Kitchen]) -> Iterator[Callable[..., Paid]]:
    clients: list[TestClient] = []

    def make(kitchen: Kitchen | None = None) -> Paid:
        kitchen = kitchen or make_kitchen(ROLES, payments={"webhook_secret": SECRET})
        api, merchant_id, key = paid_merchant(kitchen)
        clients.append(api)
        [burger] = [p["id"] for p in api.get("/products").json() if p["name"] == "Burger"]
        order_id, payment_id, intent_id = awaiting_payment(kitchen, merchant_id, burger)
        return Paid(api, kitchen, merchant_id, key, order_id, payment_id, intent_id)

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def paid(make_paid: Callable[..., Paid]) -> Paid:
    return make_paid()


def signature(raw: bytes, secret: str, t: int) -> str:
    """One v1 signature, as Stripe computes it: HMAC-SHA256 of "<t>.<raw body>"."""
    return hmac.new(secret.encode(), str(t).encode() + b"." + raw, hashlib.sha256).hexdigest()


def post(
    api: TestClient, body: dict[str, Any] | bytes, header: str | None = "sign", **sign: Any
) -> Any:
    """POST /payments/webhook with `body` (an event, or raw bytes), signed with SECRET
    unless `header` is given (None: no header)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if header == "sign":
        header = providers.sign(raw, sign.get("secret", SECRET), sign.get("t"))
    if header is not None:
        headers["Stripe-Signature"] = header
    return api.post("/payments/webhook", content=raw, headers=headers)


def authorized(paid: Paid) -> dict[str, Any]:
    """The event of the card held (the fake provider's intent moves with it)."""
    return FakeProvider().authorize(paid.intent_id)


def received(response: Any) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True}


# -- the hold is authorized -------------------------------------------------------------


def test_an_authorized_hold_sends_the_order_to_the_kitchen(paid: Paid) -> None:
    received(post(paid.api, authorized(paid)))

    assert paid.payment().status == Payment.AUTHORIZED
    assert paid.order_created() == 1
    assert paid.order_events() == [OrderEvent.AUTHORIZED]
    with session():
        [recorded] = PaymentEvent.select().where(PaymentEvent.merchant == paid.merchant_id)
    assert (recorded.type, recorded.payment_id) == (providers.AUTHORIZED, paid.payment_id)
    # Through the relay and the embedded Kafka to processing: the stock moves.
    eventually(lambda: paid.order().status == Order.APPLIED)
    stock = {i["name"]: i["stock"] for i in paid.api.get("/ingredients").json()}
    assert stock == stock_after(BURGERS)
    view = paid.api.get(f"/order/{paid.order_id}").json()
    assert view["status"] == Order.APPLIED
    # PAYMENT_AUTHORIZED reaches order_events, keyed by the merchant.
    topic = paid.kitchen.settings.kafka.order_events_topic
    records = read_topic(paid.kitchen.bootstrap_servers, topic, expect=1)
    mine = [r for r in records if r.json()["merchant_id"] == paid.merchant_id]
    assert [r.json()["type"] for r in mine][:1] == [OrderEvent.AUTHORIZED]
    assert mine[0].key == str(paid.merchant_id)
    assert mine[0].json()["id"] == paid.order_id


def test_the_relay_is_woken_after_a_commit_that_queued_events(paid: Paid) -> None:
    woken: list[int] = []
    api = Api(
        paid.kitchen.settings,
        paid.merchant_id,
        on_commit=lambda: woken.append(paid.payment().status == Payment.AUTHORIZED),
        provider=FakeProvider(),
    )
    with TestClient(build_app(api)) as hooks:
        once = authorized(paid)
        received(post(hooks, once))
        assert woken == [True]  # after the commit: the relay sees the rows
        received(post(hooks, once))  # a repeat queues nothing
        received(post(hooks, event("payment_intent.created", paid.intent())))
        assert woken == [True]


def test_the_same_event_three_times_changes_once(paid: Paid) -> None:
    once = authorized(paid)
    received(post(paid.api, once))
    eventually(lambda: paid.order().status == Order.APPLIED)  # the kitchen is done too
    after_first = paid.state()
    for _ in range(2):
        received(post(paid.api, once))  # signed again, at another time: the same event
    assert paid.state() == after_first
    assert paid.order_created() == 1
    assert after_first["payment_events"] == 1
    assert paid.order_events() == [OrderEvent.AUTHORIZED]


def test_a_hold_for_less_or_in_another_currency_pays_for_nothing(paid: Paid) -> None:
    before = paid.state()
    for changes in ({"amount": PRICE * BURGERS - 1}, {"currency": "usd"}):
        held = event(providers.AUTHORIZED, paid.intent(status="requires_capture", **changes))
        received(post(paid.api, held))
        after = paid.state()  # still waiting for a hold that pays for it
        assert (after["order"], after["payment"], after["outbox"]) == (
            before["order"],
            before["payment"],
            before["outbox"],
        )
    assert paid.order_created() == 0


def test_concurrent_deliveries_of_one_event_apply_once(paid: Paid) -> None:
    """Eight deliveries of the same event at once (threads, one transaction each): one
    applies, the others find it applied; on PostgreSQL they wait on the order's row."""
    hooks = webhooks.Webhooks(paid.kitchen.settings, payments.Cycle.of(paid.kitchen.settings))
    raw = json.dumps(authorized(paid)).encode()
    start = threading.Barrier(8)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            start.wait()
            outcomes.append(hooks.deliver(raw, providers.sign(raw, SECRET)).outcome)
        except BaseException as exc:  # the test fails on it below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(outcomes) == ["applied"] + ["seen"] * 7
    state = paid.state()
    assert state["payment"][0] == Payment.AUTHORIZED
    assert state["payment_events"] == 1
    assert paid.order_created() == 1
    assert paid.order_events() == [OrderEvent.AUTHORIZED]


def test_the_change_and_the_event_row_commit_together(
    paid: Paid, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the check (as a concurrent delivery could get), the event's unique row is
    refused at the insert: the change the Cycle made before it (in its savepoint) rolls
    back with it."""
    received(post(paid.api, authorized(paid)))
    amount = BURGERS * PRICE
    captured = paid.intent(status=providers.SUCCEEDED, amount_received=amount)
    received(post(paid.api, event(providers.SUCCEEDED_EVENT, captured)))
    charge = {
        "object": "charge",
        "payment_intent": paid.intent_id,
        "amount_captured": amount,
        "amount_refunded": 500,
        "metadata": {"merchant_id": str(paid.merchant_id)},
    }
    refunded = event(providers.REFUNDED_EVENT, charge)
    received(post(paid.api, refunded))
    eventually(lambda: paid.order().status == Order.APPLIED)  # the kitchen is done too
    before = paid.state()
    assert before["payment"][2] == 500

    monkeypatch.setattr(webhooks, "_seen", lambda merchant_id, event_id: False)
    # The same event id, saying more was refunded: the Cycle would move the payment.
    more = {**refunded, "data": {"object": {**charge, "amount_refunded": amount}}}
    received(post(paid.api, more))
    assert paid.state() == before


def test_authorize_and_decline_at_once_end_in_one_state(paid: Paid) -> None:
    """Two different events racing: whichever commits first wins (a payment never moves
    from authorized to failed by a decline; a hold reported after a decline is only
    released)."""
    hooks = webhooks.Webhooks(paid.kitchen.settings, payments.Cycle.of(paid.kitchen.settings))
    held = json.dumps(authorized(paid)).encode()
    declined = json.dumps(
        event(providers.FAILED, paid.intent(last_payment_error={"message": "declined"}))
    ).encode()
    start = threading.Barrier(2)
    moved: list[bool] = []

    def deliver(raw: bytes) -> None:
        start.wait()
        moved.append(hooks.deliver(raw, providers.sign(raw, SECRET)).moved)

    threads = [threading.Thread(target=deliver, args=(r,)) for r in (held, declined)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    status = paid.payment().status
    if status == Payment.AUTHORIZED:
        assert sorted(moved) == [False, True]  # the decline came second: nothing
        assert paid.order_created() == 1
        assert paid.order_events() == [OrderEvent.AUTHORIZED]
    else:
        # The decline came first; the hold the authorization reports is then released
        # (the payments role voids it): the order stays cancelled.
        assert moved == [True, True]
        assert status == Payment.FAILED and paid.payment().action == Payment.VOID
        assert paid.order().status == Order.CANCELLED
        assert paid.order_created() == 0
        assert paid.order_events() == [OrderEvent.FAILED, OrderEvent.CANCELLED]
    assert paid.state()["payment_events"] == 2


# -- forged, stale, broken --------------------------------------------------------------


def test_unverified_webhooks_are_refused_and_change_nothing(paid: Paid) -> None:
    body = authorized(paid)
    raw = json.dumps(body).encode()
    now = int(time.time())
    latin = b"\xff\xfe{}"  # not UTF-8
    before = paid.state()
    refused = {
        "no header": post(paid.api, body, header=None),
        "empty header": post(paid.api, body, header=""),
        "wrong secret": post(paid.api, body, secret="whsec_someone_else"),
        "stale (301 s)": post(paid.api, body, t=now - 301),
        "from the future": post(paid.api, body, t=now + 301),
        "body changed after signing": post(
            paid.api,
            raw.replace(b'"requires_capture"', b'"succeeded" '),
            providers.sign(raw, SECRET),
        ),
        "no v1": post(paid.api, body, header=f"t={now}"),
        "not a header": post(paid.api, body, header="garbage"),
        "garbage body, signed": post(paid.api, b"{not json"),
        "not an event, signed": post(paid.api, {"id": "evt_1", "type": providers.AUTHORIZED}),
        "an event id with a NUL, signed": post(paid.api, {**body, "id": "evt_\u0000"}),
        "an event id too long, signed": post(paid.api, {**body, "id": "evt_" + "x" * 300}),
        "not UTF-8, signed": post(paid.api, latin, f"t={now},v1={signature(latin, SECRET, now)}"),
    }
    for why, response in refused.items():
        assert response.status_code == 400, (why, response.text)
        assert response.headers["content-type"] == "application/problem+json", why
        problem = response.json()
        assert problem["title"] == "Bad webhook", why
        assert problem["detail"].startswith("the webhook is refused: "), why
    assert "Stripe-Signature" in refused["no header"].json()["detail"]
    assert "UTF-8" in refused["not UTF-8, signed"].json()["detail"]
    assert paid.state() == before


def test_an_old_and_a_new_secret_are_both_accepted_while_it_rotates(paid: Paid) -> None:
    raw = json.dumps(authorized(paid)).encode()
    now = int(time.time())
    header = f"t={now},v1={signature(raw, 'whsec_old_one', now)},v1={signature(raw, SECRET, now)}"
    received(post(paid.api, raw, header))
    assert paid.payment().status == Payment.AUTHORIZED


def test_any_content_type_is_taken(paid: Paid) -> None:
    """The signature vouches for the body, whatever its Content-Type says."""
    raw = json.dumps(authorized(paid)).encode()
    response = paid.api.post(
        "/payments/webhook",
        content=raw,
        headers={"Stripe-Signature": providers.sign(raw, SECRET), "Content-Type": "text/plain"},
    )
    received(response)
    assert paid.payment().status == Payment.AUTHORIZED


def test_a_body_over_the_limit_is_413(make_kitchen: Callable[..., Kitchen]) -> None:
    kitchen = make_kitchen("api", payments={"webhook_secret": SECRET}, http={"max_body_bytes": 100})
    with TestClient(kitchen.web_app()) as api:
        raw = json.dumps({"id": "evt_1", "type": "x", "data": {"object": {"pad": "x" * 200}}})
        response = post(api, raw.encode())
    assert response.status_code == 413
    assert response.json()["detail"] == "the body must be at most 100 bytes"


# -- out of order, declined, refunded, unknown --------------------------------------------


def test_a_late_authorization_never_takes_a_captured_payment_back(paid: Paid) -> None:
    first = authorized(paid)
    received(post(paid.api, first))
    eventually(lambda: paid.order().status == Order.APPLIED)
    captured = paid.intent(status=providers.SUCCEEDED, amount_received=BURGERS * PRICE)
    received(post(paid.api, event(providers.SUCCEEDED_EVENT, captured)))
    assert paid.payment().status == Payment.CAPTURED
    assert paid.payment().captured_amount == BURGERS * PRICE
    before = paid.state()

    # Stripe's retry of the authorization (another delivery) arrives after the capture.
    late = event(providers.AUTHORIZED, paid.intent(status=providers.REQUIRES_CAPTURE))
    received(post(paid.api, late))
    after = paid.state()
    assert after["payment"] == before["payment"]
    assert after["order"] == (Order.APPLIED, None)
    assert after["outbox"] == before["outbox"]  # no second ORDER_CREATED, no event
    assert after["payment_events"] == before["payment_events"] + 1  # seen, once
    assert paid.order_created() == 1
    assert paid.order_events() == [OrderEvent.AUTHORIZED, OrderEvent.PAID]


def test_a_declined_card_cancels_the_order(paid: Paid) -> None:
    declined = FakeProvider().decline(paid.intent_id)
    received(post(paid.api, declined))

    payment, order = paid.payment(), paid.order()
    assert payment.status == Payment.FAILED
    assert payment.failure == "payment declined: Your card was declined."
    assert order.status == Order.CANCELLED
    assert order.reason == "payment declined: Your card was declined."
    assert paid.order_events() == [OrderEvent.FAILED, OrderEvent.CANCELLED]
    assert paid.order_created() == 0
    # Nothing reached the kitchen: no order on order_created, the stock as it was.
    kafka = paid.kitchen.settings.kafka
    assert_topic_stays_empty(paid.kitchen.bootstrap_servers, kafka.order_created_topic)
    stock = {i["name"]: i["stock"] for i in paid.api.get("/ingredients").json()}
    assert stock == stock_after(0)


def test_a_card_held_after_a_decline_is_released(paid: Paid) -> None:
    """Declined, then the customer's second card holds the same intent: the order stays
    cancelled and the payments role voids the hold nobody will capture."""
    received(post(paid.api, FakeProvider().decline(paid.intent_id)))
    with transaction():  # a second card on the same intent (Stripe allows it)
        FakeIntent.update(status="requires_capture", failure=None).where(
            FakeIntent.intent_id == paid.intent_id
        ).execute()
    received(post(paid.api, event(providers.AUTHORIZED, paid.intent())))
    assert paid.payment().action == Payment.VOID  # owed to the payments role
    # The payments role (off in these tests' Kitchens) makes the call.
    settings = paid.kitchen.settings
    settler = payment_worker.Settler(FakeProvider(), payments.Cycle.of(settings), 1, 1)
    assert settler.settle_once() == 1
    with session():
        assert FakeIntent.get(FakeIntent.intent_id == paid.intent_id).status == "canceled"
    assert paid.payment().action is None
    assert (paid.payment().status, paid.order().status) == (Payment.FAILED, Order.CANCELLED)
    assert paid.order_created() == 0


def test_a_decline_message_becomes_a_printable_reason(paid: Paid) -> None:
    message = "Insufficient\u0000 funds\n" + "x" * 300
    failed = event(providers.FAILED, paid.intent(last_payment_error={"message": message}))
    received(post(paid.api, failed))
    reason = "payment declined: Insufficient funds" + "x" * (200 - len("Insufficient funds"))
    assert (paid.order().status, paid.order().reason) == (Order.CANCELLED, reason)
    assert paid.payment().failure == reason


def test_a_hold_cancelled_at_the_provider_before_the_card_cancels_the_order(
    paid: Paid,
) -> None:
    """Cancelled at the provider (its dashboard, its own expiry) while the order waits
    for the card: the order is cancelled, it would wait for nothing."""
    cancelled = paid.intent(status=providers.CANCELED)
    received(post(paid.api, event(providers.CANCELED_EVENT, cancelled)))
    assert paid.payment().status == Payment.VOIDED
    order = paid.order()
    assert (order.status, order.reason) == (
        Order.CANCELLED,
        "cancelled: the payment was cancelled",
    )
    assert paid.order_events() == [OrderEvent.VOIDED, OrderEvent.CANCELLED]
    assert paid.order_created() == 0


def test_a_hold_cancelled_after_the_kitchen_cooked_gives_the_stock_back(paid: Paid) -> None:
    """The provider cancels an authorized hold (it expired there) after the order was
    applied: it can no longer be captured, so the stock goes back (compensation), the
    order is rejected, the payment failed. Three transactions deep (the webhook's, the
    Cycle's `voided`, its `capture_refused`): savepoints, one commit."""
    received(post(paid.api, authorized(paid)))
    eventually(lambda: paid.order().status == Order.APPLIED)
    stock = {i["name"]: i["stock"] for i in paid.api.get("/ingredients").json()}
    assert stock == stock_after(BURGERS)

    cancelled = paid.intent(status=providers.CANCELED)
    received(post(paid.api, event(providers.CANCELED_EVENT, cancelled)))
    assert paid.payment().status == Payment.FAILED
    order = paid.order()
    assert order.status == Order.REJECTED
    assert order.reason == "payment could not be captured: the hold was cancelled"
    stock = {i["name"]: i["stock"] for i in paid.api.get("/ingredients").json()}
    assert stock == stock_after(0)
    assert paid.order_events()[-2:] == [OrderEvent.FAILED, OrderEvent.REJECTED]


def test_a_refund_seen_at_the_provider_counts(paid: Paid) -> None:
    received(post(paid.api, authorized(paid)))
    amount = BURGERS * PRICE
    captured = paid.intent(status=providers.SUCCEEDED, amount_received=amount)
    received(post(paid.api, event(providers.SUCCEEDED_EVENT, captured)))
    charge = {
        "id": "ch_fake_1",
        "object": "charge",
        "payment_intent": paid.intent_id,
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 500,
        "currency": "eur",
        "metadata": {"order_id": str(paid.order_id), "merchant_id": str(paid.merchant_id)},
    }
    received(post(paid.api, event(providers.REFUNDED_EVENT, charge)))
    payment = paid.payment()
    assert (payment.status, payment.refunded_amount) == (Payment.PARTIALLY_REFUNDED, 500)
    received(post(paid.api, event(providers.REFUNDED_EVENT, {**charge, "amount_refunded": amount})))
    payment = paid.payment()
    assert (payment.status, payment.refunded_amount) == (Payment.REFUNDED, amount)
    assert paid.order_events()[-2:] == [OrderEvent.REFUNDED, OrderEvent.REFUNDED]


def test_an_unknown_payment_or_type_is_acknowledged_and_changes_nothing(
    paid: Paid, caplog: pytest.LogCaptureFixture
) -> None:
    before = paid.state()
    metadata = {"order_id": str(paid.order_id), "merchant_id": str(paid.merchant_id)}
    unknown = {"id": "pi_fake_unknown", "object": "payment_intent", "metadata": metadata}
    other = {
        "id": "pi_fake_other",
        "object": "payment_intent",
        "metadata": {"merchant_id": "999999"},
    }
    no_merchant = paid.intent(metadata={"order_id": str(paid.order_id)})
    # Not an id Kitchen could have written: past the 64-bit column, not ASCII digits.
    too_big = paid.intent(metadata={"merchant_id": "9" * 19})
    not_ascii = paid.intent(metadata={"merchant_id": "\u00b2"})
    nul = paid.intent(id="pi_fake\u0000")  # PostgreSQL's driver refuses a NUL
    with caplog.at_level(logging.INFO, logger="kitchen.webhooks"):
        for body in (
            event(providers.AUTHORIZED, unknown),
            event(providers.AUTHORIZED, other),
            event(providers.AUTHORIZED, no_merchant),
            event(providers.AUTHORIZED, too_big),
            event(providers.AUTHORIZED, not_ascii),
            event(providers.AUTHORIZED, nul),
            event(providers.AUTHORIZED, paid.intent(id="pi_" + "x" * 300)),
            event("payment_intent.created", paid.intent()),  # a type that moves nothing
        ):
            received(post(paid.api, body))
    assert paid.state() == before  # and no PaymentEvent row
    logged = caplog.text
    assert "no payment pi_fake_unknown of merchant" in logged
    assert "names no merchant in its metadata" in logged
    assert "payment_intent.created): a type that moves no payment, ignored" in logged


# -- the secret --------------------------------------------------------------------------


def test_the_secret_logic() -> None:
    dev, prod = Settings(), Settings(app=App("production"))
    assert webhooks.webhook_secret(dev) == webhooks.webhook_secret(dev)  # once per process
    assert webhooks.webhook_secret(dev).startswith("whsec_dev_")
    assert webhooks.webhook_secret(prod) == ""
    configured = dataclasses.replace(prod.payments, webhook_secret=SECRET)
    assert webhooks.webhook_secret(dataclasses.replace(prod, payments=configured)) == SECRET


def test_production_without_a_secret_refuses_every_webhook(
    paid: Paid, caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(paid.kitchen.settings, app=App("production"))
    settings = dataclasses.replace(
        settings, payments=dataclasses.replace(settings.payments, webhook_secret="")
    )
    with caplog.at_level(logging.WARNING, logger="kitchen.webhooks"):
        app = build_app(Api(settings, paid.merchant_id, provider=FakeProvider()))
    assert webhooks.UNSET_IN_PRODUCTION in caplog.text
    assert caplog.text.count("payments.webhook_secret is not set") == 1
    before = paid.state()
    with TestClient(app) as api:
        for secret in (SECRET, "", webhooks.webhook_secret(Settings())):
            raw = json.dumps(authorized(paid)).encode()
            now = int(time.time())
            response = post(api, raw, f"t={now},v1={signature(raw, secret, now)}")
            assert response.status_code == 400
            assert "webhook_secret" in response.json()["detail"]
    assert paid.state() == before


def test_development_without_a_secret_refuses_events_from_outside(
    make_kitchen: Callable[..., Kitchen],
    make_paid: Callable[..., Paid],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="kitchen.webhooks"):
        paid = make_paid(make_kitchen(ROLES))  # no webhook_secret
    assert webhooks.UNSET_IN_DEVELOPMENT in caplog.text
    assert "cannot be verified" in webhooks.UNSET_IN_DEVELOPMENT
    before = paid.state()
    response = post(paid.api, authorized(paid))  # signed with a secret Kitchen does not have
    assert response.status_code == 400
    assert paid.state() == before


# -- the fake card (development) -----------------------------------------------------------


def test_the_fake_card_authorizes_through_the_webhook(
    make_kitchen: Callable[..., Kitchen], make_paid: Callable[..., Paid]
) -> None:
    paid = make_paid(make_kitchen(ROLES))  # development, no secret: the process's own
    response = paid.api.post(f"/payments/fake/{paid.intent_id}/authorize")
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["id"], view["status"]) == (paid.order_id, Order.PENDING)
    assert view["lines"] == [{"product_id": view["lines"][0]["product_id"], "quantity": BURGERS}]
    assert paid.payment().status == Payment.AUTHORIZED
    assert paid.state()["payment_events"] == 1  # through the webhook's code
    assert paid.order_created() == 1
    eventually(lambda: paid.order().status == Order.APPLIED)
    # Again: the card is held already, the event is a new one, nothing moves.
    again = paid.api.post(f"/payments/fake/{paid.intent_id}/authorize")
    assert again.status_code == 200
    assert again.json()["status"] == Order.APPLIED
    assert paid.order_created() == 1


def test_an_order_placed_paid_and_cooked_over_http(make_kitchen: Callable[..., Kitchen]) -> None:
    """The walkthrough, all HTTP: a merchant requires payments, an order waits for its
    payment, the fake card authorizes it (answered with the order as the Order schema
    says), the kitchen cooks it."""
    kitchen = make_kitchen()  # development, no secret: the process's own
    with client(kitchen) as api:
        seeded = seed_reference(api)
        assert api.patch(f"/products/{seeded.burger}", json={"price": PRICE}).status_code == 200
        assert api.patch("/merchant", json={"payments": "required"}).status_code == 200
        placed = api.post("/order", json=seeded.order(BURGERS))
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert order["status"] == Order.AWAITING_PAYMENT
        payment = order["payment"]
        assert (payment["status"], payment["amount"]) == ("requires_payment", BURGERS * PRICE)

        held = api.post(f"/payments/fake/{payment['id']}/authorize")
        assert held.status_code == 200, held.text
        view = held.json()
        assert (view["id"], view["status"]) == (order["id"], Order.PENDING)
        assert view["payment"] == {
            **payment,
            "status": Payment.AUTHORIZED,
            "client_secret": None,
        }
        schemas = api.get("/openapi.json").json()["components"]
        jsonschema.Draft202012Validator(
            {"$ref": "#/components/schemas/Order", "components": schemas}
        ).validate(view)
        eventually(lambda: api.get(f"/order/{order['id']}").json()["status"] == Order.APPLIED)
        stock = {i["name"]: i["stock"] for i in api.get("/ingredients").json()}
        assert stock == stock_after(BURGERS)


def test_the_fake_card_declines(
    make_kitchen: Callable[..., Kitchen], make_paid: Callable[..., Paid]
) -> None:
    paid = make_paid(make_kitchen(ROLES, payments={"webhook_secret": SECRET}))
    response = paid.api.post(f"/payments/fake/{paid.intent_id}/decline")
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["status"], view["reason"]) == (
        Order.CANCELLED,
        "payment declined: Your card was declined.",
    )
    assert paid.payment().status == Payment.FAILED
    assert paid.order_events() == [OrderEvent.FAILED, OrderEvent.CANCELLED]
    assert paid.order_created() == 0
    # Another card declined (the intent still waits for one, as Stripe's does): the
    # payment failed already, nothing more changes.
    before = paid.state()
    again = paid.api.post(f"/payments/fake/{paid.intent_id}/decline")
    assert again.status_code == 200
    assert again.json()["status"] == Order.CANCELLED
    after = paid.state()
    assert after["payment_events"] == before["payment_events"] + 1
    assert {**after, "payment_events": 0} == {**before, "payment_events": 0}


def test_the_fake_card_cannot_hold_a_cancelled_payment(
    make_kitchen: Callable[..., Kitchen], make_paid: Callable[..., Paid]
) -> None:
    paid = make_paid(make_kitchen(ROLES, payments={"webhook_secret": SECRET}))
    key = idempotency_key(paid.order_id, "cancel", paid.merchant_id)
    FakeProvider().cancel(paid.intent_id, key)
    before = paid.state()
    for action in ("authorize", "decline"):
        response = paid.api.post(f"/payments/fake/{paid.intent_id}/{action}")
        assert response.status_code == 409, response.text
        assert response.json()["detail"] == (
            f"this PaymentIntent cannot be {action}d: it is canceled"
        )
    assert paid.state() == before


def test_the_fake_card_is_for_its_merchant_only(
    make_kitchen: Callable[..., Kitchen], make_paid: Callable[..., Paid]
) -> None:
    kitchen = make_kitchen(ROLES, payments={"webhook_secret": SECRET})
    paid = make_paid(kitchen)
    other, _, _ = paid_merchant(kitchen, "Other")
    before = paid.state()
    with other:
        for action in ("authorize", "decline"):
            response = other.post(f"/payments/fake/{paid.intent_id}/{action}")
            assert response.status_code == 404, response.text
            assert response.json()["detail"] == f"there is no payment {paid.intent_id}"
        for unknown in ("pi_fake_nothing", "pi%00", "x" * 300):
            response = other.post(f"/payments/fake/{unknown}/authorize")
            assert response.status_code == 404, (unknown, response.text)
    # The merchant's own payment, made with another provider: not the fake card's.
    with transaction():
        Payment.update(provider="stripe").where(
            Payment.merchant == paid.merchant_id, Payment.id == paid.payment_id
        ).execute()
    stripe = paid.api.post(f"/payments/fake/{paid.intent_id}/authorize")
    assert stripe.status_code == 404, stripe.text
    with transaction():
        Payment.update(provider="fake").where(
            Payment.merchant == paid.merchant_id, Payment.id == paid.payment_id
        ).execute()
    assert paid.state() == before


def test_the_fake_card_is_404_in_production_and_with_another_provider(paid: Paid) -> None:
    base = paid.kitchen.settings
    stripe = dataclasses.replace(base.payments, provider="stripe", stripe_api_key="sk_test_x")
    for settings in (
        dataclasses.replace(base, app=App("production")),
        dataclasses.replace(base, payments=stripe),
    ):
        app = build_app(Api(settings, paid.merchant_id, provider=FakeProvider()))
        with TestClient(app, headers={"Authorization": f"Bearer {paid.key}"}) as api:
            for action in ("authorize", "decline"):
                response = api.post(f"/payments/fake/{paid.intent_id}/{action}")
                assert response.status_code == 404, response.text
                assert response.headers["content-type"] == "application/problem+json"
    assert paid.payment().status == Payment.REQUIRES_PAYMENT
    assert paid.state()["payment_events"] == 0
