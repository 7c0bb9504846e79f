"""verify: read Iconik again and confirm it holds what the ledger says reversesync left there.

Only fresh reads decide (issue #9): a written or in-sync segment is read by id, a SUBCLIP's range from the
asset itself. Segment lists and search come from an index that trails writes (ICONIK-FACTS 7.1), so they are
used only to look for extra GENERIC segments, after the last write has had its settle time: by a batched search
of a hundred rows' assets (issue #19), and by the asset's own list where the search shows a GENERIC segment
besides the recorded one (an extra, a duplicate, or a document to read whole) or cannot tell.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Callable, Sequence

from .. import errors, progress, rules
from ..clock import SYSTEM, Clock
from ..iconik import IconikClient
from ..ledger import Ledger, Row
from ..rules import ms, span
from ..types import CREATE, CREATED, UPDATED, Json, Write
from .machinery import CONNECTION_STREAK_STOP
from .search import LazySearch


@dataclasses.dataclass
class Mismatch:
    """An asset whose Iconik state is not what the ledger says reversesync left there."""

    asset_id: str
    row_numbers: str
    state: str
    kind: str          # missing / different / extra / duplicate / subclip / gone / unreadable / leftover
    expected: str
    found: str


def _spans(segments: Sequence[Json]) -> str:
    return "; ".join(f"GENERIC {s['id']} {ms(*span(s))}" for s in segments) or "no GENERIC segment"


def verify_row(client: IconikClient, row: Row, undone_creates: Sequence[Write] = (),
               extras: LazySearch | None = None, assets: LazySearch | None = None) -> Mismatch | None:
    """None when Iconik holds exactly what the ledger says for this row, else a Mismatch.

    undone_creates: the logged creates an undo reverted on this asset (a row skipped as undone). extras: the batched
    search of GENERIC segments, assets of asset documents (a SUBCLIP's own range); without them (or where they cannot
    tell, or show a mismatch) the asset and its list are read."""
    if row["state"] == "skipped" and row["reason"] == "undone":
        return _verify_undone(client, row, undone_creates)
    key, start, end = row["asset_key"], row["time_start_ms"], row["time_end_ms"]
    written = row["state"] in (CREATED, UPDATED)
    expected = (f"exactly one GENERIC segment {ms(start, end)}" if written
                else f"a GENERIC segment or SUBCLIP spanning {ms(start, end)}")

    def mismatch(kind: str, found: str) -> Mismatch:
        return Mismatch(key, row["row_numbers"], row["state"], kind, expected, found)

    segment_id = row["segment_id"]
    try:
        if segment_id:
            # One fresh read by id; the asset is read only to tell a gone asset from a gone segment.
            try:
                ours = client.get_segment(key, segment_id)
            except errors.NotFound:
                client.get_asset(key)
                return mismatch("missing", f"segment {segment_id} is gone")
            if rules.is_absent(ours):  # a soft-deleted segment waits in Iconik's bin: it is no clip range
                return mismatch("missing", f"segment {segment_id} is deleted (status DELETED)")
            if ours.get("segment_type") != "GENERIC" or span(ours) != (start, end):
                return mismatch("different", f"segment {segment_id} is {ours.get('segment_type')} {ms(*span(ours))}")
            if not written and not rules.is_ours(ours):
                return None  # an extra beside a segment found in sync is no mismatch, and no copy of ours
            shown = extras.documents(key) if extras is not None else None
            if shown is not None and all(s.get("id") == segment_id for s in shown):
                return None  # the index shows no other GENERIC segment
            # The list trails too: every other segment it shows is read by id, so that one a person deleted a
            # moment ago is no `extra` (only a mismatch costs these reads).
            listed = [ours] + _fresh(client, key, [s for s in rules.generic_only(client.list_segments(key, "GENERIC"))
                                                   if s.get("id") != segment_id])
        else:
            ours = None
            indexed = assets.documents(key) if assets is not None else None
            if indexed and not written and indexed[0].get("type") == rules.SUBCLIP \
                    and indexed[0].get("status") == rules.ACTIVE and span(indexed[0]) == (start, end):
                return None  # a live SUBCLIP found in sync, as the index shows it (nothing reversesync wrote)
            asset = client.get_asset(key)
            if asset.get("status") == rules.DELETED:  # in Iconik's bin: no clip to hold a range (a review found)
                return mismatch("gone", "the asset is deleted (status DELETED)")
            if asset.get("type") == rules.SUBCLIP:
                found = span(asset)
                if found == (start, end) and not written:
                    return None
                return mismatch("subclip", f"SUBCLIP {ms(*found)}")
            listed = rules.generic_only(client.list_segments(key, "GENERIC"))
    except errors.NotFound:
        return mismatch("gone", "the asset is gone (404)")
    except (errors.TerminalError, errors.UnknownOutcome) as exc:
        return mismatch("unreadable", f"could not be read: {exc}")
    others = [s for s in listed if s.get("id") != segment_id]
    marked = [s for s in listed if rules.is_ours(s)]
    if ours is not None and rules.is_ours(ours) and len(marked) > 1:
        return mismatch("duplicate", f"{len(marked)} reversesync segments: {_spans(marked)}; keep "
                                     f"{segment_id}, delete the others")
    if ours is None:  # a row from before segment ids were recorded: the list is all there is
        equal = [s for s in listed if span(s) == (start, end)]
        if not equal or written and len(listed) != 1:
            return mismatch("different", _spans(listed))
        return None
    if written and others:
        return mismatch("extra", f"{_spans([ours])}, and also {_spans(others)}")
    return None


def _fresh(client: IconikClient, key: str, segments: Sequence[Json]) -> list[Json]:
    """The segments as read by id now, less those gone, deleted or no longer GENERIC."""
    found = []
    for segment in segments:
        try:
            read: Json | None = client.get_segment(key, segment["id"])
        except errors.NotFound:
            continue
        if read is not None and not rules.is_absent(read) and read.get("segment_type") == "GENERIC":
            found.append(read)
    return found


def _verify_undone(client: IconikClient, row: Row, undone_creates: Sequence[Write]) -> Mismatch | None:
    """An undone row: no live segment may still carry the marker of a create the undo reverted (a copy whose
    answer was lost can land after the undo looked), nor be that create's recorded segment."""
    key = row["asset_key"]
    markers = {write.marker: write for write in undone_creates if write.marker}
    try:
        # The list trails an undo's deletes: what it shows carrying a marker is read by id before it is reported.
        listed = [s for s in rules.generic_only(client.list_segments(key, "GENERIC"))
                  if s.get("external_id") in markers]
        left = [s for s in _fresh(client, key, listed) if s.get("external_id") in markers]
        for write in undone_creates:
            if write.segment_id and write.segment_id not in {s["id"] for s in left}:
                try:
                    recorded: Json | None = client.get_segment(key, write.segment_id)
                except errors.NotFound:
                    continue
                if recorded is not None and not rules.is_absent(recorded):
                    left.append(recorded)
    except errors.NotFound:
        return None  # the asset is gone, and its segments with it
    except (errors.TerminalError, errors.UnknownOutcome) as exc:
        return Mismatch(key, row["row_numbers"], "skipped/undone", "unreadable", "", f"could not be read: {exc}")
    if not left:
        return None
    runs = sorted({write.run_id or 0 for write in undone_creates})
    return Mismatch(key, row["row_numbers"], "skipped/undone", "leftover",
                    "no segment of the creates an undo reverted",
                    f"{_spans(left)} still carr{'y' if len(left) > 1 else 'ies'} reversesync's marker; undo run "
                    f"{', '.join(map(str, runs))} again to delete it")


