"""What every part of the ledger shares: its one connection, one lock around it, write transactions that say
why SQLite failed, and plain reads. The parts (rows, runs, write log, lock, queries) are mixins of Ledger."""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import sqlite_utils

from ..errors import LedgerError, LedgerUnavailable

Row = dict[str, Any]
Params = Sequence[Any] | dict[str, Any]
# (asset key, run id, from state, to state, at, kind, detail): one row of the events table
Event = tuple[str, int | None, str | None, str, str, str, str | None]
Observer = Callable[[Sequence[Event]], None]


def now_iso() -> str:
    """The ledger's timestamps: UTC, ISO 8601 with milliseconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class LedgerBase:
    """One open ledger file: every read and write goes through one connection guarded by one lock."""

    path: str
    db: sqlite_utils.Database
    _lock: threading.RLock
    _observers: list[Observer]
    _unannounced: list[Event]
    _depth: int

    def _init_base(self) -> None:
        self._lock = threading.RLock()
        self._observers, self._unannounced, self._depth = [], [], 0

    def observe(self, observer: Observer) -> None:
        """Call observer with the events of each write transaction once it has committed (the --log file
        records every row's change from them, issue #17); never for a transaction rolled back."""
        self._observers.append(observer)

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        with self._lock:
            return list(self.db.query(sql, params))

    def iterate(self, sql: str, params: Params = ()) -> Iterator[tuple[Any, ...]]:
        """Plain tuples of a query, for reports too large to hold as dicts."""
        with self._lock:
            yield from self.db.execute(sql, params)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction; SQLite's own failures come out as errors that name their cause."""
        with self._lock:
            self._depth += 1
            try:
                with self.db.atomic():
                    yield
            except sqlite3.OperationalError as exc:
                self._unannounced.clear()
                raise _unavailable(self.path, exc) from exc
            except BaseException:
                self._unannounced.clear()
                raise
            finally:
                self._depth -= 1
            if self._depth:
                return
            committed, self._unannounced = self._unannounced, []
        for observer in self._observers if committed else ():
            observer(committed)

    def _record_events(self, events: Sequence[Event]) -> None:
        """Inside a write transaction: add events to the log; observers hear of them once it commits."""
        self.db.conn.executemany(
            "insert into events (asset_key, run_id, from_state, to_state, at, kind, detail) "
            "values (?, ?, ?, ?, ?, ?, ?)", events)
        self._unannounced.extend(events)

    def _check_lock_held(self) -> None:
        """Inside a write transaction: raise LockLost unless this process still holds the lock (ledger/lock.py)."""

    def _in(self, values: Iterable[Any]) -> str:
        """'?, ?, ?' for an SQL `in (...)` of values."""
        return ", ".join("?" for _ in values)


def _unavailable(path: str, exc: sqlite3.OperationalError) -> LedgerError:
    text = str(exc)
    if "full" in text:
        return LedgerUnavailable(f"the ledger {path} cannot grow: {text} (disk full?). Free some space, then resume.")
    if "locked" in text or "busy" in text:
        return LedgerUnavailable(f"the ledger {path} is busy ({text}): another program holds it. Close it, then "
                                 "resume.")
    if "readonly" in text:
        return LedgerError(f"the ledger {path} is read-only ({text}).")
    return LedgerUnavailable(f"the ledger {path} could not be written: {text}")
