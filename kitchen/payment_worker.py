"""Payments role: makes the provider calls the payment cycle owes, and only those.

The consumer (`order_events_handler`) reads `order_events`: ORDER_APPLIED makes the
order's payment owe a capture, ORDER_REJECTED a void (kitchen/payments.py sets
`Payment.action`); any other type is ignored. It only records, then wakes the settler:
a provider call can take seconds, and a consumer that stops polling that long is thrown
out of its group. A redelivered event finds the action already set, or the payment
moved on, and changes nothing.

The settler thread (`Settler`) does what the rows say: a payment whose `action` is due
(capture, void, expire) and each refund still `requested`. It claims a batch of due rows
with a lease (`claimed_until`; FOR UPDATE SKIP LOCKED on PostgreSQL), so two settlers
never make the same call at once, then calls the provider with the operation's
idempotency key and records the answer through the cycle. A crash between the call and
its record leaves the row due once the lease ends: the call is made again with the same
key, the provider answers it with the first answer, and nothing is charged twice.

    capture -> captured (ORDER_PAID); refused for good -> compensation (capture_refused),
               unless the provider says the money was taken after all
    void / expire -> cancel -> voided (or expired); the hold already cancelled counts
               as done; already captured at the provider: an error for a person
    refund -> refunded; refused for good -> refund failed
    provider unavailable, or anything unexpected -> tried again after
               retry_seconds * 2**attempts (at most retry_max_seconds); the order waits

The role's job (`jobs`, every EVERY seconds) cancels orders whose payment was not
authorized in time, owes the captures and voids whose ORDER_APPLIED / ORDER_REJECTED
never arrived (an embedded cluster forgets its events at a restart) and asks the
provider about holds whose webhook never came (kitchen/reconcile.py).
"""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import peewee as pw

from kitchen import logs, reconcile
from kitchen.background import Background
from kitchen.db import database, keyed, session, transaction, tuples, utcnow
from kitchen.events import Handler, OrderEvent, Received
from kitchen.models import Payment, Refund
from kitchen.payments import Cycle
from kitchen.providers import (
    CANCELED,
    SUCCEEDED,
    Hold,
    PaymentRefused,
    Provider,
    ProviderUnavailable,
    idempotency_key,
)

log = logging.getLogger(__name__)

P = Payment
# How often the expiry job runs.
EVERY = 30.0


def order_events_handler(cycle: Cycle, wake: Callable[[], None]) -> Handler[OrderEvent]:
    """Consumer handler: ORDER_APPLIED -> capture owed, ORDER_REJECTED -> void owed;
    then wake the settler. Nothing in the batch is unusable: an event about an order
    without a payment (a merchant that does not require payments) is simply done."""

    def handler(batch: list[Received[OrderEvent]]) -> list[tuple[Received[OrderEvent], str]]:
        wanted = {
            (r.event.merchant_id, r.event.id): r.event.type
            for r in batch
            if r.event.type in (OrderEvent.APPLIED, OrderEvent.REJECTED)
        }
        owed = 0
        for (merchant_id, order_id), kind in sorted(_waiting(wanted).items()):
            if kind == OrderEvent.APPLIED:
                owed += cycle.order_applied(merchant_id, order_id)
            else:
                owed += cycle.order_rejected(merchant_id, order_id)
        if owed:
            wake()
        return []

    return handler


def _waiting(wanted: dict[tuple[int, int], str]) -> dict[tuple[int, int], str]:
    """Of these (merchant, order) pairs, those whose payment waits for the kitchen's
    outcome: most orders (every one of a merchant without payments) have no payment, and
    a look in one read per merchant spares each a write transaction. The cycle checks
    again, under lock."""
    by_merchant: dict[int, list[int]] = defaultdict(list)
    for merchant_id, order_id in wanted:
        by_merchant[merchant_id].append(order_id)
    found: dict[tuple[int, int], str] = {}
    with session():
        for merchant_id, ids in sorted(by_merchant.items()):
            query = Payment.select(Payment.order).where(
                Payment.merchant == merchant_id,
                Payment.order.in_(sorted(ids)),
                Payment.status == P.AUTHORIZED,
                Payment.action.is_null(),
            )
            for (order_id,) in tuples(query):
                found[(merchant_id, order_id)] = wanted[(merchant_id, order_id)]
    return found


def jobs(cycle: Cycle, provider: Provider, settler: Settler) -> Callable[[], None]:
    """The payments role's periodic job: expire the holds not authorized in time, owe
    what a lost ORDER_APPLIED / ORDER_REJECTED left unowed (reconcile.stranded), ask the
    provider about holds it has not told Kitchen about (reconcile.reconcile); then wake
    the settler if any of that owed a call."""

    def run() -> None:
        owed = cycle.expire_due() + reconcile.stranded(cycle)
        reconcile.reconcile(cycle, provider)  # an authorization moves the order, owes none
        if owed:
            settler.wake()

    return run


