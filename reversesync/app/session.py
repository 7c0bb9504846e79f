"""Where a command works: the ledger it was pointed at, how to say a next step on it, and the Iconik it talks to.

Every command line printed as a next step (`continue with: ...`) carries the ledger the user gave, so that it
works as printed (issue #11)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

from .. import errors, progress
from ..clock import SYSTEM, Clock
from ..iconik import IconikClient
from ..ledger import DEFAULT_LEDGER, Event, Ledger, place
from ..types import RunOptions


@dataclasses.dataclass(frozen=True)
class Credentials:
    """The Iconik to talk to, and as whom (the token never leaves this object but for the request headers)."""

    url: str
    app_id: str
    auth_token: str = dataclasses.field(repr=False)


class Session:
    """One command's place: the ledger path as given (--ledger or REVERSESYNC_LEDGER; None for the default), the
    clock, and where the lines the ledger has for a person go (notes: a ledger made private). network: the user
    allows a ledger off a local disk (--allow-network-ledger); host: the machine the place rules ask."""

    def __init__(self, ledger_path: str | None, *, clock: Clock = SYSTEM,
                 notes: Callable[[str], None] = lambda text: None, network: bool = False,
                 host: place.Host = place.THIS_HOST) -> None:
        self.given = ledger_path
        self.path = os.path.abspath(ledger_path or DEFAULT_LEDGER)
        self.clock = clock
        self.notes = notes
        self.network = network
        self.host = host

    def hint(self, *words: object, here: bool = False) -> str:
        """A command line the user can paste as printed: `reversesync [--ledger PATH] words...`; here=True names
        the ledger even when the user gave none."""
        path = self.path if here else self.given
        parts = ["reversesync"]
        if path:
            parts += ["--ledger", quoted(os.path.abspath(path))]
        return " ".join(parts + [quoted(str(word)) for word in words])

    def open_ledger(self, *, create: bool = False, readonly: bool = False) -> Ledger:
        """The ledger the command was pointed at, or an error saying why it cannot be used (issue #11).

        Only `load` passes create=True; every other command refuses a path with no ledger. readonly=True opens
        it without writing anything (report, runs, history), so a read-only or archived copy works."""
        load = f"{self.hint('load', '--csv', 'FILE')}' (or --sheet SPREADSHEET_ID"
        if not self.given or not os.path.isabs(self.given):
            # A ledger the working folder placed: not in C:\Windows\System32, where a scheduled task starts (issue
            # #18). An absolute --ledger is the user's own choice, wherever it is.
            place.check_default_place(self.path, self.host)
        try:
            ledger = Ledger(self.path, create=create, readonly=readonly, network=self.network, host=self.host)
        except errors.LedgerMissing as exc:
            # `load` alone is a usage error: the step must say what it reads (issue #17).
            raise errors.LedgerMissing(f"{exc}; run '{self.hint('load', '--csv', 'FILE')}' (or --sheet "
                                       "SPREADSHEET_ID) first.") from None
        except errors.LedgerNeedsUpgrade as exc:
            raise errors.LedgerNeedsUpgrade(f"{exc}; load the sheet into it once with '{load}) to upgrade it (that "
                                            "writes to it). It was not changed.") from None
        for note in ledger.notes:
            self.notes(note)
        return ledger

    def client(self, credentials: Credentials, options: RunOptions) -> IconikClient:
        return IconikClient(credentials.url, credentials.app_id, credentials.auth_token, rate=options.rate,
                            workers=options.workers, timeout=(5.0, options.read_timeout), clock=self.clock)


def holding(ledger: Ledger, command: str, sink: progress.Sink) -> None:
    """The command now holds the ledger's lock: say so (the --log journal opens only now, issue #17), and tell the
    sink of every row change the ledger commits from here on."""
    sink(progress.Started(command, ledger.path))

    def told(events: Sequence[Event]) -> None:
        for key, run_id, before, after, _, kind, detail in events:
            sink(progress.RowMoved(key, run_id, before, after, kind, detail))

    ledger.observe(told)


def quoted(word: str) -> str:
    # Double quotes work in POSIX shells, cmd and PowerShell alike for the paths and words we print.
    return f'"{word}"' if not word or any(ch in word for ch in " \t'&;|()<>$`") else word


