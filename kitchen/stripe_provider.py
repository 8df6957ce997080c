"""The Stripe provider: kitchen.providers.Provider over Stripe's PaymentIntents API.

A hold is a PaymentIntent with `capture_method=manual` and no payment method: the till
confirms it with the card (Stripe.js and the client secret), Stripe reports the
authorization by webhook (`payment_intent.amount_capturable_updated`), and the payments
role captures or cancels it. Every call that moves money sends Kitchen's idempotency key
as Stripe's `Idempotency-Key`, so a retried call returns the first call's result.

Each provider has its own `stripe.StripeClient` (key, base address, timeout): nothing is
set on the `stripe` module, so two providers (or a test's) never share settings. The
client never retries by itself (`max_network_retries=0`): a call that fails for a passing
reason raises ProviderUnavailable at once, and the payments role tries again with
back-off ([payments] retry_seconds), with the same key.

How Stripe's errors map to Kitchen's (stripe-python picks the class from the HTTP status):

    stripe error          when                                        Kitchen
    APIConnectionError    refused, reset, DNS, TLS, timeout: the call ProviderUnavailable
                          may have reached Stripe; the same key makes
                          the retry safe
    APIError              5xx; 409 (the key is in use by a call still ProviderUnavailable
                          running); an answer that is not JSON
    RateLimitError        429, or 400 `rate_limit`                    ProviderUnavailable
    AuthenticationError   401: the key is wrong or revoked            ProviderUnavailable,
    PermissionError       403: a restricted key lacks a permission    saying to fix
                                                                      [payments]
                                                                      stripe_api_key: an
                                                                      operator's fix, the
                                                                      order waits for it
    CardError             402: the card declined                      PaymentRefused
    InvalidRequestError   400/404: the intent is canceled or captured PaymentRefused
                          already, the amount is too large, no such
                          intent
    IdempotencyError      400: the key was used with other parameters PaymentRefused
                          (no retry can succeed)
    any other StripeError (none expected of these calls)              ProviderUnavailable

Stripe saves the answer of the first call with a key once the call began, 500s included,
and replays it to every retry with that key for 24 hours: after a 500 the retry answers
the same 500, so the caller learns the intent's real state from `retrieve` (a GET, no
key) rather than by retrying alone.

PaymentRefused carries Stripe's message and its error `code` ("card_declined",
"payment_intent_unexpected_state", "resource_missing", ...) when it gave one.

A 200 from capture that does not leave the intent `succeeded` (localstripe captures a
canceled intent and answers `canceled`; Stripe refuses with 400) is PaymentRefused too,
with code `payment_intent_unexpected_state`, Stripe's own: capture either captures or
raises, whichever server answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import stripe

from kitchen.providers import (
    SUCCEEDED,
    Hold,
    Intent,
    PaymentRefused,
    ProviderUnavailable,
    Refund,
    intent_of,
)


class StripeProvider:
    """Kitchen's payments on Stripe (or on anything that speaks its API at `api_base`)."""

    name = "stripe"

    def __init__(
        self,
        api_key: str,
        api_base: str = "https://api.stripe.com",
        *,
        timeout: float = 30.0,
    ) -> None:
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    def create_hold(self, hold: Hold, idempotency_key: str) -> Intent:
        """A manual-capture intent with no payment method: `requires_payment_method`
        until the till confirms it. No `payment_method_types`: the API version stripe
        16.1.0 speaks (2026-10-28.endive) refuses it (400
        payment_method_types_no_longer_supported) and localstripe refuses its successor
        `allowed_payment_method_types`; the methods offered are those enabled in the
        Stripe Dashboard that allow manual capture (cards)."""
        with _mapped_errors():
            found = self._client.v1.payment_intents.create(
                {
                    "amount": hold.amount,
                    "currency": hold.currency.lower(),
                    "capture_method": "manual",
                    "metadata": {
                        "order_id": str(hold.order_id),
                        "merchant_id": str(hold.merchant_id),
                    },
                },
                {"idempotency_key": idempotency_key},
            )
        return _intent(found)

    def capture(self, intent_id: str, idempotency_key: str) -> Intent:
        with _mapped_errors():
            found = self._client.v1.payment_intents.capture(
                intent_id, {"expand": ["latest_charge"]}, {"idempotency_key": idempotency_key}
            )
        intent = _intent(found)
        if intent.status != SUCCEEDED:
            raise PaymentRefused(
                f"the capture left the payment {intent.status}, not {SUCCEEDED}",
                "payment_intent_unexpected_state",
            )
        return intent

    def cancel(self, intent_id: str, idempotency_key: str) -> Intent:
        """Void the hold (Stripe's cancel): nothing is charged."""
        with _mapped_errors():
            found = self._client.v1.payment_intents.cancel(
                intent_id, {"expand": ["latest_charge"]}, {"idempotency_key": idempotency_key}
            )
        return _intent(found)

    def refund(self, intent_id: str, amount: int, idempotency_key: str) -> Refund:
        with _mapped_errors():
            found = self._client.v1.refunds.create(
                {"payment_intent": intent_id, "amount": amount},
                {"idempotency_key": idempotency_key},
            )
        return Refund(id=found.id, amount=int(found.amount), status=str(found.status))

    def retrieve(self, intent_id: str) -> Intent:
        with _mapped_errors():
            found = self._client.v1.payment_intents.retrieve(
                intent_id, {"expand": ["latest_charge"]}
            )
        return _intent(found)


def _intent(found: stripe.PaymentIntent) -> Intent:
    """An Intent from Stripe's answer. Stripe keeps what was refunded on the charge
    (`latest_charge.amount_refunded`, inlined by asking with `expand`), not on the
    intent; localstripe has no `amount_received` either: both are read from the charge
    when the intent lacks them."""
    obj = found.to_dict()
    charge = obj.get("latest_charge")
    if isinstance(charge, dict):
        if "amount_received" not in obj:
            captured = charge.get("captured") and charge.get("status") == "succeeded"
            obj["amount_received"] = charge.get(
                "amount_captured", charge.get("amount", 0) if captured else 0
            )
        obj.setdefault("amount_refunded", charge.get("amount_refunded", 0))
    return intent_of(obj)


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Turns the stripe package's errors into ProviderUnavailable or PaymentRefused (the
    table in the module docstring)."""
    try:
        yield
    except stripe.StripeError as exc:
        message = exc.user_message or str(exc) or type(exc).__name__
        if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            raise ProviderUnavailable(
                f"Stripe refused the API key ({message}): set a valid secret key in "
                "[payments] stripe_api_key (KITCHEN_PAYMENTS_STRIPE_API_KEY); "
                "the payment waits until then"
            ) from exc
        if isinstance(exc, stripe.CardError | stripe.InvalidRequestError | stripe.IdempotencyError):
            raise PaymentRefused(message, exc.code) from exc
        # APIConnectionError, APIError, RateLimitError and anything unforeseen: try again.
        raise ProviderUnavailable(f"Stripe did not answer: {message}") from exc
