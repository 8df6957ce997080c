"""What happened to the stock, on the page, by mouse and by keyboard: History on an
ingredient (its ledger newest first with who and why, paged to older entries; its stock
over time drawn by uPlot with the threshold line), each alert's cause and whether it is
open or resolved, and the ingredient that limits a product. Checked on screen (and in
the chart's own data and drawn canvas) against the database's rows."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.chromium.webdriver import ChromiumDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from kitchen import merchants
from kitchen.db import session
from kitchen.models import Alert, Ingredient
from tests.e2e.browser import (
    DESKTOP,
    HOW,
    PHONE,
    Person,
    ingredient,
    product,
    screenshot,
    text,
    until,
)
from tests.helpers import Seeded, eventually, ledger_of, stock_of

pytestmark = pytest.mark.browser


def local(at: datetime.datetime, pattern: str) -> str:
    """A stored (naive UTC) time as the browser on this machine shows it."""
    return at.replace(tzinfo=datetime.UTC).astimezone().strftime(pattern)


def listed(dialog: WebElement) -> list[dict[str, str]]:
    """The History dialog's ledger table, read in one go: each row's cells by class."""
    rows: list[dict[str, str]] = dialog.parent.execute_script(
        """
        return [...arguments[0].querySelectorAll("table.ledger tbody tr")].map((tr) => ({
          id: tr.dataset.entry,
          at: tr.querySelector(".ledger-when time").dateTime,
          when: tr.querySelector(".ledger-when").textContent,
          change: tr.querySelector(".ledger-change").textContent,
          reason: tr.querySelector(".ledger-why").textContent,
          who: tr.querySelector(".ledger-who").textContent,
          note: tr.querySelector(".ledger-note").textContent,
          after: tr.querySelector(".ledger-after").textContent,
        }));
        """,
        dialog,
    )
    return rows


def chart(driver: WebDriver) -> dict[str, Any]:
    """What the open dialog's uPlot chart was given and drew: its data (each change, then
    now with the latest stock), its canvas's size in pixels and on the page, and the
    colour drawn just beside each change's point (off the line's path, so only a drawn
    point colours it) and on the threshold line midway."""
    found: dict[str, Any] = driver.execute_script(
        """
        const box = document.querySelector("dialog[open] .chart-box");
        const u = box && box.uplot;
        if (!u) return null;
        const canvas = u.ctx.canvas;
        const ratio = canvas.width / canvas.getBoundingClientRect().width;
        const at = (x, y) => [...u.ctx.getImageData(Math.floor(x), Math.floor(y), 1, 1).data];
        const xs = u.data[0];
        // 2.4 px right of and above a point's centre: inside its 10 px disc, 1.9 px or more
        // from the middle of the 2 px line through it.
        const off = 2.4 * ratio;
        const beside = xs.slice(0, -1).map((x, i) => at(
          u.valToPos(x, "x", true) + off, u.valToPos(u.data[1][i], "y", true) - off));
        const midX = (u.valToPos(xs[0], "x", true) + u.valToPos(xs[xs.length - 1], "x", true)) / 2;
        return {
          data: u.data,
          canvas: [canvas.width, canvas.height],
          shown: canvas.getBoundingClientRect().width,
          box: box.getBoundingClientRect().width,
          dialog: box.closest("dialog").getBoundingClientRect().width,
          beside,
          line: at(midX, u.valToPos(u.data[2][0], "y", true)),
          stroke: [u.series[1].stroke(u, 1), u.series[2].stroke(u, 2)],
        };
        """
    )
    return found


def rgb(colour: str) -> list[int]:
    """'#0b5cd5' as [11, 92, 213]."""
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]


def near(pixel: list[int], colour: str) -> bool:
    """A drawn pixel of this colour (antialiasing blends edges: within 60 per channel)."""
    return pixel[3] > 200 and all(
        abs(p - c) <= 60 for p, c in zip(pixel, rgb(colour), strict=False)
    )


def no_csp_violation(driver: WebDriver) -> None:
    """The browser's console says nothing was refused by the Content-Security-Policy."""
    assert isinstance(driver, ChromiumDriver)  # whose console log chromedriver keeps
    refused = [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"]
        or "Content-Security-Policy" in entry["message"]
    ]
    assert refused == []


