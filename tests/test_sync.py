"""`reversesync sync`, the nightly job (issue #17): played night after night from a script with no terminal, as a
scheduler runs it, and its steps one by one."""

import errno
import io
import os
import re
import sqlite3
import subprocess
import sys

import pytest

from reversesync.clock import FakeClock
from reversesync.ledger import Ledger, backups
from reversesync.sandbox import Catalogue, Sandbox
from tests.conftest import ROOT, sandbox_for_cli, state, write_sheet

KNOWN = [f"5e1a0c30-0000-4000-8000-0000000000{n:02d}" for n in range(1, 11)]   # in Iconik
UNKNOWN = [f"5e1a0c30-0000-4000-8000-0000000009{n:02d}" for n in range(1, 3)]  # not: not_found
FAST = ("--settle", "2", "--read-timeout", "0.5")

NIGHTLY = """#!/bin/sh
# The nightly job as a scheduler runs it: no terminal, the token from the environment, the exit status passed on.
"$PYTHON" -m reversesync --ledger "$LEDGER" sync --csv "$1" --settle 2 --read-timeout 0.5 --workers 4 $2
"""


def sheet(path, rows):
    return write_sheet(path, [(key, f"clip {key[-2:]}", start, end) for key, start, end in rows])


def full_sheet(tmp_path, name="night.csv", moved=()):
    rows = [(key, 1000 * n, 1000 * n + 4000) for n, key in enumerate(KNOWN + UNKNOWN, start=1)]
    rows = [(key, start + 500, end + 500) if key in moved else (key, start, end) for key, start, end in rows]
    return sheet(tmp_path / name, rows)


