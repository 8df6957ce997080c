"""GET /ready: says which part is not working, and nothing an outsider should not see."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from kitchen import db
from kitchen import settings as config
from kitchen.http import Api, build_app
from tests.helpers import free_port


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

