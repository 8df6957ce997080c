"""`KITCHEN_LOG_FORMAT=json`: every line `python app.py` writes is one JSON object with
time, level, role, logger and message (and the ids a line is about), and no line holds an
API key or a password."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from kitchen import logs
from tests.helpers import SmtpServer, eventually, free_port, is_up, run_to_end

ROOT = Path(__file__).resolve().parents[2]
SMTP_PASSWORD = "Smtp-Pa55word-never-logged"
DB_PASSWORD = "Db-Pa55word-never-logged"
METRICS_TOKEN = "Metrics-t0ken-never-logged"
FIELDS = {"time", "level", "role", "logger", "message"}
ROLES = {"api", "processing", "notification", "relay", "main"}


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env.update(
        {
            "KITCHEN_LOG_FORMAT": "json",
            "KITCHEN_DATABASE_URL": f"sqlite:///{tmp_path}/kitchen.db",
            "KITCHEN_HTTP_PORT": str(free_port()),
            **settings,
        }
    )
    return env


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as a JSON log entry (fails on the first that is not one)."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(entry, dict) and set(entry) >= FIELDS, line
        assert entry["role"] in ROLES, line
        assert entry["level"] in ("debug", "info", "warning", "error", "critical"), line
        assert entry["time"].endswith("Z"), line
        entries.append(entry)
    return entries


def test_every_line_is_json_and_no_secret_is_in_any(tmp_path: Path, clean_database: str) -> None:
    """On the test database: PostgreSQL in CI's second suite, whose password ("kitchen",
    7 characters) is too short to be masked in every word (see kitchen/logs.py)."""
    shutil.copy(ROOT / "settings.toml", tmp_path)
    smtp = SmtpServer(free_port(), auth=True)
    smtp.options["auth_require_tls"] = False  # a login on the test server, in the clear
    smtp.start()
    env = environment(
        tmp_path,
        KITCHEN_APP_ENV="production",
        KITCHEN_PAYMENTS_PROVIDER="none",
        KITCHEN_MAIL_SMTP_HOST="127.0.0.1",
        KITCHEN_MAIL_SMTP_PORT=str(smtp.port),
        KITCHEN_MAIL_SMTP_USER="alerts@example.com",
        KITCHEN_MAIL_SMTP_PASSWORD=SMTP_PASSWORD,
        KITCHEN_SCHEDULER_MAIL_RETRY_SECONDS="1",
        KITCHEN_METRICS_TOKEN=METRICS_TOKEN,
        KITCHEN_DATABASE_URL=clean_database,
    )
    app = [sys.executable, str(ROOT / "app.py")]
    created = run_to_end(
        [*app, "merchant", "create", "--name", "Ada", "--email", "ada@example.com"], tmp_path, env
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[-1]
    merchant_id = int(created.stdout.split()[1])  # "merchant 2 created: Ada <...>"
    assert key.startswith("kitchen_")
    cli_logs = json_lines(created.stderr)
    assert key not in created.stderr

    out, err = (tmp_path / "stdout").open("w+"), (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen(app, cwd=tmp_path, env=env, stdout=out, stderr=err, text=True)
    base = f"http://127.0.0.1:{env['KITCHEN_HTTP_PORT']}"
    auth = {"Authorization": f"Bearer {key}"}
    try:
        eventually(lambda: is_up(base), timeout=30)
        with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
            onion = client.post("/ingredients", json={"name": "onion", "stock": 1000})
            assert onion.status_code == 201, onion.text
            recipe = [{"ingredient_id": onion.json()["id"], "grams": 20}]
            soup = client.post("/products", json={"name": "Soup", "recipe": recipe})
            assert soup.status_code == 201, soup.text
            lines = [{"product_id": soup.json()["id"], "quantity": 26}]
            order = client.post("/order", json={"products": lines})
            assert order.status_code == 201, order.text
            too_many = client.post("/order", json={"products": [{**lines[0], "quantity": 100}]})
            order_ids = [order.json()["id"], too_many.json()["id"]]
            eventually(
                lambda: all(
                    client.get(f"/order/{o}").json()["status"] != "pending" for o in order_ids
                )
            )
            assert client.get("/ready").status_code == 200
            scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            assert client.get("/metrics", headers=scrape).status_code == 200
        assert httpx.get(f"{base}/merchant", headers={"Authorization": "Bearer nope"}).is_error
        assert httpx.get(f"{base}/merchant", headers={"Authorization": key}).status_code == 401
        eventually(lambda: len(smtp.messages) == 1)
        assert smtp.inbox.logins, "the SMTP password was used"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        smtp.stop()
    assert proc.returncode == 0
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()

    entries = json_lines(stdout) + json_lines(stderr)
    messages = [e["message"] for e in entries]
    assert any(m.startswith("Kitchen listening on http://127.0.0.1:") for m in messages)
    assert {"main", "processing", "notification"} <= {e["role"] for e in entries}
    alert = next(e for e in entries if e["message"].startswith("alert 1: onion fell"))
    assert (alert["role"], alert["logger"]) == ("processing", "kitchen.processing")
    assert alert["alert_id"] == 1 and alert["order_id"] == order_ids[0]
    assert alert["merchant_id"] == merchant_id
    rejected = next(e for e in entries if e["message"].startswith(f"order {order_ids[1]} rej"))
    assert (rejected["order_id"], rejected["merchant_id"]) == (order_ids[1], merchant_id)
    mailed = next(e for e in entries if e["message"].startswith("mail alert-1 sent"))
    assert (mailed["role"], mailed["alert_id"]) == ("notification", 1)
    everything = stdout + stderr + created.stderr + json.dumps(cli_logs)
    assert key not in everything
    assert key.removeprefix("kitchen_") not in everything
    assert SMTP_PASSWORD not in everything
    assert METRICS_TOKEN not in everything
    db_password = urlsplit(clean_database).password
    if db_password:  # nowhere as a password, and anywhere once it is long enough to mask
        assert f":{db_password}@" not in everything
        assert f"password={db_password}" not in everything
        assert len(db_password) < logs.MIN_SECRET or db_password not in everything


def test_a_start_error_is_one_json_line_with_the_password_masked(tmp_path: Path) -> None:
    # Nothing listens there: the database is unreachable.
    url = f"postgresql://kitchen:{DB_PASSWORD}@127.0.0.1:{free_port()}/kitchen"
    for settings in (
        {"KITCHEN_DATABASE_URL": url},
        {"KITCHEN_DATABASE_URL": url.replace("postgresql", "postgress")},  # a settings error
    ):
        done = run_to_end(
            [sys.executable, str(ROOT / "app.py"), "--settings", str(ROOT / "settings.toml")],
            tmp_path,
            environment(tmp_path, **settings),
        )
        assert done.returncode == 2, done.stderr
        [entry] = json_lines(done.stderr)
        assert (entry["level"], entry["role"]) == ("error", "main")
        assert entry["message"].startswith("kitchen: cannot start: database.url: ")
        assert "kitchen:***@127.0.0.1" in entry["message"]
        assert DB_PASSWORD not in done.stderr + done.stdout
        assert done.stdout == ""