def settle_wait(ledger: Ledger, settle: float, now: float) -> float:
    """Seconds still to wait before a write whose answer was lost can no longer land unseen.

    Only such writes can leave a late duplicate; a write answered 201 or 200 is read back by id."""
    last = ledger.last_unknown_outcome_at()
    if last is None:
        return 0.0
    return max(0.0, last + settle - now)


def verify(ledger: Ledger, client: IconikClient, workers: int = 8, sink: progress.Sink = progress.ignore,
           settle: float = 0.0, clock: Clock = SYSTEM) -> tuple[int, list[Mismatch]]:
    """Read Iconik again for every asset the ledger says is created, updated or in sync, and every row an undo
    reverted; returns (rows verified, [Mismatch]). Raises IconikUnreachable when CONNECTION_STREAK_STOP rows in a
    row could not be read (Iconik is down: that is no mismatch of the data), AuthError on a 401."""
    wait = settle_wait(ledger, settle, clock.time())
    if wait > 0:
        # A write answered lost may still land, and the lists trail writes: wait out the settle time.
        sink(progress.SettleWait(wait))
        clock.sleep(wait)
    rows = ledger.rows_to_verify()
    undone = {row["asset_key"]: [w for w in ledger.writes_of_asset(row["asset_key"])
                                 if w.action == CREATE and w.undone_by is not None]
              for row in rows if row["state"] == "skipped" and row["reason"] == "undone"}
    rows = [row for row in rows if row["state"] != "skipped" or row["reason"] == "in_sync" or undone[row["asset_key"]]]
    extras = LazySearch(client, "segments", [row["asset_key"] for row in rows
                                             if row["segment_id"] and row["asset_key"] not in undone])
    assets = LazySearch(client, "assets", [row["asset_key"] for row in rows
                                           if not row["segment_id"] and row["asset_key"] not in undone])

    def one(row: Row) -> Mismatch | errors.TransientError | None:
        try:
            return verify_row(client, row, undone.get(row["asset_key"], ()), extras, assets)
        except errors.TransientError as exc:
            return exc

    return len(rows), _read_all(rows, one, client, workers, sink, clock)


