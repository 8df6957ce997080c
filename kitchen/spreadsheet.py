"""Lists that a spreadsheet opens as they are: JSON by default, CSV on `Accept: text/csv`.

One place for the choice and the format, for every list Kitchen offers both ways (GET
/reorder, GET /reports/usage): a header row of the JSON's field names, one row per item,
written by Python's `csv` module (quoting, commas and newlines in names), UTF-8.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

CSV = "text/csv"


def wants_csv(request: Request) -> bool:
    """The client asked for CSV (`Accept: text/csv`, alone or first among others)."""
    accept = request.headers.get("accept", "")
    first = accept.split(",")[0].split(";")[0].strip().lower()
    return first == CSV


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """`rows` as CSV: a header of `columns`, then each row's values (None: empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180's line ends
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return out.getvalue()


# A text cell starting so is a formula to a spreadsheet: a merchant's ingredient named
# "=HYPERLINK(...)" would run in whoever opens the file (OWASP's "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A value as a CSV cell: None empty, numbers as they are, text that a spreadsheet
    would take for a formula behind a quote (OWASP's advice), which shows it as text."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def respond(
    request: Request,
    json_body: Any,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    filename: str,
) -> Response:
    """JSON (`json_body`) or, when asked, CSV of `rows` named `filename` for a download."""
    if not wants_csv(request):
        return JSONResponse(json_body)
    return Response(
        csv_text(rows, columns),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
