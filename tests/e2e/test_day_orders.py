"""Orders on the page, by mouse and by keyboard: a new order taken (products by name,
quantities, more lines; sent again after a lost answer it is still one order), an order
cancelled before the kitchen applied it (its hold voided), and a paid order refunded (in
part, or in full with its ingredients put back). Each is checked on screen and in the
database: the order's status and lines, the payment's status and refunded cents, the
refund's ledger rows; refusals too (nothing stored, what was typed kept)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from app import Kitchen
from kitchen import merchants
from kitchen.db import session
from kitchen.fake_provider import FakeProvider
from kitchen.models import Ingredient, LedgerEntry, Order, OrderLine, Payment, Refund
from tests.e2e.browser import (
    HOW,
    Person,
    ingredient,
    order,
    row_text,
    screenshot,
    text,
    until,
)
from tests.e2e.test_page_layout import SCREENS
from tests.helpers import Seeded, eventually, serve
from tests.paid_orders import Counting

pytestmark = pytest.mark.browser

PRICE = 1250  # cents a burger


@dataclass(frozen=True)
class Page:
    url: str
    http: httpx.Client
    seeded: Seeded
    merchant_id: int


def open_page(browser: WebDriver, url: str) -> None:
    browser.get(url + "/")
    until(lambda: ingredient(browser, "onion"), what="the onion bar")


@pytest.fixture
def without_processing(make_kitchen: Callable[..., Kitchen], browser: WebDriver) -> Iterator[Page]:
    """The reference kitchen with the API alone: orders stay pending (nobody applies
    them), as in the moment between placing an order and the kitchen taking it."""
    kitchen = make_kitchen("api")
    with serve(kitchen.web_app()) as url, httpx.Client(base_url=url) as http:
        seeded = Seeded.from_answer(http.post("/order/seed").json())
        open_page(browser, url)
        yield Page(url, http, seeded, kitchen.merchant_id)


@pytest.fixture
def every_role(make_kitchen: Callable[..., Kitchen], browser: WebDriver) -> Iterator[Page]:
    """The reference kitchen with every role on, payments off."""
    kitchen = make_kitchen()
    with serve(kitchen.web_app()) as url, httpx.Client(base_url=url) as http:
        seeded = Seeded.from_answer(http.post("/order/seed").json())
        open_page(browser, url)
        yield Page(url, http, seeded, kitchen.merchant_id)


@pytest.fixture
def paying(make_kitchen: Callable[..., Kitchen], browser: WebDriver) -> Iterator[Page]:
    """Every role on, payments required in EUR through the fake provider, a burger at
    12.50 EUR."""
    kitchen = make_kitchen()
    with serve(kitchen.web_app()) as url, httpx.Client(base_url=url) as http:
        seeded = Seeded.from_answer(http.post("/order/seed").json())
        required = {"payments": "required", "currency": "EUR"}
        assert http.patch("/merchant", json=required).status_code == 200
        assert http.patch(f"/products/{seeded.burger}", json={"price": PRICE}).status_code == 200
        open_page(browser, url)
        yield Page(url, http, seeded, kitchen.merchant_id)


def sign_in(browser: WebDriver, page: Page, name: str) -> None:
    """Sign the page in with a new key of the merchant named `name`, as the cook at the
    till does: what the page then does, it does with that key."""
    key = merchants.add_key(page.merchant_id, name)
    cook = Person(browser, "keyboard")
    cook.press_button("Sign in with a key")
    field = until(lambda: browser.find_element(By.ID, "key"), what="the key field")
    until(field.is_displayed, what="the key field")
    field.send_keys(key, Keys.ENTER)
    until(lambda: browser.find_element(By.ID, "sign-out").is_displayed(), what="signed in")


# -- what Kitchen stored ----------------------------------------------------------------


def orders() -> list[tuple[int, str, str | None]]:
    """Every order: (id, status, reason), oldest first."""
    with session():
        return [(o.id, o.status, o.reason) for o in Order.select().order_by(Order.id)]


def lines_of(order_id: int) -> list[tuple[int, int]]:
    with session():
        rows = OrderLine.select().where(OrderLine.order == order_id).order_by(OrderLine.id)
        return [(ln.product_id, ln.quantity) for ln in rows]


def payment(order_id: int) -> tuple[str, int, int]:
    """The order's payment: (status, amount, refunded amount), in cents."""
    with session():
        p = Payment.get(Payment.order == order_id)
        return p.status, p.amount, p.refunded_amount