class Settler(Background):
    """The payments role's provider thread: settles due payments and refunds when woken
    (the consumer owed something) and every `every` seconds (retries coming due), until
    stopped. Nothing it meets stops it: an error (the database away) is logged, and it
    tries again at its next round."""

    BATCH = 20  # rows claimed at once
    # How long a settler owns the rows it claimed: longer than a batch of calls takes. A
    # settler that died mid-batch holds its rows that long, then another one (or itself,
    # restarted) makes the calls again, with the same keys.
    LEASE = datetime.timedelta(seconds=120)

    def __init__(
        self,
        provider: Provider,
        cycle: Cycle,
        retry_seconds: int,
        retry_max_seconds: int,
        every: float = 1.0,
        lease: datetime.timedelta | None = None,
    ) -> None:
        super().__init__("payments-settler")
        self.provider = provider
        self.cycle = cycle
        self.retry_seconds = retry_seconds
        self.retry_max_seconds = retry_max_seconds
        self.every = every
        self.lease = lease or self.LEASE

    def _run(self) -> None:
        with logs.role("payments"):
            while not self._stop.is_set():
                self._wake.clear()  # before looking: a wake during the calls is kept
                done = 0
                try:
                    done = self.settle_once()
                    self.failing = 0
                except Exception as exc:
                    self.failing += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("settling payments failed; trying again in %g s", self.every)
                if done < self.BATCH:  # a full batch: more may be due at once
                    self._wake.wait(self.every)

    def settle_once(self) -> int:
        """Claim the due payments and refunds (a batch of each) and settle them; returns
        how many rows were claimed."""
        payments = _claim(Payment, Payment.action.is_null(False), self.BATCH, self.lease)
        for merchant_id, payment_id in payments:
            if self._stop.is_set():
                _release(Payment, merchant_id, payment_id)  # for the next settler, at once
                continue
            self._settle_payment(merchant_id, payment_id)
        refunds = _claim(Refund, Refund.status == Refund.REQUESTED, self.BATCH, self.lease)
        for merchant_id, refund_id in refunds:
            if self._stop.is_set():
                _release(Refund, merchant_id, refund_id)
                continue
            self._settle_refund(merchant_id, refund_id)
        return len(payments) + len(refunds)

    # -- one row ------------------------------------------------------------------------

    def _settle_payment(self, merchant_id: int, payment_id: int) -> None:
        with session():
            payment = Payment.get_or_none(Payment.merchant == merchant_id, Payment.id == payment_id)
        if payment is None or payment.action is None:
            if payment is not None:
                _release(Payment, merchant_id, payment_id)
            return  # done meanwhile (a webhook, another settler)
        action = payment.action
        try:
            moved = self._capture(payment) if action == P.CAPTURE else self._cancel(payment)
        except Exception as exc:
            self._retry(Payment, payment, exc)
            return
        if not moved:
            # The payment had already moved on (a webhook was first): nothing is owed.
            with session():
                Payment.update(action=None).where(
                    Payment.merchant == merchant_id,
                    Payment.id == payment_id,
                    Payment.action == action,
                    Payment.status.not_in([P.REQUIRES_PAYMENT, P.AUTHORIZED]),
                ).execute()
                still = Payment.get_or_none(
                    Payment.merchant == merchant_id,
                    Payment.id == payment_id,
                    Payment.action == action,
                )
            if still is not None:
                # Owed, yet the cycle would not move it: a bug, not a reason to call the
                # provider in a tight loop.
                self._retry(Payment, payment, RuntimeError(f"payment {payment_id} did not move"))
                return
        _release(Payment, merchant_id, payment_id)

    def _capture(self, payment: Payment) -> bool:
        m = payment.merchant_id
        intent_id = payment.provider_id or self._learn_id(payment)
        try:
            intent = self.provider.capture(
                intent_id, idempotency_key(payment.order_id, "capture", m)
            )
        except PaymentRefused as exc:
            # Taken after all (an earlier capture whose key the provider no longer
            # knows, or a capture from its dashboard)? Then it is captured, not refused.
            intent = self.provider.retrieve(intent_id)
            if intent.status == SUCCEEDED:
                return self.cycle.captured(m, payment.id, intent.amount_received)
            return self.cycle.capture_refused(m, payment.id, str(exc))
        return self.cycle.captured(m, payment.id, intent.amount_received)

    def _cancel(self, payment: Payment) -> bool:
        m = payment.merchant_id
        intent_id = payment.provider_id or self._learn_id(payment)
        try:
            self.provider.cancel(intent_id, idempotency_key(payment.order_id, "cancel", m))
        except PaymentRefused:
            intent = self.provider.retrieve(intent_id)
            if intent.status == SUCCEEDED:
                # Captured at the provider while Kitchen owed a void: never void or
                # charge again; a person decides (a refund, most likely).
                error = (
                    f"owed a {payment.action}, but the provider says {intent_id} is captured "
                    f"({intent.amount_received} {payment.currency} received): left as it "
                    f"is; refund it if the order was not served"
                )
                log.error(
                    "payment %d of order %d: %s",
                    payment.id,
                    payment.order_id,
                    error,
                    extra={"order_id": payment.order_id, "merchant_id": m},
                )
                with session():
                    Payment.update(action=None, last_error=error).where(
                        Payment.merchant == m, Payment.id == payment.id
                    ).execute()
                return True
            if intent.status != CANCELED:
                raise  # not a refusal we understand: try again later
        return self.cycle.voided(m, payment.id)

    def _learn_id(self, payment: Payment) -> str:
        """The provider's id of a payment that has none recorded (a crash between the
        order's save and the hold's record): asking for the hold again with the same
        key answers the hold that was made (or makes it, to be cancelled)."""
        m = payment.merchant_id
        intent = self.provider.create_hold(
            Hold(payment.order_id, m, payment.amount, payment.currency),
            idempotency_key(payment.order_id, "hold", m),
        )
        self.cycle.hold_made(m, payment.id, intent.id, intent.client_secret)
        return intent.id

    def _settle_refund(self, merchant_id: int, refund_id: int) -> None:
        with session():
            refund = Refund.get_or_none(Refund.merchant == merchant_id, Refund.id == refund_id)
            payment = None
            if refund is not None:
                payment = Payment.get_or_none(
                    Payment.merchant == merchant_id, Payment.id == refund.payment_id
                )
        if refund is None or payment is None or refund.status != Refund.REQUESTED:
            if refund is not None:
                _release(Refund, merchant_id, refund_id)
            return
        key = idempotency_key(refund.order_id, f"refund-{refund.id}", merchant_id)
        try:
            try:
                intent_id = payment.provider_id or self._learn_id(payment)
                done = self.provider.refund(intent_id, refund.amount, key)
            except PaymentRefused as exc:
                self.cycle.refund_refused(merchant_id, refund.id, str(exc))
            else:
                self.cycle.refunded(merchant_id, refund.id, done.id)
        except Exception as exc:
            self._retry(Refund, refund, exc)
            return
        _release(Refund, merchant_id, refund_id)

    def _retry(self, model: type[Payment] | type[Refund], row: Any, exc: Exception) -> None:
        """The call could not be answered: try again after the back-off, same key."""
        seconds = min(self.retry_seconds * 2 ** min(row.attempts, 32), self.retry_max_seconds)
        error = f"{type(exc).__name__}: {exc}"
        what = "payment" if model is Payment else "refund"
        about = {"order_id": row.order_id, "merchant_id": row.merchant_id}
        if isinstance(exc, ProviderUnavailable):
            log.warning(
                "%s %d of order %d: the provider did not answer (attempt %d), trying "
                "again in %d s: %s",
                what,
                row.id,
                row.order_id,
                row.attempts + 1,
                seconds,
                exc,
                extra=about,
            )
        else:
            log.error(
                "%s %d of order %d failed (attempt %d), trying again in %d s",
                what,
                row.id,
                row.order_id,
                row.attempts + 1,
                seconds,
                exc_info=exc,
                extra=about,
            )
        with session():
            model.update(
                attempts=model.attempts + 1,
                next_attempt_at=utcnow() + datetime.timedelta(seconds=seconds),
                last_error=error,
                claimed_until=None,
            ).where(model.merchant == row.merchant_id, model.id == row.id).execute()


