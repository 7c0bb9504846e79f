"""Reading the timecode sheet (Google Sheets or a CSV export) and turning its rows into checked asset records."""

import csv
import dataclasses
import hashlib
import json
import os
import re
import time
import zlib

import gspread
import requests
from google.auth import exceptions as google_auth_errors
from google.oauth2 import service_account

from .errors import InputError, SheetAccessError

DEFAULT_WORKSHEET = "GGmetadata_and_timestamps"
REQUIRED_COLUMNS = ("id", "time_start_ms", "time_end_ms")
OPTIONAL_COLUMNS = ("title", "time_start_S", "time_end_S")
READONLY_SCOPES = ["https://www.googleapis.com/auth/spreadsheets.readonly"]
WRITE_SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
SYNC_LOG_TAB = "Sync_Log"
SYNC_LOG_COLUMNS = ("Sync_ID", "Sync_Type", "Started_At", "Completed_At", "Assets_New", "Assets_Updated",
                    "Status")

# Seconds and milliseconds may disagree by rounding; more than this means one of them is wrong.
CROSS_CHECK_TOLERANCE_MS = 1000

INVALID, NO_TIMECODE, DUPLICATE_CONFLICT = "invalid", "no_timecode", "duplicate_conflict"

# The ledger stores times as SQLite integers (int64); a larger number is no time, and would stop the whole
# load with an OverflowError (issue #11): such a row is rejected as invalid instead.
LARGEST_MS = 2 ** 63 - 1

# Python's csv module refuses a field over 131,072 characters. A long title is no reason to fail a load
# (issue #11). A C long is 32 bits on Windows, so sys.maxsize would overflow there.
CSV_FIELD_LIMIT = 2 ** 31 - 1

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_WHOLE = re.compile(r"^(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.0*)?$")
_DECIMAL = re.compile(r"^(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d*)?$")