def refunds(order_id: int) -> list[tuple[int, bool, str | None]]:
    with session():
        rows = Refund.select().where(Refund.order == order_id).order_by(Refund.id)
        return [(r.amount, r.restock, r.reason) for r in rows]


def stock() -> dict[str, int]:
    with session():
        return {i.name: i.stock for i in Ingredient.select()}


def refund_rows(order_id: int) -> dict[str, tuple[int, int, str | None]]:
    """The ledger rows a refund with restock wrote: ingredient -> (change, stock after,
    the name of the key that asked for the refund)."""
    with session():
        rows = (
            LedgerEntry.select(LedgerEntry, Ingredient.name)
            .join(Ingredient, on=LedgerEntry.ingredient == Ingredient.id)
            .where(LedgerEntry.order == order_id, LedgerEntry.reason == LedgerEntry.REFUND)
        )
        return {e.ingredient.name: (e.grams, e.stock_after, e.key_name) for e in rows}


# -- what the page shows ----------------------------------------------------------------


def badge(browser: WebDriver, order_id: int) -> str:
    return row_text(browser, f'#orders tr[data-order="{order_id}"]', ".badge")


def payment_cell(browser: WebDriver, order_id: int) -> str:
    return row_text(browser, f'#orders tr[data-order="{order_id}"]', "td.payment")


def buttons(row: WebElement) -> list[str]:
    """The row's buttons a person can see."""
    return [
        b.text
        for b in row.find_elements(By.CSS_SELECTOR, ".row-actions button")
        if b.is_displayed()
    ]


def said(browser: WebDriver) -> str:
    return browser.find_element(By.ID, "said").text


def place(page: Page, burgers: int) -> tuple[int, str | None]:
    """An order placed by curl, as a till does: its id and its payment's id."""
    placed = page.http.post("/order", json=page.seeded.order(burgers))
    assert placed.status_code == 201, placed.text
    paid = placed.json()["payment"]
    return placed.json()["id"], paid and paid["id"]


def captured(page: Page, burgers: int, browser: WebDriver) -> int:
    """An order paid by card and applied: its payment captured, its row on the page."""
    order_id, intent = place(page, burgers)
    assert page.http.post(f"/payments/fake/{intent}/authorize").status_code == 200
    eventually(lambda: payment(order_id)[0] == "captured")
    until(lambda: payment_cell(browser, order_id).startswith("captured"), what="captured")
    return order_id


# -- New order --------------------------------------------------------------------------


