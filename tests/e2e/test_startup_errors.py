"""`python app.py` with a setting that cannot work: exit code 2 and one line on stderr that
names the setting, with no traceback and no password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "S3cretPW"


def run_app(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env.update({"KITCHEN_HTTP_PORT": str(free_port()), **settings})
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--settings", str(ROOT / "settings.toml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"KITCHEN_DATABASE_URL": f"postgress://kitchen:{PASSWORD}@db/kitchen"},
            "database.url: unsupported scheme 'postgress' in postgress://kitchen:***@db/kitchen",
        ),
        (
            # Nothing listens there: the database is unreachable, found when binding it.
            {"KITCHEN_DATABASE_URL": f"postgresql://kitchen:{PASSWORD}@127.0.0.1:{free_port()}/k"},
            "database.url: cannot use postgresql://kitchen:***@127.0.0.1:",
        ),
        (
            {"KITCHEN_DATABASE_URL": "sqlite:////nonexistent-dir/kitchen.db"},
            "database.url: cannot use sqlite:////nonexistent-dir/kitchen.db: unable to open",
        ),
        (
            {"KITCHEN_DATABASE_URL": "sqlite://kitchen.db"},
            "database.url: sqlite://kitchen.db names a host, not a file",
        ),
        ({"KITCHEN_ALERTS_THRESHOLD": "nan"}, "alerts.threshold: must be between 0 and 1"),
        ({"KITCHEN_HTTP_PORT": "70000"}, "http.port: must be a port from 1 to 65535"),
        (
            {"KITCHEN_MAIL_STARTTLS": "true", "KITCHEN_MAIL_SSL": "true"},
            "mail.starttls, mail.ssl: choose one",
        ),
    ],
)
def test_bad_setting_exits_2_with_one_line(
    tmp_path: Path, settings: dict[str, str], expected: str
) -> None:
    done = run_app(tmp_path, **settings)

    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kitchen: cannot start: ")
    assert expected in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert PASSWORD not in done.stderr + done.stdout
    assert not (tmp_path / "kitchen.db").exists()
