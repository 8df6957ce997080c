"""Payment providers: one interface, the fake one (embedded) and Stripe's (stripe_provider).

Kitchen speaks to a provider in Stripe's terms, whichever it is: a payment is a
PaymentIntent created with manual capture (a hold on the card), captured once the kitchen
has cooked, cancelled (the hold voided) otherwise, refunded later. Every call that changes
money carries an idempotency key derived from the order and the operation
(`idempotency_key`), so a call retried after a timeout or a crash never charges twice:
the provider answers a repeated key with the first call's result.

The provider tells Kitchen what happened to a payment by webhooks, Stripe-shaped events
(`{"id": "evt_...", "type": ..., "data": {"object": <payment_intent>}}`) signed with the
`Stripe-Signature` header; `parse_event` verifies and reads one, for every provider.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import stripe

from kitchen.domain import is_id

# PaymentIntent states, as Stripe names them.
REQUIRES_PAYMENT_METHOD = "requires_payment_method"
REQUIRES_CAPTURE = "requires_capture"  # the hold exists: authorized
SUCCEEDED = "succeeded"  # captured
CANCELED = "canceled"  # the hold voided (or never made)

# Webhook event types that move a payment (any other type is acknowledged and ignored).
AUTHORIZED = "payment_intent.amount_capturable_updated"
FAILED = "payment_intent.payment_failed"
SUCCEEDED_EVENT = "payment_intent.succeeded"
CANCELED_EVENT = "payment_intent.canceled"
REFUNDED_EVENT = "charge.refunded"

# How old a signed event may be (Stripe's default tolerance).
TOLERANCE_SECONDS = 300


class ProviderUnavailable(Exception):
    """The provider could not answer (network, timeout, 5xx, rate limit): try again later,
    with the same idempotency key."""


class PaymentRefused(Exception):
    """The provider refused for good (card declined, hold expired, amount too large):
    no retry can succeed. `code` is the provider's short reason when it gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class BadSignature(ValueError):
    """A webhook whose signature is missing, wrong or stale, or whose body is not an
    event: answered 400, and nothing changes."""


@dataclass(frozen=True)
class Hold:
    """What Kitchen asks the provider to hold for one order."""

    order_id: int
    merchant_id: int
    amount: int  # minor units (cents)
    currency: str  # ISO 4217, upper case ("EUR")


@dataclass(frozen=True)
class Intent:
    """A payment as the provider sees it (a PaymentIntent)."""

    id: str
    status: str  # REQUIRES_PAYMENT_METHOD, REQUIRES_CAPTURE, SUCCEEDED, CANCELED, ...
    amount: int
    currency: str  # upper case
    amount_received: int = 0  # captured
    amount_refunded: int = 0
    client_secret: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # Why the last attempt failed (a decline), when the provider said.
    failure: str | None = None

    @property
    def order_id(self) -> int | None:
        return _int(self.metadata.get("order_id"))

    @property
    def merchant_id(self) -> int | None:
        return _int(self.metadata.get("merchant_id"))


@dataclass(frozen=True)
class Refund:
    id: str
    amount: int
    status: str  # "succeeded", "pending" or "failed", as Stripe says


@dataclass(frozen=True)
class Event:
    """A verified webhook event."""

    id: str
    type: str
    intent: Intent


class Provider(Protocol):
    """What Kitchen needs of a payment provider. Every method may raise
    ProviderUnavailable (try again, same key) or PaymentRefused (never)."""

    name: str

    def create_hold(self, hold: Hold, idempotency_key: str) -> Intent: ...

    def capture(self, intent_id: str, idempotency_key: str) -> Intent: ...

    def cancel(self, intent_id: str, idempotency_key: str) -> Intent: ...

    def refund(self, intent_id: str, amount: int, idempotency_key: str) -> Refund: ...

    def retrieve(self, intent_id: str) -> Intent: ...


