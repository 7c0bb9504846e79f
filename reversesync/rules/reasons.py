"""The reasons a row can end with, grouped by what can change them, and what a failed row tells a person."""

from __future__ import annotations

# Every reason a row finished by a run can carry (README's decision table); `run --recheck REASON` takes these.
FINISHED_REASONS = ("in_sync", "subclip_mismatch", "subclip_linked", "ambiguous", "asset_deleted", "unsupported_type",
                    "unsupported_status", "segment_status", "not_found", "bad_request", "internal_error",
                    "unexpected_answer", "duplicated", "forbidden", "undone", "changed_since", "cannot_restore",
                    "undo_failed", "repair_failed", "drift_deleted", "drift_moved", "drift_duplicated")

# Failed rows whose cause may pass; --retry-failed sends them back to pending.
RETRYABLE_REASONS = ("server_error", "connection_error", "rate_limited", "conflict", "unknown_outcome", "forbidden")

# Reasons given at load time: the sheet row itself is unusable, so no run can help until it is fixed.
LOAD_REJECTIONS = ("invalid", "no_timecode", "duplicate_conflict")

# Reasons an undo leaves on a row; `run --recheck REASON` brings such a row back.
UNDO_REASONS = ("undone", "changed_since", "cannot_restore", "undo_failed")

# A run finishes a row from the search index only when it writes nothing; a write is always decided from a
# per-asset read, since the index can lag (ICONIK-FACTS 7.1).
SEARCH_FINAL_REASONS = ("in_sync", "subclip_mismatch", "asset_deleted", "ambiguous", "unsupported_type",
                        "unsupported_status", "segment_status", "subclip_linked")

# What a sync's drift check finds on a segment reversesync wrote (issue #17): a person deleted it, moved its times,
# or it is there more than once. The row is set aside with one of these; `sync --repair-drift` (or
# `run --live --recheck REASON`) lets the sheet win for the times.
DRIFT_REASONS = ("drift_deleted", "drift_moved", "drift_duplicated")
# The drift the sheet can win over: a copy is a person's to remove (a sync that re-checked its row would find a
# segment in sync and forget the copy).
REPAIRABLE_DRIFT = ("drift_deleted", "drift_moved")

# Failed rows whose cause passes by itself: `sync` sends them back for another try, night after night, up to
# --retry-nights times (the client's retryable set, a 409 and a lost answer included).
SYNC_RETRY_REASONS = ("server_error", "connection_error", "rate_limited", "conflict", "unknown_outcome")

# The reasons that leave a row needing a person: nothing reversesync can do by itself changes them. A row failed
# for one of SYNC_RETRY_REASONS joins them once its retries are spent. in_sync, undone and changed_since (an
# undo that left a person's edit in place) need nobody.
NEEDS_PERSON_REASONS = ("not_found", "forbidden", "bad_request", "internal_error", "unexpected_answer", "duplicated",
                        "undo_failed", "repair_failed", "cannot_restore", "subclip_mismatch", "subclip_linked",
                        "ambiguous", "asset_deleted", "unsupported_type", "unsupported_status", "segment_status",
                        *LOAD_REJECTIONS, *DRIFT_REASONS)


def needs_person(state: str, reason: str | None, sync_retries: int, retry_nights: int) -> bool:
    """Whether a row of the current sheet needs a person: its reason is one nothing automatic changes, or a
    passing cause that `sync` has retried retry_nights times already."""
    if state not in ("skipped", "failed") or not reason:
        return False
    if reason in SYNC_RETRY_REASONS:
        return state == "failed" and sync_retries >= retry_nights
    return reason in NEEDS_PERSON_REASONS


_ADVICE = {
    "bad_request": "Iconik rejected the request; read its message, fix the row, then load and run again.",
    "conflict": "the segment kept changing under reversesync; run again with --retry-failed.",
    "server_error": "Iconik kept failing after retries; run again later with --retry-failed.",
    "connection_error": "Iconik could not be reached after retries; run again with --retry-failed.",
    "rate_limited": "Iconik kept answering 429; run again with a lower --rate and --retry-failed.",
    "unknown_outcome": "the write's answers kept getting lost; the next run re-checks it first.",
    "forbidden": "the token's user may not read or write this asset; grant access in Iconik, then run again "
                 "with --retry-failed.",
    "unexpected_answer": "Iconik answered in a shape reversesync cannot decide from; nothing more was written "
                         "to this asset. Report it with this text.",
    "duplicated": "a write whose answer was lost landed more than once; keep one segment and delete the others "
                  "in Iconik (reversesync verify lists them).",
    "internal_error": "reversesync hit an unexpected error on this row; please report it with this text.",
}


def failure_text(reason: str, message: str) -> str:
    """What a row failed with `reason` tells a person: what to do, then what Iconik (or the error) said."""
    advice = _ADVICE.get(reason, "")
    return f"{advice} ({message})" if advice else message
