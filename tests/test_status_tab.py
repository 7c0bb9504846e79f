"""Issue #12: `report --to-sheet` puts each row's status into a tab of the spreadsheet, replayed from composed
cassettes (tests/make_sheet_cassettes.py) whose request bodies must match what reversesync sends."""

import json

import pytest

from reversesync import errors, sheets
from reversesync.ledger import Ledger
from reversesync.sheets import writing
from tests.conftest import recorder, write_sheet
from tests.make_sheet_cassettes import (
    LONG_TEXT,
    SHEET_ID,
    STATUS_A1,
    STATUS_DONE_TEXT,
    STATUS_SEGMENT,
    STATUS_SHEET,
    STATUS_SHEET_FIXED,
    STATUS_SHEET_ID,
    STATUS_STAMP,
    STATUS_VALUES,
    STATUS_VALUES_FIXED,
)

EMAIL = "sync-reader@reversesync-test.iam.gserviceaccount.com"
TAB_URL = f"https://docs.google.com/spreadsheets/d/{SHEET_ID}/edit#gid={STATUS_SHEET_ID}"


def sheets_body(r1, r2):
    """Requests to the Sheets API match only with the same JSON body (the token exchange's signed assertion
    differs each time and is not compared)."""
    if r1.host == r2.host == "sheets.googleapis.com":
        assert _json(r1.body) == _json(r2.body)


def _json(body):
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return json.loads(body) if body else None


def replayer():
    tape = recorder()
    tape.register_matcher("sheets_body", sheets_body)
    return tape


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(writing, "WRITE_SETTLE_SECONDS", 0)


@pytest.fixture
def load(invoke, tmp_path, ledger_path):
    """Load a small sheet with `load --csv`, then fix what the cassettes cannot know in advance: the clock,
    and the first asset written by run 2 (so that no Iconik is needed)."""

    def run(rows, *extra):
        result = invoke("load", "--csv", write_sheet(tmp_path / "sheet.csv", rows), *extra)
        assert result.exit_code == 0, result.output
        ledger = Ledger(ledger_path)
        ledger.db.execute(
            "update assets set state = 'created', action = 'create', segment_id = ?, reason = null, "
            "reason_text = ?, done_action = 'create', done_segment_id = ?, done_run_id = 2 where asset_id = ?",
            [STATUS_SEGMENT, STATUS_DONE_TEXT, STATUS_SEGMENT, STATUS_A1])
        key = STATUS_A1
        ledger.db.execute("insert into events (asset_key, run_id, from_state, to_state, at) values "
                          "(?, 1, 'pending', 'checked', ?), (?, 2, 'checked', 'created', ?)",
                          [key, STATUS_STAMP, key, STATUS_STAMP])
        ledger.db.execute("update assets set updated_at = ?", [STATUS_STAMP])
        ledger.db.conn.commit()
        return ledger

    return run


@pytest.fixture
def to_sheet(invoke, service_account_key):
    """`report --to-sheet` against a cassette; every exchange in it must be used, and nothing else sent."""

    def run(cassette, *extra, key=service_account_key):
        with replayer().use_cassette(f"{cassette}.yaml", match_on=[
                "method", "scheme", "host", "port", "path", "query", "sheets_body"]) as tape:
            result = invoke("report", "--to-sheet", "--sheet", SHEET_ID, "--credentials", key, *extra)
            assert tape.all_played, "every recorded exchange should be used"
        return result, tape

    return run


def sheets_requests(tape):
    return [f"{request.method} {request.path.rsplit('/', 1)[-1]}" for request in tape.requests
            if request.host == "sheets.googleapis.com"]


def sent_values(tape):
    return [_json(request.body)["values"] for request in tape.requests if request.method == "PUT"]


# --- an Editor key writes ---------------------------------------------------------------------------------


def test_an_editor_key_adds_the_tab_and_writes_every_row_in_three_requests(load, to_sheet):
    load(STATUS_SHEET)
    result, tape = to_sheet("sheets_status_add")
    assert result.exit_code == 0, result.output
    assert result.output == f"Wrote 7 assets to tab 'reversesync_status': {TAB_URL}\n"
    assert sheets_requests(tape) == [f"GET {SHEET_ID}", f"POST {SHEET_ID}:batchUpdate",
                                     "PUT %27reversesync_status%27%21A1"]
    assert sent_values(tape) == [STATUS_VALUES]