class NoProvider:
    """`[payments] provider = none`: this Kitchen takes no payments. No merchant can
    require them (PATCH /merchant refuses); one that did before is answered 503."""

    name = "none"

    def _none(self) -> ProviderUnavailable:
        return ProviderUnavailable("this Kitchen has no payment provider ([payments] provider)")

    def create_hold(self, hold: Hold, idempotency_key: str) -> Intent:
        raise self._none()

    def capture(self, intent_id: str, idempotency_key: str) -> Intent:
        raise self._none()

    def cancel(self, intent_id: str, idempotency_key: str) -> Intent:
        raise self._none()

    def refund(self, intent_id: str, amount: int, idempotency_key: str) -> Refund:
        raise self._none()

    def retrieve(self, intent_id: str) -> Intent:
        raise self._none()


def idempotency_key(order_id: int, operation: str, merchant_id: int) -> str:
    """The key of one operation on one order's payment: "kitchen-<merchant>-<order>-hold",
    "...-capture", "...-cancel", "...-refund-<refund id>". The same operation retried
    (another consumer, a restart) sends the same key."""
    return f"kitchen-{merchant_id}-{order_id}-{operation}"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header for `payload`: what a provider sends (the fake one, and
    tests)."""
    t = int(time.time()) if timestamp is None else timestamp
    return str(stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, t))


def parse_event(payload: bytes, header: str | None, secret: str) -> Event:
    """Verify a webhook (HMAC-SHA256 of "<t>.<body>" with `secret`, compared in constant
    time, several v1= accepted, at most TOLERANCE_SECONDS old) and read it; BadSignature
    otherwise. The stripe package does the verification: the same code for every
    provider."""
    if not secret:
        raise BadSignature("no webhook secret is set ([payments] webhook_secret)")
    if not header:
        raise BadSignature("no Stripe-Signature header")
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        raise BadSignature(str(exc).split(". ")[0]) from None
    except UnicodeDecodeError:
        raise BadSignature("the body is not UTF-8") from None
    # The stripe package lets a timestamp in the future through: signed "later" would
    # stretch a captured event's replay window past the 300 s.
    t = next(int(p.split("=")[1]) for p in header.split(",") if p.split("=")[0] == "t")
    if t > time.time() + TOLERANCE_SECONDS:
        raise BadSignature("Timestamp outside the tolerance zone (in the future)")
    try:
        body = json.loads(payload)
        obj = body["data"]["object"]
        event_id, kind = body["id"], body["type"]
    except (ValueError, KeyError, TypeError):
        raise BadSignature("signed, but not an event") from None
    if not (isinstance(event_id, str) and isinstance(kind, str) and isinstance(obj, dict)):
        raise BadSignature("signed, but not an event")
    return Event(event_id, kind, intent_of(obj))


def intent_of(obj: dict[str, Any]) -> Intent:
    """An Intent from a PaymentIntent object (a webhook's, or an API answer's). A
    `charge.refunded` event carries a Charge: its `payment_intent` names the payment."""
    if obj.get("object") == "charge":
        return Intent(
            id=str(obj.get("payment_intent") or ""),
            status=SUCCEEDED,
            amount=_amount(obj.get("amount")),
            currency=str(obj.get("currency") or "").upper(),
            amount_received=_amount(obj.get("amount_captured")),
            amount_refunded=_amount(obj.get("amount_refunded")),
            metadata=_metadata(obj.get("metadata")),
        )
    error = obj.get("last_payment_error")
    failure = None
    if isinstance(error, dict):
        failure = str(error.get("message") or error.get("code") or "declined")
    return Intent(
        id=str(obj.get("id") or ""),
        status=str(obj.get("status") or ""),
        amount=_amount(obj.get("amount")),
        currency=str(obj.get("currency") or "").upper(),
        amount_received=_amount(obj.get("amount_received")),
        amount_refunded=_amount(obj.get("amount_refunded")),
        client_secret=obj.get("client_secret")
        if isinstance(obj.get("client_secret"), str)
        else None,
        metadata=_metadata(obj.get("metadata")),
        failure=failure,
    )


def _amount(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _metadata(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _int(value: str | None) -> int | None:
    """An id from metadata: ASCII digits only ("²" is a digit to isdigit, not to int),
    within what the id columns hold."""
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    number = int(value)
    return number if is_id(number) else None
