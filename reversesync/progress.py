"""What a command tells the person watching it while it works: typed progress events and the sink they go to.

Everything below the CLI reports through a Sink; the CLI renders the events (cli/progress.py). Events may be
emitted from worker threads: a sink must be safe to call from any thread.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol


@dataclasses.dataclass(frozen=True)
class RunStarted:
    run_id: int
    mode: str           # "live", "dry", "undo, live", ...
    rows: int           # rows still to work in this leg
    selected: int       # rows the run selected in all


@dataclasses.dataclass(frozen=True)
class Stopping:
    """Ctrl-C (or a closed stdout): no new rows are taken; the requests in flight finish."""


@dataclasses.dataclass(frozen=True)
class Tick:
    """Where a run (or verify) stands: rows done of total, requests, and what keeps it waiting."""

    done: int
    total: int
    requests: int
    elapsed: float
    parked: int = 0         # rows waiting out a settle time
    next_due: float = 0.0   # seconds until the next of them is due
    waiting: float = 0.0    # seconds Iconik has kept every request in flight waiting for an answer
    final: bool = False
    last_due: float = 0.0   # seconds until the last parked row is due (the run cannot end before)


@dataclasses.dataclass(frozen=True)
class SearchUnavailable:
    error: str


@dataclasses.dataclass(frozen=True)
class UnfinishedWrites:
    """A dry run found rows holding a write whose outcome is unknown; it leaves them to a live run."""

    rows: int


@dataclasses.dataclass(frozen=True)
class Settling:
    """A row waits out the settle time of its write before it is re-checked."""

    key: str
    seconds: float


@dataclasses.dataclass(frozen=True)
class AnswerLost:
    key: str
    settle: float


@dataclasses.dataclass(frozen=True)
class SettleWait:
    """The command waits for the last writes whose answers were lost to settle before reading lists."""

    seconds: float


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a command goes: the Iconik it talks to, as whom, and the ledger it records in (issue #11)."""

    url: str
    who: str
    ledger: str


@dataclasses.dataclass(frozen=True)
class Resuming:
    run_id: int
    mode: str
    started_at: str


@dataclasses.dataclass(frozen=True)
class Note:
    """A line to show as it is (a ledger made private, nothing to resume, ...)."""

    text: str


@dataclasses.dataclass(frozen=True)
class Connecting:
    """The preflight's first requests are out and Iconik has not answered them for `waiting` seconds."""

    url: str
    waiting: float


@dataclasses.dataclass(frozen=True)
class Started:
    """A command that changes the ledger holds its lock from now on: the --log file is written from here."""

    command: str
    ledger: str


@dataclasses.dataclass(frozen=True)
class RowMoved:
    """A row's change, committed to the ledger: the --log file lists each one."""

    asset_key: str
    run_id: int | None
    from_state: str | None
    to_state: str
    kind: str
    detail: str | None


@dataclasses.dataclass(frozen=True)
class Drifted:
    """A sync's drift check found a segment reversesync wrote no longer as it left it."""

    asset_key: str
    reason: str
    text: str


Event = (RunStarted | Stopping | Tick | SearchUnavailable | UnfinishedWrites | Settling | AnswerLost | SettleWait
         | Target | Resuming | Note | Connecting | Started | RowMoved | Drifted)


class Sink(Protocol):
    def __call__(self, event: Event) -> None: ...


def ignore(event: Event) -> None:
    """A sink that shows nothing (a library caller, a test that does not watch)."""
