"""`undo RUN` and `verify --repair` (issue #12): put Iconik back as it was before a live run, and remove the
duplicates a lost answer left, with the discipline of a run.

- Only a fresh GET by id decides a DELETE or a PUT (never a segment list); a segment someone changed since
  reversesync wrote it, or that now backs a subclip, is left alone and reported as changed_since.
- Intent is recorded before every write and the moment it goes on the wire after (Ledger.mark_sent); a write
  whose outcome is unknown parks its row until `settle` seconds after the send, then the row is decided
  again from a fresh GET (a delete or a restore that landed reads as done), never re-sent blindly.
- Each undo or repair is recorded as a run (mode 'undo' / 'repair') before its first request, with the rows
  it selected, so that `resume` continues it after a kill.

The pure decisions come first and are tested as a table (tests/test_undo.py); the machinery follows.
Repair lives here too: it is the same machinery (a GET by id, an intent, a DELETE, the settle rule) with
another choice of what to delete.
"""

import dataclasses
import json
import time
import uuid

from . import errors, rules
from .engine import RowWorkers, _Again, _Stop, options_from_json
from .iconik import READ_ROLES, editable_fields
from .ledger import CHECKED, CREATED, PENDING, SKIPPED
from .rules import ms, span

UNDO_OPS = ("delete", "restore")
REPAIR_OP = "repair_delete"
OWN_OPS = UNDO_OPS + (REPAIR_OP,)
UNDO_ROLES = ("can_delete_segments", "can_write_segments")
REPAIR_ROLES = ("can_delete_segments",)
# A write answered 409 (or a segment that changes between the GET and the write) is decided again, this often.
MAX_TRIES = 4
# Reasons an undo leaves on a row; `run --recheck REASON` brings such a row back.
UNDO_REASONS = ("undone", "changed_since", "cannot_restore", "undo_failed")


# --- pure decisions -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Step:
    """What to do with one row of an undo: a write ('delete' / 'restore'), or finish it with reason
    ('undone', 'changed_since', 'cannot_restore'), or leave it as it is (keep=True, reason says why)."""

    action: str = None
    reason: str = None
    text: str = ""
    keep: bool = False


def comparable(fields):
    """A segment's editable fields as compared for 'unchanged': unset, null and empty are the same thing
    (a PUT resets a field it leaves out, and Iconik answers null or {} for it)."""
    return {key: value for key, value in editable_fields(fields).items() if value not in (None, {}, [])}


def differences(found, expected):
    """'field: expected X, found Y' for every editable field that differs, in field order."""
    found, expected = comparable(found), comparable(expected)
    keys = [key for key in dict.fromkeys([*expected, *found]) if found.get(key) != expected.get(key)]
    return [f"{key}: reversesync left {expected.get(key)!r}, now {found.get(key)!r}" for key in keys]


def written_times(row):
    """The times reversesync wrote: recorded with what it did; for rows written before that was recorded, the
    sheet's times (which a later load may have changed, so such rows compare with caution)."""
    if row["done_start_ms"] is not None:
        return row["done_start_ms"], row["done_end_ms"]
    return row["time_start_ms"], row["time_end_ms"]


def written_image(row):
    """The editable fields an update left on the segment: its before-image with the times it wrote."""
    before = json.loads(row["done_before"])
    start, end = written_times(row)
    return dict(before, time_start_milliseconds=start, time_end_milliseconds=end)


def undo_precheck(row, run_id):
    """The step for a row that needs no read of Iconik, or None when a GET by id must decide."""
    if row["intent"] and json.loads(row["intent"]).get("op") not in UNDO_OPS:
        return Step(keep=True, reason="unfinished_write",
                    text="holds a write of a run whose outcome is not settled yet; finish it first "
                         "(reversesync resume, or run --live), then undo again")
    if row["done_run_id"] != run_id or row["done_action"] not in ("create", "update"):
        return Step(keep=True, reason="written_later",
                    text=f"run {row['done_run_id']} wrote it again after run {run_id}; undo that run first")
    if row["done_action"] == "update" and row["done_before"] is None:
        return Step(reason="cannot_restore",
                    text=f"run {run_id} updated segment {row['done_segment_id']} before reversesync kept a "
                         "before-image, so its earlier fields are unknown and it cannot be restored; set it by "
                         "hand in Iconik if needed.")
    return None


