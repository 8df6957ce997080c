"""A real Prometheus (Debian's) scraping a split deployment, as an operator runs one:
three `python app.py` processes (api+relay, processing, notification) on one database
and a real Kafka broker, scraped with the example config deploy/prometheus/prometheus.yml
(its targets and token file replaced). What the test checks, it reads through
Prometheus's HTTP query API, as a dashboard or an alert would."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import REAL_KAFKA, SmtpServer, eventually, free_port, seed_reference
from tests.operations import grafana
from tests.operations.prometheus import (
    EXAMPLE,
    PROMTOOL,
    Prometheus,
    config_for,
    example,
    job_names,
    running,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-token-of-the-test-0123456789"
JOBS = ["kitchen-api", "kitchen-processing", "kitchen-notification"]

needs_broker = pytest.mark.skipif(
    not REAL_KAFKA,
    reason="a split deployment needs a real broker (the embedded Kafka lives in one "
    "process): KITCHEN_TEST_KAFKA",
)


@dataclass
class Process:
    """One `python app.py --roles ...`, its /metrics at `scrape` (host:port)."""

    job: str
    proc: subprocess.Popen[bytes]
    scrape: str
    log: Path

    def output(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"{self.job} exited:\n{self.output()}"
        try:
            return httpx.get(f"http://{self.scrape}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def metrics(self) -> str:
        r = httpx.get(
            f"http://{self.scrape}/metrics",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return r.text


@dataclass
class Deployment:
    api: str  # base URL of the api process
    processes: dict[str, Process]  # by job
    prometheus: Prometheus
    smtp: SmtpServer


@pytest.fixture
def deployment(clean_database: str, smtp: SmtpServer, tmp_path: Path) -> Iterator[Deployment]:
    """The three processes and Prometheus scraping them; all stopped at the end, and
    their output shown when the test fails."""
    run = uuid.uuid4().hex[:8]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env = {
        **inherited,
        "KITCHEN_DATABASE_URL": clean_database,
        "KITCHEN_KAFKA_BOOTSTRAP_SERVERS": REAL_KAFKA,
        "KITCHEN_KAFKA_ORDER_CREATED_TOPIC": f"order_created-{run}",
        "KITCHEN_KAFKA_NOTIFY_TOPIC": f"notify-{run}",
        "KITCHEN_KAFKA_ORDER_EVENTS_TOPIC": f"order_events-{run}",
        "KITCHEN_KAFKA_PROCESSING_GROUP": f"processing-{run}",
        "KITCHEN_KAFKA_NOTIFICATION_GROUP": f"notification-{run}",
        "KITCHEN_KAFKA_PAYMENTS_GROUP": f"payments-{run}",
        "KITCHEN_KAFKA_PARTITIONS": "3",
        "KITCHEN_MAIL_SMTP_HOST": "127.0.0.1",
        "KITCHEN_MAIL_SMTP_PORT": str(smtp.port),
        "KITCHEN_METRICS_TOKEN": TOKEN,
    }
    roles = {
        "kitchen-api": "api,relay",
        "kitchen-processing": "processing",
        "kitchen-notification": "notification",
    }
    processes: dict[str, Process] = {}
    try:
        for job, names in roles.items():
            port = free_port()
            own = dict(env)
            if job == "kitchen-api":
                # The api role serves /metrics on its HTTP port (no [metrics] port).
                own["KITCHEN_HTTP_PORT"] = str(port)
            else:
                own["KITCHEN_METRICS_PORT"] = str(port)
            log = tmp_path / f"{job}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, str(ROOT / "app.py"), "--roles", names],
                    cwd=tmp_path,
                    env=own,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes[job] = Process(job, proc, f"127.0.0.1:{port}", log)
        for process in processes.values():
            eventually(process.ready, timeout=90, interval=0.2)
        token = tmp_path / "metrics-token"
        token.write_text(TOKEN + "\n")  # as `echo` writes it: Prometheus trims the newline
        config = config_for({job: [p.scrape] for job, p in processes.items()}, token)
        with running(tmp_path / "prometheus", config) as prometheus:
            yield Deployment(
                f"http://{processes['kitchen-api'].scrape}", processes, prometheus, smtp
            )
    finally:
        for process in processes.values():
            if process.proc.poll() is None:
                process.proc.kill()
            process.proc.wait(30)
            # Captured: pytest shows it beside a failing test.
            print(f"--- {process.job} ({process.log}) ---\n{process.output()}")


@needs_broker
def test_prometheus_scrapes_every_role_of_a_split_deployment(deployment: Deployment) -> None:
    prom = deployment.prometheus

    # Every process up, as the query API and the targets API say.
    eventually(lambda: prom.values("up", by="job") == dict.fromkeys(JOBS, 1.0), timeout=30)
    targets = prom.targets()
    assert sorted(targets) == sorted(JOBS)
    for job, found in targets.items():
        assert [t["health"] for t in found] == ["up"], (job, found)
        assert [t["scrapeUrl"] for t in found] == [
            f"http://{deployment.processes[job].scrape}/metrics"
        ]
    eventually(
        lambda: (
            prom.values("kitchen_role_ready", by="role")
            == {"api": 1.0, "relay": 1.0, "processing": 1.0, "notification": 1.0}
        ),
        timeout=30,
    )

    # 13 orders of 2 burgers: onion falls from 1,000 g to 480 g, below half, once.
    with httpx.Client(base_url=deployment.api, timeout=10) as api:
        seeded = seed_reference(api)
        for _ in range(13):
            assert api.post("/order", json=seeded.order(2)).status_code == 201
    eventually(lambda: prom.value("sum(kitchen_orders_accepted_total)") == 13.0, timeout=30)
    eventually(lambda: prom.value("sum(kitchen_orders_applied_total)") == 13.0, timeout=60)
    assert prom.value("sum(kitchen_orders_rejected_total)") in (None, 0.0)
    # Who counted them: the api process accepted, the processing process applied.
    assert prom.values("kitchen_orders_accepted_total", by="job")["kitchen-api"] == 13.0
    assert prom.values("kitchen_orders_applied_total", by="job")["kitchen-processing"] == 13.0

    # Both consumer groups back to no lag, each partition reported.
    lag = eventually(
        lambda: (
            (found := prom.values("sum by (group) (kitchen_consumer_lag)", by="group"))
            and len(found) == 2
            and all(v == 0 for v in found.values())
            and found
        ),
        timeout=60,
    )
    assert {group.split("-")[0] for group in lag} == {"processing", "notification"}
    partitions = prom.query("count by (group) (kitchen_consumer_lag)")
    assert sorted(int(p["value"][1]) for p in partitions) == [3, 3]

    # One alert, one email: counted by the notification process, and in the inbox.
    eventually(lambda: prom.value('sum(kitchen_emails_total{outcome="sent"})') == 1.0, timeout=60)
    assert prom.values('kitchen_emails_total{outcome="sent"}', by="job") == {
        "kitchen-notification": 1.0
    }
    [mail] = deployment.smtp.messages
    assert mail["Subject"] == "Low stock: onion is below 50% (480 g left)"
    assert mail["To"] == "merchant@example.com"
    # The database gauges come from the relay's process alone.
    eventually(lambda: prom.values("kitchen_outbox_backlog", by="job") == {"kitchen-api": 0.0})

    # A process that dies is `up == 0` for Prometheus, the others still 1.
    deployment.processes["kitchen-processing"].proc.kill()
    eventually(lambda: prom.value('up{job="kitchen-processing"}') == 0.0, timeout=30)
    assert prom.values("up", by="job") == {
        "kitchen-api": 1.0,
        "kitchen-processing": 0.0,
        "kitchen-notification": 1.0,
    }
    [target] = prom.targets()["kitchen-processing"]
    assert target["health"] == "down" and target["lastError"]


@needs_broker
def test_the_dashboard_queries_run_on_the_live_deployment(deployment: Deployment) -> None:
    """Every panel's query answers on real data, and every metric the dashboard names is
    on some process's /metrics (a renamed metric fails here)."""
    prom = deployment.prometheus
    eventually(lambda: prom.values("up", by="job") == dict.fromkeys(JOBS, 1.0), timeout=30)
    with httpx.Client(base_url=deployment.api, timeout=10) as api:
        seeded = seed_reference(api)
        assert api.post("/order", json=seeded.order(1)).status_code == 201
    eventually(lambda: prom.value("sum(kitchen_orders_applied_total)") == 1.0, timeout=60)
    exported = {"up"}
    for process in deployment.processes.values():
        exported |= grafana.exported_names(process.metrics())
    queries = grafana.queries(grafana.load())
    used = set().union(*(grafana.metric_names(q) for _, q in queries))
    # The stock gauges need [metrics] stock_gauges, off here (their panels say so).
    optional = {"kitchen_ingredient_stock_grams", "kitchen_ingredient_full_stock_grams"}
    assert used - exported - optional == set()
    answered = {where: prom.query(expr) for where, expr in queries}
    assert len(answered["panel 'Role readiness' target A"]) == 4
    assert len(answered["panel 'Processes up, database reachable' target A"]) == 3
    assert len(answered["panel 'Consumer lag per partition' target A"]) == 6  # 2 groups x 3
    # The rates and percentiles once Prometheus has two scrapes since the order.
    expr = dict(queries)
    for where in (
        "panel 'Orders in and applied' target B",
        "panel 'End-to-end latency (order created to applied)' target C",
        "panel 'HTTP latency' target C",
    ):
        eventually(partial(prom.query, expr[where]), timeout=30)

    # The alert rules beside the example (deploy/prometheus/kitchen-rules.yml), evaluated
    # on the data of several processes: none fails (a vector match that two processes'
    # series make ambiguous would, with only real data to show it).
    def evaluated() -> list[dict[str, Any]]:
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        return rules if all(r["health"] != "unknown" for r in rules) else []

    if (EXAMPLE.parent / "kitchen-rules.yml").exists():
        rules = eventually(evaluated, timeout=30)
        assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []


