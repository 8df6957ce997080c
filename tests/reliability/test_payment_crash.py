"""The payments role killed (SIGKILL) between a provider call and its record: after the
restart every payment ends where it should, each charged, voided and refunded once."""

from __future__ import annotations

import datetime
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable

from app import Kitchen
from kitchen import db
from kitchen.db import session
from kitchen.fake_provider import FakeProvider
from kitchen.models import FakeIntent, FakeRequest, Payment, Refund
from kitchen.payment_worker import Settler
from kitchen.payments import Cycle
from kitchen.providers import CANCELED, SUCCEEDED, Intent
from kitchen.providers import Refund as ProviderRefund
from tests.helpers import REAL_DATABASE, eventually
from tests.paid_orders import Paid, paid_order, seed_kitchen
from tests.reliability.report import report

LEASE = datetime.timedelta(seconds=2)  # the dead settler's claim, short for the test


class Dying(FakeProvider):
    """The fake provider, in a process that SIGKILLs itself right after the `count`-th
    call of `operation` is answered: the provider did it, Kitchen has not recorded it."""

    def __init__(self, operation: str, count: int) -> None:
        self.operation, self.left = operation, count

    def _answered(self, operation: str) -> None:
        if operation == self.operation:
            self.left -= 1
            if self.left == 0:
                os.kill(os.getpid(), signal.SIGKILL)

    def capture(self, intent_id: str, idempotency_key: str) -> Intent:
        answer = super().capture(intent_id, idempotency_key)
        self._answered("capture")
        return answer

    def cancel(self, intent_id: str, idempotency_key: str) -> Intent:
        answer = super().cancel(intent_id, idempotency_key)
        self._answered("cancel")
        return answer

    def refund(self, intent_id: str, amount: int, idempotency_key: str) -> ProviderRefund:
        answer = super().refund(intent_id, amount, idempotency_key)
        self._answered("refund")
        return answer


def settle_until_killed(url: str, cycle: Cycle, operation: str, count: int) -> None:
    """A payments role in a process of its own, settling until its provider kills it."""
    db.bind(url)
    settler = Settler(Dying(operation, count), cycle, 1, 2, lease=LEASE)
    stop = threading.Event()
    while not stop.wait(0.05):
        settler.settle_once()


def crash(url: str, cycle: Cycle, operation: str, count: int) -> None:
    """Run a settler process until it kills itself after `count` `operation` calls."""
    child = multiprocessing.get_context("spawn").Process(
        target=settle_until_killed, args=(url, cycle, operation, count)
    )
    child.start()
    child.join(90)
    if child.is_alive():
        child.kill()
        raise AssertionError(f"the settler never made {count} {operation} calls")
    assert child.exitcode == -signal.SIGKILL


def restart(cycle: Cycle, done: Callable[[], bool]) -> None:
    """The payments role again (in this process), until `done`."""
    settler = Settler(FakeProvider(), cycle, 1, 2, every=0.2, lease=LEASE)
    settler.start()
    try:
        eventually(done, timeout=60, interval=0.2)
    finally:
        settler.stop()


