"""Merchants: who owns a kitchen, their API keys, and their settings.

A merchant has named keys (a till, a screen: `ApiKey`), each revocable on its own; a key
is shown once, when it is made, and stored only as its hash (`hash_key`). In
development a request without a key acts as the default merchant; a wrong key is
refused everywhere.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import peewee as pw

from kitchen import inventory, views
from kitchen.commands import PatchMerchant
from kitchen.db import database, session, transaction, tuples, utcnow
from kitchen.errors import Conflict, NotFound
from kitchen.models import ApiKey, Merchant

log = logging.getLogger(__name__)

KEY_PREFIX = "kitchen_"


def new_key() -> str:
    """256 random bits; the prefix makes a leaked key easy to recognise (and to grep for)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """How an API key is stored and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who a request acts as: its merchant, and the name of its key (None without one)."""

    merchant_id: int
    key_id: int | None = None
    key_name: str | None = None


def create(name: str, alert_email: str) -> tuple[Merchant, str]:
    """A new merchant and its key named "primary" (returned once, never stored). Names
    need not be unique: ids identify merchants."""
    key = new_key()
    with transaction():
        merchant = Merchant.create(name=name, alert_email=alert_email)
        ApiKey.create(merchant=merchant.id, name=ApiKey.PRIMARY, key_hash=hash_key(key))
    return merchant, key


def ensure_default_merchant(alert_email: str) -> Merchant:
    """The default merchant (a keyless request acts as it in development), created with
    `alert_email` and no key if missing. Found by its mark, whatever it is called now.

    The setting only seeds the address: in a split deployment every process has its own
    copy of it, and the last one to start must not decide where alerts go.
    """
    with transaction():
        found: Merchant | None = Merchant.get_or_none(Merchant.is_default == True)  # noqa: E712
        if found is not None:
            return found
        try:
            with database.atomic():
                return Merchant.create(name="default", alert_email=alert_email, is_default=True)
        except pw.IntegrityError:  # another process made it meanwhile
            return Merchant.get(Merchant.is_default == True)  # noqa: E712


def all_merchants() -> list[Merchant]:
    with session():
        return list(Merchant.select().order_by(Merchant.id))


def _merchant(merchant_id: int) -> Merchant:
    found: Merchant | None = Merchant.get_or_none(Merchant.id == merchant_id)
    if found is None:
        raise NotFound("merchant", merchant_id)
    return found


def add_key(merchant_id: int, name: str) -> str:
    """A new key named `name` for the merchant, returned once; the name is unique among
    the merchant's keys."""
    key = new_key()
    taken = Conflict(f"merchant {merchant_id} has a key named {name!r} already")
    try:
        with transaction():
            _merchant(merchant_id)
            if ApiKey.get_or_none(ApiKey.merchant == merchant_id, ApiKey.name == name):
                raise taken
            ApiKey.create(merchant=merchant_id, name=name, key_hash=hash_key(key))
    except pw.IntegrityError:  # the same name added at the same moment elsewhere
        raise taken from None
    return key


def keys(merchant_id: int) -> list[ApiKey]:
    """The merchant's keys (names and times; the keys themselves are not stored)."""
    with session():
        _merchant(merchant_id)
        return list(ApiKey.select().where(ApiKey.merchant == merchant_id).order_by(ApiKey.id))


def revoke_key(merchant_id: int, name: str) -> None:
    """The key stops working at once in the database, and within `KnownKeys.TTL` seconds
    in running API processes. Orders keep the name of the key that placed them."""
    with transaction():
        _merchant(merchant_id)
        gone = ApiKey.delete().where(ApiKey.merchant == merchant_id, ApiKey.name == name).execute()
    if not gone:
        raise NotFound(f"key of merchant {merchant_id} named", repr(name))


def rotate_key(merchant_id: int) -> str:
    """A new value for the merchant's key named "primary" (made if it has none): the old
    one stops working at once in the database, and within `KnownKeys.TTL` seconds in
    running API processes. Its other named keys are left as they are."""
    key = new_key()
    with transaction():
        _merchant(merchant_id)
        ApiKey.delete().where(
            ApiKey.merchant == merchant_id, ApiKey.name == ApiKey.PRIMARY
        ).execute()
        ApiKey.create(merchant=merchant_id, name=ApiKey.PRIMARY, key_hash=hash_key(key))
    return key