def night(tmp_path, sandbox, ledger_path, csv, *extra):
    """One night: the script run by a scheduler, stdin closed, no terminal; (exit status, last line, stderr)."""
    script = tmp_path / "nightly.sh"
    script.write_text(NIGHTLY)
    env = dict(os.environ, ICONIK_URL=sandbox.url, ICONIK_APP_ID=sandbox.app_id, ICONIK_AUTH_TOKEN=sandbox.auth_token,
               PYTHONPATH=str(ROOT), LEDGER=ledger_path, PYTHON=sys.executable)
    done = subprocess.run(["sh", str(script), csv, " ".join(extra)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, lines[-1], done.stdout + done.stderr


def rows_of(ledger_path):
    with sqlite3.connect(ledger_path) as db:
        return db.execute("select asset_key, state, reason, time_start_ms, time_end_ms, segment_id, done_segment_id "
                          "from assets order by asset_key").fetchall()


@pytest.mark.slow
def test_three_nights_of_sync_heal_what_passes_report_drift_and_refuse_a_truncated_export(tmp_path, ledger_path):
    catalogue = Catalogue()
    for key in KNOWN:
        catalogue.add_asset(key)
    with Sandbox(catalogue, index_lag=0.2) as sandbox:
        needs = f"— reversesync --ledger {ledger_path} report --needs-person"

        # Night 1: the first sync. Iconik answers 503 for one asset all night: it fails, for a passing cause. (Per
        # asset reads: since issue #19 a create is POSTed from the search answer, and this asset would need none.)
        sandbox.force("GET", f"/assets/{KNOWN[9]}/", 503, {"errors": ["upstream unavailable"]}, times=10_000)
        code, last, said = night(tmp_path, sandbox, ledger_path, full_sheet(tmp_path), "--no-search")
        assert (code, last) == (1, f"2 rows need a person: not_found 2 {needs}"), said
        assert state(ledger_path, KNOWN[9]) == ("failed", "server_error")
        assert all(len(sandbox.generic_segments(key)) == 1 for key in KNOWN[:9])

        # Day 2: the 503s are over; the sheet's owners change two rows; a person deletes one segment reversesync
        # wrote and moves another (and writes a note on it).
        sandbox.unforce()
        [deleted] = sandbox.generic_segments(KNOWN[0])
        sandbox.person_deletes(deleted["id"])
        [moved] = sandbox.generic_segments(KNOWN[1])
        sandbox.person_edits(moved["id"], time_start_milliseconds=2100, segment_text="checked by hand")
        sandbox.settle()
        code, last, said = night(tmp_path, sandbox, ledger_path, full_sheet(tmp_path, moved=KNOWN[2:4]))
        assert (code, last) == (1, f"4 rows need a person: not_found 2, drift_deleted 1, drift_moved 1 {needs}"), said
        assert "Retrying 1 row failed for a passing cause (server_error 1)." in said
        assert "New since the last sync: drift_deleted 1, drift_moved 1" in said
        assert state(ledger_path, KNOWN[9]) == ("created", "create")  # healed without a flag
        assert [state(ledger_path, key) for key in KNOWN[2:4]] == [("updated", "update")] * 2
        assert [state(ledger_path, key) for key in KNOWN[:2]] == [("skipped", "drift_deleted"),
                                                                   ("skipped", "drift_moved")]
        assert sandbox.generic_segments(KNOWN[0]) == []  # reported, not repaired: a person's work is left

        # Night 3: a truncated export (5 of 12 rows): refused, nothing lost.
        before = rows_of(ledger_path)
        truncated = sheet(tmp_path / "truncated.csv", [(key, 1000, 5000) for key in KNOWN[:5]])
        code, last, said = night(tmp_path, sandbox, ledger_path, truncated)
        assert code == 2, said
        refused = said.strip().splitlines()[-2]
        assert refused.startswith(f"Error: {truncated} would take 7 of the ledger's 12 assets out of the source")
        assert refused.endswith("--allow-shrink")
        assert last == f"4 rows need a person: not_found 2, drift_deleted 1, drift_moved 1 {needs}"  # still the last
        assert rows_of(ledger_path) == before

        # The morning after: the person lets the sheet win for the drifted segments.
        code, last, said = night(tmp_path, sandbox, ledger_path, full_sheet(tmp_path, moved=KNOWN[2:4]),
                                 "--repair-drift")
        assert (code, last) == (0, f"2 rows need a person: not_found 2 {needs}"), said
        sandbox.settle()
        [recreated] = sandbox.generic_segments(KNOWN[0])
        [set_back] = sandbox.generic_segments(KNOWN[1])
        assert (recreated["time_start_milliseconds"], recreated["time_end_milliseconds"]) == (1000, 5000)
        assert (set_back["id"], set_back["time_start_milliseconds"]) == (moved["id"], 2000)
        assert set_back["segment_text"] == "checked by hand"  # every other field as the person left it
        assert len(backups(ledger_path)) == 4


@pytest.fixture
def catalogue_of_known():
    catalogue = Catalogue()
    for key in KNOWN:
        catalogue.add_asset(key)
    return catalogue


def test_a_sync_with_nothing_new_exits_0_and_still_says_who_needs_a_person(tmp_path, invoke, ledger_path,
                                                                            monkeypatch, catalogue_of_known):
    with sandbox_for_cli(monkeypatch, catalogue=catalogue_of_known, index_lag=0):
        csv = full_sheet(tmp_path)
        assert invoke("sync", "--csv", csv, *FAST).exit_code == 1
        again = invoke("sync", "--csv", csv, *FAST)
    assert again.exit_code == 0, again.output
    lines = again.output.splitlines()
    assert lines[-1] == f"2 rows need a person: not_found 2 — reversesync --ledger {ledger_path} report --needs-person"
    assert "Drift: none among the 10 segments reversesync wrote." in lines
    assert not any("0/0 rows" in line for line in lines)


def test_a_dry_sync_writes_nothing_and_moves_no_finished_row(tmp_path, invoke, ledger_path, monkeypatch,
                                                            catalogue_of_known):
    with sandbox_for_cli(monkeypatch, catalogue=catalogue_of_known, index_lag=0) as sandbox:
        assert invoke("sync", "--csv", full_sheet(tmp_path), *FAST).exit_code == 1
        [ours] = sandbox.generic_segments(KNOWN[0])
        sandbox.person_deletes(ours["id"])
        before = rows_of(ledger_path)
        def writes():  # a search is a POST too, and writes nothing
            return [(method, path) for method, path, _ in sandbox.requests()
                    if method in ("POST", "PATCH", "PUT", "DELETE") and not path.startswith("/API/search/")]

        sent = writes()
        dry = invoke("sync", "--csv", full_sheet(tmp_path), "--dry-run", "--repair-drift")
        assert writes() == sent
    assert dry.exit_code == 0, dry.output
    assert rows_of(ledger_path) == before
    assert f"  drift_deleted    {KNOWN[0]} (row 2): segment {ours['id']} that reversesync wrote (1000-5000 ms) " \
           "was deleted in Iconik; `sync --repair-drift` creates it again from the sheet." in dry.output.splitlines()


def test_a_sync_refused_by_iconik_exits_2_and_records_the_stop(tmp_path, invoke, ledger_path, monkeypatch,
                                                              catalogue_of_known):
    with Sandbox(catalogue_of_known, index_lag=0) as sandbox:
        monkeypatch.setenv("ICONIK_URL", sandbox.url)
        monkeypatch.setenv("ICONIK_APP_ID", sandbox.app_id)
        monkeypatch.setenv("ICONIK_AUTH_TOKEN", "revoked")
        result = invoke("sync", "--csv", full_sheet(tmp_path), *FAST)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[-2].startswith("Error: Iconik refused the credentials (401)")
    assert lines[-1] == "No row needs a person."  # nothing was checked yet; the sheet's own rejections aside
    [record] = Ledger(ledger_path).syncs()
    assert (record["status"], record["exit_status"]) == ("stopped", 2)


def test_a_sync_while_another_holds_the_ledger_exits_3(tmp_path, invoke, ledger_path, monkeypatch):
    assert invoke("load", "--csv", full_sheet(tmp_path)).exit_code == 0
    holder = Ledger(ledger_path)
    holder.acquire("run")
    monkeypatch.setenv("ICONIK_APP_ID", "app")
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", "token")
    result = invoke("sync", "--csv", full_sheet(tmp_path), *FAST, obj={"clock": FakeClock()})
    holder.release()
    assert result.exit_code == 3, result.output
    assert result.output.splitlines()[-1] == "No row needs a person."  # read from the ledger the other one holds
    assert backups(ledger_path) == []


def test_a_sync_stopped_before_it_began_still_ends_on_the_needs_person_line(
        tmp_path, invoke, ledger_path, monkeypatch):
    monkeypatch.setenv("ICONIK_APP_ID", "app")
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", "token")
    result = invoke("sync", "--csv", tmp_path / "missing.csv", *FAST, obj={"clock": FakeClock()})
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-2:] == [f"Error: {tmp_path / 'missing.csv'} does not exist.",
                                               "No row needs a person."]


def test_a_copy_of_a_segment_reversesync_wrote_is_reported_and_left_even_with_repair_drift(
        tmp_path, invoke, ledger_path, monkeypatch, catalogue_of_known):
    with sandbox_for_cli(monkeypatch, catalogue=catalogue_of_known, index_lag=0) as sandbox:
        csv = full_sheet(tmp_path)
        assert invoke("sync", "--csv", csv, *FAST).exit_code == 1
        copy = sandbox.person_creates(KNOWN[0], "GENERIC", 1000, 5000)
        found = invoke("sync", "--csv", csv, *FAST)
        assert found.exit_code == 1  # new: the copy
        repaired = invoke("sync", "--csv", csv, *FAST, "--repair-drift")
        assert repaired.exit_code == 0, repaired.output
        assert sorted(s["id"] for s in sandbox.generic_segments(KNOWN[0]))[:2] == sorted(
            [copy["id"], Ledger(ledger_path).asset(KNOWN[0])["done_segment_id"]])
    assert state(ledger_path, KNOWN[0]) == ("skipped", "drift_duplicated")
    assert repaired.output.splitlines()[-1] == (
        "3 rows need a person: not_found 2, drift_duplicated 1 — "
        f"reversesync --ledger {ledger_path} report --needs-person")


def test_a_sync_whose_ledger_cannot_be_opened_says_so_last(tmp_path, runner, monkeypatch):
    from reversesync.cli import cli

    monkeypatch.setenv("ICONIK_APP_ID", "app")
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", "token")
    result = runner.invoke(cli, ["--ledger", str(tmp_path / "no-such-folder" / "l.db"), "sync", "--csv",
                                 full_sheet(tmp_path), *FAST], obj={"clock": FakeClock()})
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-2].startswith("Error: ")
    assert result.output.splitlines()[-1] == "No ledger could be read: no row is known to need a person."


