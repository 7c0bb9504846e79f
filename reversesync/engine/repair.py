"""`verify --repair`: remove the duplicates a lost answer left (issue #12), keeping one segment of reversesync's on
each asset and deleting (softly) each copy a fresh GET by id shows equal to it (rules/undo.py decides)."""

from __future__ import annotations

import uuid

from .. import errors, rules
from ..ledger import Row
from ..rules import ms, span
from ..rules.undo import duplicate_problem, repair_choice
from ..types import (
    APPLIED,
    CHECKED,
    CREATE,
    CREATED,
    DUPLICATED,
    FAILED,
    NOT_APPLIED,
    PENDING,
    REPAIR_DELETE,
    SYNC_ACTIONS,
    UNDO_ACTIONS,
    Intent,
    Json,
    Kind,
    WriteChange,
)
from .machinery import DecideAgain, Park
from .undo import Reverting

REPAIR_ROLES = ("can_delete_segments",)


class Repair(Reverting):
    """`verify --repair`: on each asset, keep one segment of reversesync's and delete the copies equal to it."""

    mode = "repair"
    write_roles = REPAIR_ROLES

    def select(self, run_id: int) -> None:
        busy = set(self.ledger.keys_holding_intent(SYNC_ACTIONS + UNDO_ACTIONS))
        self.ledger.select_rows(run_id, [key for key in self.ledger.rows_to_repair() if key not in busy])

    def process(self, key: str, run_id: int) -> float | None:
        write = self.ledger.open_write(key)
        if write is not None and write.action == REPAIR_DELETE and self.options.live:
            self.wait_out(key, write.sent_at)
            gone = self.read_segment(key, write.segment_id or "") is None
            self.settle_own(key, run_id, write.intent_id, APPLIED if gone else NOT_APPLIED, Kind.REPAIR,
                            "a delete of this repair, settled by a re-check")
        try:
            keep, removed = self._repair(key, run_id)
        except DecideAgain:
            raise Park(self.clock.time()) from None  # decided again from a fresh list and fresh GETs
        except errors.NotFound:
            keep, removed = None, []  # the asset is gone: nothing of reversesync's is left to repair
        except (errors.TransientError, errors.TerminalError) as exc:
            self.fail(key, run_id, "repair_failed", exc)
            return None
        self._finish(key, run_id, keep, removed)
        return None

    def _repair(self, key: str, run_id: int) -> tuple[Json | None, list[str]]:
        row = self.ledger.asset(key) or {}
        listed = [s for s in self.live_generic(key) if rules.is_ours(s)]
        recorded_id = row["segment_id"] or row["done_segment_id"]
        if recorded_id and recorded_id not in {s.get("id") for s in listed}:
            recorded = self.read_segment(key, recorded_id)  # the list trails writes: the recorded one is read by id
            if recorded is not None and rules.is_ours(recorded):
                listed.append(recorded)
        keep, extras = repair_choice(listed, recorded_id)
        if keep is None or not extras:
            return keep, []
        keep = self.read_segment(key, keep["id"]) or keep  # compared as it is now, not as the list shows it
        removed = []
        for extra in extras:
            fresh = self.read_segment(key, extra["id"])
            problem = duplicate_problem(fresh, keep)
            if problem == "gone":
                continue
            if problem:
                self.note(row, "left alone", f"segment {extra['id']}: {problem}")
                continue
            if not self.options.live:
                self.note(row, "would delete", f"duplicate {extra['id']} {ms(*span(extra))}, keeping {keep['id']}")
                continue
            intent = Intent(uuid.uuid4().hex, REPAIR_DELETE, "DELETE", segment_id=extra["id"], before=fresh)
            answer = self.write_once(key, run_id, intent, Kind.REPAIR, self.client.delete_segment, key, extra["id"])
            self.forget_segment(key, extra["id"])
            if answer is None:
                continue  # a 404: gone already; write_once settled it as not applied
            self.settle_own(key, run_id, intent.intent_id, APPLIED, Kind.REPAIR,
                            f"deleted duplicate segment {extra['id']}, keeping {keep['id']}")
            removed.append(extra["id"])
            self.note(row, "deleted", f"duplicate {extra['id']} {ms(*span(extra))}, kept {keep['id']}")
        return keep, removed

    def _finish(self, key: str, run_id: int, keep: Json | None, removed: list[str]) -> None:
        row: Row = self.ledger.asset(key) or {}
        if not self.options.live:
            self.ledger.mark_rows_done(run_id, [key])
            return
        duplicated = next((w for w in reversed(self.ledger.writes_of_asset(key))
                           if w.action == CREATE and w.outcome == DUPLICATED), None)
        if keep is None or row["state"] != FAILED or duplicated is None:
            if removed:
                self.ledger.move(key, row["state"], run_id=run_id, done=True, kind=Kind.REPAIR,
                                 detail=f"repair: {len(removed)} duplicate{'s' if len(removed) != 1 else ''} removed")
            else:
                self.ledger.mark_rows_done(run_id, [key])
            return
        # A row failed as duplicated: one segment is left, so it ends as created (or, if the sheet has moved
        # on since, goes back to pending for the next run to decide), and its write is applied once.
        same = span(keep) == (row["time_start_ms"], row["time_end_ms"])
        fields = dict(intent=None, reason=None, action="create", segment_id=keep["id"], done_action="create",
                      done_segment_id=keep["id"], done_run_id=duplicated.run_id, done_before=None, last_error=None,
                      done_start_ms=span(keep)[0], done_end_ms=span(keep)[1],
                      http_status=None, reason_text=f"created segment {keep['id']} {ms(*span(keep))}; its duplicates "
                                                    f"were removed by verify --repair (run {run_id}).")
        # failed -> checked -> created: the state table's way out of failed, in one transaction.
        self.ledger.move_many([(key, CHECKED, {}, Kind.REPAIR, "repair: one segment of reversesync's is left"),
                               (key, CREATED if same else PENDING, fields, Kind.REPAIR,
                                f"repair: kept segment {keep['id']}, duplicates removed")], run_id=run_id, done=True,
                              writes=[WriteChange(duplicated.intent_id, APPLIED, segment_id=keep["id"])])
        self.note(row, "created", f"kept {keep['id']} {ms(*span(keep))}")
