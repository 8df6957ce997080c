"""Helpers shared by the tests: real servers, polling, reading a topic.

Fixtures live in `conftest.py`; this is a plain module that tests import.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import email
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from email.message import Message as EmailMessage
from fractions import Fraction
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import httpx
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from confluent_kafka import Consumer, KafkaException, TopicPartition
from starlette.applications import Starlette
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import inventory, usage
from kitchen.db import session, transaction, utcnow
from kitchen.models import Alert, Ingredient, LedgerEntry, Order
from kitchen.providers import Provider
from kitchen.seed import BURGER, REFERENCE_STOCK, seed

REAL_DATABASE = os.environ.get("KITCHEN_TEST_DATABASE_URL", "")
REAL_KAFKA = os.environ.get("KITCHEN_TEST_KAFKA", "")

# What `seed.seed` is given besides the merchant: the settings' defaults. Its ingredients
# start at their par level, so no alert fires and no NOTIFY is written.
SEED_RULES = inventory.AlertRules(Fraction(1, 2), "notify")


def lost_alert(kitchen: Kitchen) -> Alert:
    """An onion alert raised long ago whose NOTIFY never reached the notification role
    (the reference kitchen is seeded first, if it is not there yet)."""
    seed(kitchen.merchant_id, SEED_RULES)
    with session():
        onion = Ingredient.get(Ingredient.name == "onion")
        alert: Alert = Alert.create(
            merchant=kitchen.merchant_id,
            ingredient=onion.id,
            email="chef@example.com",
            stock=480,
            full_stock=1000,
            threshold="1/2",
            emitted_at=utcnow() - datetime.timedelta(minutes=5),
        )
    return alert


# Grams of the reference kitchen left after `burgers` burgers.
def stock_after(burgers: int, stock: dict[str, int] = REFERENCE_STOCK) -> dict[str, int]:
    return {name: stock[name] - burgers * grams for name, grams in BURGER.items()}


@dataclasses.dataclass(frozen=True)
class Seeded:
    """The ids of the reference kitchen, from the seed's answer: tests name rows by these,
    never by a number that holds only while id sequences start fresh."""

    burger: int
    beef: int
    cheese: int
    onion: int

    @classmethod
    def from_answer(cls, answer: dict[str, Any]) -> Seeded:
        ids = {row["name"].lower(): row["id"] for row in answer["products"] + answer["ingredients"]}
        return cls(ids["burger"], ids["beef"], ids["cheese"], ids["onion"])

    def order(self, burgers: int) -> dict[str, Any]:
        """The body of an order for `burgers` burgers."""
        return {"products": [{"product_id": self.burger, "quantity": burgers}]}


def seed_reference(api: TestClient | httpx.Client, status: int = 201) -> Seeded:
    """POST /order/seed (201: created; 200: it was there) and the ids it answers."""
    r = api.post("/order/seed")
    assert r.status_code == status, r.text
    return Seeded.from_answer(r.json())


def client(
    kitchen: Kitchen, key: str | None = None, provider: Provider | None = None
) -> TestClient:
    """An HTTP client of `kitchen`'s app, as the merchant whose key is `key` (none: keyless);
    `provider`: a payment provider in place of the settings' (one that fails, say)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return TestClient(kitchen.web_app(provider), headers=headers)


def burgers(api: TestClient, quantity: int, applied: bool = False) -> dict[str, Any]:
    """Order `quantity` of the caller's Burger (found by name): 201, the order; with
    `applied`, once processing has applied it."""
    [burger] = [p for p in api.get("/products").json() if p["name"] == "Burger"]
    r = api.post("/order", json={"products": [{"product_id": burger["id"], "quantity": quantity}]})
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    if applied:
        eventually(lambda: api.get(f"/order/{order['id']}").json()["status"] == "applied")
    return order


def raise_onion_alert(kitchen: Kitchen) -> Seeded:
    """Seed `kitchen` and order 26 burgers: onion falls to 480 g of 1,000, below half,
    so one alert (and one mail) follows."""
    with TestClient(kitchen.web_app()) as api:
        seeded = seed_reference(api)
        assert api.post("/order", json=seeded.order(26)).status_code == 201
    return seeded


def onion() -> Ingredient:
    """The reference kitchen's onion row as stored now (the only merchant's)."""
    with session():
        return Ingredient.get(Ingredient.name == "onion")


def stock_of(ingredient_id: int) -> int:
    """An ingredient's stock as stored now, in its unit."""
    with session():
        found: int = Ingredient.get_by_id(ingredient_id).stock
        return found


def ledger_of(ingredient_id: int) -> list[LedgerEntry]:
    """An ingredient's ledger rows as stored now, newest first."""
    with session():
        rows = LedgerEntry.select().where(LedgerEntry.ingredient == ingredient_id)
        return list(rows.order_by(LedgerEntry.id.desc()))


def history(
    ingredient_id: int, hourly: Mapping[datetime.datetime, int], reason: str = LedgerEntry.ORDER
) -> None:
    """Write an ingredient's past, as the ledger would have it: for each naive UTC hour
    given, one ledger row taking that amount (`reason` order: a use; give a negative
    amount for a restock or a refund's give-back, with that reason) at half past, and
    its hourly sum. The stock changes by the total, so that it stays the sum of its
    ledger. This is the tests' clock: weeks of history in one transaction, no sleeping."""
    with transaction():
        row = Ingredient.get_by_id(ingredient_id)
        stock = row.stock
        entries = []
        for hour, amount in sorted(hourly.items()):
            at = hour + datetime.timedelta(minutes=30)
            stock -= amount
            LedgerEntry.create(
                merchant=row.merchant_id,
                ingredient=row.id,
                grams=-amount,
                reason=reason,
                stock_after=stock,
                created_at=at,
            )
            entries.append(usage.Entry(row.merchant_id, row.id, reason, -amount, at))
        usage.count_ledger(entries)
        Ingredient.update(stock=stock).where(Ingredient.id == row.id).execute()


