"""Writing to the spreadsheet: appending finished runs to the Sync_Log tab, and the status tab. Never the data tab."""

from __future__ import annotations

import functools
import json
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import gspread

from ..errors import GoogleUnreachable, SheetAccessError
from ..types import Json
from .google import SYNC_LOG_TAB, WRITE_SCOPES, google_call, plain_client, send_once, sheet_error, sheets_http
from .reading import DEFAULT_WORKSHEET

SYNC_LOG_COLUMNS = ("Sync_ID", "Sync_Type", "Started_At", "Completed_At", "Assets_New", "Assets_Updated",
                    "Status")

# A values:append whose answer is lost (5xx, timeout, dropped connection) is looked up by its Sync_ID before
# anything is sent again; after this many sends without a confirmation, the command stops.
APPEND_ATTEMPTS = 3
APPEND_SETTLE_SECONDS = 2.0  # between a lost answer and the look-up

SyncLogEntry = Mapping[str, Any]
Refused = Callable[[gspread.exceptions.APIError], Exception]


def append_sync_log(spreadsheet_id: str, entries: Sequence[SyncLogEntry], credentials: str | None = None,
                    timeout: tuple[float, float] = (10, 60)) -> tuple[list[str], list[str]]:
    """Append Sync_Log rows (dicts keyed by SYNC_LOG_COLUMNS) whose Sync_ID is not there yet.

    Returns (appended ids, ids already present). Reads the Sync_ID column first, so appending the same run
    twice never happens, whatever the ledger remembers. gspread's back-off client re-sends any request
    answered 5xx, POST included, which appended runs twice (issue #10): the append goes through a plain client
    instead, and an append whose answer was lost is looked up in the Sync_ID column, never re-sent blindly."""
    http, email, key_file = sheets_http(credentials, WRITE_SCOPES, timeout)
    plain = plain_client(http, timeout)

    def logged_ids() -> set[str]:
        answer = google_call(lambda: http.values_get(spreadsheet_id, gspread.utils.absolute_range_name(
            SYNC_LOG_TAB, "A:A")), spreadsheet_id, SYNC_LOG_TAB, http, email, key_file)
        return {str(row[0]) for row in answer.get("values", []) if row}

    def append(batch: Sequence[SyncLogEntry]) -> str | None:
        return append_once(plain, spreadsheet_id, batch, lambda exc: sheet_error(
            exc, http, spreadsheet_id, SYNC_LOG_TAB, email, writing=True), key_file)

    logged = logged_ids()
    present = [e["Sync_ID"] for e in entries if e["Sync_ID"] in logged]
    waiting = [entry for entry in entries if entry["Sync_ID"] not in logged]
    appended: list[str] = []
    lost: str | None = None
    for _ in range(APPEND_ATTEMPTS):
        if not waiting:
            break
        lost = append(waiting)
        if lost is None:
            appended += [e["Sync_ID"] for e in waiting]
            waiting = []
            break
        time.sleep(APPEND_SETTLE_SECONDS)
        logged = logged_ids()
        appended += [e["Sync_ID"] for e in waiting if e["Sync_ID"] in logged]
        waiting = [e for e in waiting if e["Sync_ID"] not in logged]
    if waiting:
        raise GoogleUnreachable(
            f"Google did not confirm the Sync_Log append of {', '.join(e['Sync_ID'] for e in waiting)} after "
            f"{APPEND_ATTEMPTS} tries (last: {lost}), and the rows are not in the tab; nothing was appended "
            "twice. Try again later.")
    return appended, present


def append_once(plain: gspread.HTTPClient, spreadsheet_id: str, entries: Iterable[SyncLogEntry], refused: Refused,
                key_file: str) -> str | None:
    """Send one values:append without retrying: None when Google confirmed it, else why its outcome is
    unknown (a 429 or 5xx answer, a timeout, a dropped connection). A refusal (4xx) raises."""
    body = {"values": [[entry[column] for column in SYNC_LOG_COLUMNS] for entry in entries]}
    return send_once(lambda: plain.values_append(
        spreadsheet_id, gspread.utils.absolute_range_name(SYNC_LOG_TAB),
        params={"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS"}, body=body), refused, key_file)


# --- the status tab (issue #12) ----------------------------------------------------------------------------
# `report --to-sheet` puts one row per asset into a tab of the spreadsheet, where the people who fix the sheet
# look. Requests, as few as the API allows:
#   1. one spreadsheets.get of the tabs (properties and reversesync's marker);
#   2. one batchUpdate, left out when the tab is already there at the right size: it adds the tab (marked as
#      reversesync's, with its grid sized) or sizes the existing tab's grid to exactly the rows and columns
#      written. Sizing the grid deletes whatever a longer earlier write left below, so no values.clear is
#      needed: that is one request fewer than clearing, and there is nothing to clear to get wrong;
#   3. one values.update at A1, RAW (a further one per 2 MB of values only for a very large ledger).
# The grid is sized before the values are written, so a failure between the two leaves rows of one write
# only, never old rows mixed under new ones.

