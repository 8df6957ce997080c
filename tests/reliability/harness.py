"""Kitchen as a real process, clients that retry like real ones, and a load to count.

Used by the reliability tests, which kill, stop and starve Kitchen for real.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kitchen import db
from kitchen.db import session
from kitchen.models import Ingredient, Notification, Order
from tests import helpers
from tests.helpers import REAL_DATABASE, REAL_KAFKA, eventually, free_port

ROOT = Path(__file__).resolve().parents[2]


# Bigger than the reference kitchen, for loads of thousands of burgers: beef runs out
# after 2000, and beef and onion fall below 50 % on the way.
STOCK = {"beef": 300_000, "cheese": 150_000, "onion": 50_000}


def seed_large_stock(base: str, database_url: str) -> helpers.Seeded:
    """Seed through the API, then raise the stock to STOCK (as full, armed levels);
    returns the seeded ids."""
    with httpx.Client(base_url=base, timeout=30) as client:
        seeded = helpers.seed_reference(client)
    db.bind(database_url)
    with session():
        for name, grams in STOCK.items():
            Ingredient.update(stock=grams, full_stock=grams, alert_armed=True).where(
                Ingredient.name == name
            ).execute()
    return seeded


def mail_settled(alerts: int, timeout: float = 120) -> None:
    """Wait until `alerts` mails are recorded as sent and none is left to send. Only then
    can a test count the emails: a sender killed after the server took a mail but before
    it recorded that holds the row for mail.claim_seconds (24 s with stack_env's timeout),
    and its resend, a duplicate, arrives only after; once every row is recorded as sent,
    no sender takes one again, and a resend is recorded after the server has it."""

    def done() -> bool:
        with session():
            rows = list(Notification.select(Notification.sent_at, Notification.failed_at))
        return len(rows) >= alerts and all(
            n.sent_at is not None or n.failed_at is not None for n in rows
        )

    eventually(done, timeout=timeout, interval=0.5)


def settled_orders(timeout: float) -> dict[int, str]:
    """Wait until no order is pending; then every order's status, by id."""

    def statuses() -> dict[int, str] | None:
        with session():
            found = {o.id: o.status for o in Order.select()}
        return None if Order.PENDING in found.values() else found

    settled: dict[int, str] = eventually(statuses, timeout=timeout, interval=0.5)
    return settled


def stock_after(burgers: int) -> dict[str, int]:
    return helpers.stock_after(burgers, STOCK)


class KitchenProcess:
    """`python app.py` with its settings in environment variables, restartable on one port."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
        self.env = {**inherited, "KITCHEN_HTTP_PORT": str(self.port), **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = workdir / "kitchen.log"

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py")],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        eventually(self.ready, timeout=60, interval=0.1)

    def ready(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, f"Kitchen exited: see {self.log}\n{self.tail()}"
        try:
            return httpx.get(f"{self.base}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as in a power cut or an OOM kill."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 30) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def stack_env(tmp_path: Path, smtp_port: int, **extra: str) -> dict[str, str]:
    """Settings for a Kitchen process on this run's stack, with fast re-drive and retries."""
    run = uuid.uuid4().hex[:8]
    env = {
        "KITCHEN_DATABASE_URL": REAL_DATABASE or f"sqlite:///{tmp_path}/kitchen.db",
        "KITCHEN_KAFKA_BOOTSTRAP_SERVERS": REAL_KAFKA or "embedded",
        "KITCHEN_KAFKA_ORDER_CREATED_TOPIC": f"order_created-{run}",
        "KITCHEN_KAFKA_NOTIFY_TOPIC": f"notify-{run}",
        "KITCHEN_KAFKA_PROCESSING_GROUP": f"processing-{run}",
        "KITCHEN_KAFKA_NOTIFICATION_GROUP": f"notification-{run}",
        # A restarted process takes its partitions back at once (static membership).
        "KITCHEN_KAFKA_INSTANCE_ID": f"kitchen-{run}",
        "KITCHEN_MAIL_SMTP_HOST": "127.0.0.1",
        "KITCHEN_MAIL_SMTP_PORT": str(smtp_port),
        # A sender killed mid-send holds its mail for 3 x 3 + 14 s, then it is retried.
        "KITCHEN_MAIL_TIMEOUT_SECONDS": "3",
        "KITCHEN_SCHEDULER_REDRIVE_AFTER_SECONDS": "5",
        "KITCHEN_SCHEDULER_MAIL_RETRY_SECONDS": "1",
    }
    env.update(extra)
    return env


@dataclass
class Tally:
    """What the clients saw."""

    sent: int = 0
    acknowledged: dict[str, int] = field(default_factory=dict)  # idempotency key -> order id
    acknowledged_at: list[float] = field(default_factory=list)  # time.monotonic() of each 201
    quantities: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    statuses: dict[int, int] = field(default_factory=dict)  # every HTTP status seen
    server_errors: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # the body of every 4xx, to say why
    retry_after: set[str | None] = field(default_factory=set)  # Retry-After of every 503
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, status: int) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1


def place_orders(
    base: str,
    count: int,
    clients: int,
    product_id: int,
    tally: Tally,
    give_up_after: float = 120,
    pace: Callable[[], None] | None = None,
    api_key: str = "",
) -> None:
    """`count` orders from `clients` threads. Each client retries an order with the same
    Idempotency-Key until it gets a 201, as a till would: a lost answer never doubles an
    order, and an order is only counted once Kitchen acknowledged it. With `api_key`,
    for that merchant; without, for the default merchant."""
    keys = [f"till-{uuid.uuid4().hex}" for _ in range(count)]
    rng = random.Random(11)
    quantities = {k: rng.randint(1, 2) for k in keys}
    tally.quantities.update(quantities)
    todo = iter(keys)
    todo_lock = threading.Lock()
    auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def client() -> None:
        with httpx.Client(base_url=base, timeout=10) as http:
            while True:
                with todo_lock:
                    key = next(todo, None)
                if key is None:
                    return
                body: dict[str, Any] = {
                    "products": [{"product_id": product_id, "quantity": quantities[key]}]
                }
                deadline = time.monotonic() + give_up_after
                with tally.lock:
                    tally.sent += 1
                while time.monotonic() < deadline:
                    if pace is not None:
                        pace()
                    try:
                        r = http.post("/order", json=body, headers={"Idempotency-Key": key, **auth})
                    except httpx.TransportError:
                        status = 0
                    else:
                        status = r.status_code
                        tally.saw(status)
                        if status == 201:
                            with tally.lock:
                                tally.acknowledged[key] = r.json()["id"]
                                tally.acknowledged_at.append(time.monotonic())
                            break
                        if status == 503:
                            with tally.lock:
                                tally.retry_after.add(r.headers.get("retry-after"))
                        elif status >= 500:
                            tally.server_errors.append(r.text)
                        elif 400 <= status < 500:
                            with tally.lock:
                                tally.refusals.append(r.text)
                    with tally.lock:
                        tally.retries += 1
                    time.sleep(0.2 if status in (0, 503) else 0.05)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
