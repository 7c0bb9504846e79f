"""A local stand-in for Iconik on 127.0.0.1: the endpoints reversesync uses, with Iconik's behaviour,
its limits, and faults on demand. Good enough to rehearse a production run on a copy of the sheet.

Where the real service differs from a naive model, the sandbox does what Iconik does (ICONIK-FACTS 7):
segment lists and search come from an index that trails the stored records, a write can land after its
answer was lost, editing a segment that backs a SUBCLIP moves the subclip, assets come in every type and
some answer 403, and every answer carries RateLimit-Remaining.

Segments follow the live schema that Iconik's own SDK shows (ICONIK-FACTS 8): every editable field of
EditSegmentSchema, and for tests fields Iconik may add later (Catalogue extra_fields); a PUT replaces them all
while a PATCH changes only what it carries (Sandbox patch='replace' plays a PATCH that does not); a soft delete
leaves a segment readable, and listed, with status DELETED; statuses are ACTIVE, AWAITED and DELETED.

Sandbox's test hooks, marked as such, script answers (force) and let a person edit, create or delete segments
while a client runs (person_edits, person_creates, person_deletes), as through Iconik's UI."""

import collections
import copy
import dataclasses
import datetime
import hashlib
import http.server
import json
import math
import os
import random
import re
import sys
import threading
import time
import urllib.parse
import uuid

from .. import sources

DEMO_APP_ID = "00000000-0000-4000-8000-00000000a99d"
DEMO_AUTH_TOKEN = "sandbox-token-not-a-secret"
ALL_ROLES = ("can_read_assets", "can_read_segments", "can_create_segments", "can_write_segments",
             "can_delete_segments", "can_search")
# The live types and statuses (ICONIK-FACTS 8.2): the older spec lacks SHOT, SEMANTIC_TRANSCRIPTION and the statuses.
SEGMENT_TYPES = ("MARKER", "QC", "GENERIC", "COMMENT", "TAG", "TRANSCRIPTION", "SCENE", "PERSON", "SHOT",
                 "SEMANTIC_TRANSCRIPTION")
SEGMENT_STATUSES = ("ACTIVE", "AWAITED", "DELETED")
ASSET_TYPES = ("ASSET", "SEQUENCE", "NLE_PROJECT", "PLACEHOLDER", "CUSTOM", "LINK", "SUBCLIP")
ASSET_STATUSES = ("ACTIVE", "DELETED")
# Types reversesync must leave alone: no clip range of their own to put back.
OTHER_ASSET_TYPES = ("SEQUENCE", "NLE_PROJECT", "PLACEHOLDER", "CUSTOM", "LINK")
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 1000  # segment lists and search both take per_page up to 1000 (ICONIK-FACTS 7.6, 7.9)
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
FORCED_ACTIONS = (None, "drop_before", "drop_after", "apply_late")
# What a segment PATCH does: "merge" as Iconik documents it (only the fields the body carries change), or
# "replace" like a PUT, to test a client's guard against a PATCH that wipes what it left out (ICONIK-FACTS 8.1).
PATCH_MODES = ("merge", "replace")

# Iconik's published limits per App-ID/Auth-Token pair (ICONIK-FACTS 5).
ICONIK_RATE = 50.0
WINDOW_SECONDS = 20.0
REMAINING_READINGS = ("bucket", "window")

# How far the search index (segment lists, search) trails the stored records by default. Iconik publishes
# no figure; Elasticsearch's 1 s refresh is only a floor (ICONIK-FACTS 7.1).
DEFAULT_INDEX_LAG = 2.0

# Fields a client must never send (ICONIK-FACTS 3); the sandbox rejects them like a strict Iconik would.
READ_ONLY_SEGMENT_FIELDS = ("id", "asset_id", "date_created", "date_modified", "has_drawing", "subclip_id",
                            "user_first_name", "user_last_name", "user_photo")
READ_ONLY_ON_EDIT = READ_ONLY_SEGMENT_FIELDS + ("parent_id", "path", "top_level", "user_id")
# Every editable field of the live EditSegmentSchema and what a PUT that leaves it out resets it to. The last
# five are missing from the older spec (ICONIK-FACTS 8.1): a client's list of known fields may lack them too.
EDITABLE_DEFAULTS = {
    "metadata": {}, "metadata_view_id": None, "segment_color": None, "segment_text": None,
    "segment_track": None, "segment_checked": False, "external_id": None, "drawing": None, "keyframe_id": None,
    "version_id": None, "status": "ACTIVE", "person_id": None, "project_id": None, "share_id": None,
    "share_user_email": None, "face_bounding_boxes": None, "transcription": None, "transcription_id": None,
    "time_start_milliseconds": None, "time_end_milliseconds": None,
    "is_internal": False, "has_attachments": False, "semantic_transcription": None, "share_session_id": None,
    "shot": None,
}
FORBIDDEN_MESSAGE = "You do not have permission to access this asset"

# What each seeded asset looks like, and what reversesync should make of it (state/reason in EXPECTED).
SCENARIOS = {
    "no_segments": "ASSET without segments: created/create",
    "comments_only": "ASSET with only COMMENT and MARKER point segments (over several pages): created/create",
    "in_sync": "ASSET with one GENERIC segment holding the sheet's times: skipped/in_sync",
    "differs": "ASSET with one GENERIC segment holding other times: updated/update",
    "zero_length": "ASSET with one zero-length GENERIC segment: updated/update",
    "two_one_equal": "ASSET with two GENERIC segments, one equal to the sheet: skipped/in_sync",
    "two_none_equal": "ASSET with two GENERIC segments, neither equal: skipped/ambiguous",
    "subclip_equal": "SUBCLIP whose own times equal the sheet (its parent holds the backing segment): "
                     "skipped/in_sync",
    "subclip_differs": "SUBCLIP whose own times differ: skipped/subclip_mismatch",
    "subclip_parent": "ASSET whose only GENERIC segment backs a SUBCLIP (subclip_id set) with other times; "
                      "updating it would move the subclip: skipped/subclip_linked",
    "other_type": "SEQUENCE, NLE_PROJECT, PLACEHOLDER, CUSTOM or LINK without a GENERIC segment: "
                  "skipped/unsupported_type",
    "deleted": "ASSET with status DELETED (in the recycle bin, reads 200): skipped/asset_deleted",
    "forbidden": "ASSET the token's user may not read: 403 to every request on it: failed/forbidden",
    "unknown": "no such asset (404): failed/not_found",
    # Not in DEFAULT_MIX, whose weights the benchmarks use; deal them with mix (--mix).
    "awaited": "ASSET whose only GENERIC segment has status AWAITED: skipped/segment_status",
    "odd_status": "ASSET with a status Iconik may add later (e.g. ARCHIVED): skipped/unsupported_status",
}
EXPECTED = {name: text.rsplit(": ", 1)[1] for name, text in SCENARIOS.items()}
DEFAULT_MIX = {"no_segments": 29, "comments_only": 10, "in_sync": 16, "differs": 5, "zero_length": 3,
               "two_one_equal": 3, "two_none_equal": 2, "subclip_equal": 12, "subclip_differs": 3,
               "deleted": 2, "unknown": 11, "subclip_parent": 2, "other_type": 1, "forbidden": 1}

