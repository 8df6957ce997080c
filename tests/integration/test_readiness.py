"""GET /ready: says which part is not working, and nothing an outsider should not see."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import db, migrations, models
from kitchen import settings as config
from kitchen.http import Api, build_app
from tests.helpers import eventually, free_port


def test_database_down_is_named_without_its_address(
    test_settings: config.Settings, clean_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = str(free_port())  # nothing listens there
    db.bind(f"postgresql://kitchen_user:S3cretPW@127.0.0.1:{port}/kitchen")
    try:
        with caplog.at_level(logging.WARNING), TestClient(build_app(Api(test_settings, 1))) as c:
            ready = c.get("/ready")
    finally:
        db.bind(clean_database)

    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["detail"] == "database unavailable"
    for detail in ("127.0.0.1", port, "kitchen_user", "S3cretPW"):
        assert detail not in ready.text
    assert port in caplog.text  # the operator finds the details in the log


def test_relay_failing_every_pass_makes_ready_503_until_it_recovers(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    kitchen = make_kitchen("api,relay")
    with TestClient(kitchen.web_app()) as api:
        assert api.get("/ready").status_code == 200
        with db.session():
            db.database.drop_tables([models.Outbox])  # every relay pass now fails

        eventually(lambda: api.get("/ready").status_code == 503, timeout=15)
        assert api.get("/ready").json() == {"status": "degraded", "roles": {"relay": False}}
        assert kitchen.relay is not None and kitchen.relay.alive  # alive, yet not working

        migrations.upgrade()
        eventually(lambda: api.get("/ready").status_code == 200, timeout=15)
        assert api.get("/ready").json()["roles"] == {"relay": True}
