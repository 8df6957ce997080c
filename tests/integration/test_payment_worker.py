"""The payments role: the kitchen's outcome on order_events makes the provider capture or
void the hold, exactly once, whatever is redelivered, retried or raced; expiry, refunds
and compensation."""

from __future__ import annotations

import datetime
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from app import Kitchen
from kitchen import payment_worker
from kitchen.db import session, utcnow
from kitchen.events import OrderEvent
from kitchen.fake_provider import FakeProvider
from kitchen.models import (
    Alert,
    FakeIntent,
    FakeRequest,
    Ingredient,
    LedgerEntry,
    Order,
    Outbox,
    Payment,
    Refund,
)
from kitchen.payments import Cycle
from kitchen.providers import CANCELED, REQUIRES_CAPTURE, SUCCEEDED, Intent
from kitchen.seed import REFERENCE_STOCK
from tests.helpers import client, eventually, read_topic, seed_reference, stock_after
from tests.paid_orders import Counting, Paid, paid_order, seed_kitchen


def stock(merchant_id: int) -> dict[str, int]:
    with session():
        rows = Ingredient.select().where(Ingredient.merchant == merchant_id)
        return {i.name: i.stock for i in rows}


def events_of(kitchen: Kitchen, order_id: int) -> list[dict[str, Any]]:
    """The order's events on order_events, in order (one merchant: one partition)."""
    records = read_topic(kitchen.bootstrap_servers, kitchen.settings.kafka.order_events_topic, 1)
    return [r.json() for r in records if r.json()["id"] == order_id]


def at_least(kitchen: Kitchen, order_id: int, count: int) -> Callable[[], Any]:
    """A check: the order's events once `count` are on the topic."""

    def check() -> list[dict[str, Any]] | None:
        found = events_of(kitchen, order_id)
        return found if len(found) >= count else None

    return check


def settled(p: Paid, status: str) -> Callable[[], bool]:
    return lambda: p.payment().status == status


def counting(kitchen: Kitchen, **options: Any) -> Counting:
    """Put a counting wrapper around `kitchen`'s settler's provider."""
    assert kitchen.settler is not None
    provider = Counting(kitchen.settler.provider, **options)
    kitchen.settler.provider = provider
    return provider


def announced(kitchen: Kitchen, p: Paid, kind: str) -> list[dict[str, Any]]:
    """The order's events of `kind` written to the outbox, in order."""
    with session():
        rows = Outbox.select().where(
            Outbox.merchant_id == p.merchant_id,
            Outbox.topic == kitchen.settings.kafka.order_events_topic,
            Outbox.ref_id == p.order_id,
        )
        events = [json.loads(e.payload) for e in rows.order_by(Outbox.id)]
    return [e for e in events if e["type"] == kind]


def test_an_applied_order_is_captured_once_and_announced_paid(kitchen: Kitchen) -> None:
    seeded = seed_kitchen(kitchen)
    provider = counting(kitchen)
    p = paid_order(kitchen, seeded, 2)

    eventually(settled(p, Payment.CAPTURED))
    assert p.order().status == Order.APPLIED
    assert stock(p.merchant_id) == stock_after(2)
    payment = p.payment()
    assert (payment.captured_amount, payment.action, payment.claimed_until) == (2500, None, None)
    intent = p.intent()
    assert (intent.status, intent.amount_received) == (SUCCEEDED, 2500)
    assert provider.calls == Counter({p.key("capture"): 1})
    assert p.requests("capture") == 1

    events = eventually(at_least(kitchen, p.order_id, 3))
    assert [e["type"] for e in events] == ["PAYMENT_AUTHORIZED", "ORDER_APPLIED", "ORDER_PAID"]
    paid = events[2]
    assert paid["merchant_id"] == p.merchant_id
    assert (paid["amount"], paid["currency"], paid["payment_status"]) == (2500, "EUR", "captured")


