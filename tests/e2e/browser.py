"""The page in a real browser: Debian's chromium, driven by Selenium, and a person who
uses it by mouse or by keyboard.

Tests find what a person finds: a button by its words inside the row it acts on, a field
by its visible label, the text on the page; and they check the result where the person
would and where Kitchen keeps it (the database). Skipped, saying why, where chromium or
chromedriver is missing (`apt-get install chromium chromium-driver`; `.ci/run` installs
them).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 900)
PHONE = (390, 844)
# The README's pictures: KITCHEN_TEST_SCREENSHOTS=docs writes these screens there
# (docs/<name>.png); every other screenshot, and all of them without the variable, go to
# the test's temporary folder, so that a test run does not change a tracked file.
SCREENSHOTS = os.environ.get("KITCHEN_TEST_SCREENSHOTS", "")
README_PICTURES = {
    "dashboard",
    "day",
    "restock",
    "add-ingredient",
    "menu",
    "new-order",
    "refund",
    "day-history",
    "menu-phone",
    "forecast",
}
HOW = ("mouse", "keyboard")


def start_browser() -> Iterator[WebDriver]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        pytest.skip(
            f"browser tests need Debian's chromium and chromium-driver ({', '.join(missing)} "
            "missing): apt-get install chromium chromium-driver"
        )
    profile = tempfile.TemporaryDirectory(prefix="kitchen-chromium-")
    options = Options()
    # Both paths given: otherwise Selenium Manager tries to download a browser and driver.
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile.name}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_window_size(*DESKTOP)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


def until(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll what the page shows until `check` is truthy; fail saying what was awaited.
    Elements redrawn between two looks (stale) or not drawn yet count as not yet."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (NoSuchElementException, StaleElementReferenceException):
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"the page did not show {what or 'it'} within {timeout} s: {value!r}")


def ingredient(driver: WebDriver, name: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'li.ingredient[data-ingredient="{name}"]')


def product(driver: WebDriver, name: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'#products tr[data-product="{name}"]')


def order(driver: WebDriver, order_id: int) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'#orders tr[data-order="{order_id}"]')


def text(element: WebElement, selector: str) -> str:
    return element.find_element(By.CSS_SELECTOR, selector).text


def classes(element: WebElement) -> list[str]:
    return (element.get_attribute("class") or "").split()


def row_text(driver: WebDriver, selector: str, part: str = "") -> str:
    """The text of a table row (or of `part` of it), read in one go: rows are redrawn."""
    row = driver.find_element(By.CSS_SELECTOR, selector)
    return text(row, part) if part else row.text


def level(row: WebElement) -> float:
    """How full an ingredient's bar looks: its fill's drawn width against its track's."""
    fill = row.find_element(By.CSS_SELECTOR, ".fill").size["width"]
    track = row.find_element(By.CSS_SELECTOR, ".track").size["width"]
    return float(fill) / float(track)


def screenshot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    """The whole page as `name`.png: in docs/ when asked and it is one of the README's
    (see SCREENSHOTS)."""
    width, height = driver.get_window_size().values()
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(height, int(full) + 120))
    folder = SCREENSHOTS if SCREENSHOTS and name in README_PICTURES else tmp_path
    path = Path(folder) / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(width, height)
    return path


class Person:
    """Someone at the page, by mouse (points and clicks) or by keyboard (Tab to a control,
    Enter or Space on it, types): the same task done both ways must end the same."""

    def __init__(self, driver: WebDriver, how: str) -> None:
        assert how in HOW
        self.driver, self.how = driver, how

    # -- finding, as a person does --------------------------------------------------------

    def button(self, words: str, within: WebElement | None = None) -> WebElement:
        """The button with these words (its accessible name), inside `within` (a row, a
        dialog) or the page."""
        scope: Any = within or self.driver

        def find() -> WebElement | None:
            for b in scope.find_elements(By.TAG_NAME, "button"):
                if b.is_displayed() and b.text.strip() == words:
                    return b
            return None

        found: WebElement = until(find, what=f"a button {words!r}")
        assert found.accessible_name == words, found.accessible_name
        return found

    def dialog(self) -> WebElement:
        """The form open in front of the page."""
        found: WebElement = until(
            lambda: self.driver.find_element(By.CSS_SELECTOR, "dialog[open]"), what="a form"
        )
        return found

    def field(self, label: str, within: WebElement | None = None) -> WebElement:
        """The field whose visible <label> says `label` (in the open form by default)."""
        scope = within or self.dialog()
        for node in scope.find_elements(By.TAG_NAME, "label"):
            if node.is_displayed() and node.text.strip() == label:
                found = self.driver.find_element(By.ID, node.get_attribute("for") or "")
                return found
        shown = [n.text for n in scope.find_elements(By.TAG_NAME, "label")]
        raise AssertionError(f"no field labelled {label!r}; labels: {shown}")

    def error_beside(self, label: str) -> str:
        """The words shown beside the field labelled `label`."""
        field = self.field(label)
        ids = (field.get_attribute("aria-describedby") or "").split()
        return " ".join(
            self.driver.find_element(By.ID, i).text for i in ids if i.endswith("-error")
        )

    # -- acting ---------------------------------------------------------------------------

    def focus(self, element: WebElement, limit: int = 400) -> None:
        """Tab (forward) until `element` has the focus, as a keyboard user gets there."""
        for _ in range(limit):
            if self.driver.switch_to.active_element == element:
                return
            ActionChains(self.driver).send_keys(Keys.TAB).perform()
        raise AssertionError("Tab never reached the element: it is not in the tab order")

    def press(self, element: WebElement) -> None:
        if self.how == "mouse":
            ActionChains(self.driver).move_to_element(element).click().perform()
        else:
            self.focus(element)
            ActionChains(self.driver).send_keys(Keys.ENTER).perform()

    def press_button(self, words: str, within: WebElement | None = None) -> None:
        self.press(self.button(words, within))

    def fill(self, label: str, value: str) -> None:
        """Type `value` into the field labelled `label`, replacing what it held."""
        field = self.field(label)
        if self.how == "mouse":
            ActionChains(self.driver).move_to_element(field).click().perform()
        else:
            self.focus(field)
        keys = ActionChains(self.driver)
        keys.key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys(Keys.DELETE)
        keys.send_keys(value).perform()

    def choose(self, label: str, option: str) -> None:
        """Pick the option with these words in the select labelled `label`."""
        field = self.field(label)
        if self.how == "mouse":
            Select(field).select_by_visible_text(option)
            return
        self.focus(field)
        # A closed select takes typed letters as a search for the option.
        ActionChains(self.driver).send_keys(option).perform()
        assert Select(field).first_selected_option.text == option

    def tick(self, label: str, on: bool = True) -> None:
        field = self.field(label)
        if field.is_selected() != on:
            if self.how == "mouse":
                ActionChains(self.driver).move_to_element(field).click().perform()
            else:
                self.focus(field)
                ActionChains(self.driver).send_keys(Keys.SPACE).perform()

    def submit(self, words: str) -> None:
        """Send the open form: its button by mouse; Enter in its last field by keyboard."""
        dialog = self.dialog()
        if self.how == "mouse":
            self.press(self.button(words, dialog))
        else:
            ActionChains(self.driver).send_keys(Keys.ENTER).perform()

    def closed(self) -> bool:
        return not self.driver.find_elements(By.CSS_SELECTOR, "dialog[open]")
