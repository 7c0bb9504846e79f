"""The decision rules of an undo and a repair: pure functions from a logged write and a fresh read of its segment
to what to do with it (issue #15). Nothing here reads, writes or waits (engine/undo.py and engine/repair.py do).

A person's work is never undone: a segment that differs in any field from what reversesync left there (its
after-image; the date_* and user_* stamps aside) is left alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..types import APPLIED, DUPLICATED, NOT_APPLIED, PENDING_WRITE, RESTORE, SYNC_ACTIONS, Json, Write
from .sync import LIVE_SEGMENT_STATUSES, field_differences, is_absent, is_empty, is_ours, ms, span

TIMES = ("time_start_milliseconds", "time_end_milliseconds")
# The fields a person edits on a segment: a segment reversesync created with nothing in them, and found with
# something in one, has been touched (where no 201 answer was logged to compare with).
PERSON_FIELDS = ("segment_text", "metadata", "segment_color", "drawing", "subclip_id", "is_internal", "shot",
                 "has_attachments", "segment_track", "person_id", "transcription")


@dataclasses.dataclass
class Step:
    """What to do next for one write of an undo: a write ('delete' / 'restore' of segment_id), or finish with
    reason ('undone', 'changed_since', 'cannot_restore'), or leave the row as it is (keep=True, reason says
    why: 'written_later', 'unfinished_write', 'nothing_to_undo')."""

    action: str | None = None
    reason: str | None = None
    text: str = ""
    keep: bool = False
    segment_id: str | None = None
    times: tuple[Any, Any] | None = None      # a restore: the times to put back


def counts_for_undo(write: Write) -> bool:
    """Whether a logged write may have left something in Iconik: applied, unsettled, landed twice, or refused
    after an answer was lost (a lost write can land after any settle time)."""
    return write.outcome in (APPLIED, PENDING_WRITE, DUPLICATED) or write.lost


def expected_after(write: Write) -> Json | None:
    """What an update left on its segment when no answer showed it: the segment as read before it, with the
    times it sent (a PATCH changes nothing else). None for a create: a read taken after it landed may already
    hold a person's edit, so it is never taken for what reversesync left."""
    if write.action != "update" or write.before is None:
        return None
    return dict(write.before, time_start_milliseconds=write.start_ms, time_end_milliseconds=write.end_ms)


def blocking_step(writes: Sequence[Write], target: int, open_write: Write | None = None) -> Step | None:
    """The step that leaves an asset alone because another run's write stands over RUN's, or None.

    writes: the asset's logged writes, oldest first; open_write: the one the row holds open, if any."""
    mine = [w for w in writes if w.run_id == target and w.action in SYNC_ACTIONS]
    if not mine:
        return Step(keep=True, reason="nothing_to_undo", text=f"run {target} logged no write for this asset")
    if open_write is not None and open_write.action in SYNC_ACTIONS and open_write.run_id != target:
        if (open_write.run_id or 0) > target:
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


def differences(found: Json, expected: Json, aside: Sequence[str] = ()) -> list[str]:
    """'field: reversesync left X, now Y' for every field that differs (stamps and aside not compared)."""
    return [f"{name}: reversesync left {left!r}, now {now!r}"
            for name, left, now in field_differences(found, expected, aside)]


def _legacy_update_differences(write: Write, segment: Json) -> list[str]:
    """0.2 kept the editable fields it knew as a before-image and no after-image: compare over those fields
    (and subclip_id), unset and empty alike, with the times it wrote."""
    expected = dict(write.before or {}, time_start_milliseconds=write.start_ms, time_end_milliseconds=write.end_ms)
    names = [*expected, "subclip_id"]
    return [f"{name}: reversesync left {expected.get(name)!r}, now {segment.get(name)!r}" for name in names
            if not (is_empty(segment.get(name)) and is_empty(expected.get(name)))
            and segment.get(name) != expected.get(name)]