def test_an_order_rejected_for_stock_is_voided_and_nothing_charged(kitchen: Kitchen) -> None:
    seeded = seed_kitchen(kitchen)
    provider = counting(kitchen)
    p = paid_order(kitchen, seeded, 60)  # onion: 60 x 20 g > 1,000 g

    eventually(settled(p, Payment.VOIDED))
    order = p.order()
    assert order.status == Order.REJECTED
    assert str(order.reason).startswith("insufficient stock: onion")
    assert stock(p.merchant_id) == REFERENCE_STOCK
    intent = p.intent()
    assert (intent.status, intent.amount_received) == (CANCELED, 0)
    assert provider.calls == Counter({p.key("cancel"): 1})
    assert p.payment().captured_amount == 0
    events = eventually(at_least(kitchen, p.order_id, 3))
    assert [e["type"] for e in events] == ["PAYMENT_AUTHORIZED", "ORDER_REJECTED", "PAYMENT_VOIDED"]
    assert events[1]["reason"] == order.reason


def test_a_hold_not_authorized_in_time_expires_and_its_order_is_cancelled(
    kitchen: Kitchen,
) -> None:
    seeded = seed_kitchen(kitchen)
    p = paid_order(kitchen, seeded, 2, authorize=False, hold_minutes=0)
    assert kitchen.settler is not None
    job = payment_worker.jobs(Cycle.of(kitchen.settings), FakeProvider(), kitchen.settler)

    job()  # what the payments role runs every 30 s
    eventually(settled(p, Payment.EXPIRED))
    order = p.order()
    assert order.status == Order.CANCELLED
    assert order.reason == "cancelled: payment not authorized in time"
    assert p.intent().status == CANCELED and p.intent().amount_received == 0
    assert stock(p.merchant_id) == REFERENCE_STOCK  # never reached the kitchen
    assert p.payment().action is None


def test_a_capture_refused_for_good_gives_the_stock_back(kitchen: Kitchen) -> None:
    seeded = seed_kitchen(kitchen)
    # 26 burgers take onion to 480 g of 1,000: below half, so its alert fires.
    p = paid_order(kitchen, seeded, 26, authorize=False)
    fake = FakeProvider()
    fake.authorize(p.intent_id)
    fake.cancel(p.intent_id, "the-hold-expired-at-the-provider")  # before Kitchen captures
    assert Cycle.of(kitchen.settings).authorized(p.merchant_id, p.payment_id)
    kitchen.wake_relay()

    eventually(settled(p, Payment.FAILED))
    assert stock(p.merchant_id) == REFERENCE_STOCK  # every gram back
    with session():
        back = {
            e.ingredient.name: e.grams
            for e in LedgerEntry.select().where(
                LedgerEntry.order == p.order_id, LedgerEntry.reason == LedgerEntry.COMPENSATION
            )
        }
        onion = Ingredient.get(Ingredient.merchant == p.merchant_id, Ingredient.name == "onion")
        alerts = Alert.select().where(Alert.ingredient == onion.id).count()
        [alert] = Alert.select().where(Alert.ingredient == onion.id)
        keys = {e.key_name for e in LedgerEntry.select().where(LedgerEntry.order == p.order_id)}
    assert back == {"beef": 26 * 150, "cheese": 26 * 30, "onion": 26 * 20}
    assert alerts == 1 and onion.alert_armed  # fired once, armed again: stock is back over
    # Caused by the order, resolved by the compensation (issue 19); no key did either.
    assert (alert.cause, alert.order_id, alert.resolved_by) == ("order", p.order_id, "compensation")
    assert alert.resolved_at is not None and keys == {None}
    order = p.order()
    assert order.status == Order.REJECTED
    assert str(order.reason).startswith("payment could not be captured")
    payment = p.payment()
    assert payment.captured_amount == 0 and payment.action is None
    assert p.intent().amount_received == 0


