"""`undo RUN` and `verify --repair`: put Iconik back as it was before a live run, and remove the duplicates a
lost answer left, with the discipline of a run (issues #12, #15).

- Undo works from the write log, not from what a row shows now: every write RUN recorded (its re-sends and
  the writes a later run settled for it included) is undone, newest first, so undoing runs newest first puts
  Iconik back as it was before the oldest. A write still unsettled is settled first, as resume would.
- Undo restores the times only, by a PATCH of the two times, and deletes softly (soft_delete=true: a person
  can get the segment back from Iconik's bin). It never undoes over a person's change: a segment is read by
  id first, and one whose fields differ in any way from what reversesync left (its after-image; the date_*
  and user_* stamps aside) is left alone as changed_since, naming the fields.
- A create is undone by deleting every segment that carries its marker, once its settle time has passed:
  the copies a lost answer left included.
- Intent is recorded before every write and its result right after; a write refused unapplied (429, 409, a
  connection never made) is decided again from a fresh read, one whose outcome is unknown is settled after
  the settle time, never re-sent blindly.

The pure decisions come first and are tested as a table (tests/test_undo.py); the machinery follows.
"""

import dataclasses
import time
import uuid

from . import errors, rules
from .engine import DEFAULT_READ_TIMEOUT, DEFAULT_SETTLE, RowWorkers, _Again, _Stop, options_from_json
from .iconik import DEFAULT_RATE, READ_ROLES
from .ledger import CHECKED, CREATED, FAILED, PENDING, SKIPPED
from .rules import ms, span
from .types import (APPLIED, CREATE, DELETE, DUPLICATED, NOT_APPLIED, PENDING_WRITE, REPAIR_DELETE, RESTORE,
                    SYNC_ACTIONS, UNDO_ACTIONS, UPDATE, Intent, WriteChange)

UNDO_ROLES = ("can_delete_segments", "can_write_segments")
REPAIR_ROLES = ("can_delete_segments",)
# A write answered 409 (or a segment that changes between the GET and the write) is decided again, this often.
MAX_TRIES = 4
# A write answered 429 is read again and decided again after the pause, this often.
MAX_THROTTLED = 20
# Reasons an undo leaves on a row; `run --recheck REASON` brings such a row back.
UNDO_REASONS = ("undone", "changed_since", "cannot_restore", "undo_failed")
# The fields a person edits on a segment: a segment reversesync created with nothing in them, and found with
# something in one, has been touched (used where no after-image was logged: 0.1 and 0.2 creates).
PERSON_FIELDS = ("segment_text", "metadata", "segment_color", "drawing", "subclip_id", "is_internal", "shot",
                 "has_attachments", "segment_track", "person_id", "transcription")


# --- pure decisions -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Step:
    """What to do next for one row of an undo: a write ('delete' / 'restore' of segment_id), or finish with
    reason ('undone', 'changed_since', 'cannot_restore'), or leave the row as it is (keep=True, reason says
    why: 'written_later', 'unfinished_write')."""

    action: str | None = None
    reason: str | None = None
    text: str = ""
    keep: bool = False
    segment_id: str | None = None
    times: tuple | None = None      # a restore: the times to put back


def counts_for_undo(write):
    """Whether a logged write may have left something in Iconik: applied, unsettled, landed twice, or refused
    after an answer was lost (a lost write can land after any settle time)."""
    return write.outcome in (APPLIED, PENDING_WRITE, DUPLICATED) or write.lost


