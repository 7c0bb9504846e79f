"""Where a command's output goes, and how it ends: one Console per command, and one place that turns any of
reversesync's errors into its exit status and one line (issue #16).

Human lines go to stdout, or to stderr with --json so that stdout holds the JSON document alone; notes and
errors go to stderr. Tests and callers swap the streams by giving a Console others, never by swapping sys.stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from .. import errors
from ..types import ExitStatus, Json

JSON_VERSION = 1


class Failure(click.ClickException):
    """A command ended on one of reversesync's errors: "Error: <what and what to do>" and its exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        # click declares exit_code on the class but reads it from the instance, as here.
        self.exit_code = exit_code  # type: ignore[misc]


class Console:
    """A command's streams: human lines, the data it outputs, notes and errors."""

    def __init__(self, as_json: bool = False, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.human = self.stderr if as_json else self.stdout
        self.document: Json = {}

    def say(self, line: str = "") -> None:
        """A line for the person running the command."""
        click.echo(line, file=self.human)

    def note(self, line: str) -> None:
        """A line about the command's circumstances (a ledger made private), on stderr."""
        _quietly(lambda: click.echo(line, file=self.stderr))

    def record(self, **fields: Any) -> None:
        """What a --json command prints at its end; a no-op without --json."""
        if self.as_json:
            self.document.update(fields)

    def finish(self) -> None:
        """Print the recorded document alone on stdout (none if the command recorded none)."""
        if self.as_json and self.document:
            click.echo(json.dumps({"version": JSON_VERSION, **self.document}, indent=2, ensure_ascii=False),
                       file=self.stdout)

    def silence_stdout(self) -> None:
        """The reader of stdout has gone away (`run --live | head -2`): what is printed from now on goes nowhere,
        and the interpreter's last flush at exit does not complain either."""
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        quiet = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (stands in for stdout until exit)
        if self.human is self.stdout:
            self.human = quiet
        self.stdout = quiet
        sys.stdout = quiet


@contextlib.contextmanager
def reported(console: Console) -> Iterator[None]:
    """Run a command's body: reversesync's errors end it with their exit status and one line on stderr; an
    interruption says how to continue, without 'Error:'."""
    try:
        yield
    except errors.Interrupted as interrupted:
        console.note(str(interrupted))
        raise click.exceptions.Exit(int(ExitStatus.INTERRUPTED)) from None
    except errors.ReverseSyncError as exc:
        raise Failure(str(exc), int(errors.exit_status(exc))) from None
    except (KeyboardInterrupt, BrokenPipeError):
        raise click.exceptions.Exit(int(ExitStatus.INTERRUPTED)) from None


def _quietly(write: Any) -> None:
    try:
        write()
    except (BrokenPipeError, OSError, ValueError):
        pass
