"""What the search index shows. Segment lists and search come from an index that trails the stored records
(ICONIK-FACTS 7.1): the sandbox shows segment lists as they were `list_lag` seconds ago and search answers as
they were `search_lag` seconds ago (issue #19: the two may differ).

The catalogue tells the index before and after each write it makes as the API does; the index keeps, for each
record changed more recently than it has caught up with, what it showed before and every version since, and
answers for a moment in time. It has no lock of its own: the catalogue's lock guards it."""

import collections
import copy
import time

from .schema import Record

# How far the search index (segment lists, search) trails the stored records by default. Iconik publishes
# no figure; Elasticsearch's 1 s refresh is only a floor (ICONIK-FACTS 7.1).
DEFAULT_INDEX_LAG = 2.0

# [(time.monotonic(), version or None), ...]: the first entry is what the index showed before the changes.
History = list[tuple[float, Record | None]]


class LaggingIndex:
    """The records the index does not show as stored yet, as histories of their versions."""

    def __init__(self) -> None:
        self._segments: dict[str, dict[str, History]] = {}  # asset id -> {segment id: history}
        self._assets: dict[str, History] = {}  # asset id -> history
        # Changes in time order, so that histories the index has caught up with are forgotten in O(1) each.
        self._backlog: collections.deque[tuple[float, str, str | None]] = collections.deque()
        self.last_change = float("-inf")
        # How far apart in time two readers of the index may look (the gap between the list lag and the search
        # lag): what the index showed that long before a read is kept for the reader that trails more.
        self.spread = 0.0

    # --- told by the catalogue around each write ------------------------------------------------------

    def before_segment_change(self, asset_id: str, segment_id: str, current: Record | None) -> None:
        """Keep what the index shows until it takes the change in (once per backlog)."""
        changes = self._segments.setdefault(asset_id, {})
        if segment_id not in changes:
            changes[segment_id] = [(float("-inf"), copy.deepcopy(current))]

    def before_asset_change(self, asset_id: str, current: Record) -> None:
        if asset_id not in self._assets:
            self._assets[asset_id] = [(float("-inf"), copy.deepcopy(current))]

    def changed(self, asset_id: str, segment_id: str | None, version: Record | None) -> None:
        """The version the index shows from `lag` seconds on (segment_id None: the asset itself)."""
        self.last_change = time.monotonic()
        history = self._assets[asset_id] if segment_id is None else self._segments[asset_id][segment_id]
        history.append((self.last_change, copy.deepcopy(version)))
        self._backlog.append((self.last_change, asset_id, segment_id))

    # --- what it shows --------------------------------------------------------------------------------

    def segments(self, asset_id: str, stored: list[Record], as_of: float) -> list[Record]:
        """The asset's segments as the index had them at as_of, stored being the asset's segments now."""
        self.catch_up(as_of)
        changes = self._segments.get(asset_id)
        if not changes:
            return list(stored)  # the common case: nothing recent, the index agrees with the store
        keep = as_of - self.spread
        shown = [version_as_of(changes[s["id"]], as_of, keep) if s["id"] in changes else s for s in stored]
        stored_ids = {s["id"] for s in stored}
        shown += [version_as_of(history, as_of, keep) for segment_id, history in changes.items()
                  if segment_id not in stored_ids]  # deleted from the store, maybe not from the index
        return [segment for segment in shown if segment is not None]

    def segment(self, segment_id: str, asset_id: str | None, stored: Record | None, as_of: float) -> Record | None:
        """One segment as the index had it at as_of; asset_id and stored are the store's (None once deleted)."""
        self.catch_up(as_of)
        if asset_id is None:  # deleted from the store: the index may still hold it (few such: recent ones)
            asset_id = next((key for key, changes in self._segments.items() if segment_id in changes), None)
            if asset_id is None:
                return stored
        history = self._segments.get(asset_id, {}).get(segment_id)
        return stored if history is None else version_as_of(history, as_of, as_of - self.spread)

    def asset(self, asset_id: str, stored: Record | None, as_of: float) -> Record | None:
        """The asset as the index had it at as_of, stored being the asset now."""
        self.catch_up(as_of)
        history = self._assets.get(asset_id)
        return stored if history is None else version_as_of(history, as_of, as_of - self.spread)

    def catch_up(self, as_of: float) -> None:
        """Forget the histories whose last change the index has taken in by as_of less the spread: it shows the
        store there, for the reader that trails most too."""
        as_of -= self.spread
        while self._backlog and self._backlog[0][0] <= as_of:
            _, asset_id, segment_id = self._backlog.popleft()
            if segment_id is None:
                history = self._assets.get(asset_id)
                if history and history[-1][0] <= as_of:
                    del self._assets[asset_id]
                continue
            changes = self._segments.get(asset_id, {})
            history = changes.get(segment_id)
            if history and history[-1][0] <= as_of:
                del changes[segment_id]
                if not changes:
                    del self._segments[asset_id]

    def backlog(self) -> int:
        """How many changes the index had not taken in at the last index read."""
        return len(self._backlog)

    def clear(self) -> None:
        """The index catches up at once."""
        self._segments.clear()
        self._assets.clear()
        self._backlog.clear()


def version_as_of(history: History, as_of: float, keep: float | None = None) -> Record | None:
    """The version in force at as_of in a history; drops the versions older than the one in force at keep
    (default as_of), which no later reader needs: each kind of reader asks for ever later times, and keep is the
    earliest time any reader may still ask for."""
    keep = as_of if keep is None else min(keep, as_of)
    position = len(history) - 1
    while position > 0 and history[position][0] > keep:
        position -= 1
    del history[:position]
    position = 0
    while position + 1 < len(history) and history[position + 1][0] <= as_of:
        position += 1
    return history[position][1]
