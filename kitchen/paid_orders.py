"""POST /order for a merchant that requires payments: the order waits for its hold.

An `off` merchant's orders go through the intake's group commit (kitchen/intake.py) and
reach the kitchen at once. A merchant whose `payments` is "required" takes this path
instead. `place` saves the order (status awaiting_payment), its lines and its payment
(requires_payment, `payments.Cycle.open`) in one transaction, with no ORDER_CREATED: the
kitchen hears of the order only once the provider reports the hold authorized
(`Cycle.authorized`), so stock does not move for an order nobody paid. The amount is
Kitchen's own, the products' prices times the quantities; every product needs a price.

Then, outside that transaction (a provider call must never hold a database lock),
`hold` asks the provider for the hold, with the order's idempotency key, and records
the provider's id and client secret (`Cycle.hold_made`). If the provider is down or
refuses, the order is cancelled and its payment failed (`Cycle.hold_failed`), nothing
having been held, and the request's Idempotency-Key is freed in the same transaction:
the client was told that nothing was placed, so a retry with that key places a new
order instead of finding the cancelled one.

A retry with the Idempotency-Key of an order that was placed finds that order and its
payment. If the first request never got its hold recorded (it crashed, or it is still
waiting on the provider) the retry asks the provider too, with the same provider key,
so the provider answers with the same hold: never a second one. Such a retry does not
cancel the order when the provider fails: the first request, or the expiry of
`[payments] hold_minutes`, decides that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import peewee as pw

from kitchen import orders, providers
from kitchen.db import session, transaction, utcnow
from kitchen.domain import MAX_ORDER_AMOUNT, Line, order_amount
from kitchen.errors import FieldError, InvalidOrder, KeyReused
from kitchen.models import Merchant, Order, OrderLine, Payment, Product
from kitchen.payments import Cycle
from kitchen.providers import Hold, PaymentRefused, Provider, ProviderUnavailable
from kitchen.validation import PAYMENTS_REQUIRED


class PaymentModes:
    """Whether each merchant requires payments, as this process read it a moment ago.

    POST /order must know it before it picks a path, and a database read per order
    would cost the intake's hot path a thread hop, as a key lookup did (see
    merchants.KnownKeys). A PATCH /merchant here forgets the merchant at once; one made
    through another API process is seen here within TTL seconds."""

    TTL = 2.0
    LIMIT = 10_000  # forget everything past this many merchants: bounded

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._known: dict[int, tuple[bool, float]] = {}

    def get(self, merchant_id: int) -> bool | None:
        found = self._known.get(merchant_id)
        if found is None or found[1] < self._clock():
            return None
        return found[0]

    def remember(self, merchant_id: int, required: bool) -> None:
        if len(self._known) >= self.LIMIT:
            self._known.clear()
        self._known[merchant_id] = (required, self._clock() + self.TTL)

    def forget(self, merchant_id: int) -> None:
        self._known.pop(merchant_id, None)


def requires_payments(merchant_id: int) -> bool:
    with session():
        mode = Merchant.select(Merchant.payments).where(Merchant.id == merchant_id).scalar()
    return bool(mode == PAYMENTS_REQUIRED)


@dataclass(frozen=True)
class PaidOrder:
    """An order of this path and its payment; `created` False for a retry's first order
    (whose payment is None if it was placed before the merchant required payments)."""

    order: Order
    payment: Payment | None
    created: bool

    @property
    def needs_hold(self) -> bool:
        """Whether the provider has yet to be asked (or its answer is not recorded)."""
        p = self.payment
        return p is not None and p.provider_id is None and p.status == Payment.REQUIRES_PAYMENT


def place(
    cycle: Cycle,
    provider: str,
    hold_minutes: int,
    merchant_id: int,
    lines: list[Line],
    idempotency_key: str | None = None,
    key_name: str | None = None,
) -> PaidOrder:
    """Save the order, its lines and its payment (not yet asked of the provider) in one
    transaction. With an Idempotency-Key used already: that first order (KeyReused if
    it was for other lines). InvalidOrder for an unknown product, one without a price,
    or an amount over MAX_ORDER_AMOUNT."""
    fingerprint = orders.request_hash(lines) if idempotency_key is not None else None
    for _ in range(2):
        try:
            with transaction():
                if idempotency_key is not None:
                    first = Order.get_or_none(
                        Order.merchant == merchant_id, Order.idempotency_key == idempotency_key
                    )
                    if first is not None:
                        if first.request_hash != fingerprint:
                            raise KeyReused(idempotency_key)
                        return PaidOrder(first, _payment(merchant_id, first.id), False)
                merchant = Merchant.get_by_id(merchant_id)
                amount = order_amount(lines, _prices(merchant_id, lines))
                if amount > MAX_ORDER_AMOUNT:
                    raise InvalidOrder(
                        [
                            FieldError(
                                "products",
                                f"the order comes to {amount} (minor units), more than the "
                                f"{MAX_ORDER_AMOUNT} one payment may hold",
                            )
                        ]
                    )
                now = utcnow()
                order = Order.create(
                    merchant=merchant_id,
                    status=Order.AWAITING_PAYMENT,
                    created_at=now,
                    emitted_at=now,
                    idempotency_key=idempotency_key,
                    request_hash=fingerprint,
                    key_name=key_name,
                )
                OrderLine.insert_many(
                    [
                        {
                            "merchant": merchant_id,
                            "order": order.id,
                            "product": ln.product_id,
                            "quantity": ln.quantity,
                        }
                        for ln in lines
                    ]
                ).execute()
                payment = cycle.open(
                    merchant_id, order.id, amount, merchant.currency, provider, hold_minutes
                )
                return PaidOrder(order, payment, True)
        except pw.IntegrityError:
            continue  # a concurrent request with the same key won: read its order
    raise KeyReused(idempotency_key or "")


def _prices(merchant_id: int, lines: list[Line]) -> dict[int, int]:
    """The price of each product of `lines`; InvalidOrder naming each line whose product
    is unknown (another merchant's, deleted) or has no price."""
    ids = list({ln.product_id for ln in lines})
    found = {
        p.id: p.price
        for p in Product.select(Product.id, Product.price).where(
            Product.merchant == merchant_id, Product.id.in_(ids), Product.deleted_at.is_null()
        )
    }
    errors: list[FieldError] = []
    for i, line in enumerate(lines):
        field = f"products[{i}].product_id"
        if line.product_id not in found:
            errors.append(FieldError(field, f"unknown product {line.product_id}"))
        elif found[line.product_id] is None:
            errors.append(
                FieldError(
                    field,
                    f"product {line.product_id} has no price: set one (PATCH /products/"
                    f"{line.product_id}) to sell it while payments are required",
                )
            )
    if errors:
        raise InvalidOrder(errors)
    return {product_id: price for product_id, price in found.items() if price is not None}


def _payment(merchant_id: int, order_id: int) -> Payment | None:
    found: Payment | None = Payment.get_or_none(
        Payment.merchant == merchant_id, Payment.order == order_id
    )
    return found


def hold(cycle: Cycle, provider: Provider, placed: PaidOrder) -> None:
    """Ask the provider for the hold of `placed` (blocking: run it in a thread) and
    record it. ProviderUnavailable or PaymentRefused are raised after, for the order
    that was just placed (`created`), its cancellation: the caller answers them."""
    order, payment = placed.order, placed.payment
    assert payment is not None
    merchant_id = order.merchant_id
    key = providers.idempotency_key(order.id, "hold", merchant_id)
    try:
        intent = provider.create_hold(
            Hold(order.id, merchant_id, payment.amount, payment.currency), key
        )
    except ProviderUnavailable as exc:
        if placed.created:
            _give_up(cycle, placed, f"provider unavailable: {exc}")
        raise
    except PaymentRefused as exc:
        if placed.created:
            _give_up(cycle, placed, f"refused by the provider: {exc}")
        raise
    cycle.hold_made(merchant_id, payment.id, intent.id, intent.client_secret)


def _give_up(cycle: Cycle, placed: PaidOrder, reason: str) -> None:
    """Nothing was held: the order is cancelled, its payment failed, and its
    Idempotency-Key freed for the retry (one transaction)."""
    order, payment = placed.order, placed.payment
    assert payment is not None
    with transaction():
        Order.update(idempotency_key=None).where(
            Order.merchant == order.merchant_id, Order.id == order.id
        ).execute()
        cycle.hold_failed(order.merchant_id, payment.id, reason)


def current(merchant_id: int, order_id: int) -> tuple[Order, Payment | None]:
    """The order and its payment as stored now (after the hold was recorded)."""
    with session():
        return Order.get(Order.merchant == merchant_id, Order.id == order_id), _payment(
            merchant_id, order_id
        )


def payment_of(merchant_id: int, order_id: int) -> Payment | None:
    with session():
        return _payment(merchant_id, order_id)
