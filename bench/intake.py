"""Intake speed: Kitchen's POST /order beside a bare Starlette endpoint, in the same run.

    python bench/intake.py [--runs 3] [--seconds 6] [--connections 32] [--database URL]

Alternates the two servers (bare, Kitchen, bare, Kitchen, ...) so that both meet the same
machine, and reports the median requests/s and p99 latency of each with wrk (installed
from Debian's packages when missing), and Kitchen's ratio to the ceiling. Kitchen runs
all roles in one process on the embedded Kafka, with SQLite unless --database names a
PostgreSQL database (whose tables it drops first).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error answer: the server is up
                return
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    return shutil.which("wrk") or "wrk"


def wrk(url: str, seconds: int, connections: int) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) of POST /order for `seconds`."""
    out = subprocess.run(
        [
            ensure_wrk(),
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "order.lua"),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    return rate, p99


def start_bare(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PYTHON, "-m", "uvicorn", "bench.bare:app", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_kitchen(port: int, database: str, workdir: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env.update(
        KITCHEN_HTTP_PORT=str(port),
        KITCHEN_DATABASE_URL=database,
        KITCHEN_MAIL_FOLDER=f"{workdir}/mail",
    )
    return subprocess.Popen(
        [PYTHON, str(ROOT / "app.py"), "--settings", str(ROOT / "settings.toml")],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"bare": [], "kitchen": []}
    with tempfile.TemporaryDirectory() as tmp:
        database = args.database or f"sqlite:///{tmp}/bench.db"
        if args.database:
            sys.path.insert(0, str(ROOT))
            from kitchen import db

            handle = db.bind(database)
            with db.session():
                handle.drop_tables(list(reversed(db.TABLES)), safe=True, cascade=True)
        bare_port, kitchen_port = free_port(), free_port()
        bare = start_bare(bare_port)
        kitchen = start_kitchen(kitchen_port, database, tmp)
        try:
            wait_up(f"http://127.0.0.1:{bare_port}/order")
            wait_up(f"http://127.0.0.1:{kitchen_port}/health")
            seed = urllib.request.Request(
                f"http://127.0.0.1:{kitchen_port}/order/seed", method="POST"
            )
            urllib.request.urlopen(seed, timeout=30)
            for _ in range(args.runs):
                for name, port in (("bare", bare_port), ("kitchen", kitchen_port)):
                    url = f"http://127.0.0.1:{port}/order"
                    results[name].append(wrk(url, args.seconds, args.connections))
        finally:
            stop(bare)
            stop(kitchen)
    rows = {
        n: (statistics.median(r for r, _ in v), statistics.median(p for _, p in v))
        for n, v in results.items()
    }
    print(
        f"intake, wrk -c{args.connections} -d{args.seconds}s, median of {args.runs} "
        f"alternating runs ({database.split(':')[0]}):"
    )
    print("| server | requests/s | p99 ms | runs (req/s) |")
    print("| --- | ---: | ---: | --- |")
    for name, (rate, p99) in rows.items():
        runs = ", ".join(f"{r:,.0f}" for r, _ in results[name])
        print(f"| {name} | {rate:,.0f} | {p99:.1f} | {runs} |")
    print(f"ratio kitchen / bare: {rows['kitchen'][0] / rows['bare'][0]:.2f}")


if __name__ == "__main__":
    main()
