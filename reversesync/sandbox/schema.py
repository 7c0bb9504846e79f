"""Iconik's vocabulary as the sandbox plays it: the asset and segment types and statuses, the roles, every
editable segment field and what a PUT that leaves it out resets it to, the fields no client may send, and the
stamps a change puts on a record. Every other module of the sandbox takes these from here."""

import datetime
from typing import Any

Record = dict[str, Any]  # a stored asset or segment, as Iconik's JSON shows it

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
# What a segment PATCH does: "merge" as Iconik documents it (only the fields the body carries change), or
# "replace" like a PUT, to test a client's guard against a PATCH that wipes what it left out (ICONIK-FACTS 8.1).
PATCH_MODES = ("merge", "replace")

# Fields a client must never send (ICONIK-FACTS 3); the sandbox rejects them like a strict Iconik would.
READ_ONLY_SEGMENT_FIELDS = ("id", "asset_id", "date_created", "date_modified", "has_drawing", "subclip_id",
                            "user_first_name", "user_last_name", "user_photo")
READ_ONLY_ON_EDIT = READ_ONLY_SEGMENT_FIELDS + ("parent_id", "path", "top_level", "user_id")
# Every editable field of the live EditSegmentSchema and what a PUT that leaves it out resets it to. The last
# five are missing from the older spec (ICONIK-FACTS 8.1): a client's list of known fields may lack them too.
EDITABLE_DEFAULTS: Record = {
    "metadata": {}, "metadata_view_id": None, "segment_color": None, "segment_text": None,
    "segment_track": None, "segment_checked": False, "external_id": None, "drawing": None, "keyframe_id": None,
    "version_id": None, "status": "ACTIVE", "person_id": None, "project_id": None, "share_id": None,
    "share_user_email": None, "face_bounding_boxes": None, "transcription": None, "transcription_id": None,
    "time_start_milliseconds": None, "time_end_milliseconds": None,
    "is_internal": False, "has_attachments": False, "semantic_transcription": None, "share_session_id": None,
    "shot": None,
}


def now_stamp() -> str:
    """A date_created or date_modified for now, as Iconik writes them."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def moved_stamp(previous: str | None) -> str:
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