def blocking_step(writes, target, open_write=None):
    """The step that leaves an asset alone because another run's write stands over RUN's, or None.

    writes: the asset's logged writes, oldest first; open_write: the one the row holds open, if any."""
    mine = [w for w in writes if w.run_id == target and w.action in SYNC_ACTIONS]
    if not mine:
        return Step(keep=True, reason="nothing_to_undo", text=f"run {target} logged no write for this asset")
    if open_write is not None and open_write.action in SYNC_ACTIONS and open_write.run_id != target:
        if open_write.run_id > target:
            return Step(keep=True, reason="written_later",
                        text=f"run {open_write.run_id} wrote it again after run {target}; undo that run first")
        return Step(keep=True, reason="unfinished_write",
                    text=f"holds a write of run {open_write.run_id} whose outcome is not settled yet; finish it "
                         "first (reversesync resume, or run --live), then undo again")
    last_mine = max(w.id for w in mine)
    later = [w for w in writes if w.id > last_mine and w.run_id != target and w.action in SYNC_ACTIONS
             and w.undone_by is None and counts_for_undo(w)]
    if later:
        return Step(keep=True, reason="written_later",
                    text=f"run {later[-1].run_id} wrote it again after run {target}; undo that run first")
    return None


def differences(found, expected, aside=()):
    """'field: reversesync left X, now Y' for every field that differs (stamps and aside not compared)."""
    return [f"{name}: reversesync left {left!r}, now {now!r}"
            for name, left, now in rules.field_differences(found, expected, aside)]


def _empty(value):
    return value in (None, {}, [], "", False)


def _legacy_update_differences(write, segment):
    """0.2 kept the editable fields it knew as a before-image and no after-image: compare over those fields
    (and subclip_id), unset and empty alike, with the times it wrote."""
    expected = dict(write.before, time_start_milliseconds=write.start_ms, time_end_milliseconds=write.end_ms)
    names = [*expected, "subclip_id"]
    return [f"{name}: reversesync left {expected.get(name)!r}, now {segment.get(name)!r}" for name in names
            if not (_empty(segment.get(name)) and _empty(expected.get(name)))
            and segment.get(name) != expected.get(name)]


def update_step(write, segment, run_id):
    """The step for an update of the undone run from a fresh GET of its segment (None: gone)."""
    if segment is None:
        return Step(reason="undone", text=f"segment {write.segment_id} is gone, so there is nothing to restore.")
    if write.before is None:
        return Step(reason="cannot_restore",
                    text=f"run {run_id} updated segment {write.segment_id} before reversesync kept before-images, so "
                         "its earlier times are unknown and it cannot be restored; set it by hand in Iconik if "
                         "needed.")
    before = span(write.before)
    if write.legacy:
        problems = _legacy_update_differences(write, segment)
        restored = dict(segment, time_start_milliseconds=write.start_ms, time_end_milliseconds=write.end_ms)
        already = span(segment) == before and not _legacy_update_differences(write, restored)
    else:
        times = ("time_start_milliseconds", "time_end_milliseconds")
        problems = differences(segment, write.after or {})
        already = span(segment) == before and not differences(segment, write.after or {}, aside=times)
    if already:  # a restore whose answer was lost, or a person who put the times back
        return Step(reason="undone", text=f"segment {write.segment_id} already has its times from before run "
                                          f"{run_id} ({ms(*before)}).")
    if problems:
        return Step(reason="changed_since", text=f"segment {write.segment_id} changed since reversesync updated it "
                                                 f"({'; '.join(problems)}); left alone.")
    return Step(action=RESTORE, segment_id=write.segment_id, times=before,
                text=f"restore segment {write.segment_id} from {ms(*span(segment))} to its times from before run "
                     f"{run_id} ({ms(*before)})")


def create_copy_step(write, copy, run_id):
    """The step for one segment carrying the marker of a create of the undone run (read by id just now)."""
    if write.after:
        problems = differences(copy, write.after, aside=("id",))
    else:  # no 201 answer was ever logged: compare with what the POST carried, and nothing a person adds
        problems = []
        if copy.get("segment_type") != "GENERIC":
            problems.append(f"segment_type: now {copy.get('segment_type')!r}")
        if (write.marker and copy.get("external_id") != write.marker) or not rules.is_ours(copy):
            problems.append(f"external_id: reversesync's marker is gone, now {copy.get('external_id')!r}")
        if span(copy) != (write.start_ms, write.end_ms):
            problems.append(f"times: reversesync left {ms(write.start_ms, write.end_ms)}, now {ms(*span(copy))}")
        if copy.get("status") not in rules.LIVE_SEGMENT_STATUSES:
            problems.append(f"status: now {copy.get('status')!r}")
        problems += [f"{name}: now {copy.get(name)!r}" for name in PERSON_FIELDS if not _empty(copy.get(name))]
    if problems:
        return Step(reason="changed_since", text=f"segment {copy['id']} changed since reversesync created it "
                                                 f"({'; '.join(problems)}); left alone.")
    return Step(action=DELETE, segment_id=copy["id"],
                text=f"delete segment {copy['id']} {ms(*span(copy))}, which run {run_id} created")


