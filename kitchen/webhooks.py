"""The provider's news: POST /payments/webhook, and development's fake card.

A webhook is verified (`providers.parse_event`: the Stripe-Signature header, 300 s), its
payment found by the intent id and the merchant its metadata names (payments are
partitioned by merchant), and applied through the payment cycle (`payments.Cycle`) in
one transaction with a PaymentEvent row, unique per merchant and event id: the same event
delivered again, or by two deliveries at once, changes nothing the second time. Events
that name no payment Kitchen knows, and types that move nothing, are acknowledged (200)
and logged: the provider would otherwise send them again for days.

The fake provider's card (`FakeCard`, development only) makes the event Stripe would
send, signs it with the same secret and hands it to the same `Webhooks.deliver`: what it
exercises is the real path, short of the network.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import peewee as pw

from kitchen import payments, providers, views
from kitchen import settings as config
from kitchen.db import locked, session, transaction
from kitchen.errors import Conflict, NotFound
from kitchen.fake_provider import FakeProvider
from kitchen.models import Order, Payment, PaymentEvent
from kitchen.providers import Event, PaymentRefused

log = logging.getLogger(__name__)

# Made once per process: development's fake card signs with it when no secret is set.
_PROCESS_SECRET = f"whsec_dev_{secrets.token_hex(24)}"

UNSET_IN_PRODUCTION = (
    "payments.webhook_secret is not set: POST /payments/webhook refuses every event "
    "(set KITCHEN_PAYMENTS_WEBHOOK_SECRET to the provider's signing secret)"
)
UNSET_IN_DEVELOPMENT = (
    "payments.webhook_secret is not set: webhooks are verified with a secret made for "
    "this process, which only the fake provider's endpoints know; events from outside "
    "cannot be verified (set KITCHEN_PAYMENTS_WEBHOOK_SECRET)"
)


def webhook_secret(settings: config.Settings) -> str:
    """The secret webhooks are verified with: `[payments] webhook_secret`; without one, in
    development a random secret made once per process (the fake card still works), in
    production none (every webhook is refused)."""
    configured = settings.payments.webhook_secret
    if configured or settings.app.production:
        return configured
    return _PROCESS_SECRET


def is_provider_id(value: str) -> bool:
    """An id a provider gives (evt_..., pi_...): what the id columns can hold and compare
    (a NUL is refused by PostgreSQL's driver; over 255 characters by the column)."""
    return re.fullmatch(r"[A-Za-z0-9_-]{1,255}", value) is not None


# What each event type does to the payment it names: a Cycle transition. Other types are
# acknowledged and ignored (the provider sends many).
Transition = Callable[[payments.Cycle, int, int, providers.Intent], bool]
TRANSITIONS: dict[str, Transition] = {
    providers.AUTHORIZED: lambda c, m, p, i: c.authorized(m, p, i),
    providers.FAILED: lambda c, m, p, i: c.declined(m, p, _reason(i.failure)),
    providers.SUCCEEDED_EVENT: lambda c, m, p, i: c.captured(m, p, i.amount_received),
    providers.CANCELED_EVENT: lambda c, m, p, i: c.voided(m, p),
    providers.REFUNDED_EVENT: lambda c, m, p, i: c.refund_seen(m, p, i.amount_refunded),
}


def _reason(failure: str | None) -> str:
    """The provider's decline message, as the order's reason: printable (PostgreSQL
    refuses a NUL) and short."""
    text = "".join(ch for ch in failure or "" if ch.isprintable())[:200].strip()
    return text or "declined"


@dataclass(frozen=True)
class Delivery:
    """What became of one webhook (all answered 200): `applied` (recorded; `moved` when
    the payment changed, so events went to the outbox), `seen` (a repeat), `ignored` (a
    type that moves nothing), `unknown` (no such payment)."""

    event: Event
    outcome: str
    moved: bool = False


class Webhooks:
    """Verifies and applies webhooks (`deliver`, blocking: run it in a worker thread)."""

    def __init__(self, settings: config.Settings, cycle: payments.Cycle) -> None:
        self.cycle = cycle
        self.secret = webhook_secret(settings)
        # Only the api role serves POST /payments/webhook: no word of it elsewhere (the
        # operations server of [metrics] port builds an Api in any process).
        if not settings.payments.webhook_secret and settings.roles.api:
            if settings.app.production:
                log.warning(UNSET_IN_PRODUCTION)
            else:
                log.info(UNSET_IN_DEVELOPMENT)

    def deliver(self, raw: bytes, signature: str | None) -> Delivery:
        """Verify (BadSignature otherwise: nothing changes) and apply one event."""
        event = providers.parse_event(raw, signature, self.secret)
        if not is_provider_id(event.id):
            raise providers.BadSignature("signed, but its id is not an event id")
        intent = event.intent
        transition = TRANSITIONS.get(event.type)
        if transition is None:
            log.info(
                "webhook %s (%.100s): a type that moves no payment, ignored", event.id, event.type
            )
            return Delivery(event, "ignored")
        merchant_id = intent.merchant_id
        if merchant_id is None or not is_provider_id(intent.id):
            log.warning(
                "webhook %s (%s): intent %r names no merchant in its metadata, ignored",
                event.id,
                event.type,
                intent.id,
            )
            return Delivery(event, "unknown")
        return self._apply(event, merchant_id, transition)

    def _apply(self, event: Event, merchant_id: int, transition: Transition) -> Delivery:
        try:
            with transaction():
                payment = self._lock(merchant_id, event.intent.id)
                if payment is None:
                    log.warning(
                        "webhook %s (%s): no payment %s of merchant %d, ignored",
                        event.id,
                        event.type,
                        event.intent.id,
                        merchant_id,
                    )
                    return Delivery(event, "unknown")
                if _seen(merchant_id, event.id):
                    log.info("webhook %s: already applied", event.id)
                    return Delivery(event, "seen")
                # The Cycle's own transaction is a savepoint inside this one: the change
                # and the event's row below commit together, or neither does.
                moved = transition(self.cycle, merchant_id, payment.id, event.intent)
                PaymentEvent.create(
                    merchant=merchant_id, event_id=event.id, type=event.type, payment=payment.id
                )
        except pw.IntegrityError:
            # The unique (merchant, event id) row: another delivery of this event committed
            # first. Its change stands; this one's rolled back whole.
            log.info("webhook %s: already applied (by a concurrent delivery)", event.id)
            return Delivery(event, "seen")
        log.info(
            "webhook %s (%s) for payment %d: %s",
            event.id,
            event.type,
            payment.id,
            "applied" if moved else "changed nothing (late or repeated)",
            extra={"order_id": payment.order_id, "merchant_id": merchant_id},
        )
        return Delivery(event, "applied", moved)

    @staticmethod
    def _lock(merchant_id: int, intent_id: str) -> Payment | None:
        """The payment of the intent, its order's row locked first (as the Cycle and
        processing lock): events about one payment take turns from here to the commit,
        so the event-id check cannot race, and the payment's row is locked before the
        PaymentEvent row's foreign key takes its share lock (no deadlock with the
        Cycle, which locks the payment after the order)."""
        found: Payment | None = Payment.get_or_none(
            Payment.merchant == merchant_id, Payment.provider_id == intent_id
        )
        if found is None:
            return None
        locked(
            Order.select().where(Order.merchant == merchant_id, Order.id == found.order_id)
        ).get()
        return found


def _seen(merchant_id: int, event_id: str) -> bool:
    """Whether the event was applied already. Deliveries of one event take turns on its
    order's row lock (`_lock`), so the second one finds the first one's row here; the
    unique index stays the guarantee (IntegrityError at the insert)."""
    found: bool = (
        PaymentEvent.select()
        .where(PaymentEvent.merchant == merchant_id, PaymentEvent.event_id == event_id)
        .exists()
    )
    return found


class FakeCard:
    """Development's stand-in for a customer's card (POST /payments/fake/{id}/authorize
    and /decline): the fake provider makes the event, it is signed with the webhook
    secret and goes through `Webhooks.deliver`, as if Stripe had sent it."""

    def __init__(self, provider: FakeProvider, webhooks: Webhooks) -> None:
        self.provider = provider
        self.webhooks = webhooks

    def use(self, merchant_id: int, intent_id: str, action: str) -> tuple[Delivery, dict[str, Any]]:
        """`action` ("authorize" or "decline") on the calling merchant's payment
        `intent_id`: what became of the event, and the order after it. NotFound for
        another merchant's payment or an unknown one, Conflict when the fake provider
        refuses (the intent is captured or cancelled)."""
        if not is_provider_id(intent_id):
            raise NotFound("payment", intent_id[:100])
        with session():
            payment = Payment.get_or_none(
                Payment.merchant == merchant_id, Payment.provider_id == intent_id
            )
        if payment is None or payment.provider != self.provider.name:
            raise NotFound("payment", intent_id)
        try:
            if action == "authorize":
                event = self.provider.authorize(intent_id)
            else:
                event = self.provider.decline(intent_id)
        except PaymentRefused as exc:
            raise Conflict(str(exc)) from None
        raw = json.dumps(event).encode()
        delivery = self.webhooks.deliver(raw, providers.sign(raw, self.webhooks.secret))
        return delivery, answer(merchant_id, payment.order_id)


def answer(merchant_id: int, order_id: int) -> dict[str, Any]:
    """What the fake card's endpoints answer: the order as GET /order/{id} shows it (its
    payment with it, once views.order shows payments)."""
    view = views.order_by_id(order_id, merchant_id)
    assert view is not None  # a payment's order is never deleted
    return view
