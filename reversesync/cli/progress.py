"""Renders the progress events of a run or verify (reversesync/progress.py): a live line on a terminal, a plain
line every few seconds elsewhere, and the lines that say where a command goes and what it waits for."""

from __future__ import annotations

import threading
from typing import IO

import click

from .. import progress
from ..clock import SYSTEM, Clock
from ..outputs import closed_stream
from ..report import counted
from .console import Console


class Renderer:
    """A progress sink that prints. Safe to call from worker threads (one lock around the stream).

    interrupt_after: raise KeyboardInterrupt once this many rows are done (the demo's on-purpose Ctrl-C, taken
    exactly where a real one lands)."""

    def __init__(self, console: Console, interrupt_after: int | None = None, clock: Clock = SYSTEM) -> None:
        self.console = console
        self.interrupt_after = interrupt_after
        self.interrupted_on_purpose = False
        self.clock = clock
        self.last_line = float("-inf")
        self.settling_said = False
        self.closed: bool | None = None  # None: stdout open; False: closed, not yet told the run; True: told
        self._lock = threading.Lock()

    @property
    def stream(self) -> IO[str]:
        return self.console.human

    def __call__(self, event: progress.Event) -> None:
        self.console.journal.event(event)
        if self.interrupt_after is not None and isinstance(event, progress.Tick) and event.done >= self.interrupt_after:
            self.interrupt_after = None
            self.interrupted_on_purpose = True
            raise KeyboardInterrupt
        try:
            with self._lock:
                self._render(event)
        except OSError as exc:
            # A closed stdout stops the run as Ctrl-C does (issue #11); only the main thread may say so, a
            # worker that hit it must not fail its row. Windows calls a closed pipe EINVAL (issue #18).
            if not closed_stream(exc):
                raise
            self.closed = False
            self.console.silence_human()
        if self.closed is False and isinstance(event, progress.Tick) \
                and threading.current_thread() is threading.main_thread():
            self.closed = True
            raise BrokenPipeError("stdout was closed")

    def _render(self, event: progress.Event) -> None:
        say = self._say
        if isinstance(event, progress.RunStarted):
            say(f"Run {event.run_id} ({event.mode}): {counted(event.rows, 'row')} to check")
        elif isinstance(event, progress.Stopping):
            say("\nStopping: finishing the requests in flight (Ctrl-C again to abandon them safely)...")
        elif isinstance(event, progress.Tick):
            self._tick(event)
        elif isinstance(event, progress.SearchUnavailable):
            say(f"Search unavailable ({event.error}); reading those assets one by one.")
        elif isinstance(event, progress.UnfinishedWrites):
            holds = "holds" if event.rows == 1 else "hold"
            say(f"{counted(event.rows, 'row')} {holds} a write whose outcome is not known yet; a dry run leaves them "
                "to the next live run, which re-checks them first.")
        elif isinstance(event, progress.Settling) and not self.settling_said:
            self.settling_said = True
            say(f"Waiting {event.seconds:.0f} s before re-checking writes whose answers were lost, so that Iconik "
                "has settled (a blind re-send could duplicate them).")
        elif isinstance(event, progress.AnswerLost) and not self.settling_said:
            self.settling_said = True
            say(f"\nA write's answer was lost: it is re-checked {event.settle:g} s after it was sent, once Iconik "
                "has settled (a blind re-send could duplicate it).")
        elif isinstance(event, progress.SettleWait):
            say(f"Waiting {event.seconds:.0f} s for the last writes to settle before reading segment lists.")
        elif isinstance(event, progress.Target):
            say(f"Iconik {event.url} as {event.who}; ledger {event.ledger}")
        elif isinstance(event, progress.Resuming):
            say(f"Resuming run {event.run_id} ({event.mode}, started {event.started_at})")
        elif isinstance(event, progress.Note):
            say(event.text)
        elif isinstance(event, progress.Connecting):
            self._connecting(event)

    def _connecting(self, event: progress.Connecting) -> None:
        """The preflight waits: said once it has waited 5 s, then every 10 s (issue #17)."""
        now = self.clock.monotonic()
        if event.waiting < 5 or now - self.last_line < 10:
            return
        self.last_line = now
        self._say(f"Connecting to Iconik at {event.url}: waiting on Iconik for {event.waiting:.0f} s")

    def _say(self, line: str, nl: bool = True) -> None:
        click.echo(line, nl=nl, file=self.stream)

    def _tick(self, tick: progress.Tick) -> None:
        now = self.clock.monotonic()
        tty = _isatty(self.stream)
        if tick.total == 0:
            return  # "0 rows to check" was said; a bar of nothing, at a rate of nothing, says nothing more
        if not tick.final and (now - self.last_line < (0.2 if tty else 10)):
            return
        self.last_line = now
        # A rate over less than a second is noise (issue #17: "0/0 rows 958.8 req/s").
        rate = f"{tick.requests / tick.elapsed:5.1f} req/s" if tick.elapsed >= 1 else "   -- req/s"
        eta = (tick.elapsed / tick.done * (tick.total - tick.done)) if tick.done else 0.0
        eta = max(eta, tick.last_due) if tick.parked else eta  # parked rows wait out their settle time
        width = 30
        filled = int(width * tick.done / tick.total)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {tick.done}/{tick.total} rows  {rate}  "
                f"elapsed {_minutes(tick.elapsed)}  eta {_minutes(eta)}")
        if tick.parked:
            line += f"  {tick.parked} settling ({tick.next_due:.0f} s)"
        if tick.waiting >= 5:
            line += f"  waiting on Iconik for {tick.waiting:.0f} s"
        if tty:
            self._say("\r" + line + "  ", nl=tick.final)
        else:
            self._say(line)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _minutes(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
