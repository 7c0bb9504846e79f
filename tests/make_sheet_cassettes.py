"""Writes cassettes/sheets_*.yaml: the Google exchanges `load --sheet` makes, in vcrpy's format.

This machine cannot reach Google, so these are composed from Google's documented request and response
shapes (OAuth token exchange, spreadsheets.values.get with UNFORMATTED_VALUE, spreadsheets.get, and the
error bodies of 400/403/404) instead of recorded. With network access and a real key, delete them and run
the sheet tests with REVERSESYNC_RECORD=once to record real ones; conftest.recorder() scrubs the secrets.

    python tests/make_sheet_cassettes.py
"""

import json
import pathlib
from urllib.parse import quote

import yaml

CASSETTES = pathlib.Path(__file__).resolve().parent.parent / "cassettes"
SHEET_ID = "1pUMPKeExampleSheetId0000000000000000000000"
VALUES_URL = ("https://sheets.googleapis.com/v4/spreadsheets/{sid}/values/{rng}"
              "?valueRenderOption=UNFORMATTED_VALUE&dateTimeRenderOption=FORMATTED_STRING&majorDimension=ROWS")
META_URL = "https://sheets.googleapis.com/v4/spreadsheets/{sid}?fields=sheets.properties.title"
HEADER = ["id", "title", "time_start_ms", "time_end_ms", "time_start_S", "time_end_S", "Description",
          "ProjectName"]


REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 503: "Service Unavailable"}


def _exchange(method, uri, status, body):
    return {
        "request": {"body": None, "headers": {"Accept": ["*/*"]}, "method": method, "uri": uri},
        "response": {
            "status": {"code": status, "message": REASONS[status]},
            "headers": {"Content-Type": ["application/json; charset=UTF-8"]},
            "body": {"string": json.dumps(body, ensure_ascii=False)},
        },
    }


def _token():
    exchange = _exchange("POST", "https://oauth2.googleapis.com/token", 200,
                         {"access_token": "REDACTED", "expires_in": 3599, "token_type": "Bearer"})
    exchange["request"]["body"] = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=FILTERED"
    return exchange


def _values_uri(tab):
    return VALUES_URL.format(sid=SHEET_ID, rng=quote(f"'{tab}'"))


def _error(code, message, status):
    return {"error": {"code": code, "message": message, "status": status}}


