"""`load`: the sheet into the ledger, as one locked transaction that refuses a source that would empty it."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

from .. import errors
from ..sheets import AssetRecord, open_csv, read_google_sheet, records_from_table
from .session import Session

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


def load(session: Session, source: Source, allow_shrink: bool) -> Loaded:
    """Read the source and make the ledger (created if need be) match it, in one locked transaction."""
    records = read_source(source, session.notes)
    where = source.describe()
    if not records:
        raise errors.InputError(f"{where} has a header but no data rows; nothing was loaded. Check that it is the "
                                "right tab or file.")
    ledger = session.open_ledger(create=True)
    try:
        ledger.acquire("load")
        _refuse_a_shrink(session, ledger.keys_in_source(), records, where, allow_shrink,
                         [*source.words, "--allow-shrink"])
        counts = ledger.load(records)
    finally:
        ledger.release()
        ledger.close()
    return Loaded(where, ledger.path, sum(len(record.row_numbers) for record in records), counts)


def _refuse_a_shrink(session: Session, before: set[str], records: list[AssetRecord], where: str,
                     allow_shrink: bool, words: list[str]) -> None:
    """Refuse a load that would take more than half of the ledger's assets out of the source (issue #11):
    that is a wrong tab, a truncated export or `load --example` on a real ledger, not a smaller sheet."""
    before = {key for key in before if not LEGACY_ROW_KEY.match(key)}
    leaving = len(before - {record.key for record in records})
    if allow_shrink or leaving * 2 <= len(before):
        return
    raise errors.InputError(f"{where} would take {leaving} of the ledger's {len(before)} assets out of the source "
                            "(more than half); nothing was loaded. If it is the right source, load it with: "
                            f"{session.hint(*words)}")
