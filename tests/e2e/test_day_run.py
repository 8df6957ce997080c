"""A kitchen's whole day on the page, by keyboard, without curl: sign in with the key of
the pass, open with a count, take orders and cancel one, receive a delivery, record
waste, change a recipe, take another order, and read an ingredient's history. Every step
is checked on screen and in the database."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from app import Kitchen
from kitchen import merchants
from kitchen.db import session
from kitchen.models import LedgerEntry, Order, RecipeLine
from tests.e2e.browser import Person, ingredient, order, screenshot, text, until
from tests.helpers import Seeded, eventually, serve, stock_of

pytestmark = pytest.mark.browser


def status(order_id: int) -> str:
    with session():
        found: str = Order.get_by_id(order_id).status
        return found


def test_a_day_in_the_kitchen_is_run_from_the_page(
    make_kitchen: Callable[..., Kitchen], browser: WebDriver, tmp_path: Path
) -> None:
    # The pass: the API role and the relay; the kitchen's processing starts later, so
    # that an order can be cancelled before it is cooked.
    front = make_kitchen("api,relay,notification")
    pass_key = merchants.add_key(front.merchant_id, "pass")
    with serve(front.web_app()) as url:
        with httpx.Client(base_url=url) as http:
            seeded = Seeded.from_answer(http.post("/order/seed").json())

        # Morning: the cook at the pass signs the page in with the pass's key.
        browser.get(url + "/")
        cook = Person(browser, "keyboard")
        cook.press_button("Sign in with a key")
        field = until(lambda: browser.find_element(By.ID, "key"), what="the key field")
        until(field.is_displayed, what="the key field")
        field.send_keys(pass_key, Keys.ENTER)
        until(lambda: browser.find_element(By.ID, "sign-out").is_displayed(), what="signed in")

        # Open with a count: 20 g of onion less than the books.
        cook.press_button("Count", ingredient(browser, "onion"))
        cook.fill("Counted amount (g)", "980")
        cook.submit("Record count")
        until(
            lambda: (
                "\u221220 g against the books" in text(ingredient(browser, "onion"), ".row-note")
            ),
            what="the count's difference",
        )
        assert stock_of(seeded.onion) == 980

        # Two orders at the pass; the guest of the second leaves before it is cooked.
        placed = []
        for burgers in ("2", "1"):
            cook.press_button("New order")
            cook.choose("Product 1", "Burger")
            cook.fill("Quantity 1", burgers)
            cook.submit("Place order")
            until(cook.closed, what="the order form closed")
            said = until(lambda: browser.find_element(By.ID, "said").text, what="the order said")
            placed.append(int(said.split("#")[1].split(" ")[0]))
        first, second = placed
        until(lambda: order(browser, second), what="the second order listed")
        cook.press_button("Cancel order", order(browser, second))
        cook.fill("Reason (optional)", "guest left")
        cook.submit("Yes, cancel the order")
        until(lambda: text(order(browser, second), ".badge") == "cancelled", what="cancelled")
        assert status(second) == "cancelled"

        # The kitchen starts cooking: the first order is applied, the cancelled one never.
        make_kitchen("processing")
        until(lambda: text(order(browser, first), ".badge") == "applied", what="applied")
        eventually(lambda: stock_of(seeded.onion) == 940)
        assert status(second) == "cancelled"
        assert (stock_of(seeded.beef), stock_of(seeded.cheese)) == (19700, 4940)

        # A delivery of beef, then cheese dropped on the floor.
        cook.press_button("Restock", ingredient(browser, "beef"))
        cook.fill("Amount received (g)", "5000")
        cook.fill("Note (supplier, delivery note)", "Metro 4411")
        cook.submit("Add to stock")
        until(
            lambda: text(ingredient(browser, "beef"), ".amount") == "24.7 kg of 20 kg",
            what="24.7 kg of beef",
        )
        cook.press_button("Waste", ingredient(browser, "cheese"))
        cook.fill("Amount wasted (g)", "200")
        cook.fill("Reason", "dropped")
        cook.submit("Record waste")
        until(
            lambda: text(ingredient(browser, "cheese"), ".amount") == "4.74 kg of 5 kg",
            what="4.74 kg of cheese",
        )
        assert (stock_of(seeded.beef), stock_of(seeded.cheese)) == (24700, 4740)

        # A new recipe: more onion in the burger, and the next order takes it.
        cook.press_button(
            "Edit",
            until(
                lambda: browser.find_element(
                    By.CSS_SELECTOR, '#products tr[data-product="Burger"]'
                ),
                what="the Burger row",
            ),
        )
        cook.fill("Amount of onion (g)", "30")
        cook.submit("Save changes")
        until(cook.closed, what="the recipe saved")
        with session():
            line = RecipeLine.get(
                RecipeLine.product == seeded.burger, RecipeLine.ingredient == seeded.onion
            )
            assert line.grams == 30
        cook.press_button("New order")
        cook.choose("Product 1", "Burger")
        cook.fill("Quantity 1", "1")
        cook.submit("Place order")
        until(cook.closed, what="the order form closed")
        eventually(lambda: stock_of(seeded.onion) == 910)

        # Evening: the onion's history, newest first, says what moved it and who.
        cook.press_button("History", ingredient(browser, "onion"))
        dialog = cook.dialog()
        rows = until(
            lambda: [
                [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
                for row in dialog.find_elements(By.CSS_SELECTOR, "table.ledger tbody tr")
            ],
            what="the onion's ledger",
        )
        with session():
            kept = [
                dataclasses.astuple(Entry(e.grams, e.reason, e.order_id, e.key_name, e.stock_after))
                for e in LedgerEntry.select()
                .where(LedgerEntry.ingredient == seeded.onion)
                .order_by(LedgerEntry.id.desc())
            ]
        third = kept[0][2]
        assert kept == [
            (-30, "order", third, None, 910),
            (-40, "order", first, None, 940),
            (-20, "count", None, "pass", 980),
            (1000, "initial", None, None, 1000),
        ]
        shown = [(r[1], r[2], r[3], r[5]) for r in rows]
        assert shown[:3] == [
            ("\u221230 g", "used by an order", f"order #{third}", "910 g"),
            ("\u221240 g", "used by an order", f"order #{first}", "940 g"),
            ("\u221220 g", "count", "pass", "980 g"),
        ]
        screenshot(browser, tmp_path, "day-history")
        cook.press_button("Close", dialog)
        until(cook.closed, what="the history closed")
        screenshot(browser, tmp_path, "day")


@dataclasses.dataclass
class Entry:
    grams: int
    reason: str
    order_id: int | None
    key: str | None
    stock_after: int
