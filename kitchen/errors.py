"""What a use case raises when it cannot do what it was asked: no HTTP status, no exit code.

Each edge says what an error means to its callers, in one place: the HTTP edge's
exception-handler map (`kitchen.http.build_app`: status and title of the problem
document) and the CLI's `kitchen.admin.EXIT_CODES`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class Invalid(Exception):
    """What was asked names bad fields, each with why (`products[0].quantity: ...`)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


class InvalidOrder(Invalid):
    """An order that names bad fields, or products the merchant does not sell."""


class MalformedBody(InvalidOrder):
    """The body is not JSON at all, as opposed to JSON of the wrong shape."""


class NotFound(Exception):
    """What the request names does not exist for this merchant."""

    def __init__(self, what: str, ident: object) -> None:
        super().__init__(f"there is no {what} {ident}")
        self.what = what


class Conflict(Exception):
    """The request clashes with what exists, e.g. a name already taken."""


class KeyReused(Exception):
    """An Idempotency-Key sent again with a different order."""

    def __init__(self, key: str | None) -> None:
        super().__init__(f"Idempotency-Key {key!r} was already used for a different order")
        self.key = key
