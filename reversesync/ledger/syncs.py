"""The nightly job's records (issue #17): one row per `sync`, the rows it sends back for another try, the rows
that need a person, and drift set aside. Backups of the ledger file are in backups.py."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..types import FAILED, PENDING, SKIPPED, Kind
from .base import Row, now_iso
from .rows import Move
from .runs import Runs

Pair = tuple[str, str]   # (asset key, reason)


class Syncs(Runs):
    """`sync`: its records, retries across nights, needs-a-person and drift."""

    def start_sync(self, dry: bool, options: dict[str, object], backup: str | None) -> int:
        with self._writing():
            cursor = self.db.execute(
                "insert into syncs (dry, options, started_at, status, backup) values (?, ?, ?, 'running', ?)",
                [int(dry), json.dumps(options, sort_keys=True), now_iso(), backup])
            return int(cursor.lastrowid or 0)

    def last_sync(self) -> Row | None:
        """The newest sync, finished or not (its options say how many nights a row is retried)."""
        rows = self.query("select * from syncs order by id desc limit 1")
        return rows[0] if rows else None

    def attach_run(self, sync_id: int, run_id: int) -> None:
        with self._writing():
            self.db.execute("update syncs set run_id = ? where id = ?", [run_id, sync_id])

    def finish_sync(self, sync_id: int, status: str, exit_status: int, needs_person: Sequence[Pair],
                    drift: Sequence[Pair]) -> None:
        with self._writing():
            self.db.execute(
                "update syncs set status = ?, finished_at = ?, exit_status = ?, needs_person = ?, drift = ? "
                "where id = ?", [status, now_iso(), exit_status, json.dumps(sorted(map(list, needs_person))),
                                 json.dumps(sorted(map(list, drift))), sync_id])

    def previous_needs_person(self, before: int) -> set[Pair] | None:
        """The pairs the newest finished live sync before this one reported, or None if there was none."""
        rows = self.query("select needs_person from syncs where id < ? and status = 'finished' and dry = 0 "
                          "order by id desc limit 1", [before])
        if not rows:
            return None
        return {(str(key), str(reason)) for key, reason in json.loads(rows[0]["needs_person"] or "[]")}

    def syncs(self) -> list[Row]:
        return self.query("select * from syncs order by id")

    # --- retries across nights ------------------------------------------------------------------------

    def send_back_for_retry(self, reasons: Sequence[str], retry_nights: int) -> list[Pair]:
        """Rows of the current sheet failed for a passing cause, tried by fewer than retry_nights syncs: count
        this sync's try and send them back to pending (a row still holding an unsettled write stays as it is:
        any live run re-checks it first). Rows no longer failed for such a cause start counting afresh. Returns
        [(asset key, the reason it had failed with)]."""
        if not reasons:
            return []
        marks = self._in(reasons)
        stamp = now_iso()
        with self._writing():
            self._check_lock_held()
            self.db.execute(f"update assets set sync_retries = 0 where sync_retries > 0 and not "
                            f"(state = 'failed' and reason in ({marks}))", list(reasons))
            due = self.db.execute(
                f"select asset_key, intent, sync_retries, reason from assets where in_source = 1 and "
                f"state = 'failed' and reason in ({marks}) and sync_retries < ?", [*reasons, retry_nights]).fetchall()
            self.db.conn.executemany("update assets set sync_retries = sync_retries + 1 where asset_key = ?",
                                     [(key,) for key, _, _, _ in due])
            moves: list[Move] = [
                (key, PENDING, {"reason": None, "reason_text": None}, Kind.RECHECK,
                 f"sync retry {tries + 1} of {retry_nights} ({reason})")
                for key, intent, tries, reason in due if intent is None]
            self._move_in_transaction(moves, None, False, stamp)
        return [(key, reason) for key, _, _, reason in due]

    # --- needing a person ------------------------------------------------------------------------------

    def rows_needing_person(self, reasons: Sequence[str], retry_reasons: Sequence[str], retry_nights: int) -> list[Row]:
        """Rows of the current sheet skipped or failed for one of reasons, or failed for one of retry_reasons
        after retry_nights syncs tried them again; in sheet order."""
        return self.query(
            f"select asset_key, asset_id, row_numbers, state, reason, reason_text, sync_retries from assets "
            f"where in_source = 1 and state in ('{SKIPPED}', '{FAILED}') and (reason in ({self._in(reasons)}) or "
            f"(state = '{FAILED}' and reason in ({self._in(retry_reasons)}) and sync_retries >= ?)) "
            f"order by cast(row_numbers as integer), asset_key", [*reasons, *retry_reasons, retry_nights])

    # --- drift -----------------------------------------------------------------------------------------

    def rows_written(self) -> list[Row]:
        """Rows of the current sheet that reversesync created or updated and that hold no open write: the
        segments a drift check reads again."""
        return self.query("select * from assets where in_source = 1 and state in ('created', 'updated') and "
                          "intent is null and coalesce(done_segment_id, segment_id) is not null "
                          "order by cast(row_numbers as integer), asset_key")

    def set_drift_aside(self, key: str, reason: str, text: str, sync_id: int) -> None:
        """A written row whose segment drifted: skipped with the drift reason, its write history kept."""
        self.move(key, SKIPPED, kind=Kind.DRIFT, detail=f"sync {sync_id}: {reason}", reason=reason, reason_text=text)

    def send_drift_back(self, keys: Sequence[str], sync_id: int) -> None:
        """Drifted rows go back to pending for the sheet to win (`sync --repair-drift`)."""
        self.move_many([(key, PENDING, {"reason": None, "reason_text": None}, Kind.RECHECK,
                         f"sync {sync_id}: repair drift") for key in keys])
