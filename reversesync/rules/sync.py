"""The decision rules of a sync: pure functions from what was just read in Iconik to what to do with one row.

Nothing here reads, writes or waits (engine/sync.py does that). Every rule is tested as a table
(tests/test_rules.py), and README's decision table is their user-facing form.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..types import FAILED, SKIPPED, Json

# Segments reversesync creates carry "reversesync:<intent id>" in external_id (issue #10): a write is
# recognisable, and every re-send of one intent carries the same marker. 0.1 wrote the bare word.
MARKER = "reversesync"

# The only asset type reversesync writes on; SUBCLIPs have rules of their own (ICONIK-FACTS 4.2, 7.4).
WRITABLE_TYPE = "ASSET"
SUBCLIP = "SUBCLIP"
# Asset statuses reversesync knows; any other (one Iconik adds later) is never taken for ACTIVE (FACTS 8.2).
ACTIVE, DELETED = "ACTIVE", "DELETED"
KNOWN_ASSET_STATUSES = (ACTIVE, DELETED)
# A GENERIC segment with one of these statuses is a live clip range (no status: an older Iconik's ACTIVE);
# DELETED is absent; any other (AWAITED, or one added later) blocks its asset (ICONIK-FACTS 8.2).
LIVE_SEGMENT_STATUSES = (None, ACTIVE)
# Fields that move with any write or name who made it: never a sign that a person changed a segment's content.
STAMP_PREFIXES = ("date_", "user_")

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def canonical_uuid(value: Any) -> str | None:
    """The lower-case canonical form of value if it is a UUID as Iconik writes them, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text if _UUID.match(text) else None


def marker(intent_id: str) -> str:
    """The external_id of every segment written for this intent."""
    return f"{MARKER}:{intent_id}"


def is_ours(segment: Json) -> bool:
    """True when a segment's external_id marks it as written by reversesync (any version)."""
    external = segment.get("external_id")
    return isinstance(external, str) and external.startswith(MARKER)


@dataclasses.dataclass
class Decision:
    """What one read says to do: create, update, or finish the row as state/reason."""

    action: str | None = None     # "create" / "update" / None
    state: str | None = None      # final state when there is nothing to write
    reason: str | None = None
    text: str = ""
    segment: Json | None = None   # the segment to update, or the one already in sync
    asset: Json | None = None     # the asset it was decided from
    # When (the clock's monotonic time) the oldest index read it was decided from was asked: a search answer or a
    # segment list; None when it read no index. A write goes out at most engine.search.FRESH_FOR after it.
    as_of: float | None = None


def ms(start: Any, end: Any) -> str:
    return f"{start}-{end} ms"


def span(segment: Json) -> tuple[Any, Any]:
    return segment.get("time_start_milliseconds"), segment.get("time_end_milliseconds")


def missing_asset_fields(asset: Json) -> list[str]:
    """The fields a decision needs that a fresh asset read lacks (never guessed at, issue #9)."""
    return [field for field in ("type", "status") if not asset.get(field)]


def generic_only(segments: Iterable[Json]) -> list[Json]:
    """The GENERIC segments of a list that are not deleted; COMMENT, MARKER and the rest are never clip ranges
    (FACTS 4.3), and a DELETED segment counts as absent everywhere (issue #15)."""
    return [s for s in segments if s.get("segment_type") == "GENERIC" and s.get("status") != DELETED]


def is_absent(segment: Json | None) -> bool:
    """A segment read by id that is gone: 404 (None) or soft-deleted."""
    return segment is None or segment.get("status") == DELETED


def not_live(segments: Iterable[Json]) -> list[Json]:
    """The GENERIC segments whose status is neither live nor deleted (AWAITED, or one Iconik adds later)."""
    return [s for s in segments if s.get("status") not in LIVE_SEGMENT_STATUSES]


def field_differences(found: Json, expected: Json, aside: Sequence[str] = ()) -> list[tuple[str, Any, Any]]:
    """[(field, expected value, found value)] for every field whose value differs, absent and null alike; the
    fields in aside and the stamps (date_*, user_*) are not compared."""
    names = dict.fromkeys([*expected, *found])
    return [(name, expected.get(name), found.get(name)) for name in names
            if name not in aside and not name.startswith(STAMP_PREFIXES) and found.get(name) != expected.get(name)]