def update_step(write: Write, segment: Json | None, run_id: int) -> Step:
    """The step for an update of the undone run from a fresh GET of its segment (None: gone)."""
    if segment is None:
        return Step(reason="undone", text=f"segment {write.segment_id} is gone, so there is nothing to restore.")
    if write.outcome == NOT_APPLIED and span(segment) != (write.start_ms, write.end_ms):
        # Settled as not landed after its answer was lost; it has not landed since either.
        return Step(reason="undone", text=f"run {run_id}'s update of segment {write.segment_id} to "
                                          f"{ms(write.start_ms, write.end_ms)} never landed.")
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
        expected = write.after or expected_after(write) or {}
        problems = differences(segment, expected)
        # The update changed the times only: with them back, nothing of it is left, whatever else a person has
        # changed since (the chaos test caught a restore that landed late beside a person's edit being called
        # changed_since, the ledger saying "left alone" over the times it had put back).
        already = span(segment) == before
    if already:  # a restore whose answer was lost, or a person who put the times back
        return Step(reason="undone", text=f"segment {write.segment_id} already has its times from before run "
                                          f"{run_id} ({ms(*before)}).")
    if problems:
        return Step(reason="changed_since", text=f"segment {write.segment_id} changed since reversesync updated it "
                                                 f"({'; '.join(problems)}); left alone.")
    return Step(action=RESTORE, segment_id=write.segment_id, times=before,
                text=f"restore segment {write.segment_id} from {ms(*span(segment))} to its times from before run "
                     f"{run_id} ({ms(*before)})")


def create_copy_step(write: Write, copy: Json, run_id: int) -> Step:
    """The step for one segment carrying the marker of a create of the undone run (read by id just now)."""
    if write.after:
        problems = differences(copy, write.after, aside=("id",))
    else:  # no 201 answer was ever logged: compare with what the POST carried, and nothing a person adds
        problems = []
        if copy.get("segment_type") != "GENERIC":
            problems.append(f"segment_type: now {copy.get('segment_type')!r}")
        if (write.marker and copy.get("external_id") != write.marker) or not is_ours(copy):
            problems.append(f"external_id: reversesync's marker is gone, now {copy.get('external_id')!r}")
        if span(copy) != (write.start_ms, write.end_ms):
            problems.append(f"times: reversesync left {ms(write.start_ms, write.end_ms)}, now {ms(*span(copy))}")
        if copy.get("status") not in LIVE_SEGMENT_STATUSES:
            problems.append(f"status: now {copy.get('status')!r}")
        problems += [f"{name}: now {copy.get(name)!r}" for name in PERSON_FIELDS if not is_empty(copy.get(name))]
    if problems:
        return Step(reason="changed_since", text=f"segment {copy['id']} changed since reversesync created it "
                                                 f"({'; '.join(problems)}); left alone.")
    return Step(action="delete", segment_id=copy["id"],
                text=f"delete segment {copy['id']} {ms(*span(copy))}, which run {run_id} created")


def repair_choice(marked: Sequence[Json], recorded_id: str | None) -> tuple[Json | None, list[Json]]:
    """(the segment to keep, the others) among the marked GENERIC segments of one asset: the one the ledger
    records if it is there, else the oldest (by date_created, then id)."""
    if not marked:
        return None, []
    ordered = sorted(marked, key=lambda s: (s.get("date_created") or "", s.get("id") or ""))
    keep = next((s for s in ordered if s.get("id") == recorded_id), ordered[0])
    return keep, [s for s in ordered if s is not keep]


def duplicate_problem(fresh: Json | None, keep: Json) -> str | None:
    """Why a duplicate just read by id must not be deleted, or None when it may: only a copy equal to the one
    kept (its id and stamps aside) is a duplicate (issue #15)."""
    if fresh is None or is_absent(fresh):
        return "gone"
    if fresh.get("segment_type") != "GENERIC" or not is_ours(fresh):
        return f"no longer a GENERIC segment of reversesync's (external_id {fresh.get('external_id')!r})"
    if fresh.get("subclip_id"):
        return f"backs SUBCLIP {fresh['subclip_id']}"
    found = field_differences(fresh, keep, aside=("id",))
    if found:
        named = ", ".join(f"{name} {now!r}" for name, _, now in found)
        return f"differs from segment {keep['id']}, which is kept ({named})"
    return None