def history_of(cook: Person, browser: WebDriver, name: str) -> WebElement:
    cook.press_button("History", ingredient(browser, name))
    dialog = cook.dialog()
    assert dialog.find_element(By.TAG_NAME, "h2").text == f"History of {name}"
    return dialog


@pytest.mark.parametrize("how", HOW)
def test_history_lists_the_ledger_newest_first_and_charts_the_stock(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str, tmp_path: Path
) -> None:
    url, seeded = kitchen_page
    with session():
        merchant_id = Ingredient.get_by_id(seeded.onion).merchant_id
    office = merchants.add_key(merchant_id, "office")
    with httpx.Client(base_url=url) as http:
        # A delivery booked at the office, with its key; two burgers; waste, keyless.
        r = http.post(
            f"/ingredients/{seeded.onion}/restock",
            json={"grams": 2500, "note": "Metro, delivery note 4411"},
            headers={"Authorization": f"Bearer {office}"},
        )
        assert r.status_code == 200, r.text
        placed = http.post("/order", json=seeded.order(2))
        assert placed.status_code == 201
        order_id = placed.json()["id"]
        eventually(lambda: stock_of(seeded.onion) == 3460)
        r = http.post(f"/ingredients/{seeded.onion}/waste", json={"grams": 60, "note": "dropped"})
        assert r.status_code == 200, r.text

    rows = ledger_of(seeded.onion)
    assert [(e.grams, e.reason, e.key_name, e.order_id, e.note, e.stock_after) for e in rows] == [
        (-60, "waste", None, None, "dropped", 3400),
        (-40, "order", None, order_id, None, 3460),
        (2500, "restock", "office", None, "Metro, delivery note 4411", 3500),
        (1000, "initial", None, None, None, 1000),
    ]

    cook = Person(browser, how)
    dialog = history_of(cook, browser, "onion")
    until(lambda: len(listed(dialog)) == 4, what="the four ledger rows")
    shown = listed(dialog)
    # Newest first, each row the database's: when, change in the unit, why, who, note, after.
    assert [(r["change"], r["reason"], r["who"], r["note"], r["after"]) for r in shown] == [
        ("\u221260 g", "waste", "not recorded", "dropped", "3.4 kg"),
        ("\u221240 g", "used by an order", f"order #{order_id}", "", "3.46 kg"),
        ("+2.5 kg", "restock", "office", "Metro, delivery note 4411", "3.5 kg"),
        ("+1 kg", "starting stock", "not recorded", "", "1 kg"),
    ]
    assert [int(r["id"]) for r in shown] == [e.id for e in rows]
    assert text(dialog, ".intro") == "Now 3.4 kg of 1 kg · low below 500 g."
    assert [r["at"] for r in shown] == [e.created_at.isoformat() + "Z" for e in rows]
    assert [r["when"] for r in shown] == [local(e.created_at, "%H:%M:%S") for e in rows]
    # All there is: no older entries to ask for.
    assert not [b for b in dialog.find_elements(By.TAG_NAME, "button") if b.text == "Older entries"]

    # The chart: the stock after each change, oldest first, at its time; the threshold line
    # at 50 % of the 1 kg par level; both drawn (a point beside each centre, the line midway).
    drawn = until(lambda: chart(browser), what="the chart")
    oldest_first = rows[::-1]
    times, stocks, lines = drawn["data"]
    assert stocks == [e.stock_after for e in oldest_first] + [3400]
    changed = [e.created_at.replace(tzinfo=datetime.UTC).timestamp() for e in oldest_first]
    assert times[:-1] == pytest.approx(changed, abs=1e-3)
    assert times[-1] > changed[-1]  # the line reaches now
    assert lines == [500] * 5
    width, height = drawn["canvas"]
    assert width > 300 and height > 150
    assert drawn["box"] - 1 <= drawn["shown"] <= drawn["dialog"]
    stroke, threshold = drawn["stroke"]
    assert all(near(pixel, stroke) for pixel in drawn["beside"]), drawn["beside"]
    assert near(drawn["line"], threshold), drawn["line"]
    assert drawn["beside"][0] != drawn["line"]
    screenshot(browser, tmp_path, "history")
    no_csp_violation(browser)

    # Close: back to the page, the focus on the History button it came from.
    cook.press_button("Close", dialog)
    until(cook.closed, what="the dialog closed")
    assert browser.switch_to.active_element.text == "History"
    # Its close event (after the dialog closed) takes it off the page, chart and all.
    until(lambda: not browser.find_elements(By.CSS_SELECTOR, "dialog"), what="no dialog left")


