"""Exactly once under adversity (issue #10): late writes, kills mid-write, stuck lock holders, stranded intents.

Every test runs the real CLI (in-process, or as a subprocess where it is killed) against the sandbox on a free
loopback port, with settle time, read timeout and index lag scaled down but in the ratios that matter:
apply delay > read timeout, and settle > read timeout + apply delay + index lag.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from reversesync import errors
from reversesync.ledger import Ledger
from reversesync.rules import MARKER
from reversesync.sandbox import Catalogue, Sandbox
from tests.conftest import ROOT, cli_process, load_rows, sandbox_for_cli, strand_intent, wait_for, write_sheet  # noqa: F401

A, B, C = (f"5e7a0c00-0000-4000-8000-00000000000{n}" for n in range(1, 4))
LAG = 0.2
READ_TIMEOUT = 0.5
# A kill can land between a write's intent and its answer: resume then waits out the settle time, so keep it short.
FAST = ("--settle", 2, "--read-timeout", READ_TIMEOUT)


@pytest.fixture
def sandbox(monkeypatch):
    with sandbox_for_cli(monkeypatch, index_lag=LAG) as running:
        yield running


def live(invoke, *args, settle=3.0):
    return invoke("run", "--live", "--settle", settle, "--read-timeout", READ_TIMEOUT, *args)


def posts(sandbox, key):
    return [entry for entry in sandbox.requests("POST") if f"/assets/{key}/segments/" in entry[1]]


def test_late_apply_inside_the_settle_time_is_found_not_resent(sandbox, invoke, tmp_path, ledger_path):
    """A POST applied 1.5 s after the client gave up (0.5 s) is found by the re-check at 3 s: one segment."""
    sandbox.catalogue.add_asset(A)
    sandbox.force("POST", f"/assets/{A}/segments/$", action="apply_late", delay_ms=1500)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    result = live(invoke, settle=3.0)
    assert result.exit_code == 0, result.output
    assert "A write's answer was lost: it is re-checked 3 s after it was sent" in result.output
    sandbox.settle()
    [segment] = sandbox.generic_segments(A)
    assert segment["external_id"].startswith(f"{MARKER}:")
    assert len(posts(sandbox, A)) == 1
    row = Ledger(ledger_path).asset(A)
    assert (row["state"], row["segment_id"], row["intent"]) == ("created", segment["id"], None)
    assert "a settled re-check found it" in row["reason_text"]


def test_late_apply_past_the_settle_time_is_caught_by_verify(sandbox, invoke, tmp_path, ledger_path):
    """No settle time can bound a backend's lateness: the re-send carries the same marker, so verify names the
    duplicate and how to repair it."""
    sandbox.catalogue.add_asset(A)
    sandbox.force("POST", f"/assets/{A}/segments/$", action="apply_late", delay_ms=2500)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    assert live(invoke, settle=1.0).exit_code == 0
    sandbox.settle()
    first, second = sandbox.generic_segments(A)
    assert first["external_id"] == second["external_id"]  # one intent, one marker
    result = invoke("verify", "--settle", "1")
    assert result.exit_code == 1
    assert f"MISMATCH {A} (row 2, created, duplicate)" in result.output
    assert "2 reversesync segments" in result.output


def test_slow_answer_past_the_read_timeout_is_never_resent(sandbox, invoke, tmp_path, ledger_path):
    """The write is applied at once but its answer comes after the client stopped waiting."""
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_asset(B)

    def slow_answer_for_a(method, path):
        if method == "POST" and f"/assets/{A}/" in path:
            time.sleep(1.0)

    sandbox.hooks.append(slow_answer_for_a)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    assert live(invoke, settle=2.0).exit_code == 0
    sandbox.settle()
    assert len(sandbox.generic_segments(A)) == 1 and len(sandbox.generic_segments(B)) == 1


def run_engine(ledger_path, sandbox, **options):
    """One run through the engine with the real client, its back-off shortened for tests (conftest.client_for)."""
    from reversesync.engine import Sync
    from reversesync.types import RunOptions
    from tests.conftest import client_for

    ledger = Ledger(ledger_path)
    ledger.acquire("run")
    try:
        run_options = RunOptions(live=True, settle=2.0, read_timeout=READ_TIMEOUT, **options)
        engine = Sync(ledger, client_for(sandbox, timeout=(5.0, READ_TIMEOUT), max_backoff=0.01), run_options)
        engine.preflight()
        return engine.run(ledger.start_run("live", run_options.to_json()))
    finally:
        ledger.release()
        ledger.close()


def test_write_side_429_storm_fails_the_row_as_rate_limited_with_no_intent_left(
        sandbox, invoke, tmp_path, ledger_path):
    """A 429 means "not applied": each one is followed by a fresh read before the write is decided again (issue
    #15), and past the budget the row fails as rate_limited (retryable), not as internal_error holding an intent
    as in 0.1."""
    from reversesync.engine import MAX_THROTTLED_WRITES

    sandbox.catalogue.add_asset(A)
    sandbox.force("POST", f"/assets/{A}/segments/$", 429, {"errors": ["Too many"]}, times=100)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    run_engine(ledger_path, sandbox, search=False)
    row = Ledger(ledger_path).asset(A)
    assert (row["state"], row["reason"], row["intent"]) == ("failed", "rate_limited", None)
    asked = [method for method, path, _ in sandbox.requests() if f"/assets/{A}/" in path]
    assert asked.count("POST") == MAX_THROTTLED_WRITES
    assert "POST,POST" not in ",".join(asked)  # never two sends without a read between them
    assert "run again with a lower --rate and --retry-failed" in row["reason_text"]
    sandbox._forced.clear()
    again = live(invoke, "--retry-failed")
    assert again.exit_code == 0, again.output
    assert Ledger(ledger_path).asset(A)["state"] == "created"
    assert len(sandbox.generic_segments(A)) == 1


def test_a_failed_row_holding_an_intent_is_rechecked_first_and_never_strands(
        sandbox, invoke, tmp_path, ledger_path):
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_asset(B)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    strand_intent(ledger_path, A)
    sandbox.catalogue.add_segment(A, "GENERIC", 1000, 5000, external_id=f"{MARKER}:0ddba11")  # it had landed
    time.sleep(LAG)
    result = live(invoke, settle=1.0)
    assert result.exit_code == 0, result.output
    row = Ledger(ledger_path).asset(A)
    assert (row["state"], row["intent"], row["done_action"]) == ("created", None, "create")
    assert posts(sandbox, A) == [] and len(sandbox.generic_segments(A)) == 1
    assert Ledger(ledger_path).asset(B)["state"] == "created"


def test_reload_clearing_the_times_of_a_row_with_an_intent_resolves_it_and_the_run_goes_on(
        sandbox, invoke, tmp_path, ledger_path):
    """0.1 stopped every later run with exit 3 ("a row cannot move from skipped to checked")."""
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_asset(B)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    strand_intent(ledger_path, A)
    sandbox.catalogue.add_segment(A, "GENERIC", 1000, 5000, external_id=f"{MARKER}:0ddba11")
    load_rows(invoke, tmp_path, (A, "", ""), (B, 1000, 5000))  # someone clears A's times in the sheet
    time.sleep(LAG)
    result = live(invoke, settle=1.0)
    assert result.exit_code == 0, result.output
    row = Ledger(ledger_path).asset(A)
    assert (row["state"], row["reason"], row["intent"]) == ("skipped", "no_timecode", None)
    assert row["done_action"] == "create"  # what reversesync did stays on the row
    assert Ledger(ledger_path).asset(B)["state"] == "created"
    assert posts(sandbox, A) == []


def test_an_illegal_move_fails_that_row_never_the_run(sandbox, invoke, tmp_path, ledger_path, monkeypatch):
    from reversesync.engine import sync

    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_asset(B)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    real = sync.Sync._plan

    def broken_plan(self, row, run_id, decision):
        if row["asset_key"] == A:
            raise errors.IllegalTransition("a row cannot move from created to checked")
        return real(self, row, run_id, decision)

    monkeypatch.setattr(sync.Sync, "_plan", broken_plan)
    result = invoke("run", "--no-search")
    assert result.exit_code == 1
    ledger = Ledger(ledger_path)
    assert (ledger.asset(A)["state"], ledger.asset(A)["reason"]) == ("failed", "internal_error")
    assert "a row cannot move from created to checked" in ledger.asset(A)["reason_text"]
    assert ledger.asset(B)["state"] == "checked"


# --- processes killed and stopped ----------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_with_a_post_in_flight_then_an_immediate_resume_creates_no_duplicate(tmp_path, ledger_path):
    catalogue = Catalogue()
    catalogue.add_asset(A)
    with Sandbox(catalogue, index_lag=LAG) as sandbox:
        arrived = []

        def slow_post(method, path):  # the POST is applied, but only after the client is dead
            if method == "POST" and "/segments/" in path:
                arrived.append(path)
                time.sleep(1.5)

        sandbox.hooks.append(slow_post)
        sheet = write_sheet(tmp_path / "s.csv", [(A, "t", 1000, 5000)])
        assert cli_process(ledger_path, sandbox, "load", "--csv", sheet).wait(30) == 0
        process = cli_process(ledger_path, sandbox, "run", "--live", "--settle", 3, "--read-timeout", 2)
        wait_for(lambda: arrived)
        process.kill()
        process.communicate()
        sandbox.hooks.clear()
        resumed = cli_process(ledger_path, sandbox, "resume")
        out, err = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, err
        assert "Waiting" in err  # it said it waits out the settle time before re-checking
        sandbox.settle()
        assert len(sandbox.generic_segments(A)) == 1
        assert len(sandbox.requests("POST")) - len([p for p in sandbox.requests("POST") if "/search/" in p[1]]) == 1
        assert Ledger(ledger_path).asset(A)["state"] == "created"


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX job control")
def test_a_stopped_lock_holder_keeps_its_lock_and_a_second_run_is_refused(tmp_path, ledger_path):
    """SIGSTOP (or Ctrl-Z) for longer than any heartbeat timeout: the holder's process exists, so it holds."""
    catalogue = Catalogue()
    for key in (A, B, C):
        catalogue.add_asset(key)
    with Sandbox(catalogue, index_lag=LAG, latency_ms=300) as sandbox:
        sheet = write_sheet(tmp_path / "s.csv", [(key, "t", 1000, 5000) for key in (A, B, C)])
        assert cli_process(ledger_path, sandbox, "load", "--csv", sheet).wait(30) == 0
        holder = cli_process(ledger_path, sandbox, "run", "--live", "--workers", "1")
        wait_for(lambda: sandbox.requests("GET"))
        holder.send_signal(signal.SIGSTOP)
        try:
            ledger = Ledger(ledger_path)
            ledger.db.execute("update lock set heartbeat = heartbeat - 600")  # as if stopped for ten minutes
            ledger.db.conn.commit()
            ledger.close()
            second = cli_process(ledger_path, sandbox, "run", "--live")
            out, err = second.communicate(timeout=60)
            assert second.returncode == 3, (out, err)
            assert "is in use by 'reversesync run' (pid" in err
        finally:
            holder.send_signal(signal.SIGCONT)
        out, err = holder.communicate(timeout=60)
        assert holder.returncode == 0, err
        assert all(len(sandbox.generic_segments(key)) == 1 for key in (A, B, C))


def test_a_dead_holders_lock_is_taken_over_and_the_takeover_recorded(ledger_path, tmp_path):
    ledger = Ledger(ledger_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ledger.db.execute("insert into lock (id, token, pid, host, command, acquired_at, heartbeat, started) values "
                      "(1, 't', ?, ?, 'run', '2026-01-01T00:00:00', ?, ?)",
                      [dead.pid, __import__("socket").gethostname(), time.time(), time.time() - 5])
    ledger.db.conn.commit()
    ledger.acquire("run")
    try:
        [taken] = ledger.query("select event, pid, command from lock_log")
        assert taken == {"event": "taken_over", "pid": dead.pid, "command": "run"}
    finally:
        ledger.release()


def test_the_lock_check_never_calls_os_kill(monkeypatch, ledger_path):
    """On Windows os.kill(pid, 0) sends a Ctrl-C instead of probing (issue #11): liveness goes through psutil."""
    from reversesync import ledger as ledger_module

    def no_kill(*args):
        raise AssertionError("os.kill must not be used to probe a lock holder")

    monkeypatch.setattr(os, "kill", no_kill)
    holder = Ledger(ledger_path)
    holder.acquire("run")
    try:
        with pytest.raises(errors.LedgerLocked):
            Ledger(ledger_path).acquire("run")
        stale = {"pid": os.getpid(), "host": __import__("socket").gethostname(), "heartbeat": 0.0, "started": None}
        assert ledger_module.holder_alive(stale, stale["host"]) is False
    finally:
        holder.release()


def test_a_holder_that_lost_its_lock_stops_before_its_next_write(sandbox, invoke, tmp_path, ledger_path):
    for key in (A, B, C):
        sandbox.catalogue.add_asset(key)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000), (C, 1000, 5000))

    def steal_the_lock(method, path):
        if method == "POST" and "/segments/" in path:
            thief = Ledger(ledger_path)
            thief.db.execute("update lock set token = 'another process'")
            thief.db.conn.commit()
            thief.close()

    sandbox.hooks.append(steal_the_lock)
    result = live(invoke, "--workers", "1", "--no-search")
    assert result.exit_code == 3
    assert "another process took the lock of" in result.output
    assert len([p for p in sandbox.requests("POST")]) == 1  # the write in flight, and not one more


