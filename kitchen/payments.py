"""The payment cycle of merchants that require payments: a payment's states, and the one
place that moves them.

    requires_payment ─authorized─▶ authorized ─captured─▶ captured ─refunded─▶ partially_refunded
        │ declined: failed            │ voided (stock short,              │         │
        │ not authorized in time:     │   order cancelled)                ▼         ▼
        │   expired                   │ capture refused for good:        refunded ◀─┘
        │ order cancelled: voided     │   failed, the stock given back (compensation)

The order moves with it: `awaiting_payment` until the hold is authorized, then `pending`
(ORDER_CREATED goes out) and `applied` or `rejected` by processing as for any order;
`cancelled` when declined, expired or cancelled before it was applied.

Each transition here is one transaction: the order's row and the payment's are locked
(in that order, as processing locks orders first), changed, and the events that announce
the change are queued in the outbox with it (`order_events`, and ORDER_CREATED when the
hold is authorized). A payment only moves forward (`FORWARD`): a late or repeated event
that would take it back changes nothing, so webhooks arriving out of order, a consumer
redelivering and two workers racing all end in the same state.

Who calls what: the API (`open`, `hold_made`, `hold_failed`, `cancel`, `request_refund`),
the webhooks (`authorized`, `declined`, `captured`, `voided`, `refund_seen`), the payments
role's worker (`captured`, `voided`, `capture_refused`, `refunded`, `refund_refused`) and
its consumer (`order_applied`, `order_rejected`), the expiry job (`expire_due`).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kitchen import alerts, domain, metrics, outbox, providers, usage
from kitchen import settings as config
from kitchen.db import locked, session, transaction, utcnow
from kitchen.errors import Conflict, FieldError, Invalid, NotFound
from kitchen.events import OrderCreated, OrderEvent
from kitchen.inventory import ingredient_state
from kitchen.models import Ingredient, LedgerEntry, Merchant, Order, Payment, Refund
from kitchen.providers import Intent, Provider

log = logging.getLogger(__name__)

P = Payment
# The states a payment may move to from each state; anything else is a step back (or
# sideways between two ends) and is ignored.
FORWARD: dict[str, set[str]] = {
    P.REQUIRES_PAYMENT: {P.AUTHORIZED, P.FAILED, P.EXPIRED, P.VOIDED},
    P.AUTHORIZED: {P.CAPTURED, P.VOIDED, P.EXPIRED, P.FAILED},
    P.CAPTURED: {P.PARTIALLY_REFUNDED, P.REFUNDED},
    P.PARTIALLY_REFUNDED: {P.PARTIALLY_REFUNDED, P.REFUNDED},
    P.REFUNDED: set(),
    P.VOIDED: set(),
    P.FAILED: set(),
    P.EXPIRED: set(),
}
STATES = tuple(FORWARD)
# Orders that may still be cancelled: not yet applied or rejected by the kitchen.
CANCELLABLE = (Order.AWAITING_PAYMENT, Order.PENDING)


def provider_for(settings: config.Payments) -> Provider:
    """The provider the settings name (`[payments] provider`)."""
    if settings.provider == "none":
        return providers.NoProvider()
    if settings.provider == "stripe":
        from kitchen.stripe_provider import StripeProvider

        return StripeProvider(settings.stripe_api_key, settings.stripe_api_base)
    from kitchen.fake_provider import FakeProvider

    return FakeProvider()


@dataclass(frozen=True)
class Cycle:
    """The topics and rules the transitions need (from the settings)."""

    order_created_topic: str
    order_events_topic: str
    notify_topic: str
    threshold: Fraction  # the `[alerts] threshold`, for stock given back

    @classmethod
    def of(cls, settings: config.Settings) -> Cycle:
        k = settings.kafka
        return cls(
            k.order_created_topic,
            k.order_events_topic,
            k.notify_topic,
            settings.alerts.threshold_fraction,
        )

    # -- the API ---------------------------------------------------------------------

    def open(
        self,
        merchant_id: int,
        order_id: int,
        amount: int,
        currency: str,
        provider: str,
        hold_minutes: int,
    ) -> Payment:
        """The payment of a new order, before the provider is asked: call inside the
        transaction that saves the order (status awaiting_payment)."""
        now = utcnow()
        return Payment.create(
            merchant=merchant_id,
            order=order_id,
            provider=provider,
            amount=amount,
            currency=currency,
            created_at=now,
            updated_at=now,
            expires_at=now + datetime.timedelta(minutes=hold_minutes),
        )

    def hold_made(
        self, merchant_id: int, payment_id: int, intent_id: str, secret: str | None
    ) -> None:
        """The provider made the hold: record its id (webhooks name it) and the client
        secret the till confirms the card with."""
        with transaction():
            Payment.update(provider_id=intent_id, client_secret=secret, updated_at=utcnow()).where(
                Payment.merchant == merchant_id, Payment.id == payment_id
            ).execute()

    def hold_failed(self, merchant_id: int, payment_id: int, reason: str) -> bool:
        """The provider refused the hold (or could not be reached) while the order was
        placed: nothing was held, the order is cancelled."""
        return self._end_unpaid(merchant_id, payment_id, P.FAILED, f"payment failed: {reason}")

    def cancel(self, merchant_id: int, order_id: int, reason: str | None) -> Order:
        """POST /order/{id}/cancel: an order not yet applied becomes cancelled, and its
        hold (if any) is voided by the payments role. Cancelled already: nothing changes.
        Applied or rejected: Conflict. Whichever of this and processing commits first
        wins: both lock the order's row."""
        with transaction():
            order = _order(merchant_id, order_id)
            if order.status == Order.CANCELLED:
                return order
            if order.status == Order.APPLIED:
                raise Conflict(f"order {order_id} is already applied: refund it")
            if order.status not in CANCELLABLE:
                raise Conflict(f"order {order_id} is already {order.status}")
            why = f"cancelled: {reason}" if reason else "cancelled"
            self._cancel_order(order, why)
            payment = _payment_of(merchant_id, order_id, lock=True)
            if payment is not None and payment.status in (P.REQUIRES_PAYMENT, P.AUTHORIZED):
                self._owe(payment, P.VOID)
            return _order(merchant_id, order_id)

    def request_refund(
        self,
        merchant_id: int,
        order_id: int,
        amount: int | None,
        restock: bool,
        reason: str | None,
        key_name: str | None = None,
    ) -> Refund:
        """POST /order/{id}/refund: record a refund for the payments role to ask of the
        provider. Up to what was captured less what is refunded or being refunded
        (more: Invalid); `restock` (a full refund only) gives the order's ingredients
        back now, ledger reason `refund`, its rows naming `key_name` (the refunding key)."""
        with transaction():
            order = _order(merchant_id, order_id)
            payment = _payment_of(merchant_id, order_id, lock=True)
            if payment is None:
                raise Conflict(f"order {order_id} has no payment to refund")
            if payment.status not in (P.CAPTURED, P.PARTIALLY_REFUNDED):
                raise Conflict(f"order {order_id}'s payment is {payment.status}, not captured")
            # Refunds done or under way (a failed one may be asked again). The provider
            # may have refunded more than Kitchen asked (from its dashboard: refund_seen).
            done, under_way = _refunds_of(merchant_id, payment.id)
            captured = payment.captured_amount
            left = captured - max(done, payment.refunded_amount) - under_way
            amount = left if amount is None else amount
            if left <= 0:
                raise Invalid(
                    [FieldError("amount", f"nothing is left to refund of the {captured} captured")]
                )
            if amount <= 0 or amount > left:
                raise Invalid(
                    [
                        FieldError(
                            "amount",
                            f"must be from 1 to {left}: {left} of the {captured} captured "
                            "is left to refund",
                        )
                    ]
                )
            if restock and amount != captured:
                raise Invalid([FieldError("restock", "only with a full refund")])
            refund = Refund.create(
                merchant=merchant_id,
                payment=payment.id,
                order=order_id,
                amount=amount,
                restock=restock,
                reason=reason,
                next_attempt_at=utcnow(),
            )
            if restock:
                try:
                    self._give_back(order, LedgerEntry.REFUND, key_name)
                except domain.StockError as exc:  # more than an ingredient may hold
                    raise Invalid([FieldError("restock", str(exc))]) from None
            return refund

    # -- what the provider says (webhooks, and the worker's answers) ----------------------

    def authorized(self, merchant_id: int, payment_id: int, held: Intent | None = None) -> bool:
        """The hold exists: the order goes to the kitchen (ORDER_CREATED), unless it was
        cancelled meanwhile, in which case the hold is voided. Returns whether it moved.
        `held`, the provider's word: a hold for less than the order's amount, or in
        another currency, pays for nothing (logged; the order waits, then expires)."""
        with transaction():
            payment = self._lock(merchant_id, payment_id)
            if payment is None:
                return False
            if held is not None and (
                held.amount < payment.amount or held.currency != payment.currency
            ):
                log.error(
                    "payment %d: the provider holds %d %s, the order costs %d %s: not "
                    "sent to the kitchen",
                    payment.id,
                    held.amount,
                    held.currency,
                    payment.amount,
                    payment.currency,
                    extra={"order_id": payment.order_id, "merchant_id": merchant_id},
                )
                return False
            if payment.status in (P.FAILED, P.EXPIRED, P.VOIDED) and held is not None:
                # A card held after its payment ended (declined, then a second card on the
                # same intent; or late): no order will use it, so it is released.
                if held.status == providers.REQUIRES_CAPTURE and payment.action is None:
                    self._owe(payment, P.VOID)
                    return True
                return False
            if not self._move(payment, P.AUTHORIZED):
                return False
            order = _order(merchant_id, payment.order_id)
            self._event(OrderEvent.AUTHORIZED, payment)
            if order.status == Order.AWAITING_PAYMENT:
                Order.update(status=Order.PENDING, emitted_at=utcnow()).where(
                    Order.merchant == merchant_id, Order.id == order.id
                ).execute()
                outbox.add(
                    self.order_created_topic,
                    OrderCreated(order.id, merchant_id),
                    merchant_id,
                    order.id,
                )
            elif order.status == Order.CANCELLED:
                self._owe(payment, payment.action or P.VOID)
            return True

    def declined(self, merchant_id: int, payment_id: int, reason: str) -> bool:
        """The card was declined: payment failed, order cancelled."""
        return self._end_unpaid(merchant_id, payment_id, P.FAILED, f"payment declined: {reason}")

    def captured(self, merchant_id: int, payment_id: int, amount: int) -> bool:
        """The money is taken: ORDER_PAID."""
        with transaction():
            payment = self._lock(merchant_id, payment_id)
            if payment is None or not self._move(payment, P.CAPTURED, captured_amount=amount):
                return False
            self._event(OrderEvent.PAID, payment, amount=amount)
            return True

    def voided(self, merchant_id: int, payment_id: int) -> bool:
        """The hold is released: nothing was charged. `expired` when it was voided for
        want of an authorization in time, `voided` otherwise. A hold the provider
        cancelled on its own after the kitchen applied the order (it expired there) can
        no longer be captured: compensation (`capture_refused`)."""
        with transaction():
            payment = self._lock(merchant_id, payment_id)
            if payment is None:
                return False
            order = _order(merchant_id, payment.order_id)
            if payment.status == P.AUTHORIZED and order.status == Order.APPLIED:
                return self.capture_refused(merchant_id, payment_id, "the hold was cancelled")
            status = P.EXPIRED if payment.action == P.EXPIRE else P.VOIDED
            if not self._move(payment, status):
                return False
            self._event(OrderEvent.VOIDED, payment)
            # Cancelled at the provider before any hold (its dashboard, its own expiry):
            # the order would wait for a payment that can no longer come.
            order = _order(merchant_id, payment.order_id)
            if order.status == Order.AWAITING_PAYMENT:
                self._cancel_order(order, "cancelled: the payment was cancelled")
            return True

    def capture_refused(self, merchant_id: int, payment_id: int, reason: str) -> bool:
        """The capture failed for good after the kitchen used the stock (the hold expired
        at the provider, say): compensation. The order's ingredients go back (ledger
        `compensation`), the order becomes rejected, the payment failed."""
        with transaction():
            payment = self._lock(merchant_id, payment_id)
            if payment is None or not self._move(payment, P.FAILED, failure=reason):
                return False
            order = _order(merchant_id, payment.order_id)
            why = f"payment could not be captured: {reason}"
            if order.status == Order.APPLIED:
                self._give_back(order, LedgerEntry.COMPENSATION)
                Order.update(status=Order.REJECTED, reason=why).where(
                    Order.merchant == merchant_id, Order.id == order.id
                ).execute()
            self._event(OrderEvent.FAILED, payment, reason=why)
            self._event(OrderEvent.REJECTED, payment, reason=why)
            log.warning("order %d: %s; its stock was given back", order.id, why)
            return True

    def refunded(self, merchant_id: int, refund_id: int, provider_id: str | None) -> bool:
        """The provider refunded: ORDER_REFUNDED, the payment refunded or partially."""
        with transaction():
            refund = _refund(merchant_id, refund_id)
            if refund is None or refund.status != Refund.REQUESTED:
                return False
            payment = self._lock(merchant_id, refund.payment_id)
            assert payment is not None
            Refund.update(status=Refund.SUCCEEDED, provider_id=provider_id, done_at=utcnow()).where(
                Refund.merchant == merchant_id, Refund.id == refund_id
            ).execute()
            # charge.refunded may have counted this refund already (refund_seen): the
            # provider's total, or Kitchen's own refunds', whichever is more; never both.
            done, _ = _refunds_of(merchant_id, payment.id)
            total = max(payment.refunded_amount, done)
            status = P.REFUNDED if total >= payment.captured_amount else P.PARTIALLY_REFUNDED
            self._move(payment, status, refunded_amount=total)
            self._event(
                OrderEvent.REFUNDED,
                payment,
                amount=refund.amount,
                refunded_amount=total,
                restock=refund.restock,
            )
            return True

    def refund_refused(self, merchant_id: int, refund_id: int, reason: str) -> bool:
        """The provider refused the refund for good: the refund failed (its amount may be
        asked again). Stock given back with it stays back: the food is not coming back."""
        with transaction():
            refund = _refund(merchant_id, refund_id)
            if refund is None or refund.status != Refund.REQUESTED:
                return False
            Refund.update(status=Refund.FAILED, last_error=reason, done_at=utcnow()).where(
                Refund.merchant == merchant_id, Refund.id == refund_id
            ).execute()
            metrics.payment_outcome("refund_failed")
            return True

    def refund_seen(self, merchant_id: int, payment_id: int, amount_refunded: int) -> bool:
        """A `charge.refunded` event: refunds made at the provider (Kitchen's own, or from
        the provider's dashboard) count up to its total; never down."""
        with transaction():
            payment = self._lock(merchant_id, payment_id)
            if payment is None or amount_refunded <= payment.refunded_amount:
                return False
            total = min(amount_refunded, payment.captured_amount or payment.amount)
            status = (
                P.REFUNDED
                if total >= (payment.captured_amount or payment.amount)
                else P.PARTIALLY_REFUNDED
            )
            if not self._move(payment, status, refunded_amount=total):
                return False
            self._event(OrderEvent.REFUNDED, payment, refunded_amount=total)
            return True

    # -- the kitchen's outcome (the payments role's consumer) ---------------------------

    def order_applied(self, merchant_id: int, order_id: int) -> bool:
        """The kitchen cooked it: the hold is captured (by the worker)."""
        return self._owe_for(merchant_id, order_id, P.CAPTURE)

    def order_rejected(self, merchant_id: int, order_id: int) -> bool:
        """Stock was short: the hold is voided (by the worker); nothing is charged."""
        return self._owe_for(merchant_id, order_id, P.VOID)

    def expire_due(self, now: datetime.datetime | None = None, limit: int = 500) -> int:
        """Payments not authorized in time: their orders are cancelled now, and the holds
        cancelled at the provider by the worker (payment `expired`). Returns how many."""
        now = now or utcnow()
        with session():
            due = [
                (p.merchant_id, p.id)
                for p in Payment.select(Payment.merchant, Payment.id)
                .where(
                    Payment.status == P.REQUIRES_PAYMENT,
                    Payment.expires_at < now,
                    Payment.action.is_null(),
                )
                .order_by(Payment.id)
                .limit(limit)
            ]
        count = 0
        for merchant_id, payment_id in due:
            with transaction():
                payment = self._lock(merchant_id, payment_id)
                if payment is None or payment.status != P.REQUIRES_PAYMENT or payment.action:
                    continue
                order = _order(merchant_id, payment.order_id)
                if order.status == Order.AWAITING_PAYMENT:
                    self._cancel_order(order, "cancelled: payment not authorized in time")
                self._owe(payment, P.EXPIRE)
                count += 1
        if count:
            log.info("%d payments not authorized in time: cancelling their holds", count)
        return count

    # -- the parts ----------------------------------------------------------------------

    def _lock(self, merchant_id: int, payment_id: int) -> Payment | None:
        """The payment, its order's row locked first, then its own (the order processing
        and cancel lock)."""
        payment = Payment.get_or_none(Payment.merchant == merchant_id, Payment.id == payment_id)
        if payment is None:
            return None
        _order(merchant_id, payment.order_id)
        found: Payment = locked(
            Payment.select().where(Payment.merchant == merchant_id, Payment.id == payment_id)
        ).get()
        return found

    def _move(self, payment: Payment, status: str, **fields: Any) -> bool:
        """Move the payment to `status` if that is forward (see FORWARD); the row must be
        locked. Counts the outcome for /metrics."""
        if status not in FORWARD[payment.status]:
            return False
        changes: dict[str, Any] = {"status": status, "updated_at": utcnow(), **fields}
        if status in (P.CAPTURED, P.VOIDED, P.EXPIRED, P.FAILED):  # nothing more to ask
            changes.update(action=None, claimed_until=None)
        Payment.update(**changes).where(
            Payment.merchant == payment.merchant_id, Payment.id == payment.id
        ).execute()
        previous = payment.status
        for name, value in changes.items():
            setattr(payment, name, value)
        metrics.payment_outcome(status)
        log.info(
            "payment %d of order %d: %s -> %s",
            payment.id,
            payment.order_id,
            previous,
            status,
            extra={"order_id": payment.order_id, "merchant_id": payment.merchant_id},
        )
        return True

    def _owe(self, payment: Payment, action: str) -> None:
        """Give the payments role a provider call to make (now, then with back-off)."""
        Payment.update(action=action, attempts=0, next_attempt_at=utcnow(), last_error=None).where(
            Payment.merchant == payment.merchant_id, Payment.id == payment.id
        ).execute()
        payment.action = action

    def _owe_for(self, merchant_id: int, order_id: int, action: str) -> bool:
        with transaction():
            found = _payment_of(merchant_id, order_id)
            if found is None:
                return False  # a merchant without payments: nothing to do
            payment = self._lock(merchant_id, found.id)
            if payment is None or payment.status != P.AUTHORIZED or payment.action is not None:
                return False  # already done, or already owed (a redelivered event)
            self._owe(payment, action)
            return True

    def _end_unpaid(self, merchant_id: int, payment_id: int, status: str, why: str) -> bool:
        """A payment that never held money ends (declined, failed): its order, if still
        waiting for it, is cancelled."""
        with transaction():
            payment = self._lock(merchant_id, payment_id)
            if payment is None or payment.status != P.REQUIRES_PAYMENT:
                return False
            self._move(payment, status, failure=why)
            self._event(OrderEvent.FAILED, payment, reason=why)
            order = _order(merchant_id, payment.order_id)
            if order.status == Order.AWAITING_PAYMENT:
                self._cancel_order(order, why)
            return True

    def _cancel_order(self, order: Order, why: str) -> None:
        Order.update(status=Order.CANCELLED, reason=why, processed_at=utcnow()).where(
            Order.merchant == order.merchant_id, Order.id == order.id
        ).execute()
        outbox.add(
            self.order_events_topic,
            OrderEvent(OrderEvent.CANCELLED, order.id, order.merchant_id, {"reason": why}),
            order.merchant_id,
            order.id,
        )

    def _event(self, kind: str, payment: Payment, **details: Any) -> None:
        details = {
            "payment_status": payment.status,
            "amount": payment.amount,
            "currency": payment.currency,
            **details,
        }
        event = OrderEvent(kind, payment.order_id, payment.merchant_id, details)
        outbox.add(self.order_events_topic, event, payment.merchant_id, payment.order_id)

    def _give_back(self, order: Order, reason: str, key_name: str | None = None) -> None:
        """Return what the kitchen took for `order` (its ledger rows), in this
        transaction; the alert rules re-arm as after a restock (and the open alerts are
        resolved by `reason`). A refund past the stock limit is refused (StockError); a
        compensation cannot be refused (the payment has failed already), so it gives back
        up to the limit. `key_name`: who asked (a refund), for the ledger rows."""
        merchant_id = order.merchant_id
        taken: dict[int, int] = {}
        # Less what was given back already (a refund with restock that failed, asked
        # again): an order's stock comes back once.
        for entry in LedgerEntry.select(LedgerEntry.ingredient, LedgerEntry.grams).where(
            LedgerEntry.merchant == merchant_id,
            LedgerEntry.order == order.id,
            LedgerEntry.reason.in_(
                [LedgerEntry.ORDER, LedgerEntry.REFUND, LedgerEntry.COMPENSATION]
            ),
        ):
            taken[entry.ingredient_id] = taken.get(entry.ingredient_id, 0) - entry.grams
        taken = {i: grams for i, grams in taken.items() if grams > 0}
        if not taken:
            return
        merchant = Merchant.get_by_id(merchant_id)
        rows = locked(
            Ingredient.select().where(Ingredient.id.in_(sorted(taken))).order_by(Ingredient.id)
        )
        now = utcnow()
        for row in rows:
            state = ingredient_state(row, merchant, self.threshold)
            if reason == LedgerEntry.COMPENSATION:
                taken[row.id] = min(taken[row.id], domain.MAX_GRAMS - state.stock)
                if taken[row.id] <= 0:
                    continue
            domain.give_back(state, taken[row.id])
            Ingredient.update(stock=state.stock, alert_armed=state.armed).where(
                Ingredient.id == row.id
            ).execute()
            usage.write_ledger_row(
                merchant=merchant_id,
                ingredient=row.id,
                grams=taken[row.id],
                reason=reason,
                order=order.id,
                stock_after=state.stock,
                created_at=now,
                key_name=key_name,
            )
            alerts.resolve(merchant_id, row.id, row.alert_armed, state.armed, reason)