class ClosesAfter(io.StringIO):
    """stderr that a person closes after `after` writes (`| more`, then q); Windows says EINVAL."""

    def __init__(self, after):
        super().__init__()
        self.after, self.writes = after, 0

    def write(self, text):
        self.writes += 1
        if self.writes > self.after:
            raise OSError(errno.EINVAL, "Invalid argument")
        return super().write(text)


def test_a_stream_closed_at_any_point_of_a_sync_ends_130_and_the_sync_is_closed(
        tmp_path, monkeypatch, catalogue_of_known):
    """Never click's exit 1 ("rows need a person") for a closed stream, and never a sync left running: found by
    an adversarial review (a close while the sync said its first lines, or its summary)."""
    import shutil

    from click.testing import CliRunner

    import reversesync.cli.sync as cli_sync
    from reversesync.cli import cli
    from reversesync.cli.console import Console

    with sandbox_for_cli(monkeypatch, catalogue=catalogue_of_known, index_lag=0):
        csv, first = full_sheet(tmp_path), str(tmp_path / "first.db")
        assert CliRunner().invoke(cli, ["--ledger", first, "sync", "--csv", csv, *FAST]).exit_code == 1
        whole = ClosesAfter(10_000)
        monkeypatch.setattr(cli_sync, "Console", lambda: Console(stderr=whole, stdout=io.StringIO()))
        copy = str(tmp_path / "whole.db")
        shutil.copy(first, copy)
        assert CliRunner().invoke(cli, ["--ledger", copy, "sync", "--csv", csv, *FAST]).exit_code == 0
        for after in range(whole.writes):
            ledger = str(tmp_path / f"closed-after-{after}.db")
            shutil.copy(first, ledger)
            stream = ClosesAfter(after)
            monkeypatch.setattr(cli_sync, "Console", lambda stream=stream: Console(stderr=stream,
                                                                                   stdout=io.StringIO()))
            result = CliRunner().invoke(cli, ["--ledger", ledger, "sync", "--csv", csv, *FAST])
            assert result.exit_code == 130, (after, result.exception)
            assert Ledger(ledger).syncs()[-1]["status"] != "running", after


