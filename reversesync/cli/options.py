"""Options more than one command takes: the ledger, Iconik's credentials (and where the token comes from), the
settle time, a run's selection and pace, --json, --patch-checked."""

from __future__ import annotations

import codecs
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .. import iconik, rules
from ..app import Credentials, Session
from ..clock import SYSTEM
from ..ledger import DEFAULT_LEDGER
from ..ledger.place import THIS_HOST
from ..types import DEFAULT_READ_TIMEOUT, DEFAULT_SETTLE, ExitStatus
from . import terminal
from .console import Console, Failure

F = TypeVar("F", bound=Callable[..., Any])


def input_error(message: str) -> Failure:
    """The input or options cannot be used; nothing was changed (exit 2)."""
    return Failure(message, int(ExitStatus.INPUT))


ALLOW_NETWORK_LEDGER = "reversesync.allow_network_ledger"  # in ctx.meta, which the group and its command share


def ledger_option(command: F, envvar: str | None = None) -> F:
    """--ledger PATH and --allow-network-ledger, accepted on the group and on every command that uses the ledger."""
    command = click.option(
        "--allow-network-ledger", is_flag=True, expose_value=False, callback=_allow_network_ledger,
        help="Allow a ledger on a network share, a network drive or under OneDrive (refused otherwise); it is then "
             "kept without WAL, and only one machine may use it at a time. Env REVERSESYNC_ALLOW_NETWORK_LEDGER.")(
        command)
    return click.option(
        "--ledger", "ledger_path", type=click.Path(dir_okay=False), default=None, envvar=envvar,
        help=f"Ledger file (SQLite). Default: ./{DEFAULT_LEDGER}; env REVERSESYNC_LEDGER. Keep it on a local disk, "
             "at one absolute path for hand runs and scheduled ones.")(command)


