"""Debian's Prometheus (/usr/bin/prometheus) run by a test, with the example scrape config
deploy/prometheus/prometheus.yml made the test's: its targets, its token file, a 1 s
scrape interval. A plain module that tests import (fixtures live in the test files)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import eventually, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")


def example() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return config


def job_names(config: Mapping[str, Any]) -> list[str]:
    return [job["job_name"] for job in config.get("scrape_configs", [])]


def config_for(targets: Mapping[str, list[str]], token_file: Path) -> dict[str, Any]:
    """The example with the test's own targets (a job not in `targets` is dropped: the
    test runs no such process), `token_file` as every job's credentials, a 1 s scrape
    and evaluation interval, and the rule file beside the example by its full path."""
    config = example()
    config["global"] = {**config.get("global", {}), "scrape_interval": "1s"}
    config["global"]["evaluation_interval"] = "1s"
    config["global"]["scrape_timeout"] = "1s"
    unknown = set(targets) - set(job_names(config))
    assert not unknown, f"jobs the example does not have: {sorted(unknown)}"
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job["authorization"]["credentials_file"] = str(token_file)
            job["static_configs"] = [{"targets": targets[job["job_name"]]}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    # Relative rule files are read beside the config: the test's config lives elsewhere.
    config["rule_files"] = [
        str(EXAMPLE.parent / name)
        for name in config.get("rule_files", [])
        if (EXAMPLE.parent / name).exists()  # the rules come from another branch
    ]
    return config


class Prometheus:
    """A running Prometheus and its HTTP API."""

    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc = proc
        self.base = base
        self.log = log
        self.http = httpx.Client(base_url=base, timeout=10)

    def output(self, lines: int = 80) -> str:
        """The end of Prometheus's stdout and stderr."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>: its `data` once Prometheus answered status success; the
        error Prometheus gave otherwise fails the test, with the query in the message."""
        r = self.http.get(f"/api/v1/{path}", params=params)
        body = r.json()
        assert r.status_code == 200 and body.get("status") == "success", (
            f"{path} {params}: {r.status_code} {body.get('errorType')}: {body.get('error')}"
        )
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (or scalar, as a one-element list)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = (
            data["result"] if data["resultType"] in ("vector", "matrix") else [data]
        )
        return result

    def values(self, expr: str, by: str) -> dict[str, float]:
        """An instant vector as {value of label `by`: sample value}."""
        return {s["metric"].get(by, ""): float(s["value"][1]) for s in self.query(expr)}

    def value(self, expr: str) -> float | None:
        """The one sample of an instant query (None when it has none)."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    def targets(self) -> dict[str, list[dict[str, Any]]]:
        """Active targets by job."""
        found: dict[str, list[dict[str, Any]]] = {}
        for target in self.api("targets", state="active")["activeTargets"]:
            found.setdefault(target["labels"]["job"], []).append(target)
        return found


@contextmanager
def running(workdir: Path, config: Mapping[str, Any]) -> Iterator[Prometheus]:
    """Prometheus with `config`, its data in `workdir`, on a free port; stopped (and its
    output shown) however the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    check = subprocess.run(
        [str(PROMTOOL), "check", "config", str(path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    log = workdir / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
            ],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(proc, f"http://127.0.0.1:{port}", log)
    try:

        def ready() -> bool:
            assert proc.poll() is None, f"Prometheus exited:\n{prometheus.output()}"
            try:
                return prometheus.http.get("/-/ready").status_code == 200
            except httpx.TransportError:
                return False

        eventually(ready, timeout=30, interval=0.1)
        yield prometheus
    finally:
        prometheus.http.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # Captured: pytest shows it beside a failing test, Prometheus's side of the story.
        print(f"--- Prometheus output ({log}) ---\n{prometheus.output()}")
