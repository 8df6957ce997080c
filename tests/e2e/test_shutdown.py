"""SIGTERM has a bound: a client that never finishes its request cannot keep Kitchen up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import eventually, free_port, is_up

ROOT = Path(__file__).resolve().parents[2]


def test_sigterm_drops_a_request_stuck_in_its_body_after_shutdown_seconds(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env.update(
        {
            "KITCHEN_HTTP_PORT": str(port),
            "KITCHEN_HTTP_SHUTDOWN_SECONDS": "2",
            "KITCHEN_DATABASE_URL": f"sqlite:///{tmp_path}/kitchen.db",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--roles", "api"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: is_up(f"http://127.0.0.1:{port}"), timeout=30)
        with socket.create_connection(("127.0.0.1", port)) as stuck:
            # Promises 1000 bytes, sends 10, and then nothing: the server waits for the rest.
            stuck.sendall(
                b"POST /order HTTP/1.1\r\nHost: kitchen\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n" + b'{"product'
            )
            time.sleep(0.5)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=2 + 8)
            took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0
    assert took < 2 + 5
