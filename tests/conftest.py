"""Test harness: Kitchen in-process against real parts.

- Database: a fresh SQLite file per test, or PostgreSQL when KITCHEN_TEST_DATABASE_URL
  is set (every table is dropped and created again per test).
- Kafka: Kitchen's embedded mock cluster, or a real broker when KITCHEN_TEST_KAFKA holds
  its bootstrap servers (every test gets topics of its own).
- Mail: a real SMTP server (aiosmtpd) on a free local port.
"""

from __future__ import annotations

import dataclasses
import email
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import Message as EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from confluent_kafka import Consumer, KafkaException, TopicPartition
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import db
from kitchen import settings as config

REAL_DATABASE = os.environ.get("KITCHEN_TEST_DATABASE_URL", "")
REAL_KAFKA = os.environ.get("KITCHEN_TEST_KAFKA", "")


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


class Inbox:
    """What the SMTP server received, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        return self.inbox.messages

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


def database_url(tmp_path: Any) -> str:
    if REAL_DATABASE:
        return REAL_DATABASE
    return f"sqlite:///{tmp_path}/kitchen.db"


@pytest.fixture
def clean_database(tmp_path: Any) -> str:
    url = database_url(tmp_path)
    if REAL_DATABASE:
        database = db.open_database(url)
        with database.bind_ctx(db.TABLES), database.connection_context():
            database.drop_tables(db.TABLES, safe=True, cascade=True)
        database.close_all()  # type: ignore[attr-defined]
    return url


@pytest.fixture
def test_settings(clean_database: str, smtp: SmtpServer, tmp_path: Any) -> config.Settings:
    """Settings of one test: its own database, topics, consumer groups and SMTP server."""
    run = uuid.uuid4().hex[:8]
    return config.load(
        path=None,
        env={},
        overrides={
            "database": {"url": clean_database},
            "kafka": {
                "bootstrap_servers": REAL_KAFKA or "embedded",
                "order_created_topic": f"order_created-{run}" if REAL_KAFKA else "order_created",
                "notify_topic": f"notify-{run}" if REAL_KAFKA else "notify",
                "processing_group": f"processing-{run}",
                "notification_group": f"notification-{run}",
            },
            "mail": {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "folder": str(tmp_path)},
            "scheduler": {"redrive_after_seconds": 30, "mail_retry_seconds": 1},
        },
    )


@pytest.fixture
def make_kitchen(test_settings: config.Settings) -> Iterator[Callable[..., Kitchen]]:
    """Start Kitchens for this test (several share its database and Kafka); stop them after."""
    started: list[Kitchen] = []

    def make(roles: str | None = None, **sections: dict[str, Any]) -> Kitchen:
        s = test_settings
        if roles is not None:
            s = config.with_roles(s, roles)
        for name, values in sections.items():
            s = dataclasses.replace(s, **{name: dataclasses.replace(getattr(s, name), **values)})
        if started and s.kafka.embedded:
            # A second Kitchen joins the first one's embedded cluster.
            s = dataclasses.replace(
                s,
                kafka=dataclasses.replace(s.kafka, bootstrap_servers=started[0].bootstrap_servers),
            )
        kitchen = Kitchen(s).start()
        started.append(kitchen)
        return kitchen

    yield make
    for kitchen in reversed(started):
        kitchen.stop()


@pytest.fixture
def kitchen(make_kitchen: Callable[..., Kitchen]) -> Kitchen:
    return make_kitchen()


@pytest.fixture
def api(kitchen: Kitchen) -> Iterator[TestClient]:
    """HTTP client of an all-roles Kitchen with the reference kitchen seeded."""
    with TestClient(kitchen.web_app()) as c:
        assert c.post("/order/seed").status_code == 201
        yield c


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
