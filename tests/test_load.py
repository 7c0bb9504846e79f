import csv
import io
import os

from reversesync.ledger import Ledger
from tests.conftest import EXAMPLE_SHEET, ID_A, ID_B, ID_C, load_rows, write_sheet  # noqa: F401


def test_load_example_sheet_prints_counts(invoke, ledger_path):
    result = invoke("load", "--csv", EXAMPLE_SHEET)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Loaded 289 rows from {EXAMPLE_SHEET} into {ledger_path}"
    assert lines[1] == "  assets: 285 new, 0 changed, 0 unchanged, 0 removed from the source"
    assert lines[2].startswith("  rejected (skipped): 24 (duplicate_conflict 1, invalid 17, no_timecode 6)")
    ledger = Ledger(ledger_path)
    assert ledger.counts()[0]["pending"] == 261
    # the repeated asset with equal times is one asset carrying both row numbers
    assert ledger.query("select count(*) as n from assets where row_numbers like '%,%'")[0]["n"] == 4


def test_load_bom_csv_with_quoted_commas_and_line_breaks(invoke, ledger_path, tmp_path):
    path = write_sheet(tmp_path / "s.csv", [(ID_A, 'He said "all in",\n두 번째 줄', "1,000", "2000")], bom=True)
    assert invoke("load", "--csv", path).exit_code == 0
    row = Ledger(ledger_path).asset(ID_A)
    assert (row["title"], row["time_start_ms"], row["state"]) == ('He said "all in",\n두 번째 줄', 1000, "pending")


def test_missing_required_header_exits_2_and_leaves_ledger_untouched(invoke, ledger_path, tmp_path):
    assert invoke("load", "--csv", write_sheet(tmp_path / "ok.csv", [(ID_A, "a", 1, 2)])).exit_code == 0
    before = Ledger(ledger_path).query("select * from assets")
    bad = write_sheet(tmp_path / "bad.csv", [(ID_A, "a", 1)], header=["id", "title", "time_start_ms"])
    result = invoke("load", "--csv", bad)
    assert result.exit_code == 2
    assert result.output.strip() == ("Error: the sheet has no column time_end_ms (required: id, time_start_ms, "
                                     "time_end_ms). Columns present: id, title, time_start_ms.")
    assert Ledger(ledger_path).query("select * from assets") == before


def test_reload_keeps_finished_rows_resets_changed_and_marks_removed(invoke, ledger_path, tmp_path):
    first = write_sheet(tmp_path / "1.csv", [(ID_A, "a", 1000, 2000), (ID_B, "b", 1000, 2000),
                                             (ID_C, "c", 1000, 2000)])
    invoke("load", "--csv", first)
    ledger = Ledger(ledger_path)
    for key in (ID_A, ID_B):
        ledger.move(key, "checked", action="create", kind="other")
        ledger.move(key, "created", segment_id="seg", kind="other")
    second = write_sheet(tmp_path / "2.csv", [(ID_A, "a renamed", 1000, 2000), (ID_B, "b", 1000, 2500)])
    result = invoke("load", "--csv", second, "--allow-shrink")  # one of three is more than a tenth
    assert result.output.splitlines()[1] == "  assets: 0 new, 1 changed, 1 unchanged, 1 removed from the source"
    rows = {r["asset_key"]: r for r in ledger.query("select * from assets")}
    assert (rows[ID_A]["state"], rows[ID_A]["title"]) == ("created", "a renamed")
    assert (rows[ID_B]["state"], rows[ID_B]["time_end_ms"]) == ("pending", 2500)
    assert (rows[ID_C]["state"], rows[ID_C]["in_source"]) == ("pending", 0)
    # a row that was valid and now is not is skipped with its reason
    third = write_sheet(tmp_path / "3.csv", [(ID_A, "a", 1000, 2000), (ID_B, "b", "", 2500)])
    invoke("load", "--csv", third)
    row = ledger.asset(ID_B)
    assert (row["state"], row["reason"]) == ("skipped", "invalid")
    assert ledger.asset(ID_A)["state"] == "created"