def repair_choice(marked, recorded_id):
    """(the segment to keep, the others) among the marked GENERIC segments of one asset: the one the ledger
    records if it is there, else the oldest (by date_created, then id)."""
    if not marked:
        return None, []
    ordered = sorted(marked, key=lambda s: (s.get("date_created") or "", s.get("id") or ""))
    keep = next((s for s in ordered if s.get("id") == recorded_id), ordered[0])
    return keep, [s for s in ordered if s is not keep]


def duplicate_problem(fresh, keep):
    """Why a duplicate just read by id must not be deleted, or None when it may: only a copy equal to the one
    kept (its id and stamps aside) is a duplicate (issue #15)."""
    if rules.is_absent(fresh):
        return "gone"
    if fresh.get("segment_type") != "GENERIC" or not rules.is_ours(fresh):
        return f"no longer a GENERIC segment of reversesync's (external_id {fresh.get('external_id')!r})"
    if fresh.get("subclip_id"):
        return f"backs SUBCLIP {fresh['subclip_id']}"
    found = rules.field_differences(fresh, keep, aside=("id",))
    if found:
        named = ", ".join(f"{name} {now!r}" for name, _, now in found)
        return f"differs from segment {keep['id']}, which is kept ({named})"
    return None


# --- the machinery --------------------------------------------------------------------------------------


@dataclasses.dataclass
class UndoOptions:
    """An undo's or a repair's options, recorded with its run so that `resume` continues it as it was."""

    undo: int | None = None   # the run to undo; None for a repair
    live: bool = False
    assets: tuple = ()
    workers: int = 4
    rate: float = DEFAULT_RATE
    settle: float = DEFAULT_SETTLE
    read_timeout: float = DEFAULT_READ_TIMEOUT

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data):
        return options_from_json(cls, data)


@dataclasses.dataclass
class Outcome:
    """One row's result in this leg of an undo or repair, for the plan and the summary the CLI prints."""

    asset_id: str
    row_numbers: str
    what: str                 # would delete / deleted / restored / left alone / failed ...
    text: str


class _Again_Decide(Exception):
    """The write was refused unapplied: read again and decide again."""