@pytest.mark.parametrize("how", HOW)
def test_older_entries_page_back_through_the_ledger(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str
) -> None:
    url, seeded = kitchen_page
    with httpx.Client(base_url=url) as http:
        for n in range(1, 25):
            r = http.post(f"/ingredients/{seeded.cheese}/restock", json={"grams": n})
            assert r.status_code == 200, r.text
    rows = ledger_of(seeded.cheese)
    assert len(rows) == 25 and rows[-1].reason == "initial"
    assert stock_of(seeded.cheese) == 5000 + sum(range(1, 25))

    cook = Person(browser, how)
    dialog = history_of(cook, browser, "cheese")
    until(lambda: len(listed(dialog)) == 20, what="the first page")
    # The 20 newest, newest first: +24 g ... +5 g.
    first = listed(dialog)
    assert [int(r["id"]) for r in first] == [e.id for e in rows[:20]]
    assert first[0]["change"] == "+24 g" and first[19]["change"] == "+5 g"
    assert first[0]["after"] == amount_kg(stock_of(seeded.cheese))
    assert len(until(lambda: chart(browser), what="the chart")["data"][1]) == 20 + 1

    cook.press_button("Older entries", dialog)
    until(lambda: len(listed(dialog)) == 25, what="the older entries")
    every = listed(dialog)
    assert [int(r["id"]) for r in every] == [e.id for e in rows]
    assert [r["change"] for r in every[20:]] == ["+4 g", "+3 g", "+2 g", "+1 g", "+5 kg"]
    assert every[-1]["reason"] == "starting stock"
    assert text(dialog, ".history-said") == "5 older entries shown; that is all."
    assert not dialog.find_element(By.CSS_SELECTOR, "button.older").is_displayed()
    # The chart now holds every change, oldest first, then now.
    assert until(lambda: chart(browser), what="the chart")["data"][1] == [
        e.stock_after for e in rows[::-1]
    ] + [stock_of(seeded.cheese)]
    if how == "keyboard":
        # The button gone, the focus is on the first row it brought.
        focused = browser.switch_to.active_element
        assert focused.find_element(By.XPATH, "..").get_attribute("data-entry") == str(rows[20].id)
    no_csp_violation(browser)


def amount_kg(grams: int) -> str:
    """Kitchen.amount for the cheese's kilograms in these tests: 5300 -> '5.3 kg'."""
    return f"{grams / 1000:.2f}".rstrip("0").rstrip(".") + " kg"


@pytest.mark.parametrize("how", HOW)
def test_alerts_say_their_cause_and_state_and_products_their_limit(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str, tmp_path: Path
) -> None:
    url, seeded = kitchen_page
    burger = product(browser, "Burger")
    until(lambda: text(burger, ".limit") == "limited by onion", what="limited by onion")
    assert text(burger, ".count") == "50"

    with httpx.Client(base_url=url) as http:
        placed = http.post("/order", json=seeded.order(26))  # onion 1000 - 520 = 480 g
        assert placed.status_code == 201
        order_id = placed.json()["id"]
    eventually(lambda: stock_of(seeded.onion) == 480)
    with session():
        [raised] = list(Alert.select().where(Alert.ingredient == seeded.onion))
        assert (raised.cause, raised.order_id, raised.resolved_at) == ("order", order_id, None)

    def cause(alert_id: int) -> str:
        found: str = text(
            browser.find_element(By.CSS_SELECTOR, f'li.alert[data-alert="{alert_id}"]'), ".cause"
        )
        return found

    until(lambda: cause(raised.id) == f"By order #{order_id} · open", what="the open alert")
    until(lambda: text(product(browser, "Burger"), ".count") == "24", what="24 burgers")
    assert text(product(browser, "Burger"), ".limit") == "limited by onion"

    # A delivery on the page: the alert is resolved by it; beef now limits the burger.
    cook = Person(browser, how)
    cook.press_button("Restock", ingredient(browser, "onion"))
    cook.fill("Amount received (g)", "2500")
    cook.submit("Add to stock")
    eventually(lambda: stock_of(seeded.onion) == 2980)
    with session():
        resolved = Alert.get_by_id(raised.id)
    assert resolved.resolved_by == "restock" and resolved.resolved_at is not None
    at = local(resolved.resolved_at, "%H:%M")
    until(
        lambda: cause(raised.id) == f"By order #{order_id} · resolved by a restock at {at}",
        what="the alert resolved",
    )
    # beef 20 kg - 26 x 150 g = 16.1 kg: 107 burgers; onion 2980 g / 20 g: 149.
    until(lambda: text(product(browser, "Burger"), ".limit") == "limited by beef", what="beef")
    assert text(product(browser, "Burger"), ".count") == "107"

    # Waste takes cheese below its line: an alert caused by waste, open.
    with httpx.Client(base_url=url) as http:
        r = http.post(f"/ingredients/{seeded.cheese}/waste", json={"grams": 2000, "note": "mould"})
        assert r.status_code == 200, r.text
    with session():
        [wasted] = list(Alert.select().where(Alert.ingredient == seeded.cheese))
    assert (wasted.cause, wasted.order_id, wasted.resolved_at) == ("waste", None, None)
    until(lambda: cause(wasted.id) == "By waste · open", what="the waste alert")
    screenshot(browser, tmp_path, "history-alerts")
    no_csp_violation(browser)


