"""The kitchen's rules, without Kafka or a database."""

from fractions import Fraction

import pytest

from kitchen import seed
from kitchen.domain import (
    MAX_GRAMS,
    IngredientState,
    Line,
    StockError,
    amount_text,
    apply_order,
    change_levels,
    count,
    grams_needed,
    is_below,
    restock,
    threshold,
    waste,
)
from kitchen.notifications import compose

# The reference kitchen with ids: beef 1, cheese 2, onion 3; the Burger is product 1.
IDS = {name: i for i, name in enumerate(seed.REFERENCE_STOCK, start=1)}
BURGER = 1
RECIPES = {BURGER: {IDS[name]: grams for name, grams in seed.BURGER.items()}}
HALF = Fraction(1, 2)


def kitchen() -> dict[int, IngredientState]:
    return {
        i: IngredientState(
            i, name, seed.REFERENCE_STOCK[name], seed.REFERENCE_STOCK[name], True, HALF
        )
        for name, i in IDS.items()
    }


def test_recipe_times_quantity_summed_per_ingredient() -> None:
    lines = [Line(BURGER, 2), Line(BURGER, 1)]
    assert grams_needed(lines, RECIPES) == {1: 450, 2: 90, 3: 60}


def test_two_burgers_deduct_the_reference_numbers() -> None:
    state = kitchen()
    outcome = apply_order([Line(BURGER, 2)], RECIPES, state)
    assert outcome.applied and outcome.crossed == []
    assert [state[i].stock for i in (1, 2, 3)] == [19_700, 4_940, 960]


def test_an_order_the_stock_cannot_cover_changes_nothing() -> None:
    state = kitchen()
    outcome = apply_order([Line(BURGER, 51)], RECIPES, state)  # onion: 1020 g > 1000 g
    assert not outcome.applied
    assert outcome.reason == "insufficient stock: onion needs 1020 g, 1000 g left"
    assert [state[i].stock for i in (1, 2, 3)] == [20_000, 5_000, 1_000]


def test_unknown_product_is_rejected() -> None:
    outcome = apply_order([Line(7, 1)], RECIPES, kitchen())
    assert (outcome.applied, outcome.reason) == (False, "unknown product 7")


def test_exactly_half_is_not_below_the_threshold() -> None:
    half = Fraction(1, 2)
    assert not is_below(500, 1_000, half)
    assert is_below(499, 1_000, half)
    assert is_below(1, 3, Fraction(1, 2)) and not is_below(2, 3, Fraction(1, 2))


def test_one_alert_per_crossing() -> None:
    state = kitchen()
    assert apply_order([Line(BURGER, 25)], RECIPES, state).crossed == []  # onion 500 g
    assert apply_order([Line(BURGER, 1)], RECIPES, state).crossed == [3]  # 480 g
    assert apply_order([Line(BURGER, 1)], RECIPES, state).crossed == []  # 460 g: disarmed
    assert state[3].armed is False and state[3].stock == 460


def test_one_order_can_cross_several_ingredients() -> None:
    state = kitchen()
    state[2].stock = 2_600  # cheese 30 g a burger: 10 burgers take it to 2300 g < 2500 g
    state[3].stock = 690  # onion 20 g a burger: 490 g < 500 g
    outcome = apply_order([Line(BURGER, 10)], RECIPES, state)
    assert outcome.crossed == [2, 3]


def test_restock_above_the_threshold_rearms() -> None:
    state = kitchen()
    apply_order([Line(BURGER, 26)], RECIPES, state)
    onion = state[3]
    restock(onion, 10)  # 490 g: still below, still disarmed
    assert onion.armed is False
    restock(onion, 10)  # 500 g: back at the line
    assert onion.armed is True
    assert apply_order([Line(BURGER, 1)], RECIPES, state).crossed == [3]


def test_restock_needs_positive_grams() -> None:
    with pytest.raises(ValueError):
        restock(kitchen()[3], 0)


def test_a_count_below_the_threshold_alerts_once_and_a_count_above_rearms() -> None:
    onion = kitchen()[3]
    assert count(onion, 400) is True and onion.stock == 400 and not onion.armed
    assert count(onion, 300) is False  # still below: no second alert
    assert count(onion, 500) is False and onion.armed  # at the line: armed again
    assert count(onion, 499) is True


def test_a_count_above_the_par_level_leaves_it() -> None:
    onion = kitchen()[3]
    count(onion, 1_450)
    assert (onion.stock, onion.full_stock) == (1_450, 1_000)  # 145 % of par
    # The threshold stays half of the par level (500 g), not of the stock.
    assert count(onion, 500) is False and onion.armed
    assert count(onion, 499) is True


def test_waste_crosses_like_an_order_and_cannot_take_more_than_there_is() -> None:
    onion = kitchen()[3]
    assert waste(onion, 500) is False and onion.stock == 500
    assert waste(onion, 1) is True and not onion.armed
    with pytest.raises(StockError, match="only 499 g of onion"):
        waste(onion, 500)
    with pytest.raises(StockError):
        waste(onion, 0)
    assert onion.stock == 499


