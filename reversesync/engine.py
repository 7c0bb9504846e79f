"""The sync engine: decide each asset from a fresh read, record intent, write, record the result.

Every row moves pending -> checked -> created | updated | skipped | failed through Ledger.move, one
committed transaction per step, so a run killed at any instant resumes without a duplicate or a lost row.
The engine prints nothing: it reports through the on_event callback, which the CLI renders.
"""

import concurrent.futures
import dataclasses
import json
import queue
import threading
import time

from . import errors
from .iconik import READ_ROLES, WRITE_ROLES
from .ledger import CHECKED, CREATED, FAILED, PENDING, SKIPPED, UPDATED

# Created segments carry this in external_id so that people and later runs can tell them apart.
MARKER = "reversesync"

# How many times one row is decided again after a write that conflicted, vanished or has an unknown
# outcome, before it is failed.
MAX_DECISIONS = 4

# Failed rows whose cause may pass; --retry-failed sends them back to pending.
RETRYABLE_REASONS = ("server_error", "connection_error", "rate_limited", "conflict", "unknown_outcome")

# Assets per batched search request (issue #6): Iconik's search takes a list of ids per term.
SEARCH_BATCH = 100

# A decision from the search index may finish a row only when it writes nothing; a write is always
# decided from a fresh per-asset read, since the index can lag.
SEARCH_FINAL_REASONS = ("in_sync", "subclip_mismatch", "asset_deleted", "ambiguous")
SEGMENT_FIELDS = ("id", "asset_id", "segment_type", "time_start_milliseconds", "time_end_milliseconds")

# Reasons given at load time: the sheet row itself is unusable, so no run can help until it is fixed.
LOAD_REJECTIONS = ("invalid", "no_timecode", "duplicate_conflict")


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

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data):
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["assets"] = tuple(values.get("assets") or ())
        values["recheck"] = tuple(values.get("recheck") or ())
        return cls(**values)


@dataclasses.dataclass
class Decision:
    """What one fresh read says to do: create, update, or finish the row as state/reason."""

    action: str = None            # "create" / "update" / None
    state: str = None             # final state when there is nothing to write
    reason: str = None
    text: str = ""
    segment: dict = None          # the segment to update, or the one already in sync
    asset: dict = None            # the asset it was decided from


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


def _ms(start, end):
    return f"{start}-{end} ms"


def decide(asset, generic_segments, start, end):
    """The decision rules of issue #4, from the asset and its GENERIC segments as just read."""
    if asset is None:
        return Decision(state=FAILED, reason="not_found",
                        text="Iconik has no asset with this id (404); check the id in the sheet.")
    if asset.get("status") == "DELETED":
        return Decision(state=SKIPPED, reason="asset_deleted", text="the asset is deleted in Iconik; nothing written.")
    if asset.get("type") == "SUBCLIP":
        # A SUBCLIP's in/out points are its own fields; a segment on it would be a wrong write (FACTS 4.2).
        found = (asset.get("time_start_milliseconds"), asset.get("time_end_milliseconds"))
        if found == (start, end):
            return Decision(state=SKIPPED, reason="in_sync", text=f"SUBCLIP already spans {_ms(start, end)}.")
        return Decision(state=SKIPPED, reason="subclip_mismatch",
                        text=f"SUBCLIP spans {_ms(*found)} but the sheet says {_ms(start, end)}; a SUBCLIP's "
                             "range belongs to its parent's segment, so nothing was written. Fix it by hand.")
    equal = [s for s in generic_segments
             if (s.get("time_start_milliseconds"), s.get("time_end_milliseconds")) == (start, end)]
    if equal:
        return Decision(state=SKIPPED, reason="in_sync", segment=equal[0],
                        text=f"GENERIC segment {equal[0]['id']} already spans {_ms(start, end)}.")
    if not generic_segments:
        return Decision(action="create", text=f"create a GENERIC segment {_ms(start, end)}")
    if len(generic_segments) == 1:
        segment = generic_segments[0]
        return Decision(action="update", segment=segment,
                        text=f"update GENERIC segment {segment['id']} from "
                             f"{_ms(segment.get('time_start_milliseconds'), segment.get('time_end_milliseconds'))} "
                             f"to {_ms(start, end)}")
    listed = "; ".join(f"{s['id']} {_ms(s.get('time_start_milliseconds'), s.get('time_end_milliseconds'))}"
                       for s in generic_segments)
    return Decision(state=SKIPPED, reason="ambiguous",
                    text=f"{len(generic_segments)} GENERIC segments and none spans {_ms(start, end)} ({listed}); "
                         "delete the wrong ones in Iconik, then run again.")


