"""The sync engine: the machinery that schedules rows, reads Iconik, records intent, writes and settles.

Every row moves pending -> checked -> created | updated | skipped | failed through Ledger.move, one
committed transaction per step. What to do with a row is decided by rules.py from the freshest read
Iconik offers; this module only carries it out:

- intent is recorded in the write log before every write, and the moment it goes on the wire after
  (Ledger.record_intent, Ledger.mark_sent); the result is recorded with the row's move right after;
- an update is a PATCH of the two times, decided from a GET by id just before it; a 200 answer that shows any
  other field changed (a PATCH that replaced like a PUT) stops the run (issue #15);
- a write refused without being applied (429, 409, a connection never made) is never re-sent as it was: the
  row is read again and decided again (issue #15);
- a write whose outcome is unknown (timeout, lost answer, 5xx, a kill) is never re-sent blindly: the row
  is parked, without holding a worker, until `settle` seconds after the send, then re-checked by the
  marker its segment carries (issue #10);
- a run stops, leaving its rows resumable, on a 401, a token that can read nothing, a lost lock, or an
  Iconik that stopped answering or keeps failing (issue #11, #15).

The engine prints nothing: it reports through the on_event callback, which the CLI renders.
"""

import concurrent.futures
import dataclasses
import heapq
import threading
import time
import uuid

from . import errors, rules
from .iconik import READ_ROLES, WRITE_ROLES
from .ledger import CHECKED, CREATED, FAILED, PENDING, SKIPPED, UPDATED
from .rules import Decision, ms, span
from .types import APPLIED, CREATE, DUPLICATED, NOT_APPLIED, SYNC_ACTIONS, UPDATE, Intent, WriteChange

# How long after a write's last send its outcome counts as settled (issue #10). It must outlast the read
# timeout (30 s: the client gives up, the server may not have), a margin for a backend that applies the
# write late (30 s), and the search index behind segment lists (a few seconds; 30 s margin). See README.
DEFAULT_SETTLE = 90.0
DEFAULT_READ_TIMEOUT = 30.0

# How many times one row is decided again after a write that conflicted, vanished or has an unknown
# outcome, before it is failed.
MAX_DECISIONS = 4
# A 409 is answered by re-reading and writing again, this many times at most (the PRD's rule).
MAX_CONFLICTS = 3
# A write answered 429 is read again and decided again after the pause, this many times at most.
MAX_THROTTLED_WRITES = 20

# Failed rows whose cause may pass; --retry-failed sends them back to pending.
RETRYABLE_REASONS = ("server_error", "connection_error", "rate_limited", "conflict", "unknown_outcome", "forbidden")

# Reasons given at load time: the sheet row itself is unusable, so no run can help until it is fixed.
LOAD_REJECTIONS = ("invalid", "no_timecode", "duplicate_conflict")

# Assets per batched search request (issue #6): Iconik's search takes a list of ids per term.
SEARCH_BATCH = 100
# A decision from the search index may finish a row only when it writes nothing; a write is always
# decided from a per-asset read, since the index can lag.
SEARCH_FINAL_REASONS = ("in_sync", "subclip_mismatch", "asset_deleted", "ambiguous", "unsupported_type",
                        "unsupported_status", "segment_status", "subclip_linked")
ASSET_FIELDS = ("id", "type", "status", "time_start_milliseconds", "time_end_milliseconds", "original_asset_id")
ASSET_REQUIRED = ("id", "type", "status")
SEGMENT_FIELDS = ("id", "asset_id", "segment_type", "time_start_milliseconds", "time_end_milliseconds",
                  "subclip_id", "external_id", "status")
SEGMENT_REQUIRED = ("id", "asset_id", "segment_type")

# Iconik gone away (issue #11): this many connection failures or 5xx answers (after retries) in a row, or this
# long with no answer at all while requests wait, stops the run (exit 3); the rows of the streak stay pending.
CONNECTION_STREAK_STOP = 10
SILENCE_STOP = 30.0
# A token whose user may read none of the first this-many assets cannot do the job: stop, not fail them all.
FORBIDDEN_PROBE = 25


@dataclasses.dataclass
class RunOptions:
    live: bool = False
    workers: int = 8
    rate: float = 50.0
    limit: int = None
    retry_failed: bool = False
    assets: tuple = ()
    recheck: tuple = ()
    search: bool = True
    settle: float = DEFAULT_SETTLE
    read_timeout: float = DEFAULT_READ_TIMEOUT

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data):
        return options_from_json(cls, data)


def options_from_json(cls, data):
    """A run's options as its record holds them (runs.options): keys this version does not know are left out,
    and JSON lists become the tuples the options hold."""
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})


@dataclasses.dataclass
class RunResult:
    run_id: int
    mode: str
    status: str                   # finished / interrupted / aborted
    counts: dict
    requests: int
    writes: int
    throttled: int
    elapsed: float
    rows: int
    error: Exception = None
    unfinished_writes: int = 0    # rows left holding an intent (a dry run leaves them to a live run)


