"""The kitchen's rules, without Kafka or a database."""

from fractions import Fraction

import pytest

from kitchen import catalogue
from kitchen.domain import IngredientState, Line, apply_order, grams_needed, is_below, restock

# The reference kitchen with ids: beef 1, cheese 2, onion 3; the Burger is product 1.
IDS = {name: i for i, name in enumerate(catalogue.REFERENCE_STOCK, start=1)}
BURGER = 1
RECIPES = {BURGER: {IDS[name]: grams for name, grams in catalogue.BURGER.items()}}
HALF = Fraction(1, 2)


def kitchen() -> dict[int, IngredientState]:
    return {
        i: IngredientState(
            i, name, catalogue.REFERENCE_STOCK[name], catalogue.REFERENCE_STOCK[name], True, HALF
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