@pytest.mark.parametrize("how", HOW)
def test_an_order_is_taken_with_products_by_name_and_quantities(
    every_role: Page, browser: WebDriver, how: str, tmp_path: Path
) -> None:
    page, seeded = every_role, every_role.seeded
    plate = page.http.post(
        "/products",
        json={"name": "Cheese plate", "recipe": [{"ingredient_id": seeded.cheese, "grams": 50}]},
    ).json()["id"]
    until(
        lambda: browser.find_elements(By.CSS_SELECTOR, '#products tr[data-product="Cheese plate"]')
    )
    sign_in(browser, page, "till")
    cook = Person(browser, how)
    cook.press_button("New order")
    # The form opens on the first line's product.
    assert browser.switch_to.active_element.get_attribute("id") == cook.field(
        "Product 1"
    ).get_attribute("id")
    cook.choose("Product 1", "Burger")
    cook.fill("Quantity 1", "2")
    cook.press_button("Add a line", cook.dialog())
    assert browser.switch_to.active_element.get_attribute("id") == cook.field(
        "Product 2"
    ).get_attribute("id")
    cook.choose("Product 2", "Cheese plate")
    cook.fill("Quantity 2", "3")
    screenshot(browser, tmp_path, "new-order")
    cook.submit("Place order")

    until(cook.closed, what="the form closed")
    [(order_id, _, _)] = orders()
    placed_said = f"Order #{order_id} placed: 2 \u00d7 Burger, 3 \u00d7 Cheese plate."
    until(lambda: said(browser) == placed_said, what="the order placed")
    assert lines_of(order_id) == [(seeded.burger, 2), (plate, 3)]
    eventually(lambda: orders() == [(order_id, "applied", None)])
    until(lambda: badge(browser, order_id) == "applied", what="the order applied")
    assert text(order(browser, order_id), ".items") == "2 \u00d7 Burger, 3 \u00d7 Cheese plate"
    # 2 burgers (300 g beef, 60 g cheese, 40 g onion) and 3 plates of 50 g cheese.
    assert stock() == {"beef": 19700, "cheese": 4790, "onion": 960}
    with session():
        # The key the form made when it opened (see the lost-answer test for its use).
        placed = Order.get_by_id(order_id)
        assert re.fullmatch("page-[0-9a-f]{32}", placed.idempotency_key or "")
        # Placed with the key the page signed in with, as curl would.
        assert placed.key_name == "till"
    # Back on the New order button, for the next one.
    assert browser.switch_to.active_element.text == "New order"


@pytest.mark.parametrize("how", HOW)
def test_a_refused_order_says_why_beside_its_line_and_stores_nothing(
    without_processing: Page, browser: WebDriver, how: str
) -> None:
    cook = Person(browser, how)
    cook.press_button("New order")
    cook.choose("Product 1", "Burger")
    cook.fill("Quantity 1", "two")
    cook.press_button("Add a line", cook.dialog())
    cook.fill("Quantity 2", "1")
    cook.submit("Place order")
    # No product on line 2: said before asking Kitchen, beside that line.
    until(lambda: cook.error_beside("Product 2") == "choose a product", what="choose a product")
    assert cook.field("Product 2").get_attribute("aria-invalid") == "true"
    assert cook.field("Quantity 1").get_attribute("aria-invalid") is None

    cook.press_button("Remove line 2", cook.dialog())
    # The focus is on line 1's product now (Enter in a select sends nothing): the button.
    assert browser.switch_to.active_element.get_attribute("id") == cook.field(
        "Product 1"
    ).get_attribute("id")
    cook.press_button("Place order", cook.dialog())
    until(
        lambda: cook.error_beside("Quantity 1") == "enter a whole number above 0",
        what="Kitchen's reason beside the quantity",
    )
    assert cook.field("Quantity 1").get_attribute("value") == "two"
    assert cook.field("Quantity 1").get_attribute("aria-invalid") == "true"
    assert browser.switch_to.active_element.get_attribute("id") == cook.field(
        "Quantity 1"
    ).get_attribute("id")
    assert "422" not in cook.dialog().text
    assert orders() == []

    cook.fill("Quantity 1", "3")
    cook.submit("Place order")
    until(cook.closed, what="the form closed")
    [(order_id, status, _)] = orders()
    assert status == "pending"
    assert lines_of(order_id) == [(without_processing.seeded.burger, 3)]