class KeyUses:
    """When each key was last used, for `merchant key list`, without a write per request:
    a use is noted in memory (by KnownKeys, when it looks a key up in the database: at
    most once per key per TTL), and `flush`, a job of the api role every FLUSH_SECONDS,
    writes the noted times in one transaction, off the request path. So the database
    gets at most one write per used key a minute from each API process."""

    FLUSH_SECONDS = 60.0

    def __init__(self) -> None:
        self._used: dict[int, datetime.datetime] = {}  # key id -> last use, not yet written

    def note(self, key_id: int) -> None:
        self._used[key_id] = utcnow()

    def flush(self) -> None:
        """Write the uses noted since the last flush (a revoked key's go nowhere)."""
        used, self._used = self._used, {}
        if not used:
            return
        with transaction():
            for key_id, at in sorted(used.items()):
                ApiKey.update(last_used_at=at).where(
                    ApiKey.id == key_id,
                    ApiKey.last_used_at.is_null() | (ApiKey.last_used_at < at),
                ).execute()


class KnownKeys:
    """Keys this process found valid a moment ago, by hash, with who they act as.

    Looking the key up in the database on every request (a thread hop and a query) cost
    POST /order more than saving the order did. A key rotated or revoked elsewhere keeps
    working here for at most TTL seconds; an unknown key is never remembered, so a wrong
    key is asked of the database every time.
    """

    TTL = 2.0
    LIMIT = 10_000  # forget everything past this many keys: bounded whatever clients send

    def __init__(
        self, uses: KeyUses | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.uses = uses or KeyUses()
        self._clock = clock
        self._known: dict[str, tuple[Caller, float]] = {}

    def get(self, key: str) -> Caller | None:
        found = self._known.get(hash_key(key))
        if found is None or found[1] < self._clock():
            return None
        return found[0]

    def remember(self, key: str, caller: Caller) -> None:
        if len(self._known) >= self.LIMIT:
            self._known.clear()
        self._known[hash_key(key)] = (caller, self._clock() + self.TTL)
        if caller.key_id is not None:
            self.uses.note(caller.key_id)


def by_key(key: str) -> Caller | None:
    with session():
        found = tuples(
            ApiKey.select(ApiKey.merchant, ApiKey.id, ApiKey.name).where(
                ApiKey.key_hash == hash_key(key)
            )
        )
    if not found:
        return None
    merchant_id, key_id, name = found[0]
    return Caller(int(merchant_id), int(key_id), str(name))


def get(merchant_id: int, default: Fraction) -> dict[str, Any]:
    with session():
        return views.merchant(Merchant.get_by_id(merchant_id), default)


def update(merchant_id: int, change: PatchMerchant, rules: inventory.AlertRules) -> dict[str, Any]:
    """PATCH /merchant: name, alert_email, threshold, payments, currency, digest_hour,
    timezone. A new default
    threshold settles the alert of every ingredient that follows it, as a change of its
    own threshold would. Payments and currency apply to orders placed from then on: a
    payment keeps the currency it was opened in."""
    name, email, threshold = change.name, change.alert_email, change.threshold
    with transaction():
        merchant = Merchant.get_by_id(merchant_id)
        if name is not None:
            merchant.name = name
        if email is not None:
            merchant.alert_email = email
        if threshold is not None:
            merchant.threshold = str(threshold)
        if change.payments is not None:
            merchant.payments = change.payments
        if change.currency is not None:
            merchant.currency = change.currency
        if change.timezone is not None:
            merchant.timezone = change.timezone
        if change.no_digest:
            # Off: the days it was off are never "missed" once it is on again.
            merchant.digest_hour, merchant.digest_since = None, None
        elif change.digest_hour is not None:
            if merchant.digest_hour is None:
                merchant.digest_since = utcnow()  # digests due before now are not owed
            merchant.digest_hour = change.digest_hour
        merchant.save()
        if threshold is not None:
            inventory.settle_followers(merchant, rules)
        changed = [
            f
            for f, v in (
                ("name", name),
                ("alert_email", email),
                ("threshold", threshold),
                ("payments", change.payments),
                ("currency", change.currency),
                ("digest_hour", change.digest_hour if not change.no_digest else "off"),
                ("timezone", change.timezone),
            )
            if v is not None
        ]
        # Who changed where alerts go is worth a line: it names the key that acted (logs).
        if changed:
            log.info(
                "merchant %d changed its %s",
                merchant_id,
                ", ".join(changed),
                extra={"merchant_id": merchant_id},
            )
        return views.merchant(merchant, rules.default_threshold)
