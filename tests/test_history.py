"""verify, runs, the success bars, report --json, the Sync_Log append and the demo."""

import csv
import json
import re

import pytest

from tests.conftest import fixed_run, recorder
from tests.make_sheet_cassettes import SHEET_ID, SYNC_ID

A, B, C, D = (f"8c0d9a10-0000-4000-8000-00000000000{n}" for n in range(1, 5))
PARENT = "8c0d9a10-0000-4000-8000-0000000000ff"


@pytest.fixture
def synced(sandbox, loaded, invoke):  # noqa: F811
    """A, B need a segment; C is a SUBCLIP in sync. One live run, then a re-run."""
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_asset(B)
    sandbox.catalogue.add_segment(B, "GENERIC", 1, 2)
    sandbox.catalogue.add_asset(C, type="SUBCLIP", start=1000, end=5000, original_asset_id=PARENT)
    loaded((A, 1000, 5000), (B, 1000, 5000), (C, 1000, 5000))
    assert invoke("run", "--live").exit_code == 0
    return sandbox


def test_verify_all_match(synced, invoke):
    result = invoke("verify")
    assert result.exit_code == 0
    assert result.output.splitlines()[-1].startswith("Verified 3 assets: 3 match, 0 do not")


def test_verify_reports_a_mismatch_planted_after_the_run(synced, invoke, tmp_path):
    [segment] = synced.generic_segments(A)
    for stored in synced.catalogue.segments[A]:
        stored["time_end_milliseconds"] = 4000  # someone edits it in Iconik
    synced.catalogue.add_segment(B, "GENERIC", 1000, 5000)  # and duplicates another
    out = tmp_path / "mismatches.csv"
    result = invoke("verify", "--csv", out)
    assert result.exit_code == 1
    assert (f"MISMATCH {A} (row 2, created, different): expected exactly one GENERIC segment 1000-5000 ms; found "
            f"segment {segment['id']} is GENERIC 1000-4000 ms") in result.output
    assert f"MISMATCH {B} (row 3, updated, extra)" in result.output
    rows = list(csv.DictReader(open(out, encoding="utf-8-sig")))  # a BOM, for Excel (issue #11)
    assert [r["asset_id"] for r in rows] == [A, B]
    assert "Verified 3 assets: 1 match, 2 do not" in result.output


def test_runs_lists_every_run(synced, invoke, zone):
    zone("UTC")
    invoke("run", "--live")
    lines = invoke("runs").output.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["id", "mode", "started (UTC)", "finished (UTC)", "duration", "status",
                                           "requests", "429s", "counts"]  # local time, here UTC (issue #18)
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert re.match(rf"^1\s+live\s+{stamp}\s+{stamp}\s+0:00:0\d\s+finished\s+\d+\s+0\s+"
                    r"created 1, updated 1, skipped 1$", lines[1]), lines[1]  # from the event log (issue #11)
    assert re.match(r"^2\s+live\s+.*\s+finished\s+2\s+0\s+-$", lines[2]), lines[2]  # users/current and roles
    assert len(lines) == 3


def test_success_bars_and_json(synced, invoke):
    before = invoke("report", "--json")
    bars = {bar["name"]: bar for bar in json.loads(before.output)["success_bars"]["bars"]}
    assert bars["creation_success_rate"]["value"] == 1.0 and bars["creation_success_rate"]["met"] is True
    assert bars["error_rate"]["value"] == 0.0 and bars["error_rate"]["met"] is True
    assert bars["elapsed_seconds"]["met"] is True
    assert bars["rerun_writes"]["met"] is None
    invoke("run", "--live")
    document = json.loads(invoke("report", "--json").output)
    assert document["by_state"]["created"] == 1 and document["by_state"]["updated"] == 1
    bars = {bar["name"]: bar for bar in document["success_bars"]["bars"]}
    assert (bars["rerun_writes"]["value"], bars["rerun_writes"]["met"]) == (0, True)
    text = invoke("report").output
    assert "Success bars (live run 1, finished):" in text
    assert "  rerun_writes                  0  target 0       met          re-run 2 made 0 writes" in text


def test_error_rate_not_met_is_shown(sandbox, loaded, invoke):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000), (B, 1000, 5000))
    invoke("run", "--live")
    line = next(x for x in invoke("report").output.splitlines() if "error_rate" in x)
    assert "50.0%" in line and "NOT MET" in line and "1 of 2 rows failed" in line


