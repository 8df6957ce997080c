"""The alert address setting seeds the default merchant once; a later start never moves it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from app import Kitchen
from kitchen.db import session
from kitchen.models import Merchant


def test_a_later_start_does_not_overwrite_the_alert_address(
    make_kitchen: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
) -> None:
    make_kitchen("api", alerts={"email": "first@example.com"})
    with caplog.at_level(logging.WARNING):
        # In a split deployment, another process with its own copy of the setting.
        make_kitchen("processing", alerts={"email": "second@example.com"})

    with session():
        assert [m.alert_email for m in Merchant.select()] == ["first@example.com"]
    assert "alerts.email second@example.com is not used" in caplog.text