def undo_step(row, segment):
    """The step for a row of the undone run from a fresh GET of its segment (None: 404)."""
    segment_id = row["done_segment_id"]
    if segment is None or segment.get("status") == "DELETED":
        what = "deleted" if row["done_action"] == "create" else "gone, so there is nothing to restore"
        return Step(reason="undone", text=f"segment {segment_id} is already {what}.")
    if segment.get("subclip_id"):
        return Step(reason="changed_since", text=f"segment {segment_id} now backs SUBCLIP {segment['subclip_id']}; "
                                                 "left alone.")
    if row["done_action"] == "create":
        problems = _create_differences(row, segment)
        if problems:
            return Step(reason="changed_since", text=f"segment {segment_id} changed since reversesync created it "
                                                     f"({'; '.join(problems)}); left alone.")
        return Step(action="delete", text=f"delete segment {segment_id} {ms(*span(segment))}, which run "
                                          f"{row['done_run_id']} created")
    before = json.loads(row["done_before"])
    if comparable(segment) == comparable(before):
        return Step(reason="undone", text=f"segment {segment_id} already holds its fields from before run "
                                          f"{row['done_run_id']} ({ms(*span(before))}).")
    problems = differences(segment, written_image(row))
    if problems:
        return Step(reason="changed_since", text=f"segment {segment_id} changed since reversesync updated it "
                                                 f"({'; '.join(problems)}); left alone.")
    return Step(action="restore", text=f"restore segment {segment_id} from {ms(*span(segment))} to its fields "
                                       f"from before run {row['done_run_id']} ({ms(*span(before))})")


def _create_differences(row, segment):
    """How a segment reversesync created differs from what it wrote: GENERIC, its marker, the sheet's times."""
    problems = []
    if segment.get("segment_type") != "GENERIC":
        problems.append(f"segment_type: now {segment.get('segment_type')!r}")
    if not rules.is_ours(segment):
        problems.append(f"external_id: reversesync's marker is gone, now {segment.get('external_id')!r}")
    if span(segment) != written_times(row):
        problems.append(f"times: reversesync left {ms(*written_times(row))}, now {ms(*span(segment))}")
    return problems


def repair_choice(marked, recorded_id):
    """(the segment to keep, the others) among the marked GENERIC segments of one asset: the one the ledger
    records if it is there, else the oldest (by date_created, then id)."""
    if not marked:
        return None, []
    ordered = sorted(marked, key=lambda s: (s.get("date_created") or "", s.get("id") or ""))
    keep = next((s for s in ordered if s.get("id") == recorded_id), ordered[0])
    return keep, [s for s in ordered if s is not keep]


def still_the_listed_duplicate(fresh, listed):
    """Why a duplicate just read by id must not be deleted, or None when it may (issue #12)."""
    if fresh is None or fresh.get("status") == "DELETED":
        return "gone"
    if fresh.get("segment_type") != "GENERIC" or not rules.is_ours(fresh):
        return f"no longer a GENERIC segment of reversesync's (external_id {fresh.get('external_id')!r})"
    if fresh.get("external_id") != listed.get("external_id") or span(fresh) != span(listed):
        return f"changed since it was listed (now {fresh.get('external_id')!r}, {ms(*span(fresh))})"
    if fresh.get("subclip_id"):
        return f"backs SUBCLIP {fresh['subclip_id']}"
    return None


# --- the machinery --------------------------------------------------------------------------------------