def test_an_order_sent_again_after_a_lost_answer_is_placed_once(
    without_processing: Page, browser: WebDriver
) -> None:
    """The answer to the first send is lost on the way back (Kitchen saved the order):
    the second send carries the same Idempotency-Key and finds that order."""
    cook = Person(browser, "keyboard")
    browser.execute_script(
        """
        const real = window.fetch;
        window.fetch = async (path, init) => {
          const answer = await real(path, init);
          if (path === "/order" && !window.lostOnce) {
            window.lostOnce = true;
            throw new TypeError("network connection lost");
          }
          return answer;
        };
        """
    )
    cook.press_button("New order")
    cook.choose("Product 1", "Burger")
    cook.fill("Quantity 1", "2")
    cook.submit("Place order")
    until(
        lambda: (
            "Kitchen did not answer"
            in cook.dialog().find_element(By.CSS_SELECTOR, ".form-error").text
        ),
        what="the lost answer said",
    )
    [(order_id, _, _)] = orders()  # saved, though the page never heard it

    cook.submit("Place order")
    until(cook.closed, what="the form closed")
    until(lambda: said(browser) == f"Order #{order_id} placed: 2 \u00d7 Burger.", what="placed")
    assert [o[0] for o in orders()] == [order_id]
    assert lines_of(order_id) == [(without_processing.seeded.burger, 2)]


def test_an_order_whose_card_could_not_be_held_is_cancelled_and_can_be_placed_again(
    make_kitchen: Callable[..., Kitchen], browser: WebDriver
) -> None:
    """The payment provider does not answer the first hold: Kitchen cancels that order
    and frees its Idempotency-Key; the cook, told so, places it again."""
    kitchen = make_kitchen()
    provider = Counting(FakeProvider(), down=1)
    with serve(kitchen.web_app(provider)) as url, httpx.Client(base_url=url) as http:
        seeded = Seeded.from_answer(http.post("/order/seed").json())
        required = {"payments": "required", "currency": "EUR"}
        assert http.patch("/merchant", json=required).status_code == 200
        assert http.patch(f"/products/{seeded.burger}", json={"price": PRICE}).status_code == 200
        open_page(browser, url)
        cook = Person(browser, "keyboard")
        cook.press_button("New order")
        cook.choose("Product 1", "Burger")
        cook.fill("Quantity 1", "2")
        cook.submit("Place order")
        dialog = cook.dialog()
        until(
            lambda: (
                dialog.find_element(By.CSS_SELECTOR, ".form-error").text
                == "The card could not be held (the payment provider did not answer): nothing was "
                "charged and the order is cancelled. Try again in a moment."
            ),
            what="the provider's absence said",
        )
        [(first, status, _)] = orders()
        assert status == "cancelled"
        assert payment(first)[0] == "failed"
        assert cook.field("Quantity 1").get_attribute("value") == "2"

        cook.submit("Place order")
        until(cook.closed, what="the form closed")
        [_, (second, status, _)] = orders()
        assert status == "awaiting_payment"
        assert payment(second) == ("requires_payment", 2500, 0)
        assert lines_of(second) == [(seeded.burger, 2)]
        until(
            lambda: (
                said(browser)
                == f"Order #{second} placed: 2 \u00d7 Burger, waiting for the card (25.00 EUR)."
            ),
            what="the order placed",
        )
        until(lambda: badge(browser, first) == "cancelled", what="the first order cancelled")