def test_formula_like_text_goes_raw_without_a_quote(load, to_sheet):
    load(STATUS_SHEET)
    result, tape = to_sheet("sheets_status_add")
    assert result.exit_code == 0, result.output
    [put] = [request for request in tape.requests if request.method == "PUT"]
    assert "valueInputOption=RAW" in put.uri
    ids = [row[0] for row in _json(put.body)["values"][2:6]]
    assert ids == ["=1+1", "+1 555", "-3", "@team"], "RAW keeps them text; a quote would show in the cell"


def test_a_second_write_replaces_and_a_shorter_one_leaves_no_stale_rows(load, invoke, service_account_key):
    """The second write sizes the grid to its 3 rows (deleting the 5 below) and writes from A1 again."""
    load(STATUS_SHEET)
    with replayer().use_cassette("sheets_status_rewrite_shorter.yaml", match_on=[
            "method", "scheme", "host", "port", "path", "query", "sheets_body"]) as tape:
        first = invoke("report", "--to-sheet", "--sheet", SHEET_ID, "--credentials", service_account_key)
        load(STATUS_SHEET_FIXED, "--allow-shrink")
        second = invoke("report", "--to-sheet", "--sheet", SHEET_ID, "--credentials", service_account_key)
        assert tape.all_played
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert second.output == f"Wrote 2 assets to tab 'reversesync_status': {TAB_URL}\n"
    [resize] = [_json(r.body) for r in tape.requests if r.method == "POST" and "updateSheetProperties" in str(r.body)]
    assert resize["requests"][0]["updateSheetProperties"]["properties"]["gridProperties"]["rowCount"] == 3
    assert sent_values(tape) == [STATUS_VALUES, STATUS_VALUES_FIXED]
    assert [r.path.rsplit("/", 1)[-1] for r in tape.requests if r.method == "PUT"] == [
        "%27reversesync_status%27%21A1"] * 2, "values.update at A1, never an append"


def test_a_tab_already_the_right_size_takes_two_requests(load, to_sheet):
    load(STATUS_SHEET)
    result, tape = to_sheet("sheets_status_same_size")
    assert result.exit_code == 0, result.output
    assert sheets_requests(tape) == [f"GET {SHEET_ID}", "PUT %27reversesync_status%27%21A1"]


def test_a_text_over_50000_characters_is_cut_with_a_visible_mark(load, to_sheet, ledger_path):
    load([STATUS_SHEET[0]])
    ledger = Ledger(ledger_path)
    ledger.db.execute("update assets set state = 'pending', action = null, segment_id = null, reason_text = ?, "
                      "done_run_id = null", [LONG_TEXT])
    ledger.db.execute("delete from events where run_id is not null")
    ledger.db.conn.commit()
    result, tape = to_sheet("sheets_status_long_text")
    assert result.exit_code == 0, result.output
    [[_, row]] = sent_values(tape)
    assert len(row[4]) == 50_000 and row[4].endswith("… [cut: 10030 more characters]")


# --- what goes wrong --------------------------------------------------------------------------------------


def test_a_viewer_only_key_is_told_to_share_as_editor(load, to_sheet):
    load(STATUS_SHEET)
    result, _ = to_sheet("sheets_status_viewer_only")
    assert result.exit_code == 2
    assert result.output == (
        f"Error: the service account {EMAIL} may read but not write spreadsheet {SHEET_ID}: share it with {EMAIL} "
        "as Editor to write the tab 'reversesync_status'. Google said: The caller does not have permission\n")


def test_a_tab_reversesync_did_not_make_is_never_overwritten(load, to_sheet):
    """Tab names are unique regardless of case: 'Reversesync_Status' is the tab asked for, and it is not ours."""
    load(STATUS_SHEET)
    result, tape = to_sheet("sheets_status_not_ours")
    assert result.exit_code == 2
    assert result.output == (
        f"Error: spreadsheet {SHEET_ID} already has a tab 'Reversesync_Status' that reversesync did not make; it is "
        "left as it is. Give another --tab, or delete or rename that tab.\n")
    assert sheets_requests(tape) == [f"GET {SHEET_ID}"]


