"""Ingredients on the page, by mouse and by keyboard: *Add ingredient* (its name, its unit
chosen once, its starting stock, par level and threshold) and *Edit* (name, par level,
threshold). Each is checked on screen and in the database (the ingredient's row, its
first ledger row, the alert a new par level raises); refusals say why beside the field,
keep what was typed and store nothing."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from kitchen.db import session
from kitchen.models import Alert, Ingredient, LedgerEntry
from tests.e2e.browser import DESKTOP, HOW, PHONE, Person, ingredient, screenshot, text, until
from tests.helpers import Seeded

pytestmark = pytest.mark.browser


def stored(name: str) -> dict[str, Any] | None:
    """The ingredient named `name` as the database holds it, with its ledger (newest
    first: change, reason, note, stock after); None if there is none."""
    with session():
        row = Ingredient.get_or_none(Ingredient.name == name)
        if row is None:
            return None
        ledger = LedgerEntry.select().where(LedgerEntry.ingredient == row.id)
        return {
            "id": row.id,
            "unit": row.unit,
            "stock": row.stock,
            "full_stock": row.full_stock,
            "threshold": Fraction(row.threshold) if row.threshold else None,
            "ledger": [
                (e.grams, e.reason, e.note, e.stock_after) for e in ledger.order_by(-LedgerEntry.id)
            ],
        }


def names() -> list[str]:
    with session():
        return sorted(i.name for i in Ingredient.select())


def alerts(ingredient_id: int) -> list[tuple[int, int, str | None]]:
    """The ingredient's alerts: (stock, par level, cause)."""
    with session():
        rows = Alert.select().where(Alert.ingredient == ingredient_id).order_by(Alert.id)
        return [(a.stock, a.full_stock, a.cause) for a in rows]


def said(browser: WebDriver) -> str:
    return browser.find_element(By.ID, "said").text


@pytest.mark.parametrize("how", HOW)
def test_an_ingredient_is_added_in_millilitres(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str, tmp_path: Path
) -> None:
    cook = Person(browser, how)
    cook.press_button("Add ingredient", browser.find_element(By.ID, "stock-actions"))
    # The form opens on its first field; the amounts are in grams until a unit is picked.
    assert cook.field("Name").get_attribute("id") == (
        browser.switch_to.active_element.get_attribute("id")
    )
    assert cook.field("Starting stock (g)").is_displayed()
    cook.fill("Name", "milk")
    cook.choose("Unit", "millilitres (ml)")
    cook.fill("Starting stock (ml)", "12000")
    cook.fill("Par level (ml)", "20000")
    cook.fill("Threshold (%)", "12.5")
    screenshot(browser, tmp_path, "add-ingredient")
    cook.submit("Add ingredient")

    milk = until(lambda: ingredient(browser, "milk"), what="the milk bar")
    assert text(milk, ".amount") == "12 l of 20 l"
    assert text(milk, ".detail") == "60 % of par · low below 2.5 l (12.5 %)"
    assert text(milk, ".flag") == "ok"
    assert cook.closed()
    assert said(browser) == "Added milk: 12 l in stock, par level 20 l, low below 12.5 %."
    row = stored("milk")
    assert row is not None
    assert (row["unit"], row["stock"], row["full_stock"]) == ("ml", 12000, 20000)
    assert row["threshold"] == Fraction(1, 8)
    assert row["ledger"] == [(12000, "initial", None, 12000)]
    assert alerts(row["id"]) == []
    # The new row has its buttons too, and the focus is back on Add ingredient.
    assert cook.button("Edit", milk).get_attribute("aria-describedby") == (
        f"ingredient-{row['id']}-name"
    )
    assert browser.switch_to.active_element.text == "Add ingredient"