def test_sync_log_appends_a_finished_live_run(invoke, ledger_path, service_account_key, monkeypatch):
    import gspread

    sent = []
    append = gspread.http_client.HTTPClient.values_append
    monkeypatch.setattr(gspread.http_client.HTTPClient, "values_append",
                        lambda self, *args, **kwargs: sent.append(kwargs["body"]) or append(self, *args, **kwargs))
    invoke("load", "--example")
    ledger = fixed_run(ledger_path)
    with recorder().use_cassette("sync_log_append.yaml") as tape:
        result = invoke("report", "--sync-log", "--sheet", SHEET_ID, "--credentials", service_account_key)
    assert result.exit_code == 0, result.output
    assert tape.all_played
    assert result.output.strip() == f"Appended to Sync_Log: {SYNC_ID}"
    [body] = sent
    assert body["values"][0][:2] == [SYNC_ID, "reverse_timecode"]
    assert body["values"][0][4:] == [5, 2, "finished"]
    assert ledger.query("select sync_log_id from runs where id = 2")[0]["sync_log_id"] == SYNC_ID


def test_sync_log_refuses_to_append_the_same_run_twice(invoke, ledger_path, service_account_key):
    invoke("load", "--example")
    fixed_run(ledger_path)
    with recorder().use_cassette("sync_log_already_there.yaml") as tape:
        result = invoke("report", "--sync-log", "--sheet", SHEET_ID, "--credentials", service_account_key)
    assert result.exit_code == 0
    assert result.output.strip() == f"Already in Sync_Log, not appended again: {SYNC_ID}"
    assert [r.method for r in tape.requests] == ["POST", "GET"]  # the token, then the read; no append


def test_sync_log_with_a_viewer_only_account_says_to_share_as_editor(invoke, ledger_path, service_account_key):
    invoke("load", "--example")
    fixed_run(ledger_path)
    with recorder().use_cassette("sync_log_viewer_only.yaml"):
        result = invoke("report", "--sync-log", "--sheet", SHEET_ID, "--credentials", service_account_key)
    assert result.exit_code == 2
    assert "may read but not write spreadsheet" in result.output and "as Editor" in result.output


def test_sync_log_needs_a_sheet(invoke):
    invoke("load", "--example")
    result = invoke("report", "--sync-log")
    assert result.exit_code == 2 and "--sync-log needs --sheet SPREADSHEET_ID." in result.output


# --- one is one (issue #17): every line report, runs and history print counts in the right number ----------------


def test_one_write_one_row_and_one_asset_are_singular(invoke, ledger_path, tmp_path):
    from tests.conftest import write_sheet

    invoke("load", "--csv", write_sheet(tmp_path / "s.csv", [(A, "a", 1000, 5000), (B, "b", 1000, 5000),
                                                             (C, "c", 1000, 5000)]))
    ledger = fixed_run(ledger_path)  # live run 2 wrote 7 segments
    ledger.move(A, "checked", run_id=2, action="create", kind="other")
    ledger.move(A, "created", run_id=2, segment_id="s", kind="other")
    rerun = ledger.start_run("live", {"live": True})
    ledger.finish_run(rerun, "finished", {}, 3, 0, 0, 0.5)
    ledger.close()
    invoke("load", "--csv", write_sheet(tmp_path / "s.csv", [(A, "a", 1000, 5000), (B, "b", 1000, 5000)]),
           "--allow-shrink")  # 1 of 3 leaving is more than 10%
    lines = invoke("report").output.splitlines()
    assert "1 asset is no longer in the source and is left out of runs." in lines
    assert lines[-4].endswith("1 of 1 needed write done") and lines[-3].endswith("0 of 1 row failed")
    assert lines[-1].endswith("re-run 3 made 0 writes")
    out = tmp_path / "one.csv"
    assert invoke("report", "--csv", out, "--state", "created").output == f"Wrote 1 asset to {out}\n"


def test_history_of_an_asset_on_two_rows_says_rows(invoke, tmp_path):
    from tests.conftest import write_sheet

    invoke("load", "--csv", write_sheet(tmp_path / "s.csv", [(A, "a", 1000, 5000), (A, "a", 1000, 5000)]))
    assert invoke("history", A).output.splitlines()[0] == f"Asset {A} (rows 2,3): a, 1000-5000 ms"