@pytest.mark.parametrize("screen", list(SCREENS))
def test_orders_and_their_forms_fit_a_phone_and_a_zoomed_page(
    paying: Page, browser: WebDriver, screen: str
) -> None:
    """At 390 px and at 200 % zoom: the orders table scrolls inside its panel (not the
    page), the forms fit the screen, and a refund is done by keyboard alone."""
    waiting, _ = place(paying, 1)
    paid = captured(paying, 2, browser)
    width = SCREENS[screen]["width"]
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", SCREENS[screen])
    try:

        def sideways() -> int:
            found: int = browser.execute_script(
                "const d = document.documentElement; return d.scrollWidth - d.clientWidth"
            )
            return found

        until(lambda: buttons(order(browser, waiting)) == ["Cancel order"], what="Cancel order")
        assert buttons(order(browser, paid)) == ["Refund"]
        assert sideways() == 0
        cook = Person(browser, "keyboard")
        cook.press_button("New order")
        cook.press_button("Add a line", cook.dialog())
        box = cook.dialog().rect
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert cook.field("Quantity 2").is_displayed()
        assert sideways() == 0
        cook.press_button("Close", cook.dialog())
        until(cook.closed, what="the form closed")

        # Tab reaches the Refund button inside the scrolled table.
        cook.press_button("Refund", order(browser, paid))
        box = cook.dialog().rect
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert sideways() == 0
        cook.fill("Amount (EUR)", "5")
        cook.submit("Refund now")
        until(cook.closed, what="the form closed")
        assert refunds(paid) == [(500, False, None)]
        eventually(lambda: payment(paid) == ("partially_refunded", 2500, 500))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# -- Cancel order -----------------------------------------------------------------------


@pytest.mark.parametrize("how", HOW)
def test_a_pending_order_is_cancelled_after_a_confirmation(
    without_processing: Page, browser: WebDriver, how: str
) -> None:
    kept, _ = place(without_processing, 1)
    order_id, _ = place(without_processing, 2)
    until(lambda: badge(browser, order_id) == "pending", what="the order pending")
    cook = Person(browser, how)
    cook.press_button("Cancel order", order(browser, order_id))
    dialog = cook.dialog()
    assert "2 \u00d7 Burger" in dialog.text
    # Closing the confirmation cancels nothing.
    cook.press_button("Close", dialog)
    until(cook.closed, what="the confirmation closed")
    assert orders() == [(kept, "pending", None), (order_id, "pending", None)]

    cook.press_button("Cancel order", order(browser, order_id))
    cook.fill("Reason (optional)", "guest left")
    cook.submit("Yes, cancel the order")
    until(lambda: badge(browser, order_id) == "cancelled", what="the order cancelled")
    until(lambda: said(browser) == f"Order #{order_id} cancelled.", what="said")
    assert "guest left" in row_text(browser, f'#orders tr[data-order="{order_id}"]', ".reason")
    assert orders() == [(kept, "pending", None), (order_id, "cancelled", "cancelled: guest left")]
    assert lines_of(order_id) == [(without_processing.seeded.burger, 2)]
    # A cancelled order has nothing left to cancel; the other one still can be.
    assert buttons(order(browser, order_id)) == []
    assert buttons(order(browser, kept)) == ["Cancel order"]


@pytest.mark.parametrize("how", HOW)
def test_cancelling_an_order_awaiting_payment_voids_its_hold(
    paying: Page, browser: WebDriver, how: str
) -> None:
    order_id, _ = place(paying, 2)
    until(lambda: badge(browser, order_id) == "awaiting payment", what="awaiting payment")
    cook = Person(browser, how)
    cook.press_button("Cancel order", order(browser, order_id))
    assert "hold of 25.00 EUR is released" in cook.dialog().text
    cook.submit("Yes, cancel the order")
    until(lambda: badge(browser, order_id) == "cancelled", what="the order cancelled")
    until(lambda: said(browser) == f"Order #{order_id} cancelled: nothing is charged.", what="said")
    assert orders() == [(order_id, "cancelled", "cancelled")]
    # The payments role releases the hold: nothing was ever taken.
    eventually(lambda: payment(order_id) == ("voided", 2500, 0))
    until(lambda: payment_cell(browser, order_id) == "voided \u00b7 25.00 EUR", what="voided")
    assert stock() == {"beef": 20000, "cheese": 5000, "onion": 1000}


