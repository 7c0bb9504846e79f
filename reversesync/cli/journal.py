"""--log FILE (or REVERSESYNC_LOG): what a command did, appended as timestamped lines through `logging` (issue #17).

The journal opens its file only once the command holds the ledger's lock (the app's progress.Started): a second
process refused the lock writes nothing, so two commands never interleave their lines. Then it writes the start,
the target, each row's change (asset, from -> to, what), the summary lines the console prints, and the exit.
Nothing secret reaches it: the lines are reversesync's own, and no option carries a token.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading

from .. import __version__, progress


class _Stamped(logging.Formatter):
    """Local time with its UTC offset, to the millisecond: a night's log reads in the scheduler's own time zone."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        return datetime.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class Journal:
    """One command's --log file; every method is a no-op without --log or before the lock is held."""

    def __init__(self, path: str | None) -> None:
        self.path = os.path.abspath(path) if path else None
        self._logger: logging.Logger | None = None
        self._handler: logging.Handler | None = None
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return self._logger is not None

    def event(self, event: progress.Event) -> None:
        if isinstance(event, progress.Started):
            self._start(event)
        elif isinstance(event, progress.Target):
            self.line(f"target: Iconik {event.url} as {event.who}")
        elif isinstance(event, progress.RunStarted):
            self.line(f"run {event.run_id} ({event.mode}): {event.rows} to check")
        elif isinstance(event, progress.RowMoved):
            run = f" (run {event.run_id})" if event.run_id is not None else ""
            self.line(f"row {event.asset_key}: {event.from_state or '-'} -> {event.to_state}{run}: {event.kind}"
                      + (f", {event.detail}" if event.detail else ""))
        elif isinstance(event, progress.Drifted):
            self.line(f"drift {event.asset_key}: {event.reason}: {event.text}")

    def line(self, text: str) -> None:
        if self._logger is not None:
            for part in text.strip("\n").splitlines() or [""]:
                self._logger.info(part)

    def finish(self, exit_status: int, message: str | None = None) -> None:
        """The exit line, then the file is closed."""
        if self._logger is None:
            return
        self.line(f"exit {exit_status}" + (f": {message}" if message else ""))
        with self._lock:
            if self._handler is not None:
                self._logger.removeHandler(self._handler)
                self._handler.close()
            self._logger = self._handler = None

    def _start(self, event: progress.Started) -> None:
        with self._lock:
            if self.path is None or self._logger is not None:
                return
            handler = logging.FileHandler(self.path, mode="a", encoding="utf-8")
            handler.setFormatter(_Stamped("%(asctime)s %(message)s"))
            logger = logging.getLogger(f"reversesync.journal.{id(self)}")
            logger.propagate = False
            logger.setLevel(logging.INFO)
            logger.addHandler(handler)
            self._logger, self._handler = logger, handler
        self.line(f"start: reversesync {__version__} {event.command} (pid {os.getpid()}); ledger {event.ledger}")
