"""Issue #17: `report --reason R` keeps the rows with those reasons, and `report --needs-person` lists the rows of
the sheet that need a person (by reason, with what to do; or one CSV line each), reading the ledger only."""

import csv
import io
import re

import pytest

from reversesync import report, rules
from reversesync.ledger import Ledger
from tests.conftest import write_sheet

A, B, C, D, E, F = (f"5e2a7c00-0000-4000-8000-00000000000{n}" for n in range(1, 7))


@pytest.fixture
def mixed(invoke, tmp_path, ledger_path):
    """Rows 2-7 are A-F, row 8 an id that is no UUID, row 9 a row without times. Then, as runs and syncs would
    leave them: A forbidden, B failed for a 5xx three syncs running (its retries spent), C failed for a 5xx once,
    D ambiguous, E in sync, F pending."""
    sheet = write_sheet(tmp_path / "sheet.csv", [(key, "clip", 1000, 5000) for key in (A, B, C, D, E, F)]
                        + [("not-a-uuid", "bad id", 1000, 5000), ("5e2a7c00-0000-4000-8000-0000000000ff", "no times")])
    assert invoke("load", "--csv", sheet).exit_code == 0
    ledger = Ledger(ledger_path)
    for key, state, reason, retries in [(A, "failed", "forbidden", 0), (B, "failed", "server_error", 3),
                                        (C, "failed", "server_error", 1), (D, "skipped", "ambiguous", 0),
                                        (E, "skipped", "in_sync", 0)]:
        ledger.move(key, state, kind="other", reason=reason, reason_text=f"{reason} text", sync_retries=retries)
    ledger.close()
    return ledger_path


def csv_rows(text):
    return list(csv.reader(io.StringIO(text)))


# --- --reason --------------------------------------------------------------------------------------------------


def test_reason_keeps_only_those_rows_in_the_table(mixed, invoke):
    result = invoke("report", "--reason", "server_error", "--reason", "ambiguous")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "state       assets", "pending          0", "checked          0", "created          0", "updated          0",
        "skipped          1", "failed           2", "total            3", "",
        "state      reason                assets", "failed     server_error               2",
        "skipped    ambiguous                  1"]


def test_reason_keeps_only_those_rows_in_the_csv_and_combines_with_state(mixed, invoke):
    rows = csv_rows(invoke("report", "--reason", "server_error", "--reason", "ambiguous", "--csv", "-").output)
    assert rows[0] == list(report.CSV_COLUMNS)
    assert [(row[0], row[5], row[6]) for row in rows[1:]] == [
        (B, "failed", "server_error"), (C, "failed", "server_error"), (D, "skipped", "ambiguous")]
    rows = csv_rows(invoke("report", "--reason", "server_error", "--reason", "ambiguous", "--state", "skipped",
                           "--csv", "-").output)
    assert [row[0] for row in rows[1:]] == [D]


def test_reason_of_load_rejections_is_known(mixed, invoke):
    rows = csv_rows(invoke("report", "--reason", "invalid", "--reason", "no_timecode", "--csv", "-").output)
    assert [(row[1], row[6]) for row in rows[1:]] == [("8", "invalid"), ("9", "no_timecode")]


def test_an_unknown_reason_is_a_usage_error_naming_every_known_one(mixed, invoke):
    result = invoke("report", "--reason", "gremlins")
    assert result.exit_code == 2
    known = sorted({*rules.FINISHED_REASONS, *rules.RETRYABLE_REASONS, *rules.LOAD_REJECTIONS,
                    *rules.SYNC_RETRY_REASONS})
    assert result.output.splitlines()[-1] == (f"Error: Invalid value for '--reason': unknown reason 'gremlins'; "
                                              f"known: {', '.join(known)}")
    assert {"drift_moved", "invalid", "server_error", "undone"} <= set(known)


@pytest.mark.parametrize("args, error", [
    (["--reason", "forbidden", "--json"],
     "Error: --json counts every row; --reason goes with the table or --csv (--csv - for a script)."),
    (["--needs-person", "--json"],
     "Error: --json counts every row; --needs-person goes with the table or --csv (--csv - for a script)."),
    (["--needs-person", "--reason", "forbidden"],
     "Error: --needs-person lists its own rows; give --state or --reason in another report command."),
    (["--needs-person", "--state", "failed", "--csv", "-"],
     "Error: --needs-person lists its own rows; give --state or --reason in another report command."),
])
def test_options_that_would_be_ignored_are_usage_errors(mixed, invoke, args, error):
    result = invoke("report", *args)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == error


# --- --needs-person ----------------------------------------------------------------------------------------------