@pytest.mark.parametrize("how", HOW)
def test_an_ingredient_in_pieces_takes_the_stock_and_the_kitchens_threshold_when_left_empty(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str
) -> None:
    cook = Person(browser, how)
    cook.press_button("Add ingredient")
    cook.fill("Name", "burger bun")
    cook.choose("Unit", "pieces")
    # The kitchen's threshold, from GET /merchant, is what an empty field means.
    dialog = cook.dialog()
    until(
        lambda: "Empty: the kitchen's, 50 %." in text(dialog, '[id$="-threshold-hint"]'),
        what="the kitchen's threshold",
    )
    cook.fill("Starting stock (pieces)", "40")
    cook.submit("Add ingredient")

    bun = until(lambda: ingredient(browser, "burger bun"), what="the bun bar")
    assert text(bun, ".amount") == "40 pieces of 40 pieces"
    assert text(bun, ".detail") == "100 % of par · low below 20 pieces (50 %)"
    assert (
        said(browser)
        == "Added burger bun: 40 pieces in stock, par level 40 pieces, low below 50 %."
    )
    row = stored("burger bun")
    assert row is not None
    assert (row["unit"], row["stock"], row["full_stock"], row["threshold"]) == (
        "piece",
        40,
        40,
        None,
    )
    assert row["ledger"] == [(40, "initial", None, 40)]


@pytest.mark.parametrize("how", HOW)
def test_a_refused_ingredient_says_why_beside_the_field_and_stores_nothing(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str
) -> None:
    before = stored("onion")
    cook = Person(browser, how)
    cook.press_button("Add ingredient")
    cook.fill("Name", "onion")
    cook.choose("Unit", "pieces")
    cook.fill("Starting stock (pieces)", "12")
    cook.fill("Threshold (%)", "150")
    cook.submit("Add ingredient")
    # Said before asking Kitchen: the threshold is a percentage below 100.
    until(
        lambda: cook.error_beside("Threshold (%)").startswith(
            "enter a percentage above 0 and below 100"
        ),
        what="the threshold refused",
    )
    assert cook.field("Threshold (%)").get_attribute("aria-invalid") == "true"

    # Kitchen's refusal of a name taken, beside Name; what was typed is kept.
    cook.fill("Threshold (%)", "20")
    cook.submit("Add ingredient")
    until(
        lambda: cook.error_beside("Name") == "an ingredient named 'onion' exists already",
        what="the name taken",
    )
    assert cook.error_beside("Threshold (%)") == ""
    assert cook.field("Name").get_attribute("value") == "onion"
    assert cook.field("Unit").get_attribute("value") == "piece"
    assert cook.field("Starting stock (pieces)").get_attribute("value") == "12"
    assert cook.field("Threshold (%)").get_attribute("value") == "20"
    # Focus goes to the field to fix.
    assert browser.switch_to.active_element == cook.field("Name")

    cook.fill("Name", "leek")
    cook.fill("Starting stock (pieces)", "-5")
    cook.submit("Add ingredient")
    until(
        lambda: cook.error_beside("Starting stock (pieces)") == "enter a whole number, 0 or more",
        what="the stock refused",
    )
    cook.fill("Starting stock (pieces)", "5")
    cook.fill("Par level (pieces)", "0")
    cook.submit("Add ingredient")
    until(
        lambda: cook.error_beside("Par level (pieces)") == "enter a whole number above 0",
        what="the par level refused",
    )
    dialog = cook.dialog()
    assert "422" not in dialog.text and "409" not in dialog.text
    assert names() == ["beef", "cheese", "onion"]
    assert stored("onion") == before

    cook.press_button("Close", dialog)
    until(cook.closed, what="the form closed")
    assert not browser.find_elements(By.CSS_SELECTOR, 'li.ingredient[data-ingredient="leek"]')
    assert names() == ["beef", "cheese", "onion"]


