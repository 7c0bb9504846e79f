"""The ledger's part of the nightly job (issue #17): retries across syncs, rows that need a person, backups, and
the events a --log file hears of."""

import datetime
import os
import sqlite3
import stat

import pytest

from reversesync import rules
from reversesync.errors import IllegalTransition
from reversesync.ledger import FAILED, PENDING, Ledger, backups
from reversesync.sheets import AssetRecord
from reversesync.types import Kind
from tests.conftest import ID_A, ID_B, ID_C


@pytest.fixture
def ledger(ledger_path):
    opened = Ledger(ledger_path)
    opened.acquire("test")
    opened.load([AssetRecord(key, key, [n], "t", 1000, 5000) for n, key in enumerate((ID_A, ID_B, ID_C), start=2)])
    yield opened
    opened.release()
    opened.close()


def fail(ledger, key, reason):
    ledger.move(key, FAILED, kind=Kind.FAILED, reason=reason, detail=reason)


def retry(ledger, nights=3):
    return ledger.send_back_for_retry(rules.SYNC_RETRY_REASONS, nights)


def test_a_row_failed_for_a_passing_cause_is_sent_back_by_each_sync_until_its_nights_are_spent(ledger):
    for night in (1, 2, 3):
        fail(ledger, ID_A, "server_error")
        assert retry(ledger) == [(ID_A, "server_error")]
        row = ledger.asset(ID_A)
        assert (row["state"], row["sync_retries"]) == (PENDING, night)
    fail(ledger, ID_A, "server_error")
    assert retry(ledger) == []
    assert ledger.asset(ID_A)["state"] == FAILED
    details = [e["detail"] for e in ledger.asset_events(ID_A) if e["kind"] == Kind.RECHECK]
    assert details == ["sync retry 1 of 3 (server_error)", "sync retry 2 of 3 (server_error)",
                       "sync retry 3 of 3 (server_error)"]


def test_a_row_that_ends_otherwise_starts_counting_afresh(ledger):
    fail(ledger, ID_A, "conflict")
    retry(ledger)
    fail(ledger, ID_A, "not_found")
    retry(ledger)
    assert ledger.asset(ID_A)["sync_retries"] == 0


def test_rows_needing_a_person_are_the_listed_reasons_and_the_passing_causes_whose_retries_are_spent(ledger):
    fail(ledger, ID_A, "not_found")
    fail(ledger, ID_B, "server_error")
    fail(ledger, ID_C, "server_error")
    ledger.db.execute("update assets set sync_retries = 3 where asset_key = ?", [ID_C])
    rows = ledger.rows_needing_person(rules.NEEDS_PERSON_REASONS, rules.SYNC_RETRY_REASONS, 3)
    assert [(r["asset_key"], r["reason"]) for r in rows] == [(ID_A, "not_found"), (ID_C, "server_error")]
    assert [rules.needs_person(r["state"], r["reason"], r["sync_retries"], 3) for r in rows] == [True, True]
    assert not rules.needs_person("failed", "server_error", 2, 3)
    assert not rules.needs_person("skipped", "in_sync", 0, 3)


def test_a_backup_is_a_private_readable_copy_and_only_the_newest_seven_stay(ledger, ledger_path):
    start = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    made = [ledger.back_up(now=start + datetime.timedelta(days=n)) for n in range(9)]
    assert backups(ledger_path) == made[2:]
    with sqlite3.connect(made[-1]) as copy:
        assert copy.execute("select count(*) from assets").fetchone()[0] == 3
    if os.name == "posix":
        assert stat.S_IMODE(os.stat(made[-1]).st_mode) == 0o600


def test_observers_hear_of_committed_moves_only(ledger):
    heard = []
    ledger.observe(heard.extend)
    fail(ledger, ID_A, "not_found")
    with pytest.raises(IllegalTransition):
        ledger.move_many([(ID_B, FAILED, {}, Kind.FAILED, "x"), (ID_C, "created", {}, Kind.WRITTEN, "y")])
    assert [(key, before, after, kind, detail) for key, _, before, after, _, kind, detail in heard] == [
        (ID_A, PENDING, FAILED, Kind.FAILED, "not_found")]
