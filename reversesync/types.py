"""The types modules pass between them: row states, event kinds, the write log's records, a run's options and
result, and the exit statuses. Nothing here does any work."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

Json = dict[str, Any]

# --- a row's state: the ledger's state machine (ledger/states.py) moves rows between these ---------------

PENDING, CHECKED, CREATED, UPDATED, SKIPPED, FAILED = ("pending", "checked", "created", "updated", "skipped",
                                                       "failed")
STATES = (PENDING, CHECKED, CREATED, UPDATED, SKIPPED, FAILED)
FINAL_STATES = (CREATED, UPDATED, SKIPPED, FAILED)


class Kind:
    """What an event in the ledger's log records (events.kind): modules match these, never an event's words."""

    LOADED = "loaded"                      # a new row from the source
    SOURCE_CHANGED = "source_changed"      # the source changed the row's times or reason
    BACK_IN_SOURCE = "back_in_source"
    LEFT_SOURCE = "left_source"
    RECHECK = "recheck"                    # --retry-failed, --recheck, --asset reopened a finished row
    PLANNED = "planned"                    # a dry run decided a write
    DECIDED = "decided"                    # a row finished with a reason, nothing written
    INTENT = "intent"                      # a write is about to be sent (the write log has it)
    NOT_APPLIED = "not_applied"            # a write Iconik refused, or that never left
    OUTCOME_UNKNOWN = "outcome_unknown"    # a write whose answer was lost
    SETTLING = "settling"                  # an unsettled write is being re-checked
    SETTLED = "settled"                    # a re-check found what an unsettled write left
    WRITTEN = "written"                    # a write answered 201/200
    FAILED = "failed"
    UNDO = "undo"                          # an undo's step
    REPAIR = "repair"                      # a repair's step
    DRIFT = "drift"                        # a sync found a segment reversesync wrote deleted, moved or copied
    OTHER = "other"                        # 0.2's events the migration could not classify


# --- the write log (migrations/006_write_log.sql) ------------------------------------------------------

PENDING_WRITE, APPLIED, NOT_APPLIED, DUPLICATED = "pending", "applied", "not_applied", "duplicated"
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
    before: Json | None = None
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
    before: Json | None = None
    after: Json | None = None
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
    after: Json | None = None
    segment_id: str | None = None
    undone_by: int | None = None
    lost: bool = False            # an answer to it was lost: it may still land, late


# --- runs -----------------------------------------------------------------------------------------------

# The shared defaults of every kind of run (issue #10): the settle time must outlast the read timeout (30 s:
# the client gives up, the server may not have), a margin for a backend that applies a write late (30 s), and
# the index behind segment lists (a few seconds; 30 s margin). See README.
DEFAULT_SETTLE = 90.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_RATE = 50.0      # Iconik's published pace per token (ICONIK-FACTS 5)
DEFAULT_WORKERS = 8
DEFAULT_RETRY_NIGHTS = 3  # syncs that retry a row failed for a passing cause before it needs a person


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The options of any run (a sync, an undo, a repair), recorded with it so that `resume` continues it as
    it was. Fields a kind of run has no use for keep their defaults."""

    live: bool = False
    workers: int = DEFAULT_WORKERS
    rate: float = DEFAULT_RATE
    settle: float = DEFAULT_SETTLE
    read_timeout: float = DEFAULT_READ_TIMEOUT
    assets: tuple[str, ...] = ()
    # a sync run's
    limit: int | None = None
    retry_failed: bool = False
    recheck: tuple[str, ...] = ()
    search: bool = True
    # an undo's: the run it undoes (None for a repair)
    undo: int | None = None

    def to_json(self) -> Json:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunOptions:
        """Options as a run's record holds them: keys this version does not know are left out, and JSON lists
        become the tuples the options hold."""
        names = {field.name for field in dataclasses.fields(cls)}
        known: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
        return cls(**known)


# Rows by (state, reason or action), over the rows a run touched: ("created", "create"), ("skipped", "in_sync").
Counts = dict[tuple[str, str], int]


@dataclasses.dataclass
class RunResult:
    """What a run (or one leg of it, before a resume) did."""

    run_id: int
    mode: str                     # dry / live / undo / repair
    status: str                   # finished / interrupted / aborted
    counts: Counts
    requests: int
    writes: int
    throttled: int
    elapsed: float
    rows: int
    error: BaseException | None = None
    unfinished_writes: int = 0    # rows left holding an intent (a dry run leaves them to a live run)


class ExitStatus(enum.IntEnum):
    """What a command's exit code tells whoever ran it (README, "Exit codes")."""

    OK = 0
    FAILED_ROWS = 1     # finished; rows are failed, or verify found mismatches
    INPUT = 2           # usage, input or configuration: a person must act; nothing was changed
    RESUMABLE = 3       # stopped before finishing; continue with resume once the cause has passed
    INTERRUPTED = 130   # Ctrl-C, or stdout closed; resume continues
