"""Issue #17: rows whose id is unusable are keyed by their content, not their row number."""

import re

from reversesync.ledger import Ledger
from tests.conftest import ID_A, ID_B, write_sheet

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
