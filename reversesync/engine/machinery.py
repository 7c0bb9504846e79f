"""The row machinery every kind of run shares (a sync, an undo, a repair): a pool of workers over the run's rows,
rows parked until they are due without holding a worker, intents logged before writes, the stop rules (a lost
lock, a 401, an Iconik gone silent or failing), Ctrl-C, progress events, and the run's record.

A kind of run only decides: which rows it takes (select) and what one row needs now (process). Its steps go
through the public methods here, so every kind of run records, sends, parks and settles alike.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from .. import errors, progress, rules
from ..clock import SYSTEM, Clock
from ..iconik import IconikClient
from ..ledger import Ledger
from ..types import NOT_APPLIED, Intent, Json, Kind, RunOptions, RunResult, Write, WriteChange

T = TypeVar("T")

# Iconik gone away (issue #11, #15): this many connection failures or 5xx answers (after retries) in a row, or
# this long with no answer at all while requests wait, stops the run (exit 3); the rows of the streak stay pending.
CONNECTION_STREAK_STOP = 10
SILENCE_STOP = 30.0
# How often the main thread looks at the stop rules and reports progress while workers run.
TICK = 0.2
# A write answered 409 is read again and decided again this many times, one answered 429 this many times.
MAX_CONFLICTS = 4
MAX_THROTTLED = 20


class Park(Exception):
    """The row cannot go on now: work it again at `due` (epoch seconds), without holding a worker."""

    def __init__(self, due: float) -> None:
        super().__init__(due)
        self.due = due


class Stopping(Exception):
    """Raised inside a worker when the run is stopping: leave the row as it is."""


class DecideAgain(Exception):
    """A write was refused without being applied (409, 429, a connection never made): read the target again and
    decide again (issue #15)."""


class StaleDecision(Exception):
    """Raised as a write was about to go on the wire (nothing sent): the index answer it was decided from is older
    than the freshness limit (issue #19). Decide again from a younger one."""


class Schedule:
    """The run's rows: ready ones in order, parked ones by the time they are due, and how many are in hand.

    Workers wait on one Condition: a row handed back, a parked row falling due or the run stopping wakes them."""

    def __init__(self, keys: Iterable[str], clock: Clock) -> None:
        self._ready = list(reversed(list(keys)))
        self._parked: list[tuple[float, str]] = []
        self._busy = 0
        self._clock = clock
        self.changed = threading.Condition()

    def take(self, stop: threading.Event) -> str | None:
        """The next row to work, parked rows first once due; None when nothing is left or the run stops."""
        with self.changed:
            while not stop.is_set():
                now = self._clock.time()
                if self._parked and self._parked[0][0] <= now:
                    self._busy += 1
                    return heapq.heappop(self._parked)[1]
                if self._ready:
                    self._busy += 1
                    return self._ready.pop()
                if not self._parked and not self._busy:
                    return None
                self._clock.wait(self.changed, self._parked[0][0] - now if self._parked else None)
            return None

    def done(self, key: str, due: float | None = None) -> None:
        with self.changed:
            self._busy -= 1
            if due is not None:
                heapq.heappush(self._parked, (due, key))
            self.changed.notify_all()

    def wake(self) -> None:
        """Wake every waiting worker (the run is stopping)."""
        with self.changed:
            self.changed.notify_all()

    def parked(self) -> tuple[int, float, float]:
        """(rows parked, seconds until the next is due, seconds until the last is due)."""
        with self.changed:
            if not self._parked:
                return 0, 0.0, 0.0
            now = self._clock.time()
            return (len(self._parked), max(0.0, self._parked[0][0] - now),
                    max(0.0, max(due for due, *_ in self._parked) - now))


def check_roles(client: IconikClient, needed: Iterable[str]) -> tuple[Json, set[str]]:
    """(the token's user, its roles), once its roles are checked: AuthError names the missing ones. Every command
    that reads Iconik starts with it (the preflight)."""
    user = client.current_user()
    roles = client.current_roles()
    missing = [role for role in needed if role not in roles]
    if missing:
        raise errors.AuthError("GET", "/API/users/v1/users/current/roles/", 403,
                               f"the token's user lacks the role{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return user, roles


class Machinery:
    """A run of some kind over its rows. Subclasses say which rows (select) and what one row needs (process)."""

    thread_name = "worker"

    def __init__(self, ledger: Ledger, client: IconikClient, options: RunOptions,
                 sink: progress.Sink = progress.ignore, clock: Clock = SYSTEM) -> None:
        self.ledger = ledger
        self.client = client
        self.options = options
        self.sink = sink
        self.clock = clock
        self.roles: set[str] = set()
        self.stop = threading.Event()
        self.fatal: BaseException | None = None
        self._done = 0
        self._lock = threading.Lock()
        self._gone: dict[str, set[str]] = {}  # asset key -> ids of segments a read by id found gone in this run
        self._replaced: list[tuple[str | None, str | None, list[str]]] = []  # segments a PATCH replaced
        self._attempts: dict[tuple[str, str], int] = {}
        self._streak = 0
        self._schedule: Schedule | None = None

    # --- what a kind of run decides ---------------------------------------------------------------------

    def preflight(self) -> Json:
        """The token's user, once its roles are checked for this kind of run, before any row."""
        raise NotImplementedError

    def select(self, run_id: int) -> None:
        """Fix the run's rows (Ledger.select_rows), once."""
        raise NotImplementedError

    def process(self, key: str, run_id: int) -> float | None:
        """Work one row as far as it can go now; when to come back to it (epoch s), or None when it is done.
        May raise Park (come back later) or Stopping."""
        raise NotImplementedError

    def fail_row(self, key: str, run_id: int, exc: BaseException) -> None:
        """Record an unexpected error against the row (internal_error), leaving an open write open."""
        raise NotImplementedError

    def label(self) -> str:
        return "live" if self.options.live else "dry"

    def result_mode(self) -> str:
        return "live" if self.options.live else "dry"

    def unfinished_writes(self) -> int:
        """Rows left holding a write of this kind of run open."""
        return 0

    def before_rows(self, keys: list[str]) -> None:
        """Work done before the workers start (the search pre-pass)."""

    def after_rows(self, run_id: int) -> None:
        """Work done once every row is through, unless the run stopped."""

    # --- steps every kind of run takes ------------------------------------------------------------------

    def check_roles(self, needed: Iterable[str]) -> Json:
        """The token's user, after checking its roles: AuthError names the missing ones."""
        user, self.roles = check_roles(self.client, needed)
        return user

    def read(self, call: Callable[..., T], *args: Any) -> T:
        """A read of Iconik, unless the run is stopping."""
        if self.stop.is_set():
            raise Stopping()
        return call(*args)

    def read_segment(self, key: str, segment_id: str) -> Json | None:
        """A fresh read of one segment by id; None when it is gone (404 or DELETED), remembered for the run: the
        lagging lists would keep offering it (ICONIK-FACTS 7.1)."""
        try:
            segment = self.read(self.client.get_segment, key, segment_id)
        except errors.NotFound:
            segment = None
        if rules.is_absent(segment):
            self.forget_segment(key, segment_id)
            return None
        return segment

    def forget_segment(self, key: str, segment_id: str) -> None:
        with self._lock:
            self._gone.setdefault(key, set()).add(segment_id)

    def gone(self, key: str) -> set[str]:
        """The ids of the asset's segments this run found gone."""
        with self._lock:
            return set(self._gone.get(key, ()))

    def live_generic(self, key: str) -> list[Json]:
        """The asset's live GENERIC segments as its list shows them, less the ids found gone in this run."""
        gone = self.gone(key)
        return [s for s in rules.generic_only(self.read(self.client.list_segments, key, "GENERIC"))
                if s.get("id") not in gone]

    def record_intent(self, key: str, intent: Intent, *, run_id: int, to_state: str, kind: str, detail: str,
                      **fields: Any) -> Write:
        """Log a write about to be sent, with the row's move (Ledger.record_intent)."""
        return self.ledger.record_intent(key, intent, run_id=run_id, to_state=to_state, kind=kind, detail=detail,
                                         **fields)

    def send(self, key: str, call: Callable[..., T], *args: Any, fresh_until: float | None = None,
             **kwargs: Any) -> T:
        """Send the row's logged write; the moment it goes on the wire is recorded first (its settle time counts
        from there, and it is the last check that this process still holds the lock). With fresh_until (the clock's
        monotonic time), a write that would leave later, the pacer having held it, is not sent: StaleDecision."""
        if self.stop.is_set():
            raise Stopping()

        def on_send() -> None:
            if fresh_until is not None and self.clock.monotonic() > fresh_until:
                raise StaleDecision()
            self.ledger.mark_sent(key)

        return call(*args, on_send=on_send, **kwargs)

    def park_lost(self, key: str, run_id: int, exc: errors.IconikError, to_state: str, **fields: Any) -> Park:
        """The answer to the row's write was lost: the write stays open and may land late, so the row is parked
        until the settle time has passed since it was sent, then re-checked (never re-sent blindly)."""
        write = self.ledger.open_write(key)
        assert write is not None, "a write whose answer was lost is open"
        self.ledger.move(key, to_state, run_id=run_id, kind="outcome_unknown", last_error=str(exc)[:500],
                         writes=[WriteChange(write.intent_id, lost=True)], **fields,
                         detail=f"outcome unknown ({exc.message}); re-checked {self.options.settle:.0f} s after the "
                                "send")
        self.sink(progress.AnswerLost(key, self.options.settle))
        return Park((write.sent_at or self.clock.time()) + self.options.settle)

    def wait_out(self, key: str, sent_at: float | None) -> None:
        """A write that may still land: park the row until its settle time has passed since its last send (a
        write never sent needs no wait)."""
        if sent_at is None:
            return
        due = sent_at + self.options.settle
        now = self.clock.time()
        if now < due:
            self.sink(progress.Settling(key, due - now))
            raise Park(due)

    def write_once(self, key: str, run_id: int, intent: Intent, kind: str, call: Callable[..., Json],
                   *args: Any) -> Json | None:
        """Log one write, send it and return its answer, the row's state unchanged; None when its target was
        already gone (404: the write is settled as not applied).

        A write refused without being applied (409, 429, a connection never made) is settled as not applied and
        raises DecideAgain: the caller reads again and decides again (issue #15). Past its budget it raises a
        ServerError for the row. A lost answer parks the row (Park) until the settle time has passed."""
        state = self._state(key)
        self.record_intent(key, intent, run_id=run_id, to_state=state, kind=Kind.INTENT,
                           detail=f"{kind}: about to {intent.action} segment {intent.segment_id}")
        try:
            return self.send(key, call, *args)
        except errors.NotFound:
            self.settle_own(key, run_id, intent.intent_id, NOT_APPLIED, kind, "404: the segment is already gone")
            return None
        except errors.UnknownOutcome as exc:
            raise self.park_lost(key, run_id, exc, state) from None
        except errors.AuthError:
            self.settle_own(key, run_id, intent.intent_id, NOT_APPLIED, kind, "401: not applied")
            raise
        except (errors.Conflict, errors.RateLimited, errors.ConnectionFailed) as exc:
            self.settle_own(key, run_id, intent.intent_id, NOT_APPLIED, kind,
                            f"{exc.status or 'never sent'}: not applied; reading again and deciding again")
            self._refused(key, exc)
            raise DecideAgain() from None

    def _refused(self, key: str, exc: errors.IconikError) -> None:
        """Count a write refused unapplied; past its budget, the row fails (or waits, for a connection)."""
        if isinstance(exc, errors.RateLimited):
            if self.attempt("throttled", key) >= MAX_THROTTLED:
                raise errors.ServerError(exc.method, exc.path, 429, f"kept answering 429 ({exc.message})")
        elif isinstance(exc, errors.ConnectionFailed):
            tries = self.attempt("never_sent", key)
            if tries >= 3:
                raise errors.ServerError(exc.method, exc.path, None, exc.message)
            raise Park(self.clock.time() + 2.0 * tries)
        elif self.attempt("conflict", key) >= MAX_CONFLICTS:
            raise errors.ServerError(exc.method, exc.path, 409, "the segment kept changing under reversesync")

    def settle_own(self, key: str, run_id: int, intent_id: str, outcome: str, kind: str, why: str,
                   after: Json | None = None, more: Sequence[WriteChange] = ()) -> None:
        """Settle the row's open write and let the row go of it, with its state unchanged."""
        self.ledger.move(key, self._state(key), run_id=run_id, kind=kind, intent=None,
                         writes=[WriteChange(intent_id, outcome, after=after), *more], detail=f"{kind}: {why}")

    def _state(self, key: str) -> str:
        row = self.ledger.asset(key)
        assert row is not None, f"a row of the run {key} is in the ledger"
        return str(row["state"])

    def attempt(self, what: str, key: str) -> int:
        """Count one more attempt of `what` on the row in this run; returns the count."""
        with self._lock:
            count = self._attempts[(what, key)] = self._attempts.get((what, key), 0) + 1
            return count

    def forgive(self, what: str, key: str) -> None:
        """Take back the last attempt of `what` on the row: it told nothing about the segment (a 429)."""
        with self._lock:
            self._attempts[(what, key)] = max(0, self._attempts.get((what, key), 0) - 1)

    def attempts(self, what: str, key: str) -> int:
        with self._lock:
            return self._attempts.get((what, key), 0)

    def check_patch_kept(self, before: Json, answer: Json) -> None:
        """Stop every further write if a PATCH of the times changed any other field: Iconik's PATCH would then
        replace like a PUT, and each further one would reset a person's work (issue #15)."""
        changed = rules.patch_replaced(before, answer)
        if not changed:
            return
        with self._lock:
            self._replaced.append((before.get("asset_id"), before.get("id"), changed))
        raise errors.PatchReplaced(self._replaced)

    def answered(self) -> None:
        """A request of a row was answered: any streak of failures is over."""
        with self._lock:
            self._streak = 0

    def unavailable(self, key: str, exc: errors.TransientError) -> None:
        """Connection failures or 5xx answers after retries: a streak of them means Iconik went away or is
        failing (the run stops, rows stay pending); a row that fails while others succeed is tried again later,
        and returns (to be failed by the caller) after three tries."""
        with self._lock:
            self._streak += 1
            streak = self._streak
        tries = self.attempt("unavailable", key)
        if streak >= CONNECTION_STREAK_STOP:
            what = "connection failures" if isinstance(exc, errors.ConnectionFailed) else "failures"
            raise errors.IconikUnreachable(exc.method, exc.path, None, f"{streak} {what} in a row ({exc})")
        if tries < 3:
            raise Park(self.clock.time() + 2.0 * tries)

    # --- the run ------------------------------------------------------------------------------------------

    def run(self, run_id: int) -> RunResult:
        """Work the run's unfinished rows; returns a RunResult. Ctrl-C (or a closed stdout) stops taking rows."""
        began = self.clock.monotonic()
        record = self.ledger.run(run_id)
        if record is None or record["selected_at"] is None:
            self.select(run_id)
        keys = self.ledger.run_keys(run_id)
        self.sink(progress.RunStarted(run_id, self.label(), len(keys), self.ledger.run_size(run_id)))
        status = "finished"
        schedule = self._schedule = Schedule(keys, self.clock)
        threads: list[threading.Thread] = []
        try:
            self.before_rows(keys)
            threads = [threading.Thread(target=self._worker, args=(schedule, run_id),
                                        name=f"{self.thread_name}-{n}", daemon=True)
                       for n in range(max(1, min(self.options.workers, len(keys) or 1)))]
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                with schedule.changed:
                    self.clock.wait(schedule.changed, TICK)
                self._watch(schedule)
                self._progress(schedule, len(keys), began)
        except (KeyboardInterrupt, BrokenPipeError):
            status = "interrupted"
            self._stopping(schedule)
            self.sink(progress.Stopping())
            _join(threads)
        if not self.stop.is_set():
            self.after_rows(run_id)
        if self.fatal is not None:
            status = "aborted"
        return self._close(run_id, status, len(keys), began, schedule)

    def _close(self, run_id: int, status: str, rows: int, began: float, schedule: Schedule) -> RunResult:
        stats = self.client.stats
        counts = self.ledger.run_counts(run_id)
        elapsed = self.clock.monotonic() - began
        self.ledger.finish_run(run_id, status, counts, stats.requests, stats.throttled, stats.writes, elapsed)
        result = RunResult(run_id, self.result_mode(), status, counts, stats.requests, stats.writes, stats.throttled,
                           elapsed, rows, self.fatal, self.unfinished_writes())
        self._progress(schedule, rows, began, final=True)
        return result

    def _progress(self, schedule: Schedule, total: int, began: float, final: bool = False) -> None:
        parked, next_due, last_due = schedule.parked()
        stats = self.client.stats
        self.sink(progress.Tick(self._done, total, stats.requests, self.clock.monotonic() - began, parked, next_due,
                                stats.waiting_for(), final, last_due))

    def _watch(self, schedule: Schedule) -> None:
        """Stop the run when its lock is gone or Iconik has stopped answering altogether."""
        if self.ledger.lock_lost.is_set() and self.fatal is None:
            self.abort(errors.LockLost(f"another process took the lock of {self.ledger.path}; this one stopped "
                                       "at once, leaving its unfinished rows for a resume."))
        silence_limit = max(SILENCE_STOP, self.options.read_timeout + 5)
        silent = self.client.stats.waiting_for()
        if silent > silence_limit and self.fatal is None:
            self.abort(errors.IconikUnreachable(
                "GET", "", None, f"Iconik at {self.client.url} gave no answer at all for {silent:.0f} s"))

    def abort(self, exc: BaseException) -> None:
        """Stop every worker at once; rows stay as they are (resumable). The first cause is the one reported."""
        with self._lock:
            if self.fatal is None:
                self.fatal = exc
        if self._schedule is not None:
            self._stopping(self._schedule)
        else:
            self.stop.set()

    def _stopping(self, schedule: Schedule) -> None:
        self.stop.set()
        schedule.wake()

    def _worker(self, schedule: Schedule, run_id: int) -> None:
        while True:
            key = schedule.take(self.stop)
            if key is None:
                with schedule.changed:
                    schedule.changed.notify_all()  # the main thread notices the last worker end at once
                return
            due = None
            try:
                due = self.process(key, run_id)
            except Park as park:
                due = park.due
            except Stopping:
                pass
            except (errors.AuthError, errors.LockLost, errors.LedgerUnavailable, errors.IconikUnreachable,
                    errors.PatchReplaced) as exc:
                self.abort(exc)
            except Exception as exc:  # a bug or a surprise must fail its row, never vanish with its thread
                try:
                    self.fail_row(key, run_id, exc)
                except Exception as again:
                    self.abort(again)
            finally:
                schedule.done(key, due)
            if due is None and not self.stop.is_set():
                with self._lock:
                    self._done += 1


def _join(threads: list[threading.Thread]) -> None:
    """Wait for the requests in flight; in short steps, so that a second Ctrl-C lands at once (before Python 3.14
    a join cannot be interrupted) and abandons them: their rows keep their logged writes open."""
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)
    except KeyboardInterrupt:
        pass
