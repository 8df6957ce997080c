"""The shape of POST /order bodies, without a database."""

import pytest

from kitchen.domain import Line
from kitchen.validation import InvalidOrder, decode_body, parse_order


def parse(data: object) -> list[Line]:
    return parse_order(data, max_lines=100, max_quantity=10_000)


def test_a_valid_order() -> None:
    assert parse({"products": [{"product_id": 1, "quantity": 2}]}) == [Line(1, 2)]


@pytest.mark.parametrize(
    "data, field, message",
    [
        ([], "body", "must be a JSON object with a products list"),
        ({}, "products", "is required"),
        ({"products": {}}, "products", "must be a list"),
        ({"products": []}, "products", "must not be empty"),
        ({"products": [1]}, "products[0]", "must be an object with product_id and quantity"),
        ({"products": [{"quantity": 1}]}, "products[0].product_id", "is required"),
        (
            {"products": [{"product_id": "1", "quantity": 1}]},
            "products[0].product_id",
            "must be a positive integer",
        ),
        ({"products": [{"product_id": 1}]}, "products[0].quantity", "is required"),
        (
            {"products": [{"product_id": 1, "quantity": 0}]},
            "products[0].quantity",
            "must be a positive integer",
        ),
        (
            {"products": [{"product_id": 1, "quantity": -3}]},
            "products[0].quantity",
            "must be a positive integer",
        ),
        (
            {"products": [{"product_id": 1, "quantity": 1.5}]},
            "products[0].quantity",
            "must be a positive integer",
        ),
        (
            {"products": [{"product_id": 1, "quantity": True}]},
            "products[0].quantity",
            "must be a positive integer",
        ),
        (
            {"products": [{"product_id": 1, "quantity": 10_001}]},
            "products[0].quantity",
            "must be at most 10000",
        ),
        (
            {"products": [{"product_id": 1, "quantity": 1}] * 101},
            "products",
            "at most 100 lines per order",
        ),
    ],
)
def test_bad_shapes_name_the_field(data: object, field: str, message: str) -> None:
    with pytest.raises(InvalidOrder) as caught:
        parse(data)
    assert [(e.field, e.message) for e in caught.value.errors] == [(field, message)]


def test_every_bad_line_is_reported() -> None:
    with pytest.raises(InvalidOrder) as caught:
        parse({"products": [{"product_id": 0, "quantity": 1}, {"product_id": 1, "quantity": 0}]})
    assert [e.field for e in caught.value.errors] == [
        "products[0].product_id",
        "products[1].quantity",
    ]


def test_malformed_json() -> None:
    with pytest.raises(InvalidOrder, match="is not valid JSON"):
        decode_body(b'{"products": [')
    with pytest.raises(InvalidOrder, match="is not valid JSON"):
        decode_body(b"\xff\xfe")


def test_bodies_the_json_parser_chokes_on_are_malformed_not_errors() -> None:
    with pytest.raises(InvalidOrder, match="nested too deeply"):
        decode_body(b"[" * 100_000)
    with pytest.raises(InvalidOrder, match="is not valid JSON"):
        decode_body(b"1" * 5000)  # Python refuses int() of over 4300 digits


def test_a_product_id_beyond_64_bits_is_unknown() -> None:
    with pytest.raises(InvalidOrder) as caught:
        parse({"products": [{"product_id": 2**63, "quantity": 1}]})
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("products[0].product_id", f"unknown product {2**63}")
    ]


@pytest.mark.parametrize(
    "data, errors",
    [
        (
            {"products": [{"product_id": 1, "quantity": 1}], "table": 5},
            [("table", "is not a known field")],
        ),
        (
            {"products": [{"product_id": 1, "quantity": 1, "qty": 2}]},
            [("products[0].qty", "is not a known field")],
        ),
        (
            {"products": [{"product_id": 1, "qty": 2}]},
            [("products[0].qty", "is not a known field"), ("products[0].quantity", "is required")],
        ),
        (
            {"table": 5, "products": []},
            [("table", "is not a known field"), ("products", "must not be empty")],
        ),
        ({"prodcts": []}, [("prodcts", "is not a known field"), ("products", "is required")]),
    ],
    ids=["top level", "in a line", "instead of quantity", "with another error", "misspelt"],
)
def test_unknown_fields_are_refused_by_name(data: object, errors: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidOrder) as caught:
        parse(data)
    assert [(e.field, e.message) for e in caught.value.errors] == errors
