"""Types the modules pass between them: a logged write, and what changes about one when it settles."""

from __future__ import annotations

import dataclasses
from typing import Any

# A write's outcome in the write log (migrations/006_write_log.sql).
PENDING_WRITE, APPLIED, NOT_APPLIED, DUPLICATED = "pending", "applied", "not_applied", "duplicated"

# The actions of the write log: a run's, an undo's, a repair's.
CREATE, UPDATE, DELETE, RESTORE, REPAIR_DELETE = "create", "update", "delete", "restore", "repair_delete"
SYNC_ACTIONS = (CREATE, UPDATE)
UNDO_ACTIONS = (DELETE, RESTORE)


@dataclasses.dataclass(frozen=True)
class Intent:
    """A write about to be sent, as it is logged before it goes on the wire (Ledger.record_intent)."""

    intent_id: str
    action: str
    method: str
    segment_id: str | None = None
    marker: str | None = None
    undoes: int | None = None
    before: dict[str, Any] | None = None
    start_ms: int | None = None
    end_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class Write:
    """One intent of the write log: what reversesync meant to write, and what came of it.

    The run that recorded it owns it and every re-send of it, whichever run settles it (issue #15)."""

    id: int
    intent_id: str
    run_id: int | None
    asset_key: str
    action: str
    method: str
    segment_id: str | None = None
    marker: str | None = None
    undoes: int | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    outcome: str = PENDING_WRITE
    sent_at: float | None = None
    undone_by: int | None = None
    lost: bool = False

    @property
    def settled(self) -> bool:
        return self.outcome != PENDING_WRITE

    @property
    def legacy(self) -> bool:
        """Logged by 0.1 or 0.2 (migrated): its before-image holds only the fields those knew, its after-image
        is unknown, and an update went out as a PUT."""
        return self.intent_id.startswith("v02-")


@dataclasses.dataclass(frozen=True)
class WriteChange:
    """What settling (or undoing) one logged write changes, committed with the row's move."""

    intent_id: str
    outcome: str | None = None
    after: dict[str, Any] | None = None
    segment_id: str | None = None
    undone_by: int | None = None
    lost: bool = False            # an answer to it was lost: it may still land, late
