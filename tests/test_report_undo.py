"""Issue #17: the success bars stay right after an undo. A live run whose writes an undo took back no longer
stands: its writes are not counted as done, the rows the undo reverted are left out of the rates, and neither
the undo nor a later run that finds nothing left to write is called a re-run of the work."""

import json

import pytest

from tests.conftest import load_rows

A, B, C = (f"7a3b9d00-0000-4000-8000-00000000000{n}" for n in range(1, 4))
FAST = ("--settle", "2", "--read-timeout", "0.5")  # the undo tests' ratios (tests/test_undo.py)


@pytest.fixture
def written(sandbox, invoke, tmp_path):
    """A needs a segment, B an update, C is in sync: run 1 writes A and B."""
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_asset(B)
    sandbox.catalogue.add_segment(B, "GENERIC", 1000, 2000)
    sandbox.catalogue.add_asset(C)
    sandbox.catalogue.add_segment(C, "GENERIC", 1000, 5000)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000), (C, 1000, 5000))
    assert invoke("run", "--live", *FAST).exit_code == 0
    return sandbox


@pytest.fixture
def written_then_undone(written, invoke):
    """Then undo run 2 takes both writes back."""
    assert invoke("undo", "1", "--live", *FAST).exit_code == 0
    return written


def success_lines(invoke):
    lines = invoke("report").output.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("Success bars")):]


def test_after_an_undo_of_the_only_live_run_nothing_is_measured(written_then_undone, invoke, ledger_path):
    assert success_lines(invoke) == [
        "Success bars: not measured: every live run's writes were undone (live run 1 by undo run 2); to write them "
        f"again: reversesync --ledger {ledger_path} run --live --recheck undone"]
    document = json.loads(invoke("report", "--json").output)["success_bars"]
    assert (document["run_id"], document["undone_runs"]) == (None, [{"run_id": 1, "undone_by": [2]}])
    assert [(bar["value"], bar["met"]) for bar in document["bars"]] == [(None, None)] * 4


def test_a_live_run_after_the_undo_is_measured_without_the_undone_rows_and_is_no_rerun(written_then_undone,
                                                                                        invoke, ledger_path):
    assert invoke("run", "--live", *FAST).exit_code == 0  # run 3: the undone rows are left alone, 0 writes
    lines = success_lines(invoke)
    assert lines[0] == ("Success bars (live run 3, finished; undone: live run 1 by undo run 2; not counted: 2 rows "
                        "an undo reverted or left):")
    assert lines[1].split()[:2] == ["creation_success_rate", "-"] and lines[1].endswith("0 of 0 needed writes done")
    assert lines[2].endswith("0 of 1 row failed")  # C; A and B are the undo's, not the sync's
    assert lines[4].endswith(f"not measured yet: run 'reversesync --ledger {ledger_path} run --live' again")
    assert not any("re-run" in line for line in lines)


def test_writing_the_rows_again_is_the_work_and_the_next_run_its_rerun(written_then_undone, invoke):
    assert invoke("run", "--live", "--recheck", "undone", *FAST).exit_code == 0  # run 3 writes A and B again
    assert invoke("run", "--live", *FAST).exit_code == 0  # run 4: nothing left to write
    lines = success_lines(invoke)
    assert lines[0] == "Success bars (live run 3, finished; undone: live run 1 by undo run 2):"
    assert "100.0%" in lines[1] and lines[1].endswith("2 of 2 needed writes done")
    assert lines[2].endswith("0 of 3 rows failed")
    assert lines[4].endswith("met          re-run 4 made 0 writes")


def test_a_run_undone_in_part_stands_and_its_undone_rows_are_left_out(written, invoke):
    assert invoke("undo", "1", "--live", "--asset", A, *FAST).exit_code == 0
    lines = success_lines(invoke)
    assert lines[0] == "Success bars (live run 1, finished; not counted: 1 row an undo reverted or left):"
    assert lines[1].endswith("1 of 1 needed write done")  # B's update stands; A's create was taken back
    assert lines[2].endswith("0 of 2 rows failed")
