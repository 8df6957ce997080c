"""The page on a phone (390 px wide) and at the browser's zoom of 200 %: nothing scrolls
sideways, every form fits the screen, and a task still gets done by keyboard alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from app import Kitchen
from kitchen.db import session
from kitchen.models import Ingredient
from tests.e2e.browser import DESKTOP, PHONE, Person, ingredient, text, until
from tests.helpers import Seeded, serve

pytestmark = pytest.mark.browser

# A 1280 x 900 window zoomed to 200 % lays the page out in 640 x 450 CSS pixels, each
# drawn twice as large: what Chromium's zoom does, set through DevTools.
ZOOMED = {"width": DESKTOP[0] // 2, "height": DESKTOP[1] // 2, "deviceScaleFactor": 2}
SCREENS: dict[str, dict[str, Any]] = {
    "phone": {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 3, "mobile": True},
    "zoom 200 %": {**ZOOMED, "mobile": False},
}


@pytest.fixture
def screen(
    request: pytest.FixtureRequest, browser: WebDriver
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The browser shaped as `request.param`, restored after."""
    name = request.param
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", SCREENS[name])
    try:
        yield name, SCREENS[name]
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def sideways(driver: WebDriver) -> int:
    """How far the page scrolls sideways (0: it fits)."""
    value: int = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return value


@pytest.mark.parametrize("screen", list(SCREENS), indirect=True)
def test_the_page_fits_and_a_restock_is_done_by_keyboard(
    make_kitchen: Callable[..., Kitchen],
    browser: WebDriver,
    screen: tuple[str, dict[str, Any]],
) -> None:
    name, shape = screen
    kitchen = make_kitchen()
    with serve(kitchen.web_app()) as url, httpx.Client(base_url=url) as http:
        seeded = Seeded.from_answer(http.post("/order/seed").json())
        assert http.post("/order", json=seeded.order(3)).status_code == 201
        browser.get(url + "/")
        until(lambda: ingredient(browser, "onion"), what="the onion bar")
        assert browser.execute_script("return window.innerWidth") == shape["width"]
        assert sideways(browser) == 0, name

        # Every button of a row is on screen, none cut off at the right edge.
        for button in ingredient(browser, "onion").find_elements(By.TAG_NAME, "button"):
            box = button.rect
            assert box["x"] >= 0 and box["x"] + box["width"] <= shape["width"], button.text

        cook = Person(browser, "keyboard")
        cook.press_button("Restock", ingredient(browser, "onion"))
        dialog = cook.dialog()
        box = dialog.rect
        assert box["x"] >= 0 and box["x"] + box["width"] <= shape["width"], box
        assert sideways(browser) == 0, name
        cook.fill("Amount received (g)", "400")
        cook.submit("Add to stock")
        until(
            lambda: text(ingredient(browser, "onion"), ".amount") == "1.34 kg of 1 kg",
            what="1.34 kg",
        )
        with session():
            assert Ingredient.get_by_id(seeded.onion).stock == 1340
        assert sideways(browser) == 0, name
