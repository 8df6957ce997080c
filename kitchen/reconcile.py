"""Ask the provider about holds it has not told Kitchen about, and finish what a lost
event left undone.

Webhooks are the provider's news, but one can be lost (Kitchen down for longer than the
provider retries, a firewall, a wrong secret fixed later) and some providers send none
for an authorization (localstripe). So the payments role asks, now and then, about each
payment still waiting for its hold: what the provider says moves it exactly as the
webhook would have (`payments.Cycle`, forward only; a webhook that arrives after all
changes nothing). Each payment is asked at most once per pass, oldest first.

Likewise the kitchen's outcome: ORDER_APPLIED or ORDER_REJECTED tells the payments role
to capture or void, and the embedded Kafka forgets events on a restart. The database
holds the truth (the order's status), so `stranded` gives an authorized payment whose
order the kitchen has already settled the action that event would have given it.
"""

from __future__ import annotations

import datetime
import logging

from kitchen import providers
from kitchen.db import session, utcnow
from kitchen.models import Order, Payment
from kitchen.payments import Cycle
from kitchen.providers import PaymentRefused, Provider, ProviderUnavailable

log = logging.getLogger(__name__)

# A hold younger than this is left to its webhook, which is usually on its way.
QUIET = datetime.timedelta(seconds=10)


def reconcile(
    cycle: Cycle, provider: Provider, limit: int = 100, quiet: datetime.timedelta = QUIET
) -> int:
    """Ask about up to `limit` payments waiting for their hold; returns how many moved."""
    with session():
        waiting = [
            (p.merchant_id, p.id, str(p.provider_id))
            for p in Payment.select(Payment.merchant, Payment.id, Payment.provider_id)
            .where(
                Payment.status == Payment.REQUIRES_PAYMENT,
                Payment.provider == provider.name,
                Payment.provider_id.is_null(False),
                Payment.created_at < utcnow() - quiet,
            )
            .order_by(Payment.id)
            .limit(limit)
        ]
    moved = 0
    for merchant_id, payment_id, intent_id in waiting:
        try:
            intent = provider.retrieve(intent_id)
        except ProviderUnavailable as exc:
            log.warning("reconcile: the provider did not answer (%s); next pass", exc)
            break  # it is down: asking about the others now would fail too
        except PaymentRefused as exc:
            log.warning("reconcile: payment %d: %s", payment_id, exc)
            continue
        if intent.status in (providers.REQUIRES_CAPTURE, providers.SUCCEEDED):
            moved += cycle.authorized(merchant_id, payment_id, intent)
        elif intent.status == providers.CANCELED:
            moved += cycle.hold_failed(merchant_id, payment_id, "cancelled at the provider")
    if moved:
        log.info("reconcile: %d payments moved by what the provider said", moved)
    return moved


def stranded(cycle: Cycle, limit: int = 500, quiet: datetime.timedelta = QUIET) -> int:
    """Authorized payments with nothing owed whose order is applied (capture), rejected
    or cancelled (void) since longer than `quiet`: the event that should have said so
    was lost. Returns how many were given their action."""
    settled = {Order.APPLIED: cycle.order_applied, Order.REJECTED: cycle.order_rejected}
    with session():
        found = [
            (p.merchant_id, p.order_id, status)
            for p, status in (
                (p, p.order.status)
                for p in Payment.select(Payment, Order)
                .join(
                    Order,
                    on=(Order.merchant == Payment.merchant) & (Order.id == Payment.order),
                )
                .where(
                    Payment.status == Payment.AUTHORIZED,
                    Payment.action.is_null(),
                    Payment.updated_at < utcnow() - quiet,
                    Order.status.in_([Order.APPLIED, Order.REJECTED, Order.CANCELLED]),
                )
                .order_by(Payment.id)
                .limit(limit)
            )
        ]
    given = 0
    for merchant_id, order_id, status in found:
        act = settled.get(status, cycle.order_rejected)  # cancelled: void, as rejected
        given += act(merchant_id, order_id)
    if given:
        log.warning("%d payments waited for a lost order event: capture or void now", given)
    return given
