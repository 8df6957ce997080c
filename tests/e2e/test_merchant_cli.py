"""`python app.py merchant ...` as an operator runs it: the key printed once, then used."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import ApiKey, Merchant, session

ROOT = Path(__file__).resolve().parents[2]


def test_merchant_create_list_and_rotate_key(
    make_kitchen: Callable[..., Kitchen], clean_database: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env["KITCHEN_DATABASE_URL"] = clean_database

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "app.py"), "merchant", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    created = cli("create", "--name", "Chez Ada", "--email", "ada@example.com")
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[-1]  # the key alone on the last line
    assert key.startswith("kitchen_") and len(key) > 40
    with session():
        ada = Merchant.get(Merchant.name == "Chez Ada")
        [stored] = ApiKey.select().where(ApiKey.merchant == ada.id)
        assert stored.name == "primary"
        assert key not in {stored.key_hash, ada.name, ada.alert_email}  # stored hashed only

    listed = cli("list")
    assert listed.returncode == 0 and f"{ada.id}\tChez Ada\tada@example.com" in listed.stdout
    assert key not in listed.stdout + created.stderr

    kitchen = make_kitchen(app={"env": "production"})
    with TestClient(kitchen.web_app(), headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.get("/merchant").json()["name"] == "Chez Ada"

    rotated = cli("rotate-key", str(ada.id))
    assert rotated.returncode == 0
    new_key = rotated.stdout.splitlines()[-1]
    with TestClient(kitchen.web_app(), headers={"Authorization": f"Bearer {key}"}) as old:
        assert old.get("/merchant").status_code == 401
    with TestClient(kitchen.web_app(), headers={"Authorization": f"Bearer {new_key}"}) as c:
        assert c.get("/merchant").json()["name"] == "Chez Ada"

    # Names need not be unique: ids identify merchants (and a refusal would tell).
    assert cli("create", "--name", "Chez Ada", "--email", "x@example.com").returncode == 0
    bad = cli("create", "--name", "Bo", "--email", "not an address")
    assert (bad.returncode, bad.stderr) == (
        2,
        "merchant create: --email: must be an email address\n",
    )
    assert cli("rotate-key", "999").returncode == 1
