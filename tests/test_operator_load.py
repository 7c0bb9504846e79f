"""Issue #11: `load` never ends in a traceback, refuses sources that would empty the ledger by mistake, and
`load`/`report` refuse options they would silently ignore."""

import csv
import os

import pytest

from reversesync.ledger import Ledger
from tests.conftest import EXAMPLE_SHEET, ID_A, ID_B, ID_C, write_sheet

IDS = [f"5e1f0c00-0000-4000-8000-{n:012d}" for n in range(10)]


def last_line(result):
    return result.output.splitlines()[-1]


# --- never a traceback -------------------------------------------------------------------------------


def test_a_cell_longer_than_the_csv_modules_limit_loads(invoke, ledger_path, tmp_path):
    title = "ㄱ" * 200_000  # Python's csv refuses fields over 131,072 characters by default
    result = invoke("load", "--csv", write_sheet(tmp_path / "s.csv", [(ID_A, title, 1000, 2000)]))
    assert result.exit_code == 0, result.output
    assert Ledger(ledger_path).asset(ID_A)["title"] == title


def test_a_time_beyond_sqlites_integers_rejects_only_that_row(invoke, ledger_path, tmp_path):
    sheet = write_sheet(tmp_path / "s.csv", [(ID_A, "a", "99999999999999999999999", 2000), (ID_B, "b", 1000, 2000),
                                             (ID_C, "c", 1000, 9223372036854775807)])
    result = invoke("load", "--csv", sheet)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[2].startswith("  rejected (skipped): 1 (invalid 1); see: ")
    ledger = Ledger(ledger_path)
    row = ledger.asset(ID_A)
    assert (row["state"], row["reason"]) == ("skipped", "invalid")
    assert row["reason_text"] == ("Row 2: time_start_ms is '99999999999999999999999', too large to be a time in "
                                  "milliseconds (at most 9223372036854775807); correct the cell.")
    assert ledger.asset(ID_B)["state"] == "pending"
    assert ledger.asset(ID_C)["time_end_ms"] == 9223372036854775807  # the largest that fits is still loaded


def test_the_rejected_rows_hint_carries_the_ledger(invoke, ledger_path):
    result = invoke("load", "--example")
    assert result.output.splitlines()[2].endswith(
        f"see: reversesync --ledger {ledger_path} report --state skipped --csv -")


# --- never the wrong source ----------------------------------------------------------------------------


def test_a_source_with_a_header_and_no_rows_is_refused(invoke, ledger_path, tmp_path):
    assert invoke("load", "--example").exit_code == 0
    empty = write_sheet(tmp_path / "empty.csv", [])
    result = invoke("load", "--csv", empty)
    assert result.exit_code == 2
    assert result.output == (f"Error: {empty} has a header but no data rows; nothing was loaded. Check that it is "
                             "the right tab or file.\n")
    assert Ledger(ledger_path).query("select count(*) as n from assets where in_source = 1")[0]["n"] == 285


def test_an_empty_source_creates_no_ledger(invoke, ledger_path, tmp_path):
    result = invoke("load", "--csv", write_sheet(tmp_path / "empty.csv", [("", "", "", "")]))
    assert result.exit_code == 2
    assert not os.path.exists(ledger_path)


def ten_rows(tmp_path):
    return write_sheet(tmp_path / "all.csv", [(i, "t", 1000, 2000) for i in IDS])


def test_a_load_that_would_take_more_than_a_tenth_of_the_rows_out_of_the_source_is_refused(invoke, ledger_path,
                                                                                            tmp_path):
    assert invoke("load", "--csv", ten_rows(tmp_path)).exit_code == 0
    eight = write_sheet(tmp_path / "eight.csv", [(i, "t", 1000, 2000) for i in IDS[:8]])
    result = invoke("load", "--csv", eight)
    assert result.exit_code == 2
    assert result.output == (f"Error: {eight} would take 2 of the ledger's 10 assets out of the source (20%, more "
                             f"than 10%); nothing was loaded. If it is the right source, load it with: reversesync "
                             f"--ledger {ledger_path} load --csv {eight} --allow-shrink\n")
    assert len(Ledger(ledger_path).keys_in_source()) == 10
    nine = write_sheet(tmp_path / "nine.csv", [(i, "t", 1000, 2000) for i in IDS[:9]])
    assert invoke("load", "--csv", nine).exit_code == 0  # a tenth is allowed
    assert invoke("load", "--csv", eight, "--allow-shrink").exit_code == 0
    assert len(Ledger(ledger_path).keys_in_source()) == 8


def test_load_example_on_a_real_ledger_is_refused(invoke, ledger_path, tmp_path):
    assert invoke("load", "--csv", ten_rows(tmp_path)).exit_code == 0
    result = invoke("load", "--example")
    assert result.exit_code == 2
    assert "would take 10 of the ledger's 10 assets out of the source (100%, more than 10%)" in result.output
    assert result.output.rstrip().endswith(f"load it with: reversesync --ledger {ledger_path} load --example "
                                           "--allow-shrink")


# --- options that would be silently ignored are usage errors -------------------------------------------


@pytest.mark.parametrize("args, error", [
    (["load", "--csv", str(EXAMPLE_SHEET), "--worksheet", "Other"],
     "Error: --worksheet goes with --sheet; --csv reads no Google tab."),
    (["load", "--example", "--credentials", "key.json"],
     "Error: --credentials goes with --sheet; --example reads no Google tab."),
    (["report", "--state", "failed"],
     "Error: --state filters the --csv listing; add --csv FILE (or --csv - for the screen)."),
    (["report", "--json", "--csv", "-"], "Error: --json and --csv are two outputs; give one of them."),
    (["report", "--sheet", "1pUMPKe"], "Error: --sheet and --credentials go with --sync-log."),
    (["report", "--sync-log", "--sheet", "1pUMPKe", "--csv", "-"],
     "Error: --sync-log only appends to the Sync_Log tab; give --csv, --state, --reason, --needs-person or --json "
     "in another report command."),
])
def test_ignored_options_are_usage_errors(invoke, args, error):
    assert invoke("load", "--example").exit_code == 0
    result = invoke(*args)
    assert result.exit_code == 2
    assert last_line(result) == error


def test_report_csv_with_state_still_works(invoke, tmp_path):
    invoke("load", "--example")
    out = tmp_path / "failed.csv"
    result = invoke("report", "--csv", out, "--state", "skipped")
    assert result.exit_code == 0
    assert {row["state"] for row in csv.DictReader(open(out, encoding="utf-8-sig"))} == {"skipped"}