def test_a_lost_answer_to_adding_the_tab_is_looked_up_not_resent(load, to_sheet, monkeypatch):
    sent = []
    batch_update = writing.gspread.http_client.HTTPClient.batch_update
    monkeypatch.setattr(writing.gspread.http_client.HTTPClient, "batch_update",
                        lambda self, *args: sent.append(args[1]) or batch_update(self, *args))
    load(STATUS_SHEET)
    result, tape = to_sheet("sheets_status_add_lost_landed")
    assert result.exit_code == 0, result.output
    assert len(sent) == 1, "gspread's back-off must not re-send the batchUpdate answered 503"
    assert sheets_requests(tape) == [f"GET {SHEET_ID}", f"POST {SHEET_ID}:batchUpdate", f"GET {SHEET_ID}",
                                     "PUT %27reversesync_status%27%21A1"]


def test_a_lost_answer_to_adding_the_tab_that_did_not_land_adds_it_once_more(load, to_sheet):
    load(STATUS_SHEET)
    result, tape = to_sheet("sheets_status_add_lost_absent")
    assert result.exit_code == 0, result.output
    assert sheets_requests(tape) == [f"GET {SHEET_ID}", f"POST {SHEET_ID}:batchUpdate", f"GET {SHEET_ID}",
                                     f"POST {SHEET_ID}:batchUpdate", "PUT %27reversesync_status%27%21A1"]


def test_a_lost_answer_to_the_values_write_sends_it_again(load, to_sheet):
    """values.update replaces a fixed range: sending it twice writes the same cells."""
    load(STATUS_SHEET)
    result, tape = to_sheet("sheets_status_values_lost")
    assert result.exit_code == 0, result.output
    assert sent_values(tape) == [STATUS_VALUES, STATUS_VALUES]


def test_an_unreachable_google_says_so_and_exits_3(load, invoke, unreachable_key):  # noqa: F811
    load(STATUS_SHEET)
    result = invoke("report", "--to-sheet", "--sheet", SHEET_ID, "--credentials", unreachable_key)
    assert result.exit_code == 3
    assert result.output.startswith("Error: could not reach Google (Connection refused)")


# --- usage errors: nothing is sent -------------------------------------------------------------------------


@pytest.mark.parametrize("args, error", [
    (["--to-sheet"], "Error: --to-sheet needs --sheet SPREADSHEET_ID."),
    (["--to-sheet", "--sheet", SHEET_ID, "--csv", "-"],
     "Error: --to-sheet only writes the status tab; give --csv, --state, --reason, --needs-person or --json in "
     "another report command."),
    (["--to-sheet", "--sheet", SHEET_ID, "--json"],
     "Error: --to-sheet only writes the status tab; give --csv, --state, --reason, --needs-person or --json in "
     "another report command."),
    (["--to-sheet", "--sheet", SHEET_ID, "--needs-person"],
     "Error: --to-sheet only writes the status tab; give --csv, --state, --reason, --needs-person or --json in "
     "another report command."),
    (["--to-sheet", "--sync-log", "--sheet", SHEET_ID],
     "Error: --sync-log and --to-sheet write two different tabs; give one of them."),
    (["--tab", "status"], "Error: --tab goes with --to-sheet."),
    (["--to-sheet", "--sheet", SHEET_ID, "--tab", "GGmetadata_and_timestamps"],
     "Error: --tab 'GGmetadata_and_timestamps' names a tab reversesync never writes (the data tab "
     "GGmetadata_and_timestamps and Sync_Log are the team's); give another, such as the default reversesync_status."),
    (["--to-sheet", "--sheet", SHEET_ID, "--tab", "sync_log"],
     "Error: --tab 'sync_log' names a tab reversesync never writes (the data tab GGmetadata_and_timestamps and "
     "Sync_Log are the team's); give another, such as the default reversesync_status."),
])
def test_usage_errors(load, invoke, args, error):
    load(STATUS_SHEET)
    result = invoke("report", *args)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == error


# --- the pieces --------------------------------------------------------------------------------------------


def test_fit_cell_keeps_short_text_and_cuts_long_text_to_the_limit():
    assert sheets.fit_cell("short") == "short"
    assert sheets.fit_cell(7) == 7
    assert sheets.fit_cell("x" * 50_000) == "x" * 50_000
    assert sheets.fit_cell("x" * 50_001) == "x" * 49_973 + "… [cut: 28 more characters]"


def test_fit_cell_counts_what_google_may_count_and_never_splits_a_character():
    """An emoji is one character but two UTF-16 units: the limit holds in units, the mark counts characters."""
    emoji = "\U0001F3AC" * 30_000  # 60,000 units
    cut = sheets.fit_cell(emoji)
    assert len(cut.encode("utf-16-le")) // 2 <= 50_000
    kept = cut.split("…")[0]
    assert set(kept) == {"\U0001F3AC"}
    assert cut.endswith(f"… [cut: {30_000 - len(kept)} more characters]")


