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


def main():
    for name, interactions in [*cassettes(), *sync_log_cassettes()]:
        path = CASSETTES / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}, allow_unicode=True,
                                       sort_keys=False), encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