class _Stop(Exception):
    """Raised inside a worker when the run is stopping: leave the row as it is."""


class Engine:
    """Runs one mode (dry or live) over the eligible rows of a ledger with a pool of worker threads."""

    def __init__(self, ledger, client, options, on_event=None):
        self.ledger = ledger
        self.client = client
        self.options = options
        self.on_event = on_event or (lambda kind, **data: None)
        self._stop = threading.Event()
        self._fatal = None
        self._done = 0
        self._done_lock = threading.Lock()
        self._hints = {}

    # --- the run ----------------------------------------------------------------------------------

    def preflight(self):
        """Credentials and roles, before any row: raises AuthError or ConnectionFailed."""
        roles = self.client.current_roles()
        needed = READ_ROLES + (WRITE_ROLES if self.options.live else ())
        missing = [role for role in needed if role not in roles]
        if missing:
            raise errors.AuthError("GET", "/API/users/v1/users/current/roles/", 403,
                                   f"the token lacks the role {', '.join(missing)}; grant it in Iconik "
                                   "(Admin > Roles) and run again. Nothing was written.")
        return roles

    def eligible_rows(self):
        """Rows caught mid-write first (they must be re-checked before anything else), then the rest."""
        where = ["in_source = 1", "(state in ('pending', 'checked') or intent is not null)"]
        params = []
        if self.options.assets:
            where.append(f"asset_key in ({', '.join('?' for _ in self.options.assets)})")
            params += list(self.options.assets)
        sql = (f"select asset_key from assets where {' and '.join(where)} "
               "order by intent is null, cast(row_numbers as integer), asset_key")
        if self.options.limit:
            sql += f" limit {int(self.options.limit)}"
        return [row["asset_key"] for row in self.ledger.query(sql, params)]

    def reopen_finished_rows(self, run_id):
        """Send finished rows back to pending where the options ask: --retry-failed, --recheck REASON, and
        every row named with --asset. Rows the sheet itself rejected stay as they are."""
        clauses, params = [], []
        if self.options.retry_failed:
            clauses.append(f"(state = 'failed' and reason in ({', '.join('?' for _ in RETRYABLE_REASONS)}))")
            params += RETRYABLE_REASONS
        if self.options.recheck:
            clauses.append(f"reason in ({', '.join('?' for _ in self.options.recheck)})")
            params += self.options.recheck
        if self.options.assets:
            clauses.append(f"asset_key in ({', '.join('?' for _ in self.options.assets)})")
            params += self.options.assets
        if not clauses:
            return 0
        keys = [row["asset_key"] for row in self.ledger.query(
            f"select asset_key from assets where in_source = 1 and state in ('created', 'updated', 'skipped', "
            f"'failed') and coalesce(reason, '') not in ({', '.join('?' for _ in LOAD_REJECTIONS)}) "
            f"and ({' or '.join(clauses)})", [*LOAD_REJECTIONS, *params])]
        if keys:
            self.ledger.move_many([(key, PENDING, {"reason": None, "reason_text": None}, "re-check requested")
                                   for key in keys], run_id=run_id)
        return len(keys)

    def run(self, run_id, heartbeat=None):
        """Process every eligible row; returns a RunResult. Ctrl-C stops taking rows and returns."""
        began = time.monotonic()
        self.reopen_finished_rows(run_id)
        keys = self.eligible_rows()
        mode = "live" if self.options.live else "dry"
        self.on_event("start", run_id=run_id, mode=mode, rows=len(keys))
        self._hints = self.search_hints(keys) if self.options.search else {}
        work = queue.Queue()
        for key in keys:
            work.put(key)
        threads = [threading.Thread(target=self._worker, args=(work, run_id), name=f"worker-{n}", daemon=True)
                   for n in range(max(1, min(self.options.workers, len(keys) or 1)))]
        for thread in threads:
            thread.start()
        status = "finished"
        last_beat = time.monotonic()
        try:
            while any(thread.is_alive() for thread in threads):
                time.sleep(0.2)
                self.on_event("progress", done=self._done, total=len(keys), requests=self.client.stats.requests,
                              elapsed=time.monotonic() - began)
                if heartbeat and time.monotonic() - last_beat > 5:
                    heartbeat()
                    last_beat = time.monotonic()
        except KeyboardInterrupt:
            status = "interrupted"
            self._stop.set()
            self.on_event("stopping")
            try:
                for thread in threads:
                    thread.join()
            except KeyboardInterrupt:
                pass  # a second Ctrl-C abandons in-flight requests; their rows keep their recorded intent
        if self._fatal is not None:
            status = "aborted"
        stats = self.client.stats
        counts = self.counts(run_id)
        writes = stats.writes
        elapsed = time.monotonic() - began
        self.ledger.finish_run(run_id, status, counts, stats.requests, stats.throttled, writes, elapsed)
        result = RunResult(run_id, mode, status, counts, stats.requests, writes, stats.throttled, elapsed,
                           len(keys), self._fatal)
        self.on_event("progress", done=self._done, total=len(keys), requests=stats.requests,
                      elapsed=result.elapsed, final=True)
        return result

    def search_hints(self, keys):
        """Decisions for many assets at once from Iconik's search index: {asset key: Decision}.

        Rows mid-write and assets the index does not know are left out, so they get a per-asset read."""
        rows = {row["asset_key"]: row for row in self.ledger.query(
            "select asset_key, time_start_ms, time_end_ms, intent from assets where asset_key in "
            "(select value from json_each(?))", [json.dumps(keys)])}
        batches = [keys[i:i + SEARCH_BATCH] for i in range(0, len(keys), SEARCH_BATCH)]
        hints = {}

        def one_batch(batch):
            try:
                assets = self.client.search("assets", {"id": batch})
                ordinary = [a["id"] for a in assets if a.get("type") != "SUBCLIP" and a.get("status") != "DELETED"]
                segments = self.client.search("segments", {"asset_id": ordinary, "segment_type": ["GENERIC"]}) \
                    if ordinary else []
            except (errors.TransientError, errors.TerminalError, errors.AuthError) as exc:
                self.on_event("search_unavailable", error=str(exc))
                return {}
            # Only documents that carry every field a decision needs are trusted: an index without an
            # asset's type could otherwise let a segment be written on a SUBCLIP.
            assets = [a for a in assets if all(field in a for field in ("id", "type", "status"))]
            if any(not all(field in s for field in SEGMENT_FIELDS) for s in segments):
                return {}
            generic = {}
            for segment in segments:
                if segment.get("segment_type") == "GENERIC" and segment.get("status") != "DELETED":
                    generic.setdefault(segment.get("asset_id"), []).append(segment)
            found = {}
            for asset in assets:
                row = rows.get(asset.get("id"))
                if row is None or row["intent"]:
                    continue
                hint = decide(asset, generic.get(asset["id"], []), row["time_start_ms"], row["time_end_ms"])
                hint.asset = asset
                found[row["asset_key"]] = hint
            return found

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.options.workers)) as pool:
            for found in pool.map(one_batch, batches):
                hints.update(found)
        return hints

    def counts(self, run_id):
        """{"state/reason-or-action": n} over every row this run touched (across resumes)."""
        rows = self.ledger.query(
            "select state, coalesce(reason, action, '') as why, count(*) as n from assets where asset_key in "
            "(select asset_key from events where run_id = ?) group by state, why", [run_id])
        return {f"{r['state']}/{r['why']}".rstrip("/"): r["n"] for r in rows}

    # --- one worker ---------------------------------------------------------------------------------

    def _worker(self, work, run_id):
        while not self._stop.is_set():
            try:
                key = work.get_nowait()
            except queue.Empty:
                return
            try:
                self.process(key, run_id)
            except _Stop:
                return
            except errors.AuthError as exc:
                # 401/403 mid-run: every worker stops at once, rows stay as they are (resumable).
                self._fatal = exc
                self._stop.set()
                return
            except Exception as exc:  # a bug or a surprise from Iconik must not vanish with its thread
                try:
                    self._fail(key, run_id, "internal_error", exc)
                except Exception:
                    self._fatal = exc
                    self._stop.set()
                    return
            with self._done_lock:
                self._done += 1

    def _read(self, call, *args):
        if self._stop.is_set():
            raise _Stop()
        return call(*args)

    def check(self, row, indexed_asset=None):
        """One fresh read of the asset (and its GENERIC segments) and the decision it leads to.

        With indexed_asset (the asset as the search index has it), only the GENERIC segments are read
        afresh: they decide create, update or in sync, and so what a write could duplicate; the asset's
        type and status do not go stale in a way that matters (an asset never becomes a SUBCLIP)."""
        asset = indexed_asset
        if asset is None:
            try:
                asset = self._read(self.client.get_asset, row["asset_key"])
            except errors.NotFound:
                asset = None
        generic = []
        if asset is not None and asset.get("type") != "SUBCLIP" and asset.get("status") != "DELETED":
            generic = [s for s in self._read(self.client.list_segments, asset["id"], "GENERIC")
                       if s.get("segment_type") == "GENERIC" and s.get("status") != "DELETED"]
        return decide(asset, generic, row["time_start_ms"], row["time_end_ms"])

    def process(self, key, run_id):
        """Decide and, if live, write one row, committing every step before the next depends on it."""
        row = self.ledger.asset(key)
        hint = self._hints.pop(key, None)
        if hint and (hint.reason in SEARCH_FINAL_REASONS or hint.action and not self.options.live):
            # Settled from the search index: nothing is written on it (a write needs a fresh read).
            hint.text += " (from Iconik's search index)"
            if hint.state:
                return self._finish(row, run_id, hint)
            self.ledger.move(key, CHECKED, run_id=run_id, detail=f"would {hint.text}", action=hint.action,
                             reason=None, reason_text=f"would {hint.text}")
            return
        indexed = hint.asset if hint and self.options.live else None
        conflicts = 0
        last_error = None
        for _ in range(MAX_DECISIONS):
            try:
                decision = self.check(row, indexed)
                indexed = None  # a decision taken again after a failed write reads everything afresh
            except errors.NotFound as exc:  # the asset went away between two reads
                return self._fail(key, run_id, "not_found", exc)
            except errors.TerminalError as exc:
                return self._fail(key, run_id, "bad_request", exc)
            except errors.TransientError as exc:
                return self._fail(key, run_id, _transient_reason(exc), exc)
            if row["intent"] and decision.reason == "in_sync" and decision.segment:
                return self._confirm_intent(row, run_id, decision)
            if decision.state:
                return self._finish(row, run_id, decision)
            if not self.options.live:
                self.ledger.move(key, CHECKED, run_id=run_id, detail=f"would {decision.text}",
                                 action=decision.action, reason=None, reason_text=f"would {decision.text}")
                return
            row = self._record_intent(row, run_id, decision)
            try:
                segment = self._write(row, decision)
            except errors.Conflict as exc:
                conflicts += 1
                last_error = exc
                if conflicts >= 3:
                    return self._fail(key, run_id, "conflict", exc)
                continue  # re-fetch and decide again (the PRD's 409 rule)
            except errors.NotFound as exc:
                last_error = exc  # the segment vanished under us: decide again from a fresh read
                continue
            except (errors.UnknownOutcome, errors.ServerError, errors.ConnectionFailed) as exc:
                last_error = exc  # never re-send blindly: re-check, and the intent tells what was meant
                continue
            except errors.BadRequest as exc:
                return self._fail(key, run_id, "bad_request", exc)
            state = CREATED if decision.action == "create" else UPDATED
            self.ledger.move(key, state, run_id=run_id, detail=f"{decision.action}d segment {segment['id']}",
                             segment_id=segment["id"], intent=None,
                             http_status=201 if state == CREATED else 200, reason=None, last_error=None,
                             reason_text=f"{decision.text[0].upper()}{decision.text[1:]}: done.")
            return
        reason = "conflict" if isinstance(last_error, errors.Conflict) else _transient_reason(last_error)
        return self._fail(key, run_id, reason, last_error)

    def _record_intent(self, row, run_id, decision):
        intent = {"op": decision.action, "segment_id": (decision.segment or {}).get("id"), "run_id": run_id,
                  "start": row["time_start_ms"], "end": row["time_end_ms"]}
        fields = dict(action=decision.action, intent=json.dumps(intent), attempts=row["attempts"] + 1,
                      reason=None, reason_text=f"writing: {decision.text}")
        self.ledger.move(row["asset_key"], CHECKED, run_id=run_id, detail=f"about to {decision.text}", **fields)
        return dict(row, state=CHECKED, **fields)

    def _write(self, row, decision):
        if self._stop.is_set():
            raise _Stop()
        start, end = row["time_start_ms"], row["time_end_ms"]
        if decision.action == "create":
            return self.client.create_segment(row["asset_key"], start, end, external_id=MARKER)
        # A PUT replaces every editable field: send back what Iconik holds now, with the new times.
        current = self.client.get_segment(decision.segment["asset_id"], decision.segment["id"])
        return self.client.replace_segment_times(current, start, end)

    def _confirm_intent(self, row, run_id, decision):
        """A write whose answer was lost is there after all: record it as done, not as in sync."""
        intent = json.loads(row["intent"])
        state = CREATED if intent["op"] == "create" else UPDATED
        if row["state"] != CHECKED:
            self.ledger.move(row["asset_key"], CHECKED, run_id=run_id, detail="re-checking an unfinished write")
        segment_id = decision.segment["id"]
        self.ledger.move(row["asset_key"], state, run_id=run_id,
                         detail=f"{intent['op']} confirmed by a fresh read (its answer had been lost)",
                         segment_id=segment_id, intent=None, reason=None, last_error=None,
                         action=intent["op"], reason_text=f"{intent['op']}d segment {segment_id}, "
                                                          f"{_ms(row['time_start_ms'], row['time_end_ms'])}; "
                                                          "confirmed by a fresh read.")

    def _finish(self, row, run_id, decision):
        self.ledger.move(row["asset_key"], decision.state, run_id=run_id, detail=decision.reason,
                         reason=decision.reason, reason_text=decision.text, intent=None,
                         segment_id=(decision.segment or {}).get("id") or row["segment_id"], action=None,
                         http_status=404 if decision.reason == "not_found" else 200)

    def _fail(self, key, run_id, reason, exc):
        self.ledger.move(key, FAILED, run_id=run_id, detail=f"{reason}: {exc}", reason=reason,
                         reason_text=_failure_text(reason, exc), last_error=str(exc)[:500],
                         http_status=getattr(exc, "status", None))


