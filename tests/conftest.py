"""Test harness: Kitchen in-process against real parts.

- Database: a fresh SQLite file per test, or PostgreSQL when KITCHEN_TEST_DATABASE_URL
  is set (every table is dropped and created again per test).
- Kafka: Kitchen's embedded mock cluster, or a real broker when KITCHEN_TEST_KAFKA holds
  its bootstrap servers (every test gets topics of its own).
- Mail: a real SMTP server (aiosmtpd) on a free local port.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import db, migrations, models
from kitchen import settings as config
from kitchen.kafka import EmbeddedKafka
from tests.helpers import REAL_DATABASE, REAL_KAFKA, Seeded, SmtpServer, free_port, seed_reference
from tests.localstripe import Localstripe
from tests.localstripe import running as localstripe_running


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
    """This test's own empty database, bound: a test never relies on an earlier one."""
    url = database_url(tmp_path)
    if REAL_DATABASE:
        database = db.open_database(url)
        with database.bind_ctx(models.TABLES), database.connection_context():
            database.drop_tables(models.TABLES, safe=True, cascade=True)
        database.close_all()  # type: ignore[attr-defined]
    db.bind(url)
    migrations.upgrade()
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
                "order_events_topic": f"order_events-{run}" if REAL_KAFKA else "order_events",
                "processing_group": f"processing-{run}",
                "notification_group": f"notification-{run}",
                "payments_group": f"payments-{run}",
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
        # On a real broker the roles start in the background, once the topics exist;
        # tests begin with them running.
        assert kitchen.kafka_roles_started.wait(60), "Kafka roles did not start"
        return kitchen

    yield make
    for kitchen in reversed(started):
        kitchen.stop()


@pytest.fixture
def kitchen(make_kitchen: Callable[..., Kitchen]) -> Kitchen:
    return make_kitchen()


@pytest.fixture
def seeded_api(kitchen: Kitchen) -> Iterator[tuple[TestClient, Seeded]]:
    with TestClient(kitchen.web_app()) as c:
        yield c, seed_reference(c)


@pytest.fixture
def api(seeded_api: tuple[TestClient, Seeded]) -> TestClient:
    """HTTP client of an all-roles Kitchen with the reference kitchen seeded."""
    return seeded_api[0]


@pytest.fixture
def seeded(seeded_api: tuple[TestClient, Seeded]) -> Seeded:
    """The ids of the reference kitchen that `api` seeded."""
    return seeded_api[1]


@pytest.fixture
def bootstrap() -> Iterator[str]:
    """A Kafka to talk to directly: the real broker, or an embedded cluster of its own."""
    if REAL_KAFKA:
        yield REAL_KAFKA
        return
    cluster = EmbeddedKafka()
    yield cluster.bootstrap_servers
    cluster.close()


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localstripe]:
    """localstripe (the Stripe emulator, tests/localstripe.py) on a free local port, one
    for the session: every test makes intents of its own."""
    with localstripe_running(tmp_path_factory.mktemp("localstripe")) as emulator:
        yield emulator


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """With KITCHEN_TEST_SKIPPED set (as .ci/run does), write there the id of every test
    skipped, one a line: CI compares them with the skips it expects (.ci/expected-skips),
    so that a test cannot start skipping silently."""
    path = os.environ.get("KITCHEN_TEST_SKIPPED", "")
    if path:
        skipped = sorted({report.nodeid for report in terminalreporter.stats.get("skipped", [])})
        Path(path).write_text("".join(f"{nodeid}\n" for nodeid in skipped))
