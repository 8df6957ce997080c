"""`python app.py` with a setting that cannot work: exit code 2 and one line on stderr that
names the setting, with no traceback and no password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port, run_to_end

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "S3cretPW"


def run_app(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return run_with(tmp_path, ROOT / "settings.toml", settings)


def run_with(
    tmp_path: Path, settings_file: Path, settings: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env.update({"KITCHEN_HTTP_PORT": str(free_port()), **settings})
    return run_to_end(
        [sys.executable, str(ROOT / "app.py"), "--settings", str(settings_file)], tmp_path, env
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
        (
            # %00 decodes to a NUL, which the driver refuses with a ValueError.
            {"KITCHEN_DATABASE_URL": f"postgresql://kitchen:{PASSWORD}%00x@127.0.0.1/k"},
            "database.url: postgresql://kitchen:***@127.0.0.1/k holds a NUL character (%00)",
        ),
        (
            {"KITCHEN_APP_ENVIRONMENT": "production"},
            "unknown variable KITCHEN_APP_ENVIRONMENT: did you mean KITCHEN_APP_ENV?",
        ),
        (
            # Development mode answers without a key: never where other machines reach.
            {"KITCHEN_HTTP_HOST": "0.0.0.0"},
            "http.host: development mode on 0.0.0.0, which other machines can reach, would "
            "serve every request without a key as the default merchant; set "
            "KITCHEN_APP_ENV=production",
        ),
        (
            {"KITCHEN_HTTP_HOST": "0.0.0.0", "KITCHEN_APP_ENV": "development"},
            "or KITCHEN_HTTP_HOST=127.0.0.1",
        ),
        ({"KITCHEN_METRICS_TOKEN": "secret"}, "metrics.token: must be at least 16"),
        (
            # The fake provider's cards are rows: no money moves in production.
            {"KITCHEN_APP_ENV": "production"},
            "payments.provider: fake is for development only",
        ),
        ({"KITCHEN_PAYMENTS_PROVIDER": "paypal"}, "payments.provider: must be one of"),
        (
            {"KITCHEN_PAYMENTS_PROVIDER": "stripe"},
            "payments.stripe_api_key: needed with payments.provider = stripe",
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


def test_a_settings_file_that_does_not_exist_stops_the_start(tmp_path: Path) -> None:
    """Not the defaults (development mode, no keys) in its place."""
    done = run_with(tmp_path, tmp_path / "prod.toml", {"KITCHEN_DATABASE_URL": "sqlite:///k.db"})

    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"kitchen: cannot start: settings file {tmp_path / 'prod.toml'}: no such file; name "
        "an existing file (such as the settings.toml shipped with Kitchen)"
    ]
    assert done.stdout == ""
    assert not (tmp_path / "k.db").exists()
