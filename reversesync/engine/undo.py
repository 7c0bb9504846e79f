"""`undo RUN`: put Iconik back as it was before a live run, from the write log (issues #12, #15).

- Every write RUN recorded (its re-sends, and the writes a later run settled for it) is undone, newest first, so
  undoing runs newest first puts Iconik back as it was before the oldest. A write still unsettled is settled
  first, as resume would.
- The times only are restored, by a PATCH of the two times; deletes are soft. A segment that differs in any field
  from what reversesync left there is left alone (rules/undo.py decides, from a fresh read by id).
- A create is undone by deleting every live segment carrying its marker, once its settle time has passed.
- A dry undo reads and plans: it changes no row, no logged write, and no other run's status.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from .. import errors
from ..iconik import READ_ROLES
from ..ledger import Row
from ..rules import ms, span
from ..rules.undo import Step, blocking_step, counts_for_undo, create_copy_step, expected_after, update_step
from ..types import (
    APPLIED,
    CREATE,
    DELETE,
    DUPLICATED,
    FAILED,
    NOT_APPLIED,
    PENDING_WRITE,
    REPAIR_DELETE,
    RESTORE,
    SKIPPED,
    SYNC_ACTIONS,
    UNDO_ACTIONS,
    UPDATE,
    Intent,
    Json,
    Kind,
    Write,
    WriteChange,
)
from .machinery import DecideAgain, Machinery

UNDO_ROLES = ("can_delete_segments", "can_write_segments")
# Reads and writes of one row decided again (after refusals or changes), at most.
MAX_DECISIONS = 12


@dataclasses.dataclass
class Outcome:
    """One row's result in this leg of an undo or repair, for the plan and the summary the CLI prints."""

    asset_id: str
    row_numbers: str
    what: str                 # would delete / deleted / restored / left alone / failed ...
    text: str


class Reverting(Machinery):
    """What an undo and a repair share: the outcomes they report, how they leave or fail a row."""

    mode = "undo"
    write_roles: tuple[str, ...] = ()
    thread_name = "undo"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: list[Outcome] = []

    def preflight(self) -> Json:
        """The token's user, after checking its roles: AuthError names the missing ones."""
        return self.check_roles(READ_ROLES + (self.write_roles if self.options.live else ()))

    def label(self) -> str:
        return f"{self.mode}, {'live' if self.options.live else 'dry'}"

    def result_mode(self) -> str:
        return self.mode

    def unfinished_writes(self) -> int:
        return len(self.ledger.keys_holding_intent(UNDO_ACTIONS + (REPAIR_DELETE,)))

    def fail_row(self, key: str, run_id: int, exc: BaseException) -> None:
        self.fail(key, run_id, "internal_error", exc)

    def note(self, row: Row, what: str, text: str) -> None:
        with self._lock:
            self.outcomes.append(Outcome(row["asset_id"], row["row_numbers"], what, text))

    def leave(self, row: Row, run_id: int, text: str) -> None:
        """Record on the row that this run left it as it is, without moving it (a dry run records nothing)."""
        if self.options.live:
            self.ledger.move(row["asset_key"], row["state"], run_id=run_id, done=True, kind=self.kind,
                             detail=f"{self.mode}: {text}")
        else:
            self.ledger.mark_rows_done(run_id, [row["asset_key"]])

    @property
    def kind(self) -> str:
        return Kind.UNDO if self.mode == "undo" else Kind.REPAIR

    def fail(self, key: str, run_id: int, reason: str, exc: BaseException) -> None:
        """The undo or repair of this row failed: running the same command again retries it.

        An open write stays open (it may have been sent: the next undo, repair or run settles it, issue #15),
        and a dry run changes no row: it only says so."""
        row = self.ledger.asset(key)
        assert row is not None, f"a row of the run {key} is in the ledger"
        reason = f"{self.mode}_failed" if reason != "internal_error" else reason
        message = getattr(exc, "message", "") or str(exc)
        self.note(row, "failed", message)
        if not self.options.live:
            self.ledger.mark_rows_done(run_id, [key])
            return
        self.ledger.move(key, FAILED, run_id=run_id, done=True, kind=Kind.FAILED, reason=reason,
                         detail=f"{self.mode} failed: {message}"[:500], last_error=str(exc)[:500],
                         http_status=getattr(exc, "status", None),
                         reason_text=f"{self.mode} failed ({message}); run the same {self.mode} command again.")