def cassettes():
    rows = [
        HEADER,
        # Unformatted values: numbers arrive as JSON numbers, trailing empty cells are left out.
        ["0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2a01", "WSOP 메인 이벤트, \"final\" hand\nangle 2", 1234567, 1299000,
         1234.567, 1299, "Ivey hero call"],
        ["0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2a02", "=SUM(A1:A2)", 0, 15000.0, 0, 15],
        ["0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2a03", "text numbers", "1,000", "2,500", "", "", "", "PGM"],
        ["0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2a04", "no timecode yet"],
        ["../x", "bad id", 1000, 2000],
        ["0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2a06", "half", 1000.5, 2000],
    ]
    tab = "GGmetadata_and_timestamps"
    yield "sheets_success", [_token(), _exchange("GET", _values_uri(tab), 200, {
        "range": f"{tab}!A1:AI7", "majorDimension": "ROWS", "values": rows})]
    yield "sheets_not_found", [_token(), _exchange("GET", _values_uri(tab), 404, _error(
        404, "Requested entity was not found.", "NOT_FOUND"))]
    yield "sheets_not_shared", [_token(), _exchange("GET", _values_uri(tab), 403, _error(
        403, "The caller does not have permission", "PERMISSION_DENIED"))]
    # Google's token endpoint refusing the key's signed assertion (a deleted or disabled key), RFC 6749 5.2.
    refused = _exchange("POST", "https://oauth2.googleapis.com/token", 400, {
        "error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    refused["request"]["body"] = _token()["request"]["body"]
    yield "sheets_key_refused", [refused]
    yield "sheets_missing_worksheet", [
        _token(),
        _exchange("GET", _values_uri("Timestamps"), 400, _error(
            400, "Unable to parse range: 'Timestamps'", "INVALID_ARGUMENT")),
        _exchange("GET", META_URL.format(sid=SHEET_ID), 200, {"sheets": [
            {"properties": {"title": tab}}, {"properties": {"title": "Sync_Log"}}]}),
    ]


SYNC_ID = "rs-20261126T010203-2"


def _sync_log_uris():
    from gspread.urls import SPREADSHEET_VALUES_APPEND_URL, SPREADSHEET_VALUES_URL

    column = SPREADSHEET_VALUES_URL % (SHEET_ID, quote("'Sync_Log'!A:A"))
    append = (SPREADSHEET_VALUES_APPEND_URL % (SHEET_ID, quote("'Sync_Log'"))
              + "?valueInputOption=RAW&insertDataOption=INSERT_ROWS")
    return column, append


def sync_log_cassettes():
    column, append = _sync_log_uris()
    header = ["Sync_ID", "Sync_Type", "Started_At", "Completed_At", "Assets_New", "Assets_Updated", "Status"]
    earlier = ["2025-12-21-full", "full_sync", "2025-12-21 10:00", "2025-12-21 10:20", 2840, 0, "success"]
    appended = _exchange("POST", append, 200, {"spreadsheetId": SHEET_ID, "tableRange": "Sync_Log!A1:G2",
                                               "updates": {"updatedRange": "Sync_Log!A3:G3", "updatedRows": 1}})
    yield "sync_log_append", [_token(), _exchange("GET", column, 200, {
        "range": "Sync_Log!A1:A2", "majorDimension": "ROWS", "values": [header[:1], earlier[:1]]}), appended]
    yield "sync_log_already_there", [_token(), _exchange("GET", column, 200, {
        "range": "Sync_Log!A1:A3", "majorDimension": "ROWS", "values": [header[:1], earlier[:1], [SYNC_ID]]})]
    # issue #10: a values:append answered 503 may have landed. The column is read again before anything is
    # sent again: here the row is there (no second append) ...
    unavailable = _exchange("POST", append, 503, _error(503, "The service is currently unavailable.", "UNAVAILABLE"))
    before = _exchange("GET", column, 200, {"range": "Sync_Log!A1:A2", "majorDimension": "ROWS",
                                            "values": [header[:1], earlier[:1]]})
    landed = _exchange("GET", column, 200, {"range": "Sync_Log!A1:A3", "majorDimension": "ROWS",
                                            "values": [header[:1], earlier[:1], [SYNC_ID]]})
    yield "sync_log_append_lost_landed", [_token(), before, unavailable, landed]
    # ... and here it is not, so it is appended once more.
    yield "sync_log_append_lost_absent", [_token(), before, unavailable, before, appended]
    yield "sync_log_viewer_only", [_token(), _exchange("GET", column, 200, {
        "range": "Sync_Log!A1:A2", "majorDimension": "ROWS", "values": [header[:1]]}),
        _exchange("POST", append, 403, _error(403, "The caller does not have permission", "PERMISSION_DENIED"))]


# --- the status tab (issue #12) -----------------------------------------------------------------------------
# `report --to-sheet` reads the tabs, sizes (or adds) its tab in one batchUpdate and writes the values in one
# values.update. The tests load STATUS_SHEET with `load --csv`, then fix the ledger's clock and mark the first
# asset created by run 2, so that every value below is known in advance: the request bodies here are what
# the tests expect reversesync to send (they are matched on their JSON bodies).

STATUS_STAMP = "2026-11-26T01:02:03.000+00:00"
STATUS_SEGMENT = "5e9a0c1e-7d3b-4c2a-9f10-000000000001"
STATUS_A1, STATUS_A2, STATUS_A3 = (f"0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2b0{n}" for n in (1, 2, 3))
STATUS_DONE_TEXT = "Create segment 1000-2000 ms: done."
# (id, title, time_start_ms, time_end_ms) on rows 2 to 9: ids a spreadsheet would run as formulas, a conflict.
STATUS_SHEET = [
    (STATUS_A1, "Final table", 1000, 2000),
    ("=1+1", "formula", 1000, 2000),
    ("+1 555", "formula", 1000, 2000),
    ("-3", "formula", 1000, 2000),
    ("@team", "formula", 1000, 2000),
    (STATUS_A2, "twice", 1000, 2000),
    (STATUS_A2, "twice", 3000, 4000),
    (STATUS_A3, "no times yet", "", ""),
]
# The sheet once the team fixed it: the bad ids removed and the conflict settled; a shorter tab.
STATUS_SHEET_FIXED = [(STATUS_A1, "Final table", 1000, 2000), (STATUS_A2, "twice", 1000, 2000)]
STATUS_HEADER = ["asset_id", "row_numbers", "state", "reason", "reason_text", "action", "segment_id", "last_run",
                 "updated_at"]


def _invalid_id(row, text):
    return [text, row, "skipped", "invalid", f"Row {row}: id '{text}' is not an Iconik asset id (a UUID such "
            "as 1b4e28ba-2fa1-11d2-883f-0016d3cca427); correct column id.", "", "", "", STATUS_STAMP]


# A single row number goes as a number (the column sorts as numbers), several as text.
_CREATED = [STATUS_A1, 2, "created", "", STATUS_DONE_TEXT, "create", STATUS_SEGMENT, 2, STATUS_STAMP]
# Written RAW: the formula-like ids go as they are, without a quote.
STATUS_VALUES = [
    STATUS_HEADER, _CREATED,
    _invalid_id(3, "=1+1"), _invalid_id(4, "+1 555"), _invalid_id(5, "-3"), _invalid_id(6, "@team"),
    [STATUS_A2, "7,8", "skipped", "duplicate_conflict", f"Rows 7, 8: asset {STATUS_A2} appears on several rows with "
     "different times (row 7: 1000-2000 ms; row 8: 3000-4000 ms); keep one row or make them agree.", "", "", "",
     STATUS_STAMP],
    [STATUS_A3, 9, "skipped", "no_timecode", "Row 9: time_start_ms and time_end_ms are both empty; fill them in "
     "to sync this asset.", "", "", "", STATUS_STAMP],
]
STATUS_VALUES_FIXED = [STATUS_HEADER, _CREATED, [STATUS_A2, 3, "pending", "", "", "", "", "", STATUS_STAMP]]
# A reason text of 60,000 characters, cut to Google's 50,000 per cell with a visible mark.
LONG_TEXT = "r" * 60_000
LONG_VALUES = [STATUS_HEADER, [STATUS_A1, 2, "pending", "", "r" * 49_970 + "… [cut: 10030 more characters]", "",
                               "", "", STATUS_STAMP]]

STATUS_TAB = "reversesync_status"
STATUS_SHEET_ID = 1433070596  # zlib.crc32(b"reversesync_status") & 0x7FFFFFFF: the id reversesync picks
DATA_TAB = {"properties": {"sheetId": 0, "title": "GGmetadata_and_timestamps", "index": 0, "sheetType": "GRID",
                           "gridProperties": {"rowCount": 2451, "columnCount": 35, "frozenRowCount": 1}}}
SYNC_LOG = {"properties": {"sheetId": 1190890145, "title": "Sync_Log", "index": 1, "sheetType": "GRID",
                           "gridProperties": {"rowCount": 1000, "columnCount": 7}}}
MARKER = {"metadataKey": "reversesync_status_tab", "location": {"sheetId": STATUS_SHEET_ID}, "visibility": "DOCUMENT"}


def _status_uris(tab=STATUS_TAB):
    from gspread.urls import SPREADSHEET_BATCH_UPDATE_URL, SPREADSHEET_URL, SPREADSHEET_VALUES_URL

    tabs = SPREADSHEET_URL % SHEET_ID + "?fields=" + quote("sheets.properties,sheets.developerMetadata", safe="")
    values = SPREADSHEET_VALUES_URL % (SHEET_ID, quote(f"'{tab}'!A1", safe="")) + "?valueInputOption=RAW"
    return tabs, SPREADSHEET_BATCH_UPDATE_URL % SHEET_ID, values


def _status_tab(rows, marked=True, title=STATUS_TAB):
    """The status tab as spreadsheets.get describes it: reversesync's (with its marker), or someone else's."""
    tab = {"properties": {"sheetId": STATUS_SHEET_ID, "title": title, "index": 2, "sheetType": "GRID",
                          "gridProperties": {"rowCount": rows, "columnCount": 9, "frozenRowCount": 1}}}
    if marked:
        tab["developerMetadata"] = [dict(MARKER, metadataId=812345678, location={
            "locationType": "SHEET", "sheetId": STATUS_SHEET_ID})]
    return tab


def _tabs(*extra):
    return _exchange("GET", _status_uris()[0], 200, {"sheets": [DATA_TAB, SYNC_LOG, *extra]})


def _with_body(exchange, body):
    exchange["request"]["body"] = json.dumps(body, ensure_ascii=False)
    return exchange


def _add_tab(rows, status=200, answer=None):
    grid = {"rowCount": rows, "columnCount": 9, "frozenRowCount": 1}
    properties = {"sheetId": STATUS_SHEET_ID, "title": STATUS_TAB, "gridProperties": grid}
    body = {"requests": [{"addSheet": {"properties": properties}},
                         {"createDeveloperMetadata": {"developerMetadata": MARKER}}]}
    answer = answer or {"spreadsheetId": SHEET_ID, "replies": [
        {"addSheet": {"properties": dict(properties, index=2, sheetType="GRID")}},
        {"createDeveloperMetadata": {"developerMetadata": dict(MARKER, metadataId=812345678)}}]}
    return _with_body(_exchange("POST", _status_uris()[1], status, answer), body)


def _resize_tab(rows, status=200, answer=None):
    body = {"requests": [{"updateSheetProperties": {
        "properties": {"sheetId": STATUS_SHEET_ID, "gridProperties": {
            "rowCount": rows, "columnCount": 9, "frozenRowCount": 1}},
        "fields": "gridProperties.rowCount,gridProperties.columnCount,gridProperties.frozenRowCount"}}]}
    answer = answer or {"spreadsheetId": SHEET_ID, "replies": [{}]}
    return _with_body(_exchange("POST", _status_uris()[1], status, answer), body)


def _write_values(values, status=200):
    answer = {"spreadsheetId": SHEET_ID, "updatedRange": f"{STATUS_TAB}!A1:I{len(values)}",
              "updatedRows": len(values), "updatedColumns": 9, "updatedCells": 9 * len(values)}
    if status != 200:
        answer = _error(status, "The service is currently unavailable.", "UNAVAILABLE")
    return _with_body(_exchange("PUT", _status_uris()[2], status, answer), {"values": values})


def status_cassettes():
    unavailable = _error(503, "The service is currently unavailable.", "UNAVAILABLE")
    rows = len(STATUS_VALUES)
    first_write = [_token(), _tabs(), _add_tab(rows), _write_values(STATUS_VALUES)]
    yield "sheets_status_add", first_write
    # A second write replaces the first: the grid is cut to the shorter rows (which deletes the old rows below
    # them), then the values are written from A1 again.
    yield "sheets_status_rewrite_shorter", first_write + [
        _token(), _tabs(_status_tab(rows)), _resize_tab(len(STATUS_VALUES_FIXED)),
        _write_values(STATUS_VALUES_FIXED)]
    # The tab is already the right size: no batchUpdate at all.
    yield "sheets_status_same_size", [_token(), _tabs(_status_tab(rows)), _write_values(STATUS_VALUES)]
    yield "sheets_status_viewer_only", [_token(), _tabs(), _add_tab(rows, 403, _error(
        403, "The caller does not have permission", "PERMISSION_DENIED"))]
    yield "sheets_status_not_ours", [_token(), _tabs(_status_tab(40, marked=False, title="Reversesync_Status"))]
    # A lost answer to the batchUpdate that adds the tab: the tabs are read again before anything is resent.
    # Here the tab was added (no second addSheet) ...
    yield "sheets_status_add_lost_landed", [_token(), _tabs(), _add_tab(rows, 503, unavailable),
                                            _tabs(_status_tab(rows)), _write_values(STATUS_VALUES)]
    # ... and here it was not, so it is added once more.
    yield "sheets_status_add_lost_absent", [_token(), _tabs(), _add_tab(rows, 503, unavailable), _tabs(),
                                            _add_tab(rows), _write_values(STATUS_VALUES)]
    # A lost answer to the values write: it replaces a fixed range, so it is simply sent again.
    yield "sheets_status_values_lost", [_token(), _tabs(_status_tab(rows)), _write_values(STATUS_VALUES, 503),
                                        _write_values(STATUS_VALUES)]
    yield "sheets_status_long_text", [_token(), _tabs(_status_tab(len(LONG_VALUES))), _write_values(LONG_VALUES)]


def main():
    for name, interactions in [*cassettes(), *sync_log_cassettes(), *status_cassettes()]:
        path = CASSETTES / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}, allow_unicode=True,
                                       sort_keys=False), encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
