import os
import sqlite3
import stat

import pytest

from reversesync import errors
from reversesync.ledger import (CHECKED, CREATED, FAILED, MIGRATION_NAMES, PENDING, SKIPPED, TRANSITIONS, UPDATED,
                                Ledger, check_transition)
from reversesync.sources import AssetRecord

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
    ledger.move(ID, CHECKED, run_id=None, detail="plan create", action="create")
    with pytest.raises(errors.IllegalTransition):
        ledger.move_many([(ID, CREATED, {"segment_id": "s"}, None), (ID, CHECKED, {}, None)])
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