STATUS_TAB = "reversesync_status"
# The data tab and Sync_Log are never written, whatever --tab says (issue #12).
PROTECTED_TABS = (DEFAULT_WORKSHEET, SYNC_LOG_TAB)
# Sheet-level developer metadata on the tabs reversesync added: a tab without it is someone else's and is
# never overwritten, which also protects a data tab loaded under another name (the ledger does not record it).
STATUS_MARKER = "reversesync_status_tab"
CELL_LIMIT = 50_000  # characters in one cell, Google's limit
# Google's recommended largest request payload ("to speed up requests"); its hard limit is 10 MiB.
VALUES_PAYLOAD_BYTES = 2_000_000
WRITE_ATTEMPTS = 3
WRITE_SETTLE_SECONDS = 2.0  # between a lost answer and the look-up or the resend
_TABS_FIELDS = "sheets.properties,sheets.developerMetadata"
_GRID_FIELDS = "gridProperties.rowCount,gridProperties.columnCount,gridProperties.frozenRowCount"


def is_protected_tab(name: str, data_tabs: Iterable[str] = ()) -> bool:
    """Whether name is the data tab, Sync_Log or one of data_tabs. Tab names are unique regardless of case in
    Google Sheets, so 'sync_log' is Sync_Log."""
    wanted = name.strip().casefold()
    return any(wanted == tab.casefold() for tab in (*PROTECTED_TABS, *data_tabs))


def fit_cell(value: object, limit: int = CELL_LIMIT) -> object:
    """value as one cell can hold it: a text over the cell limit is cut and ends in a visible
    '… [cut: N more characters]', so that nobody takes it for the whole text (issue #12).

    Length is counted in UTF-16 units (an emoji counts two), which is never less than any count Google
    makes; N counts characters as a reader does."""
    if not isinstance(value, str) or len(value) * 2 <= limit or _utf16_units(value) <= limit:
        return value
    removed = len(value)
    for _ in range(2):  # the mark's length depends on the number it shows: the second pass settles it
        kept = _utf16_prefix(value, limit - _utf16_units(_cut_mark(removed)))
        removed = len(value) - len(kept)
    return kept + _cut_mark(removed)


def _cut_mark(removed: int) -> str:
    return f"… [cut: {removed} more characters]"


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _utf16_prefix(text: str, units: int) -> str:
    # errors="ignore" drops half of a surrogate pair cut in two.
    return text.encode("utf-16-le")[:units * 2].decode("utf-16-le", errors="ignore")


def write_status_tab(spreadsheet_id: str, tab: str, values: Sequence[Sequence[object]], credentials: str | None = None,
                     timeout: tuple[float, float] = (10, 60)) -> Json:
    """Replace everything in the tab with values (a header row, then one row per asset), written RAW: a text
    starting with = + - @ stays text, with no quote added. Returns the tab's properties (title, sheetId).

    Refuses (SheetAccessError) a tab reversesync did not add. The caller refuses the protected tabs."""
    writer = _StatusTabWriter(spreadsheet_id, tab, credentials, timeout)
    values = [[fit_cell(value) for value in row] for row in values]
    properties = writer.fit_grid(len(values), max(len(row) for row in values))
    writer.write_values(properties["title"], values)
    return properties


