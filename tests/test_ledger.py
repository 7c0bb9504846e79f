import json
import os
import sqlite3
import stat

import pytest

from reversesync import errors
from reversesync.ledger import (
    CHECKED,
    CREATED,
    FAILED,
    MIGRATION_NAMES,
    PENDING,
    SKIPPED,
    TRANSITIONS,
    UPDATED,
    Ledger,
    check_transition,
)
from reversesync.sheets import AssetRecord
from reversesync.types import Intent, WriteChange
from tests.conftest import ledger_of_version_02

ID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def test_transition_table_is_pinned():
    """The state machine changes only on purpose: this is the whole of it."""
    assert TRANSITIONS == {
        None: {PENDING, SKIPPED},
        PENDING: {PENDING, CHECKED, SKIPPED, FAILED},
        CHECKED: {CHECKED, PENDING, CREATED, UPDATED, SKIPPED, FAILED},
        CREATED: {CREATED, PENDING, SKIPPED, FAILED},
        UPDATED: {UPDATED, PENDING, SKIPPED, FAILED},
        SKIPPED: {SKIPPED, PENDING, CHECKED, FAILED},
        FAILED: {FAILED, PENDING, CHECKED, SKIPPED},
    }


def test_every_state_that_can_hold_an_intent_can_go_back_to_rechecking():
    """A write that may have landed always has a way out (issue #10): re-checking is reachable from each state."""
    for state in (PENDING, CHECKED, SKIPPED, FAILED):
        check_transition(state, CHECKED)


def test_any_row_can_fail_so_one_bad_row_never_stops_a_run():
    for state in (PENDING, CHECKED, CREATED, UPDATED, SKIPPED, FAILED):
        check_transition(state, FAILED)


@pytest.mark.parametrize("start, end", [(PENDING, CREATED), (PENDING, UPDATED), (CREATED, CHECKED),
                                        (SKIPPED, CREATED), (None, CHECKED), (FAILED, CREATED)])
def test_illegal_transition_raises(start, end):
    with pytest.raises(errors.IllegalTransition):
        check_transition(start, end)


def test_move_writes_state_and_event_together_and_illegal_move_changes_nothing(ledger_path):
    ledger = Ledger(ledger_path)
    ledger.load([AssetRecord(ID, ID, [2], "t", 1000, 2000)])
    ledger.move(ID, CHECKED, run_id=None, detail="plan create", action="create", kind="other")
    with pytest.raises(errors.IllegalTransition):
        ledger.move_many([(ID, CREATED, {"segment_id": "s"}, "other", None), (ID, CHECKED, {}, "other", None)])
    # the whole batch rolled back, the legal first move included
    row = ledger.asset(ID)
    assert (row["state"], row["action"], row["segment_id"]) == (CHECKED, "create", None)
    events = ledger.query("select from_state, to_state, detail from events order by id")
    assert events == [{"from_state": None, "to_state": "pending", "detail": "loaded"},
                      {"from_state": "pending", "to_state": "checked", "detail": "plan create"}]


def test_new_ledger_is_private_wal_and_fully_migrated(ledger_path):
    Ledger(ledger_path).close()
    assert stat.S_IMODE(os.stat(ledger_path).st_mode) == 0o600
    conn = sqlite3.connect(ledger_path)
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    applied = [r[0] for r in conn.execute("select name from _sqlite_migrations order by id")]
    assert applied == list(MIGRATION_NAMES)
    assert applied[:3] == ["001_initial", "002_write_intent_and_lock", "003_run_figures"]


def test_ledger_made_by_first_migration_upgrades_in_place(ledger_path):
    old = Ledger(ledger_path, stop_before="002_write_intent_and_lock")
    old.db["assets"].insert({"asset_key": ID, "asset_id": ID, "row_numbers": "2", "source_hash": "h",
                             "state": "created", "created_at": "x", "updated_at": "x"})
    assert "intent" not in old.db["assets"].columns_dict
    old.close()
    upgraded = Ledger(ledger_path)
    assert "intent" in upgraded.db["assets"].columns_dict
    assert upgraded.asset(ID)["state"] == "created"
    assert upgraded.db["lock"].exists()


def test_ledger_from_newer_version_is_refused_and_left_untouched(ledger_path):
    Ledger(ledger_path).close()
    conn = sqlite3.connect(ledger_path)
    conn.execute("insert into _sqlite_migrations (migration_set, name, applied_at) "
                 "values ('reversesync', '999_future', 'x')")
    conn.commit()
    conn.close()
    before = open(ledger_path, "rb").read()
    with pytest.raises(errors.LedgerTooNew, match="999_future"):
        Ledger(ledger_path)
    assert open(ledger_path, "rb").read() == before


