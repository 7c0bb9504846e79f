"""The SQLite ledger: all of reversesync's SQL lives in this package.

- files.py: opening a ledger file read-only or for writing, and the schema migrations (migrations/*.sql);
- states.py: the row state machine, as a table;
- rows.py: rows, their moves and events, loading the source, choosing a run's rows;
- writelog.py: the write log (intents, sends, outcomes);
- runs.py: runs and what each did;
- lock.py: one process at a time;
- queries.py: read-only questions for reports, verify, undo and repair;
- syncs.py: the nightly `sync`: its records, retries across nights, rows needing a person, drift;
- backups.py: copies of the ledger file made before each sync.
"""

from __future__ import annotations

import os
import sqlite3

from ..errors import LedgerError
from ..types import CHECKED, CREATED, FAILED, FINAL_STATES, PENDING, SKIPPED, STATES, UPDATED
from . import files, place
from .backups import KEEP as BACKUPS_KEPT
from .backups import Backups, backup_folder, backups
from .base import Event, Row, now_iso
from .files import MIGRATION_NAMES, migrations
from .lock import HEARTBEAT_EVERY, LOCK_STALE_AFTER, Lock, holder_alive
from .queries import REPORT_COLUMNS, Queries
from .states import TRANSITIONS, check_transition
from .syncs import Pair, Syncs

DEFAULT_LEDGER = "reversesync.db"

__all__ = ["BACKUPS_KEPT", "CHECKED", "CREATED", "DEFAULT_LEDGER", "FAILED", "FINAL_STATES", "HEARTBEAT_EVERY",
           "LOCK_STALE_AFTER", "MIGRATION_NAMES", "PENDING", "REPORT_COLUMNS", "SKIPPED", "STATES", "TRANSITIONS",
           "UPDATED", "Event", "Ledger", "Pair", "Row", "backup_folder", "backups", "check_transition", "holder_alive",
           "migrations", "now_iso", "place"]


class Ledger(Queries, Syncs, Backups, Lock):
    """One open ledger file. Every read and write goes through one connection guarded by one lock.

    create=False refuses a path with no ledger (LedgerMissing); readonly=True reads without writing
    anything (LedgerNeedsUpgrade if the file needs a migration first). Opening for writing tightens a
    ledger readable by others to 0600 and leaves a line about it in `notes` for the CLI to print.

    A ledger on a network share, a remote drive or under OneDrive is refused (LedgerPlace) unless network=True
    (--allow-network-ledger), which keeps it without WAL; host is the machine the place rules ask (ledger/place.py),
    a fake one in the tests that play Windows."""

    def __init__(self, path: str, *, upgrade: bool = True, stop_before: str | None = None, create: bool = True,
                 readonly: bool = False, network: bool = False, host: place.Host = place.THIS_HOST) -> None:
        self.path = os.path.abspath(path)
        # Before anything touches the file: a ledger off a local disk only if allowed (issue #18).
        where = place.check_local_place(self.path, allowed=network, host=host)
        self._init_base()
        self._init_lock()
        self.readonly = readonly
        self.notes: list[str] = []
        try:
            applied = files.check_what_is_there(self.path, create and not readonly, windows=host.windows)
            if readonly:
                self.db = files.open_readonly(self.path, applied)
            else:
                self.db = files.open_for_writing(self.path, upgrade, stop_before, self.notes,
                                                 network=(where or "") if network else None, windows=host.windows)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path} is not a usable reversesync ledger: {exc}. It was not changed.") from exc

    def close(self) -> None:
        with self._lock:
            self.db.close()