@pytest.mark.parametrize("how", HOW)
def test_a_cancel_of_an_order_the_kitchen_applied_meanwhile_is_refused(
    paying: Page, browser: WebDriver, how: str
) -> None:
    order_id, intent = place(paying, 2)
    until(lambda: badge(browser, order_id) == "awaiting payment", what="awaiting payment")
    cook = Person(browser, how)
    cook.press_button("Cancel order", order(browser, order_id))
    cook.fill("Reason (optional)", "guest left")
    # While the cook reads the confirmation, the card is held and the kitchen cooks it.
    assert paying.http.post(f"/payments/fake/{intent}/authorize").status_code == 200
    eventually(lambda: orders() == [(order_id, "applied", None)])

    cook.submit("Yes, cancel the order")
    dialog = cook.dialog()
    until(
        lambda: (
            dialog.find_element(By.CSS_SELECTOR, ".form-error").text
            == f"The kitchen has applied order #{order_id} meanwhile: it can no longer be "
            "cancelled. Refund it instead."
        ),
        what="the refusal",
    )
    assert "409" not in dialog.text
    assert cook.field("Reason (optional)").get_attribute("value") == "guest left"
    assert orders() == [(order_id, "applied", None)]
    eventually(lambda: payment(order_id) == ("captured", 2500, 0))
    # Behind the form the row shows it: applied, paid, to be refunded if need be.
    until(lambda: badge(browser, order_id) == "applied", what="applied behind the form")
    until(lambda: buttons(order(browser, order_id)) == ["Refund"], what="Refund offered")


# -- Refund -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", HOW)
def test_part_of_a_paid_order_is_refunded(
    paying: Page, browser: WebDriver, how: str, tmp_path: Path
) -> None:
    order_id = captured(paying, 2, browser)
    assert buttons(order(browser, order_id)) == ["Refund"]
    cook = Person(browser, how)
    cook.press_button("Refund", order(browser, order_id))
    # What is left is offered, as money.
    assert cook.field("Amount (EUR)").get_attribute("value") == "25.00"
    assert "25.00 EUR can be refunded" in cook.dialog().text
    cook.fill("Amount (EUR)", "10.05")
    cook.fill("Reason (optional)", "cold fries")
    screenshot(browser, tmp_path, "refund")
    cook.submit("Refund now")

    until(cook.closed, what="the form closed")
    until(
        lambda: (
            said(browser)
            == f"Refund of 10.05 EUR asked for order #{order_id}: the payment shows it once the "
            "provider has made it."
        ),
        what="the refund said",
    )
    assert refunds(order_id) == [(1005, False, "cold fries")]
    eventually(lambda: payment(order_id) == ("partially_refunded", 2500, 1005))
    until(
        lambda: (
            payment_cell(browser, order_id)
            == "partially refunded \u00b7 25.00 EUR\n10.05 EUR refunded"
        ),
        what="partially refunded",
    )
    # The stock stays used: nothing went back.
    assert stock() == {"beef": 19700, "cheese": 4940, "onion": 960}
    assert refund_rows(order_id) == {}

    # The rest is offered next time.
    cook.press_button("Refund", order(browser, order_id))
    assert cook.field("Amount (EUR)").get_attribute("value") == "14.95"
    cook.press_button("Close", cook.dialog())


@pytest.mark.parametrize("how", HOW)
def test_a_full_refund_puts_the_stock_back(paying: Page, browser: WebDriver, how: str) -> None:
    order_id = captured(paying, 2, browser)
    eventually(lambda: stock() == {"beef": 19700, "cheese": 4940, "onion": 960})
    sign_in(browser, paying, "office")
    cook = Person(browser, how)
    cook.press_button("Refund", order(browser, order_id))
    cook.tick("Put the stock back")
    cook.fill("Reason (optional)", "never served")
    cook.submit("Refund now")

    until(cook.closed, what="the form closed")
    until(
        lambda: (
            said(browser)
            == f"Refund of 25.00 EUR asked for order #{order_id}, its ingredients are back in "
            "stock: the payment shows it once the provider has made it."
        ),
        what="the refund said",
    )
    # The stock is back at once: one ledger row per ingredient, reason refund, naming the
    # key the page signed in with.
    assert refunds(order_id) == [(2500, True, "never served")]
    assert stock() == {"beef": 20000, "cheese": 5000, "onion": 1000}
    assert refund_rows(order_id) == {
        "beef": (300, 20000, "office"),
        "cheese": (60, 5000, "office"),
        "onion": (40, 1000, "office"),
    }
    until(lambda: text(ingredient(browser, "beef"), ".amount") == "20 kg of 20 kg", what="20 kg")
    eventually(lambda: payment(order_id) == ("refunded", 2500, 2500))
    until(
        lambda: payment_cell(browser, order_id) == "refunded \u00b7 25.00 EUR\n25.00 EUR refunded",
        what="refunded",
    )
    # Nothing is left to refund.
    until(lambda: buttons(order(browser, order_id)) == [], what="no Refund button")
    assert orders() == [(order_id, "applied", None)]


