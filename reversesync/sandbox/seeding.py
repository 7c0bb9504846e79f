"""Seeding: a believable catalogue for the ids of a sheet. The scenarios reversesync meets in a real catalogue
(SCENARIOS), what it should make of each (EXPECTED), dealt in the proportions of a mix, the same for the same
sheet and seed. The one module of the sandbox that reads a sheet."""

import hashlib
import random
import uuid
from typing import TYPE_CHECKING, Any

from ..sheets import AssetRecord, read_csv, records_from_table
from .schema import OTHER_ASSET_TYPES, Record

if TYPE_CHECKING:  # the catalogue calls seed_from_sheet with itself; nothing here is needed to build one
    from .catalogue import Catalogue

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


def seed_from_sheet(catalogue: "Catalogue", path: str, seed: int = 0,
                    mix: dict[str, float] | None = None) -> dict[str, str]:
    """Fill catalogue for the ids in a sheet CSV; returns {asset id: scenario} (Catalogue.seed_from_sheet)."""
    header, rows = read_csv(path)
    records = records_from_table(header, rows)
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
            catalogue.add_asset(key, title=record.title)  # rejected rows still name real assets
            dealt[key] = "rejected"
            continue
        fraction = (position + 0.5) / len(ids)
        scenario = next(name for bound, name in bounds if fraction <= bound + 1e-12)
        # Ids come from their own generator so that adding them did not change the other draws.
        _build(catalogue, scenario, key, record, random.Random(f"{seed}:{key}"), random.Random(f"{seed}:{key}:ids"))
        dealt[key] = scenario
    return dealt


def _build(catalogue: "Catalogue", scenario: str, key: str, record: AssetRecord, rng: random.Random,
           ids: random.Random) -> None:
    """The asset (and its segments, its parent) a scenario describes, for one record of the sheet."""
    start, end = record.time_start_ms, record.time_end_ms
    assert start is not None and end is not None, "seed_from_sheet builds only records without a reason"
    if scenario == "unknown":
        return
    if scenario in ("subclip_equal", "subclip_differs"):
        parent = catalogue.add_asset(_seeded_uuid(ids), title=f"parent of {record.title}")
        shift = 0 if scenario == "subclip_equal" else rng.randint(1, 90) * 1000
        _add_subclip(catalogue, key, parent["id"], record.title, start + shift, end + shift, ids)
        return
    if scenario == "other_type":
        catalogue.add_asset(key, title=record.title, type=rng.choice(OTHER_ASSET_TYPES))
        return
    status = {"deleted": "DELETED", "odd_status": "ARCHIVED"}.get(scenario, "ACTIVE")
    catalogue.add_asset(key, title=record.title, status=status, strict=scenario != "odd_status")
    if scenario == "forbidden":
        catalogue.forbid(key)
    human = {"metadata": {"Quality": ["broadcast"], "Editor": ["kim"]}, "segment_text": "logged by hand",
             "segment_color": "#ff9900"}
    by_hand = []

    def add_by_hand(segment_start: int, segment_end: int, **fields: Any) -> None:
        by_hand.append(catalogue.add_segment(key, "GENERIC", segment_start, segment_end, id=_seeded_uuid(ids),
                                             **human, **fields))
    if scenario == "comments_only":
        for n in range(rng.randint(3, 25)):
            point = rng.randint(0, end + 60_000)
            catalogue.add_segment(key, rng.choice(("COMMENT", "MARKER")), point, point, segment_text=f"note {n}",
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
        catalogue.add_segment(key, "GENERIC", start + 500_000, end + 500_000, id=_seeded_uuid(ids))
        add_by_hand(start, end)
    elif scenario == "two_none_equal":
        catalogue.add_segment(key, "GENERIC", start + 1000, end + 1000, id=_seeded_uuid(ids))
        catalogue.add_segment(key, "GENERIC", start + 2000, end + 7000, id=_seeded_uuid(ids))
    elif scenario == "subclip_parent":
        shift = rng.randint(1, 90) * 1000
        _add_subclip(catalogue, _seeded_uuid(ids), key, f"subclip of {record.title}", start + shift, end + shift, ids)
    if scenario in ("in_sync", "differs") and rng.random() < 0.5:
        catalogue.add_segment(key, "COMMENT", start + 10, start + 10, segment_text="nice hand", id=_seeded_uuid(ids))
    # People also mark segments internal and tools attach shot analysis: fields of the live schema that a
    # PUT from a fixed list would wipe (ICONIK-FACTS 8.1). Drawn last, so every draw above is as it was.
    for segment in by_hand:
        segment["is_internal"] = rng.random() < 0.3
        if rng.random() < 0.3:
            segment["shot"] = {"shot_scale": {"label": rng.choice(("close-up", "medium", "wide")),
                                              "score": round(rng.uniform(0.6, 0.99), 2)},
                               "caption": "two players at the table"}


def _add_subclip(catalogue: "Catalogue", subclip_id: str, parent_id: str, title: str, start: int, end: int,
                 ids: random.Random) -> Record:
    """A SUBCLIP and the GENERIC segment on its parent that backs it, one to one (ICONIK-FACTS 7.2)."""
    backing = catalogue.add_segment(parent_id, "GENERIC", start, end, id=_seeded_uuid(ids))
    subclip = catalogue.add_asset(subclip_id, title=title, type="SUBCLIP", start=start, end=end,
                                  original_asset_id=parent_id, original_segment_id=backing["id"])
    backing["subclip_id"] = subclip["id"]
    return subclip


def _seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
