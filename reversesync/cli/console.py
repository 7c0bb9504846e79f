"""Where a command's output goes, and how it ends: one Console per command, and one place that turns any of
reversesync's errors into its exit status and one line (issue #16).

Streams (issue #17, a change from 0.2): what a command says about its work (progress, summaries, next steps, notes,
errors) goes to stderr; what a command was asked to output goes to stdout: CSV and JSON, and the tables of the
commands that only read (report, runs, history). A scheduler can then keep the data and log the rest. Every line
said also goes to the --log journal once the command holds the ledger's lock. Tests and callers swap the streams
by giving a Console others, never by swapping sys.stdout.

Issue #18 (Windows): a reader that went away is a BrokenPipeError wherever a stream is written here, although
Windows raises OSError(EINVAL) for a closed pipe; a stream the interpreter does not have (pythonw.exe: sys.stdout
and sys.stderr are None) takes the lines and shows none; JSON is ASCII (\\uXXXX escapes), which no re-encoding by
PowerShell 5.1 can mangle.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

import click

from .. import errors
from ..outputs import reraise_closed
from ..types import ExitStatus, Json
from .journal import Journal

# 2 (issue #17): runs --json gives numbers as numbers and counts as objects; report --json carries the version.
JSON_VERSION = 2


class Failure(click.ClickException):
    """A command ended on one of reversesync's errors: "Error: <what and what to do>" and its exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        # click declares exit_code on the class but reads it from the instance, as here.
        self.exit_code = exit_code  # type: ignore[misc]


class Console:
    """A command's streams: human lines, the data it outputs, notes and errors, and its --log journal."""

    def __init__(self, as_json: bool = False, stdout: IO[str] | None = None, stderr: IO[str] | None = None,
                 journal: Journal | None = None) -> None:
        self.as_json = as_json
        self.stdout = _present(stdout if stdout is not None else sys.stdout)
        self.stderr = _present(stderr if stderr is not None else sys.stderr)
        self.human = self.stderr
        self.document: Json = {}
        self.journal = journal or _journal_of_this_command()

    def say(self, line: str = "") -> None:
        """A line for the person running the command (stderr)."""
        self.journal.line(line)
        written(lambda: click.echo(line, file=self.human))

    def out(self, line: str = "") -> None:
        """A line of what the command was asked to output (stdout): a read command's table."""
        written(lambda: click.echo(line, file=self.stdout))

    def note(self, line: str) -> None:
        """A line about the command's circumstances (a ledger made private), on stderr."""
        _quietly(lambda: click.echo(line, file=self.stderr))
        self.journal.line(line)

    def record(self, **fields: Any) -> None:
        """What a --json command prints at its end; a no-op without --json."""
        if self.as_json:
            self.document.update(fields)

    def finish(self) -> None:
        """Print the recorded document alone on stdout (none if the command recorded none)."""
        if self.as_json and self.document:
            # ASCII (issue #18): Windows PowerShell 5.1 re-encodes what it pipes or redirects; \uXXXX survives it.
            document = json.dumps({"version": JSON_VERSION, **self.document}, indent=2, ensure_ascii=True)
            written(lambda: click.echo(document, file=self.stdout))

    def silence_human(self) -> None:
        """The reader of the human lines has gone away (`run --live 2>&1 | head -2`): what is said from now on goes
        nowhere, and the interpreter's last flush at exit does not complain either."""
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.human.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        quiet = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (stands in for the stream until exit)
        if self.human is sys.stderr:
            sys.stderr = quiet
        if self.stderr is self.human:
            self.stderr = quiet
        self.human = quiet


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


def _journal_of_this_command() -> Journal:
    """The journal the group opened for this command (--log), or one that writes nothing."""
    context = click.get_current_context(silent=True)
    found = (context.find_object(dict) or {}).get("journal") if context is not None else None
    return found if isinstance(found, Journal) else Journal(None)


def written(write: Callable[[], Any]) -> None:
    """Do one write to a stream: a reader that went away is a BrokenPipeError on every platform (Windows says
    OSError(EINVAL) for a closed pipe, issue #18), which callers stop on as on Ctrl-C."""
    try:
        write()
    except OSError as exc:
        reraise_closed(exc)


def _quietly(write: Callable[[], Any]) -> None:
    try:
        write()
    except (OSError, ValueError):  # BrokenPipeError and Windows' EINVAL for a closed pipe among them
        pass


class _Nowhere(io.StringIO):
    """The stream of an interpreter that has none (pythonw.exe, a service: sys.stdout is None): it takes every
    line and keeps none."""

    def write(self, text: str) -> int:
        return len(text)


def _present(stream: IO[str] | None) -> IO[str]:
    return stream if stream is not None else _Nowhere()

