"""Reading the timecode sheet: a CSV export, or the tab of a Google spreadsheet (one values.get)."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from typing import TextIO

import gspread

from ..errors import InputError
from .google import READONLY_SCOPES, google_call, sheets_http

DEFAULT_WORKSHEET = "GGmetadata_and_timestamps"
# Python's csv module refuses a field over 131,072 characters. A long title is no reason to fail a load
# (issue #11). A C long is 32 bits on Windows, so sys.maxsize would overflow there.
CSV_FIELD_LIMIT = 2 ** 31 - 1


# --- CSV -----------------------------------------------------------------------------------------


def read_csv(path: str) -> tuple[list[str], Iterator[list[str]]]:
    """Header and a lazy iterator of rows of a CSV export of the sheet (UTF-8, with or without a BOM)."""
    try:
        handle = open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputError(f"{path} does not exist.") from None
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(handle)
    try:
        header = next(reader, None)
    except UnicodeDecodeError as exc:
        handle.close()
        raise _not_utf8(path, exc) from None
    if header is None:
        handle.close()
        raise InputError(f"{path} is empty; export the sheet tab {DEFAULT_WORKSHEET} as CSV.")
    return header, _rows(path, handle, reader)


def _rows(path: str, handle: TextIO, reader: Iterator[list[str]]) -> Iterator[list[str]]:
    # Streamed, not listed: a 100,000-row sheet as lists of 35 strings would cost hundreds of MB (issue #2).
    with handle:
        try:
            yield from reader
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None


def _not_utf8(path: str, exc: UnicodeDecodeError) -> InputError:
    return InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); export it as CSV UTF-8.")


def read_google_sheet(spreadsheet_id: str, worksheet: str = DEFAULT_WORKSHEET, credentials: str | None = None,
                      timeout: tuple[float, float] = (10, 60)) -> tuple[Sequence[object], list[list[object]]]:
    """Header and rows of one tab, read in a single values.get with unformatted values."""
    http, email, key_file = sheets_http(credentials, READONLY_SCOPES, timeout)
    answer = google_call(lambda: http.values_get(
        spreadsheet_id, gspread.utils.absolute_range_name(worksheet),
        params={"valueRenderOption": "UNFORMATTED_VALUE", "dateTimeRenderOption": "FORMATTED_STRING",
                "majorDimension": "ROWS"}), spreadsheet_id, worksheet, http, email, key_file)
    values = answer.get("values", [])
    if not values:
        raise InputError(f"tab {worksheet!r} of spreadsheet {spreadsheet_id} is empty.")
    header, rows = values[0], values[1:]
    width = len(header)
    # The API drops trailing empty cells; pad so that every row has every column.
    return header, [row + [""] * (width - len(row)) for row in rows]