def test_last_run_is_the_latest_run_that_touched_the_row_or_wrote_it(invoke, tmp_path, ledger_path):
    ids = [f"0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2c0{n}" for n in range(1, 4)]
    invoke("load", "--csv", write_sheet(tmp_path / "s.csv", [(i, "t", 1000, 2000) for i in ids]))
    ledger = Ledger(ledger_path)
    ledger.db.execute("update assets set done_run_id = 2 where asset_id in (?, ?)", ids[:2])
    ledger.db.execute("insert into events (asset_key, run_id, to_state, at) values (?, 3, 'skipped', 'x')", ids[:1])
    ledger.db.conn.commit()
    assert [row[7] for row in ledger.status_rows()] == [3, 2, None]


def test_rows_gone_from_the_sheet_are_left_out(load, ledger_path):
    load(STATUS_SHEET)
    load(STATUS_SHEET_FIXED, "--allow-shrink")
    assert [row[0] for row in Ledger(ledger_path).status_rows()] == [STATUS_A1, STATUS_VALUES_FIXED[2][0]]


def test_protected_tabs_are_matched_regardless_of_case():
    assert sheets.is_protected_tab(" sync_log ")
    assert sheets.is_protected_tab("ggmetadata_and_timestamps")
    assert sheets.is_protected_tab("Timestamps", data_tabs=["timestamps"])
    assert not sheets.is_protected_tab("reversesync_status")


def test_values_are_split_only_past_the_payload_budget():
    rows = [["x" * 96]] * 5  # about 100 bytes each in JSON
    assert [(first, len(batch)) for first, batch in writing.value_batches(rows, 250)] == [(1, 2), (3, 2), (5, 1)]
    assert [(first, len(batch)) for first, batch in writing.value_batches(rows, 10)] == [(n, 1) for n in range(1, 6)]
    assert len(list(writing.value_batches(STATUS_VALUES, writing.VALUES_PAYLOAD_BYTES))) == 1


class _FakeSheets:
    """gspread's client as _StatusTabWriter uses it: the tabs, and every write recorded."""

    session = object()

    def __init__(self, calls, sheets=()):
        self.calls, self.sheets = calls, list(sheets)

    def fetch_sheet_metadata(self, spreadsheet_id, params):
        self.calls.append("tabs")
        return {"sheets": self.sheets}


@pytest.fixture
def never_confirmed(monkeypatch):
    """Every write answered 503 (its outcome unknown); the calls in order."""
    calls = []
    monkeypatch.setattr(writing, "sheets_http", lambda *args: (_FakeSheets(calls), EMAIL, "key.json"))
    monkeypatch.setattr(writing, "send_once", lambda send, refused, key_file: calls.append("send") or "Google "
                        "answered 503")
    return calls


def test_adding_the_tab_never_confirmed_stops_after_three_sends_each_looked_up(never_confirmed):
    with pytest.raises(errors.GoogleUnreachable) as caught:
        sheets.write_status_tab(SHEET_ID, "reversesync_status", STATUS_VALUES)
    assert never_confirmed == ["tabs"] + ["send", "tabs"] * 3
    assert str(caught.value) == (
        "could not reach Google: it did not confirm the sizing of tab 'reversesync_status' after 3 tries (last: "
        "Google answered 503), and the tab is not as asked; nothing was written. Try again later.")


def test_a_values_write_never_confirmed_stops_after_three_sends(never_confirmed, monkeypatch):
    tab = {"properties": {"sheetId": 7, "title": "reversesync_status", "gridProperties": {
        "rowCount": len(STATUS_VALUES), "columnCount": 9, "frozenRowCount": 1}},
        "developerMetadata": [{"metadataKey": writing.STATUS_MARKER}]}
    monkeypatch.setattr(writing, "sheets_http", lambda *args: (_FakeSheets(never_confirmed, [tab]), EMAIL, "k"))
    with pytest.raises(errors.GoogleUnreachable) as caught:
        sheets.write_status_tab(SHEET_ID, "reversesync_status", STATUS_VALUES)
    assert never_confirmed == ["tabs", "send", "send", "send"]
    assert str(caught.value).startswith("could not reach Google: it did not confirm the values written to tab "
                                        "'reversesync_status' after 3 tries (last: Google answered 503)")