class Undo(Reverting):
    """`undo RUN`: every write RUN logged, newest first, undone where a fresh GET shows reversesync's write still
    there as it left it."""

    mode = "undo"
    write_roles = UNDO_ROLES

    def select(self, run_id: int) -> None:
        target = self.options.undo or 0
        chosen = []
        for key in self.ledger.assets_written_by_run(target, self.options.assets):
            writes = [w for w in self.ledger.writes_of_asset(key) if w.run_id == target and counts_for_undo(w)]
            # A create undone already is looked at again if it was ever lost: a copy may have landed since.
            if any(w.undone_by is None or (w.action == CREATE and w.lost) for w in writes):
                chosen.append(key)
        self.ledger.select_rows(run_id, chosen)

    def process(self, key: str, run_id: int) -> float | None:
        try:
            self._undo_row(key, run_id)
        except (errors.TransientError, errors.TerminalError) as exc:
            self.fail(key, run_id, "undo_failed", exc)
        return None

    def _undo_row(self, key: str, run_id: int) -> None:
        target = self.options.undo or 0
        self._settle_open_write(key, run_id)
        writes = self.ledger.writes_of_asset(key)
        step = blocking_step(writes, target, self.ledger.open_write(key))
        if step is not None:
            return self._finish(key, run_id, step, [])
        done: list[tuple[Write, Step]] = []
        for write in reversed([w for w in writes if w.run_id == target and w.action in SYNC_ACTIONS
                               and counts_for_undo(w)]):
            if write.action == UPDATE and write.undone_by is not None:
                continue
            step = self._undo_update(key, run_id, write) if write.action == UPDATE else \
                self._undo_create(key, run_id, write)
            if step.reason != "undone" or step.action:
                # A write left as it is (or, in a plan, one still to undo) stands over the older ones.
                return self._finish(key, run_id, step, done)
            done.append((write, step))
        return self._finish(key, run_id, Step(reason="undone"), done)

    # --- an unsettled write on the row: settle it first, as resume would ------------------------------

    def _settle_open_write(self, key: str, run_id: int) -> None:
        write = self.ledger.open_write(key)
        if write is None or (write.action in SYNC_ACTIONS and write.run_id != self.options.undo):
            return  # another run's: blocking_step names it
        row = self.ledger.asset(key) or {}
        if not self.options.live:
            self.note(row, "would re-check", f"{write.action} of run {write.run_id} has an unknown outcome; it is "
                                             "re-checked first")
            return
        self.wait_out(key, write.sent_at)
        if write.action in UNDO_ACTIONS + (REPAIR_DELETE,):
            # This undo's own write, sent before a kill or a lost answer: nothing is assumed; the row is decided
            # again from fresh reads, where a delete or restore that landed reads as done.
            segment = self.read_segment(key, write.segment_id or "")
            did_land = segment is None if write.action != RESTORE else \
                segment is not None and span(segment) == (write.start_ms, write.end_ms)
            self.settle_own(key, run_id, write.intent_id, APPLIED if did_land else NOT_APPLIED, self.kind,
                            "a write of this undo, settled by a re-check")
            return
        try:
            landed = self._find_landed(key, write)
            # What reversesync left is what it sent, never this read (a person may have edited it since).
            change = WriteChange(write.intent_id, APPLIED if landed else NOT_APPLIED,
                                 after=expected_after(write) if landed else None,
                                 segment_id=landed["id"] if landed else None)
        except errors.Duplicated:
            change = WriteChange(write.intent_id, DUPLICATED)
        self.ledger.move(key, self._state(key), run_id=run_id, kind=self.kind, intent=None, writes=[change],
                         detail=f"undo: run {write.run_id}'s unsettled {write.action} re-checked ({change.outcome})")

    def _find_landed(self, key: str, write: Write) -> Json | None:
        if write.action == CREATE:
            copies = self._marked(key, write)
            if len(copies) > 1:
                raise errors.Duplicated(copies)
            return copies[0] if copies else None
        segment = self.read_segment(key, write.segment_id or "")
        return segment if segment is not None and span(segment) == (write.start_ms, write.end_ms) else None

    def _marked(self, key: str, write: Write) -> list[Json]:
        """Every live segment of the asset carrying the create's marker, each read by id (fresh).

        The list is read only when more than one copy can exist: an answer to the write was lost (a re-send
        carries the same marker), or it never settled. A create answered 201 the one time it went out left one
        segment, the one it names."""
        ids = [write.segment_id] if write.segment_id else []
        if write.marker and (write.lost or write.outcome in (PENDING_WRITE, DUPLICATED) or not ids):
            try:
                listed = self.live_generic(key)
            except errors.NotFound:
                listed = []  # the asset is gone, and every segment with it
            ids += [s["id"] for s in listed if s.get("external_id") == write.marker and s["id"] not in ids]
        found = (self.read_segment(key, segment_id) for segment_id in ids if segment_id not in self.gone(key))
        return [segment for segment in found if segment is not None and segment.get("asset_id", key) == key]

    # --- undoing one write --------------------------------------------------------------------------

    def _undo_update(self, key: str, run_id: int, write: Write) -> Step:
        target = self.options.undo or 0
        while True:
            if self.attempt("decision", key) > MAX_DECISIONS:
                raise errors.ServerError("PATCH", key, 409, "the segment kept changing under reversesync")
            current = self.read_segment(key, write.segment_id or "")
            step = update_step(write, current, target)
            if step.action is None:
                if step.reason == "undone" and self.options.live:
                    self.ledger.move(key, self._state(key), run_id=run_id, kind=Kind.UNDO, detail=f"undo: {step.text}",
                                     writes=[WriteChange(write.intent_id, undone_by=run_id)])
                return step
            if not self.options.live or current is None or step.times is None:
                return step  # the plan: older writes wait for this one
            intent = Intent(uuid.uuid4().hex, RESTORE, "PATCH", segment_id=write.segment_id, undoes=write.id,
                            before=current, start_ms=step.times[0], end_ms=step.times[1])
            try:
                answer = self.write_once(key, run_id, intent, Kind.UNDO, self.client.patch_segment_times, key,
                                         write.segment_id, *step.times)
            except DecideAgain:
                continue
            if answer is None:  # 404: gone meanwhile; decided again, it reads as nothing to restore
                continue
            self.settle_own(key, run_id, intent.intent_id, APPLIED, Kind.UNDO, f"restored segment {write.segment_id}",
                            after=answer, more=[WriteChange(write.intent_id, undone_by=run_id)])
            try:
                self.check_patch_kept(current, answer)
            except errors.PatchReplaced:  # the run stops here: the summary still says what this row got
                self.note(self.ledger.asset(key) or {}, "restored", f"segment {write.segment_id} to "
                                                                    f"{ms(*step.times)}")
                raise
            return Step(reason="undone", text=f"restored segment {write.segment_id} to its times from before run "
                                              f"{target} ({ms(*step.times)}).")

    def _undo_create(self, key: str, run_id: int, write: Write) -> Step:
        target = self.options.undo or 0
        if write.lost or write.outcome == PENDING_WRITE:
            self.wait_out(key, write.sent_at)  # a copy may still land: look once it has settled
        left, deleted = [], []
        for found in self._marked(key, write):
            copy: Json | None = found
            while copy is not None:
                step = create_copy_step(write, copy, target)
                if step.action is None:
                    left.append(step.text)
                    break
                if not self.options.live:
                    self.note(self.ledger.asset(key) or {}, f"would {step.action}", step.text)
                    break
                intent = Intent(uuid.uuid4().hex, DELETE, "DELETE", segment_id=copy["id"], undoes=write.id,
                                before=copy)
                try:
                    answer = self.write_once(key, run_id, intent, Kind.UNDO, self.client.delete_segment, key,
                                             copy["id"])
                except DecideAgain:
                    copy = self.read_segment(key, copy["id"])  # refused unapplied: decided again from a fresh read
                    continue
                if answer is not None:  # None: a 404, already gone
                    self.settle_own(key, run_id, intent.intent_id, APPLIED, Kind.UNDO, f"deleted segment {copy['id']}")
                    deleted.append(copy["id"])
                self.forget_segment(key, copy["id"])
                break
        if left:
            return Step(reason="changed_since", text=" ".join(left))
        if self.options.live:
            self.ledger.move(key, self._state(key), run_id=run_id, kind=Kind.UNDO,
                             writes=[WriteChange(write.intent_id, undone_by=run_id)],
                             detail=f"undo: run {target}'s create undone")
        what = f"deleted segment{'s' if len(deleted) > 1 else ''} {', '.join(deleted)}" if deleted else \
            f"segment {write.segment_id or 'of ' + (write.marker or 'it')} is already deleted"
        return Step(reason="undone", text=f"{what}, which run {target} created.")

    # --- the row's end ----------------------------------------------------------------------------

    def _finish(self, key: str, run_id: int, step: Step, done: list[tuple[Write, Step]]) -> None:
        row = self.ledger.asset(key)
        assert row is not None, f"a row of the run {key} is in the ledger"
        if step.keep:
            if step.reason != "nothing_to_undo":
                self.note(row, "left alone", step.text)
            self.leave(row, run_id, f"left alone: {step.text}")
            return
        if not self.options.live:
            self.ledger.mark_rows_done(run_id, [key])
            if step.action:
                self.note(row, f"would {step.action}", step.text)
            elif step.reason != "undone":
                self.note(row, "would leave", step.text)
            elif not any(o.asset_id == row["asset_id"] for o in self.outcomes):
                self.note(row, "already undone", " ".join(s.text for _, s in done) or "nothing left to undo")
            return
        texts = [s.text for _, s in done if s.text]
        if step.reason != "undone":
            texts.append(step.text)
        created = any(write.action == CREATE for write, _ in done) and step.reason == "undone"
        target = self.options.undo
        text = " ".join(texts)
        reason_text = (f"Undone (run {target}): {text} A plain run leaves it alone; run --recheck undone, or a load "
                       "that changes the row, brings it back.") if step.reason == "undone" else text
        self.ledger.move(key, SKIPPED, run_id=run_id, done=True, kind=Kind.UNDO, intent=None, reason=step.reason,
                         reason_text=reason_text, action=None, last_error=None,
                         segment_id=None if created else row["segment_id"], http_status=None,
                         detail=f"undo of run {target}: {text or step.reason}")
        self.note(row, step.reason or "undone", text)
