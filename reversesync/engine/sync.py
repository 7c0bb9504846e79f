"""A sync run (`run`, `run --live`, `resume`): every selected row moves pending -> checked -> created | updated |
skipped | failed, decided by rules/sync.py from the freshest read Iconik offers, written through the machinery.

- an update is a PATCH of the two times, decided from a GET by id just before it; a 200 answer that shows any
  other field changed (a PATCH that replaced like a PUT) stops the run (issue #15);
- a write refused without being applied (429, 409, a connection never made) is never re-sent as it was: the
  row is read again and decided again (issue #15);
- a write whose outcome is unknown (timeout, lost answer, 5xx, a kill) is never re-sent blindly: the row is
  parked until `settle` seconds after the send, then re-checked by the marker its segment carries (issue #10);
- with search (the default), a batch of up to a hundred rows is searched just before its writes (issue #19): a
  create is POSTed from that answer, an update reads its segment by id first; no write leaves more than
  FRESH_FOR seconds after the index answer (search or segment list) it was decided from, else it is searched
  again; ids the index lacks, documents that lack a field and assets it shows with two or more GENERIC segments
  (unless one is in sync) are read per asset;
- a run stops, leaving its rows resumable, on a 401, a token that can read nothing, a lost lock, or an Iconik
  that stopped answering or keeps failing (issues #11, #15).
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from typing import Any

from .. import errors, progress, rules
from ..iconik import READ_ROLES, WRITE_ROLES
from ..ledger import Row
from ..rules import Decision, ms, span
from ..rules.undo import expected_after
from ..types import (
    APPLIED,
    CHECKED,
    CREATE,
    CREATED,
    DUPLICATED,
    FAILED,
    FINAL_STATES,
    NOT_APPLIED,
    PENDING,
    SKIPPED,
    SYNC_ACTIONS,
    UPDATE,
    UPDATED,
    Intent,
    Json,
    Kind,
    Write,
    WriteChange,
)
from .machinery import DecideAgain, Machinery, StaleDecision, Stopping
from .search import FRESH_FOR, BatchSearch, Indexed

# How many times one row is decided again after a write that conflicted, vanished or has an unknown outcome,
# before it is failed.
MAX_DECISIONS = 4
# A 409 is answered by re-reading and writing again, this many times at most (the PRD's rule).
MAX_CONFLICTS = 3
# A write answered 429 is read again and decided again after the pause, this many times at most.
MAX_THROTTLED_WRITES = 20
# A write whose decision went stale (older than FRESH_FOR) before it could leave is decided again from a younger
# answer this many times at most (each time the pacer held it that long: Iconik's limit, or a 429's pause).
MAX_STALE = 10
# A token whose user may read none of the first this-many assets cannot do the job: stop, not fail them all.
FORBIDDEN_PROBE = 25


class Throttled(DecideAgain):
    """A write answered 429: not applied. Decide again from the same index answer while it is young enough (the
    freshness limit decides), the segment to update read by id again."""


class Sync(Machinery):
    """One sync run, dry or live, over the selected rows of a ledger."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._search: BatchSearch | None = None
        self._no_more_writes: set[str] = set()
        self._read_ok = threading.Event()
        self._held_forbidden: dict[str, errors.Forbidden] = {}
        # Finished rows a dry run was asked to look at (--asset, --recheck, --retry-failed): it stores its plan
        # for them with the run and never moves them (issue #17).
        self._plan_only: set[str] = set()

    # --- before the first row ----------------------------------------------------------------------

    def preflight(self) -> Json:
        """The token's user and roles, before any row: raises AuthError, ConnectionFailed or EndpointError."""
        user = self.check_roles(READ_ROLES + (WRITE_ROLES if self.options.live else ()))
        if self.options.search and "can_search" not in self.roles:
            self.sink(progress.SearchUnavailable("the token's user lacks the role can_search"))
        return user

    def select(self, run_id: int) -> None:
        """Choose the run's rows once, and reopen finished rows the options ask for (issue #10: resume
        continues exactly these rows and never reselects)."""
        options = self.options
        reopen = self.ledger.reopenable_keys(
            failed_reasons=rules.RETRYABLE_REASONS if options.retry_failed else (), reasons=options.recheck,
            assets=options.assets, never=rules.LOAD_REJECTIONS)
        keys = self.ledger.candidate_keys(assets=options.assets)
        if not options.live:  # a dry run never resolves a write that may have landed: a live run does
            unfinished = set(self.ledger.candidate_keys(with_intent_only=True))
            keys = [key for key in keys if key not in unfinished]
        chosen = list(dict.fromkeys(keys + [key for key in reopen if key not in keys]))
        rows = self.ledger.rows(chosen)
        chosen.sort(key=lambda key: (rows[key]["intent"] is None, _first_row(rows[key]), key))
        if options.limit:
            chosen = chosen[:options.limit]
        chosen_set = set(chosen)
        reopened = [key for key in reopen if key in chosen_set] if options.live else []
        self.ledger.select_rows(run_id, chosen, reopen=reopened)

    def before_rows(self, keys: list[str]) -> None:
        unfinished = self.unfinished_writes()
        if not self.options.live and unfinished:
            self.sink(progress.UnfinishedWrites(unfinished))
        if self.options.search and "can_search" in self.roles:
            rows = self.ledger.rows(keys)
            # Rows holding a write settle it first, by their own reads: they are in no batch.
            self._search = BatchSearch(self.client, self.clock, [key for key in keys if not rows[key]["intent"]],
                                       self.stop.is_set, lambda error: self.sink(progress.SearchUnavailable(error)),
                                       self._read_ok.set, self.abort)

    def after_rows(self, run_id: int) -> None:
        self._fail_held_forbidden(run_id)

    def unfinished_writes(self) -> int:
        return len(self.ledger.candidate_keys(with_intent_only=True))

    def fail_row(self, key: str, run_id: int, exc: BaseException) -> None:
        # An open write stays open: it may have been sent, and the next live run settles it (issue #15).
        self._fail(key, run_id, "internal_error", exc, keep_intent=True)

    # --- one row --------------------------------------------------------------------------------------

    def process(self, key: str, run_id: int) -> float | None:
        row = self.ledger.asset(key)
        assert row is not None, f"a selected row {key} is in the ledger"
        if not self.options.live and row["state"] in FINAL_STATES:
            with self._lock:
                self._plan_only.add(key)
        reuse = None
        if row["intent"]:
            row, reuse = self._settle(row, run_id)
            if row is None:
                return None
        self._decide_and_write(row, run_id, reuse)
        return None

    # --- an unfinished write: wait out its settle time, then find out what landed ----------------------

    def _settle(self, row: Row, run_id: int) -> tuple[Row | None, Write | None]:
        """Re-check a row's unfinished write once its settle time has passed; returns (row to go on with, or
        None when finished, and the logged write a re-send must reuse)."""
        key = row["asset_key"]
        write = self.ledger.open_write(key)
        if write is None or write.action not in SYNC_ACTIONS:  # an undo's or a repair's: that command settles it
            self.ledger.mark_rows_done(run_id, [key])
            return None, None
        self.wait_out(key, write.sent_at)
        prior = {name: row[name] for name in ("state", "reason", "reason_text")}
        if row["state"] != CHECKED:
            self.ledger.move(key, CHECKED, run_id=run_id, kind=Kind.SETTLING, detail="re-checking an unfinished write")
        try:
            landed = self._find_landed(key, write)
        except errors.NotFound:
            landed = None  # the asset is gone; nothing of ours can be there any more
        except errors.Duplicated as exc:
            self._fail(key, run_id, "duplicated", exc, change=WriteChange(write.intent_id, DUPLICATED))
            return None, None
        except (errors.TransientError, errors.Forbidden, errors.UnexpectedAnswer, errors.BadRequest) as exc:
            # Not settled: keep the intent, so the next run re-checks this row first (issue #10).
            self._fail(key, run_id, exc.reason, exc, keep_intent=True)
            return None, None
        row = self.ledger.asset(key) or row
        same_times = (write.start_ms, write.end_ms) == (row["time_start_ms"], row["time_end_ms"])
        syncable = _syncable(row)
        if landed:
            # What reversesync left is what it sent, not this read: a person may have edited the segment since it
            # landed (issue #15). A create keeps no after-image; an update's is its before-image with its times.
            change = WriteChange(write.intent_id, APPLIED, after=expected_after(write), segment_id=landed["id"])
            history = _history(write, landed["id"])
            if same_times and syncable:
                self.ledger.move(key, CREATED if write.action == CREATE else UPDATED, run_id=run_id, done=True,
                                 kind=Kind.SETTLED, writes=[change], segment_id=landed["id"], intent=None, reason=None,
                                 last_error=None, action=write.action, **history,
                                 detail=f"{write.action} confirmed by a settled re-check",
                                 reason_text=f"{write.action}d segment {landed['id']}, "
                                             f"{ms(write.start_ms, write.end_ms)}; its answer was lost, a settled "
                                             "re-check found it.")
                return None, None
            self.ledger.move(key, CHECKED, run_id=run_id, kind=Kind.SETTLED, intent=None, segment_id=landed["id"],
                             writes=[change], **history,
                             detail=f"an earlier {write.action} ({ms(write.start_ms, write.end_ms)}) landed; the "
                                    "sheet has changed since")
        else:
            self.ledger.move(key, CHECKED, run_id=run_id, kind=Kind.SETTLED, intent=None,
                             writes=[WriteChange(write.intent_id, NOT_APPLIED)],
                             detail=f"the {write.action} did not land (settled re-check)")
        if not syncable:
            self.ledger.move(key, prior["state"] if prior["state"] != CHECKED else PENDING, run_id=run_id,
                             done=True, kind=Kind.SETTLED, reason=prior["reason"], reason_text=prior["reason_text"],
                             detail="unfinished write resolved; the row is not for syncing now")
            return None, None
        return self.ledger.asset(key), (None if landed else write)

    def _find_landed(self, key: str, write: Write) -> Json | None:
        """The segment the write left in Iconik, or None. Raises errors.Duplicated when a create landed more
        than once."""
        if write.action == CREATE:
            mark = write.marker or rules.marker(write.intent_id)
            ours = [s for s in self.live_generic(key) if s.get("external_id") == mark]
            if len(ours) > 1:
                raise errors.Duplicated(ours)
            return ours[0] if ours else None
        segment = self.read_segment(key, write.segment_id or "")
        return segment if segment is not None and span(segment) == (write.start_ms, write.end_ms) else None

    # --- deciding and writing -------------------------------------------------------------------------

    def _decide_and_write(self, row: Row, run_id: int, reuse: Write | None) -> None:
        key = row["asset_key"]
        basis = self._search.indexed(key) if self._search is not None else None
        if basis is not None and basis.asset is not None and not _segment_of_record(row):
            # A row the index shows needing no write is settled from it, and a dry run plans from it. A row the
            # ledger ties to a segment never is: the index may not show what reversesync last did to it (a
            # create, an update, an undo's delete); that segment is read by id (_check).
            hint = self._from_index(row, basis)
            if hint and (hint.reason in rules.SEARCH_FINAL_REASONS or hint.action and not self.options.live):
                hint.text += " (from Iconik's search index)"
                if hint.state:
                    self._finish(row, run_id, hint)
                else:
                    self._plan(row, run_id, hint)
                return
        while True:
            decision = self._check(row, run_id, basis)
            if decision is None:
                return
            if decision.state:
                self._finish(row, run_id, decision)
                return
            if not self.options.live:
                self._plan(row, run_id, decision)
                return
            if key in self._no_more_writes:
                return
            if self.attempt("decision", key) > MAX_DECISIONS:
                self._fail(key, run_id, "conflict", errors.Conflict(
                    "PATCH", key, 409, "the segment kept changing or vanishing under reversesync"))
                return
            try:
                self._write(row, run_id, decision, reuse)
                return
            except StaleDecision:
                self.forgive("decision", key)  # not sent: the decision was only too old
                if self.attempt("stale", key) >= MAX_STALE:
                    self._fail(key, run_id, "rate_limited", errors.RateLimited(
                        "POST" if decision.action == CREATE else "PATCH", key, None,
                        f"the write was held past {FRESH_FOR:g} s after the index answer it was decided from, "
                        f"{MAX_STALE} times; nothing was sent"))
                    return
                # Searched again (its whole batch, once for all its stale rows), or read per asset again.
                basis = self._search.refresh(key, basis) if basis is not None and self._search is not None else None
            except Throttled:
                pass  # the same answer, while young enough; the segment to update is read by id again
            except DecideAgain:
                basis = None  # a conflict or a vanished segment: read everything afresh
            row = self.ledger.asset(key) or row

    def _from_index(self, row: Row, basis: Indexed) -> Decision | None:
        """The decision the search documents lead to, or None when they cannot decide (a segment document lacks a
        field, or two or more GENERIC segments none of which is in sync)."""
        asset = basis.asset
        if asset is None:
            return None
        ordinary = asset.get("type") == rules.WRITABLE_TYPE and asset.get("status") == rules.ACTIVE
        if asset.get("type") == rules.SUBCLIP and not SUBCLIP_RANGE <= set(asset):
            return None  # a SUBCLIP's range is its own fields: a document without them cannot tell (a review found)
        if not ordinary:
            return rules.decide(asset, [], row["time_start_ms"], row["time_end_ms"])
        if basis.generic is None:
            return None
        gone = self.gone(row["asset_key"])
        shown = [s for s in basis.generic if s.get("id") not in gone]
        generic, lost = self._with_our_segment_fresh(row, shown)
        decision = rules.decide(asset, generic, row["time_start_ms"], row["time_end_ms"], lost)
        if not rules.index_can_decide(len(shown), decision):
            return None
        decision.as_of = basis.as_of
        return decision

    def _check(self, row: Row, run_id: int, basis: Indexed | None = None) -> Decision | None:
        """The decision for the row: from the search answer (basis) where it can decide, with the row's segment of
        record read by id; else from fresh reads of the asset and its GENERIC segment list. None when the row was
        finished or set aside on the way."""
        key = row["asset_key"]
        asset = basis.asset if basis is not None else None
        if asset is not None and _segment_of_record(row) and asset.get("type") != rules.WRITABLE_TYPE:
            asset = None  # a row tied to a segment is on an ASSET: the index showing otherwise is read afresh
        indexed = asset is not None
        try:
            if basis is not None and asset is not None:
                decision = self._from_index(row, dataclasses.replace(basis, asset=asset))
                if decision is not None:
                    self.answered()
                    return decision
                if asset.get("type") == rules.SUBCLIP:
                    asset, indexed = None, False  # its range is the asset's own fields, the document lacked them
            if asset is None:
                try:
                    asset = self.read(self.client.get_asset, key)
                except errors.NotFound:
                    asset = None
                self._read_ok.set()
            generic: list[Json] = []
            as_of, lost = None, None
            if asset is not None and asset.get("type") == rules.WRITABLE_TYPE and asset.get("status") == rules.ACTIVE:
                as_of = self.clock.monotonic()
                generic = self.live_generic(key)
                self._read_ok.set()
                generic, lost = self._with_our_segment_fresh(row, generic)
            decision = rules.decide(asset, generic, row["time_start_ms"], row["time_end_ms"], lost)
            decision.as_of = as_of
            self.answered()
            return decision
        except errors.Forbidden as exc:
            self._forbidden(row, run_id, exc, asset_read=not indexed)
        except (errors.ConnectionFailed, errors.ServerError) as exc:
            self.unavailable(key, exc)
            self._fail(key, run_id, exc.reason, exc)
        except (errors.TerminalError, errors.TransientError) as exc:
            self._fail(key, run_id, exc.reason, exc)
        return None

    def _with_our_segment_fresh(self, row: Row, generic: list[Json]) -> tuple[list[Json], str | None]:
        """The GENERIC list with the row's segment of record read afresh by id: segment lists come from an index
        that trails writes (ICONIK-FACTS 7.1), reversesync's own included, so a segment just created can be
        missing, one just updated can show old times, one just deleted by an undo can still show. Second: the id
        of the segment of record when it is gone (deleted in Iconik), else None."""
        ours = _segment_of_record(row)
        if not ours:
            return generic, None
        fresh = self.read_segment(row["asset_key"], ours)
        others = [s for s in generic if s.get("id") != ours]
        if fresh is not None and fresh.get("asset_id") == row["asset_key"]:
            others += rules.generic_only([fresh])
        return others, (ours if fresh is None else None)

    def _write(self, row: Row, run_id: int, decision: Decision, reuse: Write | None) -> None:
        """Send one write with its intent logged first. Raises DecideAgain to decide again from a fresh read,
        Park when the write's outcome is unknown."""
        key = row["asset_key"]
        try:
            if decision.action == CREATE:
                self._create(row, run_id, decision, reuse)
            else:
                self._update(row, run_id, decision)
        except errors.UnknownOutcome as exc:
            if self.attempts("decision", key) >= MAX_DECISIONS:
                self._fail(key, run_id, "unknown_outcome", exc, keep_intent=True)
                return
            raise self.park_lost(key, run_id, exc, CHECKED, reason_text=f"waiting to re-check: {exc.message}") \
                from None
        except errors.AuthError:
            self._clear_intent(key, run_id, "401: not applied")
            raise
        except errors.Conflict as exc:
            self._clear_intent(key, run_id, "409 conflict: not applied; reading again and deciding again")
            if self.attempt("conflict", key) >= MAX_CONFLICTS:
                self._fail(key, run_id, "conflict", exc)
                return
            raise DecideAgain() from None
        except StaleDecision:
            self._clear_intent(key, run_id, f"never sent: decided from an index answer over {FRESH_FOR:g} s old; "
                                            "deciding again from a younger one")
            raise
        except errors.RateLimited as exc:
            # Not applied, and the pause may be long: a person may change the segment meanwhile, so the row is
            # decided again after it (the pacer holds every request until Retry-After): an update reads its segment
            # by id again, and no write leaves more than FRESH_FOR after its index answer (issues #15, #19).
            self._clear_intent(key, run_id, "429: not applied; reading again after the pause and deciding again")
            self.forgive("decision", key)  # a 429 says nothing about the segment: it has a budget of its own
            if self.attempt("throttled", key) >= MAX_THROTTLED_WRITES:
                self._fail(key, run_id, "rate_limited", exc)
                return
            raise Throttled() from None
        except errors.NotFound as exc:
            if decision.action == CREATE:
                self._clear_intent(key, run_id, "the asset vanished")
                self._fail(key, run_id, "not_found", exc)
                return
            self.forget_segment(key, (decision.segment or {}).get("id") or "")
            self._clear_intent(key, run_id, "the segment vanished; deciding again")
            raise DecideAgain() from None
        except errors.ConnectionFailed as exc:  # provably never sent
            self._clear_intent(key, run_id, "never sent")
            self.unavailable(key, exc)
            self._fail(key, run_id, exc.reason, exc)
        except errors.Forbidden as exc:
            self._fail(key, run_id, "forbidden", exc)
        except errors.TerminalError as exc:
            self._fail(key, run_id, "bad_request", exc)
        except errors.TransientError as exc:
            self._fail(key, run_id, exc.reason, exc)

    def _create(self, row: Row, run_id: int, decision: Decision, reuse: Write | None) -> None:
        key = row["asset_key"]
        start, end = row["time_start_ms"], row["time_end_ms"]
        # A re-send of the same write reuses its intent, so every copy of it carries one marker and one owner.
        if reuse is not None and reuse.action == CREATE and (reuse.start_ms, reuse.end_ms) == (start, end):
            intent_id, marker = reuse.intent_id, reuse.marker or rules.marker(reuse.intent_id)
        else:
            intent_id = uuid.uuid4().hex
            marker = rules.marker(intent_id)
        write = self._record_intent(row, run_id, decision, Intent(intent_id, CREATE, "POST", marker=marker,
                                                                  start_ms=start, end_ms=end))
        answer = self.send(key, self.client.create_segment, key, start, end, external_id=marker,
                           fresh_until=_fresh_until(decision))
        problem = rules.created_answer_problem(answer, key)
        if problem:
            self._no_more_writes.add(key)  # no further write to this asset in this run (issue #9)
            self._fail(key, run_id, "unexpected_answer", errors.UnexpectedAnswer("POST", key, 201, problem),
                       change=WriteChange(write.intent_id, APPLIED, after=answer if isinstance(answer, dict) else None))
            return
        self._done_writing(row, run_id, write, answer, decision, 201)

    def _update(self, row: Row, run_id: int, decision: Decision) -> None:
        key = row["asset_key"]
        start, end = row["time_start_ms"], row["time_end_ms"]
        target = (decision.segment or {}).get("id") or ""
        # The list said "update this one"; only a fresh read by id decides whether a PATCH may go (issue #9), and
        # it is the before-image the write log keeps, every field as read.
        current = self.read_segment(key, target)
        if current is None:
            raise DecideAgain()
        problem = rules.update_target_problem(current, target)
        if problem and problem[0] in ("subclip_linked", "segment_status"):
            why = ("it is a subclip's range, not this clip's, so nothing was written" if problem[0] == "subclip_linked"
                   else "nothing was written; check it in Iconik, then run --recheck segment_status")
            self._finish(row, run_id, Decision(state=SKIPPED, reason=problem[0], segment=current,
                                               text=f"{problem[1]}; {why}."))
            return
        if problem:
            raise DecideAgain()
        if span(current) == (start, end):
            self._finish(row, run_id, Decision(state=SKIPPED, reason="in_sync", segment=current,
                                               text=f"GENERIC segment {current['id']} already spans {ms(start, end)}."))
            return
        write = self._record_intent(row, run_id, decision, Intent(uuid.uuid4().hex, UPDATE, "PATCH",
                                                                  segment_id=current["id"], before=current,
                                                                  start_ms=start, end_ms=end))
        answer = self.send(key, self.client.patch_segment_times, key, current["id"], start, end,
                           fresh_until=_fresh_until(decision))
        self._done_writing(row, run_id, write, answer, decision, 200)
        self.check_patch_kept(current, answer)

    def _record_intent(self, row: Row, run_id: int, decision: Decision, intent: Intent) -> Write:
        attempts = (self.ledger.asset(row["asset_key"]) or row)["attempts"] or 0
        return self.record_intent(row["asset_key"], intent, run_id=run_id, to_state=CHECKED, kind=Kind.INTENT,
                                  detail=f"about to {decision.text}", action=decision.action, attempts=attempts + 1,
                                  reason=None, reason_text=f"writing: {decision.text}")

    def _clear_intent(self, key: str, run_id: int, why: str) -> None:
        """The open write was not applied (Iconik refused it, or it never left): the row no longer holds it."""
        write = self.ledger.open_write(key)
        self.ledger.move(key, CHECKED, run_id=run_id, kind=Kind.NOT_APPLIED, intent=None,
                         detail=f"write not applied: {why}",
                         writes=[WriteChange(write.intent_id, NOT_APPLIED)] if write else [])

    def _done_writing(self, row: Row, run_id: int, write: Write, answer: Json, decision: Decision,
                      status: int) -> None:
        segment_id = answer.get("id") or write.segment_id or ""
        self.ledger.move(row["asset_key"], CREATED if write.action == CREATE else UPDATED, run_id=run_id, done=True,
                         kind=Kind.WRITTEN, writes=[WriteChange(write.intent_id, APPLIED, after=answer,
                                                                segment_id=segment_id)],
                         detail=f"{write.action}d segment {segment_id}", segment_id=segment_id, intent=None,
                         http_status=status, reason=None, last_error=None, **_history(write, segment_id),
                         reason_text=f"{decision.text[0].upper()}{decision.text[1:]}: done.")

    # --- finishing rows ---------------------------------------------------------------------------------

    def _plan(self, row: Row, run_id: int, decision: Decision) -> None:
        if row["asset_key"] in self._plan_only:
            self.ledger.record_plan(run_id, row["asset_key"], f"would {decision.action}", f"would {decision.text}")
            return
        self.ledger.move(row["asset_key"], CHECKED, run_id=run_id, done=True, kind=Kind.PLANNED,
                         detail=f"would {decision.text}", action=decision.action, reason=None,
                         reason_text=f"would {decision.text}")

    def _finish(self, row: Row, run_id: int, decision: Decision) -> None:
        if row["asset_key"] in self._plan_only:
            self.ledger.record_plan(run_id, row["asset_key"], decision.reason or "", decision.text)
            return
        self.ledger.move(row["asset_key"], decision.state or SKIPPED, run_id=run_id, done=True,
                         kind=Kind.FAILED if decision.state == FAILED else Kind.DECIDED, detail=decision.reason,
                         reason=decision.reason, reason_text=decision.text, intent=None,
                         segment_id=(decision.segment or {}).get("id") or row["segment_id"], action=None,
                         http_status=404 if decision.reason == "not_found" else 200)

    def _fail(self, key: str, run_id: int, reason: str, exc: BaseException, keep_intent: bool = False,
              change: WriteChange | None = None) -> None:
        """Fail the row. Unless keep_intent, the open write is let go: settled as change says, else as not
        applied (the failures that clear it are refusals)."""
        fields: dict[str, Any] = {}
        writes = []
        if not keep_intent:
            fields["intent"] = None
            write = self.ledger.open_write(key)
            if change is not None or write is not None:
                writes = [change or WriteChange(write.intent_id if write else "", NOT_APPLIED)]
        message = getattr(exc, "message", "") or str(exc)
        if key in self._plan_only:
            self.ledger.record_plan(run_id, key, reason, rules.failure_text(reason, message))
            return
        self.ledger.move(key, FAILED, run_id=run_id, done=True, kind=Kind.FAILED, detail=f"{reason}: {exc}",
                         reason=reason, reason_text=rules.failure_text(reason, message), last_error=str(exc)[:500],
                         http_status=getattr(exc, "status", None), writes=writes, **fields)

    # --- stopping rules ---------------------------------------------------------------------------------

    def _forbidden(self, row: Row, run_id: int, exc: errors.Forbidden, asset_read: bool) -> None:
        """A 403 on one asset fails that row (issue #9), unless the token has read none of the first
        FORBIDDEN_PROBE assets: then it can read nothing, and the run stops with those rows still pending."""
        key = row["asset_key"]
        probing = asset_read and not self._read_ok.is_set()
        if probing:
            with self._lock:
                self._held_forbidden[key] = exc
                held = len(self._held_forbidden)
            if held >= FORBIDDEN_PROBE:
                self.abort(errors.AuthError(
                    "GET", "/API/assets/v1/assets/", 403,
                    f"the token's user may read none of the first {FORBIDDEN_PROBE} assets ({exc.message})"))
            if self._read_ok.is_set():  # a read succeeded meanwhile: this one is a per-asset refusal after all
                self._fail_held_forbidden(run_id)
            raise Stopping()  # held aside: failed once a read succeeds (after_rows), or the run stops
        self._fail(key, run_id, "forbidden", exc)

    def _fail_held_forbidden(self, run_id: int) -> None:
        with self._lock:
            held, self._held_forbidden = self._held_forbidden, {}
        for key, exc in held.items():
            self._fail(key, run_id, "forbidden", exc)


def _fresh_until(decision: Decision) -> float | None:
    """The clock's monotonic time after which the decision's write may no longer leave (issue #19)."""
    return None if decision.as_of is None else decision.as_of + FRESH_FOR


def _first_row(row: Row) -> int:
    try:
        return int(str(row["row_numbers"]).split(",")[0])
    except ValueError:
        return 0


SUBCLIP_RANGE = frozenset({"time_start_milliseconds", "time_end_milliseconds"})


def _segment_of_record(row: Row) -> str | None:
    """The segment the ledger ties to this row (the one reversesync wrote, or found in sync), or None."""
    return row["done_segment_id"] or row["segment_id"]


def _syncable(row: Row) -> bool:
    return bool(row["in_source"]) and row["reason"] not in rules.LOAD_REJECTIONS and row["time_start_ms"] is not None


def _history(write: Write, segment_id: str) -> dict[str, Any]:
    """The columns that show what reversesync last did to a row across later re-checks (issue #11); the write
    log holds the rest. The run is the write's owner, the run that recorded it (issue #15)."""
    return {"done_action": write.action, "done_segment_id": segment_id, "done_run_id": write.run_id,
            "done_before": None, "done_start_ms": write.start_ms, "done_end_ms": write.end_ms}