def patch_replaced(before: Json, answer: Json) -> list[str]:
    """The fields besides the times that a PATCH of the times emptied, from the GET by id before it and the 200
    answer: a PATCH that replaced like a PUT (issue #15) resets what it does not carry to its default (null,
    empty, false). A field that now holds another value is a person's edit that landed between the read and the
    PATCH, not a reset: counting it stopped every writing command for nothing (an adversarial review found)."""
    return [name for name in dict.fromkeys([*before, *answer])
            if name not in ("time_start_milliseconds", "time_end_milliseconds", "date_modified")
            and answer.get(name) != before.get(name) and is_empty(answer.get(name)) and not is_empty(before.get(name))]


def is_empty(value: Any) -> bool:
    """A field's value as a reset leaves it: null, empty or false (unset and empty count alike)."""
    return value is None or value is False or value in ("", [], {})


def decide(asset: Json | None, generic_segments: Sequence[Json], start: int | None, end: int | None,
           lost: str | None = None) -> Decision:
    """The decision rules of issues #4 and #9, in their order, from the asset and its GENERIC segments; lost: the
    row's segment of record when a fresh read found it deleted (it is never replaced by another, below)."""
    if asset is None:
        return Decision(state=FAILED, reason="not_found",
                        text="Iconik has no asset with this id (404); check the id in the sheet.")
    missing = missing_asset_fields(asset)
    if missing:
        return Decision(state=FAILED, reason="unexpected_answer",
                        text=f"Iconik's answer for the asset has no {' or '.join(missing)}; nothing was written "
                             "(a decision is never guessed). Report it if it persists.")
    if asset["status"] == DELETED:
        return Decision(state=SKIPPED, reason="asset_deleted", text="the asset is deleted in Iconik; nothing written.")
    if asset["status"] not in KNOWN_ASSET_STATUSES:
        return Decision(state=SKIPPED, reason="unsupported_status",
                        text=f"the asset's status is {asset['status']}, neither ACTIVE nor DELETED; reversesync "
                             "writes only on ACTIVE assets, so nothing was written.")
    if asset["type"] == SUBCLIP:
        return _subclip_decision(asset, start, end)
    if asset["type"] != WRITABLE_TYPE:
        return Decision(state=SKIPPED, reason="unsupported_type",
                        text=f"the asset is a {asset['type']}, not an ASSET; reversesync writes segments only on "
                             "ASSETs, so nothing was written.")
    return _without_its_own_segment(_segment_decision(generic_segments, start, end), lost)


def _subclip_decision(asset: Json, start: int | None, end: int | None) -> Decision:
    # A SUBCLIP's in/out points are its own fields; a segment on it would be a wrong write (FACTS 4.2).
    found = span(asset)
    if found == (start, end):
        return Decision(state=SKIPPED, reason="in_sync", text=f"SUBCLIP already spans {ms(start, end)}.")
    return Decision(state=SKIPPED, reason="subclip_mismatch",
                    text=f"SUBCLIP spans {ms(*found)} but the sheet says {ms(start, end)}; a SUBCLIP's range belongs "
                         "to its parent's segment, so nothing was written. Fix it by hand.")