class IconikUnreachable(errors.TransientError):
    """Iconik stopped answering, or kept failing, mid-run: the run stops and is resumable."""


class _Stop(Exception):
    """Raised inside a worker when the run is stopping: leave the row as it is."""


class _Again(Exception):
    """The row cannot go on now; work it again at `due` (epoch seconds), without holding a worker."""

    def __init__(self, due):
        super().__init__(due)
        self.due = due


class _Schedule:
    """The run's rows: ready ones in order, parked ones by the time they are due, and how many are in hand."""

    def __init__(self, keys):
        self._ready = list(reversed(keys))
        self._parked = []
        self._busy = 0
        self._cond = threading.Condition()

    def take(self, stop):
        """The next row to work, parked rows first once due; None when nothing is left or the run stops."""
        with self._cond:
            while not stop.is_set():
                now = time.time()
                if self._parked and self._parked[0][0] <= now:
                    self._busy += 1
                    return heapq.heappop(self._parked)[1]
                if self._ready:
                    self._busy += 1
                    return self._ready.pop()
                if not self._parked and not self._busy:
                    return None
                self._cond.wait(min(0.25, self._parked[0][0] - now) if self._parked else 0.25)
            return None

    def done(self, key, due=None):
        with self._cond:
            self._busy -= 1
            if due is not None:
                heapq.heappush(self._parked, (due, key))
            self._cond.notify_all()

    def parked(self):
        """(rows parked, seconds until the next is due)."""
        with self._cond:
            return len(self._parked), max(0.0, self._parked[0][0] - time.time()) if self._parked else 0.0


