"""The events Kitchen writes to Kafka: the public contract, one typed value each.

Each event has one way to be written (`encode`) and one way to be read (`decode`). An
event that cannot be read raises `UnusableEvent`: no retry can cure it, so the consumer
parks it on the dead-letter topic. Who writes, reads and re-drives each event:

| event        | topic           | written by                            | read by       |
| ------------ | --------------- | ------------------------------------- | ------------- |
| OrderCreated | `order_created` | orders.place_orders / orders.redrive  | processing    |
| Notify       | `notify`        | alerts.raise_alert / alerts.redrive   | notifications |
| OrderEvent   | `order_events`  | processing, payments, webhooks        | payment_worker|

Both are keyed by merchant id, so one merchant's events stay in order on one partition.
Fields may be added to an event; none is removed or changes meaning.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kitchen.domain import is_id


class UnusableEvent(ValueError):
    """An event no retry can cure: malformed, or naming something that does not exist."""


def decode_json(raw: bytes | None) -> Any:
    """JSON from bytes, or ValueError with a short reason (bad JSON, bad UTF-8, too deep)."""
    try:
        return json.loads(raw or b"")
    except RecursionError:
        # Nesting deeper than the parser's stack: not JSON anyone meant to send.
        raise ValueError("nested too deeply") from None
    except ValueError as exc:
        # JSONDecodeError, bad UTF-8, integers of over 4300 digits.
        raise ValueError(f"not valid JSON ({exc})") from None


def _object(raw: bytes | None, name: str) -> dict[str, Any]:
    try:
        payload = decode_json(raw)
    except ValueError as exc:
        raise UnusableEvent(f"bad {name}: {exc}") from None
    if not isinstance(payload, dict):
        raise UnusableEvent(f"bad {name}: not a JSON object")
    return payload


# One encoder for every event: json.dumps given separators builds a new one per call, a
# third of the cost of encoding an event (processing encodes one per order).
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _encode(payload: dict[str, Any]) -> str:
    return _ENCODER.encode(payload)


@dataclass(frozen=True)
class OrderCreated:
    """ORDER_CREATED: an order was saved and waits to be applied to the stock.

    The public contract is `{"id": <order id>}`. Kitchen adds the order's `merchant_id`,
    so that processing reads the order from its merchant's partition alone; an event
    without it (or with one of the wrong type) is still served: the order is looked up.
    """

    NAME = "ORDER_CREATED"
    id: int  # the order's id
    merchant_id: int | None = None

    def encode(self) -> str:
        return _encode({"id": self.id, "merchant_id": self.merchant_id})

    @classmethod
    def decode(cls, raw: bytes | None) -> OrderCreated:
        payload = _object(raw, cls.NAME)
        if not is_id(payload.get("id")):
            raise UnusableEvent(f"bad {cls.NAME}: id must be a positive integer")
        merchant_id = payload.get("merchant_id")
        return cls(payload["id"], merchant_id if is_id(merchant_id) else None)


@dataclass(frozen=True)
class Notify:
    """NOTIFY: an ingredient fell below its threshold; mail the merchant.

    The public contract is `{"id": <ingredient id>, "email": ...}`. Kitchen adds the
    alert's id (what makes one email per alert) and the figures for the mail. A producer
    that speaks only the bare contract is still served; extras of the wrong type are
    dropped, since the database holds the truth. `email` is informative only: the mail
    goes to the alert's address, or for a bare event to the ingredient's merchant.
    """

    NAME = "NOTIFY"
    ingredient_id: int
    email: str
    alert_id: int | None = None
    merchant_id: int | None = None
    ingredient: str | None = None
    stock: int | None = None
    full_stock: int | None = None
    threshold: float | None = None

    def encode(self) -> str:
        return _encode(
            {
                "id": self.ingredient_id,
                "email": self.email,
                "alert_id": self.alert_id,
                "merchant_id": self.merchant_id,
                "ingredient": self.ingredient,
                "stock": self.stock,
                "full_stock": self.full_stock,
                "threshold": self.threshold,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | None) -> Notify:
        payload = _object(raw, cls.NAME)
        ingredient_id, email, alert_id = (
            payload.get("id"),
            payload.get("email"),
            payload.get("alert_id"),
        )
        # With an alert id the address that counts is the alert's, checked when mailing: a
        # bad one ends as a failed mail, not as an event re-driven for ever.
        if (
            not is_id(ingredient_id)
            or not isinstance(email, str)
            or (alert_id is None and "@" not in email)
        ):
            raise UnusableEvent(f"bad {cls.NAME}: needs an integer id and an email address")
        if alert_id is not None and not is_id(alert_id):
            raise UnusableEvent(f"bad {cls.NAME}: alert_id must be a positive integer")

        def typed(key: str, kind: type) -> Any:
            value = payload.get(key)
            return value if type(value) is kind else None

        return cls(
            ingredient_id,
            email,
            alert_id=alert_id,
            merchant_id=payload["merchant_id"] if is_id(payload.get("merchant_id")) else None,
            ingredient=typed("ingredient", str),
            stock=typed("stock", int),
            full_stock=typed("full_stock", int),
            threshold=typed("threshold", float),
        )


@dataclass(frozen=True)
class OrderEvent:
    """What happened to an order, on `order_events`: `{"type", "id": <order id>,
    "merchant_id", ...}` with the fields of its kind (amount, currency, reason, ...).

    Types: ORDER_APPLIED and ORDER_REJECTED (processing, for every merchant),
    PAYMENT_AUTHORIZED, ORDER_PAID, PAYMENT_VOIDED, PAYMENT_FAILED, ORDER_CANCELLED and
    ORDER_REFUNDED (the payment cycle, kitchen/payments.py). A reader ignores types it
    does not know: more may come.
    """

    APPLIED, REJECTED = "ORDER_APPLIED", "ORDER_REJECTED"
    AUTHORIZED, PAID = "PAYMENT_AUTHORIZED", "ORDER_PAID"
    VOIDED, FAILED = "PAYMENT_VOIDED", "PAYMENT_FAILED"
    CANCELLED, REFUNDED = "ORDER_CANCELLED", "ORDER_REFUNDED"
    TYPES = (APPLIED, REJECTED, AUTHORIZED, PAID, VOIDED, FAILED, CANCELLED, REFUNDED)
    NAME = "order event"

    type: str
    id: int  # the order's id
    merchant_id: int
    # Fields of the kind: amount, currency, reason, refunded_amount, payment_status.
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def encode(self) -> str:
        return _encode(
            {"type": self.type, "id": self.id, "merchant_id": self.merchant_id, **self.details}
        )

    @staticmethod
    def applied(order_id: int, merchant_id: int) -> str:
        """ORDER_APPLIED of an order, encoded: the same text as encode() makes, formatted
        rather than built as JSON, since processing writes one per order it applies
        (encoding each cost as much as the rest of announcing a batch, measured)."""
        return f'{{"type":"ORDER_APPLIED","id":{int(order_id)},"merchant_id":{int(merchant_id)}}}'

    @classmethod
    def decode(cls, raw: bytes | None) -> OrderEvent:
        payload = _object(raw, cls.NAME)
        kind, order_id, merchant_id = (
            payload.get("type"),
            payload.get("id"),
            payload.get("merchant_id"),
        )
        if not isinstance(kind, str) or not is_id(order_id) or not is_id(merchant_id):
            raise UnusableEvent(
                f"bad {cls.NAME}: needs a type, an order id and a merchant_id (integers)"
            )
        details = {k: v for k, v in payload.items() if k not in ("type", "id", "merchant_id")}
        return cls(kind, order_id, merchant_id, details)


E = TypeVar("E")


@dataclass(frozen=True)
class Received(Generic[E]):
    """An event as a handler receives it: the value, and where it was read from
    (`cluster/topic-partition-offset`, made by `kafka.source`), which names one record."""

    event: E
    source: str
    key: bytes | None = None  # the record's key: Kitchen's events are keyed by merchant id

    @property
    def merchant_key(self) -> int | None:
        """The merchant id the key names, if it names one."""
        text = (self.key or b"").decode("ascii", "replace")
        if not (text.isdigit() and len(text) <= 19):
            return None
        return int(text) if is_id(int(text)) else None


# A handler takes a batch of received events and returns those it could not use, with the
# reason (an order id that names no order, say): the consumer dead-letters them.
Handler = Callable[[list[Received[E]]], list[tuple[Received[E], str]]]
