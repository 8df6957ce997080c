"""`[metrics] port`: every process is scraped, whatever its roles. `python app.py --roles
processing` (a pod without the api role) serves /metrics, /health and /ready on its
operations port, over real HTTP, with the scrape token of the HTTP port's /metrics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from app import Kitchen
from tests.helpers import eventually, free_port, run_to_end

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-token-0123456789abcdef"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


class Process:
    """`python app.py ARGS` with a settings file of its own, as an operator starts a pod
    (`{port}` in an environment value: its metrics port)."""

    def __init__(self, tmp_path: Path, database_url: str, args: list[str], **env: str) -> None:
        self.port = free_port()
        workdir = tmp_path / f"p{self.port}"
        workdir.mkdir()
        settings = workdir / "settings.toml"
        settings.write_text(
            f'[database]\nurl = "{database_url}"\n\n'
            f'[mail]\nfolder = "{workdir / "mail"}"\n\n'
            f"[metrics]\nport = {self.port}\n"
        )
        environment = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
        environment.update({k: v.format(port=self.port) for k, v in env.items()})
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--settings", str(settings), *args],
            cwd=workdir,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers=headers, timeout=10)

    def answers(self) -> bool:
        assert self.proc.poll() is None, self.output()
        try:
            return self.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def output(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.communicate(timeout=30)[0]


@pytest.fixture
def start(clean_database: str, tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start app.py processes on this test's database; killed at the end if still up."""
    started: list[Process] = []

    def make(*args: str, **env: str) -> Process:
        process = Process(tmp_path, clean_database, list(args), **env)
        started.append(process)
        eventually(process.answers, timeout=60)
        return process

    yield make
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.communicate(timeout=30)


def stops_cleanly(process: Process) -> None:
    """SIGTERM ends the process, operations server and all: exit 0, the port free again."""
    process.proc.send_signal(signal.SIGTERM)
    assert process.proc.wait(30) == 0, process.output()
    with socket.socket() as s:
        s.bind(("127.0.0.1", process.port))


def test_a_processing_pod_is_scraped_on_its_metrics_port(
    start: Callable[..., Process],
) -> None:
    pod = start("--roles", "processing", KITCHEN_METRICS_TOKEN=TOKEN)

    health = pod.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = pod.get("/ready")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ok", "roles": {"processing": True}},
    )

    # The token of issue 13: a problem document without it, the text with it.
    refused = pod.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert "KITCHEN_METRICS_TOKEN" in refused.json()["detail"]
    assert pod.get("/metrics", Authorization=f"Bearer {TOKEN[:-1]}").status_code == 401

    def scrape() -> Samples:
        response = pod.get("/metrics", Authorization=f"Bearer {TOKEN}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return parse(response.text)

    def with_lag() -> Samples | None:
        s = scrape()  # the consumer reports its partitions once it has them
        return s if "kitchen_consumer_lag" in names(s) else None

    samples: Samples = eventually(with_lag)
    ready_series = {
        dict(labels)["role"]: v for (n, labels), v in samples.items() if n == "kitchen_role_ready"
    }
    assert ready_series == {"processing": 1}
    lags = {
        (dict(labels)["group"], dict(labels)["topic"]): v
        for (n, labels), v in samples.items()
        if n == "kitchen_consumer_lag"
    }
    assert lags == {("kitchen-processing", "order_created"): 0}
    assert samples[("kitchen_database_up", frozenset())] == 1
    # The outbox and mail gauges are the relay's: this pod has none.
    assert not names(samples) & {
        "kitchen_outbox_backlog",
        "kitchen_outbox_oldest_unsent_age_seconds",
        "kitchen_emails_pending",
    }
    # Its own scrapes are counted, by route: the 401s and the 200s.
    http = {
        dict(labels)["status"]: v
        for (n, labels), v in samples.items()
        if n == "kitchen_http_requests_total" and dict(labels)["route"] == "/metrics"
    }
    assert http["401"] == 2 and http["200"] >= 1

    # Only the three operations routes: the API is not served on this port.
    missing = pod.get("/order/1")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    stops_cleanly(pod)


def test_a_notification_pod_reports_its_roles(start: Callable[..., Process]) -> None:
    pod = start("--roles", "notification")  # development, no token: open
    ready = pod.get("/ready")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ok", "roles": {"notification": True}},
    )
    samples = parse(pod.get("/metrics").text)
    ready_series = {
        dict(labels)["role"]: v for (n, labels), v in samples.items() if n == "kitchen_role_ready"
    }
    assert ready_series == {"notification": 1}
    stops_cleanly(pod)


