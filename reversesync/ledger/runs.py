"""Runs and the event log: a run is recorded before its first request and closed (or left to resume) after its
last; its rows' events say what it did, even when it was killed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..types import Counts
from .base import Row, now_iso
from .writelog import WriteLog

# A run that neither finished nor was closed: `resume` may continue it.
UNFINISHED = "('running', 'interrupted', 'aborted')"
_LIVE_UNDO = "(mode in ('undo', 'repair') and json_extract(options, '$.live'))"


class Runs(WriteLog):
    """Runs, their rows' events, and what each run did."""

    def start_run(self, mode: str, options: dict[str, Any]) -> int:
        """Record a run before its first request, so a kill at any instant leaves one to resume (issue #10)."""
        with self._writing():
            cursor = self.db.execute(
                "insert into runs (mode, options, started_at, status) values (?, ?, ?, 'running')",
                [mode, json.dumps(options, sort_keys=True), now_iso()])
            return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, counts: Counts, requests: int = 0, throttled: int = 0,
                   writes: int = 0, elapsed: float = 0.0) -> None:
        """Close a run (or one leg of it, before a resume); figures add up over the legs."""
        with self._writing():
            self.db.execute(
                "update runs set status = ?, finished_at = ?, counts = ?, requests = requests + ?, "
                "throttled = throttled + ?, writes = writes + ?, elapsed_seconds = elapsed_seconds + ? "
                "where id = ?",
                [status, now_iso(), json.dumps(_stored_counts(counts), sort_keys=True), requests, throttled, writes,
                 elapsed, run_id])

    def set_run_status(self, run_id: int, status: str) -> None:
        """Change a closed run's status only (its figures stay): 'failed' closes it for good."""
        with self._writing():
            self.db.execute("update runs set status = ? where id = ?", [status, run_id])

    def reopen_run(self, run_id: int) -> None:
        with self._writing():
            self.db.execute("update runs set status = 'running', finished_at = null where id = ?", [run_id])

    def run(self, run_id: int) -> Row | None:
        rows = self.query("select * from runs where id = ?", [run_id])
        return rows[0] if rows else None

    def runs(self, mode: str | None = None) -> list[Row]:
        """Every run (of one mode), oldest first."""
        if mode:
            return self.query("select * from runs where mode = ? order by id", [mode])
        return self.query("select * from runs order by id")

    def supersede_unfinished_runs(self, but: int | None = None) -> None:
        """A new writing run replaces any unfinished run or dry undo: `resume` then continues the new one.

        An unfinished live undo or repair is never superseded: it blocks writing commands until resumed."""
        with self._writing():
            self.db.execute(f"update runs set status = 'superseded' where status in {UNFINISHED} and id != ? and "
                            f"not {_LIVE_UNDO}", [but or 0])

    def unfinished_run(self) -> Row | None:
        """The run `resume` continues: the newest unfinished live undo or repair (interrupted, aborted, refused at
        preflight or killed), else the newest unfinished run of any kind; None when every run is closed."""
        return self.unfinished_undo() or next(iter(self.query(
            f"select * from runs where status in {UNFINISHED} order by id desc limit 1")), None)

    def unfinished_undo(self) -> Row | None:
        """The newest live undo or repair that did not finish, or None: it must be resumed before any write."""
        return next(iter(self.query(f"select * from runs where status in {UNFINISHED} and {_LIVE_UNDO} "
                                    "order by id desc limit 1")), None)

    def close_undone_run(self, run_id: int, assets: Sequence[str] = ()) -> None:
        """An undo of an unfinished run closes it: a resume must never redo what the undo removed (issue #15). An
        undo of some of its assets (--asset) marks those rows finished for it instead, so that a resume still
        continues its other rows."""
        with self._writing():
            if assets:
                self.db.conn.executemany("update run_rows set done = 1 where run_id = ? and asset_key = ?",
                                         [(run_id, key) for key in assets])
                return
            self.db.execute(f"update runs set status = 'undone', finished_at = coalesce(finished_at, ?) where id = ? "
                            f"and status in {UNFINISHED}", [now_iso(), run_id])

    def hold(self, kind: str, run_id: int, detail: str) -> None:
        """Stop every writing command until a person clears the hold (issue #15)."""
        with self._writing():
            self.db.execute("insert into holds (kind, run_id, at, detail) values (?, ?, ?, ?)",
                            [kind, run_id, now_iso(), detail])

    def active_hold(self) -> Row | None:
        """The oldest hold not cleared yet, or None."""
        return next(iter(self.query("select * from holds where cleared_at is null order by id limit 1")), None)

    def clear_holds(self) -> None:
        with self._writing():
            self.db.execute("update holds set cleared_at = ? where cleared_at is null", [now_iso()])

    def mark_sync_logged(self, ids_by_run: dict[str, int]) -> None:
        """Remember which runs are in the spreadsheet's Sync_Log ({sync id: run id})."""
        with self._writing():
            for sync_id, run_id in ids_by_run.items():
                self.db.execute("update runs set sync_log_id = ? where id = ?", [sync_id, run_id])

    def finished_live_runs(self) -> list[tuple[Row, Counts]]:
        """Every finished live run, oldest first, with the counts it closed with."""
        return [(run, _read_counts(run["counts"])) for run in self.query(
            "select * from runs where mode = 'live' and status = 'finished' order by id")]

    # --- what each run did, from the event log (issue #11) ---------------------------------------------
    # A killed or still running run shows its work (runs.counts is written only when a run closes), and an
    # asset's history survives re-checks.

    def run_counts(self, run_id: int) -> Counts:
        """Rows by (state, reason or action) over every row this run touched (across resumes); a finished row a
        dry run only planned for counts as (its state, the plan)."""
        rows = self.query(
            "select state, coalesce(reason, action, '') as why, count(*) as n from assets where asset_key in "
            "(select asset_key from events where run_id = ?) and asset_key not in "
            "(select asset_key from plans where run_id = ?) group by state, why "
            "union all select state, plan as why, count(*) as n from plans where run_id = ? group by state, why",
            [run_id, run_id, run_id])
        counts: dict[tuple[str, str], int] = {}
        for r in rows:
            counts[(r["state"], r["why"])] = counts.get((r["state"], r["why"]), 0) + r["n"]
        return counts

    def rows_of_run(self, run_id: int) -> list[Row]:
        """The rows a run touched, as they are now, in sheet order (for --json); a finished row a dry run only
        planned for carries its plan."""
        rows = self.query(
            "select a.asset_id, a.row_numbers, a.state, a.reason, a.reason_text, a.action, a.segment_id, "
            "p.plan, p.text as plan_text from assets a left join plans p on p.run_id = ? and "
            "p.asset_key = a.asset_key where a.asset_key in (select asset_key from events where run_id = ? "
            "union select asset_key from plans where run_id = ?) order by cast(a.row_numbers as integer), "
            "a.asset_key", [run_id, run_id, run_id])
        return [{name: value for name, value in row.items() if value is not None or name not in ("plan", "plan_text")}
                for row in rows]

    def record_plan(self, run_id: int, key: str, plan: str, text: str) -> None:
        """What a dry run would do to a finished row, stored with the run; the row keeps its state and fields,
        and the run counts it as done (a resume does not take it again)."""
        with self._writing():
            self._check_lock_held()
            state = self.db.execute("select state from assets where asset_key = ?", [key]).fetchone()[0]
            self.db.execute("insert or replace into plans (run_id, asset_key, state, plan, text, at) values "
                            "(?, ?, ?, ?, ?, ?)", [run_id, key, state, plan, text, now_iso()])
            self.db.execute("update run_rows set done = 1 where run_id = ? and asset_key = ?", [run_id, key])

    def asset_events(self, key: str) -> list[Row]:
        """Every event of one asset, oldest first: at, run_id, from_state, to_state, kind, detail."""
        return self.query("select at, run_id, from_state, to_state, kind, detail from events where asset_key = ? "
                          "order by id", [key])

    def run_outcomes(self) -> dict[int, dict[str, int]]:
        """{run id: {state: assets}}: each asset a run touched, once, in the state its last event in that
        run left it (across resumes)."""
        outcomes: dict[int, dict[str, int]] = {}
        for run_id, state, n in self.iterate(
                "select e.run_id, e.to_state, count(*) from events e join "
                "(select max(id) as id from events where run_id is not null group by run_id, asset_key) last "
                "on e.id = last.id group by e.run_id, e.to_state"):
            outcomes.setdefault(run_id, {})[state] = n
        return outcomes

    def run_last_events(self) -> dict[int, str]:
        """{run id: time of its last event}."""
        return {run_id: at for run_id, at in self.iterate(
            "select run_id, max(at) from events where run_id is not null group by run_id")}


def _stored_counts(counts: Counts) -> dict[str, int]:
    """Counts as runs.counts holds them (the form 0.2 wrote too): {"state/why": n}."""
    return {f"{state}/{why}".rstrip("/"): n for (state, why), n in counts.items()}


def _read_counts(stored: str | None) -> Counts:
    counts: Counts = {}
    for key, n in json.loads(stored or "{}").items():
        state, _, why = key.partition("/")
        counts[(state, why)] = n
    return counts
