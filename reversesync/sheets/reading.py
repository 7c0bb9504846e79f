"""Reading the timecode sheet: a CSV export, or the tab of a Google spreadsheet (one values.get)."""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import itertools
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

# Korean Excel's "CSV" save writes the system code page, cp949, not UTF-8 (issue #17): a file that is not UTF-8
# and carries no BOM is tried as cp949 before it is refused.
FALLBACK_ENCODING = "cp949"
# The detection pass reads the raw bytes this much at a time: a 100,000-row sheet is never held whole.
CHUNK_BYTES = 1 << 20


@dataclasses.dataclass
class CsvExport:
    """An export being read: its header, a lazy iterator of its rows, the encoding they are read with, and a
    line for the person when that encoding was a guess (None when the file said which, or the user did)."""

    header: list[str]
    rows: Iterator[list[str]]
    encoding: str
    note: str | None = None


def read_csv(path: str, encoding: str | None = None) -> tuple[list[str], Iterator[list[str]]]:
    """Header and a lazy iterator of rows of a CSV export of the sheet (see open_csv)."""
    export = open_csv(path, encoding)
    return export.header, export.rows


def open_csv(path: str, encoding: str | None = None) -> CsvExport:
    """An export of the sheet: UTF-8 (with or without a BOM), UTF-16 with a BOM (Excel's "Unicode Text"), or,
    when the file is not UTF-8 and has no BOM, cp949 (Korean Excel's "CSV"); `encoding` forces one. Comma or
    TAB separated, as its header line shows. Only bytes that cannot be decoded are refused, naming the offset."""
    with _reading(path):
        with open(path, "rb") as raw:
            head = raw.read(4)
    note = None
    if encoding is not None:
        _refuse_undecodable(path, encoding, f"is not {encoding} text", "give the file's encoding with --encoding NAME")
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"  # the BOM says which byte order; the codec reads it and drops it
        _refuse_undecodable(path, encoding, "starts with a UTF-16 byte-order mark but is not UTF-16 text",
                            "give the file's encoding with --encoding NAME")
    elif head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
        _refuse_undecodable(path, encoding, "starts with a UTF-8 byte-order mark but is not UTF-8 text",
                            'export it as "CSV UTF-8", or give its encoding with --encoding NAME')
    else:
        encoding, note = _utf8_or_cp949(path)
    return _parse(path, encoding, note)


def _utf8_or_cp949(path: str) -> tuple[str, str | None]:
    not_utf8 = _first_undecodable(path, "utf-8")
    if not_utf8 is None:
        return "utf-8", None
    not_cp949 = _first_undecodable(path, FALLBACK_ENCODING)
    if not_cp949 is None:
        return FALLBACK_ENCODING, (f"note: {path} is not UTF-8; it was read as {FALLBACK_ENCODING} (what Korean "
                                   "Excel saves as CSV). If its titles look wrong, give its encoding with "
                                   "--encoding NAME.")
    raise InputError(f"{path} is neither UTF-8 ({_where(not_utf8)}) nor {FALLBACK_ENCODING} ({_where(not_cp949)}) "
                     'text; export it as "CSV UTF-8", or give its encoding with --encoding NAME.')


def _refuse_undecodable(path: str, encoding: str, what: str, remedy: str) -> None:
    failure = _first_undecodable(path, encoding)
    if failure is not None:
        raise InputError(f"{path} {what} ({_where(failure)}); {remedy}.")


def _where(failure: tuple[int, str]) -> str:
    offset, reason = failure
    return f"byte {offset:,} cannot be decoded: {reason}"


def _first_undecodable(path: str, encoding: str) -> tuple[int, str] | None:
    """The offset in the file of the first byte that encoding cannot decode, and why; None if it all decodes.

    A pass of its own over the raw bytes, because a text stream's decode errors count from the start of the
    chunk it was decoding, not of the file, and the offset is what lets a person find the byte."""
    decoder = codecs.getincrementaldecoder(encoding)()
    consumed = 0
    with _reading(path), open(path, "rb") as raw:
        while True:
            chunk = raw.read(CHUNK_BYTES)
            # Bytes the decoder holds back (a sequence cut by the chunk's end) belong before this chunk.
            held = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return consumed - held + exc.start, exc.reason
            except UnicodeError as exc:  # utf-16 without a byte-order mark says so without an offset
                return consumed - held, str(exc)
            if not chunk:
                return None
            consumed += len(chunk)


def _parse(path: str, encoding: str, note: str | None) -> CsvExport:
    with _reading(path):
        handle = open(path, encoding=encoding, newline="")
    try:
        with _reading(path):
            first = handle.readline()
    except UnicodeDecodeError as exc:
        handle.close()
        raise _changed(path, encoding, exc) from None
    except InputError:
        handle.close()
        raise
    if not first:
        handle.close()
        raise InputError(f"{path} is empty; export the sheet tab {DEFAULT_WORKSHEET} as CSV.")
    # Excel's "Unicode Text" export separates cells by TABs, its "CSV" by commas: the header line says which.
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(itertools.chain([first], handle), delimiter=delimiter)
    header = next(reader)
    if header:
        # A BOM that a forced --encoding left (utf-8 rather than utf-8-sig) is no part of the first column's name.
        header[0] = header[0].lstrip("\ufeff")
    return CsvExport(header, _rows(path, encoding, handle, reader), encoding, note)


def _rows(path: str, encoding: str, handle: TextIO, reader: Iterator[list[str]]) -> Iterator[list[str]]:
    # Streamed, not listed: a 100,000-row sheet as lists of 35 strings would cost hundreds of MB (issue #2).
    with handle, _reading(path):
        try:
            yield from reader
        except UnicodeDecodeError as exc:
            raise _changed(path, encoding, exc) from None


# Windows' errors for a file OneDrive keeps online only and cannot fetch now (ERROR_CLOUD_FILE_*: 358-400).
CLOUD_FILE_ERRORS = range(358, 401)
SHARING_ERRORS = (32, 33)  # ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION: another program holds the file


@contextlib.contextmanager
def _reading(path: str) -> Iterator[None]:
    """Reading the export: an OSError becomes a sentence saying what to do (issue #18), never a traceback."""
    try:
        yield
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: str, exc: OSError) -> InputError:
    winerror = getattr(exc, "winerror", None)
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{path} does not exist.")
    if winerror in CLOUD_FILE_ERRORS:
        return InputError(f"cannot read {path}: OneDrive keeps it online only and could not fetch it now "
                          f"({exc.strerror}). In Explorer, right-click it and choose \"Always keep on this device\" "
                          "(or open it once while online), then load again.")
    if winerror in SHARING_ERRORS or isinstance(exc, PermissionError):
        return InputError(f"cannot read {path}: another program holds it or it is not yours to read "
                          f"({exc.strerror}). If it is open in Excel, close it there (or save a copy and load "
                          "that), then load again.")
    return InputError(f"cannot read {path}: {exc.strerror or exc}.")


def _changed(path: str, encoding: str, exc: UnicodeDecodeError) -> InputError:
    # The detection pass decoded every byte, so only a file written meanwhile gets here.
    return InputError(f"{path} could not be decoded as {encoding} ({exc.reason}) although it could a moment ago; "
                      "it may be being written: load it again once it is complete.")


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