@pytest.mark.parametrize("command", [("run", "--live"), ("load",)], ids=" ".join)
def test_a_stream_closed_while_run_or_load_says_how_it_ended_is_130(tmp_path, monkeypatch, catalogue_of_known,
                                                                    command):
    import shutil

    from click.testing import CliRunner

    from reversesync.cli import cli, load, runs
    from reversesync.cli.console import Console

    module = runs if command[0] == "run" else load
    args = [*command, *FAST] if command[0] == "run" else ["load", "--csv", full_sheet(tmp_path, "changed.csv",
                                                                                      moved=KNOWN[:2])]
    with sandbox_for_cli(monkeypatch, catalogue=catalogue_of_known, index_lag=0):
        first = str(tmp_path / "first.db")
        assert CliRunner().invoke(cli, ["--ledger", first, "load", "--csv", full_sheet(tmp_path)]).exit_code == 0
        whole = ClosesAfter(10_000)
        monkeypatch.setattr(module, "Console", lambda *a: Console(*a, stderr=whole, stdout=io.StringIO()))
        shutil.copy(first, tmp_path / "whole.db")
        assert CliRunner().invoke(cli, ["--ledger", str(tmp_path / "whole.db"), *args]).exit_code in (0, 1)
        for after in range(whole.writes):
            ledger = str(tmp_path / f"closed-after-{after}.db")
            shutil.copy(first, ledger)
            stream = ClosesAfter(after)
            monkeypatch.setattr(module, "Console", lambda *a, stream=stream: Console(*a, stderr=stream,
                                                                                     stdout=io.StringIO()))
            result = CliRunner().invoke(cli, ["--ledger", ledger, *args])
            assert result.exit_code == 130, (after, result.exception, result.output)


