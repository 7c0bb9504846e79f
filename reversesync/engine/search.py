"""Just-in-time batched search (issue #19): what Iconik's search index shows of the next hundred rows, asked
right before their writes.

The index lags (ICONIK-FACTS 7.1), and a per-asset segment list comes from the same index, so a search answer
asked a moment before a write is as fresh as a list read; what makes it stale is age. A batch is searched when
the workers reach it (the next batch is asked for while the workers are half-way through the current one), and
every write decided from an answer must leave within FRESH_FOR seconds of it (the engine checks as the write
goes on the wire; an older answer is asked again, for the whole batch, once).

Only documents that carry every field a decision needs are trusted: an asset document without type or status
leaves its row to per-asset reads, a GENERIC segment document without its id, asset or times leaves its
asset's segments to the per-asset list.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence

from .. import errors, rules
from ..clock import Clock
from ..iconik import IconikClient
from ..types import Json

# Assets per batched search request: Iconik's search takes a list of ids per term.
SEARCH_BATCH = 100
# A write goes out at most this long after the index answer it was decided from (issue #19).
FRESH_FOR = 5.0
# The next batch is searched once a worker takes this row of the current one (0-based), so its answer is in by
# the time the workers reach it and is still young when its last row is written.
PREFETCH_AT = SEARCH_BATCH // 2
ASSET_FIELDS = ("id", "type", "status", "time_start_milliseconds", "time_end_milliseconds", "original_asset_id")
ASSET_REQUIRED = ("id", "type", "status")
SEGMENT_FIELDS = ("id", "asset_id", "segment_type", "time_start_milliseconds", "time_end_milliseconds",
                  "subclip_id", "external_id", "status")
# A GENERIC document is compared by its times: without them it cannot say "in sync" or "update".
SEGMENT_REQUIRED = ("id", "asset_id", "segment_type", "time_start_milliseconds", "time_end_milliseconds")


@dataclasses.dataclass
class Indexed:
    """What one batched search showed of one asset."""

    asset: Json | None            # its document, None when the index lacks it or the document lacks a field
    generic: list[Json] | None    # its live GENERIC segment documents; None when one lacks a field
    as_of: float                  # the clock's monotonic time just before the search's first request


class _Batch:
    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.started = False
        self.done = threading.Event()
        self.lock = threading.Lock()  # one search of the batch at a time
        self.as_of = float("-inf")
        self.found: dict[str, Indexed] = {}


class BatchSearch:
    """One run's just-in-time searches over its rows, in the order the workers take them.

    on_unavailable(error) is told when search fails (that batch's rows are then read one by one); on_assets_read()
    when the token could read some assets; on_auth(exc) when the token is refused."""

    def __init__(self, client: IconikClient, clock: Clock, keys: Sequence[str], stopping: Callable[[], bool],
                 on_unavailable: Callable[[str], None], on_assets_read: Callable[[], None],
                 on_auth: Callable[[errors.AuthError], None]) -> None:
        self.client = client
        self.clock = clock
        self.stopping = stopping
        self.on_unavailable = on_unavailable
        self.on_assets_read = on_assets_read
        self.on_auth = on_auth
        self._batches = [_Batch(list(keys[i:i + SEARCH_BATCH])) for i in range(0, len(keys), SEARCH_BATCH)]
        self._position = {key: (n, i) for n, batch in enumerate(self._batches) for i, key in enumerate(batch.keys)}
        self._lock = threading.Lock()
        self.searches = 0  # batches searched, again-searches included

    def indexed(self, key: str) -> Indexed | None:
        """What the index shows of the row's asset, searching its batch now if nobody has; None when the row is
        in no batch, its batch's search failed, or the run is stopping."""
        where = self._position.get(key)
        if where is None:
            return None
        number, index = where
        if index >= PREFETCH_AT and number + 1 < len(self._batches):
            self._start(self._batches[number + 1], wait=False)
        batch = self._batches[number]
        self._start(batch, wait=True)
        while not batch.done.wait(0.1):
            if self.stopping():
                return None
        return batch.found.get(key)

    def refresh(self, key: str, seen: Indexed) -> Indexed | None:
        """A younger answer than seen for the row's asset: its batch searched again, unless another row of it has
        done so since seen was answered."""
        where = self._position.get(key)
        if where is None:
            return None
        batch = self._batches[where[0]]
        with batch.lock:
            if batch.as_of <= seen.as_of:
                self._search(batch)
            return batch.found.get(key)

    def _start(self, batch: _Batch, wait: bool) -> None:
        with self._lock:
            if batch.started:
                return
            batch.started = True
        if wait:
            self._run(batch)
        else:
            threading.Thread(target=self._run, args=(batch,), name="search", daemon=True).start()

    def _run(self, batch: _Batch) -> None:
        try:
            with batch.lock:
                self._search(batch)
        finally:
            batch.done.set()

    def _search(self, batch: _Batch) -> None:
        """Search the batch's assets and their GENERIC segments (two requests); batch.found holds the answer, empty
        when search failed (the rows are then read one by one). A search again (refresh) leaves the old answer in
        place until the new one is in: a row deciding meanwhile decides from the old one, whose write is then
        held as too old and waits for the new one; clearing it first sent those rows to per-asset reads."""
        if self.stopping():
            batch.found = {}
            return
        as_of = self.clock.monotonic()
        try:
            assets = self.client.search("assets", {"id": batch.keys}, fields=ASSET_FIELDS)
            ordinary = [a["id"] for a in assets
                        if a.get("type") == rules.WRITABLE_TYPE and a.get("status") == rules.ACTIVE and a.get("id")]
            segments = self.client.search("segments", {"asset_id": ordinary, "segment_type": ["GENERIC"]},
                                          fields=SEGMENT_FIELDS) if ordinary else []
        except (errors.TransientError, errors.TerminalError) as exc:
            batch.found = {}
            self.on_unavailable(str(exc))
            return
        except errors.AuthError as exc:
            batch.found = {}
            self.on_auth(exc)
            return
        with self._lock:
            self.searches += 1
        if assets:
            self.on_assets_read()  # the token can read assets: a 403 on one of them is that asset's
        batch.as_of = as_of
        batch.found = found_in(batch.keys, assets, segments, as_of)


def found_in(keys: Sequence[str], assets: Sequence[Json], segments: Sequence[Json], as_of: float) -> dict[str, Indexed]:
    """{asset key: Indexed} for the keys, from one search's asset and GENERIC segment documents."""
    # An index without an asset's type could otherwise let a segment be written on a SUBCLIP.
    trusted = {a["id"]: a for a in assets if rules.index_document_trusted(a, ASSET_REQUIRED)}
    generic: dict[str, list[Json]] = {}
    lacking: set[str] = set()
    unattributed = False
    for segment in segments:
        asset_id = segment.get("asset_id")
        if not asset_id:
            unattributed = True  # a document that names no asset could be any asset's
        elif rules.index_document_trusted(segment, SEGMENT_REQUIRED):
            generic.setdefault(asset_id, []).append(segment)
        else:
            lacking.add(asset_id)
    found = {}
    for key in keys:
        asset = trusted.get(key)
        shown = None if unattributed or key in lacking else rules.generic_only(generic.get(key, []))
        found[key] = Indexed(asset, shown if asset is not None else None, as_of)
    return found


# The fields verify needs of a GENERIC segment document to tell an extra or duplicate segment.
EXTRA_FIELDS = ("id", "asset_id", "segment_type", "time_start_milliseconds", "time_end_milliseconds", "external_id",
                "status", "subclip_id")
EXTRA_REQUIRED = ("id", "asset_id", "segment_type")
# And of an asset document to confirm a SUBCLIP's own range.
RANGE_REQUIRED = ("id", "type", "status")


class LazySearch:
    """verify's batched look-ups (issue #19): the documents of a hundred rows' assets per search, asked when the
    first of them is verified. documents(key) is None where the index cannot tell (search failed, or a document
    lacks a field): the caller reads that asset itself.

    doc_type 'segments': each asset's live GENERIC segment documents; 'assets': [the asset's document] or []."""

    def __init__(self, client: IconikClient, doc_type: str, keys: Sequence[str]) -> None:
        self.client = client
        self.doc_type = doc_type
        self._batches = [list(keys[i:i + SEARCH_BATCH]) for i in range(0, len(keys), SEARCH_BATCH)]
        self._where = {key: n for n, batch in enumerate(self._batches) for key in batch}
        self._found: dict[int, dict[str, list[Json] | None]] = {}
        self._locks = [threading.Lock() for _ in self._batches]
        self._failed = False

    def documents(self, key: str) -> list[Json] | None:
        number = self._where.get(key)
        if number is None:
            return None
        with self._locks[number]:
            if number not in self._found:
                self._found[number] = self._search(self._batches[number])
            return self._found[number].get(key)

    def _search(self, keys: list[str]) -> dict[str, list[Json] | None]:
        if self._failed:
            return {}
        segments = self.doc_type == "segments"
        try:
            if segments:
                documents = self.client.search("segments", {"asset_id": keys, "segment_type": ["GENERIC"]},
                                               fields=EXTRA_FIELDS)
            else:
                documents = self.client.search("assets", {"id": keys}, fields=ASSET_FIELDS)
        except (errors.TransientError, errors.TerminalError):
            self._failed = True  # search unavailable to this token: every asset read by itself, as before
            return {}
        found: dict[str, list[Json] | None] = {key: [] for key in keys}
        for document in documents:
            asset_id = document.get("asset_id" if segments else "id")
            if not asset_id:
                return {}  # a document that names no asset could be any asset's
            shown = found.get(asset_id)
            if shown is None:
                continue
            if rules.index_document_trusted(document, EXTRA_REQUIRED if segments else RANGE_REQUIRED):
                shown += rules.generic_only([document]) if segments else [document]
            else:
                found[asset_id] = None
        return found