def _allow_network_ledger(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:  # given on the group or on the command: either allows it
        ctx.meta[ALLOW_NETWORK_LEDGER] = True


def session(ctx: click.Context, ledger_path: str | None, console: Console) -> Session:
    """The command's session: its --ledger, else the group's (or REVERSESYNC_LEDGER), and --allow-network-ledger. Its
    clock and the machine the ledger's place rules ask are the real ones unless a test hands the group others
    (`invoke(cli, args, obj={"clock": FakeClock(), "host": a fake Windows})`)."""
    given = ctx.obj or {}
    return Session(ledger_path or given.get("ledger_path"), clock=given.get("clock", SYSTEM), notes=console.note,
                   network=bool(ctx.meta.get(ALLOW_NETWORK_LEDGER)), host=given.get("host", THIS_HOST))


def json_option(command: F) -> F:
    """--json: one JSON document on stdout for scripts (keys in README); the human lines go to stderr."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON document on stdout (keys in README); the human lines go to stderr; "
                             "on an error stdout stays empty.")(command)


def patch_checked_option(command: F) -> F:
    return click.option("--patch-checked", is_flag=True,
                        help="Clear the hold on writes that a PATCH replacing other fields put (only once Iconik's "
                             "PATCH changes only what it carries again).")(command)


def iconik_options(command: F, into: str = "credentials", prompt: bool = True) -> F:
    """--iconik-url, --app-id, --auth-token-file and --no-prompt; the command receives them as one Credentials, in
    the argument `into` (`sync` takes its Google key as `credentials`). prompt=False: the command never asks for
    the token (`sync`, the job a scheduler runs).

    There is no --auth-token (issue #11): a command line is in every local user's `ps` listing. The token comes
    from --auth-token-file, ICONIK_AUTH_TOKEN or a hidden prompt on a real console, and both credentials are
    checked here, before any client is built, so that a missing one is exit 2 naming what to set."""

    @functools.wraps(command)
    def with_credentials(*args: Any, iconik_url: str, app_id: str | None, auth_token_file: str | None = None,
                         no_prompt: bool = False, **kwargs: Any) -> Any:
        if not app_id:
            token_known = bool(auth_token_file or os.environ.get(iconik.ENV_AUTH_TOKEN))
            raise input_error(_missing_app_id(token_known))
        token = resolve_auth_token(auth_token_file, prompt=prompt and not no_prompt,
                                   why_not="sync never asks for it" if not prompt
                                   else "--no-prompt: it is never asked for")
        kwargs[into] = Credentials(iconik_url, ascii_credential(app_id, "App-ID"), token)
        return command(*args, **kwargs)

    options = [
        click.option("--auth-token-file", type=click.Path(dir_okay=False), default=None,
                     help=f"File holding the Iconik Auth-Token. Default: env {iconik.ENV_AUTH_TOKEN}, else asked "
                          "for on a terminal (never on the command line)."),
        click.option("--app-id", envvar=iconik.ENV_APP_ID, default=None, show_envvar=True, help="Iconik App-ID."),
        click.option("--iconik-url", envvar=iconik.ENV_URL, default=iconik.DEFAULT_URL, show_default=True,
                     show_envvar=True, help="Iconik base URL."),
    ]
    if prompt:
        options.insert(0, click.option(
            "--no-prompt", is_flag=True, envvar="REVERSESYNC_NO_PROMPT", show_envvar=True,
            help="Never ask for the token on the terminal: exit 2 if neither the file nor the variable has it "
                 "(for scripts and scheduled tasks)."))
    for option in options:
        with_credentials = option(with_credentials)
    return with_credentials  # type: ignore[return-value]


def resolve_auth_token(auth_token_file: str | None = None, prompt: bool = True, why_not: str = "") -> str:
    """The Iconik Auth-Token: from auth_token_file if given, else ICONIK_AUTH_TOKEN, else (if prompt) a hidden
    prompt when a person is at a real console. Without any of them: exit 2 naming ICONIK_AUTH_TOKEN and
    --auth-token-file."""
    if auth_token_file:
        return ascii_credential(_token_from_file(auth_token_file), "Auth-Token")
    token = os.environ.get(iconik.ENV_AUTH_TOKEN, "").strip()
    if token:
        return ascii_credential(token, "Auth-Token")
    if prompt and stdin_is_terminal():
        return ascii_credential(_token_from_prompt(), "Auth-Token")
    how = why_not if not prompt else "on a terminal it is asked for"
    raise input_error(f"no Iconik Auth-Token: set {iconik.ENV_AUTH_TOKEN} or give --auth-token-file FILE ({how}).")


def ascii_credential(value: str, name: str) -> str:
    """Iconik's App-IDs and tokens are ASCII; a character typed with a Korean IME left on would go out as an odd
    header and come back as a bare 401 (issue #18). Said without showing the value."""
    if not value.isascii():
        where = next(n for n, ch in enumerate(value, start=1) if not ch.isascii())
        raise input_error(f"the Iconik {name} holds a non-ASCII character (at position {where}): Iconik's are "
                          "letters, digits and dashes only. Was it typed with a Korean input mode on? Type or paste "
                          "it again in English mode.")
    return value


def stdin_is_terminal() -> bool:
    """A person at a real console: stdin and stderr (where the prompt goes) both consoles (issue #18)."""
    return terminal.is_console(sys.stdin) and terminal.is_console(sys.stderr)


def _missing_app_id(token_known: bool) -> str:
    if token_known:
        return f"no Iconik App-ID: set {iconik.ENV_APP_ID} or give --app-id ID."
    return (f"no Iconik credentials: set {iconik.ENV_APP_ID} and {iconik.ENV_AUTH_TOKEN}, or give --app-id ID and "
            "--auth-token-file FILE.")


def _token_from_prompt() -> str:
    try:
        token = str(click.prompt("Iconik Auth-Token", hide_input=True, err=True)).strip()
    except click.Abort:
        click.echo("\nInterrupted.", err=True)
        raise click.exceptions.Exit(int(ExitStatus.INTERRUPTED)) from None
    if not token:
        raise input_error("no Iconik Auth-Token was typed.")
    return token


def _token_from_file(path: str) -> str:
    try:
        with open(path, "rb") as raw:
            data = raw.read()
        # Notepad may start the file with a UTF-8 BOM; Windows PowerShell 5.1's `"..." > token.txt` writes UTF-16
        # with its BOM (issue #18).
        text = data.decode("utf-16") if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) \
            else data.decode("utf-8-sig")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
    except FileNotFoundError:
        raise input_error(f"the token file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise input_error(f"the token file {path} is neither UTF-8 nor UTF-16 text; put only the Auth-Token in it "
                          "(Notepad: save as UTF-8).") from None
    except OSError as exc:
        raise input_error(f"cannot read the token file {path}: {exc.strerror}.") from None
    if not lines:
        raise input_error(f"the token file {path} is empty; put the Auth-Token in it.")
    if len(lines) > 1:
        raise input_error(f"the token file {path} holds {len(lines)} lines; put only the Auth-Token in it.")
    if os.name == "posix" and os.stat(path).st_mode & 0o077:
        click.echo(f"note: the token file {path} is readable by other users; make it private: chmod 600 {path}",
                   err=True)
    return lines[0]


def settle_options(command: F) -> F:
    """--settle and --read-timeout: how long a write whose answer was lost is left to settle (issue #10)."""
    command = click.option("--read-timeout", type=click.FloatRange(0.1), default=DEFAULT_READ_TIMEOUT,
                           show_default=True, help="Seconds to wait for an answer from Iconik.")(command)
    return click.option("--settle", type=click.FloatRange(0), default=DEFAULT_SETTLE, show_default=True,
                        help="Seconds after a write whose answer was lost before it is re-checked, and before "
                             "segment lists are trusted (see README).")(command)


def check_settle(settle: float, read_timeout: float) -> None:
    """A command that writes needs a settle time longer than the read timeout; 0 too is refused (issue #15): it
    would re-send a write whose answer was lost at once."""
    if settle <= read_timeout:
        raise click.BadParameter(f"must be longer than --read-timeout ({read_timeout:g} s): a write can still land "
                                 "after the client stops waiting for its answer", param_hint="--settle")


def asset_ids(values: Sequence[str]) -> tuple[str, ...]:
    """--asset values as canonical asset ids, or a usage error naming the one that is not a UUID."""
    canonical = []
    for value in values:
        key = rules.canonical_uuid(value)
        if key is None:
            raise click.BadParameter(f"{value!r} is not an Iconik asset id (a UUID)", param_hint="--asset")
        canonical.append(key)
    return tuple(canonical)


def known_reasons() -> list[str]:
    return sorted(set(rules.RETRYABLE_REASONS) | set(rules.FINISHED_REASONS))