class _StatusTabWriter:
    """One status-tab write: the spreadsheet, the two clients, and what to say when Google refuses."""

    def __init__(self, spreadsheet_id: str, tab: str, credentials: str | None, timeout: tuple[float, float]) -> None:
        self.http, self.email, self.key_file = sheets_http(credentials, WRITE_SCOPES, timeout)
        self.plain = plain_client(self.http, timeout)
        self.spreadsheet_id, self.tab = spreadsheet_id, tab
        self.purpose = f"write the tab {tab!r}"

    def tabs(self) -> list[Json]:
        """Every tab's properties and developer metadata. A read: gspread's back-off client may repeat it."""
        answer = google_call(lambda: self.http.fetch_sheet_metadata(
            self.spreadsheet_id, params={"fields": _TABS_FIELDS}), self.spreadsheet_id, self.tab, self.http,
            self.email, self.key_file, purpose=self.purpose)
        return answer.get("sheets", [])

    def fit_grid(self, rows: int, columns: int) -> Json:
        """Make the tab exist, marked as reversesync's, with exactly rows x columns and the header frozen.

        A batchUpdate that adds a tab is not idempotent (a second addSheet fails with 'already exists'): after
        a lost answer the tabs are read again and the request is planned afresh from what is there, never
        re-sent blindly. Resizing is idempotent, but goes through the same look-up."""
        sheets = self.tabs()
        lost: str | None = None
        for attempt in range(WRITE_ATTEMPTS + 1):  # the look-up after the last lost answer counts too
            body, properties = _grid_change(self._existing(sheets), self.tab, rows, columns, sheets)
            if body is None:
                return properties
            if attempt == WRITE_ATTEMPTS:
                break
            lost = send_once(functools.partial(self.plain.batch_update, self.spreadsheet_id, body), self._refused,
                             self.key_file)
            if lost is None:
                return properties
            time.sleep(WRITE_SETTLE_SECONDS)
            sheets = self.tabs()
        raise GoogleUnreachable(
            f"could not reach Google: it did not confirm the sizing of tab {self.tab!r} after {WRITE_ATTEMPTS} "
            f"tries (last: {lost}), and the tab is not as asked; nothing was written. Try again later.")

    def write_values(self, title: str, values: Iterable[Sequence[object]]) -> None:
        """values.update from A1, RAW. Each replaces a fixed range with the same cells, so sending it again after
        a lost answer can only write what may already be there: it is re-sent without a look-up."""
        for first_row, batch in value_batches(values, VALUES_PAYLOAD_BYTES):
            cells = gspread.utils.absolute_range_name(title, f"A{first_row}")
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                lost = send_once(functools.partial(
                    self.plain.values_update, self.spreadsheet_id, cells, params={"valueInputOption": "RAW"},
                    body={"values": batch}), self._refused, self.key_file)
                if lost is None:
                    break
                if attempt == WRITE_ATTEMPTS:
                    raise GoogleUnreachable(
                        f"could not reach Google: it did not confirm the values written to tab {title!r} after "
                        f"{WRITE_ATTEMPTS} tries (last: {lost}); the tab may be incomplete. Run the same command "
                        "again: it replaces the whole tab.")
                time.sleep(WRITE_SETTLE_SECONDS)

    def _existing(self, sheets: Iterable[Json]) -> Json | None:
        """The properties of the tab to write, or None when there is none. A tab reversesync did not add is
        someone else's: refused, so that no data is ever overwritten (issue #12)."""
        wanted = self.tab.casefold()
        for sheet in sheets:
            if sheet["properties"]["title"].casefold() != wanted:
                continue
            if not any(m.get("metadataKey") == STATUS_MARKER for m in sheet.get("developerMetadata", [])):
                raise SheetAccessError(
                    f"spreadsheet {self.spreadsheet_id} already has a tab {sheet['properties']['title']!r} that "
                    "reversesync did not make; it is left as it is. Give another --tab, or delete or rename that "
                    "tab.")
            return sheet["properties"]
        return None

    def _refused(self, exc: gspread.exceptions.APIError) -> SheetAccessError:
        return sheet_error(exc, self.http, self.spreadsheet_id, self.tab, self.email, writing=True,
                            purpose=self.purpose)


def _grid_change(existing: Json | None, tab: str, rows: int, columns: int,
                 sheets: Iterable[Json]) -> tuple[Json | None, Json]:
    """(batchUpdate body, or None when nothing needs changing; the tab's properties once it is done)."""
    grid = {"rowCount": rows, "columnCount": columns, "frozenRowCount": 1}
    if existing is None:
        properties: Json = {"sheetId": _free_sheet_id(tab, sheets), "title": tab, "gridProperties": grid}
        # The sheetId is chosen here, so that the same request can mark the tab it adds: both land or neither.
        marker = {"metadataKey": STATUS_MARKER, "location": {"sheetId": properties["sheetId"]},
                  "visibility": "DOCUMENT"}
        return {"requests": [{"addSheet": {"properties": properties}},
                             {"createDeveloperMetadata": {"developerMetadata": marker}}]}, properties
    current = existing.get("gridProperties", {})
    if all(current.get(name, 0) == value for name, value in grid.items()):
        return None, existing
    update = {"properties": {"sheetId": existing["sheetId"], "gridProperties": grid}, "fields": _GRID_FIELDS}
    return {"requests": [{"updateSheetProperties": update}]}, existing


def _free_sheet_id(title: str, sheets: Iterable[Json]) -> int:
    """A sheetId derived from the title (the same request body each time, which a lost answer's look-up and
    the tests rely on), moved on past any id in use."""
    taken = {sheet["properties"]["sheetId"] for sheet in sheets}
    sheet_id = zlib.crc32(title.encode()) & 0x7FFFFFFF
    while sheet_id in taken:
        sheet_id = (sheet_id + 1) & 0x7FFFFFFF
    return sheet_id


def value_batches(values: Iterable[Sequence[object]], budget: int) -> Iterator[tuple[int, list[Sequence[object]]]]:
    """(first row number, rows) in as few batches as keep each request body under budget bytes: one for
    any ledger of the real sheet's size."""
    first, size = 1, 0
    batch: list[Sequence[object]] = []
    for row in values:
        row_size = len(json.dumps(row)) + 2
        if batch and size + row_size > budget:
            yield first, batch
            first, batch, size = first + len(batch), [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield first, batch
