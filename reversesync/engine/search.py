"""The search pre-pass of a sync (issue #6): decisions for many assets at once from Iconik's search index.

The index lags (ICONIK-FACTS 7.1), so its decisions may only finish a row when they write nothing; a write is
always decided from fresh reads. Only documents that carry every field a decision needs are trusted.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence

from .. import errors, rules
from ..iconik import IconikClient
from ..ledger import Row
from ..rules import Decision

# Assets per batched search request: Iconik's search takes a list of ids per term.
SEARCH_BATCH = 100
ASSET_FIELDS = ("id", "type", "status", "time_start_milliseconds", "time_end_milliseconds", "original_asset_id")
ASSET_REQUIRED = ("id", "type", "status")
SEGMENT_FIELDS = ("id", "asset_id", "segment_type", "time_start_milliseconds", "time_end_milliseconds",
                  "subclip_id", "external_id", "status")
SEGMENT_REQUIRED = ("id", "asset_id", "segment_type")


class SearchPass:
    """One run's search pre-pass. on_unavailable(error) is told when search fails (the rows are then read one by
    one); on_assets_read() when the token could read some assets; on_auth(exc) when the token is refused."""

    def __init__(self, client: IconikClient, workers: int, stopping: Callable[[], bool],
                 on_unavailable: Callable[[str], None], on_assets_read: Callable[[], None],
                 on_auth: Callable[[errors.AuthError], None]) -> None:
        self.client = client
        self.workers = workers
        self.stopping = stopping
        self.on_unavailable = on_unavailable
        self.on_assets_read = on_assets_read
        self.on_auth = on_auth

    def hints(self, rows: dict[str, Row], keys: Sequence[str]) -> dict[str, Decision]:
        """{asset key: Decision} for the rows the index knows; rows holding an intent are left out."""
        batches = [list(keys[i:i + SEARCH_BATCH]) for i in range(0, len(keys), SEARCH_BATCH)]
        hints: dict[str, Decision] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            for found in pool.map(lambda batch: self._one_batch(rows, batch), batches):
                hints.update(found)
        return hints

    def _one_batch(self, rows: dict[str, Row], batch: list[str]) -> dict[str, Decision]:
        if self.stopping():
            return {}
        try:
            assets = self.client.search("assets", {"id": batch}, fields=ASSET_FIELDS)
            ordinary = [a["id"] for a in assets
                        if a.get("type") == rules.WRITABLE_TYPE and a.get("status") == rules.ACTIVE]
            segments = self.client.search("segments", {"asset_id": ordinary, "segment_type": ["GENERIC"]},
                                          fields=SEGMENT_FIELDS) if ordinary else []
        except (errors.TransientError, errors.TerminalError) as exc:
            self.on_unavailable(str(exc))
            return {}
        except errors.AuthError as exc:
            self.on_auth(exc)
            return {}
        if assets:
            self.on_assets_read()  # the token can read assets: a 403 on one of them is that asset's
        # An index without an asset's type could otherwise let a segment be written on a SUBCLIP.
        assets = [a for a in assets if rules.index_document_trusted(a, ASSET_REQUIRED)]
        if not all(rules.index_document_trusted(s, SEGMENT_REQUIRED) for s in segments):
            return {}
        generic: dict[str, list[dict[str, object]]] = {}
        for segment in rules.generic_only(segments):
            generic.setdefault(segment["asset_id"], []).append(segment)
        found = {}
        for asset in assets:
            row = rows.get(asset["id"])
            if row is None or row["intent"]:
                continue
            hint = rules.decide(asset, generic.get(asset["id"], []), row["time_start_ms"], row["time_end_ms"])
            hint.asset = asset
            found[row["asset_key"]] = hint
        return found
