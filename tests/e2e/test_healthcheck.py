"""The image's HEALTHCHECK probe (deploy/healthcheck.py) against real `python app.py`
processes: the api role is probed on its HTTP port, any other role on its operations port,
and a hung process is reported unhealthy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import eventually, free_port, is_up

ROOT = Path(__file__).resolve().parents[2]
PROBE = [sys.executable, str(ROOT / "deploy" / "healthcheck.py")]
Start = Callable[..., tuple[subprocess.Popen[str], dict[str, str]]]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    processes: list[subprocess.Popen[str]] = []

    def run(roles: str, **env: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
        environ.update(env, KITCHEN_DATABASE_URL=f"sqlite:///{tmp_path}/kitchen.db")
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--roles", roles],
            cwd=tmp_path,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        processes.append(proc)
        return proc, environ

    yield run
    for proc in processes:
        proc.send_signal(signal.SIGCONT)  # a stopped process ignores SIGTERM until then
        proc.terminate()
    for proc in processes:
        try:
            proc.wait(30)
        finally:
            proc.kill()


def probe(proc: subprocess.Popen[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROBE, str(proc.pid)], env=env, capture_output=True, text=True, timeout=30
    )


def test_a_processing_pod_is_probed_on_its_operations_port(start: Start) -> None:
    port = free_port()
    proc, env = start("processing", KITCHEN_METRICS_PORT=str(port))
    eventually(lambda: is_up(f"http://127.0.0.1:{port}"), timeout=30)
    assert probe(proc, env).returncode == 0

    proc.send_signal(signal.SIGSTOP)  # hung: alive, answering nothing
    hung = probe(proc, env)
    assert hung.returncode == 1
    assert hung.stdout.startswith("unhealthy: ")
    # Woken and stopped: SIGTERM after SIGSTOP/SIGCONT still ends it cleanly.
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    assert proc.wait(30) == 0


def test_the_api_role_is_probed_on_its_http_port(start: Start) -> None:
    port = free_port()
    proc, env = start("api", KITCHEN_HTTP_PORT=str(port))
    eventually(lambda: is_up(f"http://127.0.0.1:{port}"), timeout=30)
    assert probe(proc, env).returncode == 0
    # The same process probed on another port (nothing listens there): unhealthy.
    assert probe(proc, {**env, "KITCHEN_HTTP_PORT": str(free_port())}).returncode == 1


def test_a_pod_without_http_or_operations_port_has_nothing_to_probe(start: Start) -> None:
    proc, env = start("notification")
    assert probe(proc, env).returncode == 0