def _claim(
    model: type[Payment] | type[Refund],
    due: pw.Expression,
    limit: int,
    lease: datetime.timedelta,
) -> list[tuple[int, int]]:
    """Take the lease on up to `limit` due rows nobody else holds; their (merchant, id).

    One queue across merchants, as the outbox's: the due rows are few (an index on what
    is owed), and one query serves every merchant's partition."""
    now = utcnow()
    query = (
        model.select(model.merchant, model.id)
        .where(
            due,
            model.next_attempt_at <= now,
            model.claimed_until.is_null() | (model.claimed_until < now),
        )
        .order_by(model.next_attempt_at, model.id)
        .limit(limit)
    )
    with session():
        if not query.exists():
            return []  # the usual answer, without a write transaction (SQLite's lock)
    with transaction():
        if isinstance(database.obj, pw.PostgresqlDatabase):
            # Rows another settler is claiming right now are skipped, not waited for.
            query = query.for_update(skip_locked=True)
        rows = [(m, i) for m, i in tuples(query)]
        if rows:
            model.update(claimed_until=now + lease).where(keyed(model, rows)).execute()
    return rows


def _release(model: type[Payment] | type[Refund], merchant_id: int, row_id: int) -> None:
    with session():
        model.update(claimed_until=None).where(
            model.merchant == merchant_id, model.id == row_id
        ).execute()
