"""The sheet's rows as checked asset records: one per asset, with a reason when a row cannot be synced."""

from __future__ import annotations

import dataclasses
import decimal
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from ..errors import InputError
from ..rules import canonical_uuid

REQUIRED_COLUMNS = ("id", "time_start_ms", "time_end_ms")
OPTIONAL_COLUMNS = ("title", "time_start_S", "time_end_S")

# Seconds and milliseconds may disagree by rounding; more than this means one of them is wrong.
CROSS_CHECK_TOLERANCE_MS = 1000

INVALID, NO_TIMECODE, DUPLICATE_CONFLICT = "invalid", "no_timecode", "duplicate_conflict"

# A row whose id is unusable is keyed 'row:' and a digest of the cells it holds (content_key).
ROW_KEY_PREFIX = "row:"
CONTENT_COLUMNS = ("id", "title", "time_start_ms", "time_end_ms", "time_start_S", "time_end_S")

# The ledger stores times as SQLite integers (int64); a larger number is no time, and would stop the whole
# load with an OverflowError (issue #11): such a row is rejected as invalid instead.
LARGEST_MS = 2 ** 63 - 1

_WHOLE = re.compile(r"^(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.0*)?$")
_DECIMAL = re.compile(r"^(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d*)?$")


@dataclasses.dataclass
class AssetRecord:
    """One asset as the source describes it, after validation; reason is None when it can be synced."""

    key: str
    asset_id: str
    row_numbers: list[int]
    title: str
    time_start_ms: int | None = None
    time_end_ms: int | None = None
    reason: str | None = None
    reason_text: str | None = None
    times_from_seconds: bool = False     # the ms cells were empty: the times are the seconds cells' (exact)

    @property
    def source_hash(self) -> str:
        # The title is carried along but does not send a row back to pending: it never reaches Iconik. Nor does
        # times_from_seconds: the same times typed in the other columns are the same segment.
        payload = f"{self.key}|{self.time_start_ms}|{self.time_end_ms}|{self.reason}"
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _whole_ms(value: object) -> int | None:
    """A cell as a whole non-negative number, or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    text = str(value).strip()
    if text.isdigit() and text.isascii():
        return int(text)
    if not _WHOLE.match(text):
        return None
    return int(text.split(".")[0].replace(",", ""))


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text) if text.isascii() and text[:1].isdigit() else None
    except ValueError:
        return float(text.replace(",", "")) if _DECIMAL.match(text) else None


def _seconds_as_ms(value: object) -> decimal.Decimal | None:
    """A seconds cell as an exact number of milliseconds (12 -> 12000, '1,234.5' -> 1234500, 12.3456 -> 12345.6),
    or None if it is not a number of seconds, 0 or more."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        # repr is the shortest text that reads back as this float: what the sheet shows (12.345), where
        # Decimal(12.345) would be 12.3449999999999997513..., never a whole number of milliseconds.
        text = repr(value)
    else:
        text = str(value).strip()
        if not _DECIMAL.match(text):
            return None
        text = text.replace(",", "")
    seconds = decimal.Decimal(text)
    if seconds < 0:
        return None
    with decimal.localcontext() as context:
        # Room for every digit, and a trap in case there were not: a rounded time would be a wrong segment.
        context.prec = len(text) + 4
        context.traps[decimal.Inexact] = True
        return seconds * 1000