class _Runner(RowWorkers):
    """Works the rows of one undo or repair run on engine.RowWorkers (parking rows whose write's outcome is
    unknown, the stop rules, progress), so cli.Progress renders it as it renders a run."""

    mode = None
    write_roles = ()
    thread_name = "undo"

    def __init__(self, ledger, client, options, on_event=None):
        super().__init__(ledger, client, options, on_event)
        self.outcomes = []
        self._tries = {}
        self._throttled = {}
        self._never_sent = {}

    def preflight(self):
        """The token's user, after checking its roles: AuthError names the missing ones."""
        return self.check_roles(READ_ROLES + (self.write_roles if self.options.live else ()))

    def select(self, run_id):
        self.ledger.select_rows(run_id, self.rows_to_select())

    def label(self):
        return f"{self.mode}, {'live' if self.options.live else 'dry'}"

    def result_mode(self):
        return self.mode

    def unfinished_writes(self):
        return len(self.ledger.keys_holding_intent(UNDO_ACTIONS + (REPAIR_DELETE,)))

    def fail_row(self, key, run_id, exc):
        # The open write stays open: it may have been sent, and a resume settles it (issue #15).
        self._fail(self.ledger.asset(key), run_id, "internal_error", exc, keep_intent=True)

    def process(self, key, run_id):
        try:
            return self.work(self.ledger.asset(key), run_id)
        except _Again as again:
            return again.due

    # --- shared steps ------------------------------------------------------------------------------

    def _get(self, key, segment_id):
        """A fresh read of one segment by id; None when it is gone (404, DELETED) or not on this asset."""
        segment = self._get_segment(key, segment_id)
        return segment if segment is not None and segment.get("asset_id", key) == key else None

    def _wait_out(self, key, sent_at):
        """A write that may still land: park the row until its settle time has passed since its last send."""
        if sent_at is None:
            return
        due = sent_at + self.options.settle
        if time.time() < due:
            self.on_event("settling", key=key, seconds=due - time.time())
            raise _Again(due)

    def _write(self, row, run_id, intent, call, *args):
        """Send one write with its intent logged first; its answer, or None when the target is gone (404).

        Raises _Again_Decide when the write was refused unapplied (429, 409, never sent), so the caller reads
        again and decides again (issue #15); parks the row (_Again) when the outcome is unknown."""
        key = row["asset_key"]
        self.ledger.record_intent(key, intent, run_id=run_id, to_state=self.ledger.asset(key)["state"],
                                  detail=f"{self.mode}: about to {intent.action} segment {intent.segment_id}")
        try:
            return self._send(key, call, *args)
        except errors.NotFound:
            self._settle_own(key, run_id, intent.intent_id, NOT_APPLIED, "404: the segment is already gone")
            return None
        except errors.UnknownOutcome as exc:
            write = self.ledger.open_write(key)
            self.ledger.move(key, self.ledger.asset(key)["state"], run_id=run_id, last_error=str(exc)[:500],
                             writes=[WriteChange(write.intent_id, lost=True)],
                             detail=f"outcome unknown ({exc.message}); re-checked {self.options.settle:.0f} s after "
                                    "the send")
            self.on_event("answer_lost", key=key, settle=self.options.settle)
            raise _Again((write.sent_at or time.time()) + self.options.settle) from None
        except errors.AuthError:
            self._settle_own(key, run_id, intent.intent_id, NOT_APPLIED, "401: not applied")
            raise
        except (errors.Conflict, errors.RateLimited, errors.ConnectionFailed) as exc:
            self._settle_own(key, run_id, intent.intent_id, NOT_APPLIED,
                             f"{exc.status or 'never sent'}: not applied; reading again and deciding again")
            self._refused(row, run_id, exc)
            raise _Again_Decide() from None

    def _refused(self, row, run_id, exc):
        """Count a write refused unapplied; past its budget, the row fails (or waits, for a connection)."""
        key = row["asset_key"]
        if isinstance(exc, errors.RateLimited):
            if self._count(self._throttled, key) >= MAX_THROTTLED:
                raise errors.ServerError(exc.method, exc.path, 429, f"kept answering 429 ({exc.message})")
        elif isinstance(exc, errors.ConnectionFailed):
            tries = self._count(self._never_sent, key)
            if tries >= 3:
                raise errors.ServerError(exc.method, exc.path, None, exc.message)
            raise _Again(time.time() + 2.0 * tries)
        elif self._count(self._tries, key) >= MAX_TRIES:
            raise errors.ServerError(exc.method, exc.path, 409, "the segment kept changing under reversesync")

    def _settle_own(self, key, run_id, intent_id, outcome, why, after=None, more=()):
        """Settle this runner's own open write and let the row go of it, with its state unchanged."""
        self.ledger.move(key, self.ledger.asset(key)["state"], run_id=run_id, intent=None,
                         writes=[WriteChange(intent_id, outcome, after=after), *more], detail=f"{self.mode}: {why}")

    def _note(self, row, what, text):
        with self._lock:
            self.outcomes.append(Outcome(row["asset_id"], row["row_numbers"], what, text))

    def _leave(self, row, run_id, text):
        """Record on the row that this run left it as it is, without moving it (a dry run records nothing)."""
        if self.options.live:
            self.ledger.move(row["asset_key"], row["state"], run_id=run_id, done=True,
                             detail=f"{self.mode}: {text}")
        else:
            self.ledger.mark_rows_done(run_id, [row["asset_key"]])

    def _fail(self, row, run_id, reason, exc, keep_intent=False):
        """The undo or repair of this row failed: the row says so; running the same command again retries it."""
        reason = "undo_failed" if reason != "internal_error" and self.mode == "undo" else reason
        message = getattr(exc, "message", "") or str(exc)
        fields, writes = {}, []
        if not keep_intent:
            fields["intent"] = None
            write = self.ledger.open_write(row["asset_key"])
            writes = [WriteChange(write.intent_id, NOT_APPLIED)] if write else []
        self.ledger.move(row["asset_key"], FAILED, run_id=run_id, done=True, reason=reason, writes=writes,
                         detail=f"{self.mode} failed: {message}"[:500], last_error=str(exc)[:500],
                         http_status=getattr(exc, "status", None),
                         reason_text=f"{self.mode} failed ({message}); run the same {self.mode} command again.",
                         **fields)
        self._note(row, "failed", message)
        return None


