"""The menu on the page, by mouse and by keyboard: Add product (name, price, the recipe's
lines picked by ingredient name), Edit and Remove (after a confirmation). Each is checked
on screen and in the database (the product's name, price in cents and deleted_at, its
recipe lines with their exact amounts), and so are the refusals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from app import Kitchen
from kitchen.db import session
from kitchen.models import Product, RecipeLine
from tests.e2e.browser import HOW, PHONE, Person, ingredient, product, screenshot, text, until
from tests.helpers import Seeded, serve

pytestmark = pytest.mark.browser


@pytest.fixture
def menu_page(
    make_kitchen: Callable[..., Kitchen], browser: WebDriver
) -> Iterator[tuple[httpx.Client, Seeded]]:
    """The reference kitchen (beef, cheese, onion; a Burger), served, and its page open."""
    kitchen = make_kitchen()
    with serve(kitchen.web_app()) as url, httpx.Client(base_url=url) as http:
        seeded = Seeded.from_answer(http.post("/order/seed").json())
        browser.get(url + "/")
        until(lambda: product(browser, "Burger"), what="the Burger row")
        yield http, seeded


def stored(name: str) -> list[tuple[int | None, bool, list[tuple[str, int]]]]:
    """The products named `name` in the database: (price in cents, deleted, the recipe as
    (ingredient, amount) in the order of its lines)."""
    with session():
        found = []
        for p in Product.select().where(Product.name == name).order_by(Product.id):
            lines = RecipeLine.select().where(RecipeLine.product == p.id).order_by(RecipeLine.id)
            recipe = [(line.ingredient.name, line.grams) for line in lines]
            found.append((p.price, p.deleted_at is not None, recipe))
        return found


def products_count() -> int:
    with session():
        count: int = Product.select().count()
        return count


def said(browser: WebDriver) -> str:
    return str(browser.find_element(By.ID, "said").text)


def value(cook: Person, label: str) -> str:
    return cook.field(label).get_attribute("value") or ""


def chosen(cook: Person, label: str) -> str:
    return str(Select(cook.field(label)).first_selected_option.text)


@pytest.mark.parametrize("how", HOW)
def test_a_product_is_added_with_its_recipe_picked_by_ingredient_name(
    menu_page: tuple[httpx.Client, Seeded], browser: WebDriver, how: str, tmp_path: Path
) -> None:
    cook = Person(browser, how)
    cook.press_button("Add product")
    dialog = cook.dialog()
    assert text(dialog, "h2") == "Add product"
    # The merchant's currency on the price's label; the focus on the first field.
    assert cook.field("Name").get_attribute("id") == (
        browser.switch_to.active_element.get_attribute("id")
    )
    cook.fill("Name", "Double cheeseburger")
    assert cook.field("Price (EUR)").get_attribute("inputmode") == "decimal"
    cook.fill("Price (EUR)", "9.5")
    # One line to start with; the amount's label names the ingredient and its unit.
    assert chosen(cook, "Ingredient 1") == "Choose an ingredient"
    cook.choose("Ingredient 1", "beef")
    cook.fill("Amount of beef (g)", "300")
    cook.press_button("Add a recipe line", dialog)
    cook.choose("Ingredient 2", "onion")
    cook.fill("Amount of onion (g)", "15")
    cook.press_button("Add a recipe line", dialog)
    cook.choose("Ingredient 3", "cheese")
    cook.fill("Amount of cheese (g)", "50")
    # The onion was a mistake: its line goes, the others are numbered again.
    cook.press_button("Remove line 2", dialog)
    assert chosen(cook, "Ingredient 2") == "cheese"
    assert value(cook, "Amount of cheese (g)") == "50"
    assert not dialog.find_elements(By.XPATH, ".//label[text()='Ingredient 3']")
    cook.fill("Amount of cheese (g)", "60")
    screenshot(browser, tmp_path, "menu")
    cook.submit("Add to the menu")

    # The row at once, with its recipe and what the stock can make (beef: 20 kg / 300 g).
    row = until(lambda: product(browser, "Double cheeseburger"), what="the new product's row")
    assert cook.closed()
    assert text(row, ".recipe") == "300 g beef, 60 g cheese"
    assert text(row, ".count") == "66"
    assert said(browser) == "Added Double cheeseburger: 300 g beef, 60 g cheese; 9.50 EUR."
    assert stored("Double cheeseburger") == [(950, False, [("beef", 300), ("cheese", 60)])]
    # The focus is back where the person was.
    assert browser.switch_to.active_element.text == "Add product"


@pytest.mark.parametrize("how", HOW)
def test_a_recipe_takes_each_ingredient_in_its_own_unit(
    menu_page: tuple[httpx.Client, Seeded], browser: WebDriver, how: str
) -> None:
    http, _ = menu_page
    for made in (
        {"name": "bun", "unit": "piece", "stock": 40},
        {"name": "milk", "unit": "ml", "stock": 5000},
    ):
        assert http.post("/ingredients", json=made).status_code == 201
    until(lambda: ingredient(browser, "milk"), what="the milk bar")
    cook = Person(browser, how)
    cook.press_button("Add product")
    dialog = cook.dialog()
    cook.fill("Name", "Slider")
    cook.choose("Ingredient 1", "bun")
    cook.fill("Amount of bun (pieces)", "2")
    cook.press_button("Add a recipe line", dialog)
    cook.choose("Ingredient 2", "milk")
    assert cook.field("Amount of milk (ml)").is_displayed()
    cook.press_button("Remove line 2", dialog)
    cook.press_button("Add a recipe line", dialog)
    cook.choose("Ingredient 2", "beef")
    cook.fill("Amount of beef (g)", "80")
    cook.submit("Add to the menu")

    row = until(lambda: product(browser, "Slider"), what="the Slider row")
    assert text(row, ".recipe") == "2 pieces bun, 80 g beef"
    assert text(row, ".count") == "20"  # 40 buns, 2 a slider
    assert said(browser) == "Added Slider: 2 pieces bun, 80 g beef; no price."
    assert stored("Slider") == [(None, False, [("bun", 2), ("beef", 80)])]

    # Edit shows each amount in its unit again.
    cook.press_button("Edit", product(browser, "Slider"))
    assert value(cook, "Amount of bun (pieces)") == "2"
    assert value(cook, "Amount of beef (g)") == "80"


@pytest.mark.parametrize("how", HOW)
def test_a_product_is_edited_name_price_and_recipe(
    menu_page: tuple[httpx.Client, Seeded], browser: WebDriver, how: str
) -> None:
    cook = Person(browser, how)
    cook.press_button("Edit", product(browser, "Burger"))
    dialog = cook.dialog()
    assert text(dialog, "h2") == "Edit Burger"
    # The form holds the product as it is: the seed's Burger has no price.
    assert value(cook, "Name") == "Burger"
    assert value(cook, "Price (EUR)") == ""
    assert [chosen(cook, f"Ingredient {n}") for n in (1, 2, 3)] == ["beef", "cheese", "onion"]
    assert value(cook, "Amount of beef (g)") == "150"
    assert value(cook, "Amount of cheese (g)") == "30"
    assert value(cook, "Amount of onion (g)") == "20"

    cook.fill("Name", "Classic burger")
    cook.fill("Price (EUR)", "12,5")
    cook.press_button("Remove line 2", dialog)  # no cheese
    cook.fill("Amount of onion (g)", "25")
    cook.submit("Save changes")

    row = until(lambda: product(browser, "Classic burger"), what="the renamed row")
    assert cook.closed()
    assert text(row, ".recipe") == "150 g beef, 25 g onion"
    assert text(row, ".count") == "40"  # onion: 1 kg / 25 g
    assert not browser.find_elements(By.CSS_SELECTOR, '#products tr[data-product="Burger"]')
    assert said(browser) == "Saved Classic burger: 150 g beef, 25 g onion; 12.50 EUR."
    assert stored("Classic burger") == [(1250, False, [("beef", 150), ("onion", 25)])]
    assert browser.switch_to.active_element.text == "Edit"

    # Opened again: the price as typed money; the price emptied removes it.
    cook.press_button("Edit", product(browser, "Classic burger"))
    assert value(cook, "Price (EUR)") == "12.50"
    cook.fill("Price (EUR)", "")
    cook.submit("Save changes")
    until(lambda: said(browser) == "Saved Classic burger: 150 g beef, 25 g onion; no price.")
    assert stored("Classic burger") == [(None, False, [("beef", 150), ("onion", 25)])]

    # Sent as it was: nothing asked of Kitchen, and the page says so.
    cook.press_button("Edit", product(browser, "Classic burger"))
    cook.submit("Save changes")
    until(lambda: said(browser) == "Nothing changed in Classic burger.", what="nothing changed")
    assert cook.closed()


@pytest.mark.parametrize("how", HOW)
def test_a_product_is_removed_only_once_confirmed(
    menu_page: tuple[httpx.Client, Seeded], browser: WebDriver, how: str
) -> None:
    cook = Person(browser, how)
    cook.press_button("Remove", product(browser, "Burger"))
    dialog = cook.dialog()
    assert text(dialog, "h2") == "Remove Burger from the menu?"
    # The safe answer has the focus: Enter by mistake removes nothing.
    assert browser.switch_to.active_element.text == "Close"
    cook.press_button("Close", dialog)
    until(cook.closed, what="the confirmation closed")
    assert stored("Burger") == [(None, False, [("beef", 150), ("cheese", 30), ("onion", 20)])]
    assert product(browser, "Burger").is_displayed()

    cook.press_button("Remove", product(browser, "Burger"))
    cook.press_button("Remove from the menu", cook.dialog())
    until(
        lambda: browser.find_element(By.ID, "products-empty").is_displayed(),
        what="No products yet.",
    )
    assert not browser.find_elements(By.CSS_SELECTOR, '#products tr[data-product="Burger"]')
    assert said(browser) == "Removed Burger from the menu."
    # Kept for the orders that name it, with when it left the menu.
    assert stored("Burger") == [(None, True, [("beef", 150), ("cheese", 30), ("onion", 20)])]
    # Its row is gone: the focus goes to Add product, not to nowhere.
    until(lambda: browser.switch_to.active_element.text == "Add product", what="focus on Add")


@pytest.mark.parametrize("how", HOW)
def test_a_refused_name_or_price_is_said_beside_it_and_nothing_is_stored(
    menu_page: tuple[httpx.Client, Seeded], browser: WebDriver, how: str
) -> None:
    cook = Person(browser, how)
    cook.press_button("Add product")
    cook.fill("Name", "Burger")
    cook.fill("Price (EUR)", "4.999")
    cook.choose("Ingredient 1", "onion")
    cook.fill("Amount of onion (g)", "40")
    cook.submit("Add to the menu")
    # A price with more digits than cents: said before asking Kitchen.
    until(
        lambda: cook.error_beside("Price (EUR)") == "enter a price like 12.50 (EUR)",
        what="the price refused",
    )
    assert cook.field("Price (EUR)").get_attribute("aria-invalid") == "true"
    assert browser.switch_to.active_element == cook.field("Price (EUR)")

    cook.fill("Price (EUR)", "4.99")
    cook.submit("Add to the menu")
    # The name is taken: Kitchen's reason beside Name, no status code, the rest kept.
    until(
        lambda: cook.error_beside("Name") == "a product named 'Burger' exists already",
        what="the name refused",
    )
    dialog = cook.dialog()
    assert "409" not in dialog.text
    assert cook.error_beside("Price (EUR)") == ""
    assert value(cook, "Name") == "Burger"
    assert value(cook, "Price (EUR)") == "4.99"
    assert chosen(cook, "Ingredient 1") == "onion"
    assert value(cook, "Amount of onion (g)") == "40"
    assert products_count() == 1

    cook.fill("Name", "Onion rings")
    cook.submit("Add to the menu")
    until(lambda: product(browser, "Onion rings"), what="the product added")
    assert stored("Onion rings") == [(499, False, [("onion", 40)])]


@pytest.mark.parametrize("how", HOW)
def test_a_refused_recipe_line_is_marked_beside_its_own_field(
    menu_page: tuple[httpx.Client, Seeded], browser: WebDriver, how: str, tmp_path: Path
) -> None:
    cook = Person(browser, how)
    cook.press_button("Add product")
    dialog = cook.dialog()
    cook.fill("Name", "Onion soup")
    cook.submit("Add to the menu")
    # No line filled in: the recipe as a whole is refused.
    until(
        lambda: "add at least one ingredient" in text(dialog, ".recipe-lines > .field-error"),
        what="the empty recipe refused",
    )

    cook.choose("Ingredient 1", "onion")
    cook.press_button("Add a recipe line", dialog)
    cook.choose("Ingredient 2", "beef")
    cook.fill("Amount of onion (g)", "a handful")
    cook.submit("Add to the menu")
    # Each reason beside the field it is about; the recipe says which lines to look at.
    until(
        lambda: cook.error_beside("Amount of onion (g)") == "enter a whole number above 0",
        what="the handful refused",
    )
    assert cook.error_beside("Amount of beef (g)") == "enter a whole number above 0"
    assert cook.error_beside("Ingredient 1") == ""
    assert text(dialog, ".recipe-lines > .field-error") == "Check lines 1 and 2 of the recipe."
    assert cook.field("Amount of onion (g)").get_attribute("aria-invalid") == "true"
    assert browser.switch_to.active_element == cook.field("Amount of onion (g)")
    assert "422" not in dialog.text
    screenshot(browser, tmp_path, "menu-refused")

    cook.fill("Amount of beef (g)", "5")
    cook.choose("Ingredient 2", "onion")
    cook.fill("Amount of onion (g)", "200")  # line 1's
    cook.submit("Add to the menu")
    until(
        lambda: (
            cook.error_beside("Ingredient 2")
            == "onion is on line 1 already: one line per ingredient"
        ),
        what="the second onion refused",
    )
    assert text(dialog, ".recipe-lines > .field-error") == "Check line 2 of the recipe."
    assert browser.switch_to.active_element == cook.field("Ingredient 2")
    assert cook.error_beside("Ingredient 1") == ""
    assert stored("Onion soup") == []

    cook.press_button("Remove line 2", dialog)
    # The focus is on line 1's ingredient (a select, where Enter sends nothing): the button.
    assert browser.switch_to.active_element == cook.field("Ingredient 1")
    cook.press_button("Add to the menu", dialog)
    until(lambda: product(browser, "Onion soup"), what="the soup added")
    assert stored("Onion soup") == [(None, False, [("onion", 200)])]
    assert text(product(browser, "Onion soup"), ".count") == "5"


@pytest.mark.parametrize("how", HOW)
def test_a_merchant_that_requires_payments_is_asked_for_a_price_in_its_currency(
    menu_page: tuple[httpx.Client, Seeded], browser: WebDriver, how: str
) -> None:
    http, _ = menu_page
    required = {"payments": "required", "currency": "JPY"}
    assert http.patch("/merchant", json=required).status_code == 200
    cook = Person(browser, how)
    cook.press_button("Add product")
    cook.fill("Name", "Gyudon")
    cook.choose("Ingredient 1", "beef")
    cook.fill("Amount of beef (g)", "120")
    cook.submit("Add to the menu")
    until(
        lambda: (
            cook.error_beside("Price (JPY)")
            == "give a price: orders are paid before they are cooked"
        ),
        what="a price asked for",
    )
    # Yen have no cents: 12.5 is not an amount of yen.
    cook.fill("Price (JPY)", "12.5")
    cook.submit("Add to the menu")
    until(
        lambda: cook.error_beside("Price (JPY)") == "enter a price like 1250 (JPY)",
        what="yen asked for",
    )
    assert stored("Gyudon") == []
    cook.fill("Price (JPY)", "1200")
    cook.submit("Add to the menu")
    until(lambda: said(browser) == "Added Gyudon: 120 g beef; 1,200 JPY.", what="Gyudon added")
    assert stored("Gyudon") == [(1200, False, [("beef", 120)])]


def test_without_the_merchants_currency_the_form_says_so_and_sends_nothing(
    menu_page: tuple[httpx.Client, Seeded], browser: WebDriver
) -> None:
    """GET /merchant unanswered when Edit opens: the price cannot be shown nor read, so
    nothing is sent (an emptied price would remove the product's)."""
    http, seeded = menu_page
    assert http.patch(f"/products/{seeded.burger}", json={"price": 1250}).status_code == 200
    browser.execute_script(
        "const real = window.fetch;"
        "window.fetch = (path, init) => path === '/merchant'"
        " ? Promise.reject(new TypeError('offline')) : real(path, init);"
    )
    cook = Person(browser, "mouse")
    cook.press_button("Edit", product(browser, "Burger"))
    dialog = cook.dialog()
    until(
        lambda: text(dialog, ".form-error").startswith("Kitchen did not answer"),
        what="the form saying Kitchen did not answer",
    )
    cook.fill("Name", "Burger deluxe")
    cook.submit("Save changes")
    until(
        lambda: (
            text(dialog, ".form-error")
            == "Kitchen did not answer when this form opened: close it and open it again."
        ),
        what="nothing sent",
    )
    assert stored("Burger") == [(1250, False, [("beef", 150), ("cheese", 30), ("onion", 20)])]
    assert stored("Burger deluxe") == []


def test_the_menu_fits_a_phone_and_is_edited_by_keyboard_alone(
    menu_page: tuple[httpx.Client, Seeded], browser: WebDriver, tmp_path: Path
) -> None:
    width, height = PHONE
    phone = {"width": width, "height": height, "deviceScaleFactor": 3, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    try:
        until(lambda: browser.execute_script("return window.innerWidth") == width, what="390 px")
        sideways = (
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert browser.execute_script(sideways) == 0
        # The row's buttons are on screen, none cut off at the right edge.
        for b in product(browser, "Burger").find_elements(By.TAG_NAME, "button"):
            assert b.rect["x"] >= 0 and b.rect["x"] + b.rect["width"] <= width, b.text

        cook = Person(browser, "keyboard")
        cook.press_button("Edit", product(browser, "Burger"))
        dialog = cook.dialog()
        cook.press_button("Add a recipe line", dialog)
        # The new line has the focus, ready for its ingredient.
        assert browser.switch_to.active_element == cook.field("Ingredient 4")
        assert dialog.rect["x"] >= 0 and dialog.rect["x"] + dialog.rect["width"] <= width
        inside = "return arguments[0].scrollWidth - arguments[0].clientWidth"
        assert browser.execute_script(inside, dialog) == 0
        assert browser.execute_script(sideways) == 0
        screenshot(browser, tmp_path, "menu-phone")
        cook.press_button("Remove line 4", dialog)
        # Its line gone, the focus goes to the line before it.
        assert browser.switch_to.active_element == cook.field("Ingredient 3")
        cook.fill("Amount of onion (g)", "10")
        cook.submit("Save changes")
        until(lambda: text(product(browser, "Burger"), ".count") == "100", what="100 burgers")
        assert stored("Burger") == [(None, False, [("beef", 150), ("cheese", 30), ("onion", 10)])]
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