def test_needs_person_counts_each_reason_and_says_what_to_do(mixed, invoke):
    result = invoke("report", "--needs-person")
    assert result.exit_code == 0, result.output  # it only reads: rows needing a person are no failure of report
    ledger = f"reversesync --ledger {mixed}"
    assert result.output.splitlines() == [
        "reason        rows  what a person does",
        f"invalid          1  fix the row in the sheet (its id or its times), then load it: {ledger} load --csv FILE "
        "(or --sheet SPREADSHEET_ID)",
        f"no_timecode      1  fix the row in the sheet (its id or its times), then load it: {ledger} load --csv FILE "
        "(or --sheet SPREADSHEET_ID)",
        f"forbidden        1  grant the token's user access to the asset in Iconik, then: {ledger} run --live "
        "--retry-failed",
        f"ambiguous        1  fix the asset or its segments by hand in Iconik, then: {ledger} run --live --recheck "
        "ambiguous",
        f"server_error     1  Iconik kept failing on it night after night; once the cause is gone: {ledger} run "
        "--live --retry-failed",
        "5 rows need a person."]


def test_needs_person_as_csv_is_the_report_columns_and_the_sync_retries(mixed, invoke):
    result = invoke("report", "--needs-person", "--csv", "-")
    assert result.exit_code == 0
    rows = csv_rows(result.output)
    assert rows[0] == [*report.CSV_COLUMNS, "sync_retries"]
    found = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [(row["asset_id"], row["row_numbers"], row["reason"], row["sync_retries"]) for row in found] == [
        (A, "2", "forbidden", "0"), (B, "3", "server_error", "3"), (D, "5", "ambiguous", "0"),
        ("not-a-uuid", "8", "invalid", "0"), ("5e2a7c00-0000-4000-8000-0000000000ff", "9", "no_timecode", "0")]
    assert found[0]["reason_text"] == "forbidden text"


def test_needs_person_csv_to_a_file_says_how_many(mixed, invoke, tmp_path):
    out = tmp_path / "people.csv"
    result = invoke("report", "--needs-person", "--csv", out)
    assert (result.exit_code, result.output) == (0, f"Wrote 5 rows that need a person to {out}\n")
    assert open(out, encoding="utf-8-sig").read().count("\n") == 6


def test_the_retry_nights_are_the_newest_syncs(mixed, invoke, ledger_path):
    ledger = Ledger(ledger_path)
    ledger.start_sync(False, {"retry_nights": 5}, None)
    ledger.close()
    assert "server_error" not in invoke("report", "--needs-person").output  # B has had 3 of its 5 nights
    ledger = Ledger(ledger_path)
    ledger.start_sync(False, {"retry_nights": 1}, None)
    ledger.close()
    lines = invoke("report", "--needs-person").output.splitlines()
    assert re.match(r"^server_error\s+2\s+Iconik kept failing", lines[-2]) and lines[-1] == "6 rows need a person."


def test_no_row_needing_a_person_is_said_in_one_line(invoke, tmp_path):
    assert invoke("load", "--csv", write_sheet(tmp_path / "s.csv", [(A, "clip", 1000, 5000)])).exit_code == 0
    result = invoke("report", "--needs-person")
    assert (result.exit_code, result.output) == (0, "No row needs a person.\n")


def test_one_row_is_one_row(invoke, tmp_path):
    assert invoke("load", "--csv", write_sheet(tmp_path / "s.csv", [("x", "clip", 1000, 5000)])).exit_code == 0
    assert invoke("report", "--needs-person").output.splitlines()[-1] == "1 row needs a person."


def test_needs_person_sends_sqlite_nothing_that_writes(mixed, invoke, sql_written):
    """Like the rest of report, it works on a read-only or archived ledger: every statement is a read."""
    assert invoke("report", "--needs-person", "--csv", "-").exit_code == 0
    assert invoke("report", "--needs-person").exit_code == 0
    assert sql_written() == []


# --- the rule behind the lines -------------------------------------------------------------------------------


def test_every_reason_that_can_need_a_person_has_a_step():
    for reason in (*rules.NEEDS_PERSON_REASONS, *rules.SYNC_RETRY_REASONS):
        assert report.person_step(reason), reason


def test_each_reason_is_in_one_group_only():
    listed = [reason for reasons, _ in report.PERSON_STEPS for reason in reasons]
    assert len(listed) == len(set(listed))


def test_the_steps_carry_the_ledger_they_are_given():
    def hint(*words):
        return " ".join(["reversesync", "--ledger", "/x/l.db", *words])

    assert report.person_step("drift_moved", hint) == (
        "a person changed a segment reversesync wrote: keep it, or let the sheet win for the times: reversesync "
        "--ledger /x/l.db sync --repair-drift (or reversesync --ledger /x/l.db run --live --recheck drift_moved)")