class Undo(_Runner):
    """`undo RUN`: every write RUN logged, newest first, undone where a fresh GET shows reversesync's write still
    there as it left it."""

    mode = "undo"
    write_roles = UNDO_ROLES

    def rows_to_select(self):
        target = self.options.undo
        chosen = []
        for key in self.ledger.assets_written_by_run(target, self.options.assets):
            writes = [w for w in self.ledger.writes_of_asset(key) if w.run_id == target and counts_for_undo(w)]
            # A create undone already is looked at again if it was ever lost: a copy may have landed since.
            if any(w.undone_by is None or (w.action == CREATE and w.lost) for w in writes):
                chosen.append(key)
        return chosen

    def work(self, row, run_id):
        key = row["asset_key"]
        try:
            return self._undo_row(row, run_id)
        except (errors.TransientError, errors.TerminalError) as exc:
            return self._fail(self.ledger.asset(key), run_id, "undo_failed", exc)

    def _undo_row(self, row, run_id):
        key, target = row["asset_key"], self.options.undo
        self._settle_open_write(row, run_id)
        row = self.ledger.asset(key)
        writes = self.ledger.writes_of_asset(key)
        step = blocking_step(writes, target, self.ledger.open_write(key))
        if step is not None:
            return self._finish(row, run_id, step, [])
        done = []
        for write in reversed([w for w in writes if w.run_id == target and w.action in SYNC_ACTIONS
                               and counts_for_undo(w)]):
            if write.action == UPDATE and write.undone_by is not None:
                continue
            step = self._undo_update(row, run_id, write) if write.action == UPDATE else \
                self._undo_create(row, run_id, write)
            if step.reason != "undone" or step.action:
                # A write left as it is (or, in a plan, one still to undo) stands over the older ones.
                return self._finish(self.ledger.asset(key), run_id, step, done)
            done.append((write, step))
        return self._finish(self.ledger.asset(key), run_id, Step(reason="undone"), done)

    # --- an unsettled write on the row: settle it first, as resume would ------------------------------

    def _settle_open_write(self, row, run_id):
        key = row["asset_key"]
        write = self.ledger.open_write(key)
        if write is None:
            return
        if write.action in SYNC_ACTIONS and write.run_id != self.options.undo:
            return  # another run's: blocking_step names it, or it is an earlier run's (unfinished_write)
        if not self.options.live:
            self._note(row, "would re-check", f"{write.action} of run {write.run_id} has an unknown outcome; it is "
                                              "re-checked first")
            return
        self._wait_out(key, write.sent_at)
        if write.action in UNDO_ACTIONS:
            # This undo's own write, sent before a kill or a lost answer: nothing is assumed; the row is decided
            # again from fresh reads, where a delete or restore that landed reads as done.
            segment = self._get(key, write.segment_id)
            landed = segment is None if write.action == DELETE else \
                segment is not None and span(segment) == (write.start_ms, write.end_ms)
            self._settle_own(key, run_id, write.intent_id, APPLIED if landed else NOT_APPLIED,
                             "a write of this undo, settled by a re-check", after=segment if landed else None)
            return
        try:
            landed = self._find_landed(key, write)
            change = WriteChange(write.intent_id, APPLIED if landed else NOT_APPLIED, after=landed,
                                 segment_id=landed and landed["id"])
        except errors.Duplicated as exc:
            change = WriteChange(write.intent_id, DUPLICATED, after=exc.segments[0])
        self.ledger.move(key, self.ledger.asset(key)["state"], run_id=run_id, intent=None, writes=[change],
                         detail=f"undo: run {write.run_id}'s unsettled {write.action} re-checked "
                                f"({change.outcome})")

    def _find_landed(self, key, write):
        if write.action == CREATE:
            copies = self._marked(key, write)
            if len(copies) > 1:
                raise errors.Duplicated(copies)
            return copies[0] if copies else None
        segment = self._get(key, write.segment_id)
        return segment if segment is not None and span(segment) == (write.start_ms, write.end_ms) else None

    def _marked(self, key, write):
        """Every live segment of the asset carrying the create's marker, each read by id (fresh).

        The list is read only when more than one copy can exist: an answer to the write was lost (a re-send
        carries the same marker), or it never settled. A create answered 201 the one time it went out left one
        segment, the one it names."""
        ids = [write.segment_id] if write.segment_id else []
        if write.marker and (write.lost or write.outcome in (PENDING_WRITE, DUPLICATED) or not ids):
            try:
                listed = rules.generic_only(self._read(self.client.list_segments, key, "GENERIC"))
            except errors.NotFound:
                listed = []  # the asset is gone, and every segment with it
            ids += [s["id"] for s in listed if s.get("external_id") == write.marker and s["id"] not in ids]
        found = (self._get(key, segment_id) for segment_id in ids if segment_id not in self._gone.get(key, ()))
        return [segment for segment in found if segment is not None]

    # --- undoing one write --------------------------------------------------------------------------

    def _undo_update(self, row, run_id, write):
        key = row["asset_key"]
        while True:
            if self._count(self._tries, (key, "decide")) > MAX_TRIES * 3:
                raise errors.ServerError("PATCH", key, 409, "the segment kept changing under reversesync")
            current = self._get(key, write.segment_id)
            step = update_step(write, current, self.options.undo)
            if step.action is None:
                if step.reason == "undone" and self.options.live:
                    self.ledger.move(key, row["state"], run_id=run_id, writes=[
                        WriteChange(write.intent_id, undone_by=run_id)], detail=f"undo: {step.text}")
                return step
            if not self.options.live:
                return step  # the plan: older writes wait for this one
            intent = Intent(uuid.uuid4().hex, RESTORE, "PATCH", segment_id=write.segment_id, undoes=write.id,
                            before=current, start_ms=step.times[0], end_ms=step.times[1])
            try:
                answer = self._write(row, run_id, intent, self.client.patch_segment_times, key, write.segment_id,
                                     *step.times)
            except _Again_Decide:
                continue
            if answer is None:  # 404: gone meanwhile; decided again, it reads as nothing to restore
                continue
            self._settle_own(key, run_id, intent.intent_id, APPLIED, f"restored segment {write.segment_id}",
                             after=answer, more=[WriteChange(write.intent_id, undone_by=run_id)])
            self._check_patch_kept(current, answer)
            return Step(reason="undone", text=f"restored segment {write.segment_id} to its times from before run "
                                              f"{self.options.undo} ({ms(*step.times)}).")

    def _undo_create(self, row, run_id, write):
        key = row["asset_key"]
        if write.lost or write.outcome == PENDING_WRITE:
            self._wait_out(key, write.sent_at)  # a copy may still land: look once it has settled
        left, deleted = [], []
        for copy in self._marked(key, write):
            while copy is not None:
                step = create_copy_step(write, copy, self.options.undo)
                if step.action is None:
                    left.append(step.text)
                    break
                if not self.options.live:
                    self._note(row, f"would {step.action}", step.text)
                    break
                intent = Intent(uuid.uuid4().hex, DELETE, "DELETE", segment_id=copy["id"], undoes=write.id,
                                before=copy)
                try:
                    answer = self._write(row, run_id, intent, self.client.delete_segment, key, copy["id"])
                except _Again_Decide:
                    copy = self._get(key, copy["id"])  # refused unapplied: decided again from a fresh read
                    continue
                if answer is not None:  # None: a 404, already gone
                    self._settle_own(key, run_id, intent.intent_id, APPLIED, f"deleted segment {copy['id']}")
                    deleted.append(copy["id"])
                with self._lock:
                    self._gone.setdefault(key, set()).add(copy["id"])
                break
        kept = left
        if kept:
            return Step(reason="changed_since", text=" ".join(kept))
        if self.options.live:
            self.ledger.move(key, row["state"], run_id=run_id, writes=[WriteChange(write.intent_id, undone_by=run_id)],
                             detail=f"undo: run {self.options.undo}'s create undone")
        what = f"deleted segment{'s' if len(deleted) > 1 else ''} {', '.join(deleted)}" if deleted else \
            f"segment {write.segment_id or 'of ' + (write.marker or 'it')} is already deleted"
        return Step(reason="undone", text=f"{what}, which run {self.options.undo} created.")

    # --- the row's end ----------------------------------------------------------------------------

    def _finish(self, row, run_id, step, done):
        key = row["asset_key"]
        if step.keep:
            if step.reason != "nothing_to_undo":
                self._note(row, "left alone", step.text)
            self._leave(row, run_id, f"left alone: {step.text}")
            return None
        if not self.options.live:
            self.ledger.mark_rows_done(run_id, [key])
            if step.action:
                self._note(row, f"would {step.action}", step.text)
            elif step.reason != "undone":
                self._note(row, "would leave", step.text)
            elif not any(o.asset_id == row["asset_id"] for o in self.outcomes):
                self._note(row, "already undone", " ".join(s.text for _, s in done) or "nothing left to undo")
            return None
        texts = [s.text for _, s in done if s.text]
        if step.reason != "undone":
            texts.append(step.text)
        created = any(write.action == CREATE for write, _ in done) and step.reason == "undone"
        self.ledger.move(key, SKIPPED, run_id=run_id, done=True, intent=None, reason=step.reason,
                         reason_text=_undo_text(step.reason, " ".join(texts), self.options.undo), action=None,
                         last_error=None, segment_id=None if created else row["segment_id"], http_status=None,
                         detail=f"undo of run {self.options.undo}: {' '.join(texts) or step.reason}")
        self._note(row, step.reason, " ".join(texts))
        return None