def run_app(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    environment.update({"KITCHEN_DATABASE_URL": f"sqlite:///{tmp_path}/k.db", **env})
    app = [sys.executable, str(ROOT / "app.py"), "--settings", str(ROOT / "settings.toml")]
    return run_to_end([*app, *args], tmp_path, environment)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"KITCHEN_METRICS_PORT": "{http}"},
            "kitchen: cannot start: metrics.port: {http} is http.port on the same host; "
            "choose another port (KITCHEN_METRICS_PORT), or 0 to serve /metrics on the HTTP "
            "port only",
        ),
        (
            # 0.0.0.0 takes the port on every interface, 127.0.0.1's too.
            {"KITCHEN_METRICS_PORT": "{http}", "KITCHEN_METRICS_HOST": "0.0.0.0"},
            "kitchen: cannot start: metrics.port: {http} is http.port on the same host",
        ),
        (
            {"KITCHEN_METRICS_PORT": "70000"},
            "kitchen: cannot start: metrics.port: must be 0 (no operations server) or a port "
            "from 1 to 65535, got 70000",
        ),
        (
            {"KITCHEN_METRICS_PORT": "-1"},
            "kitchen: cannot start: metrics.port: must be 0 (no operations server) or a port "
            "from 1 to 65535, got -1",
        ),
        (
            {"KITCHEN_METRICS_PORT": "metrics"},
            "kitchen: cannot start: metrics.port: expected int, got 'metrics'",
        ),
    ],
)
def test_a_metrics_port_that_cannot_work_is_refused_in_one_line(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    http = str(free_port())
    env = {k: v.format(http=http) for k, v in env.items()}
    result = run_app(tmp_path, KITCHEN_HTTP_PORT=http, **env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected.format(http=http)), lines[0]


def test_the_http_port_is_free_to_a_process_without_the_api_role(
    start: Callable[..., Process],
) -> None:
    """The collision is the api role's: a processing pod may reuse the number."""
    pod = start("--roles", "processing", KITCHEN_HTTP_PORT="{port}")
    assert pod.get("/ready").status_code == 200
    stops_cleanly(pod)


def test_a_metrics_port_already_taken_is_refused_at_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_app(tmp_path, "--roles", "processing", KITCHEN_METRICS_PORT=str(port))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"kitchen: cannot start: metrics.port: cannot listen on 127.0.0.1:{port} (in use, or "
        "not an address of this machine); choose another KITCHEN_METRICS_HOST/PORT, or 0 for "
        "none"
    )


def test_the_operations_app_serves_the_roles_of_its_process(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    """In-process (TestClient): /ready of a pod without the api role, and the database
    gauges only where the relay runs."""
    processing = make_kitchen("processing")
    with TestClient(processing.operations_app()) as ops:
        assert ops.get("/ready").json() == {"status": "ok", "roles": {"processing": True}}
        samples = parse(ops.get("/metrics").text)
    assert "kitchen_outbox_backlog" not in names(samples)
    assert samples[("kitchen_database_up", frozenset())] == 1

    relay = make_kitchen("relay")
    with TestClient(relay.operations_app()) as ops:
        samples = parse(ops.get("/metrics").text)
    assert samples[("kitchen_outbox_backlog", frozenset())] == 0
    assert samples[("kitchen_outbox_oldest_unsent_age_seconds", frozenset())] == 0
    assert samples[("kitchen_emails_pending", frozenset())] == 0
    ready_series = {
        dict(labels)["role"]: v for (n, labels), v in samples.items() if n == "kitchen_role_ready"
    }
    assert ready_series == {"processing": 1, "relay": 1}


def test_an_api_process_serves_both_ports_and_stops_with_both(
    start: Callable[..., Process],
) -> None:
    http = free_port()
    pod = start("--roles", "api,relay", KITCHEN_HTTP_PORT=str(http))
    api = httpx.get(f"http://127.0.0.1:{http}/ready", timeout=10)
    ops = pod.get("/ready")
    assert api.json() == ops.json() == {"status": "ok", "roles": {"relay": True}}
    samples = parse(pod.get("/metrics").text)
    ready_series = {
        dict(labels)["role"]: v for (n, labels), v in samples.items() if n == "kitchen_role_ready"
    }
    assert ready_series == {"api": 1, "relay": 1}
    assert samples[("kitchen_outbox_backlog", frozenset())] == 0  # the relay's process
    stops_cleanly(pod)
    with socket.socket() as s:
        s.bind(("127.0.0.1", http))