def _segment_decision(generic_segments: Sequence[Json], start: int | None, end: int | None) -> Decision:
    waiting = not_live(generic_segments)
    if waiting:
        # Neither a clip range to compare with nor one to ignore: leave the asset until Iconik settles it.
        names = "; ".join(f"segment {s['id']} {ms(*span(s))} is {s.get('status')}" for s in waiting)
        return Decision(state=SKIPPED, reason="segment_status",
                        text=f"{names}, not ACTIVE; nothing was written. Check it in Iconik, then run "
                             "--recheck segment_status.")
    equal = [s for s in generic_segments if span(s) == (start, end)]
    if equal:
        return Decision(state=SKIPPED, reason="in_sync", segment=equal[0],
                        text=f"GENERIC segment {equal[0]['id']} already spans {ms(start, end)}.")
    linked = [s for s in generic_segments if s.get("subclip_id")]
    if linked:
        # A GENERIC segment with subclip_id is a subclip's range: moving it moves the subclip (FACTS 7.2).
        names = "; ".join(f"segment {s['id']} {ms(*span(s))} backs SUBCLIP {s['subclip_id']}" for s in linked)
        return Decision(state=SKIPPED, reason="subclip_linked",
                        text=f"{names}; it is a subclip's range, not this clip's, so nothing was written. Set the "
                             "clip's range by hand in Iconik, then run --recheck subclip_linked.")
    if not generic_segments:
        return Decision(action="create", text=f"create a GENERIC segment {ms(start, end)}")
    if len(generic_segments) == 1:
        segment = generic_segments[0]
        return Decision(action="update", segment=segment,
                        text=f"update GENERIC segment {segment['id']} from {ms(*span(segment))} to {ms(start, end)}")
    listed = "; ".join(f"{s['id']} {ms(*span(s))}" for s in generic_segments)
    return Decision(state=SKIPPED, reason="ambiguous",
                    text=f"{len(generic_segments)} GENERIC segments and none spans {ms(start, end)} ({listed}); "
                         "delete the wrong ones in Iconik, then run --live --recheck ambiguous.")


def index_can_decide(shown: int, decision: Decision) -> bool:
    """Whether a decision taken from search documents stands (issue #19), shown being how many GENERIC segments
    the index showed for the asset: with two or more, only "in sync" does (nothing is written); anything else is
    taken again from the asset's own segment list."""
    return shown < 2 or decision.reason == "in_sync"


def _without_its_own_segment(decision: Decision, lost: str | None) -> Decision:
    """A row whose segment of record is gone (deleted in Iconik) is not moved onto another segment: a GENERIC
    segment on its asset now is a person's, made since. It may be created again where the asset has none; an
    update becomes drift_deleted, left to a person (an adversarial review caught `sync --repair-drift` PATCHing
    such a segment to the sheet's times)."""
    if lost is None or decision.action != "update" or decision.segment is None:
        return decision
    other = decision.segment
    return Decision(state=SKIPPED, reason="drift_deleted", asset=decision.asset, as_of=decision.as_of,
                    text=f"segment {lost} that the ledger ties to this row was deleted in Iconik, and GENERIC segment "
                         f"{other['id']} ({ms(*span(other))}) is there now: a person's, which reversesync does not "
                         "move in place of its own. Check the asset in Iconik; delete that segment and run `sync "
                         "--repair-drift` to have the sheet's segment created again.")


def update_target_problem(segment: Json, expected_id: str) -> tuple[str, str] | None:
    """Why a segment just read by id must not be PATCHed, or None when it may (issue #9).

    The list said "update this one"; the fresh GET is what decides."""
    if segment.get("id") != expected_id:
        return "changed", f"Iconik answered segment {segment.get('id')} for {expected_id}"
    if segment.get("segment_type") != "GENERIC" or segment.get("status") == DELETED:
        return "changed", f"segment {expected_id} is now a {segment.get('segment_type')} " \
                          f"({segment.get('status') or 'ACTIVE'})"
    if segment.get("status") not in LIVE_SEGMENT_STATUSES:
        return "segment_status", f"segment {expected_id} {ms(*span(segment))} is {segment.get('status')}, not ACTIVE"
    if segment.get("subclip_id"):
        return "subclip_linked", f"segment {expected_id} {ms(*span(segment))} backs SUBCLIP {segment['subclip_id']}"
    return None


def created_answer_problem(answer: Any, asset_id: str) -> str | None:
    """Why a 201 answer is not the GENERIC segment asked for on this asset, or None (issue #9)."""
    if not isinstance(answer, dict) or not answer.get("id"):
        return "Iconik's 201 answer carries no segment id"
    if answer.get("asset_id") != asset_id or answer.get("segment_type") != "GENERIC":
        return (f"Iconik created segment {answer.get('id')} ({answer.get('segment_type')}) on asset "
                f"{answer.get('asset_id')}, not a GENERIC segment on {asset_id}; remove it by hand in Iconik")
    return None


def index_document_trusted(document: Json, fields: Iterable[str]) -> bool:
    """An index document is trusted only if it carries every field a decision needs (issue #9).

    Absent nullable fields (subclip_id, external_id) count as null, so they are not required."""
    return all(document.get(field) is not None for field in fields)