@pytest.mark.slow
def test_resume_after_a_kill_continues_exactly_the_selected_rows(tmp_path, ledger_path):
    """--limit 5 writes 5 rows across a kill and a resume (0.1 wrote 9); --asset never reopens a row twice."""
    keys = [f"5e7a0c00-0000-4000-8000-0000000001{n:02d}" for n in range(12)]
    catalogue = Catalogue()
    for key in keys:
        catalogue.add_asset(key)
    with Sandbox(catalogue, index_lag=LAG, latency_ms=150) as sandbox:
        sheet = write_sheet(tmp_path / "s.csv", [(key, "t", 1000, 5000) for key in keys])
        assert cli_process(ledger_path, sandbox, "load", "--csv", sheet).wait(30) == 0
        process = cli_process(ledger_path, sandbox, "run", "--live", "--limit", 5, "--workers", 1, "--no-search",
                              *FAST)
        wait_for(lambda: len([p for p in sandbox.requests("POST")]) >= 2)
        process.kill()
        process.communicate()
        resumed = cli_process(ledger_path, sandbox, "resume")
        out, err = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, err
        assert sum(len(sandbox.generic_segments(key)) for key in keys) == 5
        # --asset on a row reversesync created: a kill after it is done, then resume, leaves it created
        done = keys[0]
        process = cli_process(ledger_path, sandbox, "run", "--live", "--asset", done, "--asset", keys[11],
                              "--workers", 1, "--no-search", *FAST)
        wait_for(lambda: Ledger(ledger_path).asset(done)["state"] != "pending" and any(
            f"/assets/{keys[11]}/" in p[1] for p in sandbox.requests()))
        process.kill()
        process.communicate()
        assert cli_process(ledger_path, sandbox, "resume").wait(60) == 0
        assert Ledger(ledger_path).asset(done)["state"] in ("created", "skipped")
        assert len(sandbox.generic_segments(done)) == 1 and len(sandbox.generic_segments(keys[11])) == 1


@pytest.mark.slow
def test_a_kill_before_the_first_request_answers_leaves_a_run_to_resume(tmp_path, ledger_path):
    catalogue = Catalogue()
    catalogue.add_asset(A)
    with Sandbox(catalogue, index_lag=LAG) as sandbox:
        hanging = []

        def hang_preflight(method, path):
            if path.endswith("/users/current/"):
                hanging.append(path)
                time.sleep(3)

        sandbox.hooks.append(hang_preflight)
        sheet = write_sheet(tmp_path / "s.csv", [(A, "t", 1000, 5000)])
        assert cli_process(ledger_path, sandbox, "load", "--csv", sheet).wait(30) == 0
        process = cli_process(ledger_path, sandbox, "run", "--live")
        wait_for(lambda: hanging)
        process.kill()
        process.communicate()
        sandbox.hooks.clear()
        resumed = cli_process(ledger_path, sandbox, "resume")
        out, err = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, err
        assert err.startswith("Resuming run 1 (live")  # human lines: stderr (issue #17)
        assert len(sandbox.generic_segments(A)) == 1
