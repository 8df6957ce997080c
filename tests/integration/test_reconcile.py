"""A hold the provider never told Kitchen about (a lost webhook) is found by asking."""

from __future__ import annotations

import datetime

from kitchen import settings as config
from kitchen.db import session, transaction
from kitchen.fake_provider import FakeProvider
from kitchen.models import Merchant, Order, Outbox, Payment
from kitchen.payments import Cycle
from kitchen.providers import Hold, Intent, ProviderUnavailable, idempotency_key
from kitchen.reconcile import reconcile, stranded

NOW = datetime.timedelta(0)


def waiting_order(cycle: Cycle, provider: FakeProvider, amount: int = 1250) -> tuple[int, int, str]:
    """A paid order awaiting its hold, as POST /order leaves it: (merchant, payment, intent)."""
    with transaction():
        merchant = Merchant.create(
            name="Diner", alert_email="diner@example.com", payments="required"
        )
        order = Order.create(merchant=merchant.id, status=Order.AWAITING_PAYMENT)
        payment = cycle.open(merchant.id, order.id, amount, "EUR", provider.name, 15)
    hold = Hold(order.id, merchant.id, amount, "EUR")
    intent = provider.create_hold(hold, idempotency_key(order.id, "hold", merchant.id))
    cycle.hold_made(merchant.id, payment.id, intent.id, intent.client_secret)
    return merchant.id, payment.id, intent.id


def order_of(payment_id: int) -> Order:
    with session():
        return Order.get_by_id(Payment.get_by_id(payment_id).order_id)


def test_an_authorization_whose_webhook_was_lost_sends_the_order_to_the_kitchen(
    clean_database: str,
) -> None:
    cycle, provider = Cycle.of(config.Settings()), FakeProvider()
    merchant_id, payment_id, intent_id = waiting_order(cycle, provider)
    provider.authorize(intent_id)  # the card is held; the event never reaches Kitchen

    assert reconcile(cycle, provider, quiet=NOW) == 1
    order = order_of(payment_id)
    assert order.status == Order.PENDING
    with session():
        assert Payment.get_by_id(payment_id).status == Payment.AUTHORIZED
        created = Outbox.select().where(Outbox.topic == "order_created", Outbox.ref_id == order.id)
        assert created.count() == 1
    # Asked again (or the webhook arriving after all): nothing more.
    assert reconcile(cycle, provider, quiet=NOW) == 0
    assert cycle.authorized(merchant_id, payment_id) is False


def test_a_hold_not_yet_made_or_too_young_is_left_alone(clean_database: str) -> None:
    cycle, provider = Cycle.of(config.Settings()), FakeProvider()
    _, unpaid_id, _ = waiting_order(cycle, provider)
    assert reconcile(cycle, provider, quiet=NOW) == 0  # no card yet
    assert order_of(unpaid_id).status == Order.AWAITING_PAYMENT
    _, young_id, young_intent = waiting_order(cycle, provider)
    provider.authorize(young_intent)
    assert reconcile(cycle, provider) == 0  # its webhook is usually on its way
    assert order_of(young_id).status == Order.AWAITING_PAYMENT


class Down(FakeProvider):
    def retrieve(self, intent_id: str) -> Intent:
        raise ProviderUnavailable("connection refused")


def test_a_provider_that_does_not_answer_moves_nothing(clean_database: str) -> None:
    cycle, provider = Cycle.of(config.Settings()), FakeProvider()
    _, payment_id, intent_id = waiting_order(cycle, provider)
    provider.authorize(intent_id)
    assert reconcile(cycle, Down(), quiet=NOW) == 0
    assert order_of(payment_id).status == Order.AWAITING_PAYMENT
    assert reconcile(cycle, provider, quiet=NOW) == 1  # back: it is found


def test_a_payment_whose_order_event_was_lost_is_given_its_capture_or_void(
    clean_database: str,
) -> None:
    cycle, provider = Cycle.of(config.Settings()), FakeProvider()
    paid = []
    for outcome in (Order.APPLIED, Order.REJECTED, Order.CANCELLED, Order.PENDING):
        merchant_id, payment_id, intent_id = waiting_order(cycle, provider)
        provider.authorize(intent_id)
        assert cycle.authorized(merchant_id, payment_id)
        with transaction():  # the kitchen settled it; its ORDER_APPLIED/... never arrived
            Order.update(status=outcome).where(Order.id == order_of(payment_id).id).execute()
        paid.append(payment_id)

    assert stranded(cycle, quiet=NOW) == 3
    with session():
        actions = [Payment.get_by_id(i).action for i in paid]
    assert actions == [Payment.CAPTURE, Payment.VOID, Payment.VOID, None]
    assert stranded(cycle, quiet=NOW) == 0  # owed already: nothing twice