class RowWorkers:
    """The machinery every run shares (sync, undo, repair): a pool of workers over the run's rows, rows parked
    until their settle time without holding a worker, the stop rules (lost lock, 401, Iconik silent), Ctrl-C,
    progress events, and the run's record. Subclasses decide what one row needs (process) and which rows a run
    takes (select)."""

    thread_name = "worker"

    def __init__(self, ledger, client, options, on_event=None):
        self.ledger = ledger
        self.client = client
        self.options = options
        self.on_event = on_event or (lambda kind, **data: None)
        self.roles = set()
        self._stop = threading.Event()
        self._fatal = None
        self._done = 0
        self._lock = threading.Lock()
        self._gone = {}  # asset key -> ids of segments that answered 404 (or DELETED) by id in this run
        self._replaced = []  # segments a PATCH replaced (issue #15): named by the error that stops the run

    # --- what a subclass decides ----------------------------------------------------------------------

    def select(self, run_id):
        """Fix the run's rows (Ledger.select_rows), once."""
        raise NotImplementedError

    def process(self, key, run_id):
        """Work one row as far as it can go now; returns when to come back to it (epoch s), or None when done."""
        raise NotImplementedError

    def fail_row(self, key, run_id, exc):
        """Record an unexpected error against the row (internal_error)."""
        raise NotImplementedError

    def label(self):
        return "live" if self.options.live else "dry"

    def result_mode(self):
        return "live" if self.options.live else "dry"

    def unfinished_writes(self):
        """Rows left holding an intent of this kind of run."""
        return 0

    def before_rows(self, keys):
        """Work done before the workers start (the search pre-pass)."""

    def after_rows(self, run_id):
        """Work done once every row is through, unless the run stopped."""

    # --- steps every kind of run takes ----------------------------------------------------------------

    def _read(self, call, *args):
        if self._stop.is_set():
            raise _Stop()
        return call(*args)

    def _get_segment(self, key, segment_id):
        """A fresh read of one segment by id; None when it is gone (404 or DELETED), remembered for the run."""
        try:
            segment = self._read(self.client.get_segment, key, segment_id)
        except errors.NotFound:
            segment = None
        if rules.is_absent(segment):
            with self._lock:
                self._gone.setdefault(key, set()).add(segment_id)
            return None
        return segment

    def _send(self, key, call, *args, **kwargs):
        if self._stop.is_set():
            raise _Stop()
        return call(*args, on_send=lambda: self.ledger.mark_sent(key), **kwargs)

    def _check_patch_kept(self, before, answer):
        """Stop every further write if a PATCH of the times changed any other field: Iconik's PATCH would then
        replace like a PUT, and each further one would reset a person's work (issue #15)."""
        changed = rules.patch_replaced(before, answer)
        if not changed:
            return
        with self._lock:
            self._replaced.append((before.get("asset_id"), before.get("id"), changed))
        raise errors.PatchReplaced(self._replaced)

    def _count(self, counter, key):
        with self._lock:
            counter[key] = counter.get(key, 0) + 1
            return counter[key]

    # --- the machinery ----------------------------------------------------------------------------------

    def check_roles(self, needed):
        """The token's user, after checking its roles: AuthError names the missing ones."""
        user = self.client.current_user()
        self.roles = self.client.current_roles()
        missing = [role for role in needed if role not in self.roles]
        if missing:
            raise errors.AuthError("GET", "/API/users/v1/users/current/roles/", 403,
                                   f"the token's user lacks the role{'s' if len(missing) > 1 else ''} "
                                   f"{', '.join(missing)}")
        return user

    def run(self, run_id):
        """Work the run's unfinished rows; returns a RunResult. Ctrl-C (or a closed stdout) stops taking rows."""
        began = time.monotonic()
        if self.ledger.run(run_id)["selected_at"] is None:
            self.select(run_id)
        keys = self.ledger.run_keys(run_id)
        self.on_event("start", run_id=run_id, mode=self.label(), rows=len(keys),
                      selected=self.ledger.run_size(run_id))
        status = "finished"
        schedule = _Schedule(keys)
        threads = []
        try:
            self.before_rows(keys)
            threads = [threading.Thread(target=self._worker, args=(schedule, run_id),
                                        name=f"{self.thread_name}-{n}", daemon=True)
                       for n in range(max(1, min(self.options.workers, len(keys) or 1)))]
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                time.sleep(0.2)
                self._watch()
                self._progress(schedule, len(keys), began)
        except (KeyboardInterrupt, BrokenPipeError):
            status = "interrupted"
            self._stop.set()
            self.on_event("stopping")
            try:
                for thread in threads:
                    thread.join()
            except KeyboardInterrupt:
                pass  # a second Ctrl-C abandons in-flight requests; their rows keep their recorded intent
        if not self._stop.is_set():
            self.after_rows(run_id)
        if self._fatal is not None:
            status = "aborted"
        return self._close(run_id, status, len(keys), began, schedule)

    def _close(self, run_id, status, rows, began, schedule):
        stats = self.client.stats
        counts = self.ledger.run_counts(run_id)
        elapsed = time.monotonic() - began
        self.ledger.finish_run(run_id, status, counts, stats.requests, stats.throttled, stats.writes, elapsed)
        result = RunResult(run_id, self.result_mode(), status, counts, stats.requests, stats.writes, stats.throttled,
                           elapsed, rows, self._fatal, self.unfinished_writes())
        self._progress(schedule, rows, began, final=True)
        return result

    def _progress(self, schedule, total, began, final=False):
        parked, next_due = schedule.parked()
        stats = self.client.stats
        self.on_event("progress", done=self._done, total=total, requests=stats.requests,
                      elapsed=time.monotonic() - began, parked=parked, next_due=next_due,
                      waiting=stats.waiting_for(), final=final)  # waiting: how long Iconik has kept us waiting

    def _watch(self):
        """Stop the run when its lock is gone or Iconik has stopped answering altogether."""
        if self.ledger.lock_lost.is_set() and self._fatal is None:
            self._abort(errors.LockLost(f"another process took the lock of {self.ledger.path}; this one stopped "
                                        "at once, leaving its unfinished rows for a resume."))
        silence_limit = max(SILENCE_STOP, self.options.read_timeout + 5)
        silent = self.client.stats.waiting_for()
        if silent > silence_limit and self._fatal is None:
            self._abort(IconikUnreachable(
                "GET", "", None, f"Iconik at {self.client.url} gave no answer at all for {silent:.0f} s"))

    def _abort(self, exc):
        with self._lock:
            if self._fatal is None:
                self._fatal = exc
        self._stop.set()

    def _worker(self, schedule, run_id):
        while True:
            key = schedule.take(self._stop)
            if key is None:
                return
            due = None
            try:
                due = self.process(key, run_id)
            except _Stop:
                pass
            except (errors.AuthError, errors.LockLost, errors.LedgerUnavailable, IconikUnreachable,
                    errors.PatchReplaced) as exc:
                self._abort(exc)  # every worker stops at once; rows stay as they are (resumable)
            except Exception as exc:  # a bug or a surprise must fail its row, never vanish with its thread
                try:
                    self.fail_row(key, run_id, exc)
                except Exception as again:
                    self._abort(again)
            finally:
                schedule.done(key, due)
            if due is None and not self._stop.is_set():
                with self._lock:
                    self._done += 1