_UUID_PART = r"[0-9a-fA-F-]{36}"
_ROUTES = [
    ("token", re.compile(r"^/API/auth/v1/auth/token/$")),
    ("user", re.compile(r"^/API/users/v1/users/current/$")),
    ("roles", re.compile(r"^/API/users/v1/users/current/roles/$")),
    ("asset", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/$")),
    ("segments", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/$")),
    ("segments_of_type", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/(?P<type>[A-Z_]+)/$")),
    ("segment", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/(?P<segment>{_UUID_PART})/$")),
    ("search", re.compile(r"^/API/search/v1/search/$")),
    ("state", re.compile(r"^/_sandbox/state/$")),
]


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _moved(previous):
    """A date_modified for a change now: strictly after previous even within one millisecond, since a client
    tells from it that a record changed after it read it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as written: to the millisecond
    try:
        earlier = datetime.datetime.fromisoformat(previous) if previous else None
    except (TypeError, ValueError):
        earlier = None
    if earlier is not None and earlier.tzinfo is not None and now <= earlier:
        now = earlier + datetime.timedelta(milliseconds=1)
    return now.isoformat(timespec="milliseconds")


def _seeded_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def mint_credentials():
    """A fresh (App-ID, Auth-Token) pair for one sandbox start: never a value anyone else holds."""
    return str(uuid.uuid4()), str(uuid.uuid4())


@dataclasses.dataclass
class Faults:
    """Per-request fault probabilities. Writes are POST, PUT, PATCH and DELETE; a search is a read."""

    server_error: float = 0.0     # 503 on any request under /API/assets
    conflict: float = 0.0         # 409 on a write, not applied
    drop_before: float = 0.0      # a write's connection closed before it is applied
    drop_after: float = 0.0       # a write applied, then its connection closed with no answer
    apply_late: float = 0.0       # a write's connection closed at once, the write applied late_min..max_ms later
    late_min_ms: int = 500
    late_max_ms: int = 4000
    slow: float = 0.0             # an answer delayed by slow_ms, after a write was applied
    slow_ms: int = 2000
    revoke_after: int = 0         # after this many requests the token stops working (401); 0 = never

    _NAMES = {"5xx": "server_error", "409": "conflict", "drop_before": "drop_before", "drop_after": "drop_after",
              "apply_late": "apply_late", "late_min_ms": "late_min_ms", "late_max_ms": "late_max_ms",
              "slow": "slow", "slow_ms": "slow_ms", "revoke_after": "revoke_after"}

    @classmethod
    def parse(cls, spec):
        """'5xx=0.05,409=0.02,drop_before=0.01,drop_after=0.01,apply_late=0.02,slow=0.01,slow_ms=3000'."""
        values = {}
        for part in filter(None, (p.strip() for p in (spec or "").split(","))):
            name, equals, text = (piece.strip() for piece in part.partition("="))
            field = cls._NAMES.get(name)
            if field is None:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(cls._NAMES)}")
            if not equals or not text:
                raise ValueError(f"{name} needs a value, e.g. {name}={cls._example(field)}")
            values[field] = cls._value(name, field, text)
        faults = cls(**values)
        if faults.late_min_ms > faults.late_max_ms:
            raise ValueError(f"late_min_ms={faults.late_min_ms} is above late_max_ms={faults.late_max_ms}")
        return faults

    @classmethod
    def _example(cls, field):
        return "0.05" if isinstance(getattr(cls, field), float) else "1000"

    @classmethod
    def _value(cls, name, field, text):
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{name}={text}: not a number") from None
        if isinstance(getattr(cls, field), float):
            if not 0.0 <= number <= 1.0:
                raise ValueError(f"{name}={text}: a probability is between 0 and 1")
            return number
        if number < 0 or number != int(number):
            raise ValueError(f"{name}={text}: must be a whole number, 0 or more")
        return int(number)


class RateLimiter:
    """Iconik's two budgets: a bucket of `rate` per second holding one second's worth, and 20 x rate
    requests in any 20 s window. It always counts (for RateLimit-Remaining); it refuses only if enforce."""

    def __init__(self, rate=ICONIK_RATE, enforce=False, remaining="bucket"):
        if remaining not in REMAINING_READINGS:
            raise ValueError(f"remaining must be one of {', '.join(REMAINING_READINGS)}")
        self.rate = float(rate)
        self.enforce = enforce
        self.remaining = remaining
        self.capacity = max(1.0, self.rate)
        self.window_size = int(round(WINDOW_SECONDS * self.rate))
        self.tokens = self.capacity
        self.window = collections.deque()
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self, enforce=True):
        """(allowed, remaining, retry_after_seconds) for one request; enforce=False counts it whatever."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            while self.window and self.window[0] <= now - WINDOW_SECONDS:
                self.window.popleft()
            if self.enforce and enforce:
                if len(self.window) >= self.window_size:
                    return False, 0, self.window[0] + WINDOW_SECONDS - now
                if self.tokens < 1.0:
                    return False, 0, (1.0 - self.tokens) / self.rate
            self.tokens = max(0.0, self.tokens - 1.0)
            self.window.append(now)
            return True, self._remaining(), 0.0

    def _remaining(self):
        if self.remaining == "window":
            return max(0, self.window_size - len(self.window))
        return int(self.tokens)


class Catalogue:
    """The assets and segments the sandbox holds, behind one lock, and what the search index shows of them.

    Building methods (add_asset, add_segment, forbid) describe a world written long ago: the index already
    shows it. The write methods (create_segment, edit_segment, delete_segment, edit_asset) change it as the
    API does: the index takes each change in only `lag` seconds later (Sandbox.index_lag).

    extra_fields ({name: default}) are segment fields Iconik added after every spec reversesync knows: they
    are part of the schema like EDITABLE_DEFAULTS (accepted in bodies, shown in reads, reset by a PUT that
    leaves them out, kept by a PATCH), so a test can show what a client's fixed list of fields would wipe."""

    def __init__(self, extra_fields=None):
        self.extra_fields = dict(extra_fields or {})
        known = set(EDITABLE_DEFAULTS) | set(READ_ONLY_ON_EDIT) | {"segment_type"}
        clashes = sorted(set(self.extra_fields) & known)
        if clashes:
            raise ValueError(f"extra_fields {', '.join(clashes)} are already segment fields")
        self.lock = threading.RLock()
        self.assets = {}
        self.segments = {}  # asset id -> [segment, ...] in creation order
        self.forbidden = set()  # ids of assets the token's user may not read
        self._segment_asset = {}  # segment id -> asset id, so a segment is found without a scan
        # Records changed more recently than the index has caught up with: asset id -> {segment id: history}
        # and asset id -> history, a history being [(time.monotonic(), version or None), ...] whose first
        # entry is what the index showed before the changes. The backlog lists changes in time order, so
        # that histories the index has caught up with are forgotten in O(1) each.
        self._unindexed_segments = {}
        self._unindexed_assets = {}
        self._backlog = collections.deque()  # (time, asset id, segment id or None for the asset itself)
        self.last_change = float("-inf")

    def editable_defaults(self):
        """Every editable segment field and its default, the extra fields included (fresh copies)."""
        return copy.deepcopy(dict(EDITABLE_DEFAULTS, **self.extra_fields))

    # --- building ---------------------------------------------------------------------------------

    def add_asset(self, asset_id=None, *, title="", type="ASSET", status="ACTIVE", start=None, end=None,
                  original_asset_id=None, original_segment_id=None, strict=True):
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
                "original_segment_id": original_segment_id, "date_created": _now(), "date_modified": _now(),
            }
            self.segments.setdefault(asset_id, [])
        return self.assets[asset_id]

    def add_segment(self, asset_id, segment_type, start, end, **fields):
        """A segment as it has long been, already in the index; fields may set any field, id included."""
        segment = dict(self.editable_defaults(), **{
            "id": str(uuid.uuid4()), "asset_id": asset_id, "segment_type": segment_type,
            "time_start_milliseconds": start, "time_end_milliseconds": end, "date_created": _now(),
            "date_modified": _now(), "user_id": "7f3d2c10-0000-4000-8000-000000000001",
            "user_first_name": "Editor", "user_last_name": "Human", "user_photo": None, "has_drawing": False,
            "subclip_id": None, "parent_id": None, "path": None, "top_level": True,
        })
        segment.update(fields)
        with self.lock:
            self.segments.setdefault(asset_id, []).append(segment)
            self._segment_asset[segment["id"]] = asset_id
        return segment

    def forbid(self, asset_id):
        """The token's user may not read this asset: 403 to every request on it, absent from search."""
        with self.lock:
            self.forbidden.add(asset_id)

    # --- writes, as the API makes them: the index trails them ------------------------------------------

    def create_segment(self, asset_id, segment_type, start, end, **fields):
        """A segment written now: stored at once, in the index `lag` seconds later."""
        with self.lock:
            segment = self.add_segment(asset_id, segment_type, start, end, **fields)
            self._segment_history(asset_id, segment["id"], None)
            self._changed(asset_id, segment["id"], segment)
        return segment

    def edit_segment(self, segment, fields, replace=False):
        """Change a stored segment now (a PUT if replace: what fields leave out is reset to its default).

        A segment that backs a SUBCLIP is the subclip's range: moving it moves the subclip (ICONIK-FACTS 7.2)."""
        with self.lock:
            before = _times(segment)
            self._segment_history(segment["asset_id"], segment["id"], segment)
            if replace:
                segment.update(self.editable_defaults())
            segment.update(copy.deepcopy(fields))
            segment["date_modified"] = _moved(segment.get("date_modified"))
            self._changed(segment["asset_id"], segment["id"], segment)
            subclip_id = segment.get("subclip_id")
            if _times(segment) != before and subclip_id in self.assets:
                self.edit_asset(subclip_id, time_start_milliseconds=segment["time_start_milliseconds"],
                                time_end_milliseconds=segment["time_end_milliseconds"])
        return segment

    def delete_segment(self, segment, soft=False):
        """Delete a stored segment now; the index goes on showing it as it was for `lag` seconds.

        soft keeps it with status DELETED, readable by id, as Iconik's soft_delete does (ICONIK-FACTS 8.3)."""
        if soft:
            return self.edit_segment(segment, {"status": "DELETED"})
        with self.lock:
            self._segment_history(segment["asset_id"], segment["id"], segment)
            self.segments[segment["asset_id"]].remove(segment)
            self._segment_asset.pop(segment["id"], None)
            self._changed(segment["asset_id"], segment["id"], None)
        return None

    def find_segment(self, segment_id):
        """The stored segment itself (not a copy), or None."""
        with self.lock:
            asset_id = self._segment_asset.get(segment_id)
            return next((s for s in self.segments.get(asset_id, []) if s["id"] == segment_id), None)

    def edit_asset(self, asset_id, **fields):
        """Change a stored asset now (its status, its times); search shows the change `lag` seconds later."""
        with self.lock:
            asset = self.assets[asset_id]
            if asset_id not in self._unindexed_assets:
                self._unindexed_assets[asset_id] = [(float("-inf"), copy.deepcopy(asset))]
            asset.update(fields)
            asset["date_modified"] = _moved(asset.get("date_modified"))
            self._changed(asset_id, None, asset)
        return asset

    def _segment_history(self, asset_id, segment_id, current):
        """Before a change: keep what the index shows until it takes the change in (once per backlog)."""
        changes = self._unindexed_segments.setdefault(asset_id, {})
        if segment_id not in changes:
            changes[segment_id] = [(float("-inf"), copy.deepcopy(current))]

    def _changed(self, asset_id, segment_id, version):
        """After a change: the version the index shows from `lag` seconds on."""
        self.last_change = time.monotonic()
        history = self._unindexed_assets[asset_id] if segment_id is None else \
            self._unindexed_segments[asset_id][segment_id]
        history.append((self.last_change, copy.deepcopy(version)))
        self._backlog.append((self.last_change, asset_id, segment_id))

    # --- what the index shows ------------------------------------------------------------------------

    def indexed_segments(self, asset_id, as_of):
        """The asset's segments as the index had them at as_of (a time.monotonic() value)."""
        with self.lock:
            self._catch_up(as_of)
            stored = self.segments.get(asset_id, [])
            changes = self._unindexed_segments.get(asset_id)
            if not changes:
                return list(stored)  # the common case: nothing recent, the index agrees with the store
            shown = [_version_as_of(changes[s["id"]], as_of) if s["id"] in changes else s for s in stored]
            stored_ids = {s["id"] for s in stored}
            shown += [_version_as_of(history, as_of) for segment_id, history in changes.items()
                      if segment_id not in stored_ids]  # deleted from the store, maybe not from the index
            return [segment for segment in shown if segment is not None]

    def indexed_segment(self, segment_id, as_of):
        """One segment as the index had it at as_of, or None."""
        with self.lock:
            self._catch_up(as_of)
            asset_id = self._segment_asset.get(segment_id)
            if asset_id is None:  # deleted from the store: the index may still hold it (few such: recent ones)
                asset_id = next((key for key, changes in self._unindexed_segments.items() if segment_id in changes),
                                None)
            history = self._unindexed_segments.get(asset_id, {}).get(segment_id)
            if history is not None:
                return _version_as_of(history, as_of)
            return next((s for s in self.segments.get(asset_id, []) if s["id"] == segment_id), None)

    def indexed_asset(self, asset_id, as_of):
        """The asset as the index had it at as_of, or None."""
        with self.lock:
            self._catch_up(as_of)
            history = self._unindexed_assets.get(asset_id)
            return self.assets.get(asset_id) if history is None else _version_as_of(history, as_of)

    def _catch_up(self, as_of):
        """Forget the histories whose last change the index has taken in by as_of: it shows the store there."""
        while self._backlog and self._backlog[0][0] <= as_of:
            _, asset_id, segment_id = self._backlog.popleft()
            if segment_id is None:
                history = self._unindexed_assets.get(asset_id)
                if history and history[-1][0] <= as_of:
                    del self._unindexed_assets[asset_id]
                continue
            changes = self._unindexed_segments.get(asset_id, {})
            history = changes.get(segment_id)
            if history and history[-1][0] <= as_of:
                del changes[segment_id]
                if not changes:
                    del self._unindexed_segments[asset_id]

    def backlog(self):
        """How many changes the index had not taken in at the last index read."""
        with self.lock:
            return len(self._backlog)

    def reindex(self):
        """The index catches up at once (Iconik's reindex endpoints; a test that is not about the lag)."""
        with self.lock:
            self._unindexed_segments.clear()
            self._unindexed_assets.clear()
            self._backlog.clear()

    # --- seeding -----------------------------------------------------------------------------------

    def seed_from_sheet(self, path, seed=0, mix=None):
        """A believable catalogue for the ids in a sheet CSV; returns {asset id: scenario}.

        Scenarios are dealt in proportion to mix, in an order fixed by seed and each id, so the same
        sheet and seed always give the same catalogue (the made-up ids of parents and segments too)."""
        header, rows = sources.read_csv(path)
        records = sources.records_from_table(header, rows)
        ids = sorted({r.key for r in records if not r.key.startswith("row:")},
                     key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
        by_key = {r.key: r for r in records}
        weights = mix or DEFAULT_MIX
        total = float(sum(weights.values()))
        bounds, running = [], 0.0
        for name, weight in weights.items():
            running += weight / total
            bounds.append((running, name))
        dealt = {}
        for position, key in enumerate(ids):
            record = by_key[key]
            if record.reason:
                self.add_asset(key, title=record.title)  # rejected rows still name real assets
                dealt[key] = "rejected"
                continue
            fraction = (position + 0.5) / len(ids)
            scenario = next(name for bound, name in bounds if fraction <= bound + 1e-12)
            # Ids come from their own generator so that adding them did not change the other draws.
            self._build(scenario, key, record, random.Random(f"{seed}:{key}"), random.Random(f"{seed}:{key}:ids"))
            dealt[key] = scenario
        return dealt

    def _build(self, scenario, key, record, rng, ids):
        start, end = record.time_start_ms, record.time_end_ms
        if scenario == "unknown":
            return
        if scenario in ("subclip_equal", "subclip_differs"):
            parent = self.add_asset(_seeded_uuid(ids), title=f"parent of {record.title}")
            shift = 0 if scenario == "subclip_equal" else rng.randint(1, 90) * 1000
            self._add_subclip(key, parent["id"], record.title, start + shift, end + shift, ids)
            return
        if scenario == "other_type":
            self.add_asset(key, title=record.title, type=rng.choice(OTHER_ASSET_TYPES))
            return
        status = {"deleted": "DELETED", "odd_status": "ARCHIVED"}.get(scenario, "ACTIVE")
        self.add_asset(key, title=record.title, status=status, strict=scenario != "odd_status")
        if scenario == "forbidden":
            self.forbid(key)
        human = {"metadata": {"Quality": ["broadcast"], "Editor": ["kim"]}, "segment_text": "logged by hand",
                 "segment_color": "#ff9900"}
        by_hand = []

        def add_by_hand(segment_start, segment_end, **fields):
            by_hand.append(self.add_segment(key, "GENERIC", segment_start, segment_end, id=_seeded_uuid(ids),
                                            **human, **fields))
        if scenario == "comments_only":
            for n in range(rng.randint(3, 25)):
                point = rng.randint(0, end + 60_000)
                self.add_segment(key, rng.choice(("COMMENT", "MARKER")), point, point, segment_text=f"note {n}",
                                 id=_seeded_uuid(ids))
        elif scenario in ("in_sync", "forbidden"):
            add_by_hand(start, end)
        elif scenario in ("differs", "awaited", "odd_status"):
            # Other times than the sheet's: a client that took these for live clip ranges would write.
            status = "AWAITED" if scenario == "awaited" else "ACTIVE"
            add_by_hand(start + rng.randint(1, 30) * 1000, end + rng.randint(1, 30) * 1000, status=status)
        elif scenario == "zero_length":
            add_by_hand(start, start)
        elif scenario == "two_one_equal":
            self.add_segment(key, "GENERIC", start + 500_000, end + 500_000, id=_seeded_uuid(ids))
            add_by_hand(start, end)
        elif scenario == "two_none_equal":
            self.add_segment(key, "GENERIC", start + 1000, end + 1000, id=_seeded_uuid(ids))
            self.add_segment(key, "GENERIC", start + 2000, end + 7000, id=_seeded_uuid(ids))
        elif scenario == "subclip_parent":
            shift = rng.randint(1, 90) * 1000
            self._add_subclip(_seeded_uuid(ids), key, f"subclip of {record.title}", start + shift, end + shift, ids)
        if scenario in ("in_sync", "differs") and rng.random() < 0.5:
            self.add_segment(key, "COMMENT", start + 10, start + 10, segment_text="nice hand", id=_seeded_uuid(ids))
        # People also mark segments internal and tools attach shot analysis: fields of the live schema that a
        # PUT from a fixed list would wipe (ICONIK-FACTS 8.1). Drawn last, so every draw above is as it was.
        for segment in by_hand:
            segment["is_internal"] = rng.random() < 0.3
            if rng.random() < 0.3:
                segment["shot"] = {"shot_scale": {"label": rng.choice(("close-up", "medium", "wide")),
                                                  "score": round(rng.uniform(0.6, 0.99), 2)},
                                   "caption": "two players at the table"}

    def _add_subclip(self, subclip_id, parent_id, title, start, end, ids):
        """A SUBCLIP and the GENERIC segment on its parent that backs it, one to one (ICONIK-FACTS 7.2)."""
        backing = self.add_segment(parent_id, "GENERIC", start, end, id=_seeded_uuid(ids))
        subclip = self.add_asset(subclip_id, title=title, type="SUBCLIP", start=start, end=end,
                                 original_asset_id=parent_id, original_segment_id=backing["id"])
        backing["subclip_id"] = subclip["id"]
        return subclip

    # --- state as JSON ---------------------------------------------------------------------------

    def dump(self):
        with self.lock:
            return copy.deepcopy({"assets": self.assets, "segments": self.segments,
                                  "forbidden": sorted(self.forbidden), "extra_fields": self.extra_fields})

    def restore(self, state):
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


def _times(segment):
    return segment.get("time_start_milliseconds"), segment.get("time_end_milliseconds")


def _version_as_of(history, as_of):
    """The version in force at as_of in [(time, version), ...]; drops the older ones, which no later
    reader needs (readers ask for ever later times)."""
    position = len(history) - 1
    while position > 0 and history[position][0] > as_of:
        position -= 1
    del history[:position]
    return history[0][1]


def state_problem(state):
    """What makes state unusable as a Catalogue dump, or None."""
    if not isinstance(state, dict) or not isinstance(state.get("assets"), dict) \
            or not isinstance(state.get("segments"), dict):
        return "it needs 'assets' and 'segments' objects, as --dump writes them"
    if not all(isinstance(a, dict) and {"id", "type", "status"} <= set(a) for a in state["assets"].values()):
        return "every asset needs id, type and status"
    if not all(isinstance(found, list) and all(isinstance(s, dict) and {"id", "asset_id", "segment_type"} <= set(s)
                                               for s in found) for found in state["segments"].values()):
        return "'segments' must map asset ids to lists of segments with id, asset_id and segment_type"
    if not isinstance(state.get("forbidden", []), list):
        return "'forbidden' must be a list of asset ids"
    if not isinstance(state.get("extra_fields", {}), dict):
        return "'extra_fields' must map field names to their defaults"
    return None


def load_state(path):
    """The catalogue state in a file written by --dump; ValueError saying what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:  # UnicodeDecodeError is one too
        reason = str(exc).split(":")[0] if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise ValueError(f"{path} is not a JSON state written by --dump ({reason})") from None
    problem = state_problem(state)
    if problem:
        raise ValueError(f"{path} is not a sandbox state: {problem}")
    return state


def write_state(path, state):
    """Write a dump readable by its owner only (mode 0600): it may hold a copy of production titles."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that was already there
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=1)


@dataclasses.dataclass
class _Forced:
    """One scripted answer (Sandbox.force)."""

    method: str
    pattern: re.Pattern
    status: int = None
    body: object = None
    headers: dict = None
    action: str = None
    times: int = 1
    delay_ms: float = None
    on_answer: object = None


class Sandbox:
    """The server: start() on a free port of 127.0.0.1, stop() to end. Usable from tests in-process.

    index_lag: seconds by which segment lists and search trail the stored records (0: never).
    remaining: what RateLimit-Remaining counts, 'bucket' (left of this second's budget) or 'window' (left
    of the 20 s window); the header is on every answer, whether or not rate enforces a limit.
    patch: 'merge' (a segment PATCH changes only what it carries) or 'replace' (it resets the rest, like a PUT)."""

    def __init__(self, catalogue=None, *, port=0, app_id=DEMO_APP_ID, auth_token=DEMO_AUTH_TOKEN, roles=ALL_ROLES,
                 latency_ms=0, jitter_ms=0, rate=None, faults=None, seed=0, index_lag=DEFAULT_INDEX_LAG,
                 remaining="bucket", patch="merge"):
        if patch not in PATCH_MODES:
            raise ValueError(f"patch must be one of {', '.join(PATCH_MODES)}")
        self.catalogue = catalogue or Catalogue()
        self.patch = patch
        self.port = port
        self.app_id, self.auth_token = app_id, auth_token
        self.roles = list(roles)
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms
        # Always counting at Iconik's pace when rate is not set, so the header reads as Iconik's would.
        self.limiter = RateLimiter(rate or ICONIK_RATE, enforce=bool(rate), remaining=remaining)
        self.faults = faults or Faults()
        self.seed = seed
        self.index_lag = float(index_lag)
        self.log = []  # (method, path, status) of every request, in arrival order
        self.bodies = []  # (method, path, parsed JSON body) of every request that carried one
        self.late_writes = []  # {"method", "path", "delay_ms", "status"}: writes applied after their drop
        self.search_options = []  # {"generate_signed_url": bool, "save_search_history": bool} per search
        self._log_lock = threading.Lock()
        self._seen = {}
        self._forced = []
        self._timers = []
        self.hooks = []  # callables (method, path) run as each request arrives: tests change the world with them
        self._server = None
        self._thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self):
        sandbox = self

        class Handler(_Handler):
            pass

        Handler.sandbox = sandbox
        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="iconik-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving; late writes not yet applied never will be (the backend went away with them)."""
        with self._log_lock:
            for timer in self._timers:
                timer.cancel()
            for entry in self.late_writes:
                if entry["status"] is None:
                    entry["status"] = "cancelled"
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- test hooks ---------------------------------------------------------------------------------
    # For tests only: what they read of the sandbox, the answers they script, and the people who change the
    # catalogue while a client runs. A person's change goes through the catalogue as an API write would:
    # date_modified moves and the index shows it index_lag later.

    def requests(self, method=None):
        with self._log_lock:
            return [entry for entry in self.log if method is None or entry[0] == method]

    def force(self, method, path_pattern, status=None, body=None, headers=None, action=None, times=1,
              delay_ms=None, on_answer=None):
        """Script the next `times` answers to matching requests: a status and body, or an action:
        'drop_before' (close without applying), 'drop_after' (apply, then close without answering) or
        'apply_late' (close at once, apply delay_ms later; default a draw between the late_*_ms faults).

        on_answer, if given, is called with no arguments right before each such answer goes out (or its
        connection is closed): what happens in Iconik while the client waits, e.g. a person's edit."""
        if action not in FORCED_ACTIONS:
            raise ValueError(f"action {action!r}; one of {', '.join(map(str, FORCED_ACTIONS))}")
        if on_answer is not None and not callable(on_answer):
            raise ValueError("on_answer must be callable with no arguments")
        with self._log_lock:
            self._forced.append(_Forced(method, re.compile(path_pattern), status, body, headers or {}, action, times,
                                        delay_ms, on_answer))

    def _take_forced(self, method, path):
        with self._log_lock:
            for entry in self._forced:
                if entry.method == method and entry.pattern.search(path) and entry.times > 0:
                    entry.times -= 1
                    return entry
        return None

    def generic_segments(self, asset_id, deleted=False):
        """The asset's stored GENERIC segments (fresh, not the index): the truth a test checks against.

        Soft-deleted ones (status DELETED) are in Iconik's bin, not live, so they are left out unless deleted."""
        with self.catalogue.lock:
            return [dict(s) for s in self.catalogue.segments.get(asset_id, []) if s["segment_type"] == "GENERIC"
                    and (deleted or s.get("status") != "DELETED")]

    def indexed_segments(self, asset_id, segment_type=None):
        """The asset's segments as a segment list (the index) shows them now."""
        return [dict(s) for s in self.catalogue.indexed_segments(asset_id, self.index_time())
                if segment_type is None or s["segment_type"] == segment_type]

    def stored_segment(self, segment_id):
        """A copy of the stored segment (fresh, not the index; soft-deleted ones too), or None."""
        with self.catalogue.lock:
            return copy.deepcopy(self.catalogue.find_segment(segment_id))

    def person_edits(self, segment_id, **fields):
        """A person edits a stored segment now, as through Iconik's UI: only the given fields change (and a
        subclip its range backs moves with it). Returns a copy of the segment after the edit.

        Besides the editable fields, subclip_id may be set: a person who makes a subclip from the segment
        links it so, though no API body may carry it."""
        self._check_fields(fields, also=("subclip_id",))
        with self.catalogue.lock:
            segment = self._stored(segment_id)
            return copy.deepcopy(self.catalogue.edit_segment(segment, fields))

    def person_deletes(self, segment_id, soft=True):
        """A person deletes a stored segment now: soft keeps it with status DELETED and returns a copy of it;
        otherwise it is removed and None returned."""
        with self.catalogue.lock:
            return copy.deepcopy(self.catalogue.delete_segment(self._stored(segment_id), soft=soft))

    def person_creates(self, asset_id, segment_type, start, end, **fields):
        """A person creates a segment on an asset now. Returns a copy of the new segment."""
        if segment_type not in SEGMENT_TYPES:
            raise ValueError(f"segment type {segment_type!r}; one of {', '.join(SEGMENT_TYPES)}")
        self._check_fields(fields)
        with self.catalogue.lock:
            if asset_id not in self.catalogue.assets:
                raise KeyError(f"no asset {asset_id} in the sandbox")
            return copy.deepcopy(self.catalogue.create_segment(asset_id, segment_type, start, end, **fields))

    def _stored(self, segment_id):
        segment = self.catalogue.find_segment(segment_id)
        if segment is None:
            raise KeyError(f"no segment {segment_id} in the sandbox")
        return segment

    def _check_fields(self, fields, also=()):
        """A typo in a test's field name would otherwise add a field Iconik does not have."""
        unknown = sorted(set(fields) - set(self.catalogue.editable_defaults()) - {"segment_type", *also})
        if unknown:
            raise ValueError(f"not editable segment fields: {', '.join(unknown)}")
        if "status" in fields and fields["status"] not in SEGMENT_STATUSES:
            raise ValueError(f"segment status {fields['status']!r}; one of {', '.join(SEGMENT_STATUSES)}")

    def settle(self, timeout=30.0):
        """Wait until every late write has been applied and the index shows every stored change."""
        deadline = time.monotonic() + timeout
        with self._log_lock:
            timers = list(self._timers)
        for timer in timers:
            timer.join(max(0.0, deadline - time.monotonic()))
        wait = self.catalogue.last_change + self.index_lag - time.monotonic()
        if wait > 0:
            time.sleep(min(wait + 0.001, max(0.0, deadline - time.monotonic())))

    # --- plumbing ----------------------------------------------------------------------------------

    def index_time(self):
        """The moment the index reflects: index_lag seconds ago, on time.monotonic()'s clock."""
        return time.monotonic() - self.index_lag

    def _record(self, method, path, status):
        with self._log_lock:
            self.log.append((method, path, status))
            return len(self.log)

    def _set_status(self, count, status):
        with self._log_lock:
            method, path, _ = self.log[count - 1]
            self.log[count - 1] = (method, path, status)

    def _draw(self, method, path):
        """A random draw for this request, the same for the nth time a method and path are requested."""
        with self._log_lock:
            nth = self._seen[(method, path)] = self._seen.get((method, path), 0) + 1
        return random.Random(f"{self.seed}:{method}:{path}:{nth}")

    def _apply_later(self, api, delay_ms):
        """Apply a write delay_ms from now, as a backend that finishes after the client gave up."""
        entry = {"method": api.method, "path": api.path, "delay_ms": delay_ms, "status": None}

        def apply():
            status, _ = api.answer()
            with self._log_lock:
                entry["status"] = status

        timer = threading.Timer(delay_ms / 1000.0, apply)
        timer.daemon = True
        with self._log_lock:
            self.late_writes.append(entry)
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that was killed mid-request (the chaos test does it on purpose) is not a sandbox error.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server_version = "IconikSandbox/1"
    sandbox = None
    _on_answer = None

    def log_message(self, *args):  # the request log is kept in Sandbox.log, not printed
        pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    # --- plumbing ----------------------------------------------------------------------------------

    def _handle(self, method):
        sandbox = self.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parsed = urllib.parse.urlsplit(self.path)
        path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
        route, match = self._route(path)
        write = method in WRITE_METHODS and route != "search"
        rng = sandbox._draw(method, path)
        faults = sandbox.faults
        delay = sandbox.latency_ms + (rng.uniform(-1, 1) * sandbox.jitter_ms if sandbox.jitter_ms else 0)
        # slow delays the answer, not the work: a write is applied at arrival, then its answer is late.
        self._slow = faults.slow_ms / 1000.0 if faults.slow and rng.random() < faults.slow else 0.0
        if delay > 0:
            time.sleep(delay / 1000.0)
        count = sandbox._record(method, path, None)
        for hook in list(sandbox.hooks):
            hook(method, path)
        forced = sandbox._take_forced(method, path)
        self._on_answer = forced.on_answer if forced else None  # one handler serves every request of a connection
        # Every request counts against the budget and every answer reports it, as Iconik's do; a
        # scripted answer is never refused in its place.
        allowed, self._remaining, retry_after = sandbox.limiter.take(enforce=forced is None)
        if forced and forced.status is not None:
            payload = forced.body if forced.body is not None else {"errors": ["forced"]}
            return self._answer(forced.status, payload, count, forced.headers)
        forced_action = forced.action if forced else None
        if forced_action == "drop_before":
            return self._drop(count)
        if self.headers.get("App-ID") != sandbox.app_id or self.headers.get("Auth-Token") != sandbox.auth_token \
                or (faults.revoke_after and count > faults.revoke_after):
            return self._answer(401, {"errors": ["Authentication failed: check App-ID and Auth-Token"]}, count)
        if not allowed:
            return self._answer(429, {"errors": ["Too many requests"]}, count,
                                {"Retry-After": str(max(1, math.ceil(retry_after)))})
        if route is None:
            return self._answer(404, {"errors": [f"no such endpoint {path}"]}, count)
        if path.startswith("/API/assets") and faults.server_error and rng.random() < faults.server_error:
            return self._answer(503, {"errors": ["Service temporarily unavailable"]}, count)
        if write and faults.conflict and rng.random() < faults.conflict:
            return self._answer(409, {"errors": ["Segment was modified by another request"]}, count)
        if write and faults.drop_before and rng.random() < faults.drop_before:
            return self._drop(count)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._answer(400, {"errors": ["Request body is not JSON"]}, count)
        if raw:
            with sandbox._log_lock:
                sandbox.bodies.append((method, path, body))
        api = _Api(sandbox, method, route, match, query, body, path)
        if forced_action == "apply_late" or (write and faults.apply_late and rng.random() < faults.apply_late):
            delay_ms = forced.delay_ms if forced and forced.delay_ms is not None else \
                rng.uniform(faults.late_min_ms, faults.late_max_ms)
            sandbox._apply_later(api, delay_ms)
            return self._drop(count)
        status, payload = api.answer()
        if forced_action == "drop_after" or (
                write and status < 300 and faults.drop_after and rng.random() < faults.drop_after):
            return self._drop(count)
        self._answer(status, payload, count)

    def _before_sending(self):
        """Run a forced answer's on_answer: what happens in Iconik between the work and the answer."""
        on_answer, self._on_answer = self._on_answer, None
        if on_answer is not None:
            on_answer()

    def _route(self, path):
        for name, pattern in _ROUTES:
            match = pattern.match(path)
            if match:
                return name, match.groupdict()
        return None, None

    def _answer(self, status, payload, count, headers=None):
        if self._slow:
            time.sleep(self._slow)
        self._before_sending()
        data = b"" if status == 204 else json.dumps(payload).encode()
        # Logged before it goes out: a client that has its answer must find it in the log (Sandbox.requests).
        self.sandbox._set_status(count, status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("RateLimit-Remaining", str(self._remaining))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self, count):
        self._before_sending()
        self.close_connection = True
        self.sandbox._set_status(count, "dropped")


class _Api:
    """Iconik's answers for one request: (status, JSON body)."""

    def __init__(self, sandbox, method, route, match, query, body, path=""):
        self.sandbox, self.method, self.route, self.match = sandbox, method, route, match
        self.query, self.body, self.path = query, body, path
        self.catalogue = sandbox.catalogue

    def answer(self):
        handler = getattr(self, f"{self.route}_{self.method.lower()}", None)
        if handler is None:
            return 405, {"errors": [f"{self.method} is not allowed here"]}
        with self.catalogue.lock:
            return handler()

    def _needs(self, role):
        if role not in self.sandbox.roles:
            return 403, {"errors": [f"You do not have the role {role}"]}
        return None

    def _asset(self, role):
        """(asset, None), or (None, the error answer) when the role is missing, the asset unknown or forbidden."""
        refused = self._needs(role)
        if refused:
            return None, refused
        asset_id = self.match["asset"].lower()
        asset = self.catalogue.assets.get(asset_id)
        if asset is None:
            return None, (404, {"errors": ["Asset not found"]})
        if asset_id in self.catalogue.forbidden:
            return None, (403, {"errors": [FORBIDDEN_MESSAGE]})
        return asset, None

    def _flag(self, name, default):
        """A boolean query parameter: (value, None) or (None, a 400 answer)."""
        text = (self.query.get(name) or [None])[0]
        if text is None:
            return default, None
        if text.lower() not in ("true", "false", "1", "0"):
            return None, (400, {"errors": {name: "Not a valid boolean."}})
        return text.lower() in ("true", "1"), None

    def _page(self, items, copy_items=True):
        """One page of items as Iconik lists them, or a 400/404 answer: (page body, None) / (None, answer)."""
        try:
            per_page = min(MAX_PER_PAGE, max(1, int((self.query.get("per_page") or [DEFAULT_PER_PAGE])[0])))
            page = max(1, int((self.query.get("page") or [1])[0]))
        except ValueError:
            return None, (400, {"errors": {"per_page": "must be a whole number"}})
        pages = max(1, math.ceil(len(items) / per_page))
        if page > pages:
            return None, (404, {"errors": ["Page not found"]})
        shown = items[(page - 1) * per_page: page * per_page]
        return {"objects": copy.deepcopy(shown) if copy_items else shown, "page": page, "pages": pages,
                "per_page": per_page, "total": len(items)}, None

    # --- users and auth -----------------------------------------------------------------------------

    def token_get(self):
        return 200, {"app_id": self.sandbox.app_id, "expires": None}

    def user_get(self):
        # UserSchema always carries type (ICONIK-FACTS 8.5).
        return 200, {"id": "7f3d2c10-0000-4000-8000-000000000002", "email": "sync@sandbox.invalid",
                     "first_name": "Sandbox", "last_name": "Sync", "status": "ACTIVE", "type": "STANDARD"}

    def roles_get(self):
        return 200, {"objects": list(self.sandbox.roles)}

    def state_get(self):
        return 200, self.catalogue.dump()

    # --- assets and segments ------------------------------------------------------------------------

    def asset_get(self):
        asset, error = self._asset("can_read_assets")
        return error or (200, asset)

    def segments_get(self, segment_type=None):
        """A segment list: it comes from the search index, so it shows the segments as they were index_lag
        seconds ago (ICONIK-FACTS 7.1)."""
        asset, error = self._asset("can_read_segments")
        if error:
            return error
        segment_type = segment_type or (self.query.get("segment_type") or [None])[0]
        status = (self.query.get("status") or [None])[0]
        if status is not None and status not in SEGMENT_STATUSES:
            return 400, {"errors": {"status": f"one of {', '.join(SEGMENT_STATUSES)}"}}
        # Soft-deleted segments stay listed, with status DELETED, unless the status filter leaves them out.
        found = [s for s in self.catalogue.indexed_segments(asset["id"], self.sandbox.index_time())
                 if (segment_type is None or s["segment_type"] == segment_type)
                 and (status is None or s.get("status") == status)]
        body, error = self._page(found)
        if error:
            return error
        body["next_url"] = None
        if body["page"] < body["pages"]:
            next_query = dict((k, v[0]) for k, v in self.query.items())
            next_query.update(page=body["page"] + 1, per_page=body["per_page"])
            body["next_url"] = f"{self.path}?{urllib.parse.urlencode(next_query)}"
        return 200, body

    def segments_of_type_get(self):
        if self.match["type"] not in SEGMENT_TYPES:
            return 400, {"errors": {"segment_type": f"unknown segment type {self.match['type']}"}}
        return self.segments_get(self.match["type"])

    def segments_post(self):
        asset, error = self._asset("can_create_segments")
        if error:
            return error
        problem = _check_segment_body(self.body, READ_ONLY_SEGMENT_FIELDS)
        if problem:
            return 400, {"errors": problem}
        if asset["type"] == "SUBCLIP" and asset.get("original_asset_id") in self.catalogue.assets:
            # Iconik files a segment posted on a SUBCLIP under its parent (ICONIK-FACTS 7.3).
            asset = self.catalogue.assets[asset["original_asset_id"]]
            if asset["id"] in self.catalogue.forbidden:
                return 403, {"errors": [FORBIDDEN_MESSAGE]}
        editable = self.catalogue.editable_defaults()
        fields = {k: v for k, v in self.body.items() if k in editable}
        segment = self.catalogue.create_segment(asset["id"], self.body["segment_type"],
                                                self.body.get("time_start_milliseconds"),
                                                self.body.get("time_end_milliseconds"),
                                                user_first_name="Sync", user_last_name="Bot", **fields)
        return 201, copy.deepcopy(segment)

    def _segment(self, role):
        asset, error = self._asset(role)
        if error:
            return None, error
        for segment in self.catalogue.segments.get(asset["id"], []):
            if segment["id"] == self.match["segment"].lower():
                return segment, None
        return None, (404, {"errors": ["Segment not found"]})

    def segment_get(self):
        segment, missing = self._segment("can_read_segments")
        return missing or (200, copy.deepcopy(segment))

    def segment_put(self, merge=False):
        segment, missing = self._segment("can_write_segments")
        if missing:
            return missing
        problem = _check_segment_body(self.body, READ_ONLY_ON_EDIT)
        if problem:
            return 400, {"errors": problem}
        # A PUT replaces every editable field of the live schema, extra fields included: what the body leaves
        # out is reset (ICONIK-FACTS 8.1).
        editable = self.catalogue.editable_defaults()
        fields = {k: v for k, v in self.body.items() if k in editable or k == "segment_type"}
        self.catalogue.edit_segment(segment, fields, replace=not merge)
        return 200, copy.deepcopy(segment)

    def segment_patch(self):
        # A PATCH changes only what it carries, unless the sandbox plays a PATCH that replaces (patch="replace").
        return self.segment_put(merge=self.sandbox.patch == "merge")

    def segment_delete(self):
        segment, missing = self._segment("can_delete_segments")
        if missing:
            return missing
        # Absent, the sandbox removes the segment as it always did: what Iconik does then is not documented
        # (its SDK always sends soft_delete, True unless told, ICONIK-FACTS 8.3).
        soft, error = self._flag("soft_delete", False)
        if error:
            return error
        self.catalogue.delete_segment(segment, soft=soft)
        return 204, {}

    # --- search -------------------------------------------------------------------------------------

    SEARCH_TERMS = ("id", "asset_id", "segment_type", "type", "status")

    def search_post(self):
        """Iconik's batch search, for the two document types and the terms reversesync uses. Like every
        index read it trails the store by index_lag."""
        refused = self._needs("can_search")
        if refused:
            return refused
        body = self.body if isinstance(self.body, dict) else {}
        doc_types = body.get("doc_types") or []
        if doc_types not in (["assets"], ["segments"]):
            return 400, {"errors": {"doc_types": "the sandbox searches one of assets, segments"}}
        refused = self._needs("can_read_assets" if doc_types == ["assets"] else "can_read_segments")
        if refused:
            return refused
        options = {}
        for name in ("generate_signed_url", "save_search_history"):
            options[name], error = self._flag(name, True)
            if error:
                return error
        wanted = {}
        for term in (body.get("filter") or {}).get("terms") or []:
            values = term.get("value_in") or ([term["value"]] if "value" in term else [])
            wanted[term.get("name")] = {str(value) for value in values}
        unknown = set(wanted) - set(self.SEARCH_TERMS)
        if unknown:
            return 400, {"errors": {"filter": f"unsupported terms {sorted(unknown)}"}}
        include = body.get("include_fields")
        if include is not None and not (isinstance(include, list) and all(isinstance(f, str) for f in include)):
            return 400, {"errors": {"include_fields": "must be a list of field names"}}
        with self.sandbox._log_lock:
            self.sandbox.search_options.append(options)
        as_of = self.sandbox.index_time()
        pick = self._assets_indexed if doc_types == ["assets"] else self._segments_indexed
        found = pick(wanted, as_of)
        hits = [_document(item, doc_types[0], include) for item in found
                if all(str(item.get(name)) in values for name, values in wanted.items())]
        body, error = self._page(hits, copy_items=False)
        return error or (200, body)

    def _assets_indexed(self, wanted, as_of):
        """Candidate asset documents: by id through the catalogue's dict, so a batch costs its ids only."""
        ids = wanted["id"] if "id" in wanted else self.catalogue.assets
        found = (self.catalogue.indexed_asset(asset_id, as_of) for asset_id in ids)
        return [a for a in found if a is not None and a["id"] not in self.catalogue.forbidden]

    def _segments_indexed(self, wanted, as_of):
        """Candidate segment documents: by asset id or id through dicts, never a scan when either is given."""
        forbidden = self.catalogue.forbidden
        if "id" in wanted:
            found = (self.catalogue.indexed_segment(segment_id, as_of) for segment_id in wanted["id"])
            return [s for s in found if s is not None and s["asset_id"] not in forbidden]
        asset_ids = wanted["asset_id"] if "asset_id" in wanted else list(self.catalogue.segments)
        return [s for asset_id in asset_ids if asset_id not in forbidden
                for s in self.catalogue.indexed_segments(asset_id, as_of)]


def _document(item, doc_type, include):
    """A search document (SegmentElasticSchema and kin): unset fields are absent, include_fields trims it."""
    document = {key: copy.deepcopy(value) for key, value in item.items() if value is not None
                and (include is None or key in include)}
    document["object_type"] = doc_type
    return document


def _check_segment_body(body, read_only):
    if not isinstance(body, dict):
        return ["The body must be a JSON object"]
    problems = {}
    if body.get("segment_type") not in SEGMENT_TYPES:
        problems["segment_type"] = f"required, one of {', '.join(SEGMENT_TYPES)}"
    if "status" in body and body["status"] not in SEGMENT_STATUSES:
        problems["status"] = f"one of {', '.join(SEGMENT_STATUSES)}"
    for field in ("time_start_milliseconds", "time_end_milliseconds"):
        value = body.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems[field] = "must be an integer"
    for field in read_only:
        if field in body:
            problems[field] = "is read-only"
    return problems