def test_runs_shows_the_run_of_a_sync_under_way_as_running_not_killed(tmp_path, invoke, ledger_path):
    from reversesync import report

    assert invoke("load", "--csv", full_sheet(tmp_path)).exit_code == 0
    holder = Ledger(ledger_path)
    holder.acquire("sync")
    run_id = holder.start_run("live", {})
    try:
        [record] = report.run_records(Ledger(ledger_path, readonly=True))
    finally:
        holder.release()
    assert (record["id"], record["status"]) == (run_id, "running")


def test_repair_drift_never_moves_a_segment_a_person_made_after_deleting_ours_nor_one_made_another_type(
        tmp_path, invoke, ledger_path, monkeypatch, catalogue_of_known):
    """Found by an adversarial review: --repair-drift sent a drift_deleted row back to the ordinary rules, which
    PATCHed the lone GENERIC segment on the asset, the one the person had made in place of ours."""
    with sandbox_for_cli(monkeypatch, catalogue=catalogue_of_known, index_lag=0) as sandbox:
        csv = full_sheet(tmp_path)
        assert invoke("sync", "--csv", csv, *FAST).exit_code == 1  # the two unknown ids
        [ours] = sandbox.generic_segments(KNOWN[0])
        sandbox.person_deletes(ours["id"])
        theirs = sandbox.person_creates(KNOWN[0], "GENERIC", 7000, 9000, segment_text="the person's own")
        [qc] = sandbox.generic_segments(KNOWN[1])
        sandbox.person_edits(qc["id"], segment_type="QC")
        assert invoke("sync", "--csv", csv, *FAST).exit_code == 1  # new: drift_deleted, drift_moved
        repaired = invoke("sync", "--csv", csv, *FAST, "--repair-drift")
        sandbox.settle()
        kept = sandbox.stored_segment(theirs["id"])
        assert (kept["time_start_milliseconds"], kept["time_end_milliseconds"], kept["segment_text"]) == (
            7000, 9000, "the person's own")
        assert sandbox.stored_segment(qc["id"])["segment_type"] == "QC"  # theirs now, left as they made it
        [made] = sandbox.generic_segments(KNOWN[1])  # the clip's range on a GENERIC segment of its own
        assert (made["time_start_milliseconds"], made["time_end_milliseconds"]) == (2000, 6000)
    assert state(ledger_path, KNOWN[0]) == ("skipped", "drift_deleted")
    assert repaired.exit_code == 0, repaired.output  # drift_deleted on that asset was reported last night
    assert f"GENERIC segment {theirs['id']} (7000-9000 ms) is there now: a person's" in Ledger(ledger_path).asset(
        KNOWN[0])["reason_text"]


def test_the_drift_check_reads_each_written_segment_by_id_and_looks_for_copies_by_batched_search(
        tmp_path, invoke, monkeypatch, catalogue_of_known):
    with sandbox_for_cli(monkeypatch, catalogue=catalogue_of_known, index_lag=0) as sandbox:
        csv = full_sheet(tmp_path)
        assert invoke("sync", "--csv", csv, *FAST).exit_code == 1  # ten written; the two unknown ids
        before = len(sandbox.requests())
        night = invoke("sync", "--csv", csv, *FAST)
        sent = [(method, path) for method, path, _ in sandbox.requests()[before:]]
    assert night.exit_code == 0, night.output
    assert "Drift: none among the 10 segments reversesync wrote." in night.output
    segment = re.compile(r"^/API/assets/v1/assets/[0-9a-f-]{36}/segments/[0-9a-f-]{36}/$")
    by_id = [path for method, path in sent if method == "GET" and segment.match(path)]
    lists = [path for method, path in sent if method == "GET" and path.endswith(("/segments/", "/GENERIC/"))]
    searches = [path for method, path in sent if path.startswith("/API/search/")]
    assert (len(by_id), len(lists), len(searches)) == (10, 0, 1)  # was 10 reads and 10 list reads
