"""Paid orders made by rows and cycle calls, for the payments role's tests: the order saved
awaiting payment, the hold made at the fake provider, the card authorized there and the
authorization recorded (what POST /order and the webhook do), and a provider wrapper that
counts calls per idempotency key and can be down for a while."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from app import Kitchen
from kitchen import seed
from kitchen.db import session, transaction
from kitchen.fake_provider import FakeProvider
from kitchen.models import FakeIntent, FakeRequest, Merchant, Order, OrderLine, Payment
from kitchen.payments import Cycle
from kitchen.providers import Hold, Intent, Provider, ProviderUnavailable, Refund, idempotency_key
from tests.helpers import SEED_RULES, Seeded

PRICE = 1250  # cents a burger


def seed_kitchen(kitchen: Kitchen) -> Seeded:
    """The reference kitchen of `kitchen`'s default merchant, which requires payments."""
    with session():
        Merchant.update(payments="required").where(Merchant.id == kitchen.merchant_id).execute()
    return Seeded.from_answer(seed.seed(kitchen.merchant_id, SEED_RULES)[1])


@dataclass(frozen=True)
class Paid:
    merchant_id: int
    order_id: int
    payment_id: int
    intent_id: str
    amount: int

    def key(self, operation: str) -> str:
        return idempotency_key(self.order_id, operation, self.merchant_id)

    def payment(self) -> Payment:
        with session():
            found: Payment = Payment.get(
                Payment.merchant == self.merchant_id, Payment.id == self.payment_id
            )
            return found

    def order(self) -> Order:
        with session():
            found: Order = Order.get(Order.merchant == self.merchant_id, Order.id == self.order_id)
            return found

    def intent(self) -> FakeIntent:
        with session():
            found: FakeIntent = FakeIntent.get(FakeIntent.intent_id == self.intent_id)
            return found

    def requests(self, operation: str) -> int:
        """The provider calls with this operation's key that changed something."""
        with session():
            return int(FakeRequest.select().where(FakeRequest.key == self.key(operation)).count())


def paid_order(
    kitchen: Kitchen,
    seeded: Seeded,
    burgers: int,
    authorize: bool = True,
    record_hold: bool = True,
    hold_minutes: int = 15,
) -> Paid:
    """An order of `burgers` burgers with its payment; authorized (so the order is pending
    and its ORDER_CREATED queued) unless told otherwise."""
    m, amount = kitchen.merchant_id, PRICE * burgers
    cycle, fake = Cycle.of(kitchen.settings), FakeProvider()
    with transaction():
        order = Order.create(merchant=m, status=Order.AWAITING_PAYMENT)
        OrderLine.create(merchant=m, order=order.id, product=seeded.burger, quantity=burgers)
        payment = cycle.open(m, order.id, amount, "EUR", "fake", hold_minutes)
    intent = fake.create_hold(
        Hold(order.id, m, amount, "EUR"), idempotency_key(order.id, "hold", m)
    )
    if record_hold:
        cycle.hold_made(m, payment.id, intent.id, intent.client_secret)
    if authorize:
        fake.authorize(intent.id)
        assert cycle.authorized(m, payment.id)
        kitchen.wake_relay()
    return Paid(m, order.id, payment.id, intent.id, amount)


class Counting:
    """A provider that counts the calls made of it per idempotency key (also those it
    failed), and answers the first `down` calls that change money with
    ProviderUnavailable, as a provider that is away does."""

    def __init__(self, inner: Provider, down: int = 0, delay: float = 0.0) -> None:
        self.inner = inner
        self.name = inner.name
        self.down = down
        self.delay = delay
        self.calls: Counter[str] = Counter()
        self.failed: list[str] = []
        self._lock = threading.Lock()

    def _call(self, key: str) -> None:
        with self._lock:
            self.calls[key] += 1
            if self.down > 0:
                self.down -= 1
                self.failed.append(key)
                raise ProviderUnavailable("connection refused (test)")
        if self.delay:
            threading.Event().wait(self.delay)

    def create_hold(self, hold: Hold, idempotency_key: str) -> Intent:
        self._call(idempotency_key)
        return self.inner.create_hold(hold, idempotency_key)

    def capture(self, intent_id: str, idempotency_key: str) -> Intent:
        self._call(idempotency_key)
        return self.inner.capture(intent_id, idempotency_key)

    def cancel(self, intent_id: str, idempotency_key: str) -> Intent:
        self._call(idempotency_key)
        return self.inner.cancel(intent_id, idempotency_key)

    def refund(self, intent_id: str, amount: int, idempotency_key: str) -> Refund:
        self._call(idempotency_key)
        return self.inner.refund(intent_id, amount, idempotency_key)

    def retrieve(self, intent_id: str) -> Intent:
        return self.inner.retrieve(intent_id)
