"""`load`: the sheet into the ledger, as one locked transaction that refuses a source that would empty it or take
too many of its assets out of the source (a wrong tab, a truncated export)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

from .. import errors, progress
from ..ledger import Ledger
from ..sheets import AssetRecord, open_csv, read_google_sheet, records_from_table
from .session import Session, holding

# More than this share of the assets in the source leaving it at one load is a wrong or truncated source, not a
# smaller sheet (issue #17: a 1,300-row export of a 2,479-row sheet was taken as 1,193 assets removed).
SHRINK_LIMIT_PERCENT = 10
# How reversesync before issue #17 keyed rows whose id is unusable. Such keys leave the source once, at the first
# load by this version (the rows come back keyed by their content), so they are no asset a load takes away.
LEGACY_ROW_KEY = re.compile(r"^row:\d+$")


def example_sheet_path() -> str:
    """The bundled example sheet: about 300 rows with every case the tool handles."""
    return str(resources.files("reversesync.examples").joinpath("example_sheet.csv"))


@dataclasses.dataclass(frozen=True)
class Source:
    """Where the rows come from: a Google tab, a CSV file, or the bundled example (csv_path None, sheet None)."""

    spreadsheet_id: str | None = None
    worksheet: str = ""
    credentials: str | None = None
    csv_path: str | None = None
    words: tuple[str, ...] = ()      # the load command as typed, to repeat in a hint
    encoding: str | None = None      # the CSV file's, as --encoding forces it; None: detected

    def describe(self) -> str:
        if self.spreadsheet_id:
            return f"spreadsheet {self.spreadsheet_id}, tab {self.worksheet}"
        return self.csv_path or example_sheet_path()


@dataclasses.dataclass(frozen=True)
class Loaded:
    where: str
    ledger: str
    rows_read: int
    counts: dict[str, Any]


def read_source(source: Source, notes: Callable[[str], None] = lambda text: None) -> list[AssetRecord]:
    """The source's checked records; notes hears the line saying which encoding a CSV file was read in, when
    that was a guess."""
    if source.spreadsheet_id:
        header, rows = read_google_sheet(source.spreadsheet_id, source.worksheet, source.credentials)
        return records_from_table(header, rows)
    export = open_csv(source.describe(), source.encoding)
    if export.note:
        notes(export.note)
    return records_from_table(export.header, export.rows)


def load(session: Session, source: Source, allow_shrink: bool, sink: progress.Sink = progress.ignore) -> Loaded:
    """Read the source and make the ledger (created if need be) match it, in one locked transaction."""
    records = _usable(read_source(source, session.notes), source)  # before the ledger: a wrong file creates none
    ledger = session.open_ledger(create=True)
    try:
        # Once before the lock as well: taking the lock writes to the ledger, and a refused load leaves the file
        # exactly as it was. Under the lock it is decided again, on what another process may have loaded since.
        # A ledger someone holds is left to acquire(), which says it is in use (exit 3) before anything else.
        if ledger.lock_holder() is None:
            _refuse_a_shrink(session, ledger, records, source, allow_shrink)
        ledger.acquire("load")
        holding(ledger, "load", sink)
        return load_into(session, ledger, source, allow_shrink, records)
    finally:
        ledger.release()
        ledger.close()


def load_into(session: Session, ledger: Ledger, source: Source, allow_shrink: bool,
              records: list[AssetRecord] | None = None) -> Loaded:
    """Make a ledger this process has open and locked match the source (the nightly `sync` loads under its own
    lock); raises InputError, before changing anything, for a source `load` refuses. records: the source's, if the
    caller has read them already."""
    if records is None:
        records = _usable(read_source(source, session.notes), source)
    _refuse_a_shrink(session, ledger, records, source, allow_shrink)
    counts = ledger.load(records)
    return Loaded(source.describe(), ledger.path, sum(len(record.row_numbers) for record in records), counts)


def _usable(records: list[AssetRecord], source: Source) -> list[AssetRecord]:
    if not records:
        raise errors.InputError(f"{source.describe()} has a header but no data rows; nothing was loaded. Check that "
                                "it is the right tab or file.")
    return records


def _refuse_a_shrink(session: Session, ledger: Ledger, records: list[AssetRecord], source: Source,
                     allow_shrink: bool) -> None:
    """Refuse a load that would take more than 10% of the assets in the source out of it (issue #17; it was half):
    that is a wrong tab, a truncated export or `load --example` on a real ledger, not a smaller sheet."""
    if allow_shrink:
        return
    before = {key for key in ledger.keys_in_source() if not LEGACY_ROW_KEY.match(key)}
    leaving = len(before - {record.key for record in records})
    if leaving * 100 <= len(before) * SHRINK_LIMIT_PERCENT:
        return
    raise errors.InputError(
        f"{source.describe()} would take {leaving:,} of the ledger's {len(before):,} assets out of the source "
        f"({_percent(leaving, len(before))}, more than {SHRINK_LIMIT_PERCENT}%); nothing was loaded. If it is the "
        f"right source, load it with: {session.hint(*source.words, '--allow-shrink')}")


def _percent(part: int, whole: int) -> str:
    """part of whole as a percentage, with as few decimals as show it above the limit (48%, 10.4%)."""
    share = part * 100 / whole
    for decimals in (0, 1, 2):
        shown = f"{share:.{decimals}f}"
        if float(shown) > SHRINK_LIMIT_PERCENT:
            return f"{shown}%"
    return f"{share:.3f}%"
