"""Fixtures of the browser tests (tests/e2e/browser.py has the helpers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from app import Kitchen
from tests.e2e.browser import ingredient, start_browser, until
from tests.helpers import Seeded, serve


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless chromium for the module (each test's page has an origin of its own,
    so nothing, sessionStorage included, carries over between tests)."""
    yield from start_browser()


@pytest.fixture
def kitchen_page(
    make_kitchen: Callable[..., Kitchen], browser: WebDriver
) -> Iterator[tuple[str, Seeded]]:
    """The reference kitchen (beef, cheese, onion; a burger), served, and its page open."""
    kitchen = make_kitchen()
    with serve(kitchen.web_app()) as url, httpx.Client(base_url=url) as http:
        seeded = Seeded.from_answer(http.post("/order/seed").json())
        browser.get(url + "/")
        until(lambda: ingredient(browser, "onion"), what="the onion bar")
        yield url, seeded
