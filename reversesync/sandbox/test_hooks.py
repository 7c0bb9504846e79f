"""The sandbox's test hooks, gathered so that a reader sees at once which of Sandbox's methods exist for tests
only: what tests read of the sandbox (requests, generic_segments, indexed_segments, stored_segment), the
answers they script (force, with on_answer; hooks run as each request arrives), the people who change the
catalogue while a client runs (person_edits, person_creates, person_deletes), and settle, which waits until
the sandbox shows every write (the demo's last check uses it too). Iconik has nothing like them.

A person's change goes through the catalogue as an API write would: date_modified moves and the index shows
it index_lag later."""

import copy
import dataclasses
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .catalogue import Catalogue
from .schema import SEGMENT_STATUSES, SEGMENT_TYPES, Record

FORCED_ACTIONS = (None, "drop_before", "drop_after", "apply_late")

LogEntry = tuple[str, str, Any]  # (method, path, status: an int, "dropped", or None before the answer)


@dataclasses.dataclass
class ForcedAnswer:
    """One scripted answer (Sandbox.force)."""

    method: str
    pattern: re.Pattern[str]
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    action: str | None = None
    times: int = 1
    delay_ms: float | None = None
    on_answer: Callable[[], None] | None = None


class TestHooks:
    """Sandbox's methods for tests only (a mixin: Sandbox provides what is declared below __init__)."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self) -> None:
        self.hooks: list[Callable[[str, str], None]] = []  # run with (method, path) as each request arrives
        self._forced: list[ForcedAnswer] = []

    # Provided by Sandbox (service.py), declared here for the type checker.
    catalogue: Catalogue
    log: list[LogEntry]
    log_lock: threading.Lock
    index_lag: float

    def index_time(self, reader: str = "list") -> float:
        raise NotImplementedError

    def late_write_timers(self) -> list[threading.Timer]:
        raise NotImplementedError

    # --- what tests read ------------------------------------------------------------------------------

    def requests(self, method: str | None = None) -> list[LogEntry]:
        with self.log_lock:
            return [entry for entry in self.log if method is None or entry[0] == method]

    def generic_segments(self, asset_id: str, deleted: bool = False) -> list[Record]:
        """The asset's stored GENERIC segments (fresh, not the index): the truth a test checks against.

        Soft-deleted ones (status DELETED) are in Iconik's bin, not live, so they are left out unless deleted."""
        with self.catalogue.lock:
            return [dict(s) for s in self.catalogue.segments.get(asset_id, []) if s["segment_type"] == "GENERIC"
                    and (deleted or s.get("status") != "DELETED")]

    def indexed_segments(self, asset_id: str, segment_type: str | None = None) -> list[Record]:
        """The asset's segments as a segment list (the index) shows them now."""
        return [dict(s) for s in self.catalogue.indexed_segments(asset_id, self.index_time())
                if segment_type is None or s["segment_type"] == segment_type]

    def stored_segment(self, segment_id: str) -> Record | None:
        """A copy of the stored segment (fresh, not the index; soft-deleted ones too), or None."""
        with self.catalogue.lock:
            return copy.deepcopy(self.catalogue.find_segment(segment_id))

    # --- scripted answers -----------------------------------------------------------------------------

    def force(self, method: str, path_pattern: str, status: int | None = None, body: Any = None,
              headers: dict[str, str] | None = None, action: str | None = None, times: int = 1,
              delay_ms: float | None = None, on_answer: Callable[[], None] | None = None) -> None:
        """Script the next `times` answers to matching requests: a status and body, or an action:
        'drop_before' (close without applying), 'drop_after' (apply, then close without answering) or
        'apply_late' (close at once, apply delay_ms later; default a draw between the late_*_ms faults).

        on_answer, if given, is called with no arguments right before each such answer goes out (or its
        connection is closed): what happens in Iconik while the client waits, e.g. a person's edit."""
        if action not in FORCED_ACTIONS:
            raise ValueError(f"action {action!r}; one of {', '.join(map(str, FORCED_ACTIONS))}")
        if on_answer is not None and not callable(on_answer):
            raise ValueError("on_answer must be callable with no arguments")
        with self.log_lock:
            self._forced.append(ForcedAnswer(method, re.compile(path_pattern), status, body, headers or {}, action,
                                             times, delay_ms, on_answer))

    def unforce(self) -> None:
        """Drop every scripted answer not used up yet."""
        with self.log_lock:
            self._forced.clear()

    def take_forced(self, method: str, path: str) -> ForcedAnswer | None:
        """The scripted answer for this request, used up by one (the server asks as each request arrives)."""
        with self.log_lock:
            for entry in self._forced:
                if entry.method == method and entry.pattern.search(path) and entry.times > 0:
                    entry.times -= 1
                    return entry
        return None

    # --- people at work in Iconik's UI ----------------------------------------------------------------

    def person_edits(self, segment_id: str, **fields: Any) -> Record:
        """A person edits a stored segment now, as through Iconik's UI: only the given fields change (and a
        subclip its range backs moves with it). Returns a copy of the segment after the edit.

        Besides the editable fields, subclip_id may be set: a person who makes a subclip from the segment
        links it so, though no API body may carry it."""
        self._check_fields(fields, also=("subclip_id",))
        with self.catalogue.lock:
            segment = self._stored(segment_id)
            return copy.deepcopy(self.catalogue.edit_segment(segment, fields))

    def person_deletes(self, segment_id: str, soft: bool = True) -> Record | None:
        """A person deletes a stored segment now: soft keeps it with status DELETED and returns a copy of it;
        otherwise it is removed and None returned."""
        with self.catalogue.lock:
            return copy.deepcopy(self.catalogue.delete_segment(self._stored(segment_id), soft=soft))

    def person_creates(self, asset_id: str, segment_type: str, start: int | None, end: int | None,
                       **fields: Any) -> Record:
        """A person creates a segment on an asset now. Returns a copy of the new segment."""
        if segment_type not in SEGMENT_TYPES:
            raise ValueError(f"segment type {segment_type!r}; one of {', '.join(SEGMENT_TYPES)}")
        self._check_fields(fields)
        with self.catalogue.lock:
            if asset_id not in self.catalogue.assets:
                raise KeyError(f"no asset {asset_id} in the sandbox")
            return copy.deepcopy(self.catalogue.create_segment(asset_id, segment_type, start, end, **fields))

    def _stored(self, segment_id: str) -> Record:
        segment = self.catalogue.find_segment(segment_id)
        if segment is None:
            raise KeyError(f"no segment {segment_id} in the sandbox")
        return segment

    def _check_fields(self, fields: Record, also: Iterable[str] = ()) -> None:
        """A typo in a test's field name would otherwise add a field Iconik does not have."""
        unknown = sorted(set(fields) - set(self.catalogue.editable_defaults()) - {"segment_type", *also})
        if unknown:
            raise ValueError(f"not editable segment fields: {', '.join(unknown)}")
        if "status" in fields and fields["status"] not in SEGMENT_STATUSES:
            raise ValueError(f"segment status {fields['status']!r}; one of {', '.join(SEGMENT_STATUSES)}")

    # --- waiting for the sandbox to show every write --------------------------------------------------

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until every late write has been applied and the index shows every stored change."""
        deadline = time.monotonic() + timeout
        for timer in self.late_write_timers():
            timer.join(max(0.0, deadline - time.monotonic()))
        wait = self.catalogue.last_change + self.index_lag - time.monotonic()
        if wait > 0:
            time.sleep(min(wait + 0.001, max(0.0, deadline - time.monotonic())))