def test_a_new_threshold_or_full_level_settles_the_alert_again() -> None:
    onion = kitchen()[3]
    onion.stock = 600
    assert change_levels(onion, threshold=Fraction(3, 4)) is True  # 600 < 750: one alert
    assert change_levels(onion, threshold=Fraction(7, 10)) is False  # 600 < 700: no second
    assert change_levels(onion, full_stock=800) is False and onion.armed  # 600 >= 560
    assert change_levels(onion, full_stock=2_000) is True  # 600 < 1400
    with pytest.raises(StockError):
        change_levels(onion, threshold=Fraction(1))
    with pytest.raises(StockError):
        change_levels(onion, full_stock=0)


def test_a_restock_above_the_par_level_leaves_it() -> None:
    onion = kitchen()[3]
    restock(onion, 500)
    assert (onion.stock, onion.full_stock) == (1_500, 1_000)
    assert waste(onion, 1_000) is False  # 500 g: half of par, not of the 1,500 g peak
    assert waste(onion, 1) is True


def test_stock_never_passes_the_grams_limit() -> None:
    onion = kitchen()[3]
    restock(onion, MAX_GRAMS - 1_000)
    assert onion.stock == MAX_GRAMS
    with pytest.raises(StockError, match=f"onion would hold {MAX_GRAMS + 1} g"):
        restock(onion, 1)
    with pytest.raises(StockError):
        count(onion, MAX_GRAMS + 1)
    with pytest.raises(StockError):
        change_levels(onion, full_stock=MAX_GRAMS + 1)
    assert (onion.stock, onion.full_stock) == (MAX_GRAMS, 1_000)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (0.5, Fraction(1, 2)),
        (0.3, Fraction(3, 10)),
        (0.000001, Fraction(1, 10**6)),
        (0.999999, Fraction(999_999, 10**6)),
        (0.1234564, Fraction(123_456, 10**6)),
        (0.30000000000000004, Fraction(3, 10)),
        # What rounds to 0 or 1 is refused: it would never alert, or always.
        (1e-9, None),
        (0.99999999, None),
        (0.0000004, None),
        (0, None),
        (1, None),
        (-0.5, None),
        (float("nan"), None),
        (float("inf"), None),
    ],
)
def test_a_threshold_is_what_is_stored(value: float, stored: Fraction | None) -> None:
    assert threshold(value) == stored


def test_an_applied_order_reports_the_grams_it_used() -> None:
    outcome = apply_order([Line(BURGER, 2)], RECIPES, kitchen())
    assert outcome.used == {1: 300, 2: 60, 3: 40}


@pytest.mark.parametrize(
    "amount, unit, text",
    [
        (480, "g", "480 g"),
        (250, "ml", "250 ml"),
        (1, "piece", "1 piece"),
        (3, "piece", "3 pieces"),
        (0, "piece", "0 pieces"),
        (Fraction(5, 2), "piece", "2.5 pieces"),
        (Fraction(500), "g", "500 g"),
        (MAX_GRAMS, "ml", f"{MAX_GRAMS} ml"),
    ],
)
def test_an_amount_is_named_in_its_unit(amount: int | Fraction, unit: str, text: str) -> None:
    assert amount_text(amount, unit) == text


def test_the_rules_messages_name_amounts_in_the_ingredients_unit() -> None:
    bun = IngredientState(1, "bun", 4, 10, False, HALF, "piece")
    milk = IngredientState(2, "milk", 1, 2000, False, HALF, "ml")
    assert IngredientState(3, "salt", 1, 1, True, HALF).unit == "g"  # the default
    recipes = {1: {1: 2, 2: 250}}
    outcome = apply_order([Line(1, 3)], recipes, {1: bun, 2: milk})
    assert (
        outcome.reason
        == "insufficient stock: bun needs 6 pieces, 4 pieces left; milk needs 750 ml, 1 ml left"
    )
    with pytest.raises(StockError, match=r"^only 4 pieces of bun are in stock$"):
        waste(bun, 5)
    with pytest.raises(StockError, match=r"^only 1 ml of milk are in stock$"):
        waste(milk, 2)
    with pytest.raises(StockError) as raised:
        restock(bun, MAX_GRAMS)
    assert str(raised.value) == (
        f"bun would hold {MAX_GRAMS + 4} pieces, more than the limit of {MAX_GRAMS} pieces"
    )
    assert (bun.stock, milk.stock) == (4, 1)


def test_the_alert_email_names_amounts_in_the_unit() -> None:
    subject, body = compose("bun", 1, 5, HALF, "piece")
    assert subject == "Low stock: bun is below 50% (1 piece left)"
    assert body.startswith(
        "bun is down to 1 piece of its par level of 5 pieces, below the alert threshold of "
        "50% (2.5 pieces)."
    )
    assert compose("onion", 480, 1000, HALF)[0] == "Low stock: onion is below 50% (480 g left)"


def test_scaled_amounts_are_said_in_kg_and_l_exactly() -> None:
    assert amount_text(1000, "g", scaled=True) == "1 kg"
    assert amount_text(1250, "g", scaled=True) == "1.25 kg"
    assert amount_text(1001, "ml", scaled=True) == "1.001 l"
    assert amount_text(-2500, "g", scaled=True) == "-2.5 kg"
    assert amount_text(999, "g", scaled=True) == "999 g"
    assert amount_text(1500, "piece", scaled=True) == "1500 pieces"
    assert amount_text(1500, "g") == "1500 g"  # messages that name grams keep them
