"""The write log (issue #15): every write reversesync makes, logged before it goes on the wire, with the
moment it was sent and what came of it; the row holding a write open names it in assets.intent."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

from ..errors import LedgerError
from ..types import PENDING_WRITE, Intent, Json, Write, WriteChange
from .base import Row, now_iso
from .rows import Rows


class WriteLog(Rows):
    """Intents, sends and outcomes."""

    def record_intent(self, key: str, intent: Intent, *, run_id: int, to_state: str, kind: str, detail: str,
                      **fields: Any) -> Write:
        """Log an Intent (a write about to be sent) and tie the row to it, with the row's move, in one
        transaction; returns the logged Write.

        An intent_id already logged is a re-send of that write: it is pending again, keeps its owner (the run
        that first recorded it) and its marker."""
        stamp = now_iso()
        with self._writing():
            self._check_lock_held()
            known = self.db.execute("select id from writes where intent_id = ?", [intent.intent_id]).fetchone()
            if known:
                self.db.execute("update writes set outcome = ?, settled_at = null, segment_id = coalesce(?, "
                                "segment_id), before = coalesce(?, before) where id = ?",
                                [PENDING_WRITE, intent.segment_id, _json(intent.before), known[0]])
            else:
                self.db.execute(
                    "insert into writes (intent_id, run_id, asset_key, action, method, segment_id, marker, undoes, "
                    "before, start_ms, end_ms, outcome, recorded_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [intent.intent_id, run_id, key, intent.action, intent.method, intent.segment_id, intent.marker,
                     intent.undoes, _json(intent.before), intent.start_ms, intent.end_ms, PENDING_WRITE, stamp])
            self._move_in_transaction([(key, to_state, dict(fields, intent=intent.intent_id), kind, detail)], run_id,
                                      False, stamp)
        logged = self.write(intent.intent_id)
        assert logged is not None  # just written, in this transaction
        return logged

    def mark_sent(self, key: str) -> None:
        """Record that the row's open write goes on the wire now; its settle time counts from here.

        Also the last check before a write that this process still holds the lock (issue #10)."""
        with self._writing():
            self._check_lock_held()
            self.db.execute("update writes set sent_at = ? where intent_id = (select intent from assets where "
                            "asset_key = ?)", [time.time(), key])

    def _change_write(self, change: WriteChange, stamp: str) -> None:
        found = self.db.execute("update writes set outcome = coalesce(?, outcome), after = coalesce(?, after), "
                                "segment_id = coalesce(?, segment_id), undone_by = coalesce(?, undone_by), "
                                "lost = max(lost, ?), settled_at = case when ? is null then settled_at else ? end "
                                "where intent_id = ?",
                                [change.outcome, _json(change.after), change.segment_id, change.undone_by,
                                 int(change.lost), change.outcome, stamp, change.intent_id]).rowcount
        if not found:
            raise LedgerError(f"no write {change.intent_id} in the write log")

    def write(self, intent_id: str) -> Write | None:
        """The logged write with this intent id, or None."""
        rows = self.query("select * from writes where intent_id = ?", [intent_id])
        return write_of(rows[0]) if rows else None

    def open_write(self, key: str) -> Write | None:
        """The write the row holds open (its outcome not settled yet), or None."""
        rows = self.query("select w.* from writes w join assets a on a.intent = w.intent_id where a.asset_key = ?",
                          [key])
        return write_of(rows[0]) if rows else None

    def writes_of_run(self, run_id: int, assets: Sequence[str] = ()) -> list[Write]:
        """Every write a run recorded (its re-sends included), newest first; assets: only these keys."""
        where, params = "", [run_id, *assets]
        if assets:
            where = f" and asset_key in ({self._in(assets)})"
        return [write_of(row) for row in self.query(f"select * from writes where run_id = ?{where} order by id desc",
                                                    params)]

    def writes_of_asset(self, key: str) -> list[Write]:
        """Every write logged for one asset, oldest first."""
        return [write_of(row) for row in self.query("select * from writes where asset_key = ? order by id", [key])]

    def assets_written_by_run(self, run_id: int, assets: Sequence[str] = ()) -> list[str]:
        """Keys of the assets a run logged writes for, in sheet order."""
        where, params = "", [run_id, *assets]
        if assets:
            where = f" and a.asset_key in ({self._in(assets)})"
        return [row[0] for row in self.iterate(
            "select a.asset_key from assets a where a.asset_key in (select asset_key from writes where run_id = ?)"
            f"{where} order by cast(a.row_numbers as integer), a.asset_key", params)]

    def keys_holding_intent(self, actions: Sequence[str]) -> list[str]:
        """Keys of the rows holding open a write whose action is one of actions."""
        return [row[0] for row in self.iterate(
            "select a.asset_key from assets a join writes w on w.intent_id = a.intent where w.action in "
            "(select value from json_each(?))", [json.dumps(list(actions))])]

    def put_updates(self) -> list[tuple[str, str, str, int]]:
        """The segments 0.1 and 0.2 updated by PUT (which reset fields they did not know), in sheet order:
        (asset_id, row_numbers, segment_id, run_id)."""
        return [(row[0], row[1], row[2], row[3]) for row in self.iterate(
            "select a.asset_id, a.row_numbers, w.segment_id, w.run_id from writes w join assets a on "
            "a.asset_key = w.asset_key where w.method = 'PUT' and w.outcome = 'applied' "
            "order by cast(a.row_numbers as integer), a.asset_key, w.id")]

    def last_unknown_outcome_at(self) -> float | None:
        """Epoch seconds of the latest send of a write whose answer was lost, or that was in flight when its run
        was killed (either may still land late), or None."""
        at = self.query("select max(sent_at) as at from writes where lost = 1 or outcome = 'pending'")[0]["at"]
        return None if at is None else float(at)


def _json(value: Json | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def write_of(row: Row) -> Write:
    """A Write from its writes row."""
    fields = {field.name for field in dataclasses.fields(Write)}
    values = {name: value for name, value in row.items() if name in fields}
    for name in ("before", "after"):
        values[name] = json.loads(values[name]) if values[name] else None
    values["lost"] = bool(values.get("lost"))
    return Write(**values)