def test_a_provider_away_is_retried_with_back_off_then_captured_once(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen(payments={"retry_seconds": 1, "retry_max_seconds": 2})
    seeded = seed_kitchen(kitchen)
    seen: list[tuple[datetime.datetime, int, datetime.datetime | None]] = []
    p: Paid | None = None

    class Watching(Counting):
        def capture(self, intent_id: str, idempotency_key: str) -> Intent:
            assert p is not None
            row = p.payment()
            seen.append((utcnow(), row.attempts, row.next_attempt_at))
            return super().capture(intent_id, idempotency_key)

    assert kitchen.settler is not None
    provider = Watching(kitchen.settler.provider, down=3)
    kitchen.settler.provider = provider
    p = paid_order(kitchen, seeded, 2)

    eventually(lambda: provider.failed == [p.key("capture")] * 3)
    assert p.payment().status == Payment.AUTHORIZED  # waiting, not lost
    assert p.payment().last_error == "ProviderUnavailable: connection refused (test)"
    eventually(settled(p, Payment.CAPTURED))
    assert provider.calls == Counter({p.key("capture"): 4})
    assert [attempts for _, attempts, _ in seen] == [0, 1, 2, 3]
    # Each retry was due 1, 2, then 2 s (the maximum) after the call before failed.
    for (called, _, _), (_, _, due), delay in zip(seen[:-1], seen[1:], [1, 2, 2], strict=True):
        assert due is not None
        waited = (due - called).total_seconds()
        assert delay <= waited < delay + 1, (delay, waited)
    for called, _, due in seen[1:]:
        assert due is not None and called >= due
    assert p.payment().attempts == 3
    assert (p.intent().amount_received, p.requests("capture")) == (2500, 1)


def test_two_settlers_on_one_database_capture_each_payment_once(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    first = make_kitchen()
    second = make_kitchen("payments")
    seeded = seed_kitchen(first)
    # Each call takes a while, so that both settlers have rows to claim at the same time.
    one, two = counting(first, delay=0.05), counting(second, delay=0.05)
    paid = [paid_order(first, seeded, 1) for _ in range(45)]

    eventually(lambda: all(p.payment().status == Payment.CAPTURED for p in paid), timeout=60)
    calls = one.calls + two.calls
    assert calls == Counter({p.key("capture"): 1 for p in paid})
    assert one.calls and two.calls  # both took part
    with session():
        intents = {i.intent_id: i for i in FakeIntent.select()}
    assert all(intents[p.intent_id].amount_received == p.amount for p in paid)


def test_refunds_are_made_once_each_partial_then_full(kitchen: Kitchen) -> None:
    seeded = seed_kitchen(kitchen)
    provider = counting(kitchen)
    p = paid_order(kitchen, seeded, 2)
    eventually(settled(p, Payment.CAPTURED))
    cycle = Cycle.of(kitchen.settings)

    part = cycle.request_refund(p.merchant_id, p.order_id, 1000, False, "cold fries")
    eventually(settled(p, Payment.PARTIALLY_REFUNDED))
    assert p.payment().refunded_amount == 1000
    assert p.intent().amount_refunded == 1000
    rest = cycle.request_refund(p.merchant_id, p.order_id, None, False, "never came")
    eventually(settled(p, Payment.REFUNDED))
    assert p.payment().refunded_amount == 2500
    assert (p.intent().amount_received, p.intent().amount_refunded) == (2500, 2500)

    with session():
        refunds = {r.id: r for r in Refund.select().where(Refund.order == p.order_id)}
    assert {r.amount: r.status for r in refunds.values()} == {1000: "succeeded", 1500: "succeeded"}
    assert all(str(r.provider_id).startswith("re_fake_") for r in refunds.values())
    assert all(r.claimed_until is None for r in refunds.values())
    keys = [p.key(f"refund-{part.id}"), p.key(f"refund-{rest.id}")]
    assert provider.calls == Counter({p.key("capture"): 1, keys[0]: 1, keys[1]: 1})
    assert [p.requests(f"refund-{r}") for r in (part.id, rest.id)] == [1, 1]
    assert stock(p.merchant_id) == stock_after(2)  # no restock asked
    refunded = announced(kitchen, p, OrderEvent.REFUNDED)
    assert [(e["amount"], e["refunded_amount"]) for e in refunded] == [(1000, 1000), (1500, 2500)]


def test_a_redelivered_order_applied_captures_nothing_more(kitchen: Kitchen) -> None:
    seeded = seed_kitchen(kitchen)
    provider = counting(kitchen)
    p = paid_order(kitchen, seeded, 2)
    eventually(settled(p, Payment.CAPTURED))
    worker = next(w for w in kitchen.workers if w.name == "payments")
    before = worker.processed

    producer = Producer({"bootstrap.servers": kitchen.bootstrap_servers})
    event = OrderEvent(OrderEvent.APPLIED, p.order_id, p.merchant_id).encode()
    for _ in range(2):
        producer.produce(
            kitchen.settings.kafka.order_events_topic, event.encode(), str(p.merchant_id)
        )
    assert producer.flush(10) == 0
    eventually(lambda: worker.processed >= before + 2)

    payment = p.payment()
    assert (payment.status, payment.action, payment.captured_amount) == ("captured", None, 2500)
    assert provider.calls == Counter({p.key("capture"): 1})
    assert (p.intent().amount_received, p.requests("capture")) == (2500, 1)
    assert len(announced(kitchen, p, OrderEvent.PAID)) == 1


def test_the_roles_job_owes_what_a_lost_order_event_would_have(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api,relay,processing")  # nobody reads order_events
    seeded = seed_kitchen(kitchen)
    p = paid_order(kitchen, seeded, 2)
    eventually(lambda: p.order().status == Order.APPLIED)
    cycle, provider = Cycle.of(kitchen.settings), FakeProvider()
    settler = payment_worker.Settler(provider, cycle, 1, 2)
    job = payment_worker.jobs(cycle, provider, settler)
    with session():  # the event was lost a while ago (reconcile.QUIET)
        Payment.update(updated_at=utcnow() - datetime.timedelta(minutes=1)).execute()

    job()
    assert p.payment().action == Payment.CAPTURE
    assert settler.settle_once() == 1
    assert p.payment().status == Payment.CAPTURED
    assert p.intent().amount_received == 2500
    job()
    assert settler.settle_once() == 0  # owed once, done once
    assert p.requests("capture") == 1


def test_a_void_without_the_hold_id_finds_the_hold_by_its_key(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api,relay,payments")
    seeded = seed_kitchen(kitchen)
    # The hold was made, then the process died before recording its id.
    p = paid_order(kitchen, seeded, 2, authorize=False, record_hold=False)
    assert p.payment().provider_id is None
    provider = counting(kitchen)

    Cycle.of(kitchen.settings).cancel(p.merchant_id, p.order_id, "changed their mind")
    eventually(settled(p, Payment.VOIDED))
    assert p.payment().provider_id == p.intent_id
    assert p.intent().status == CANCELED
    assert provider.calls == Counter({p.key("hold"): 1, p.key("cancel"): 1})
    with session():
        assert FakeIntent.select().where(FakeIntent.order_id == p.order_id).count() == 1
        assert FakeRequest.select().where(FakeRequest.key == p.key("hold")).count() == 1
    assert p.order().status == Order.CANCELLED


def test_a_void_of_a_hold_the_provider_cancelled_already_is_done(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api,relay,payments")  # no processing: the order stays pending
    seeded = seed_kitchen(kitchen)
    p = paid_order(kitchen, seeded, 2)
    FakeProvider().cancel(p.intent_id, "cancelled-from-the-dashboard")

    Cycle.of(kitchen.settings).cancel(p.merchant_id, p.order_id, None)
    eventually(settled(p, Payment.VOIDED))
    assert p.payment().last_error is None and p.payment().action is None
    assert p.requests("cancel") == 0  # refused (already canceled): nothing changed twice


def test_a_void_of_a_hold_captured_meanwhile_is_left_for_a_person(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api,relay,payments")
    seeded = seed_kitchen(kitchen)
    p = paid_order(kitchen, seeded, 2)
    assert p.intent().status == REQUIRES_CAPTURE
    FakeProvider().capture(p.intent_id, "captured-from-the-dashboard")
    provider = counting(kitchen)

    Cycle.of(kitchen.settings).cancel(p.merchant_id, p.order_id, None)
    eventually(lambda: p.payment().action is None)
    payment = p.payment()
    assert payment.status == Payment.AUTHORIZED  # not voided: the money was taken
    assert "is captured (2500 EUR received)" in str(payment.last_error)
    assert provider.calls == Counter({p.key("cancel"): 1})  # asked once, never again
    assert (p.intent().status, p.intent().amount_received) == (SUCCEEDED, 2500)
    assert payment.claimed_until is None


def test_a_payment_the_cycle_will_not_move_is_retried_later_not_in_a_loop(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api,relay,processing")
    seeded = seed_kitchen(kitchen)
    p = paid_order(kitchen, seeded, 1)
    eventually(lambda: p.order().status == Order.APPLIED)

    class Stuck(Cycle):
        def captured(self, merchant_id: int, payment_id: int, amount: int) -> bool:
            return False  # as a bug would

    cycle = Stuck.of(kitchen.settings)
    assert cycle.order_applied(p.merchant_id, p.order_id)
    settler = payment_worker.Settler(FakeProvider(), cycle, 60, 300)
    before = utcnow()
    assert settler.settle_once() == 1
    payment = p.payment()
    assert (payment.action, payment.attempts) == (Payment.CAPTURE, 1)
    assert payment.last_error == f"RuntimeError: payment {p.payment_id} did not move"
    assert payment.next_attempt_at is not None
    assert payment.next_attempt_at >= before + datetime.timedelta(seconds=60)
    assert payment.claimed_until is None
    assert settler.settle_once() == 0  # not due again for a minute


def test_over_http_a_paid_order_is_captured_then_refunded(kitchen: Kitchen) -> None:
    """The walkthrough to its end: placed, held by the fake card, cooked, captured by the
    payments role; then refunded in part, and the rest."""
    with client(kitchen) as api:
        seeded = seed_reference(api)
        assert api.patch(f"/products/{seeded.burger}", json={"price": 1250}).status_code == 200
        assert api.patch("/merchant", json={"payments": "required"}).status_code == 200
        order = api.post("/order", json=seeded.order(2)).json()
        intent_id = order["payment"]["id"]
        assert api.post(f"/payments/fake/{intent_id}/authorize").status_code == 200

        def payment() -> dict[str, Any]:
            view: dict[str, Any] = api.get(f"/order/{order['id']}").json()["payment"]
            return view

        eventually(lambda: payment()["status"] == "captured")
        assert api.get(f"/order/{order['id']}").json()["status"] == "applied"
        assert (payment()["amount"], payment()["refunded_amount"]) == (2500, 0)

        r = api.post(f"/order/{order['id']}/refund", json={"amount": 1000, "reason": "cold"})
        assert r.status_code == 202, r.text
        eventually(lambda: payment()["status"] == "partially_refunded")
        assert payment()["refunded_amount"] == 1000
        assert api.post(f"/order/{order['id']}/refund", json={}).status_code == 202
        eventually(lambda: payment()["status"] == "refunded")
        assert payment()["refunded_amount"] == 2500
    with session():
        intent = FakeIntent.get(FakeIntent.intent_id == intent_id)
        keys = [r.key for r in FakeRequest.select()]
    assert (intent.amount_received, intent.amount_refunded) == (2500, 2500)
    assert sum(1 for k in keys if k.endswith("-capture")) == 1
    assert sum(1 for k in keys if "-refund-" in k) == 2