def test_second_holder_is_refused_while_first_lives(ledger_path):
    first, second = Ledger(ledger_path), Ledger(ledger_path)
    first.acquire("run")
    with pytest.raises(errors.LedgerLocked, match=r"in use by 'reversesync run' \(pid \d+"):
        second.acquire("load")
    first.release()
    second.acquire("load")


def test_lock_of_a_dead_process_is_taken_over(ledger_path):
    ledger = Ledger(ledger_path)
    ledger.acquire("run")
    dead_pid = 2 ** 22 + 12345  # above pid_max on Linux: never a live process
    ledger.db.execute("update lock set pid = ?", [dead_pid])
    ledger._lock_token = None
    other = Ledger(ledger_path)
    other.acquire("resume")
    assert other.query("select command from lock")[0]["command"] == "resume"


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("hello, this is not sqlite" * 100)
    with pytest.raises(errors.LedgerError, match="is not a usable reversesync ledger"):
        Ledger(str(path))


# --- the write log (issue #15) -------------------------------------------------------------------------

B, C, D = (f"1b4e28ba-2fa1-11d2-883f-0016d3cca4{n:02d}" for n in (30, 31, 32))


def _ledger_of_version_02(ledger_path):
    """A ledger as reversesync 0.2 left it: one before-image per row, an open intent, an undone row."""
    old = ledger_of_version_02(ledger_path, (ID, B, C, D))
    for run_id, mode in ((1, "live"), (2, "live"), (3, "undo")):
        old.execute("insert into runs (id, mode, options, started_at, status) values (?, ?, '{}', 'x', 'finished')",
                    [run_id, mode])
    before = {"segment_type": "GENERIC", "time_start_milliseconds": 9000, "time_end_milliseconds": 9000,
              "segment_text": "by hand"}
    old.execute("update assets set state = 'created', done_action = 'create', done_segment_id = 's-a', "
                "done_run_id = 1, done_start_ms = 1000, done_end_ms = 5000 where asset_key = ?", [ID])
    old.execute("update assets set state = 'updated', done_action = 'update', done_segment_id = 's-b', "
                "done_run_id = 1, done_before = ? where asset_key = ?", [json.dumps(before), B])
    old.execute("update assets set state = 'checked', intent = ?, intent_sent_at = 1700000000.5 "
                "where asset_key = ?", [json.dumps({"id": "feed", "op": "create", "run_id": 2, "start": 1000,
                                                    "end": 5000}), C])
    old.execute("update assets set state = 'skipped', reason = 'undone', done_action = 'create', "
                "done_segment_id = 's-d', done_run_id = 1 where asset_key = ?", [D])
    old.executemany("insert into events (asset_key, run_id, from_state, to_state, at, detail) values "
                    "(?, ?, ?, ?, 'x', ?)", [(ID, 1, "checked", "created", "created segment s-a"),
                                             (B, 1, "checked", "updated", "updated segment s-b"),
                                             (D, 1, "checked", "created", "created segment s-d"),
                                             (D, 3, "created", "skipped", "undo of run 1: deleted")])
    old.commit()
    old.close()


def test_a_02_ledger_keeps_its_before_images_and_open_intents_in_the_write_log(ledger_path):
    _ledger_of_version_02(ledger_path)
    ledger = Ledger(ledger_path)
    created, updated = sorted((w for w in ledger.writes_of_run(1) if w.asset_key in (ID, B)), key=lambda w: w.action)
    assert (created.action, created.method, created.segment_id, created.outcome) == ("create", "POST", "s-a", "applied")
    assert (updated.method, updated.before["segment_text"], (updated.start_ms, updated.end_ms)) == (
        "PUT", "by hand", (1000, 5000))
    assert updated.legacy and updated.after is None
    [undone] = [w for w in ledger.writes_of_run(1) if w.asset_key == D]
    assert undone.undone_by == 3
    opened = ledger.open_write(C)
    assert (opened.intent_id, opened.run_id, opened.marker, opened.sent_at, opened.outcome, opened.lost) == (
        "v02-feed", 2, "reversesync:feed", 1700000000.5, "pending", True)
    assert ledger.asset(C)["intent"] == "v02-feed" and opened.legacy
    assert ledger.put_updates() == [(B, "3", "s-b", 1)]
    assert ledger.last_unknown_outcome_at() == 1700000000.5


