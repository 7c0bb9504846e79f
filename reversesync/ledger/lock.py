"""One process at a time: the ledger's lock, its heartbeat, and the one rule for whether a holder is alive."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psutil

from ..errors import LedgerError, LedgerLocked, LockLost
from .base import LedgerBase, Row, now_iso

# A holder on another host cannot be probed: it is stale once its heartbeat is this old. On this host
# a holder is alive exactly as long as its process (pid and start time) exists, whatever its heartbeat.
LOCK_STALE_AFTER = 120.0
HEARTBEAT_EVERY = 5.0


class Lock(LedgerBase):
    """The ledger's lock: taken by acquire(), kept fresh by a heartbeat thread, given back by release()."""

    _lock_token: str | None
    lock_lost: threading.Event
    heartbeat_every: float
    sleep: Callable[[float], None]

    def _init_lock(self) -> None:
        self._lock_token = None
        self.lock_lost = threading.Event()
        self.heartbeat_every = HEARTBEAT_EVERY
        self.sleep = time.sleep
        self._beating = threading.Event()

    def acquire(self, command: str) -> None:
        """Take the ledger for this process, or raise LedgerLocked naming the live holder.

        A holder that died is taken over, and the takeover is recorded in lock_log. A heartbeat thread
        keeps the lock fresh from here to release() and notices if it is ever lost."""
        token = uuid.uuid4().hex
        host = socket.gethostname()
        me = psutil.Process()
        # Decided outside the write transaction: watching a holder's heartbeat move needs fresh reads.
        holder = self.lock_holder()
        if holder and holder_alive(holder, host, heartbeat_moves=lambda: self._heartbeat_moves(holder)):
            raise self._locked(holder)
        with self._writing():
            now = self.lock_holder()
            if now and (holder is None or now["token"] != holder["token"]):
                raise self._locked(now)  # another process took it while this one looked
            if now:
                self.db.execute("insert into lock_log (at, event, pid, host, command, detail) values "
                                "(?, ?, ?, ?, ?, ?)", [now_iso(), "taken_over", now["pid"], now["host"], now["command"],
                                                       f"held since {now['acquired_at']}; its process is gone"])
            self.db.execute("delete from lock")
            self.db.execute(
                "insert into lock (id, token, pid, host, command, acquired_at, heartbeat, started) "
                "values (1, ?, ?, ?, ?, ?, ?, ?)",
                [token, me.pid, host, command, now_iso(), time.time(), me.create_time()])
        self._lock_token = token
        self.lock_lost = threading.Event()
        self._beating = threading.Event()
        threading.Thread(target=self._beat, name="ledger-heartbeat", daemon=True).start()

    def _locked(self, holder: Row) -> LedgerLocked:
        return LedgerLocked(f"{self.path} is in use by 'reversesync {holder['command']}' (pid {holder['pid']} on "
                            f"{holder['host']}, since {holder['acquired_at']}); wait for it to finish or stop it, then "
                            "try again.")

    def _heartbeat_moves(self, holder: Row) -> bool:
        """Whether the holder's heartbeat changes within two beats: a holder that still beats is alive, whatever
        its start time now reads (a clock step moves psutil's start times, issue #15)."""
        waited = 0.0
        while waited < 2 * HEARTBEAT_EVERY + 1:
            self.sleep(0.5)
            waited += 0.5
            now = self.lock_holder()
            if now is None or now["token"] != holder["token"]:
                return False  # released meanwhile: the lock is free
            if now["heartbeat"] != holder["heartbeat"]:
                return True
        return False

    def _beat(self) -> None:
        # Its own thread (issue #10): a holder busy in preflight, a search pre-pass or a frozen terminal
        # still beats; and a holder that finds its lock gone says so at once.
        while not self._beating.wait(self.heartbeat_every):
            try:
                self.heartbeat()
            except LockLost:
                return
            except (LedgerError, sqlite3.Error):
                continue  # a busy moment; the next beat tries again

    def heartbeat(self) -> None:
        if self._lock_token:
            with self._writing():
                updated = self.db.execute("update lock set heartbeat = ? where token = ?",
                                          [time.time(), self._lock_token]).rowcount
                if not updated:
                    self.lock_lost.set()
                    raise LockLost(f"another process took the lock of {self.path}; this one stops at once.")

    def _check_lock_held(self) -> None:
        """Inside a write transaction: raise LockLost unless this process still holds the lock."""
        if not self._lock_token:
            return
        row = self.db.execute("select token from lock").fetchone()
        if self.lock_lost.is_set() or row is None or row[0] != self._lock_token:
            self.lock_lost.set()
            raise LockLost(f"another process took the lock of {self.path}; this one stopped at once, leaving "
                           "its unfinished rows for a resume.")

    def release(self) -> None:
        if self._lock_token:
            self._beating.set()
            with self._writing():
                self.db.execute("delete from lock where token = ?", [self._lock_token])
            self._lock_token = None

    def lock_holder(self) -> Row | None:
        """The lock's row (token, pid, host, command, acquired_at, heartbeat, started), or None when nobody holds
        it."""
        rows = self.query("select token, pid, host, command, acquired_at, heartbeat, started from lock")
        return rows[0] if rows else None


def holder_alive(holder: dict[str, Any], this_host: str, *, heartbeat_moves: Callable[[], bool] = lambda: False,
                 now: Callable[[], float] = time.time) -> bool:
    """Whether the lock's holder may still be working: the one liveness rule (the lock and `runs` both use it).

    On this host: not while its process is gone or a zombie (dead, not yet reaped); yes while a process with its
    pid and start time exists (psutil, which also works on Windows, where os.kill(pid, 0) would send a Ctrl-C
    instead of probing, issue #11). A start time that no longer matches is a reused pid, or a clock step (psutil
    derives start times from the wall clock): then, as for a holder on another host or a 0.1 lock without a
    start time, it is alive while its heartbeat is fresh, or is seen to move (heartbeat_moves())."""

    def beating() -> bool:
        return now() - float(holder["heartbeat"]) <= LOCK_STALE_AFTER or heartbeat_moves()

    if holder["host"] != this_host:
        return beating()
    try:
        process = psutil.Process(holder["pid"])
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if holder["started"] is not None and abs(process.create_time() - holder["started"]) < 1.0:
            return True
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        pass
    return beating()
