"""`python app.py` as a user runs it: embedded defaults, real HTTP, mail into a folder."""

from __future__ import annotations

import email
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import eventually, free_port

ROOT = Path(__file__).resolve().parents[2]


def test_app_runs_with_embedded_defaults_and_stops_cleanly(tmp_path: Path) -> None:
    shutil.copy(ROOT / "settings.toml", tmp_path)
    port = free_port()
    env = {**os.environ, "KITCHEN_HTTP_PORT": str(port)}
    env = {k: v for k, v in env.items() if not k.startswith("KITCHEN_TEST_")}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() != ""  # the mock cluster's own banner
        eventually(lambda: _up(base), timeout=30)
        assert httpx.post(f"{base}/order/seed").status_code == 201
        order = httpx.post(f"{base}/order", json={"products": [{"product_id": 1, "quantity": 26}]})
        assert order.status_code == 201
        order_id = order.json()["id"]
        eventually(lambda: httpx.get(f"{base}/order/{order_id}").json()["status"] == "applied")
        onion = {i["name"]: i["stock"] for i in httpx.get(f"{base}/ingredients").json()}["onion"]
        assert onion == 1000 - 26 * 20
        mails = eventually(lambda: list((tmp_path / "mail").glob("*.eml")))
        assert len(mails) == 1
        assert "Subject: Low stock: onion is below 50% (480 g left)" in mails[0].read_text()
        mail = email.message_from_string(mails[0].read_text())
        part = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
        text = bytes(part.get_payload(decode=True)).decode()
        assert "\n\nRestock onion" in text and "<br>" not in text
        assert (tmp_path / "kitchen.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert time.monotonic() - started < 10
    assert f"Kitchen listening on http://127.0.0.1:{port}" in output
    assert "DEVELOPMENT MODE: embedded in-memory Kafka" in output


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