def _order(merchant_id: int, order_id: int) -> Order:
    """The order, its row locked until the commit; NotFound for another merchant's."""
    found: Order | None = locked(
        Order.select().where(Order.merchant == merchant_id, Order.id == order_id)
    ).first()
    if found is None:
        raise NotFound("order", order_id)
    return found


def _payment_of(merchant_id: int, order_id: int, lock: bool = False) -> Payment | None:
    query = Payment.select().where(Payment.merchant == merchant_id, Payment.order == order_id)
    found: Payment | None = (locked(query) if lock else query).first()
    return found


def _refund(merchant_id: int, refund_id: int) -> Refund | None:
    found: Refund | None = locked(
        Refund.select().where(Refund.merchant == merchant_id, Refund.id == refund_id)
    ).first()
    return found


def _refunds_of(merchant_id: int, payment_id: int) -> tuple[int, int]:
    """What Kitchen's refunds of the payment add up to: succeeded, and still requested."""
    done = under_way = 0
    for r in Refund.select(Refund.amount, Refund.status).where(
        Refund.merchant == merchant_id, Refund.payment == payment_id
    ):
        if r.status == Refund.SUCCEEDED:
            done += r.amount
        elif r.status == Refund.REQUESTED:
            under_way += r.amount
    return done, under_way