def test_a_settler_killed_between_call_and_record_charges_nothing_twice(
    make_kitchen: Callable[..., Kitchen], clean_database: str
) -> None:
    kitchen = make_kitchen("api,relay,processing")  # the payments role runs in children
    seeded = seed_kitchen(kitchen)
    cycle = Cycle.of(kitchen.settings)
    served = [paid_order(kitchen, seeded, 1) for _ in range(8)]
    short = [paid_order(kitchen, seeded, 60) for _ in range(2)]  # more onion than there is
    everyone = served + short
    eventually(lambda: all(p.order().status in ("applied", "rejected") for p in everyone))
    assert [p.order().status for p in everyone] == ["applied"] * 8 + ["rejected"] * 2
    for p in served:  # what the consumer does with ORDER_APPLIED / ORDER_REJECTED
        assert cycle.order_applied(p.merchant_id, p.order_id)
    for p in short:
        assert cycle.order_rejected(p.merchant_id, p.order_id)

    # Killed right after the provider took the third payment.
    crash(clean_database, cycle, "capture", 3)
    taken = [p for p in served if p.intent().status == SUCCEEDED]
    unrecorded = [p for p in taken if p.payment().status == Payment.AUTHORIZED]
    assert len(taken) == 3 and len(unrecorded) == 1
    assert unrecorded[0].payment().action == Payment.CAPTURE  # still owed
    # Restarted, and killed again right after its first void.
    crash(clean_database, cycle, "cancel", 1)
    unrecorded = [p for p in short if p.intent().status == CANCELED]
    assert [p.payment().status for p in unrecorded] == [Payment.AUTHORIZED]
    restart(cycle, lambda: all(p.payment().action is None for p in everyone))

    # Refunds, with a kill right after the first one is made.
    refunds = [
        cycle.request_refund(served[0].merchant_id, served[0].order_id, None, False, "cold"),
        cycle.request_refund(served[1].merchant_id, served[1].order_id, 500, False, "late"),
    ]
    crash(clean_database, cycle, "refund", 1)
    assert served[0].intent().amount_refunded == 1250  # made at the provider...
    assert refund_of(refunds[0].id).status == Refund.REQUESTED  # ...not recorded
    restart(cycle, lambda: all(refund_of(r.id).status != Refund.REQUESTED for r in refunds))

    figures = tally(everyone, refunds)
    report(
        "payments: settler SIGKILLed after a capture, a void and a refund",
        backend="PostgreSQL" if REAL_DATABASE else "SQLite",
        kills=3,
        **figures,
    )
    assert figures == {
        "sent": 10,
        "charged": 8,
        "captured": 8,
        "voided": 2,
        "refunded": 2,
        "lost": 0,
        "doubled": 0,
    }
    assert [p.payment().status for p in served[:2]] == ["refunded", "partially_refunded"]
    assert (served[0].intent().amount_refunded, served[1].intent().amount_refunded) == (1250, 500)
    for p in served:
        assert (p.requests("capture"), p.intent().amount_received) == (1, p.amount)
    for p in short:
        assert (p.requests("capture"), p.requests("cancel")) == (0, 1)
        assert (p.intent().status, p.intent().amount_received) == (CANCELED, 0)


def refund_of(refund_id: int) -> Refund:
    with session():
        found: Refund = Refund.get_by_id(refund_id)
        return found


def tally(paid: list[Paid], refunds: list[Refund]) -> dict[str, int]:
    """What the provider did against what Kitchen recorded. Doubled: money taken, voided
    or refunded more than once (more than the amount, or two answers for one key)."""
    with session():
        intents = {i.intent_id: i for i in FakeIntent.select()}
        payments = {p.id: p for p in Payment.select()}
        keys = [r.key for r in FakeRequest.select()]
        done = {r.id: r for r in Refund.select()}
    rows = [(payments[p.payment_id], intents[p.intent_id]) for p in paid]
    ended = (Payment.CAPTURED, Payment.PARTIALLY_REFUNDED, Payment.REFUNDED, Payment.VOIDED)
    asked = {r.payment_id: 0 for r in refunds}
    for r in refunds:
        asked[r.payment_id] += r.amount
    return {
        "sent": len(paid),
        "charged": sum(1 for _, i in rows if i.amount_received > 0),
        "captured": sum(1 for p, _ in rows if p.captured_amount > 0),
        "voided": sum(1 for p, i in rows if p.status == Payment.VOIDED and i.status == CANCELED),
        "refunded": sum(1 for r in refunds if done[r.id].status == Refund.SUCCEEDED),
        "lost": sum(1 for p, _ in rows if p.status not in ended or p.action is not None),
        "doubled": sum(
            1
            for p, i in rows
            if i.amount_received > p.amount or i.amount_refunded > asked.get(p.id, 0)
        )
        + len(keys)
        - len(set(keys)),
    }