def hours_back(
    now: datetime.datetime, hours: int, amount: Callable[[datetime.datetime], int]
) -> dict[datetime.datetime, int]:
    """The `hours` whole UTC hours before `now` (naive), each with `amount(hour)`."""
    top = now.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    return {
        top - datetime.timedelta(hours=h): amount(top - datetime.timedelta(hours=h))
        for h in range(1, hours + 1)
    }


def no_order_pending() -> bool:
    """Whether processing has settled every order (applied or rejected)."""
    with session():
        return not Order.select().where(Order.status == Order.PENDING).exists()


def run_to_end(command: list[str], cwd: Path, env: dict[str, str]) -> CompletedProcess[str]:
    """`command` (e.g. python app.py merchant create ...) run to its end, as a user would
    in a terminal; its exit code and its output as text."""
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def is_up(base: str) -> bool:
    """Whether a Kitchen process at `base` answers its health check yet."""
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    assert value, f"condition not met within {timeout} s (last value {value!r})"
    return value


async def eventually_async(
    check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01
) -> Any:
    """`eventually` inside an event loop: the loop's other tasks run while it waits."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        value = check()
    assert value, f"condition not met within {timeout} s (last value {value!r})"
    return value


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Serve `app` with a real uvicorn server in a thread (TestClient never opens a
    socket, so it cannot show what a client sees on the wire); yields the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started, timeout=10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class Inbox:
    """What the SMTP server received, parsed, and how it answers."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []  # each message's envelope (RCPT TO)
        self.logins: list[str] = []  # AUTH attempts that reached the server
        self.ehlos = 0  # EHLO commands: sessions a client opened (twice with STARTTLS)
        self.rcpt_attempts = 0  # RCPT commands, accepted or not
        self.data_attempts = 0  # DATA commands, accepted or not
        self.rcpt_reply = ""  # e.g. "550 5.1.1 no such user": refuse every recipient
        self.data_delay = 0.0  # seconds to think before answering DATA (a slow server)
        self.drop_on_data = False  # hang up on DATA without an answer

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self.rcpt_attempts += 1
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_attempts += 1
        if self.drop_on_data:
            server.transport.close()
            return "421 4.3.0 gone"  # never reaches the client: the line is down
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        self.logins.append(mechanism)
        return AuthResult(success=True)


class SmtpServer:
    """A real SMTP server (aiosmtpd) on `port`. With `tls`, it speaks STARTTLS (and
    refuses mail without it), or TLS from the first byte with `implicit_tls`; with
    `auth`, it wants a login before any mail."""

    def __init__(
        self,
        port: int,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        auth: bool = False,
    ) -> None:
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None
        self.options: dict[str, Any] = {}
        if tls is not None and implicit_tls:
            # The whole session is TLS: aiosmtpd's "AUTH needs STARTTLS" would forbid AUTH.
            self.options.update(ssl_context=tls, auth_require_tls=False)
        elif tls is not None:
            self.options.update(tls_context=tls, require_starttls=True)
        if auth:
            self.options.update(auth_required=True, authenticator=self.inbox.authenticate)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.inbox.messages

    def start(self) -> None:
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, **self.options
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@dataclasses.dataclass(frozen=True)
class Record:
    key: str | None
    value: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.value)


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 20.0) -> list[Record]:
    """Every record on `topic`, read by partition up to its end (no consumer group, so no
    rebalance wait). Waits up to `timeout` for at least `expect` records to be there."""
    # With nothing to wait for it would answer at once: "nothing arrived" needs a wait.
    assert expect > 0, "to check that nothing arrives, use assert_topic_stays_empty"
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "log.connection.close": False,
        }
    )
    try:
        deadline = time.monotonic() + timeout
        ranges: dict[int, tuple[int, int]] = {}
        while True:
            try:
                meta = consumer.list_topics(topic, timeout=10).topics[topic]
                ranges = {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    for p in (meta.partitions if meta.error is None else {})
                }
            except KafkaException:
                # A topic just created may not have its leaders yet (NOT_LEADER): ask again.
                if time.monotonic() > deadline:
                    raise
            if sum(hi - lo for lo, hi in ranges.values()) >= expect:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        todo = {p: (lo, hi) for p, (lo, hi) in ranges.items() if hi > lo}
        consumer.assign([TopicPartition(topic, p, lo) for p, (lo, _) in todo.items()])
        got: list[tuple[int, int, Record]] = []
        while todo:
            m = consumer.poll(10)
            assert m is not None, f"reading {topic} stalled"
            if m.error() is not None:
                continue
            p, offset = m.partition() or 0, m.offset() or 0
            raw_key, value = m.key(), m.value()
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            pairs: Any = m.headers() or []
            headers = {str(k): bytes(v or b"").decode() for k, v in pairs}
            got.append(
                (p, offset, Record(key, value if isinstance(value, bytes) else b"", headers))
            )
            if p in todo and offset + 1 >= todo[p][1]:
                del todo[p]
    finally:
        consumer.close()
    return [r for _, _, r in sorted(got, key=lambda g: (g[0], g[1]))]


def assert_topic_stays_empty(bootstrap: str, topic: str, seconds: float = 2.0) -> None:
    """Fail if any record is on `topic` or arrives there within `seconds` (waited in full
    when none does: a check at one instant would miss a late one)."""
    records = read_topic(bootstrap, topic, expect=1, timeout=seconds)
    assert records == [], f"{len(records)} record(s) on {topic}: {records[:3]}"