class Engine(RowWorkers):
    """Runs one mode (dry or live) over the selected rows of a ledger with a pool of worker threads."""

    def __init__(self, ledger, client, options, on_event=None):
        super().__init__(ledger, client, options, on_event)
        self._hints = {}
        self._decisions = {}
        self._conflicts = {}
        self._no_more_writes = set()
        self._streak = 0
        self._connection_failures = {}
        self._read_ok = False
        self._held_forbidden = {}
        self._throttled_writes = {}

    # --- before the first row ----------------------------------------------------------------------

    def preflight(self):
        """The token's user and roles, before any row: raises AuthError, ConnectionFailed or EndpointError."""
        user = self.check_roles(READ_ROLES + (WRITE_ROLES if self.options.live else ()))
        if self.options.search and "can_search" not in self.roles:
            self.on_event("search_unavailable", error="the token's user lacks the role can_search")
        return user

    def select(self, run_id):
        """Choose the run's rows once, and reopen finished rows the options ask for (issue #10: resume
        continues exactly these rows and never reselects)."""
        options = self.options
        reopen = self.ledger.reopenable_keys(
            failed_reasons=RETRYABLE_REASONS if options.retry_failed else (), reasons=options.recheck,
            assets=options.assets, never=LOAD_REJECTIONS)
        keys = self.ledger.candidate_keys(assets=options.assets, limit=None)
        if not options.live:  # a dry run never resolves a write that may have landed: a live run does
            unfinished = set(self.ledger.candidate_keys(with_intent_only=True))
            keys = [key for key in keys if key not in unfinished]
        chosen = list(dict.fromkeys(keys + [key for key in reopen if key not in keys]))
        chosen = self._order(chosen)
        if options.limit:
            chosen = chosen[:options.limit]
        chosen_set = set(chosen)
        self.ledger.select_rows(run_id, chosen, reopen=[key for key in reopen if key in chosen_set])

    def _order(self, keys):
        rows = self.ledger.rows(keys)
        return sorted(keys, key=lambda key: (rows[key]["intent"] is None, _first_row(rows[key]), key))

    # --- the run's hooks ----------------------------------------------------------------------------

    def before_rows(self, keys):
        unfinished = self.unfinished_writes()
        if not self.options.live and unfinished:
            self.on_event("unfinished_writes", rows=unfinished)
        if self.options.search and "can_search" in self.roles:
            self._hints = self.search_hints(keys)

    def after_rows(self, run_id):
        self._fail_held_forbidden(run_id)

    def unfinished_writes(self):
        return len(self.ledger.candidate_keys(with_intent_only=True))

    def fail_row(self, key, run_id, exc):
        # An open write stays open: it may have been sent, and the next live run settles it (issue #15).
        self._fail(key, run_id, "internal_error", exc, keep_intent=True)

    # --- the search pre-pass ----------------------------------------------------------------------

    def search_hints(self, keys):
        """Decisions for many assets at once from Iconik's search index: {asset key: Decision}.

        Rows holding an intent and assets the index does not know are left out, so they get a per-asset read."""
        rows = self.ledger.rows(keys)
        batches = [keys[i:i + SEARCH_BATCH] for i in range(0, len(keys), SEARCH_BATCH)]
        hints = {}

        def one_batch(batch):
            if self._stop.is_set():
                return {}
            try:
                assets = self.client.search("assets", {"id": batch}, fields=ASSET_FIELDS)
                ordinary = [a["id"] for a in assets
                            if a.get("type") == rules.WRITABLE_TYPE and a.get("status") == "ACTIVE"]
                segments = self.client.search("segments", {"asset_id": ordinary, "segment_type": ["GENERIC"]},
                                              fields=SEGMENT_FIELDS) if ordinary else []
            except (errors.TransientError, errors.TerminalError) as exc:
                self.on_event("search_unavailable", error=str(exc))
                return {}
            except errors.AuthError as exc:
                self._abort(exc)
                return {}
            if assets:
                self._asset_read_ok()  # the token can read assets: a 403 on one of them is that asset's
            # Only documents that carry every field a decision needs are trusted: an index without an
            # asset's type could otherwise let a segment be written on a SUBCLIP.
            assets = [a for a in assets if rules.index_document_trusted(a, ASSET_REQUIRED)]
            if not all(rules.index_document_trusted(s, SEGMENT_REQUIRED) for s in segments):
                return {}
            generic = {}
            for segment in rules.generic_only(segments):
                generic.setdefault(segment["asset_id"], []).append(segment)
            found = {}
            for asset in assets:
                row = rows.get(asset["id"])
                if row is None or row["intent"]:
                    continue
                hint = rules.decide(asset, generic.get(asset["id"], []), row["time_start_ms"], row["time_end_ms"])
                hint.asset = asset
                found[row["asset_key"]] = hint
            return found

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.options.workers)) as pool:
            for found in pool.map(one_batch, batches):
                hints.update(found)
        return hints

    # --- one row --------------------------------------------------------------------------------------

    def process(self, key, run_id):
        """Work one row as far as it can go now; returns when to come back to it (epoch s), or None when done."""
        row = self.ledger.asset(key)
        try:
            reuse = None
            if row["intent"]:
                row, reuse = self._settle(row, run_id)
                if row is None:
                    return None
            return self._decide_and_write(row, run_id, reuse)
        except _Again as again:
            return again.due

    # --- an unfinished write: wait out its settle time, then find out what landed ----------------------

    def _settle(self, row, run_id):
        """Re-check a row's unfinished write once its settle time has passed; returns (row to go on with, or
        None when finished, and the logged write a re-send must reuse)."""
        key = row["asset_key"]
        write = self.ledger.open_write(key)
        if write.action not in SYNC_ACTIONS:  # an undo's or a repair's: that command settles it, never a run
            self.ledger.mark_rows_done(run_id, [key])
            return None, None
        due = (write.sent_at or 0) + self.options.settle  # a write never sent needs no wait
        if write.sent_at is not None and time.time() < due:
            self.on_event("settling", key=key, seconds=due - time.time())
            raise _Again(due)
        prior = {name: row[name] for name in ("state", "reason", "reason_text")}
        if row["state"] != CHECKED:
            self.ledger.move(key, CHECKED, run_id=run_id, detail="re-checking an unfinished write")
        try:
            landed = self._find_landed(key, write)
        except errors.NotFound:
            landed = None  # the asset is gone; nothing of ours can be there any more
        except errors.Duplicated as exc:
            self._fail(key, run_id, "duplicated", exc, change=WriteChange(write.intent_id, DUPLICATED))
            return None, None
        except (errors.TransientError, errors.Forbidden, errors.UnexpectedAnswer, errors.BadRequest) as exc:
            # Not settled: keep the intent, so the next run re-checks this row first (issue #10).
            self._fail(key, run_id, _reason_of(exc), exc, keep_intent=True)
            return None, None
        row = self.ledger.asset(key)
        same_times = (write.start_ms, write.end_ms) == (row["time_start_ms"], row["time_end_ms"])
        syncable = _syncable(row)
        if landed:
            state = CREATED if write.action == CREATE else UPDATED
            change = WriteChange(write.intent_id, APPLIED, after=landed, segment_id=landed["id"])
            history = _history(write, landed["id"])
            if same_times and syncable:
                self.ledger.move(key, state, run_id=run_id, done=True, writes=[change],
                                 detail=f"{write.action} confirmed by a settled re-check", segment_id=landed["id"],
                                 intent=None, reason=None, last_error=None, action=write.action, **history,
                                 reason_text=f"{write.action}d segment {landed['id']}, "
                                             f"{ms(write.start_ms, write.end_ms)}; its answer was lost, a settled "
                                             "re-check found it.")
                return None, None
            self.ledger.move(key, CHECKED, run_id=run_id, intent=None, segment_id=landed["id"], writes=[change],
                             **history, detail=f"an earlier {write.action} ({ms(write.start_ms, write.end_ms)}) "
                                               "landed; the sheet has changed since")
        else:
            self.ledger.move(key, CHECKED, run_id=run_id, intent=None,
                             writes=[WriteChange(write.intent_id, NOT_APPLIED)],
                             detail=f"the {write.action} did not land (settled re-check)")
        if not syncable:
            self.ledger.move(key, prior["state"] if prior["state"] != CHECKED else PENDING, run_id=run_id,
                             done=True, reason=prior["reason"], reason_text=prior["reason_text"],
                             detail="unfinished write resolved; the row is not for syncing now")
            return None, None
        return self.ledger.asset(key), (None if landed else write)

    def _find_landed(self, key, write):
        """The segment the write left in Iconik, or None. Raises errors.Duplicated when a create landed more
        than once."""
        if write.action == CREATE:
            mark = write.marker or rules.marker(write.intent_id)
            ours = [s for s in self._list_generic(key) if s.get("external_id") == mark]
            if len(ours) > 1:
                raise errors.Duplicated(ours)
            return ours[0] if ours else None
        segment = self._get_segment(key, write.segment_id)
        return segment if segment is not None and span(segment) == (write.start_ms, write.end_ms) else None

    # --- deciding and writing -------------------------------------------------------------------------

    def _decide_and_write(self, row, run_id, reuse):
        key = row["asset_key"]
        hint = self._hints.pop(key, None)
        if hint and _segment_of_record(row) and hint.asset.get("type") == rules.WRITABLE_TYPE:
            # The index may not show what reversesync last did to this segment (a create, an update, an undo's
            # delete): decide from a read of it by id instead, with the asset as the index has it.
            hint, indexed = None, hint.asset
        else:
            indexed = hint.asset if hint and self.options.live else None
        if hint and (hint.reason in SEARCH_FINAL_REASONS or hint.action and not self.options.live):
            hint.text += " (from Iconik's search index)"
            if hint.state:
                self._finish(row, run_id, hint)
            else:
                self._plan(row, run_id, hint)
            return None
        while True:
            decision = self._check(row, run_id, indexed)
            if decision is None:
                return None
            indexed = None  # a decision taken again after a failed write reads everything afresh
            if decision.state:
                self._finish(row, run_id, decision)
                return None
            if not self.options.live:
                self._plan(row, run_id, decision)
                return None
            if key in self._no_more_writes:
                return None
            if self._count_decision(key) > MAX_DECISIONS:
                self._fail(key, run_id, "conflict", errors.Conflict(
                    "PATCH", key, 409, "the segment kept changing or vanishing under reversesync"))
                return None
            if self._write(row, run_id, decision, reuse):
                return None
            row = self.ledger.asset(key)

    def _count_decision(self, key):
        with self._lock:
            self._decisions[key] = self._decisions.get(key, 0) + 1
            return self._decisions[key]

    def _check(self, row, run_id, indexed_asset=None):
        """A read of the asset (from the index, or fresh) and of its GENERIC segments, and the decision it
        leads to; None when the row was finished or set aside on the way."""
        key = row["asset_key"]
        try:
            asset = indexed_asset
            if asset is None:
                try:
                    asset = self._read(self.client.get_asset, key)
                except errors.NotFound:
                    asset = None
                self._asset_read_ok()
            generic = []
            if asset is not None and asset.get("type") == rules.WRITABLE_TYPE and asset.get("status") == rules.ACTIVE:
                generic = self._list_generic(key)
                self._asset_read_ok()
                generic = self._with_our_segment_fresh(row, generic)
            decision = rules.decide(asset, generic, row["time_start_ms"], row["time_end_ms"])
            self._streak = 0
            return decision
        except errors.Forbidden as exc:
            self._forbidden(row, run_id, exc, asset_read=indexed_asset is None)
        except (errors.ConnectionFailed, errors.ServerError) as exc:
            self._unavailable(row, run_id, exc)
        except (errors.TerminalError, errors.TransientError) as exc:
            self._fail(key, run_id, _reason_of(exc), exc)
        return None

    def _list_generic(self, key):
        """The asset's live GENERIC segments as its list shows them, less the ids a read by id found gone in this
        run: the list trails deletes (ICONIK-FACTS 7.1) and would keep offering them."""
        gone = self._gone.get(key, ())
        return [s for s in rules.generic_only(self._read(self.client.list_segments, key, "GENERIC"))
                if s.get("id") not in gone]

    def _with_our_segment_fresh(self, row, generic):
        """The GENERIC list with the row's segment of record read afresh by id: segment lists come from an index
        that trails writes (ICONIK-FACTS 7.1), reversesync's own included, so a segment just created can be
        missing, one just updated can show old times, one just deleted by an undo can still show."""
        ours = _segment_of_record(row)
        if not ours:
            return generic
        fresh = self._get_segment(row["asset_key"], ours)
        others = [s for s in generic if s.get("id") != ours]
        if fresh is not None and fresh.get("asset_id") == row["asset_key"]:
            others += rules.generic_only([fresh])
        return others

    def _write(self, row, run_id, decision, reuse):
        """Send one write with intent recorded first; True when the row is finished, False to decide again
        from a fresh read. Raises _Again to park the row when the write's outcome is unknown."""
        key = row["asset_key"]
        try:
            if decision.action == "create":
                return self._create(row, run_id, decision, reuse)
            return self._update(row, run_id, decision)
        except errors.UnknownOutcome as exc:
            write = self.ledger.open_write(key)
            self.ledger.move(key, CHECKED, run_id=run_id, last_error=str(exc)[:500],
                             writes=[WriteChange(write.intent_id, lost=True)],
                             reason_text=f"waiting to re-check: {exc.message}",
                             detail=f"outcome unknown ({exc.message}); re-checked {self.options.settle:.0f} s "
                                    "after the send")
            if self._decisions.get(key, 0) >= MAX_DECISIONS:
                self._fail(key, run_id, "unknown_outcome", exc, keep_intent=True)
                return True
            self.on_event("answer_lost", key=key, settle=self.options.settle)
            raise _Again((write.sent_at or time.time()) + self.options.settle) from None
        except errors.AuthError:
            self._clear_intent(key, run_id, "401: not applied")
            raise
        except errors.Conflict as exc:
            self._clear_intent(key, run_id, "409 conflict: not applied; reading again and deciding again")
            if self._count(self._conflicts, key) >= MAX_CONFLICTS:
                self._fail(key, run_id, "conflict", exc)
                return True
            return False
        except errors.RateLimited as exc:
            # Not applied, and the pause may be long: a person may change the segment meanwhile, so the row is
            # read again after it (the pacer holds every read until Retry-After) and decided again (issue #15).
            self._clear_intent(key, run_id, "429: not applied; reading again after the pause and deciding again")
            with self._lock:  # a 429 says nothing about the segment: it has a budget of its own, not MAX_DECISIONS
                self._decisions[key] -= 1
            if self._count(self._throttled_writes, key) >= MAX_THROTTLED_WRITES:
                self._fail(key, run_id, "rate_limited", exc)
                return True
            return False
        except errors.NotFound as exc:
            if decision.action == "create":
                self._clear_intent(key, run_id, "the asset vanished")
                self._fail(key, run_id, "not_found", exc)
                return True
            with self._lock:
                self._gone.setdefault(key, set()).add(decision.segment["id"])
            self._clear_intent(key, run_id, "the segment vanished; deciding again")
            return False
        except errors.ConnectionFailed as exc:  # provably never sent
            self._clear_intent(key, run_id, "never sent")
            self._unavailable(row, run_id, exc)
            return True
        except errors.Forbidden as exc:
            self._fail(key, run_id, "forbidden", exc)
            return True
        except errors.TerminalError as exc:
            self._fail(key, run_id, "bad_request", exc)
            return True
        except errors.TransientError as exc:
            self._fail(key, run_id, _reason_of(exc), exc)
            return True

    def _create(self, row, run_id, decision, reuse):
        key = row["asset_key"]
        start, end = row["time_start_ms"], row["time_end_ms"]
        # A re-send of the same write reuses its intent, so every copy of it carries one marker and one owner.
        same = reuse is not None and reuse.action == CREATE and (reuse.start_ms, reuse.end_ms) == (start, end)
        intent_id = reuse.intent_id if same else uuid.uuid4().hex
        write = self._record_intent(row, run_id, decision, Intent(intent_id, CREATE, "POST",
                                                                  marker=rules.marker(intent_id), start_ms=start,
                                                                  end_ms=end))
        answer = self._send(key, self.client.create_segment, key, start, end, external_id=write.marker)
        problem = rules.created_answer_problem(answer, key)
        if problem:
            self._no_more_writes.add(key)  # no further write to this asset in this run (issue #9)
            self._fail(key, run_id, "unexpected_answer", errors.UnexpectedAnswer("POST", key, 201, problem),
                       change=WriteChange(write.intent_id, APPLIED, after=answer if isinstance(answer, dict) else None))
            return True
        self._done_writing(row, run_id, write, answer, decision, 201)
        return True

    def _update(self, row, run_id, decision):
        key = row["asset_key"]
        start, end = row["time_start_ms"], row["time_end_ms"]
        # The list said "update this one"; only a fresh read by id decides whether a PATCH may go (issue #9), and
        # it is the before-image the write log keeps, every field as read.
        current = self._get_segment(key, decision.segment["id"])
        if current is None:
            return False
        problem = rules.update_target_problem(current, decision.segment["id"])
        if problem and problem[0] in ("subclip_linked", "segment_status"):
            why = ("it is a subclip's range, not this clip's, so nothing was written" if problem[0] == "subclip_linked"
                   else "nothing was written; check it in Iconik, then run --recheck segment_status")
            return self._finish(row, run_id, Decision(state=SKIPPED, reason=problem[0], segment=current,
                                                      text=f"{problem[1]}; {why}."))
        if problem:
            return False
        if span(current) == (start, end):
            return self._finish(row, run_id, Decision(
                state=SKIPPED, reason="in_sync", segment=current,
                text=f"GENERIC segment {current['id']} already spans {ms(start, end)}."))
        write = self._record_intent(row, run_id, decision, Intent(uuid.uuid4().hex, UPDATE, "PATCH",
                                                                  segment_id=current["id"], before=current,
                                                                  start_ms=start, end_ms=end))
        answer = self._send(key, self.client.patch_segment_times, key, current["id"], start, end)
        self._done_writing(row, run_id, write, answer, decision, 200)
        self._check_patch_kept(current, answer)
        return True

    def _record_intent(self, row, run_id, decision, intent):
        return self.ledger.record_intent(
            row["asset_key"], intent, run_id=run_id, to_state=CHECKED, detail=f"about to {decision.text}",
            action=decision.action, attempts=(self.ledger.asset(row["asset_key"])["attempts"] or 0) + 1, reason=None,
            reason_text=f"writing: {decision.text}")

    def _clear_intent(self, key, run_id, why):
        """The open write was not applied (Iconik refused it, or it never left): the row no longer holds it."""
        write = self.ledger.open_write(key)
        self.ledger.move(key, CHECKED, run_id=run_id, intent=None, detail=f"write not applied: {why}",
                         writes=[WriteChange(write.intent_id, NOT_APPLIED)] if write else [])

    def _done_writing(self, row, run_id, write, answer, decision, status):
        state = CREATED if write.action == CREATE else UPDATED
        segment_id = answer.get("id") or write.segment_id
        self.ledger.move(row["asset_key"], state, run_id=run_id, done=True,
                         writes=[WriteChange(write.intent_id, APPLIED, after=answer, segment_id=segment_id)],
                         detail=f"{write.action}d segment {segment_id}", segment_id=segment_id, intent=None,
                         http_status=status, reason=None, last_error=None, **_history(write, segment_id),
                         reason_text=f"{decision.text[0].upper()}{decision.text[1:]}: done.")

    # --- finishing rows ---------------------------------------------------------------------------------

    def _plan(self, row, run_id, decision):
        self.ledger.move(row["asset_key"], CHECKED, run_id=run_id, done=True, detail=f"would {decision.text}",
                         action=decision.action, reason=None, reason_text=f"would {decision.text}")

    def _finish(self, row, run_id, decision):
        self.ledger.move(row["asset_key"], decision.state, run_id=run_id, done=True, detail=decision.reason,
                         reason=decision.reason, reason_text=decision.text, intent=None,
                         segment_id=(decision.segment or {}).get("id") or row["segment_id"], action=None,
                         http_status=404 if decision.reason == "not_found" else 200)
        return True

    def _fail(self, key, run_id, reason, exc, keep_intent=False, change=None):
        """Fail the row. Unless keep_intent, the open write is let go: settled as change says, else as not
        applied (the failures that clear it are refusals)."""
        fields, writes = {}, []
        if not keep_intent:
            fields["intent"] = None
            write = self.ledger.open_write(key)
            if change is not None or write is not None:
                writes = [change or WriteChange(write.intent_id, NOT_APPLIED)]
        self.ledger.move(key, FAILED, run_id=run_id, done=True, detail=f"{reason}: {exc}", reason=reason,
                         reason_text=_failure_text(reason, exc), last_error=str(exc)[:500],
                         http_status=getattr(exc, "status", None), writes=writes, **fields)
        return True

    # --- stopping rules ---------------------------------------------------------------------------------

    def _asset_read_ok(self):
        if not self._read_ok:
            with self._lock:
                self._read_ok = True

    def _forbidden(self, row, run_id, exc, asset_read):
        """A 403 on one asset fails that row (issue #9), unless the token has read none of the first
        FORBIDDEN_PROBE assets: then it can read nothing, and the run stops with those rows still pending."""
        key = row["asset_key"]
        with self._lock:
            probing = asset_read and not self._read_ok
            if probing:
                self._held_forbidden[key] = exc
                if len(self._held_forbidden) >= FORBIDDEN_PROBE:
                    self._fatal = self._fatal or errors.AuthError(
                        "GET", "/API/assets/v1/assets/", 403,
                        f"the token's user may read none of the first {FORBIDDEN_PROBE} assets ({exc.message})")
                    self._stop.set()
        if probing:
            if self._read_ok:  # a read succeeded meanwhile: this one is a per-asset refusal after all
                self._fail_held_forbidden(run_id)
            raise _Stop()
        self._fail(key, run_id, "forbidden", exc)

    def _fail_held_forbidden(self, run_id):
        with self._lock:
            held, self._held_forbidden = self._held_forbidden, {}
        for key, exc in held.items():
            self._fail(key, run_id, "forbidden", exc)

    def _unavailable(self, row, run_id, exc):
        """Connection failures or 5xx answers after retries: a streak of them means Iconik went away or is
        failing (stop, rows stay pending); a row that keeps failing while others succeed is failed."""
        key = row["asset_key"]
        with self._lock:
            self._streak += 1
            streak = self._streak
            tries = self._connection_failures[key] = self._connection_failures.get(key, 0) + 1
        if streak >= CONNECTION_STREAK_STOP:
            what = "connection failures" if isinstance(exc, errors.ConnectionFailed) else "failures"
            raise IconikUnreachable(exc.method, exc.path, None, f"{streak} {what} in a row ({exc})")
        if tries >= 3:
            self._fail(key, run_id, _reason_of(exc), exc)
            return
        raise _Again(time.time() + 2.0 * tries)


