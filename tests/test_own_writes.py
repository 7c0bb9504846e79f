"""reversesync's own recent writes against a lagging index (found in review): a re-check reads the segment of
record by id before any decision, and undo compares a segment with the times that were written, not with what
a later load put in the sheet. Timing scaled down as in test_exactly_once."""

import pytest

from reversesync.ledger import Ledger
from tests.conftest import load_rows, sandbox_for_cli

A = "5e7a0c00-0000-4000-8000-00000000000a"
LAG = 1.0
READ_TIMEOUT = 0.5
SETTLE = 3.0  # > read timeout + index lag + margin


@pytest.fixture
def sandbox(monkeypatch):
    with sandbox_for_cli(monkeypatch, index_lag=LAG) as running:
        yield running


def live(invoke, *args):
    return invoke("run", "--live", "--settle", SETTLE, "--read-timeout", READ_TIMEOUT, *args)


@pytest.mark.parametrize("search", [True, False], ids=["search", "no-search"])
def test_recheck_undone_right_after_undo_trusts_the_lagging_index_and_writes_nothing(
        sandbox, invoke, tmp_path, ledger_path, search):
    """Scenario: run --live creates a segment; undo --live deletes it; the operator at once runs
    `run --live --recheck undone` (as README says) while the index still lists the deleted segment.
    Expected: the segment is written again (row created, one GENERIC segment in Iconik).
    Found: the row is settled as skipped/in_sync from the stale index/list, and Iconik has no segment."""
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    assert live(invoke).exit_code == 0
    sandbox.settle()
    assert invoke("undo", "1", "--live", "--settle", SETTLE, "--read-timeout", READ_TIMEOUT).exit_code == 0
    assert sandbox.generic_segments(A) == []
    result = live(invoke, "--recheck", "undone", *(() if search else ("--no-search",)))
    assert result.exit_code == 0, result.output
    sandbox.settle()
    row = Ledger(ledger_path).asset(A)
    assert (row["state"], row["reason"]) == ("created", None), row["reason_text"]
    assert len(sandbox.generic_segments(A)) == 1


@pytest.mark.parametrize("search", [True, False], ids=["search", "no-search"])
def test_sheet_reverted_right_after_an_update_is_settled_in_sync_from_the_lagging_index(
        sandbox, invoke, tmp_path, ledger_path, search):
    """Scenario: a GENERIC segment spans 1000-5000; the sheet says 2000-6000 and a live run updates it; the
    sheet is reverted to 1000-5000 and reloaded, and the next run starts within the index lag.
    Expected: the segment (which reads 2000-6000 by id) is updated back to 1000-5000.
    Found: the stale index/list still shows 1000-5000, so the row ends skipped/in_sync and Iconik keeps 2000-6000."""
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_segment(A, "GENERIC", 1000, 5000)
    sandbox.settle()
    load_rows(invoke, tmp_path, (A, 2000, 6000))
    assert live(invoke).exit_code == 0
    [segment] = sandbox.generic_segments(A)
    assert (segment["time_start_milliseconds"], segment["time_end_milliseconds"]) == (2000, 6000)
    load_rows(invoke, tmp_path, (A, 1000, 5000), name="reverted.csv")
    result = live(invoke, *(() if search else ("--no-search",)))
    assert result.exit_code == 0, result.output
    sandbox.settle()
    [segment] = sandbox.generic_segments(A)
    assert (segment["time_start_milliseconds"], segment["time_end_milliseconds"]) == (1000, 5000)


def _stored(sandbox, key):
    [segment] = sandbox.catalogue.segments[key]
    return segment


def test_undo_after_a_reload_restores_over_a_persons_edit_that_matches_the_new_sheet(
        sandbox, invoke, tmp_path, ledger_path):
    """Scenario: run 1 updates a GENERIC segment 1000-5000 -> 2000-6000. The sheet is then reloaded with 3000-7000
    (no run yet), and a person sets the segment to 3000-7000 by hand in Iconik. `undo 1 --live`.
    Expected: the segment no longer holds what run 1 wrote (2000-6000), so it is left alone as changed_since.
    Found: undo compares against the row's *current* sheet times, takes the person's 3000-7000 for reversesync's
    write, and PUTs 1000-5000 over the person's change."""
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_segment(A, "GENERIC", 1000, 5000)
    sandbox.settle()
    load_rows(invoke, tmp_path, (A, 2000, 6000))
    assert live(invoke).exit_code == 0
    load_rows(invoke, tmp_path, (A, 3000, 7000), name="later.csv")
    sandbox.catalogue.edit_segment(_stored(sandbox, A), {"time_start_milliseconds": 3000,
                                                         "time_end_milliseconds": 7000})
    result = invoke("undo", "1", "--live", "--settle", SETTLE, "--read-timeout", READ_TIMEOUT)
    assert result.exit_code == 0, result.output
    segment = _stored(sandbox, A)
    assert (segment["time_start_milliseconds"], segment["time_end_milliseconds"]) == (3000, 7000)


def test_undo_after_a_reload_deletes_a_created_segment_a_person_moved_to_the_new_sheet_times(
        sandbox, invoke, tmp_path, ledger_path):
    """Scenario: run 1 creates a GENERIC segment 1000-5000 (marker kept). The sheet is reloaded with 2000-6000 and
    a person moves the segment to 2000-6000 in Iconik. `undo 1 --live`.
    Expected: the segment differs from what run 1 created, so it is left alone (changed_since).
    Found: undo compares with the current sheet times, sees no change and DELETEs the person's segment."""
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    assert live(invoke).exit_code == 0
    load_rows(invoke, tmp_path, (A, 2000, 6000), name="later.csv")
    sandbox.catalogue.edit_segment(_stored(sandbox, A), {"time_start_milliseconds": 2000,
                                                         "time_end_milliseconds": 6000})
    result = invoke("undo", "1", "--live", "--settle", SETTLE, "--read-timeout", READ_TIMEOUT)
    assert result.exit_code == 0, result.output
    assert len(sandbox.generic_segments(A)) == 1


def test_undo_after_a_reload_leaves_an_unchanged_created_segment_in_place(sandbox, invoke, tmp_path, ledger_path):
    """Scenario: run 1 creates 1000-5000; the sheet is reloaded with 2000-6000 (no run, nobody touches Iconik);
    `undo 1 --live`.
    Expected: the segment is exactly what run 1 created, so undo deletes it.
    Found: undo compares with the new sheet times, reports changed_since and leaves run 1's segment behind."""
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    assert live(invoke).exit_code == 0
    load_rows(invoke, tmp_path, (A, 2000, 6000), name="later.csv")
    result = invoke("undo", "1", "--live", "--settle", SETTLE, "--read-timeout", READ_TIMEOUT)
    assert result.exit_code == 0, result.output
    sandbox.settle()
    assert sandbox.generic_segments(A) == [], Ledger(ledger_path).asset(A)["reason_text"]
