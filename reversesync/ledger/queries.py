"""Read-only questions the reports, verify, undo and repair ask of the ledger: the SQL stays here."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from .base import Row
from .runs import Runs

# The columns of `report --csv`, in order.
REPORT_COLUMNS = ("asset_id", "row_numbers", "title", "time_start_ms", "time_end_ms", "state", "reason",
                  "reason_text", "action", "segment_id", "attempts", "http_status", "last_error", "in_source",
                  "updated_at")


class Queries(Runs):
    """Questions about the rows as a whole."""

    def report_rows(self, state: str | None = None, reasons: Sequence[str] = ()) -> Iterator[tuple[Any, ...]]:
        """One tuple of REPORT_COLUMNS per asset (or per asset in state, and with one of reasons), in sheet order."""
        conditions, params = [], []
        if state:
            conditions.append("state = ?")
            params.append(state)
        if reasons:
            conditions.append(f"reason in ({self._in(reasons)})")
            params += reasons
        where = f"where {' and '.join(conditions)}" if conditions else ""
        yield from self.iterate(f"select {', '.join(REPORT_COLUMNS)} from assets {where} "
                                "order by cast(row_numbers as integer), asset_key", params)

    def report_rows_of(self, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """REPORT_COLUMNS and sync_retries of the assets keys names, in sheet order (report --needs-person). The
        keys go in as one JSON array: a sheet can need more of them than SQLite allows parameters."""
        yield from self.iterate(f"select {', '.join(REPORT_COLUMNS)}, sync_retries from assets where asset_key in "
                                "(select value from json_each(?)) order by cast(row_numbers as integer), asset_key",
                                [json.dumps(list(keys))])

    def removed_from_source(self) -> int:
        """How many assets the source no longer holds (kept, left out of runs)."""
        return int(self.query("select count(*) as n from assets where in_source = 0")[0]["n"])

    def checked_by_state_and_action(self) -> list[Row]:
        """(state, action, reason, n) over the rows of the current sheet any run has touched: the success bars
        (the reason tells the rows an undo reverted or left from the sync's own)."""
        return self.query(
            "select state, action, reason, count(*) as n from assets where in_source = 1 and asset_key in "
            "(select asset_key from events where run_id is not null) group by state, action, reason")

    def live_writes_undone(self) -> dict[int, tuple[int, int, list[int]]]:
        """{live run id: (writes of it that landed, how many of them an undo reverted, the undo runs)}, from the
        write log: a run's writes are undone even where a later run wrote the row again."""
        found = {}
        for run_id, landed, undone, undo_runs in self.iterate(
                "select w.run_id, count(*), count(w.undone_by), group_concat(distinct w.undone_by) from writes w "
                "join runs r on r.id = w.run_id and r.mode = 'live' where w.action in ('create', 'update') and "
                "w.outcome in ('applied', 'duplicated') group by w.run_id"):
            found[int(run_id)] = (int(landed), int(undone),
                                  sorted(int(n) for n in str(undo_runs).split(",")) if undo_runs else [])
        return found

    def rows_to_verify(self) -> list[Row]:
        """Rows reversesync wrote or found in sync, and rows an undo reverted (whose leftovers verify looks for)."""
        return self.query("select * from assets where in_source = 1 and (state in ('created', 'updated') or "
                          "(state = 'skipped' and reason in ('in_sync', 'undone'))) "
                          "order by cast(row_numbers as integer)")

    def rows_to_repair(self) -> list[str]:
        """Rows whose asset may hold a segment of reversesync's twice: written by a create, or failed
        as duplicated, in sheet order."""
        return [row[0] for row in self.iterate(
            "select asset_key from assets where done_action = 'create' or state = 'created' or "
            "(state = 'failed' and reason = 'duplicated') order by cast(row_numbers as integer), asset_key")]

    def status_rows(self) -> Iterator[tuple[Any, ...]]:
        """One tuple per asset still in the source, in sheet order: asset_id, row_numbers, state, reason,
        reason_text, action, segment_id, last_run, updated_at. last_run is the latest run that touched the row
        (its events), or the run that wrote it (done_run_id) where that is later or no event names a run."""
        yield from self.iterate(
            "select a.asset_id, a.row_numbers, a.state, a.reason, a.reason_text, a.action, a.segment_id, "
            "nullif(max(coalesce(e.last_run, 0), coalesce(a.done_run_id, 0)), 0), a.updated_at "
            "from assets a left join (select asset_key, max(run_id) as last_run from events "
            "where run_id is not null group by asset_key) e on e.asset_key = a.asset_key "
            "where a.in_source = 1 order by cast(a.row_numbers as integer), a.asset_key")
