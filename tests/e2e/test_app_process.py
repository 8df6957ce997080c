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

from tests.helpers import eventually, free_port, is_up, run_to_end, seed_reference

ROOT = Path(__file__).resolve().parents[2]


def test_app_runs_with_embedded_defaults_and_stops_cleanly(tmp_path: Path) -> None:
    shutil.copy(ROOT / "settings.toml", tmp_path)
    port = free_port()
    # Not the shell's KITCHEN_ variables: this is the README's plain `python app.py`.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env["KITCHEN_HTTP_PORT"] = str(port)
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
        eventually(lambda: is_up(base), timeout=30)
        with httpx.Client(base_url=base) as c:
            seeded = seed_reference(c)
        order = httpx.post(f"{base}/order", json=seeded.order(26))
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
    assert "embedded in-memory Kafka" in output
    [mode] = [line for line in output.splitlines() if " mode: " in line]
    assert mode.endswith(
        "WARNING kitchen: development mode: requests without a key act as the default "
        "merchant (id 1); set KITCHEN_APP_ENV=production to require keys"
    )


def test_the_images_defaults_start_in_production_on_every_address(tmp_path: Path) -> None:
    """What the Dockerfile sets (production, 0.0.0.0, SQLite under a data folder) with the
    embedded Kafka: it starts, says its mode, and serves nothing without a key."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env.update(
        {
            "KITCHEN_APP_ENV": "production",
            "KITCHEN_PAYMENTS_PROVIDER": "none",  # as the image sets it
            "KITCHEN_HTTP_HOST": "0.0.0.0",
            "KITCHEN_HTTP_PORT": str(port),
            "KITCHEN_DATABASE_URL": f"sqlite:///{tmp_path}/data/kitchen.db",
            "KITCHEN_MAIL_FOLDER": str(tmp_path / "data" / "mail"),
        }
    )
    (tmp_path / "data").mkdir()
    app = [sys.executable, str(ROOT / "app.py"), "--settings", str(ROOT / "settings.toml")]
    proc = subprocess.Popen(
        app, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: is_up(base), timeout=30)
        assert httpx.get(f"{base}/ingredients").status_code == 401
        assert httpx.post(f"{base}/order/seed").status_code == 401
        assert httpx.get(f"{base}/metrics").status_code == 401  # no token set
        # The first key, as docs/containers.md makes it with `docker exec`.
        created = run_to_end(
            [*app, "merchant", "create", "--name", "Chez Ada", "--email", "ada@example.com"],
            tmp_path,
            env,
        )
        assert created.returncode == 0, created.stderr
        key = created.stdout.splitlines()[-1]
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{base}/ingredients", headers=auth).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"Kitchen listening on http://0.0.0.0:{port}" in output
    [mode] = [line for line in output.splitlines() if " mode: " in line]
    assert mode.endswith("INFO kitchen: production mode: every request needs a merchant's key")
    assert "metrics.token is not set: GET /metrics answers 401 to every scrape" in output