def test_the_example_config_has_a_job_per_kind_of_process() -> None:
    config = example()
    assert job_names(config) == [*JOBS, "kitchen-payments"]
    for job in config["scrape_configs"]:
        # The token from a file, never written into the config.
        assert job["authorization"] == {
            "type": "Bearer",
            "credentials_file": "/etc/prometheus/kitchen-metrics-token",
        }, job["job_name"]
    assert config["rule_files"] == ["kitchen-rules.yml"]


def test_promtool_accepts_the_example_and_the_tests_config(tmp_path: Path) -> None:
    """The example as shipped (its token file is the operator's: syntax only), and the
    config the test runs, made from it (every file it names checked)."""
    check = subprocess.run(
        [str(PROMTOOL), "check", "config", "--syntax-only", str(EXAMPLE)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    token = tmp_path / "token"
    token.write_text(TOKEN)
    config = config_for({job: ["127.0.0.1:1"] for job in JOBS}, token)
    assert job_names(config) == JOBS
    assert config["global"]["scrape_interval"] == "1s"
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    check = subprocess.run(
        [str(PROMTOOL), "check", "config", str(path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_prometheus_is_stopped_and_its_output_kept(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    with running(tmp_path / "prometheus", config_for({}, token)) as prom:
        assert prom.value("vector(1)") == 1.0
        proc = prom.proc
    assert proc.poll() is not None
    assert "Server is ready to receive web requests" in prom.output()