@pytest.mark.parametrize("how", HOW)
def test_edit_renames_and_sets_the_par_level_and_threshold(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str
) -> None:
    _, seeded = kitchen_page
    cook = Person(browser, how)
    onion = ingredient(browser, "onion")
    edit = cook.button("Edit", onion)
    assert edit.get_attribute("aria-describedby") == f"ingredient-{seeded.onion}-name"
    cook.press(edit)
    # The form holds what is there now; its unit is said, not asked.
    assert cook.field("Name").get_attribute("value") == "onion"
    assert cook.field("Par level (g)").get_attribute("value") == "1000"
    assert cook.field("Threshold (%)").get_attribute("value") == "50"
    assert "grams (g)" in text(cook.dialog(), ".intro")
    cook.fill("Name", "red onion")
    cook.fill("Par level (g)", "2500")
    cook.submit("Save changes")

    # 1 kg is now below 50 % of 2.5 kg: low at once, and an alert for the new par level.
    red = until(
        lambda: (
            text(ingredient(browser, "red onion"), ".amount") == "1 kg of 2.5 kg"
            and ingredient(browser, "red onion")
        ),
        what="red onion at 1 kg of 2.5 kg",
    )
    assert text(red, ".flag") == "low"
    assert cook.closed()
    assert said(browser) == "Saved red onion: par level 2.5 kg, low below 1.25 kg (50 %)."
    row = stored("red onion")
    assert row is not None and row["id"] == seeded.onion
    # The threshold was left as it was: it stays the kitchen's, not a copy of it.
    assert (row["stock"], row["full_stock"], row["threshold"]) == (1000, 2500, None)
    assert row["ledger"] == [(1000, "initial", None, 1000)]
    assert alerts(seeded.onion) == [(1000, 2500, "levels")]
    assert browser.switch_to.active_element.text == "Edit"

    # The threshold alone, on cheese.
    cook.press_button("Edit", ingredient(browser, "cheese"))
    cook.fill("Threshold (%)", "12.5")
    cook.submit("Save changes")
    until(
        lambda: "low below 625 g (12.5 %)" in text(ingredient(browser, "cheese"), ".detail"),
        what="cheese's new threshold",
    )
    cheese = stored("cheese")
    assert cheese is not None
    assert (cheese["full_stock"], cheese["threshold"]) == (5000, Fraction(1, 8))
    assert said(browser) == "Saved cheese: par level 5 kg, low below 625 g (12.5 %)."


@pytest.mark.parametrize("how", HOW)
def test_a_refused_edit_says_why_beside_the_field_and_changes_nothing(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str
) -> None:
    _, seeded = kitchen_page
    before = stored("onion")
    cook = Person(browser, how)
    cook.press_button("Edit", ingredient(browser, "onion"))
    cook.fill("Name", "beef")
    cook.submit("Save changes")
    until(
        lambda: cook.error_beside("Name") == "an ingredient named 'beef' exists already",
        what="the name taken",
    )
    assert cook.field("Name").get_attribute("aria-invalid") == "true"

    cook.fill("Name", "onion")
    cook.fill("Par level (g)", "0")
    cook.submit("Save changes")
    until(
        lambda: cook.error_beside("Par level (g)") == "enter a whole number above 0",
        what="the par level refused",
    )
    assert cook.error_beside("Name") == ""
    cook.fill("Par level (g)", "1000")
    cook.fill("Threshold (%)", "0")
    cook.submit("Save changes")
    until(
        lambda: cook.error_beside("Threshold (%)").startswith("enter a percentage above 0"),
        what="the threshold refused",
    )
    assert cook.field("Par level (g)").get_attribute("value") == "1000"
    assert "422" not in cook.dialog().text
    assert stored("onion") == before
    assert alerts(seeded.onion) == []

    # As it was: nothing is asked of Kitchen, and the page says so.
    cook.fill("Threshold (%)", "50")
    cook.submit("Save changes")
    until(cook.closed, what="the form closed")
    until(lambda: said(browser) == "Nothing to change on onion.", what="nothing to change")
    assert stored("onion") == before
    assert text(ingredient(browser, "onion"), ".amount") == "1 kg of 1 kg"


def test_the_forms_fit_a_phone(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, tmp_path: Path
) -> None:
    """At 390 px the page does not scroll sideways, with a form open or not."""
    browser.set_window_size(*PHONE)
    try:
        cook = Person(browser, "keyboard")
        wide = "return document.documentElement.scrollWidth > document.documentElement.clientWidth"
        assert not browser.execute_script(wide)
        cook.press_button("Add ingredient")
        dialog = cook.dialog()
        assert dialog.size["width"] <= PHONE[0]
        assert cook.field("Unit").size["width"] <= dialog.size["width"]
        assert not browser.execute_script(wide)
        screenshot(browser, tmp_path, "add-ingredient-phone")
        cook.press_button("Close", dialog)
        cook.press_button("Edit", ingredient(browser, "beef"))
        assert cook.dialog().size["width"] <= PHONE[0]
        assert not browser.execute_script(wide)
    finally:
        browser.set_window_size(*DESKTOP)
