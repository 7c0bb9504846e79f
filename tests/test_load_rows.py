"""Issue #17: rows whose id is unusable are keyed by their content, not their row number; rows filled in only in
seconds (time_start_S, time_end_S) are loaded with those times, exactly, and their history says so."""

import re

from reversesync.ledger import Ledger
from tests.conftest import ID_A, ID_B, ID_C, write_sheet
from tests.sheetgen import write_export

BAD_IDS = [f"clip-{n:02d}" for n in range(24)]


def history_events(invoke, name):
    """The (run, from -> to, detail) lines of `reversesync history NAME`."""
    result = invoke("history", name)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    return [re.split(r"\s{2,}", line, maxsplit=3)[1:] for line in lines[3:lines.index("", 3)]]


# --- unusable ids, keyed by content ------------------------------------------------------------------------


def test_deleting_rows_above_unusable_ids_removes_only_those_rows(invoke, ledger_path, tmp_path):
    rows = [(ID_A, "a", 1000, 2000), (ID_B, "b", 1000, 2000)] + [(bad, "t", 1000, 2000) for bad in BAD_IDS]
    assert invoke("load", "--csv", write_sheet(tmp_path / "1.csv", rows)).exit_code == 0
    result = invoke("load", "--csv", write_sheet(tmp_path / "2.csv", rows[2:]))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "  assets: 0 new, 0 changed, 24 unchanged, 2 removed from the source"
    # history finds such a row by the number it has on the sheet now, and by its key
    events = history_events(invoke, "row:2")
    assert invoke("history", "row:2").output.splitlines()[0] == "Asset clip-00 (row 2): t"
    key = Ledger(ledger_path).query("select asset_key from assets where asset_id = 'clip-00'")[0]["asset_key"]
    assert invoke("history", key).output == invoke("history", "row:2").output
    assert events == [["-", "- -> skipped", "loaded"]]


def test_identical_rows_with_unusable_ids_stay_two_rows(invoke, ledger_path, tmp_path):
    sheet = write_sheet(tmp_path / "s.csv", [("../x", "same", 1, 2), (ID_A, "a", 1000, 2000), ("../x", "same", 1, 2)])
    result = invoke("load", "--csv", sheet)
    assert result.output.splitlines()[1:] == [
        "  assets: 3 new, 0 changed, 0 unchanged, 0 removed from the source",
        f"  rejected (skipped): 2 (invalid 2); see: reversesync --ledger {ledger_path} report --state skipped --csv -"]
    keys = [row["asset_key"] for row in Ledger(ledger_path).query(
        "select asset_key from assets where asset_id = '../x' order by cast(row_numbers as integer)")]
    assert keys[1] == f"{keys[0]}#2"
    assert invoke("history", "row:4").output.splitlines()[0] == "Asset ../x (row 4): same"
    again = invoke("load", "--csv", sheet)
    assert again.output.splitlines()[1] == "  assets: 0 new, 0 changed, 3 unchanged, 0 removed from the source"


def test_a_ledger_keyed_by_row_numbers_is_rekeyed_once_without_counting_as_a_shrink(invoke, ledger_path, tmp_path):
    """A ledger loaded by an older reversesync keys these rows 'row:N': at the next load they leave the source and
    come back keyed by content, once. They are not assets the source loses, so no --allow-shrink is needed."""
    rows = [(ID_A, "a", 1000, 2000)] + [(bad, "t", 1000, 2000) for bad in BAD_IDS[:3]]
    sheet = write_sheet(tmp_path / "s.csv", rows)
    assert invoke("load", "--csv", sheet).exit_code == 0
    ledger = Ledger(ledger_path)
    for table in ("events", "assets"):
        ledger.db.execute(f"update {table} set asset_key = (select 'row:' || row_numbers from assets a "
                          f"where a.asset_key = {table}.asset_key) where asset_key like 'row:%'")
    ledger.db.conn.commit()
    assert sorted(ledger.keys_in_source()) == [ID_A, "row:3", "row:4", "row:5"]
    result = invoke("load", "--csv", sheet)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "  assets: 3 new, 0 changed, 1 unchanged, 3 removed from the source"
    assert invoke("history", "row:3").output.splitlines()[0] == "Asset clip-00 (row 3): t"
    assert invoke("load", "--csv", sheet).output.splitlines()[1] == (
        "  assets: 0 new, 0 changed, 4 unchanged, 0 removed from the source")


# --- times from the seconds columns ------------------------------------------------------------------------


def seconds_sheet(tmp_path, name="s.csv", **changes):
    rows = {ID_A: ("12", "12.5"), ID_B: ("1,234.5", "1,300.125"), ID_C: ("12.3456", "13"),
            "0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2aa4": ("", "13")}
    rows.update(changes)
    return write_export(tmp_path / name, [{"id": key, "title": "clip", "time_start_S": start, "time_end_S": end}
                                          for key, (start, end) in rows.items()])


def test_rows_filled_in_only_in_seconds_are_loaded_with_those_times(invoke, ledger_path, tmp_path):
    sheet = seconds_sheet(tmp_path)
    result = invoke("load", "--csv", sheet)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"Loaded 4 rows from {sheet} into {ledger_path}",
        "  assets: 4 new, 0 changed, 0 unchanged, 0 removed from the source",
        f"  rejected (skipped): 2 (invalid 2); see: reversesync --ledger {ledger_path} report --state skipped --csv -"]
    rows = {row["asset_key"]: row for row in Ledger(ledger_path).query("select * from assets")}
    assert [(rows[key]["state"], rows[key]["time_start_ms"], rows[key]["time_end_ms"]) for key in (ID_A, ID_B)] == [
        ("pending", 12000, 12500), ("pending", 1234500, 1300125)]
    assert rows[ID_C]["reason_text"] == (
        "Row 4: time_start_S is '12.3456', a time finer than a millisecond (more than three decimals), which a "
        "segment cannot hold; correct the cell.")
    assert rows["0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2aa4"]["reason_text"] == (
        "Row 5: time_start_S is empty but time_end_S is not (and time_start_ms and time_end_ms are both empty); "
        "fill in both times.")
    assert history_events(invoke, ID_A) == [["-", "- -> pending", "loaded (times from time_start_S/time_end_S)"]]
    assert history_events(invoke, ID_C) == [["-", "- -> skipped", "loaded"]]


def test_a_change_in_the_seconds_says_where_the_times_came_from(invoke, tmp_path):
    assert invoke("load", "--csv", seconds_sheet(tmp_path)).exit_code == 0
    result = invoke("load", "--csv", seconds_sheet(tmp_path, "2.csv", **{ID_A: ("12", "13")}))
    assert result.output.splitlines()[1] == "  assets: 0 new, 1 changed, 3 unchanged, 0 removed from the source"
    assert history_events(invoke, ID_A)[1] == [
        "-", "pending -> pending", "source changed (times from time_start_S/time_end_S)"]


def test_with_the_ms_cells_filled_the_seconds_are_only_a_cross_check(invoke, ledger_path, tmp_path):
    sheet = write_export(tmp_path / "s.csv", [{"id": ID_A, "time_start_ms": "1000", "time_end_ms": "2000",
                                               "time_start_S": "1.2", "time_end_S": "2.4"}])
    assert invoke("load", "--csv", sheet).exit_code == 0
    row = Ledger(ledger_path).asset(ID_A)
    assert (row["time_start_ms"], row["time_end_ms"]) == (1000, 2000)
    assert history_events(invoke, ID_A) == [["-", "- -> pending", "loaded"]]