def test_history_fits_a_phone(kitchen_page: tuple[str, Seeded], browser: WebDriver) -> None:
    """At 390 px the dialog, its chart and its table stay on screen: the table scrolls
    inside its own box, the page never sideways."""
    _, seeded = kitchen_page
    browser.set_window_size(*PHONE)
    try:
        cook = Person(browser, "keyboard")
        dialog = history_of(cook, browser, "onion")
        until(lambda: len(listed(dialog)) == 1, what="the ledger row")
        drawn = until(lambda: chart(browser), what="the chart")
        viewport = browser.execute_script("return document.documentElement.clientWidth")
        assert drawn["dialog"] <= viewport
        assert 0 < drawn["shown"] <= drawn["dialog"]
        assert drawn["data"][1] == [stock_of(seeded.onion)] * 2
        # The six columns are wider than a phone: the table scrolls in its box, which
        # the keyboard can reach (to scroll it with the arrows).
        wrap = dialog.find_element(By.CSS_SELECTOR, ".ledger-wrap")
        assert browser.execute_script(
            "return arguments[0].scrollWidth > arguments[0].clientWidth", wrap
        )
        cook.focus(wrap)
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        no_csp_violation(browser)
    finally:
        browser.set_window_size(*DESKTOP)


@pytest.mark.parametrize("how", HOW)
def test_history_speaks_the_ingredients_unit(
    kitchen_page: tuple[str, Seeded], browser: WebDriver, how: str
) -> None:
    """Buns are counted in pieces: the ledger's changes, its stock after each, the chart's
    threshold and its axis say pieces, never grams."""
    url, _ = kitchen_page
    with httpx.Client(base_url=url) as http:
        r = http.post(
            "/ingredients", json={"name": "bun", "unit": "piece", "stock": 40, "full_stock": 40}
        )
        assert r.status_code == 201, r.text
        bun = r.json()["id"]
        r = http.post(f"/ingredients/{bun}/waste", json={"amount": 1, "note": "squashed"})
        assert r.status_code == 200, r.text
    assert [(e.grams, e.reason, e.stock_after) for e in ledger_of(bun)] == [
        (-1, "waste", 39),
        (40, "initial", 40),
    ]

    until(lambda: ingredient(browser, "bun"), what="the bun's bar")
    cook = Person(browser, how)
    dialog = history_of(cook, browser, "bun")
    until(lambda: len(listed(dialog)) == 2, what="the bun's two ledger rows")
    assert [(r["change"], r["reason"], r["note"], r["after"]) for r in listed(dialog)] == [
        ("\u22121 piece", "waste", "squashed", "39 pieces"),
        ("+40 pieces", "starting stock", "", "40 pieces"),
    ]
    assert text(dialog, ".intro") == "Now 39 pieces of 40 pieces · low below 20 pieces."
    assert text(dialog, ".chart-key") == ("Stock after each change\nThreshold: low below 20 pieces")
    drawn = until(lambda: chart(browser), what="the chart")
    assert drawn["data"][1] == [40, 39, 39] and drawn["data"][2] == [20, 20, 20]
    # The stock axis's labels, as uPlot drew them on the canvas.
    labels: list[str] = browser.execute_script(
        "return document.querySelector('dialog[open] .chart-box').uplot.axes[1]._values"
    )
    assert labels and all(label.endswith(("pieces", " piece")) for label in labels), labels