def _transient_reason(exc):
    if isinstance(exc, errors.RateLimited):
        return "rate_limited"
    if isinstance(exc, errors.ConnectionFailed):
        return "connection_error"
    if isinstance(exc, errors.UnknownOutcome):
        return "unknown_outcome"
    return "server_error"


def _failure_text(reason, exc):
    advice = {
        "bad_request": "Iconik rejected the request; read its message, fix the row, then load and run again.",
        "conflict": "the segment kept changing under reversesync; run again with --retry-failed.",
        "server_error": "Iconik kept failing after retries; run again later with --retry-failed.",
        "connection_error": "Iconik could not be reached after retries; run again with --retry-failed.",
        "rate_limited": "Iconik kept answering 429; run again with a lower --rate and --retry-failed.",
        "unknown_outcome": "the write's answers kept getting lost; run again with --retry-failed.",
        "internal_error": "reversesync hit an unexpected error on this row; please report it with this text.",
    }.get(reason, "")
    message = getattr(exc, "message", "") or str(exc)
    return f"{advice} ({message})" if advice else message


# --- verify ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Mismatch:
    """An asset whose Iconik state is not what the ledger says reversesync left there."""

    asset_id: str
    row_numbers: str
    state: str
    expected: str
    found: str


def _spans(segments):
    return "; ".join(f"GENERIC {s['id']} {_ms(s.get('time_start_milliseconds'), s.get('time_end_milliseconds'))}"
                     for s in segments) or "no GENERIC segment"


