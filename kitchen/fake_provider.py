"""The fake payment provider: Stripe's PaymentIntents, kept in Kitchen's own database.

It is the embedded default, as SQLite and the embedded Kafka are: it lets a first run,
the README's walkthrough and the tests pay for orders with nothing else running. Its
payments are rows (models.FakeIntent), so every role in every process sees the same ones;
each call that changes money is answered once per idempotency key (models.FakeRequest),
as Stripe answers a repeated key with its first answer. It speaks Stripe's webhook format,
signed as Stripe signs (providers.sign): in development, POST
/payments/fake/{id}/authorize and /decline stand in for a card, and Kitchen verifies the
event they make with the same code as a real provider's.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import peewee as pw

from kitchen import providers
from kitchen.db import database, locked, session, transaction
from kitchen.models import FakeIntent, FakeRequest
from kitchen.providers import Hold, Intent, PaymentRefused, Refund


class FakeProvider:
    name = "fake"

    def create_hold(self, hold: Hold, idempotency_key: str) -> Intent:
        def create() -> dict[str, Any]:
            row = FakeIntent.create(
                intent_id=f"pi_fake_{secrets.token_hex(12)}",
                merchant_id=hold.merchant_id,
                order_id=hold.order_id,
                status=providers.REQUIRES_PAYMENT_METHOD,
                amount=hold.amount,
                currency=hold.currency,
                client_secret=f"pi_fake_secret_{secrets.token_hex(12)}",
            )
            return _object(row)

        return providers.intent_of(self._once(idempotency_key, create))

    def capture(self, intent_id: str, idempotency_key: str) -> Intent:
        def capture() -> dict[str, Any]:
            row = self._locked(intent_id)
            if row.status != providers.REQUIRES_CAPTURE:
                raise PaymentRefused(
                    f"this PaymentIntent could not be captured: it is {row.status}",
                    "payment_intent_unexpected_state",
                )
            row.status, row.amount_received = providers.SUCCEEDED, row.amount
            row.save()
            return _object(row)

        return providers.intent_of(self._once(idempotency_key, capture))

    def cancel(self, intent_id: str, idempotency_key: str) -> Intent:
        def cancel() -> dict[str, Any]:
            row = self._locked(intent_id)
            if row.status in (providers.SUCCEEDED, providers.CANCELED):
                raise PaymentRefused(
                    f"this PaymentIntent could not be canceled: it is {row.status}",
                    "payment_intent_unexpected_state",
                )
            row.status = providers.CANCELED
            row.save()
            return _object(row)

        return providers.intent_of(self._once(idempotency_key, cancel))

    def refund(self, intent_id: str, amount: int, idempotency_key: str) -> Refund:
        def refund() -> dict[str, Any]:
            row = self._locked(intent_id)
            if row.status != providers.SUCCEEDED:
                raise PaymentRefused(f"this PaymentIntent is {row.status}: nothing to refund")
            if amount <= 0 or row.amount_refunded + amount > row.amount_received:
                raise PaymentRefused(
                    f"refund of {amount} is more than the "
                    f"{row.amount_received - row.amount_refunded} left",
                    "amount_too_large",
                )
            row.amount_refunded += amount
            row.save()
            return {
                "id": f"re_fake_{secrets.token_hex(12)}",
                "amount": amount,
                "status": "succeeded",
            }

        answer = self._once(idempotency_key, refund)
        return Refund(answer["id"], answer["amount"], answer["status"])

    def retrieve(self, intent_id: str) -> Intent:
        with session():
            row = FakeIntent.get_or_none(FakeIntent.intent_id == intent_id)
        if row is None:
            raise PaymentRefused(f"no such payment_intent: {intent_id}", "resource_missing")
        return providers.intent_of(_object(row))

    # -- what a card does (development's /payments/fake/{id}/authorize and /decline) -----

    def authorize(self, intent_id: str) -> dict[str, Any]:
        """The customer's card is held: the event Stripe would send
        (payment_intent.amount_capturable_updated). A cancelled or captured intent
        cannot be: PaymentRefused, as Stripe refuses to confirm it."""
        with transaction():
            row = self._locked(intent_id)
            if row.status not in (providers.REQUIRES_PAYMENT_METHOD, providers.REQUIRES_CAPTURE):
                raise PaymentRefused(
                    f"this PaymentIntent cannot be authorized: it is {row.status}",
                    "payment_intent_unexpected_state",
                )
            if row.status == providers.REQUIRES_PAYMENT_METHOD:
                row.status = providers.REQUIRES_CAPTURE
                row.save()
            return event(providers.AUTHORIZED, _object(row))

    def decline(self, intent_id: str) -> dict[str, Any]:
        """The customer's card is declined: payment_intent.payment_failed. Only while
        the intent waits for a card (else PaymentRefused: nothing was tried)."""
        with transaction():
            row = self._locked(intent_id)
            if row.status != providers.REQUIRES_PAYMENT_METHOD:
                raise PaymentRefused(
                    f"this PaymentIntent cannot be declined: it is {row.status}",
                    "payment_intent_unexpected_state",
                )
            row.failure = "Your card was declined."
            row.save()
            return event(providers.FAILED, _object(row))

    def _locked(self, intent_id: str) -> FakeIntent:
        row: FakeIntent | None = locked(
            FakeIntent.select().where(FakeIntent.intent_id == intent_id)
        ).first()
        if row is None:
            raise PaymentRefused(f"no such payment_intent: {intent_id}", "resource_missing")
        return row

    def _once(self, key: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Answer `call` once per idempotency key: a repeated key gets the first answer.
        A refusal is not recorded: it changed nothing, so asking again is as safe. Calls
        with the same key take turns (an advisory lock on PostgreSQL; SQLite's write
        lock), so the second one finds the first one's answer."""
        with transaction():
            if isinstance(database.obj, pw.PostgresqlDatabase):
                database.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
            seen = FakeRequest.get_or_none(FakeRequest.key == key)
            if seen is not None:
                answer: dict[str, Any] = json.loads(seen.answer)
                return answer
            answer = call()
            FakeRequest.create(key=key, answer=json.dumps(answer))
            return answer


def _object(row: FakeIntent) -> dict[str, Any]:
    """The PaymentIntent as Stripe's API shows it."""
    failure = {"code": "card_declined", "message": row.failure} if row.failure else None
    return {
        "id": row.intent_id,
        "object": "payment_intent",
        "status": row.status,
        "amount": row.amount,
        "amount_capturable": row.amount if row.status == providers.REQUIRES_CAPTURE else 0,
        "amount_received": row.amount_received,
        "amount_refunded": row.amount_refunded,
        "currency": row.currency.lower(),
        "capture_method": "manual",
        "client_secret": row.client_secret,
        "metadata": {"order_id": str(row.order_id), "merchant_id": str(row.merchant_id)},
        "last_payment_error": failure,
    }


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """A Stripe-shaped webhook event about `obj`."""
    return {
        "id": f"evt_fake_{secrets.token_hex(12)}",
        "object": "event",
        "type": kind,
        "data": {"object": obj},
    }
