"""Fixtures of the browser tests (tests/e2e/browser.py has the helpers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.e2e.browser import start_browser


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless chromium for the module (each test's page has an origin of its own,
    so nothing, sessionStorage included, carries over between tests)."""
    yield from start_browser()