@pytest.mark.parametrize("how", HOW)
def test_a_refused_refund_says_why_beside_the_field_and_stores_nothing(
    paying: Page, browser: WebDriver, how: str
) -> None:
    order_id = captured(paying, 2, browser)
    cook = Person(browser, how)
    cook.press_button("Refund", order(browser, order_id))

    # More than was paid: Kitchen says how much is left, in money.
    cook.fill("Amount (EUR)", "30")
    cook.submit("Refund now")
    until(
        lambda: (
            cook.error_beside("Amount (EUR)")
            == "at most 25.00 EUR is left to refund (of 25.00 EUR paid)"
        ),
        what="the most that can be refunded",
    )
    assert cook.field("Amount (EUR)").get_attribute("value") == "30"
    assert cook.field("Amount (EUR)").get_attribute("aria-invalid") == "true"
    assert "422" not in cook.dialog().text

    # The stock goes back only with a full refund.
    cook.fill("Amount (EUR)", "10")
    cook.tick("Put the stock back")
    cook.submit("Refund now")
    until(
        lambda: (
            cook.error_beside("Put the stock back")
            == "only with a full refund: refund all 25.00 EUR to put the stock back"
        ),
        what="restock only with a full refund",
    )
    assert cook.field("Put the stock back").is_selected()
    assert cook.error_beside("Amount (EUR)") == ""

    # Not an amount of money.
    cook.fill("Amount (EUR)", "ten")
    cook.submit("Refund now")
    until(
        lambda: cook.error_beside("Amount (EUR)") == "enter an amount such as 12.50",
        what="an amount asked for",
    )
    cook.fill("Amount (EUR)", "1.234")
    cook.submit("Refund now")
    until(
        lambda: cook.error_beside("Amount (EUR)") == "enter an amount such as 12.50",
        what="cents at most",
    )

    assert refunds(order_id) == []
    assert payment(order_id) == ("captured", 2500, 0)
    assert stock() == {"beef": 19700, "cheese": 4940, "onion": 960}
    cook.press_button("Close", cook.dialog())
    until(cook.closed, what="the form closed")


def test_only_orders_not_yet_applied_can_be_cancelled_and_only_paid_ones_refunded(
    paying: Page, browser: WebDriver, tmp_path: Path
) -> None:
    """Each row offers what can be done with it, and nothing else."""
    waiting, _ = place(paying, 1)
    paid = captured(paying, 1, browser)
    until(lambda: badge(browser, waiting) == "awaiting payment", what="awaiting payment")
    assert buttons(order(browser, waiting)) == ["Cancel order"]
    assert buttons(order(browser, paid)) == ["Refund"]
    cancel = order(browser, waiting).find_element(By.CSS_SELECTOR, "button.cancel-order")
    described = (cancel.get_attribute("aria-describedby") or "").split()
    assert [browser.find_element(By.ID, i).text for i in described] == [
        str(waiting),
        "1 \u00d7 Burger",
    ]
    screenshot(browser, tmp_path, "orders")
