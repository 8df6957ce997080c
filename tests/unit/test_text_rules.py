"""The rules for text people type: names, notes, email addresses (kitchen.validation)."""

import pytest

from kitchen.validation import email_problem, name_problem, note_problem


@pytest.mark.parametrize("name", ["Burger", "Zwiebel 洋葱 🧅", "Chez Ada & fils", "x" * 100])
def test_readable_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "must be text of 1 to 100 characters"),
        ("   ", "must be text of 1 to 100 characters"),
        ("x" * 101, "must be text of 1 to 100 characters"),
        (5, "must be text of 1 to 100 characters"),
        ("bad\ud800x", "must be one line of readable text: U+D800 is a lone surrogate"),
        ("Alice\tx@y.z", "must be one line of readable text: U+0009 is a control character"),
        ("Evil\x1b[31m", "must be one line of readable text: U+001B is a control character"),
        ("a\u2029b", "must be one line of readable text: U+2029 is a line or paragraph separator"),
    ],
)
def test_unreadable_names(name: object, problem: str) -> None:
    assert name_problem(name) == problem


def test_notes_may_hold_newlines_and_tabs_but_not_cr() -> None:
    assert note_problem("two crates\n\tshort") is None
    assert note_problem("x" * 500) is None
    assert note_problem("x" * 501) == "must be text of 1 to 500 characters"
    assert note_problem("a\r\nb") == (
        "must be readable text (newlines and tabs allowed): U+000D is a control character"
    )


@pytest.mark.parametrize(
    "address, problem",
    [
        ("kitchen@localhost", None),
        ("chef+alerts@example.com", None),
        ("josé@example.com", "must be an email address in plain ASCII"),
        ("chef@example.com, spy@evil.example", "must be an email address like name@example.com"),
        ("x" * 65 + "@example.com", "must be an email address whose part before @ is at most 64"),
        ("a@" + "b" * 250 + ".com", "must be an email address of at most 254 characters"),
        (None, "must be an email address like name@example.com"),
    ],
)
def test_email_problem(address: object, problem: str | None) -> None:
    found = email_problem(address)
    assert found == problem if problem is None else (found or "").startswith(problem)