def test_a_02_ledgers_free_text_events_get_a_kind_when_it_is_upgraded(ledger_path):
    """Migration 008 classifies 0.2's events once by their wording; nothing later matches text."""
    old = ledger_of_version_02(ledger_path, (ID, B))
    old.executemany("insert into events (asset_key, run_id, from_state, to_state, at, detail) values "
                    "(?, 1, ?, ?, 'x', ?)", [
                        (ID, "pending", "checked", "would create"),
                        (ID, "checked", "checked", "about to create a segment"),
                        (ID, "checked", "checked", "outcome unknown: the connection dropped"),
                        (ID, "checked", "checked", "re-checking after settle"),
                        (ID, "checked", "created", "created segment s-a"),
                        (B, "pending", "skipped", "in sync"),
                        (B, "skipped", "failed", "Iconik answered 403"),
                        (B, "failed", "checked", "write not applied (409)"),
                        (B, "checked", "skipped", "undo of run 1: deleted")])
    old.commit()
    old.close()
    ledger = Ledger(ledger_path)
    kinds = [(e["detail"], e["kind"]) for e in ledger.query("select detail, kind from events order by id")]
    assert kinds == [("loaded", "loaded"), ("loaded", "loaded"), ("would create", "planned"),
                     ("about to create a segment", "intent"), ("outcome unknown: the connection dropped",
                                                               "outcome_unknown"),
                     ("re-checking after settle", "settling"), ("created segment s-a", "written"),
                     ("in sync", "decided"), ("Iconik answered 403", "failed"),
                     ("write not applied (409)", "not_applied"), ("undo of run 1: deleted", "undo")]


def test_an_intent_and_its_result_commit_with_the_rows_moves(ledger_path):
    ledger = Ledger(ledger_path)
    ledger.load([AssetRecord(ID, ID, [2], "t", 1000, 5000)])
    run_id = ledger.start_run("live", {})
    intent = Intent("i1", "create", "POST", marker="reversesync:i1", start_ms=1000, end_ms=5000)
    write = ledger.record_intent(ID, intent, run_id=run_id, to_state=CHECKED, kind="intent", detail="about to create")
    assert (ledger.asset(ID)["intent"], write.outcome, write.run_id) == ("i1", "pending", run_id)
    ledger.mark_sent(ID)
    assert ledger.open_write(ID).sent_at is not None
    with pytest.raises(errors.IllegalTransition):  # an illegal move rolls the settling back with it
        ledger.move_many([(ID, CREATED, {"intent": None}, "written", None), (ID, CHECKED, {}, "other", None)],
                         run_id=run_id, writes=[WriteChange("i1", "applied")])
    assert ledger.write("i1").outcome == "pending"
    ledger.move(ID, CREATED, run_id=run_id, kind="written", intent=None,
                writes=[WriteChange("i1", "applied", after={"id": "s"}, segment_id="s")])
    assert (ledger.write("i1").outcome, ledger.write("i1").after, ledger.open_write(ID)) == ("applied", {"id": "s"},
                                                                                             None)
    # a re-send of the same intent keeps its owner, even when another run records it
    later = ledger.start_run("live", {})
    again = ledger.record_intent(ID, Intent("i1", "create", "POST"), run_id=later, to_state=PENDING, kind="intent",
                                 detail="re-send")
    assert (again.run_id, again.outcome, again.marker) == (run_id, "pending", "reversesync:i1")


# --- who holds the lock (issue #15) --------------------------------------------------------------------


def test_a_zombie_holder_counts_as_gone(ledger_path, monkeypatch):
    import psutil

    holder = Ledger(ledger_path)
    holder.acquire("run")
    holder._lock_token = None  # as a killed process would leave it
    monkeypatch.setattr(psutil.Process, "status", lambda self: psutil.STATUS_ZOMBIE)
    other = Ledger(ledger_path)
    other.acquire("resume")
    assert other.lock_holder()["command"] == "resume"
    assert other.query("select event from lock_log") == [{"event": "taken_over"}]


def test_a_live_holder_whose_start_time_moved_keeps_its_lock_while_its_heartbeat_moves(ledger_path):
    """A clock step moves psutil's start times; a holder that still beats is alive."""
    holder = Ledger(ledger_path)
    holder.heartbeat_every = 0.05
    holder.acquire("run")
    try:
        stepped = Ledger(ledger_path)
        stepped.db.execute("update lock set started = started - 3600, heartbeat = heartbeat - 3600")
        stepped.db.conn.commit()
        with pytest.raises(errors.LedgerLocked):
            Ledger(ledger_path).acquire("run")
    finally:
        holder.release()


def test_a_holder_whose_start_time_moved_and_whose_heartbeat_stands_still_is_taken_over(ledger_path):
    holder = Ledger(ledger_path)
    holder.acquire("run")
    holder._beating.set()  # its heartbeat stops, as a dead process's does; its pid lives on (reused)
    holder._lock_token = None
    holder.db.execute("update lock set started = started - 3600, heartbeat = heartbeat - 3600")
    holder.db.conn.commit()
    other = Ledger(ledger_path)
    other.sleep = lambda seconds: None  # watching the heartbeat for two beats needs no real time here
    other.acquire("run")
    assert other.lock_holder()["pid"] == os.getpid() and other.lock_holder()["token"] != "x"