def drift_check(ledger: Ledger, client: IconikClient, workers: int = 8, sink: progress.Sink = progress.ignore,
                clock: Clock = SYSTEM) -> tuple[int, list[tuple[Row, rules.Drift]]]:
    """Read again, fresh by id, every segment reversesync created or updated for the current sheet, and list its
    copies (issue #17): (rows read, [(row, Drift)]). A row that cannot be read is left for the next check; the same
    stop rules as verify's."""
    rows = ledger.rows_written()
    found: list[tuple[Row, rules.Drift]] = []
    # Copies are looked for as verify looks for extras (issue #19): a batched search per hundred assets, the
    # asset's own list only where the index shows another GENERIC segment or cannot tell.
    extras = LazySearch(client, "segments", [row["asset_key"] for row in rows])

    def one(row: Row) -> Mismatch | errors.TransientError | None:
        segment_id = row["done_segment_id"] or row["segment_id"]
        start = row["done_start_ms"] if row["done_start_ms"] is not None else row["time_start_ms"]
        end = row["done_end_ms"] if row["done_end_ms"] is not None else row["time_end_ms"]
        try:
            try:
                read: Json | None = client.get_segment(row["asset_key"], segment_id)
            except errors.NotFound:
                read = None
            listed: list[Json] = []
            if not rules.is_absent(read):
                shown = extras.documents(row["asset_key"])
                alone = shown is not None and all(s.get("id") == segment_id for s in shown)
                listed = [] if alone else client.list_segments(row["asset_key"], "GENERIC")
        except errors.TransientError as exc:
            return exc
        except (errors.TerminalError, errors.UnknownOutcome):
            return None  # this asset cannot be read now (a 403, an odd answer): the next check tries again
        drifted = rules.drift(segment_id, start, end, read, listed)
        if drifted:
            found.append((row, drifted))
            sink(progress.Drifted(row["asset_key"], drifted.reason, drifted.text))
        return None

    _read_all(rows, one, client, workers, sink, clock)
    return len(rows), found


def _read_all(rows: Sequence[Row], one: Callable[[Row], Mismatch | errors.TransientError | None],
              client: IconikClient, workers: int, sink: progress.Sink, clock: Clock) -> list[Mismatch]:
    """one(row) for every row on a pool of workers, with progress; the mismatches found. A row that could not be
    read is a mismatch of kind unreadable, unless CONNECTION_STREAK_STOP rows in a row could not: then Iconik is
    down, the rest is cancelled and IconikUnreachable raised."""
    began = clock.monotonic()
    mismatches: list[Mismatch] = []
    done = streak = 0
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        for row, found in zip(rows, pool.map(one, rows), strict=True):
            done += 1
            if isinstance(found, errors.TransientError):
                streak += 1
                if streak >= CONNECTION_STREAK_STOP:
                    raise errors.IconikUnreachable(found.method, found.path, None,
                                                   f"{streak} assets in a row could not be read ({found})")
                mismatches.append(Mismatch(row["asset_key"], row["row_numbers"], row["state"], "unreadable", "",
                                           f"could not be read: {found}"))
            else:
                streak = 0
                if found:
                    mismatches.append(found)
            sink(progress.Tick(done, len(rows), client.stats.requests, clock.monotonic() - began,
                               waiting=client.stats.waiting_for(), final=done == len(rows)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return mismatches