def test_load_is_all_or_nothing(invoke, ledger_path, tmp_path, monkeypatch):
    invoke("load", "--csv", write_sheet(tmp_path / "1.csv", [(ID_A, "a", 1000, 2000)]))
    ledger = Ledger(ledger_path)
    before = ledger.query("select * from assets"), ledger.query("select * from events")
    original = Ledger._record_events

    def explode(self, events):
        original(self, events)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Ledger, "_record_events", explode)
    sheet = write_sheet(tmp_path / "2.csv", [(ID_A, "a", 1000, 2500), (ID_B, "b", 1, 2)])
    try:
        invoke("load", "--csv", sheet)
    except RuntimeError:
        pass
    assert (ledger.query("select * from assets"), ledger.query("select * from events")) == before


def test_load_needs_exactly_one_source(invoke):
    result = invoke("load")
    assert result.exit_code == 2
    assert "give exactly one of --sheet SPREADSHEET_ID, --csv FILE or --example." in result.output


def test_missing_csv_file_is_an_input_error(invoke, tmp_path):
    result = invoke("load", "--csv", tmp_path / "nope.csv")
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {tmp_path / 'nope.csv'} does not exist."


def test_ledger_option_and_env_var(runner, tmp_path, monkeypatch):
    from reversesync.cli import cli

    env_ledger = tmp_path / "env.db"
    monkeypatch.setenv("REVERSESYNC_LEDGER", str(env_ledger))
    assert runner.invoke(cli, ["load", "--example"]).exit_code == 0
    assert env_ledger.exists()
    cmd_ledger = tmp_path / "cmd.db"
    assert runner.invoke(cli, ["load", "--example", "--ledger", str(cmd_ledger)]).exit_code == 0
    assert cmd_ledger.exists()
    group_ledger = tmp_path / "group.db"
    assert runner.invoke(cli, ["--ledger", str(group_ledger), "load", "--example"]).exit_code == 0
    assert group_ledger.exists(), "an explicit --ledger beats REVERSESYNC_LEDGER"


def test_report_csv_round_trip_neutralises_formulas(invoke, ledger_path, tmp_path):
    sheet = write_sheet(tmp_path / "s.csv", [(ID_A, "=HYPERLINK(\"x\")", 1000, 2000), (ID_B, "+1, -2\n@x", 5, 9),
                                             ("../x", "@bad", 1, 2)])
    invoke("load", "--csv", sheet)
    out = tmp_path / "report.csv"
    result = invoke("report", "--csv", out)
    assert result.exit_code == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8-sig", newline="")))  # a BOM, for Excel (issue #11)
    assert [r["asset_id"] for r in rows] == [ID_A, ID_B, "../x"]
    assert rows[0]["title"] == "'=HYPERLINK(\"x\")"
    assert rows[1]["title"] == "'+1, -2\n@x"
    assert (rows[1]["time_start_ms"], rows[1]["state"], rows[1]["row_numbers"]) == ("5", "pending", "3")
    assert (rows[2]["state"], rows[2]["reason"]) == ("skipped", "invalid")
    assert rows[2]["reason_text"].startswith("Row 4: id '../x' is not an Iconik asset id")
    for column in ("asset_id", "row_numbers", "title", "time_start_ms", "time_end_ms", "state", "reason",
                   "reason_text", "action", "segment_id", "attempts", "http_status", "updated_at"):
        assert column in rows[0]


def test_report_csv_to_stdout_filtered_by_state(invoke, tmp_path):
    invoke("load", "--csv", EXAMPLE_SHEET)
    result = invoke("report", "--csv", "-", "--state", "skipped")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 24 and {r["state"] for r in rows} == {"skipped"}


def test_report_table(invoke):
    invoke("load", "--example")
    lines = invoke("report").output.splitlines()
    assert lines[:8] == ["state       assets", "pending        261", "checked          0", "created          0",
                         "updated          0", "skipped         24", "failed           0", "total          285"]
    assert "skipped    invalid                   17" in lines


def test_report_without_ledger_is_an_input_error(runner, tmp_path):
    from reversesync.cli import cli

    missing = tmp_path / "none.db"
    result = runner.invoke(cli, ["--ledger", str(missing), "report"])
    assert result.exit_code == 2
    assert not os.path.exists(missing)


def test_report_csv_into_a_missing_folder_is_an_input_error(invoke, tmp_path):
    invoke("load", "--example")
    target = tmp_path / "no" / "such" / "report.csv"
    result = invoke("report", "--csv", target)
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: cannot write {target}: No such file or directory."
