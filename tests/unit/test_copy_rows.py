"""PostgreSQL's COPY text that bulk_insert sends: what a value becomes, without a database."""

import datetime

import peewee as pw

from kitchen.db import _copy_rows
from kitchen.models import LedgerEntry

FIELDS: list[pw.Field] = [
    LedgerEntry.grams,
    LedgerEntry.reason,
    LedgerEntry.note,
    LedgerEntry.created_at,
]


def test_integers_text_and_times_are_written_as_postgresql_reads_them() -> None:
    at = datetime.datetime(2026, 1, 2, 3, 4, 5, 6)
    rows = [(-150, "order", None, at), (20, "order", None, at)]
    assert _copy_rows(FIELDS, rows) == (
        "-150\torder\t\\N\t2026-01-02 03:04:05.000006\n20\torder\t\\N\t2026-01-02 03:04:05.000006\n"
    )


def test_tabs_newlines_and_backslashes_in_text_are_escaped() -> None:
    rows = [(1, "count", "shelf\t2\r\nback\\room", None)]
    assert _copy_rows(FIELDS, rows) == "1\tcount\tshelf\\t2\\r\\nback\\\\room\t\\N\n"