@dataclasses.dataclass
class AssetRecord:
    """One asset as the source describes it, after validation; reason is None when it can be synced."""

    key: str
    asset_id: str
    row_numbers: list
    title: str
    time_start_ms: int = None
    time_end_ms: int = None
    reason: str = None
    reason_text: str = None

    @property
    def source_hash(self):
        # The title is carried along but does not send a row back to pending: it never reaches Iconik.
        payload = f"{self.key}|{self.time_start_ms}|{self.time_end_ms}|{self.reason}"
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def canonical_uuid(value):
    """The lower-case canonical form of value if it is a UUID as Iconik writes them, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text if _UUID.match(text) else None


def _blank(value):
    return value is None or (isinstance(value, str) and not value.strip())


def _whole_ms(value):
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


def _seconds(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text) if text.isascii() and text[:1].isdigit() else None
    except ValueError:
        return float(text.replace(",", "")) if _DECIMAL.match(text) else None


def _shown(value):
    return repr(value) if isinstance(value, str) else str(value)


def check_row(row_number, cells):
    """Validate one sheet row (a dict of the columns we use) into an AssetRecord."""
    raw_id = cells.get("id")
    raw_id = "" if raw_id is None else str(raw_id)
    asset_key = canonical_uuid(raw_id)
    title = "" if cells.get("title") is None else str(cells.get("title"))
    record = AssetRecord(key=asset_key or f"row:{row_number}", asset_id=raw_id.strip() or raw_id,
                         row_numbers=[row_number], title=title)

    def reject(reason, text):
        record.reason, record.reason_text = reason, f"Row {row_number}: {text}"
        return record

    if asset_key is None:
        if _blank(raw_id):
            return reject(INVALID, "the id cell is empty; put the Iconik asset id (a UUID) in column id.")
        return reject(INVALID, f"id {raw_id!r} is not an Iconik asset id (a UUID such as "
                               "1b4e28ba-2fa1-11d2-883f-0016d3cca427); correct column id.")
    start_cell, end_cell = cells.get("time_start_ms"), cells.get("time_end_ms")
    if _blank(start_cell) and _blank(end_cell):
        return reject(NO_TIMECODE, "time_start_ms and time_end_ms are both empty; fill them in to sync this asset.")
    times = []
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


def merge_duplicates(records):
    """One record per asset. Rows repeating an asset with the same outcome merge; rows that disagree are
    all rejected as duplicate_conflict, none guessed."""
    by_key = {}
    for record in records:
        by_key.setdefault(record.key, []).append(record)
    merged = []
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


def _describe_times(record):
    if record.reason:
        return record.reason
    return f"{record.time_start_ms}-{record.time_end_ms} ms"


def records_from_table(header, rows, first_row_number=2):
    """Validate a header and its data rows (lists of cells) into one AssetRecord per asset."""
    index = _column_index(header)
    records = []
    for offset, row in enumerate(rows):
        if all(_blank(cell) for cell in row):
            continue
        cells = {name: (row[i] if i < len(row) else None) for name, i in index.items()}
        records.append(check_row(first_row_number + offset, cells))
    return merge_duplicates(records)


def _column_index(header):
    names = [str(h).strip() for h in header]
    lowered = {name.lower(): i for i, name in reversed(list(enumerate(names)))}
    missing = [c for c in REQUIRED_COLUMNS if c.lower() not in lowered]
    if missing:
        present = ", ".join(n for n in names if n) or "(none)"
        raise InputError(f"the sheet has no column {', '.join(missing)} (required: {', '.join(REQUIRED_COLUMNS)}). "
                         f"Columns present: {present}.")
    return {c: lowered[c.lower()] for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c.lower() in lowered}


# --- CSV -----------------------------------------------------------------------------------------


def read_csv(path):
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


def _rows(path, handle, reader):
    # Streamed, not listed: a 100,000-row sheet as lists of 35 strings would cost hundreds of MB (issue #2).
    with handle:
        try:
            yield from reader
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None


def _not_utf8(path, exc):
    return InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); export it as CSV UTF-8.")


# --- Google Sheets ----------------------------------------------------------------------------------


def _sheets_http(credentials, scopes, timeout):
    """gspread's HTTP client for a service-account key, and the account's email."""
    key_file = credentials or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not key_file:
        raise SheetAccessError("no Google service-account key: pass --credentials FILE or set "
                               "GOOGLE_APPLICATION_CREDENTIALS.")
    try:
        creds = service_account.Credentials.from_service_account_file(key_file, scopes=scopes)
    except FileNotFoundError:
        raise SheetAccessError(f"the service-account key {key_file} does not exist.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise SheetAccessError(
            f"{key_file} is not a service-account key file ({type(exc).__name__}); download a JSON key for "
            "the service account from Google Cloud (IAM > Service accounts > Keys).") from None
    client = gspread.Client(auth=creds, http_client=_SheetsHTTPClient)
    # gspread sets no timeout of its own: without one a stalled connection hangs the command forever.
    client.set_timeout(timeout)
    return client.http_client, creds.service_account_email, key_file


class GoogleUnreachable(SheetAccessError):
    """Google did not answer (network, proxy, a sign-in service failing); trying again later can work."""


def _google_call(call, spreadsheet_id, worksheet, http, email, key_file, writing=False, purpose=None):
    try:
        return call()
    except gspread.exceptions.APIError as exc:
        raise _sheet_error(exc, http, spreadsheet_id, worksheet, email, writing, purpose) from None
    except google_auth_errors.GoogleAuthError as exc:
        raise _sign_in_error(exc, key_file) from None
    except OSError as exc:  # requests' connection errors and timeouts are OSErrors
        raise _unreachable(exc) from None


def _sign_in_error(exc, key_file):
    """google.auth raises TransportError (a GoogleAuthError) when the network fails while it signs in:
    that is no refused key (issue #11). A RefreshError is Google's answer about the key itself, unless it
    is marked retryable (the sign-in service failed)."""
    if isinstance(exc, (google_auth_errors.TransportError, google_auth_errors.TimeoutError)):
        return _unreachable(exc)
    said = (exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)).rstrip(".")
    if getattr(exc, "retryable", False):
        return GoogleUnreachable(f"could not reach Google: its sign-in service failed ({said}); try again in a "
                                 "few minutes.")
    return SheetAccessError(f"Google refused the key {key_file}: {said}. Check that the service account and "
                            "this key still exist, or download a new JSON key for it.")


def _unreachable(exc):
    """'could not reach Google (Connection refused)': the operating system's words when there are some
    (refused, name not known, unreachable), else the kind of failure that started it (ReadTimeout, ...)."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    if found:
        why = found.group(1).strip()
    else:
        while exc.__cause__ is not None:
            exc = exc.__cause__
        why = type(exc).__name__
    return GoogleUnreachable(f"could not reach Google ({why}); check the network (or the proxy) and try again.")


def read_google_sheet(spreadsheet_id, worksheet=DEFAULT_WORKSHEET, credentials=None, timeout=(10, 60)):
    """Header and rows of one tab, read in a single values.get with unformatted values."""
    http, email, key_file = _sheets_http(credentials, READONLY_SCOPES, timeout)
    answer = _google_call(lambda: http.values_get(
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


# A values:append whose answer is lost (5xx, timeout, dropped connection) is looked up by its Sync_ID before
# anything is sent again; after this many sends without a confirmation, the command stops.
APPEND_ATTEMPTS = 3
APPEND_SETTLE_SECONDS = 2.0  # between a lost answer and the look-up


def append_sync_log(spreadsheet_id, entries, credentials=None, timeout=(10, 60)):
    """Append Sync_Log rows (dicts keyed by SYNC_LOG_COLUMNS) whose Sync_ID is not there yet.

    Returns (appended ids, ids already present). Reads the Sync_ID column first, so appending the same run
    twice never happens, whatever the ledger remembers. gspread's back-off client re-sends any request
    answered 5xx, POST included, which appended runs twice (issue #10): the append goes through a plain client
    instead, and an append whose answer was lost is looked up in the Sync_ID column, never re-sent blindly."""
    http, email, key_file = _sheets_http(credentials, WRITE_SCOPES, timeout)
    plain = _plain_client(http, timeout)

    def logged_ids():
        answer = _google_call(lambda: http.values_get(spreadsheet_id, gspread.utils.absolute_range_name(
            SYNC_LOG_TAB, "A:A")), spreadsheet_id, SYNC_LOG_TAB, http, email, key_file)
        return {str(row[0]) for row in answer.get("values", []) if row}

    def append(batch):
        return _append_once(plain, spreadsheet_id, batch, lambda exc: _sheet_error(
            exc, http, spreadsheet_id, SYNC_LOG_TAB, email, writing=True), key_file)

    logged = logged_ids()
    present = [e["Sync_ID"] for e in entries if e["Sync_ID"] in logged]
    waiting = [entry for entry in entries if entry["Sync_ID"] not in logged]
    appended, lost = [], None
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


def _append_once(plain, spreadsheet_id, entries, refused, key_file):
    """Send one values:append without retrying: None when Google confirmed it, else why its outcome is
    unknown (a 429 or 5xx answer, a timeout, a dropped connection). A refusal (4xx) raises."""
    body = {"values": [[entry[column] for column in SYNC_LOG_COLUMNS] for entry in entries]}
    return _send_once(lambda: plain.values_append(
        spreadsheet_id, gspread.utils.absolute_range_name(SYNC_LOG_TAB),
        params={"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS"}, body=body), refused, key_file)


def _plain_client(http, timeout):
    """A client on the same signed-in session that sends each request once: gspread's back-off client
    re-sends any request answered 5xx, POST included (issue #10), so writes go through this one."""
    plain = gspread.HTTPClient(auth=None, session=http.session)
    plain.set_timeout(timeout)
    return plain


def _send_once(send, refused, key_file):
    """Make one write request without retrying: None when Google confirmed it, else why its outcome is
    unknown (a 429 or 5xx answer, a timeout, a dropped connection). A refusal (4xx) raises refused(exc)."""
    try:
        send()
        return None
    except gspread.exceptions.APIError as exc:
        code = _status_code(exc)
        if code == 429 or code >= 500:
            return f"Google answered {code}"
        raise refused(exc) from None
    except google_auth_errors.GoogleAuthError as exc:
        raise _sign_in_error(exc, key_file) from None  # signing in failed: the write was never sent
    except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
        return f"no answer: {type(exc).__name__}"


def _status_code(exc):
    return exc.code if isinstance(exc.code, int) else exc.response.status_code


def _sheet_error(exc, http, spreadsheet_id, worksheet, email, writing=False, purpose=None):
    """What to tell the user about Google's refusal. writing: the refused request was a write; purpose: the
    write the command is for ('append to Sync_Log'), so that even a refused read says Editor is needed."""
    code = _status_code(exc)
    message = exc.error.get("message", "") if isinstance(exc.error, dict) else str(exc.error)
    purpose = purpose or (f"append to {SYNC_LOG_TAB}" if writing else None)
    if code == 404:
        return SheetAccessError(
            f"spreadsheet {spreadsheet_id} was not found. Check the id (the part of the sheet's URL after /d/) "
            f"and share the sheet with {email}.")
    if code == 403 and writing:
        return SheetAccessError(
            f"the service account {email} may read but not write spreadsheet {spreadsheet_id}: share it with "
            f"{email} as Editor to {purpose}. Google said: {message}")
    if code == 403 and purpose:
        return SheetAccessError(
            f"the service account {email} may not read spreadsheet {spreadsheet_id}: share it with {email} as "
            f"Editor to {purpose}. Google said: {message}")
    if code == 403:
        return SheetAccessError(
            f"the service account {email} may not read spreadsheet {spreadsheet_id}: share the sheet with "
            f"{email} (Viewer is enough). Google said: {message}")
    if code == 400 and "parse range" in message:
        try:
            meta = http.fetch_sheet_metadata(spreadsheet_id, params={"fields": "sheets.properties.title"})
            tabs = ", ".join(repr(s["properties"]["title"]) for s in meta.get("sheets", []))
        except gspread.exceptions.APIError:
            tabs = "(could not list them)"
        return SheetAccessError(f"spreadsheet {spreadsheet_id} has no tab {worksheet!r}; its tabs are: {tabs}. "
                                "Pass the right one with --worksheet.")
    if code == 429 or code >= 500:
        return SheetAccessError(f"Google Sheets answered {code} ({message}) after retrying; wait a minute "
                                "and run the same command again.")
    return SheetAccessError(f"Google Sheets answered {code}: {message}")


class _SheetsHTTPClient(gspread.BackOffHTTPClient):
    """gspread's back-off client (429 and 5xx), giving up after about 30 s instead of four minutes."""

    _MAX_BACKOFF = 16


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


def is_protected_tab(name, data_tabs=()):
    """Whether name is the data tab, Sync_Log or one of data_tabs. Tab names are unique regardless of case in
    Google Sheets, so 'sync_log' is Sync_Log."""
    wanted = name.strip().casefold()
    return any(wanted == tab.casefold() for tab in (*PROTECTED_TABS, *data_tabs))


def fit_cell(value, limit=CELL_LIMIT):
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


def _cut_mark(removed):
    return f"… [cut: {removed} more characters]"


def _utf16_units(text):
    return len(text.encode("utf-16-le")) // 2


def _utf16_prefix(text, units):
    # errors="ignore" drops half of a surrogate pair cut in two.
    return text.encode("utf-16-le")[:units * 2].decode("utf-16-le", errors="ignore")


def write_status_tab(spreadsheet_id, tab, values, credentials=None, timeout=(10, 60)):
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

    def __init__(self, spreadsheet_id, tab, credentials, timeout):
        self.http, self.email, self.key_file = _sheets_http(credentials, WRITE_SCOPES, timeout)
        self.plain = _plain_client(self.http, timeout)
        self.spreadsheet_id, self.tab = spreadsheet_id, tab
        self.purpose = f"write the tab {tab!r}"

    def tabs(self):
        """Every tab's properties and developer metadata. A read: gspread's back-off client may repeat it."""
        answer = _google_call(lambda: self.http.fetch_sheet_metadata(
            self.spreadsheet_id, params={"fields": _TABS_FIELDS}), self.spreadsheet_id, self.tab, self.http,
            self.email, self.key_file, purpose=self.purpose)
        return answer.get("sheets", [])

    def fit_grid(self, rows, columns):
        """Make the tab exist, marked as reversesync's, with exactly rows x columns and the header frozen.

        A batchUpdate that adds a tab is not idempotent (a second addSheet fails with 'already exists'): after
        a lost answer the tabs are read again and the request is planned afresh from what is there, never
        re-sent blindly. Resizing is idempotent, but goes through the same look-up."""
        sheets, lost = self.tabs(), None
        for attempt in range(WRITE_ATTEMPTS + 1):  # the look-up after the last lost answer counts too
            body, properties = _grid_change(self._existing(sheets), self.tab, rows, columns, sheets)
            if body is None:
                return properties
            if attempt == WRITE_ATTEMPTS:
                break
            lost = _send_once(lambda: self.plain.batch_update(self.spreadsheet_id, body), self._refused,
                              self.key_file)
            if lost is None:
                return properties
            time.sleep(WRITE_SETTLE_SECONDS)
            sheets = self.tabs()
        raise GoogleUnreachable(
            f"could not reach Google: it did not confirm the sizing of tab {self.tab!r} after {WRITE_ATTEMPTS} "
            f"tries (last: {lost}), and the tab is not as asked; nothing was written. Try again later.")

    def write_values(self, title, values):
        """values.update from A1, RAW. Each replaces a fixed range with the same cells, so sending it again after
        a lost answer can only write what may already be there: it is re-sent without a look-up."""
        for first_row, batch in _value_batches(values, VALUES_PAYLOAD_BYTES):
            cells = gspread.utils.absolute_range_name(title, f"A{first_row}")
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                lost = _send_once(lambda: self.plain.values_update(
                    self.spreadsheet_id, cells, params={"valueInputOption": "RAW"}, body={"values": batch}),
                    self._refused, self.key_file)
                if lost is None:
                    break
                if attempt == WRITE_ATTEMPTS:
                    raise GoogleUnreachable(
                        f"could not reach Google: it did not confirm the values written to tab {title!r} after "
                        f"{WRITE_ATTEMPTS} tries (last: {lost}); the tab may be incomplete. Run the same command "
                        "again: it replaces the whole tab.")
                time.sleep(WRITE_SETTLE_SECONDS)

    def _existing(self, sheets):
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

    def _refused(self, exc):
        return _sheet_error(exc, self.http, self.spreadsheet_id, self.tab, self.email, writing=True,
                            purpose=self.purpose)


def _grid_change(existing, tab, rows, columns, sheets):
    """(batchUpdate body, or None when nothing needs changing; the tab's properties once it is done)."""
    grid = {"rowCount": rows, "columnCount": columns, "frozenRowCount": 1}
    if existing is None:
        properties = {"sheetId": _free_sheet_id(tab, sheets), "title": tab, "gridProperties": grid}
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


def _free_sheet_id(title, sheets):
    """A sheetId derived from the title (the same request body each time, which a lost answer's look-up and
    the tests rely on), moved on past any id in use."""
    taken = {sheet["properties"]["sheetId"] for sheet in sheets}
    sheet_id = zlib.crc32(title.encode()) & 0x7FFFFFFF
    while sheet_id in taken:
        sheet_id = (sheet_id + 1) & 0x7FFFFFFF
    return sheet_id


def _value_batches(values, budget):
    """(first row number, rows) in as few batches as keep each request body under budget bytes: one for
    any ledger of the real sheet's size."""
    first, batch, size = 1, [], 0
    for row in values:
        row_size = len(json.dumps(row)) + 2
        if batch and size + row_size > budget:
            yield first, batch
            first, batch, size = first + len(batch), [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield first, batch
