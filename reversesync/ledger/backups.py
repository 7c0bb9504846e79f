"""Backups of the ledger before each sync (issue #17): a consistent copy by SQLite's backup API (safe while the
file is open, WAL included), in a folder beside the ledger, the newest KEEP kept."""

from __future__ import annotations

import datetime
import os
import sqlite3

from ..errors import LedgerUnavailable
from .base import LedgerBase

KEEP = 7


def backup_folder(ledger_path: str) -> str:
    """`<folder of the ledger>/<ledger file name>.backups`."""
    return ledger_path + ".backups"


class Backups(LedgerBase):
    def back_up(self, keep: int = KEEP, now: datetime.datetime | None = None) -> str:
        """Copy the ledger to its backup folder (private, like the ledger) and remove all but the newest keep
        copies; returns the copy's path."""
        folder = backup_folder(self.path)
        stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
        name = os.path.basename(self.path)
        target = os.path.join(folder, f"{os.path.splitext(name)[0]}-{stamp}.db")
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            # Created private before SQLite writes a byte into it: it holds the same as the ledger.
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            copy = sqlite3.connect(target)
            try:
                with self._lock:
                    self.db.conn.backup(copy)
            finally:
                copy.close()
        except (OSError, sqlite3.Error) as exc:
            raise LedgerUnavailable(f"could not back up the ledger to {folder}: {exc}. Free some space or fix the "
                                    "folder's permissions, then run again; nothing was changed.") from exc
        for old in backups(self.path)[:-keep] if keep > 0 else []:
            try:
                os.remove(old)
            except OSError:
                pass  # a copy that cannot go now goes at the next sync
        return target


def backups(ledger_path: str) -> list[str]:
    """The ledger's backups, oldest first (their names sort by time)."""
    folder = backup_folder(ledger_path)
    prefix = os.path.splitext(os.path.basename(ledger_path))[0] + "-"
    try:
        names = sorted(name for name in os.listdir(folder) if name.startswith(prefix) and name.endswith(".db"))
    except FileNotFoundError:
        return []
    return [os.path.join(folder, name) for name in names]
