"""Merchants: who owns a kitchen, their API keys, and their settings.

A key is shown once, when it is made, and stored only as its hash (`db.hash_key`). In
development a request without a key acts as the default merchant; a wrong key is
refused everywhere.
"""

from __future__ import annotations

import secrets
import time
from fractions import Fraction
from typing import Any

from kitchen import inventory
from kitchen.db import Merchant, hash_key, session, transaction
from kitchen.validation import Body, Conflict, NotFound

KEY_PREFIX = "kitchen_"


def new_key() -> str:
    """256 random bits; the prefix makes a leaked key easy to recognise (and to grep for)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create(name: str, alert_email: str) -> tuple[Merchant, str]:
    """A new merchant and its API key (returned once, never stored)."""
    key = new_key()
    with transaction():
        if Merchant.get_or_none(Merchant.name == name) is not None:
            raise Conflict(f"a merchant named {name!r} exists already")
        merchant = Merchant.create(name=name, alert_email=alert_email, key_hash=hash_key(key))
    return merchant, key


def all_merchants() -> list[Merchant]:
    with session():
        return list(Merchant.select().order_by(Merchant.id))


def rotate_key(merchant_id: int) -> str:
    """A new key for the merchant; the old one stops working at once in the database, and
    within `KnownKeys.TTL` seconds in running API processes (which remember valid keys)."""
    key = new_key()
    with session():
        changed = (
            Merchant.update(key_hash=hash_key(key)).where(Merchant.id == merchant_id).execute()
        )
    if not changed:
        raise NotFound("merchant", merchant_id)
    return key


class KnownKeys:
    """Keys this process found valid a moment ago, by hash, with their merchant's id.

    Looking the key up in the database on every request (a thread hop and a query) cost
    POST /order more than saving the order did. A key rotated or revoked elsewhere keeps
    working here for at most TTL seconds; an unknown key is never remembered, so a wrong
    key is asked of the database every time.
    """

    TTL = 2.0
    LIMIT = 10_000  # forget everything past this many keys: bounded whatever clients send

    def __init__(self) -> None:
        self._known: dict[str, tuple[int, float]] = {}

    def get(self, key: str) -> int | None:
        found = self._known.get(hash_key(key))
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def remember(self, key: str, merchant_id: int) -> None:
        if len(self._known) >= self.LIMIT:
            self._known.clear()
        self._known[hash_key(key)] = (merchant_id, time.monotonic() + self.TTL)


def by_key(key: str) -> Merchant | None:
    with session():
        found: Merchant | None = Merchant.get_or_none(Merchant.key_hash == hash_key(key))
        return found


def view(merchant: Merchant, default: Fraction) -> dict[str, Any]:
    return {
        "id": merchant.id,
        "name": merchant.name,
        "alert_email": merchant.alert_email,
        "threshold": float(Fraction(merchant.threshold or default)),
    }


def get(merchant_id: int, default: Fraction) -> dict[str, Any]:
    with session():
        return view(Merchant.get_by_id(merchant_id), default)


def update(merchant_id: int, data: Any, rules: inventory.AlertRules) -> dict[str, Any]:
    """PATCH /merchant: name, alert_email, threshold. A new default threshold settles the
    alert of every ingredient that follows it, as a change of its own threshold would."""
    body = Body(data, {"name", "alert_email", "threshold"})
    name = body.text("name", required=False)
    email = body.email("alert_email", required=False)
    threshold = body.fraction("threshold")
    body.check()
    with transaction():
        merchant = Merchant.get_by_id(merchant_id)
        if name is not None and name != merchant.name:
            if Merchant.get_or_none(Merchant.name == name) is not None:
                raise Conflict(f"a merchant named {name!r} exists already")
            merchant.name = name
        if email is not None:
            merchant.alert_email = email
        if threshold is not None:
            merchant.threshold = str(threshold)
        merchant.save()
        if threshold is not None:
            inventory.settle_followers(merchant, rules)
        return view(merchant, rules.default_threshold)
