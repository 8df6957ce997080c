"""Stock moves on the page, by mouse and by keyboard: a delivery (Restock), the end-of-day
count (Count, with the difference it recorded) and waste (Waste, with its reason). Each
is checked on screen and in the database (the ingredient's stock, its ledger row)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.e2e.browser import HOW, Person, ingredient, screenshot, text, until
from tests.helpers import Seeded, eventually, ledger_of, stock_of

pytestmark = pytest.mark.browser


def ledger(ingredient_id: int) -> list[tuple[int, str, str | None, int]]:
    """The ingredient's ledger, newest first: (change, reason, note, stock after)."""
    return [(e.grams, e.reason, e.note, e.stock_after) for e in ledger_of(ingredient_id)]


@pytest.mark.parametrize("how", HOW)
def test_a_delivery_is_received_with_restock(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str, tmp_path: Path
) -> None:
    _, seeded = kitchen_page
    cook = Person(browser, how)
    cook.press_button("Restock", ingredient(browser, "onion"))
    assert cook.field("Amount received (g)").get_attribute("id") == (
        browser.switch_to.active_element.get_attribute("id")
    )
    cook.fill("Amount received (g)", "2500")
    # Typed in grams, read back as a cook says it.
    reads = cook.dialog().find_element(By.CSS_SELECTOR, ".field-reads")
    assert reads.text == "= 2.5 kg"
    cook.fill("Note (supplier, delivery note)", "Metro, delivery note 4411")
    screenshot(browser, tmp_path, "restock")
    cook.submit("Add to stock")

    # The bar moves at once (not at the next 2 s poll), and the page says what was done.
    until(lambda: text(ingredient(browser, "onion"), ".amount") == "3.5 kg of 1 kg", what="3.5 kg")
    assert cook.closed()
    said = browser.find_element("id", "said").text
    assert said == "Restocked onion: +2.5 kg, now 3.5 kg."
    assert stock_of(seeded.onion) == 3500
    assert ledger(seeded.onion)[0] == (2500, "restock", "Metro, delivery note 4411", 3500)
    # The focus is back where the person was: on the onion's Restock button.
    assert browser.switch_to.active_element.text == "Restock"


@pytest.mark.parametrize("how", HOW)
def test_the_end_of_day_count_records_the_difference(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str
) -> None:
    url, seeded = kitchen_page
    with httpx.Client(base_url=url) as http:
        assert http.post("/order", json=seeded.order(2)).status_code == 201
    eventually(lambda: stock_of(seeded.onion) == 960)
    until(lambda: text(ingredient(browser, "onion"), ".amount") == "960 g of 1 kg", what="960 g")

    cook = Person(browser, how)
    cook.press_button("Count", ingredient(browser, "onion"))
    cook.fill("Counted amount (g)", "905")
    cook.submit("Record count")

    onion = until(
        lambda: (
            text(ingredient(browser, "onion"), ".amount") == "905 g of 1 kg"
            and ingredient(browser, "onion")
        ),
        what="905 g",
    )
    assert "\u221255 g against the books" in text(onion, ".row-note")  # -55 g
    assert "\u221255 g against the books" in browser.find_element("id", "said").text
    assert stock_of(seeded.onion) == 905
    assert ledger(seeded.onion)[0] == (-55, "count", None, 905)


@pytest.mark.parametrize("how", HOW)
def test_waste_is_recorded_with_its_reason(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str
) -> None:
    _, seeded = kitchen_page
    cook = Person(browser, how)
    cook.press_button("Waste", ingredient(browser, "cheese"))
    cook.fill("Amount wasted (g)", "250")
    cook.submit("Record waste")
    # No reason given: said beside the field, nothing sent, what was typed kept.
    until(lambda: cook.error_beside("Reason") == "say why it was wasted", what="the reason")
    assert cook.field("Amount wasted (g)").get_attribute("value") == "250"
    assert ledger(seeded.cheese)[0][1] == "initial"

    cook.fill("Reason", "dropped on the floor")
    cook.submit("Record waste")
    until(
        lambda: text(ingredient(browser, "cheese"), ".amount") == "4.75 kg of 5 kg",
        what="4.75 kg",
    )
    assert stock_of(seeded.cheese) == 4750
    assert ledger(seeded.cheese)[0] == (-250, "waste", "dropped on the floor", 4750)


@pytest.mark.parametrize("how", HOW)
def test_a_refused_move_says_why_beside_the_field_and_keeps_what_was_typed(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str
) -> None:
    _, seeded = kitchen_page
    cook = Person(browser, how)
    cook.press_button("Waste", ingredient(browser, "onion"))
    cook.fill("Amount wasted (g)", "5000")
    cook.fill("Reason", "spoiled")
    cook.submit("Record waste")
    # Kitchen's reason, in words, beside the amount; no status code on screen.
    until(
        lambda: "only 1000 g of onion are in stock" in cook.error_beside("Amount wasted (g)"),
        what="the refusal beside the amount",
    )
    dialog = cook.dialog()
    assert "422" not in dialog.text
    assert cook.field("Amount wasted (g)").get_attribute("value") == "5000"
    assert cook.field("Reason").get_attribute("value") == "spoiled"
    assert cook.field("Amount wasted (g)").get_attribute("aria-invalid") == "true"

    cook.fill("Amount wasted (g)", "a lot")
    cook.submit("Record waste")
    until(
        lambda: cook.error_beside("Amount wasted (g)") == "enter a whole number above 0",
        what="a whole number asked for",
    )
    assert stock_of(seeded.onion) == 1000
    assert [row[1] for row in ledger(seeded.onion)] == ["initial"]

    # Escape leaves the form; nothing changed.
    cook.press_button("Close", dialog)
    until(cook.closed, what="the form closed")
    assert text(ingredient(browser, "onion"), ".amount") == "1 kg of 1 kg"


def test_enter_pressed_twice_restocks_once(
    kitchen_page: tuple[str, Seeded], browser: WebDriver
) -> None:
    """A second Enter while the first is out asks nothing twice."""
    _, seeded = kitchen_page
    cook = Person(browser, "keyboard")
    cook.press_button("Restock", ingredient(browser, "beef"))
    cook.fill("Amount received (g)", "1000")
    field = cook.field("Amount received (g)")
    browser.execute_script(
        "arguments[0].form.requestSubmit(); arguments[0].form.requestSubmit();", field
    )
    until(lambda: text(ingredient(browser, "beef"), ".amount") == "21 kg of 20 kg", what="21 kg")
    assert stock_of(seeded.beef) == 21000
    assert [row[1] for row in ledger(seeded.beef)] == ["restock", "initial"]
