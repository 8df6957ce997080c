"""`python app.py merchant ...` as an operator runs it: the key printed once, then used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session
from kitchen.merchants import ensure_default_merchant
from kitchen.models import ApiKey, Merchant

ROOT = Path(__file__).resolve().parents[2]


Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(clean_database: str, tmp_path: Path) -> Cli:
    """`python app.py merchant ARGS` on this test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env["KITCHEN_DATABASE_URL"] = clean_database

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "app.py"), "merchant", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def test_merchant_create_list_and_rotate_key(
    make_kitchen: Callable[..., Kitchen], cli: Cli
) -> None:
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
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert bad.stderr.startswith("merchant create: --email: must be an email address")
    assert cli("rotate-key", "999").returncode == 1


def test_named_keys_from_the_command_line(make_kitchen: Callable[..., Kitchen], cli: Cli) -> None:
    """Issue 16 item 24: key add (the key alone on the last line), key list (names and
    times, never a key), key revoke; rotate-key replaces the key "primary" only."""
    created = cli("create", "--name", "Chez Ada", "--email", "ada@example.com")
    primary = created.stdout.splitlines()[-1]
    with session():
        ada = Merchant.get(Merchant.name == "Chez Ada").id
    added = cli("key", "add", str(ada), "--name", "till-1")
    assert added.returncode == 0, added.stderr
    till = added.stdout.splitlines()[-1]
    assert till.startswith("kitchen_") and till != primary
    assert cli("key", "add", str(ada), "--name", "till-1").returncode == 1  # taken

    kitchen = make_kitchen(app={"env": "production"})
    with TestClient(kitchen.web_app(), headers={"Authorization": f"Bearer {till}"}) as t:
        assert t.get("/merchant").json()["id"] == ada
    kitchen.key_uses.flush()  # the api role's job, once a minute

    listed = cli("key", "list", str(ada))
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert rows[0][0] == "primary" and rows[0][1].startswith("created 20")
    assert rows[0][2] == "last used never"
    assert rows[1][0] == "till-1" and rows[1][2].startswith("last used 20")
    as_json = json.loads(cli("key", "list", str(ada), "--json").stdout)
    assert [(k["name"], k["last_used_at"] is None) for k in as_json] == [
        ("primary", True),
        ("till-1", False),
    ]
    assert primary not in listed.stdout and till not in listed.stdout

    rotated = cli("rotate-key", str(ada)).stdout.splitlines()[-1]
    with TestClient(kitchen.web_app()) as c:
        for key, status in ((primary, 401), (rotated, 200), (till, 200)):
            assert (
                c.get("/merchant", headers={"Authorization": f"Bearer {key}"}).status_code == status
            )

    revoked = cli("key", "revoke", str(ada), "till-1")
    assert revoked.returncode == 0, revoked.stderr
    with TestClient(kitchen.web_app(), headers={"Authorization": f"Bearer {till}"}) as t:
        assert t.get("/merchant").status_code == 401
    again = cli("key", "revoke", str(ada), "till-1")
    assert again.returncode == 1 and len(again.stderr.splitlines()) == 1
    assert [k["name"] for k in json.loads(cli("key", "list", str(ada), "--json").stdout)] == [
        "primary"
    ]


def test_merchant_list_prints_what_merchants_wrote_escaped(cli: Cli) -> None:
    """Item 10: a name cannot forge a row or drive the operator's terminal."""
    evil = "Alice\tx@y.z\n99\tEvil Corp\u001b[31m\u202e\\n"
    ensure_default_merchant("merchant@example.com")
    with session():
        merchant = Merchant.create(name=evil, alert_email="a@example.com")
    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "1\tdefault\tmerchant@example.com",
        f"{merchant.id}\tAlice\\tx@y.z\\n99\\tEvil Corp\\x1b[31m\\u202e\\\\n\ta@example.com",
    ]
    as_json = json.loads(cli("list", "--json").stdout)
    assert as_json[1] == {
        "id": merchant.id,
        "name": evil,
        "alert_email": "a@example.com",
        "default": False,
    }
    assert as_json[0]["default"] is True


def test_wrong_arguments_are_named_in_one_line(cli: Cli) -> None:
    """Items 14 and 20: exit 2 and one line naming the argument; no traceback."""
    for args, start in (
        (("create", "--name", "Bad", "--email", "notanemail"), "merchant create: --email: "),
        (("create", "--name", " ", "--email", "a@example.com"), "merchant create: --name: "),
        (("rotate-key", "99999999999999999999"), "merchant rotate-key: MERCHANT must be"),
        (("rotate-key", "x1"), "merchant rotate-key: MERCHANT must be"),
        (("key", "add", "99999999999999999999", "--name", "t"), "merchant key add: MERCHANT"),
        (("key", "list", "0"), "merchant key list: MERCHANT must be"),
    ):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith(start), (args, r.stderr)
    with session():
        assert Merchant.select().count() == 1  # only the default one