@dataclasses.dataclass
class UndoOptions:
    """An undo's or a repair's options, recorded with its run so that `resume` continues it as it was."""

    undo: int = None          # the run to undo; None for a repair
    live: bool = False
    assets: tuple = ()
    workers: int = 4
    rate: float = 50.0
    settle: float = 90.0
    read_timeout: float = 30.0

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
        return len(self.ledger.keys_holding_intent(OWN_OPS))

    def fail_row(self, key, run_id, exc):
        self._fail(self.ledger.asset(key), run_id, "internal_error", exc)

    def process(self, key, run_id):
        try:
            return self.work(self.ledger.asset(key), run_id)
        except _Again as again:
            return again.due

    # --- shared steps ------------------------------------------------------------------------------

    def _get(self, key, segment_id):
        """A fresh read of one segment by id; None when it is gone (404)."""
        if self._stop.is_set():
            raise _Stop()
        try:
            segment = self.client.get_segment(key, segment_id)
        except errors.NotFound:
            return None
        return segment if segment.get("asset_id", key) == key else None

    def _wait_out(self, row, intent):
        """A write of this kind recorded but maybe not settled: park the row until its settle time has passed
        (counted from its last send); a write never sent needs no wait."""
        if row["intent_sent_at"] is None:
            return
        due = row["intent_sent_at"] + self.options.settle
        if time.time() < due:
            self.on_event("settling", key=row["asset_key"], seconds=due - time.time())
            raise _Again(due)

    def _record_intent(self, row, run_id, intent, text):
        self.ledger.move(row["asset_key"], row["state"], run_id=run_id, detail=f"about to {text}",
                         intent=json.dumps(intent), intent_sent_at=None)

    def _send(self, key, call, *args, **kwargs):
        if self._stop.is_set():
            raise _Stop()
        return call(*args, on_send=lambda: self.ledger.mark_sent(key), **kwargs)

    def _park(self, key, run_id, exc):
        """The write's outcome is unknown: keep the intent and come back after the settle time (issue #10)."""
        sent = self.ledger.asset(key)["intent_sent_at"] or time.time()
        row = self.ledger.asset(key)
        self.ledger.move(key, row["state"], run_id=run_id, last_error=str(exc)[:500],
                         detail=f"outcome unknown ({exc.message}); re-checked {self.options.settle:.0f} s after the "
                                "send")
        self.on_event("answer_lost", key=key, settle=self.options.settle)
        raise _Again(sent + self.options.settle)

    def _tried(self, key):
        with self._lock:
            self._tries[key] = self._tries.get(key, 0) + 1
            return self._tries[key]

    def _note(self, row, what, text):
        with self._lock:
            self.outcomes.append(Outcome(row["asset_id"], row["row_numbers"], what, text))

    def _leave(self, row, run_id, text):
        """Record on the row that this run left it as it is, without moving it."""
        self.ledger.move(row["asset_key"], row["state"], run_id=run_id, done=True, detail=f"{self.mode}: {text}")

    def _fail(self, row, run_id, reason, exc):
        """The undo or repair of this row failed: the row says so; running the same command again retries it."""
        reason = "undo_failed" if reason != "internal_error" and self.mode == "undo" else reason
        message = getattr(exc, "message", "") or str(exc)
        self.ledger.move(row["asset_key"], "failed", run_id=run_id, done=True, intent=None, reason=reason,
                         detail=f"{self.mode} failed: {message}"[:500], last_error=str(exc)[:500],
                         http_status=getattr(exc, "status", None),
                         reason_text=f"{self.mode} failed ({message}); run the same {self.mode} command again.")
        self._note(row, "failed", message)


