"""The stock dashboard in a real browser: Debian's chromium, driven by Selenium.

Kitchen runs behind a real uvicorn server; orders go in through its HTTP API while the
page is open, and the tests read what a person would see: the text on the page, the
width of a bar, the word "low". Skipped, saying why, where chromium or chromedriver is
missing (`apt-get install chromium chromium-driver`; `.ci/run` installs them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from app import Kitchen
from kitchen import merchants
from tests.e2e.browser import (
    DESKTOP,
    classes,
    ingredient,
    level,
    row_text,
    screenshot,
    text,
    until,
)
from tests.helpers import Seeded, serve

# Selenium drives Chromium.
pytestmark = pytest.mark.browser


def test_the_dashboard_follows_orders_live_onion_turns_low_and_alerts(
    make_kitchen: Callable[..., Kitchen], browser: WebDriver, tmp_path: Path
) -> None:
    kitchen = make_kitchen()
    with serve(kitchen.web_app()) as url, httpx.Client(base_url=url) as http:
        seeded = http.post("/order/seed")
        assert seeded.status_code == 201
        [burger_id] = [p["id"] for p in seeded.json()["products"] if p["name"] == "Burger"]
        browser.get(url + "/")

        # The reference kitchen, full: every bar at 100 %, nothing low, no key asked.
        onion = until(lambda: ingredient(browser, "onion"), what="the onion bar")
        assert text(onion, ".amount") == "1 kg of 1 kg"
        assert text(onion, ".flag") == "ok"
        assert "low" not in classes(onion)
        assert level(onion) > 0.97
        assert text(ingredient(browser, "beef"), ".amount") == "20 kg of 20 kg"
        assert row_text(browser, 'tr[data-product="Burger"]', ".can-make") == "50\nlimited by onion"
        assert browser.find_element(By.ID, "alerts-empty").text == "No alerts yet."
        assert browser.find_element(By.ID, "login").is_displayed() is False
        assert "development" in browser.find_element(By.ID, "who").text

        # A marker on this page: if anything reloaded the page, it would be gone.
        browser.execute_script("window.kitchenMarker = 'no reload'")
        burger_line = {"product_id": burger_id, "quantity": 2}
        assert http.post("/order", json={"products": [burger_line]}).status_code == 201
        until(
            lambda: text(ingredient(browser, "onion"), ".amount") == "960 g of 1 kg", what="960 g"
        )
        assert text(ingredient(browser, "onion"), ".flag") == "ok"
        assert text(ingredient(browser, "beef"), ".amount") == "19.7 kg of 20 kg"

        # 24 more take onion to 480 g, below its 50 % threshold; then 100, which the stock
        # cannot make.
        for quantity in (24, 100):
            burger_line["quantity"] = quantity
            assert http.post("/order", json={"products": [burger_line]}).status_code == 201
        until(lambda: "low" in classes(ingredient(browser, "onion")), what="onion low")
        onion = ingredient(browser, "onion")
        assert text(onion, ".amount") == "480 g of 1 kg"
        assert text(onion, ".flag") == "low"
        assert "low below 500 g (50 %)" in text(onion, ".detail")
        # The bar shrank to about half (its width glides there in 0.4 s).
        until(lambda: 0.46 < level(ingredient(browser, "onion")) < 0.50, what="a 48 % bar")
        # The threshold mark sits at 50 % of the track, to the right of the fill's end.
        mark = onion.find_element(By.CSS_SELECTOR, ".mark").location["x"]
        track = onion.find_element(By.CSS_SELECTOR, ".track")
        assert 0.48 < (mark - track.location["x"]) / track.size["width"] < 0.52
        beef = ingredient(browser, "beef")
        assert (text(beef, ".amount"), text(beef, ".flag")) == ("16.1 kg of 20 kg", "ok")
        assert row_text(browser, 'tr[data-product="Burger"]', ".can-make") == "24\nlimited by onion"

        # The alert, then its email sent (to the test's SMTP server).
        alert = until(lambda: row_text(browser, "#alerts li.alert"), what="an alert")
        assert "onion fell to 480 g of 1 kg (below 50 %)" in alert
        until(
            lambda: "email sent" in browser.find_element(By.CSS_SELECTOR, "#alerts li").text,
            what="the alert's email sent",
        )

        # The order the stock could not make: rejected, with the reason.
        rejected = until(
            lambda: row_text(browser, 'tr[data-order="3"].status-rejected'),
            what="order 3 rejected",
        )
        assert "100 \u00d7 Burger" in rejected  # 100 x Burger
        assert "insufficient stock" in rejected
        assert "onion" in row_text(browser, 'tr[data-order="3"]', ".reason")
        listed = until(
            lambda: [
                (r.get_attribute("data-order"), text(r, ".badge"))
                for r in browser.find_elements(By.CSS_SELECTOR, "#orders tbody tr")
            ],
            what="the orders",
        )
        assert listed == [("3", "rejected"), ("2", "applied"), ("1", "applied")]
        # A merchant without payments: no Payment column at all.
        assert not browser.find_element(By.CSS_SELECTOR, "#orders th.payment").is_displayed()

        assert browser.execute_script("return window.kitchenMarker") == "no reload"

        # The picture in the README: the whole page at desktop width.
        screenshot(browser, tmp_path, "dashboard")

        # A phone's width: everything wraps inside the screen, nothing scrolls sideways.
        browser.set_window_size(390, 844)
        try:
            until(
                lambda: browser.execute_script("return window.innerWidth") <= 400,
                what="a 390 px wide window",
            )
            wide = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert wide <= 0, f"the page is {wide} px wider than a phone's screen"
            onion = ingredient(browser, "onion")
            assert onion.find_element(By.CSS_SELECTOR, ".track").size["width"] < 390
            assert text(onion, ".flag") == "low"
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(390, int(height) + 120)
            browser.save_screenshot(str(tmp_path / "dashboard-390.png"))  # to look at
        finally:
            browser.set_window_size(*DESKTOP)

        # A count above the par level: the bar is full, the text says how far above.
        onion_id = next(i["id"] for i in http.get("/ingredients").json() if i["name"] == "onion")
        assert http.post(f"/ingredients/{onion_id}/count", json={"grams": 1450}).status_code == 200
        until(
            lambda: text(ingredient(browser, "onion"), ".amount") == "1.45 kg of 1 kg",
            what="1.45 kg of a 1 kg par level",
        )
        onion = ingredient(browser, "onion")
        assert text(onion, ".flag") == "ok"
        assert text(onion, ".detail") == "145 % of par \u00b7 low below 500 g (50 %)"
        until(lambda: level(ingredient(browser, "onion")) > 0.99, what="a full bar")
        assert level(ingredient(browser, "onion")) <= 1.0


def test_production_asks_for_the_key_once_and_shows_only_that_merchants_kitchen(
    make_kitchen: Callable[..., Kitchen], browser: WebDriver, tmp_path: Path
) -> None:
    kitchen = make_kitchen(app={"env": "production"})
    ada, key_a = merchants.create("Chez Ada", "ada@example.com")
    _, key_b = merchants.create("Bo's", "bo@example.com")
    with serve(kitchen.web_app()) as url:
        for key, name, grams in ((key_a, "saffron", 40), (key_b, "truffle", 300)):
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
                body = {"name": name, "stock": grams}
                assert c.post("/ingredients", json=body).status_code == 201

        browser.get(url + "/")
        form = until(lambda: browser.find_element(By.ID, "login-form"), what="the login form")
        until(form.is_displayed, what="the login form")
        message = browser.find_element(By.ID, "login-message")
        assert "needs a merchant API key" in message.text
        assert browser.find_element(By.ID, "status").text == "Not signed in"
        assert not browser.find_element(By.ID, "board").is_displayed()
        # The key field has the focus and a label: typing and Enter are enough.
        field = browser.switch_to.active_element
        assert field.get_attribute("id") == "key"
        assert browser.find_element(By.CSS_SELECTOR, "label[for=key]").text == "Merchant API key"

        field.send_keys("kitchen_not-a-key", Keys.ENTER)
        until(lambda: "not accepted" in message.text, what="the refused key's message")
        assert "401" in message.text
        assert not browser.find_element(By.ID, "board").is_displayed()
        assert browser.execute_script("return sessionStorage.length") == 0
        browser.save_screenshot(str(tmp_path / "login-refused.png"))  # to look at

        browser.switch_to.active_element.send_keys(key_a, Keys.ENTER)
        until(lambda: browser.find_element(By.ID, "who").text == "Chez Ada", what="Chez Ada")
        saffron = until(lambda: ingredient(browser, "saffron"), what="Ada's saffron")
        assert text(saffron, ".amount") == "40 g of 40 g"
        assert (
            browser.find_elements(By.CSS_SELECTOR, 'li.ingredient[data-ingredient="truffle"]') == []
        )
        assert not form.is_displayed()
        # The key is in this tab's sessionStorage, never in the address.
        assert browser.current_url == url + "/"
        assert key_a not in browser.current_url
        assert browser.execute_script("return sessionStorage.getItem('kitchen.key')") == key_a

        # Once per tab: a reload signs in again by itself.
        browser.refresh()
        until(lambda: browser.find_element(By.ID, "who").text == "Chez Ada", what="Chez Ada again")
        assert not browser.find_element(By.ID, "login").is_displayed()

        # A rotated key: the next refresh shows the form, saying why.
        merchants.rotate_key(ada.id)
        until(
            lambda: "no longer accepted" in browser.find_element(By.ID, "login-message").text,
            what="the rotated key's message",
        )
        assert not browser.find_element(By.ID, "board").is_displayed()
        assert browser.execute_script("return sessionStorage.length") == 0


def test_the_cook_sees_each_orders_payment_state_and_amount(
    make_kitchen: Callable[..., Kitchen], browser: WebDriver, tmp_path: Path
) -> None:
    """A merchant that requires payments, every role on: the payments role captures,
    voids and refunds at the fake provider, and the page shows each order's payment as it
    moves, as the cook reads it."""
    kitchen = make_kitchen()
    with serve(kitchen.web_app()) as url, httpx.Client(base_url=url) as http:
        seeded = Seeded.from_answer(http.post("/order/seed").json())
        # Placed before the merchant required payments: no payment, nothing in its cell.
        unpaid = http.post("/order", json=seeded.order(1)).json()["id"]
        required = {"payments": "required", "currency": "EUR"}
        assert http.patch("/merchant", json=required).status_code == 200
        assert http.patch(f"/products/{seeded.burger}", json={"price": 1250}).status_code == 200

        def place(burgers: int) -> tuple[int, str]:
            placed = http.post("/order", json=seeded.order(burgers))
            assert placed.status_code == 201
            return placed.json()["id"], placed.json()["payment"]["id"]

        paid, intent = place(2)
        browser.get(url + "/")

        def payment_of(order_id: int) -> str:
            return row_text(browser, f'tr[data-order="{order_id}"]', "td.payment")

        def badge_of(order_id: int) -> str:
            return row_text(browser, f'tr[data-order="{order_id}"]', ".badge")

        # Awaiting the card: nothing went to the kitchen yet.
        until(lambda: badge_of(paid) == "awaiting payment", what="awaiting payment")
        assert payment_of(paid) == "requires payment \u00b7 25.00 EUR"
        until(lambda: badge_of(unpaid) == "applied", what="the unpaid order applied")
        assert payment_of(unpaid) == ""
        assert browser.find_element(By.CSS_SELECTOR, "#orders th.payment").is_displayed()

        # The card is held: the kitchen cooks it, then the money is taken.
        assert http.post(f"/payments/fake/{intent}/authorize").status_code == 200
        until(
            lambda: (badge_of(paid), payment_of(paid)) == ("applied", "captured \u00b7 25.00 EUR"),
            what="applied, captured \u00b7 25.00 EUR",
        )

        # Part of it refunded: the amount stays, what went back is under it.
        asked = http.post(f"/order/{paid}/refund", json={"amount": 1005, "reason": "cold fries"})
        assert asked.status_code == 202
        until(
            lambda: payment_of(paid) == "partially refunded \u00b7 25.00 EUR\n10.05 EUR refunded",
            what="partially refunded",
        )

        # One cancelled before anyone paid (its hold voided), one declined.
        cancelled, _ = place(1)
        assert http.post(f"/order/{cancelled}/cancel", json={"reason": "guest left"}).is_success
        declined, card = place(1)
        assert http.post(f"/payments/fake/{card}/decline").status_code == 200
        until(lambda: payment_of(cancelled) == "voided \u00b7 12.50 EUR", what="voided")
        until(lambda: payment_of(declined) == "failed \u00b7 12.50 EUR", what="failed")
        assert "guest left" in row_text(browser, f'tr[data-order="{cancelled}"]', ".reason")
        assert "declined" in row_text(browser, f'tr[data-order="{declined}"]', ".reason")

        listed = [
            (r.get_attribute("data-order"), text(r, ".badge"), text(r, "td.payment"))
            for r in browser.find_elements(By.CSS_SELECTOR, "#orders tbody tr")
        ]
        assert listed == [
            (str(declined), "cancelled", "failed \u00b7 12.50 EUR"),
            (str(cancelled), "cancelled", "voided \u00b7 12.50 EUR"),
            (str(paid), "applied", "partially refunded \u00b7 25.00 EUR\n10.05 EUR refunded"),
            (str(unpaid), "applied", ""),
        ]
        browser.save_screenshot(str(tmp_path / "dashboard-payments.png"))  # to look at
