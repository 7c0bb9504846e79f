"""Drift: what became of a segment reversesync wrote, from a fresh read of it by id and the asset's GENERIC list
(issue #17). Pure: the sync's drift check reads, this decides."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..types import Json
from .sync import generic_only, is_absent, ms, span


@dataclasses.dataclass(frozen=True)
class Drift:
    """A segment reversesync wrote that is no longer as it left it: reason is one of DRIFT_REASONS."""

    reason: str
    text: str


def drift(segment_id: str, start: int, end: int, read: Json | None, listed: Sequence[Json]) -> Drift | None:
    """None when the segment reversesync wrote (segment_id, start-end ms) is still there once, as written.

    read: the segment read by id (None for a 404): the stored record, fresh. listed: the asset's segments from
    Iconik's index, which trails writes; it is only used to count copies of the segment, long after it was
    written."""
    if is_absent(read):
        return Drift("drift_deleted", f"segment {segment_id} that reversesync wrote ({ms(start, end)}) was deleted in "
                                      "Iconik; `sync --repair-drift` creates it again from the sheet.")
    assert read is not None
    if read.get("segment_type") != "GENERIC":
        # A person made it another kind of segment: theirs now. The clip's range goes on a GENERIC segment of its own.
        return Drift("drift_moved", f"segment {segment_id} that reversesync wrote as GENERIC {ms(start, end)} is now "
                                    f"{read.get('segment_type')} {ms(*span(read))}; `sync --repair-drift` creates a "
                                    "GENERIC segment with the sheet's times and leaves this one as the person made it.")
    if span(read) != (start, end):
        return Drift("drift_moved", f"segment {segment_id} that reversesync wrote as GENERIC {ms(start, end)} is now "
                                    f"GENERIC {ms(*span(read))}; `sync --repair-drift` sets the sheet's times back, "
                                    "leaving every other field as it is.")
    # Whether Iconik's "duplicate segment" copies external_id is not documented: a copy is any other GENERIC
    # segment that carries the same marker or spans exactly the same times.
    marker = read.get("external_id")
    copies = [s for s in generic_only(listed) if s.get("id") != segment_id
              and (marker and s.get("external_id") == marker or span(s) == (start, end))]
    if copies:
        names = "; ".join(f"{s.get('id')} {ms(*span(s))}" for s in copies)
        return Drift("drift_duplicated", f"segment {segment_id} ({ms(start, end)}) is in Iconik more than once: also "
                                         f"{names}. Keep one and delete the others by hand; reversesync deletes "
                                         "nobody's segment.")
    return None