def _undo_text(reason, text, run_id):
    if reason == "undone":
        return (f"Undone (run {run_id}): {text} A plain run leaves it alone; run --recheck undone, or a load "
                "that changes the row, brings it back.")
    return text


class Repair(_Runner):
    """`verify --repair`: on each asset, keep one segment of reversesync's and delete the copies equal to it,
    each after a GET by id shows it still is."""

    mode = "repair"
    write_roles = REPAIR_ROLES

    def rows_to_select(self):
        busy = set(self.ledger.keys_holding_intent(SYNC_ACTIONS + UNDO_ACTIONS))
        return [key for key in self.ledger.rows_to_repair() if key not in busy]

    def work(self, row, run_id):
        key = row["asset_key"]
        write = self.ledger.open_write(key)
        if write is not None and write.action == REPAIR_DELETE:
            self._wait_out(key, write.sent_at)
            gone = self._get(key, write.segment_id) is None
            self._settle_own(key, run_id, write.intent_id, APPLIED if gone else NOT_APPLIED,
                             "a delete of this repair, settled by a re-check")
            row = self.ledger.asset(key)
        if self._stop.is_set():
            raise _Stop()
        try:
            keep, removed = self._repair(row, run_id)
        except _Again_Decide:
            raise _Again(time.time()) from None  # decided again from a fresh list and fresh GETs
        except errors.NotFound:
            keep, removed = None, []  # the asset is gone: nothing of reversesync's is left to repair
        except (errors.TransientError, errors.TerminalError) as exc:
            return self._fail(self.ledger.asset(key), run_id, "repair_failed", exc)
        return self._finish(self.ledger.asset(key), run_id, keep, removed)

    def _repair(self, row, run_id):
        key = row["asset_key"]
        listed = [s for s in rules.generic_only(self._read(self.client.list_segments, key, "GENERIC"))
                  if rules.is_ours(s) and s["id"] not in self._gone.get(key, ())]
        recorded_id = row["segment_id"] or row["done_segment_id"]
        if recorded_id and recorded_id not in {s.get("id") for s in listed}:
            recorded = self._get(key, recorded_id)  # the list trails writes: the recorded one is read by id
            if recorded is not None and rules.is_ours(recorded):
                listed.append(recorded)
        keep, extras = repair_choice(listed, recorded_id)
        if keep is None or not extras:
            return keep, []
        keep = self._get(key, keep["id"]) or keep  # compared as it is now, not as the list shows it
        removed = []
        for extra in extras:
            fresh = self._get(key, extra["id"])
            problem = duplicate_problem(fresh, keep)
            if problem == "gone":
                continue
            if problem:
                self._note(row, "left alone", f"segment {extra['id']}: {problem}")
                continue
            if not self.options.live:
                self._note(row, "would delete", f"duplicate {extra['id']} {ms(*span(extra))}, keeping {keep['id']}")
                continue
            intent = Intent(uuid.uuid4().hex, REPAIR_DELETE, "DELETE", segment_id=extra["id"], before=fresh)
            self._write(self.ledger.asset(key), run_id, intent, self.client.delete_segment, key, extra["id"])
            self._settle_own(key, run_id, intent.intent_id, APPLIED,
                             f"repair: deleted duplicate segment {extra['id']}, keeping {keep['id']}")
            with self._lock:
                self._gone.setdefault(key, set()).add(extra["id"])
            removed.append(extra["id"])
            self._note(row, "deleted", f"duplicate {extra['id']} {ms(*span(extra))}, kept {keep['id']}")
        return keep, removed

    def _finish(self, row, run_id, keep, removed):
        key = row["asset_key"]
        if not self.options.live:
            self.ledger.mark_rows_done(run_id, [key])
            return None
        duplicated = next((w for w in reversed(self.ledger.writes_of_asset(key))
                           if w.action == CREATE and w.outcome == DUPLICATED), None)
        if keep is None or row["state"] != FAILED or duplicated is None:
            if removed:
                self.ledger.move(key, row["state"], run_id=run_id, done=True,
                                 detail=f"repair: {len(removed)} duplicate(s) removed")
            else:
                self.ledger.mark_rows_done(run_id, [key])
            return None
        # A row failed as duplicated: one segment is left, so it ends as created (or, if the sheet has moved
        # on since, goes back to pending for the next run to decide), and its write is applied once.
        same = span(keep) == (row["time_start_ms"], row["time_end_ms"])
        fields = dict(intent=None, reason=None, action="create", segment_id=keep["id"], done_action="create",
                      done_segment_id=keep["id"], done_run_id=duplicated.run_id, done_before=None, last_error=None,
                      done_start_ms=span(keep)[0], done_end_ms=span(keep)[1],
                      http_status=None, reason_text=f"created segment {keep['id']} {ms(*span(keep))}; its duplicates "
                                                    f"were removed by verify --repair (run {run_id}).")
        # failed -> checked -> created: the state table's way out of failed, in one transaction.
        self.ledger.move_many([(key, CHECKED, {}, "repair: one segment of reversesync's is left"),
                               (key, CREATED if same else PENDING, fields,
                                f"repair: kept segment {keep['id']}, duplicates removed")], run_id=run_id, done=True,
                              writes=[WriteChange(duplicated.intent_id, APPLIED, after=keep, segment_id=keep["id"])])
        self._note(row, "created", f"kept {keep['id']} {ms(*span(keep))}")
        return None
