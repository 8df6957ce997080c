"""Kitchen started while Kafka is down: it takes orders at once, the consumers wait without
dying, and everything catches up when the broker first answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import eventually, free_port, seed_reference
from tests.reliability.harness import ROOT, KitchenProcess


def start_without_http(workdir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    workdir.mkdir(exist_ok=True)
    with open(workdir / "kitchen.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--roles", "processing,notification,payments"],
            cwd=workdir,
            env={k: v for k, v in env.items() if k != "KITCHEN_HTTP_PORT"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def kitchen_env(tmp_path: Path, database_url: str, kafka_port: int) -> dict[str, str]:
    """Roles api and relay (`start_without_http` runs the others)."""
    return {
        "KITCHEN_ROLES_PROCESSING": "false",
        "KITCHEN_ROLES_NOTIFICATION": "false",
        "KITCHEN_ROLES_PAYMENTS": "false",
        "KITCHEN_DATABASE_URL": database_url,
        "KITCHEN_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",  # nothing listens
        "KITCHEN_MAIL_FOLDER": str(tmp_path / "mail"),
        "KITCHEN_SCHEDULER_REDRIVE_AFTER_SECONDS": "3600",  # the relay alone must publish
    }


def test_orders_are_taken_while_kafka_has_never_answered(
    tmp_path: Path, clean_database: str
) -> None:
    api = KitchenProcess(tmp_path, kitchen_env(tmp_path, clean_database, free_port()))
    consumers = start_without_http(tmp_path / "consumers", api.env)
    started = time.monotonic()
    try:
        api.start()  # waits for /health
        assert time.monotonic() - started < 10
        with httpx.Client(base_url=api.base, timeout=10) as c:
            seeded = seed_reference(c)
        order = httpx.post(f"{api.base}/order", json=seeded.order(1), timeout=10)
        assert order.status_code == 201 and order.json()["status"] == "pending"

        ready = httpx.get(f"{api.base}/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["roles"] == {"relay": False}
        time.sleep(6)  # more than one failed attempt to reach the broker
        assert consumers.poll() is None, (tmp_path / "consumers" / "kitchen.log").read_text()
        assert api.proc is not None and api.proc.poll() is None
        assert "Kafka broker unreachable at 127.0.0.1:" in api.log.read_text()
        assert "Traceback" not in api.log.read_text()
    finally:
        api.stop()
        consumers.kill()
        consumers.wait()


@pytest.mark.skipif(shutil.which("java") is None, reason="needs Java for tools/kafka/run")
def test_everything_catches_up_when_the_broker_first_answers(
    tmp_path: Path, clean_database: str
) -> None:
    kafka_port = free_port()
    api = KitchenProcess(tmp_path, kitchen_env(tmp_path, clean_database, kafka_port))
    consumers = start_without_http(tmp_path / "consumers", api.env)
    broker = [str(ROOT / "tools/kafka/run"), "--dir", str(tmp_path / "kafka")]
    try:
        api.start()
        with httpx.Client(base_url=api.base, timeout=10) as c:
            seeded = seed_reference(c)
        order = httpx.post(f"{api.base}/order", json=seeded.order(1), timeout=10)
        assert order.status_code == 201
        order_id = order.json()["id"]
        time.sleep(3)

        subprocess.run(
            [broker[0], "start", *broker[1:], "--port", str(kafka_port)],
            check=True,
            capture_output=True,
            env={**os.environ, "KAFKA_OPTS": "-XX:TieredStopAtLevel=1"},
            timeout=180,
        )

        def status() -> str:
            return str(httpx.get(f"{api.base}/order/{order_id}", timeout=10).json()["status"])

        eventually(lambda: status() == "applied", timeout=120, interval=0.5)
        eventually(lambda: httpx.get(f"{api.base}/ready", timeout=10).status_code == 200)
        assert consumers.poll() is None
    finally:
        api.stop()
        consumers.kill()
        consumers.wait()
        subprocess.run([broker[0], "stop", *broker[1:], "--clean"], capture_output=True)
