"""The ledger's rows: one per asset of the sheet, moved through the state machine with an event each, loaded
from the source, and chosen for runs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ..errors import LedgerError
from ..types import FINAL_STATES, PENDING, SKIPPED, STATES, Kind, WriteChange
from .base import Event, LedgerBase, Row, now_iso
from .states import check_transition

# (asset key, state to move to, columns to set, kind, detail)
Move = tuple[str, str, dict[str, Any], str, str | None]

class SourceRecord(Protocol):
    """What `load` needs of one asset of the source (sheets.records.AssetRecord)."""

    key: str
    asset_id: str
    row_numbers: list[int]
    title: str
    time_start_ms: int | None
    time_end_ms: int | None
    reason: str | None
    reason_text: str | None

    @property
    def source_hash(self) -> str: ...

class Rows(LedgerBase):
    """Rows and their moves."""

    def asset(self, key: str) -> Row | None:
        rows = self.query("select * from assets where asset_key = ?", [key])
        return rows[0] if rows else None

    def rows(self, keys: Iterable[str]) -> dict[str, Row]:
        """{asset key: row} for keys."""
        return {row["asset_key"]: row for row in self.query(
            "select * from assets where asset_key in (select value from json_each(?))", [json.dumps(list(keys))])}

    def known_keys(self, keys: Sequence[str]) -> set[str]:
        """The subset of keys that the ledger holds."""
        return {row[0] for row in self.iterate(
            "select asset_key from assets where asset_key in (select value from json_each(?))",
            [json.dumps(list(keys))])}

    def keys_in_source(self) -> set[str]:
        """The keys of the assets the source held at its last load (the rows runs work on)."""
        return {row[0] for row in self.iterate("select asset_key from assets where in_source = 1")}

    def counts(self) -> tuple[dict[str, int], dict[tuple[str, str | None], int]]:
        """{state: n} and {(state, reason): n} over the assets still in the source."""
        by_state = {s: 0 for s in STATES}
        by_reason: dict[tuple[str, str | None], int] = {}
        for row in self.query(
                "select state, reason, count(*) as n from assets where in_source = 1 group by state, reason"):
            by_state[row["state"]] += row["n"]
            by_reason[(row["state"], row["reason"])] = row["n"]
        return by_state, by_reason

    def failed_in_source(self) -> int:
        """How many rows of the current sheet are failed, whichever run failed them."""
        return int(self.query("select count(*) as n from assets where in_source = 1 and state = 'failed'")[0]["n"])

    # --- the state machine -------------------------------------------------------------------------

    def move(self, key: str, to_state: str, *, kind: str, run_id: int | None = None, detail: str | None = None,
             done: bool = False, writes: Sequence[WriteChange] = (), **fields: Any) -> None:
        """Move one row to to_state, set fields, and record the event, all in one transaction.

        done=True also marks the row finished for run_id, so a resume of that run does not take it again.
        writes: WriteChanges to the write log (a write settled, or undone), committed with the move."""
        self.move_many([(key, to_state, fields, kind, detail)], run_id=run_id, done=done, writes=writes)

    def move_many(self, moves: Sequence[Move], *, run_id: int | None = None, done: bool = False,
                  writes: Sequence[WriteChange] = ()) -> None:
        """Apply moves in one transaction; any illegal move rolls back all."""
        stamp = now_iso()
        with self._writing():
            self._check_lock_held()
            for change in writes:
                self._change_write(change, stamp)
            self._move_in_transaction(moves, run_id, done, stamp)

    def _change_write(self, change: WriteChange, stamp: str) -> None:
        """Settle or mark one logged write, inside the caller's transaction (ledger/writelog.py)."""
        raise NotImplementedError

    def _move_in_transaction(self, moves: Sequence[Move], run_id: int | None, done: bool, stamp: str) -> None:
        events: list[Event] = []
        for key, to_state, fields, kind, detail in moves:
            row = self.db.execute("select state from assets where asset_key = ?", [key]).fetchone()
            if row is None:
                raise LedgerError(f"no asset {key} in the ledger")
            check_transition(row[0], to_state)
            values = dict(fields, state=to_state, updated_at=stamp)
            assignments = ", ".join(f"[{column}] = ?" for column in values)
            self.db.execute(f"update assets set {assignments} where asset_key = ?", [*values.values(), key])
            events.append((key, run_id, row[0], to_state, stamp, kind, detail))
            if done and run_id is not None:
                self.db.execute("update run_rows set done = 1 where run_id = ? and asset_key = ?", [run_id, key])
        self._record_events(events)

    # --- loading the source -------------------------------------------------------------------------

    def load(self, records: Iterable[SourceRecord]) -> dict[str, Any]:
        """Make the ledger match the source's records in one transaction; returns counts of what changed.

        Unchanged rows keep their state (a finished row stays finished); changed rows go back to pending
        (or to skipped if now rejected); rows gone from the source are kept, marked in_source = 0."""
        stamp = now_iso()
        rejected: dict[str, int] = {}
        counts: dict[str, Any] = {"new": 0, "changed": 0, "unchanged": 0, "removed": 0, "rejected": rejected}
        with self._writing():
            existing = {row[0]: row[1:] for row in self.db.execute(
                "select asset_key, source_hash, state, in_source from assets")}
            inserts, updates, events = [], [], []
            for record in records:
                # A row whose times were read from the seconds columns says so in its event (issue #17); the
                # kind stays the same, since modules match kinds, never text. getattr: SourceRecord does not
                # declare the flag.
                said = " (times from time_start_S/time_end_S)" if getattr(record, "times_from_seconds", False) else ""
                target = SKIPPED if record.reason else PENDING
                if record.reason:
                    rejected[record.reason] = rejected.get(record.reason, 0) + 1
                source = [record.asset_id, ",".join(map(str, record.row_numbers)), record.title,
                          record.time_start_ms, record.time_end_ms]
                before = existing.pop(record.key, None)
                if before is None:
                    check_transition(None, target)
                    counts["new"] += 1
                    inserts.append([record.key, *source, record.source_hash, target, record.reason,
                                    record.reason_text, stamp, stamp])
                    events.append((record.key, None, None, target, stamp, Kind.LOADED, f"loaded{said}"))
                    continue
                old_hash, state, in_source = before
                if old_hash == record.source_hash:
                    counts["unchanged"] += 1
                    updates.append([*source, 1, record.key])
                    if not in_source:
                        events.append((record.key, None, state, state, stamp, Kind.BACK_IN_SOURCE,
                                       "back in the source"))
                    continue
                check_transition(state, target)
                counts["changed"] += 1
                self.db.execute(
                    "update assets set asset_id = ?, row_numbers = ?, title = ?, time_start_ms = ?, "
                    "time_end_ms = ?, source_hash = ?, state = ?, reason = ?, reason_text = ?, action = null, "
                    "in_source = 1, updated_at = ? where asset_key = ?",
                    [*source, record.source_hash, target, record.reason, record.reason_text, stamp, record.key])
                events.append((record.key, None, state, target, stamp, Kind.SOURCE_CHANGED, f"source changed{said}"))
            self.db.conn.executemany(
                "insert into assets (asset_key, asset_id, row_numbers, title, time_start_ms, time_end_ms, "
                "source_hash, state, reason, reason_text, created_at, updated_at) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", inserts)
            self.db.conn.executemany(
                "update assets set asset_id = ?, row_numbers = ?, title = ?, time_start_ms = ?, time_end_ms = ?, "
                "in_source = ? where asset_key = ?", updates)
            gone = [key for key, (_, _, in_source) in existing.items() if in_source]
            counts["removed"] = len(gone)
            self.db.conn.executemany("update assets set in_source = 0, updated_at = ? where asset_key = ?",
                                     [(stamp, key) for key in gone])
            events.extend((key, None, existing[key][1], existing[key][1], stamp, Kind.LEFT_SOURCE,
                           "no longer in the source") for key in gone)
            self._record_events(events)
        return counts

    # --- what a run works on ----------------------------------------------------------------------

    def select_rows(self, run_id: int, keys: Sequence[str], reopen: Sequence[str] = ()) -> None:
        """Fix the run's rows once, reopening finished rows the options asked for, in one transaction.

        reopen: keys of finished rows to send back to pending first (--retry-failed, --recheck, --asset)."""
        stamp = now_iso()
        with self._writing():
            self._check_lock_held()
            events: list[Event] = []
            for key in reopen:
                state = self.db.execute("select state from assets where asset_key = ?", [key]).fetchone()[0]
                check_transition(state, PENDING)
                self.db.execute("update assets set state = 'pending', reason = null, reason_text = null, "
                                "updated_at = ? where asset_key = ?", [stamp, key])
                events.append((key, run_id, state, PENDING, stamp, Kind.RECHECK, "re-check requested"))
            self._record_events(events)
            self.db.conn.executemany("insert or ignore into run_rows (run_id, asset_key, position) values (?, ?, ?)",
                                     [(run_id, key, n) for n, key in enumerate(keys)])
            self.db.execute("update runs set selected_at = ? where id = ?", [stamp, run_id])

    def mark_rows_done(self, run_id: int, keys: Sequence[str]) -> None:
        """Mark rows finished for a run that records nothing on them (a dry undo or repair only reads)."""
        with self._writing():
            self._check_lock_held()
            self.db.conn.executemany("update run_rows set done = 1 where run_id = ? and asset_key = ?",
                                     [(run_id, key) for key in keys])

    def run_keys(self, run_id: int) -> list[str]:
        """The selected rows of a run not finished yet, rows holding an intent first."""
        return [row[0] for row in self.iterate(
            "select r.asset_key from run_rows r join assets a on a.asset_key = r.asset_key "
            "where r.run_id = ? and r.done = 0 order by a.intent is null, r.position", [run_id])]

    def run_size(self, run_id: int) -> int:
        return int(self.query("select count(*) as n from run_rows where run_id = ?", [run_id])[0]["n"])

    def candidate_keys(self, *, assets: Sequence[str] = (), limit: int | None = None,
                       with_intent_only: bool = False) -> list[str]:
        """Rows a new run takes: those holding a sync write open first (they must be re-checked before anything
        else), then pending and checked rows of the current sheet, in sheet order."""
        # A row holding an undo's or a repair's write open is that command's to settle, never a run's.
        sync_intent = "intent in (select intent_id from writes where action in ('create', 'update'))"
        where = [sync_intent] if with_intent_only else [
            f"({sync_intent} or (intent is null and in_source = 1 and state in ('pending', 'checked')))"]
        params: list[Any] = []
        if assets:
            where.append(f"asset_key in ({self._in(assets)})")
            params += list(assets)
        sql = (f"select asset_key from assets where {' and '.join(where)} "
               "order by intent is null, cast(row_numbers as integer), asset_key")
        if limit:
            sql += f" limit {int(limit)}"
        return [row[0] for row in self.iterate(sql, params)]

    def reopenable_keys(self, *, failed_reasons: Sequence[str] = (), reasons: Sequence[str] = (),
                        assets: Sequence[str] = (), never: Sequence[str] = ()) -> list[str]:
        """Finished rows of the current sheet that match any of: failed with one of failed_reasons, finished
        with one of reasons, or one of assets; rows finished with a reason in `never` excepted."""
        clauses, params = [], []
        if failed_reasons:
            clauses.append(f"(state = 'failed' and reason in ({self._in(failed_reasons)}))")
            params += list(failed_reasons)
        if reasons:
            clauses.append(f"reason in ({self._in(reasons)})")
            params += list(reasons)
        if assets:
            clauses.append(f"asset_key in ({self._in(assets)})")
            params += list(assets)
        if not clauses:
            return []
        finished = ", ".join(f"'{state}'" for state in FINAL_STATES)
        excepted = self._in(never) or "''"
        return [row[0] for row in self.iterate(
            f"select asset_key from assets where in_source = 1 and intent is null and state in ({finished}) "
            f"and coalesce(reason, '') not in ({excepted}) and ({' or '.join(clauses)})", [*never, *params])]

    def find_asset(self, text: str) -> Row | None:
        """The asset row named by text: its id in any case, 'row:N' for the row now on sheet row N (rows whose id
        is unusable are keyed by their content, issue #17), its key, or the id exactly as the sheet wrote it."""
        text = text.strip()
        number = text[4:]
        if text[:4].lower() == "row:" and number.isascii() and number.isdigit():
            # row_numbers is '5', or '5,9' for an asset on two rows; rows gone from the sheet keep stale numbers.
            rows = self.query("select * from assets where in_source = 1 and instr(',' || row_numbers || ',', ?) > 0 "
                              "order by asset_key limit 1", [f",{int(number)},"])
            if rows:
                return rows[0]
        for sql, value in (("select * from assets where asset_key = ?", text.lower()),
                           ("select * from assets where asset_key = ?", text),
                           ("select * from assets where asset_id = ? order by asset_key limit 1", text)):
            rows = self.query(sql, [value])
            if rows:
                return rows[0]
        return None