class Undo(_Runner):
    """`undo RUN`: delete what RUN created, restore what it updated, each after a fresh GET shows reversesync's
    write still there unchanged."""

    mode = "undo"
    write_roles = UNDO_ROLES

    def rows_to_select(self):
        return [row["asset_key"] for row in self.ledger.rows_written_by_run(self.options.undo, self.options.assets)
                if not (row["state"] == SKIPPED and row["reason"] == "undone" and not row["intent"])]

    def work(self, row, run_id):
        target = self.options.undo
        if row["intent"] and json.loads(row["intent"]).get("op") in UNDO_OPS:
            self._wait_out(row, json.loads(row["intent"]))
        step = undo_precheck(row, target)
        while step is None:
            if self._tried(row["asset_key"]) > MAX_TRIES:
                return self._fail(row, run_id, "conflict", errors.Conflict(
                    "PUT", row["asset_key"], 409, "the segment kept changing under reversesync"))
            step = undo_step(row, self._get(row["asset_key"], row["done_segment_id"]))
            if step.action and self.options.live:
                step = self._write(row, run_id, step)
                row = self.ledger.asset(row["asset_key"])
        return self._finish(row, run_id, step)

    def _write(self, row, run_id, step):
        """Send the step's DELETE or PUT with intent recorded first; the step the row ends with, or None to
        decide again from a fresh GET."""
        key, segment_id = row["asset_key"], row["done_segment_id"]
        before = row["intent"] and json.loads(row["intent"])
        intent = {"id": before["id"] if before and before.get("op") == step.action else uuid.uuid4().hex,
                  "op": step.action, "segment_id": segment_id, "run_id": run_id, "undo": self.options.undo}
        self._record_intent(row, run_id, intent, step.text)
        try:
            if step.action == "delete":
                self._send(key, self.client.delete_segment, key, segment_id)
                return Step(reason="undone", text=f"deleted segment {segment_id}, which run {self.options.undo} "
                                                  "created.")
            body = editable_fields(json.loads(row["done_before"]))
            self._send(key, self.client.replace_segment, key, segment_id, body)
            return Step(reason="undone", text=f"restored segment {segment_id} to its fields from before run "
                                              f"{self.options.undo} ({ms(*span(body))}).")
        except errors.NotFound:
            return Step(reason="undone", text=f"segment {segment_id} is already gone.")
        except errors.UnknownOutcome as exc:
            self._park(key, run_id, exc)
        except errors.Conflict:
            self.ledger.move(key, row["state"], run_id=run_id, intent=None, detail="409: not applied; deciding again")
            return None
        except errors.AuthError:
            self.ledger.move(key, row["state"], run_id=run_id, intent=None, detail="401: not applied")
            raise
        except (errors.TerminalError, errors.TransientError) as exc:
            self._fail(row, run_id, "undo_failed", exc)
            return Step(keep=True, reason="failed")

    def _finish(self, row, run_id, step):
        key = row["asset_key"]
        if step.reason == "failed":
            return None
        if step.keep:
            if self.options.live:
                self._leave(row, run_id, f"left alone: {step.text}")
            else:
                self.ledger.mark_rows_done(run_id, [key])
            self._note(row, "left alone", step.text)
            return None
        if step.action:  # a dry undo: the plan is printed, the row is left as it is for a later run
            self.ledger.mark_rows_done(run_id, [key])
            self._note(row, f"would {step.action}", step.text)
            return None
        if not self.options.live:
            self.ledger.mark_rows_done(run_id, [key])
            self._note(row, "would leave" if step.reason != "undone" else "already undone", step.text)
            return None
        deleted = row["done_action"] == "create" and step.reason == "undone"
        self.ledger.move(key, SKIPPED, run_id=run_id, done=True, intent=None, reason=step.reason,
                         reason_text=_undo_text(step, self.options.undo), action=None, last_error=None,
                         segment_id=None if deleted else row["segment_id"], http_status=None,
                         detail=f"undo of run {self.options.undo}: {step.text}")
        self._note(row, step.reason, step.text)
        return None


def _undo_text(step, run_id):
    if step.reason == "undone":
        return (f"Undone (run {run_id}): {step.text} A plain run leaves it alone; run --recheck undone, or a load "
                "that changes the row, brings it back.")
    return step.text