def verify_row(client, row):
    """None when Iconik holds exactly what the ledger says for this row, else a Mismatch."""
    start, end = row["time_start_ms"], row["time_end_ms"]
    written = row["state"] in (CREATED, UPDATED)
    expected = (f"exactly one GENERIC segment {_ms(start, end)}" if written
                else f"a GENERIC segment or SUBCLIP spanning {_ms(start, end)}")

    def mismatch(found):
        return Mismatch(row["asset_key"], row["row_numbers"], row["state"], expected, found)

    try:
        asset = client.get_asset(row["asset_key"])
    except errors.NotFound:
        return mismatch("the asset is gone (404)")
    except (errors.TransientError, errors.TerminalError) as exc:
        return mismatch(f"could not be read: {exc}")
    if asset.get("type") == "SUBCLIP":
        found = (asset.get("time_start_milliseconds"), asset.get("time_end_milliseconds"))
        return None if found == (start, end) and not written else mismatch(f"SUBCLIP {_ms(*found)}")
    try:
        generic = [s for s in client.list_segments(row["asset_key"], "GENERIC")
                   if s.get("segment_type") == "GENERIC" and s.get("status") != "DELETED"]
    except (errors.TransientError, errors.TerminalError) as exc:
        return mismatch(f"segments could not be read: {exc}")
    equal = [s for s in generic
             if (s.get("time_start_milliseconds"), s.get("time_end_milliseconds")) == (start, end)]
    if written and (len(generic) != 1 or not equal) or not equal:
        return mismatch(_spans(generic))
    return None


def verify(ledger, client, workers=8, on_event=None):
    """Read Iconik again for every asset the ledger says is created, updated or in sync; returns
    (rows verified, [Mismatch])."""
    on_event = on_event or (lambda kind, **data: None)
    rows = ledger.query("select * from assets where in_source = 1 and (state in ('created', 'updated') or "
                        "(state = 'skipped' and reason = 'in_sync')) order by cast(row_numbers as integer)")
    began = time.monotonic()
    mismatches = []
    done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for found in pool.map(lambda row: verify_row(client, row), rows):
            done += 1
            if found:
                mismatches.append(found)
            on_event("progress", done=done, total=len(rows), requests=client.stats.requests,
                     elapsed=time.monotonic() - began, final=done == len(rows))
    return len(rows), mismatches
