"""The catalogue: the assets and segments the sandbox stores, behind one lock, and the writes to them as
Iconik's API makes them (a PUT resets what it leaves out, a soft delete keeps the segment with status DELETED,
moving a segment that backs a SUBCLIP moves the subclip). It tells each write to the lagging index (index.py)
and answers reads of the index through it. Dealing scenarios (seeding.py) and checking dump files (state.py)
are done elsewhere; the catalogue only calls them."""

import copy
import threading
import uuid
from typing import Any

from . import seeding
from .index import LaggingIndex
from .schema import ASSET_STATUSES, ASSET_TYPES, EDITABLE_DEFAULTS, READ_ONLY_ON_EDIT, Record, moved_stamp, now_stamp
from .state import state_problem


class Catalogue:
    """The assets and segments the sandbox holds, behind one lock, and what the search index shows of them.

    Building methods (add_asset, add_segment, forbid) describe a world written long ago: the index already
    shows it. The write methods (create_segment, edit_segment, delete_segment, edit_asset) change it as the
    API does: the index takes each change in only `lag` seconds later (Sandbox.index_lag).

    extra_fields ({name: default}) are segment fields Iconik added after every spec reversesync knows: they
    are part of the schema like EDITABLE_DEFAULTS (accepted in bodies, shown in reads, reset by a PUT that
    leaves them out, kept by a PATCH), so a test can show what a client's fixed list of fields would wipe."""

    def __init__(self, extra_fields: dict[str, Any] | None = None) -> None:
        self.extra_fields = dict(extra_fields or {})
        known = set(EDITABLE_DEFAULTS) | set(READ_ONLY_ON_EDIT) | {"segment_type"}
        clashes = sorted(set(self.extra_fields) & known)
        if clashes:
            raise ValueError(f"extra_fields {', '.join(clashes)} are already segment fields")
        self.lock = threading.RLock()
        self.assets: dict[str, Record] = {}
        self.segments: dict[str, list[Record]] = {}  # asset id -> [segment, ...] in creation order
        self.forbidden: set[str] = set()  # ids of assets the token's user may not read
        self._segment_asset: dict[str, str] = {}  # segment id -> asset id, so a segment is found without a scan
        self.index = LaggingIndex()  # guarded by self.lock like the store

    @property
    def last_change(self) -> float:
        """When (time.monotonic()) the last write was made: the index shows everything index_lag after it."""
        return self.index.last_change

    def editable_defaults(self) -> Record:
        """Every editable segment field and its default, the extra fields included (fresh copies)."""
        return copy.deepcopy(dict(EDITABLE_DEFAULTS, **self.extra_fields))

    # --- building ---------------------------------------------------------------------------------

    def add_asset(self, asset_id: str | None = None, *, title: str = "", type: str = "ASSET",
                  status: str = "ACTIVE", start: int | None = None, end: int | None = None,
                  original_asset_id: str | None = None, original_segment_id: str | None = None,
                  strict: bool = True) -> Record:
        """An asset as it has long been, already in the index.

        A type or status Iconik does not have is refused, unless strict=False: one Iconik may add later."""
        if strict and type not in ASSET_TYPES:
            raise ValueError(f"asset type {type!r}; one of {', '.join(ASSET_TYPES)}")
        if strict and status not in ASSET_STATUSES:
            raise ValueError(f"asset status {status!r}; one of {', '.join(ASSET_STATUSES)}")
        asset_id = asset_id or str(uuid.uuid4())
        with self.lock:
            self.assets[asset_id] = {
                "id": asset_id, "title": title, "type": type, "status": status, "time_start_milliseconds": start,
                "time_end_milliseconds": end, "original_asset_id": original_asset_id,
                "original_segment_id": original_segment_id, "date_created": now_stamp(),
                "date_modified": now_stamp(),
            }
            self.segments.setdefault(asset_id, [])
        return self.assets[asset_id]

    def add_segment(self, asset_id: str, segment_type: str, start: int | None, end: int | None,
                    **fields: Any) -> Record:
        """A segment as it has long been, already in the index; fields may set any field, id included."""
        segment = dict(self.editable_defaults(), **{
            "id": str(uuid.uuid4()), "asset_id": asset_id, "segment_type": segment_type,
            "time_start_milliseconds": start, "time_end_milliseconds": end, "date_created": now_stamp(),
            "date_modified": now_stamp(), "user_id": "7f3d2c10-0000-4000-8000-000000000001",
            "user_first_name": "Editor", "user_last_name": "Human", "user_photo": None, "has_drawing": False,
            "subclip_id": None, "parent_id": None, "path": None, "top_level": True,
        })
        segment.update(fields)
        with self.lock:
            self.segments.setdefault(asset_id, []).append(segment)
            self._segment_asset[segment["id"]] = asset_id
        return segment

    def forbid(self, asset_id: str) -> None:
        """The token's user may not read this asset: 403 to every request on it, absent from search."""
        with self.lock:
            self.forbidden.add(asset_id)

    def seed_from_sheet(self, path: str, seed: int = 0, mix: dict[str, float] | None = None) -> dict[str, str]:
        """A believable catalogue for the ids in a sheet CSV; returns {asset id: scenario}.

        Scenarios are dealt in proportion to mix, in an order fixed by seed and each id, so the same
        sheet and seed always give the same catalogue (the made-up ids of parents and segments too)."""
        return seeding.seed_from_sheet(self, path, seed=seed, mix=mix)

    # --- writes, as the API makes them: the index trails them ------------------------------------------

    def create_segment(self, asset_id: str, segment_type: str, start: int | None, end: int | None,
                       **fields: Any) -> Record:
        """A segment written now: stored at once, in the index `lag` seconds later."""
        with self.lock:
            segment = self.add_segment(asset_id, segment_type, start, end, **fields)
            self.index.before_segment_change(asset_id, segment["id"], None)
            self.index.changed(asset_id, segment["id"], segment)
        return segment

    def edit_segment(self, segment: Record, fields: Record, replace: bool = False) -> Record:
        """Change a stored segment now (a PUT if replace: what fields leave out is reset to its default).

        A segment that backs a SUBCLIP is the subclip's range: moving it moves the subclip (ICONIK-FACTS 7.2)."""
        with self.lock:
            before = _times(segment)
            self.index.before_segment_change(segment["asset_id"], segment["id"], segment)
            if replace:
                segment.update(self.editable_defaults())
            segment.update(copy.deepcopy(fields))
            segment["date_modified"] = moved_stamp(segment.get("date_modified"))
            self.index.changed(segment["asset_id"], segment["id"], segment)
            subclip_id = segment.get("subclip_id")
            if _times(segment) != before and subclip_id in self.assets:
                self.edit_asset(subclip_id, time_start_milliseconds=segment["time_start_milliseconds"],
                                time_end_milliseconds=segment["time_end_milliseconds"])
        return segment

    def delete_segment(self, segment: Record, soft: bool = False) -> Record | None:
        """Delete a stored segment now; the index goes on showing it as it was for `lag` seconds.

        soft keeps it with status DELETED, readable by id, as Iconik's soft_delete does (ICONIK-FACTS 8.3)."""
        if soft:
            return self.edit_segment(segment, {"status": "DELETED"})
        with self.lock:
            self.index.before_segment_change(segment["asset_id"], segment["id"], segment)
            self.segments[segment["asset_id"]].remove(segment)
            self._segment_asset.pop(segment["id"], None)
            self.index.changed(segment["asset_id"], segment["id"], None)
        return None

    def find_segment(self, segment_id: str) -> Record | None:
        """The stored segment itself (not a copy), or None."""
        with self.lock:
            asset_id = self._segment_asset.get(segment_id)
            if asset_id is None:
                return None
            return next((s for s in self.segments.get(asset_id, []) if s["id"] == segment_id), None)

    def edit_asset(self, asset_id: str, **fields: Any) -> Record:
        """Change a stored asset now (its status, its times); search shows the change `lag` seconds later."""
        with self.lock:
            asset = self.assets[asset_id]
            self.index.before_asset_change(asset_id, asset)
            asset.update(fields)
            asset["date_modified"] = moved_stamp(asset.get("date_modified"))
            self.index.changed(asset_id, None, asset)
        return asset

    # --- what the index shows ------------------------------------------------------------------------

    def indexed_segments(self, asset_id: str, as_of: float) -> list[Record]:
        """The asset's segments as the index had them at as_of (a time.monotonic() value)."""
        with self.lock:
            return self.index.segments(asset_id, self.segments.get(asset_id, []), as_of)

    def indexed_segment(self, segment_id: str, as_of: float) -> Record | None:
        """One segment as the index had it at as_of, or None."""
        with self.lock:
            return self.index.segment(segment_id, self._segment_asset.get(segment_id),
                                      self.find_segment(segment_id), as_of)

    def indexed_asset(self, asset_id: str, as_of: float) -> Record | None:
        """The asset as the index had it at as_of, or None."""
        with self.lock:
            return self.index.asset(asset_id, self.assets.get(asset_id), as_of)

    def backlog(self) -> int:
        """How many changes the index had not taken in at the last index read."""
        with self.lock:
            return self.index.backlog()

    def reindex(self) -> None:
        """The index catches up at once (Iconik's reindex endpoints; a test that is not about the lag)."""
        with self.lock:
            self.index.clear()

    # --- state as JSON ---------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy({"assets": self.assets, "segments": self.segments,
                                  "forbidden": sorted(self.forbidden), "extra_fields": self.extra_fields})

    def restore(self, state: dict[str, Any]) -> None:
        """Start from a dump (the index is caught up); ValueError if state is not one."""
        problem = state_problem(state)
        if problem:
            raise ValueError(problem)
        with self.lock:
            self.assets = copy.deepcopy(state["assets"])
            self.segments = copy.deepcopy(state["segments"])
            self.forbidden = set(state.get("forbidden") or ())
            if "extra_fields" in state:  # dumps from before extra fields have none: keep this catalogue's
                self.extra_fields = dict(state["extra_fields"])
            self._segment_asset = {s["id"]: asset_id for asset_id, found in self.segments.items() for s in found}
            self.reindex()


def _times(segment: Record) -> tuple[Any, Any]:
    return segment.get("time_start_milliseconds"), segment.get("time_end_milliseconds")