class Repair(_Runner):
    """`verify --repair`: on each asset, keep one segment of reversesync's and delete the other marked ones,
    each after a GET by id shows it is still reversesync's and unchanged."""

    mode = "repair"
    write_roles = REPAIR_ROLES

    def rows_to_select(self):
        busy = set(self.ledger.keys_holding_intent(("create", "update") + UNDO_OPS))
        return [key for key in self.ledger.rows_to_repair() if key not in busy]

    def work(self, row, run_id):
        key = row["asset_key"]
        if row["intent"]:
            self._wait_out(row, json.loads(row["intent"]))
        if self._stop.is_set():
            raise _Stop()
        try:
            listed = [s for s in rules.generic_only(self.client.list_segments(key, "GENERIC")) if rules.is_ours(s)]
            recorded_id = row["segment_id"] or row["done_segment_id"]
            if recorded_id and recorded_id not in {s.get("id") for s in listed}:
                recorded = self._get(key, recorded_id)  # the list trails writes: the recorded one is read by id
                if recorded is not None and recorded.get("status") != "DELETED" and rules.is_ours(recorded):
                    listed.append(recorded)
            keep, extras = repair_choice(listed, recorded_id)
            removed = []
            for extra in extras:
                fresh = self._get(key, extra["id"])
                problem = still_the_listed_duplicate(fresh, extra)
                if problem == "gone":
                    continue
                if problem:
                    self._note(row, "left alone", f"segment {extra['id']}: {problem}")
                    continue
                if not self.options.live:
                    self._note(row, "would delete", f"duplicate {extra['id']} {ms(*span(extra))}, keeping {keep['id']}")
                    continue
                self._delete(row, run_id, extra, keep)
                removed.append(extra["id"])
        except errors.NotFound:
            keep, removed = None, []  # the asset is gone: nothing of reversesync's is left to repair
        except (errors.TransientError, errors.TerminalError) as exc:
            return self._fail(self.ledger.asset(key), run_id, "repair_failed", exc)
        return self._finish(self.ledger.asset(key), run_id, keep, removed)

    def _delete(self, row, run_id, extra, keep):
        key = row["asset_key"]
        intent = {"id": uuid.uuid4().hex, "op": REPAIR_OP, "segment_id": extra["id"], "keep": keep["id"],
                  "run_id": run_id}
        self._record_intent(self.ledger.asset(key), run_id, intent, f"delete duplicate {extra['id']}")
        try:
            self._send(key, self.client.delete_segment, key, extra["id"])
        except errors.NotFound:
            pass
        except errors.UnknownOutcome as exc:
            self._park(key, run_id, exc)  # settled, the row is worked again from a fresh list and GETs
        except errors.Conflict as exc:
            raise errors.ServerError("DELETE", key, 409, exc.message) from None
        except errors.AuthError:
            self.ledger.move(key, self.ledger.asset(key)["state"], run_id=run_id, intent=None,
                             detail="401: not applied")
            raise
        self.ledger.move(key, self.ledger.asset(key)["state"], run_id=run_id, intent=None,
                         detail=f"repair: deleted duplicate segment {extra['id']}, keeping {keep['id']}")
        self._note(row, "deleted", f"duplicate {extra['id']} {ms(*span(extra))}, kept {keep['id']}")

    def _finish(self, row, run_id, keep, removed):
        key = row["asset_key"]
        if not self.options.live:
            self.ledger.mark_rows_done(run_id, [key])
            return None
        if keep is None or row["state"] != "failed":
            if removed or row["intent"]:
                self.ledger.move(key, row["state"], run_id=run_id, done=True, intent=None,
                                 detail=f"repair: {len(removed)} duplicate(s) removed")
            else:
                self.ledger.mark_rows_done(run_id, [key])
            return None
        # A row failed as duplicated: one segment is left, so it ends as created (or, if the sheet has moved
        # on since, goes back to pending for the next run to decide).
        same = span(keep) == (row["time_start_ms"], row["time_end_ms"])
        wrote_in = self.ledger.last_run_failing(key, "duplicated") or row["done_run_id"]
        fields = dict(intent=None, reason=None, action="create", segment_id=keep["id"], done_action="create",
                      done_segment_id=keep["id"], done_run_id=wrote_in, done_before=None, last_error=None,
                      done_start_ms=span(keep)[0], done_end_ms=span(keep)[1],
                      http_status=None, reason_text=f"created segment {keep['id']} {ms(*span(keep))}; its duplicates "
                                                    f"were removed by verify --repair (run {run_id}).")
        # failed -> checked -> created: the state table's way out of failed, in one transaction.
        self.ledger.move_many([(key, CHECKED, {}, "repair: one segment of reversesync's is left"),
                               (key, CREATED if same else PENDING, fields,
                                f"repair: kept segment {keep['id']}, duplicates removed")], run_id=run_id, done=True)
        self._note(row, "created", f"kept {keep['id']} {ms(*span(keep))}")
        return None