def _shown(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1000.0 from the Sheets API is the 1000 of a CSV export
    return "" if value is None else str(value)


def content_key(cells: Mapping[str, object]) -> str:
    """The key of a row whose id is unusable: a digest of what the row holds (the id cell, the title and the four
    time cells). Its row number would change whenever rows above it are added or deleted, and every such row
    would then be reported as removed and again as new (issue #17)."""
    values = [_cell_text(cells.get(column)) for column in CONTENT_COLUMNS]
    digest = hashlib.sha256(json.dumps(values, ensure_ascii=False).encode()).hexdigest()[:12]
    # The first hex digit becomes a letter (0-f -> g-v), keeping every bit: 'row:' and digits alone is how an older
    # reversesync keyed these rows, and a load tells those legacy keys apart (app/loading.py).
    return f"{ROW_KEY_PREFIX}{chr(ord('g') + int(digest[0], 16))}{digest[1:]}"


def check_row(row_number: int, cells: Mapping[str, object]) -> AssetRecord:
    """Validate one sheet row (a dict of the columns we use) into an AssetRecord."""
    raw_id = cells.get("id")
    raw_id = "" if raw_id is None else str(raw_id)
    asset_key = canonical_uuid(raw_id)
    title = "" if cells.get("title") is None else str(cells.get("title"))
    record = AssetRecord(key=asset_key or content_key(cells), asset_id=raw_id.strip() or raw_id,
                         row_numbers=[row_number], title=title)

    def reject(reason: str, text: str) -> AssetRecord:
        record.reason, record.reason_text = reason, f"Row {row_number}: {text}"
        return record

    if asset_key is None:
        if _blank(raw_id):
            return reject(INVALID, "the id cell is empty; put the Iconik asset id (a UUID) in column id.")
        return reject(INVALID, f"id {raw_id!r} is not an Iconik asset id (a UUID such as "
                               "1b4e28ba-2fa1-11d2-883f-0016d3cca427); correct column id.")
    start_cell, end_cell = cells.get("time_start_ms"), cells.get("time_end_ms")
    if _blank(start_cell) and _blank(end_cell):
        if _blank(cells.get("time_start_S")) and _blank(cells.get("time_end_S")):
            return reject(NO_TIMECODE, "time_start_ms and time_end_ms are both empty; fill them in to sync this "
                                       "asset.")
        return _times_from_seconds(record, cells, reject)
    times: list[int] = []
    for column, cell in (("time_start_ms", start_cell), ("time_end_ms", end_cell)):
        if _blank(cell):
            other = "time_end_ms" if column == "time_start_ms" else "time_start_ms"
            return reject(INVALID, f"{column} is empty but {other} is not; fill in both or neither.")
        ms = _whole_ms(cell)
        if ms is None:
            return reject(INVALID, f"{column} is {_shown(cell)}, not a whole number of milliseconds "
                                   "(0 or more); correct the cell.")
        if ms > LARGEST_MS:
            return reject(INVALID, f"{column} is {_shown(cell)}, too large to be a time in milliseconds "
                                   f"(at most {LARGEST_MS}); correct the cell.")
        times.append(ms)
    start, end = times
    if end <= start:
        return reject(INVALID, f"time_end_ms ({end}) is not after time_start_ms ({start}); correct one of them.")
    for column, ms in (("time_start_S", start), ("time_end_S", end)):
        cell = cells.get(column)
        if _blank(cell):
            continue
        seconds = _seconds(cell)
        if seconds is None:
            return reject(INVALID, f"{column} is {_shown(cell)}, not a number of seconds; correct or clear it.")
        if abs(seconds * 1000 - ms) > CROSS_CHECK_TOLERANCE_MS:
            ms_column = column.replace("_S", "_ms")
            return reject(INVALID, f"{column} ({_shown(cell)} s) and {ms_column} ({ms} ms) disagree by more "
                                   "than a second; correct whichever is wrong.")
    record.time_start_ms, record.time_end_ms = start, end
    return record


def _times_from_seconds(record: AssetRecord, cells: Mapping[str, object],
                        reject: Callable[[str, str], AssetRecord]) -> AssetRecord:
    """Both ms cells are empty and a seconds cell is not: the times are the seconds, to the millisecond exactly
    (issue #17: rows filled in only in seconds were called no_timecode)."""
    times: list[int] = []
    for column, other in (("time_start_S", "time_end_S"), ("time_end_S", "time_start_S")):
        cell = cells.get(column)
        if _blank(cell):
            return reject(INVALID, f"{column} is empty but {other} is not (and time_start_ms and time_end_ms are "
                                   "both empty); fill in both times.")
        ms = _seconds_as_ms(cell)
        if ms is None:
            return reject(INVALID, f"{column} is {_shown(cell)}, not a number of seconds (0 or more, such as 12.5); "
                                   "correct the cell.")
        if ms != ms.to_integral_value():
            return reject(INVALID, f"{column} is {_shown(cell)}, a time finer than a millisecond (more than three "
                                   "decimals), which a segment cannot hold; correct the cell.")
        if ms > LARGEST_MS:
            return reject(INVALID, f"{column} is {_shown(cell)}, too large to be a time in seconds; correct the "
                                   "cell.")
        times.append(int(ms))
    start, end = times
    if end <= start:
        return reject(INVALID, f"time_end_S ({_shown(cells.get('time_end_S'))}) is not after time_start_S "
                               f"({_shown(cells.get('time_start_S'))}); correct one of them.")
    record.time_start_ms, record.time_end_ms, record.times_from_seconds = start, end, True
    return record


def merge_duplicates(records: Iterable[AssetRecord]) -> list[AssetRecord]:
    """One record per asset. Rows repeating an asset with the same outcome merge; rows that disagree are
    all rejected as duplicate_conflict, none guessed. Rows whose id is unusable never merge: nothing says two
    identical ones are one asset, so each keeps a key of its own, the second numbered #2, and so on."""
    by_key: dict[str, list[AssetRecord]] = {}
    copies: dict[str, int] = {}
    for record in records:
        if record.key.startswith(ROW_KEY_PREFIX):
            copies[record.key] = copies.get(record.key, 0) + 1
            if copies[record.key] > 1:
                record = dataclasses.replace(record, key=f"{record.key}#{copies[record.key]}")
        by_key.setdefault(record.key, []).append(record)
    merged: list[AssetRecord] = []
    for key, group in by_key.items():
        first = group[0]
        if len(group) == 1:
            merged.append(first)
            continue
        rows = [n for r in group for n in r.row_numbers]
        outcomes = {(r.time_start_ms, r.time_end_ms, r.reason) for r in group}
        merged_record = dataclasses.replace(first, row_numbers=rows)
        if len(outcomes) > 1:
            described = "; ".join(f"row {r.row_numbers[0]}: {_describe_times(r)}" for r in group)
            merged_record.time_start_ms = merged_record.time_end_ms = None
            merged_record.reason = DUPLICATE_CONFLICT
            merged_record.reason_text = (
                f"Rows {', '.join(map(str, rows))}: asset {key} appears on several rows with different "
                f"times ({described}); keep one row or make them agree.")
        merged.append(merged_record)
    return merged


def _describe_times(record: AssetRecord) -> str:
    if record.reason:
        return record.reason
    return f"{record.time_start_ms}-{record.time_end_ms} ms"


def records_from_table(header: Iterable[object], rows: Iterable[Sequence[object]],
                       first_row_number: int = 2) -> list[AssetRecord]:
    """Validate a header and its data rows (lists of cells) into one AssetRecord per asset."""
    index = _column_index(header)
    records: list[AssetRecord] = []
    for offset, row in enumerate(rows):
        if all(_blank(cell) for cell in row):
            continue
        cells = {name: (row[i] if i < len(row) else None) for name, i in index.items()}
        records.append(check_row(first_row_number + offset, cells))
    return merge_duplicates(records)


def _column_index(header: Iterable[object]) -> dict[str, int]:
    names = [str(h).strip() for h in header]
    lowered = {name.lower(): i for i, name in reversed(list(enumerate(names)))}
    missing = [c for c in REQUIRED_COLUMNS if c.lower() not in lowered]
    if missing:
        present = ", ".join(n for n in names if n) or "(none)"
        raise InputError(f"the sheet has no column {', '.join(missing)} (required: {', '.join(REQUIRED_COLUMNS)}). "
                         f"Columns present: {present}.")
    return {c: lowered[c.lower()] for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c.lower() in lowered}