def _first_row(row):
    try:
        return int(str(row["row_numbers"]).split(",")[0])
    except ValueError:
        return 0


def _segment_of_record(row):
    """The segment the ledger ties to this row (the one reversesync wrote, or found in sync), or None."""
    return row["done_segment_id"] or row["segment_id"]


def _syncable(row):
    return bool(row["in_source"]) and row["reason"] not in LOAD_REJECTIONS and row["time_start_ms"] is not None


def _history(write, segment_id):
    """The columns that show what reversesync last did to a row across later re-checks (issue #11); the write
    log holds the rest. The run is the write's owner, the run that recorded it (issue #15)."""
    return {"done_action": write.action, "done_segment_id": segment_id, "done_run_id": write.run_id,
            "done_before": None, "done_start_ms": write.start_ms, "done_end_ms": write.end_ms}


def _reason_of(exc):
    if isinstance(exc, errors.Forbidden):
        return "forbidden"
    if isinstance(exc, errors.UnexpectedAnswer):
        return "unexpected_answer"
    if isinstance(exc, errors.RateLimited):
        return "rate_limited"
    if isinstance(exc, errors.ConnectionFailed):
        return "connection_error"
    if isinstance(exc, errors.UnknownOutcome):
        return "unknown_outcome"
    if isinstance(exc, errors.TerminalError):
        return "bad_request"
    return "server_error"


def _failure_text(reason, exc):
    advice = {
        "bad_request": "Iconik rejected the request; read its message, fix the row, then load and run again.",
        "conflict": "the segment kept changing under reversesync; run again with --retry-failed.",
        "server_error": "Iconik kept failing after retries; run again later with --retry-failed.",
        "connection_error": "Iconik could not be reached after retries; run again with --retry-failed.",
        "rate_limited": "Iconik kept answering 429; run again with a lower --rate and --retry-failed.",
        "unknown_outcome": "the write's answers kept getting lost; the next run re-checks it first.",
        "forbidden": "the token's user may not read or write this asset; grant access in Iconik, then run again "
                     "with --retry-failed.",
        "unexpected_answer": "Iconik answered in a shape reversesync cannot decide from; nothing more was written "
                             "to this asset. Report it with this text.",
        "duplicated": "a write whose answer was lost landed more than once; keep one segment and delete the others "
                      "in Iconik (reversesync verify lists them).",
        "internal_error": "reversesync hit an unexpected error on this row; please report it with this text.",
    }.get(reason, "")
    message = getattr(exc, "message", "") or str(exc)
    return f"{advice} ({message})" if advice else message
