"""The reversesync command line. This module parses options and prints; the work happens elsewhere."""

import codecs
import collections
import contextlib
import csv
import dataclasses
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from importlib import resources

import click
from click.core import ParameterSource

from . import __version__, engine, errors, iconik, outputs, report, rules, sources
from . import sandbox as sandbox_module
from . import verify as verify_module
from . import undo as undo_module
from .ledger import DEFAULT_LEDGER, STATES, Ledger, LedgerMissing, LedgerNeedsUpgrade

EXIT_FAILED_ROWS, EXIT_INPUT, EXIT_RESUMABLE, EXIT_INTERRUPTED = 1, 2, 3, 130


class InputFailure(click.ClickException):
    """The input or options cannot be used; nothing was changed (exit 2)."""

    exit_code = EXIT_INPUT


class ResumableAbort(click.ClickException):
    """Stopped before finishing for a reason outside the data; fix it and resume (exit 3)."""

    exit_code = EXIT_RESUMABLE


@contextlib.contextmanager
def translated_errors():
    """Turn reversesync's exceptions into ClickExceptions with the documented exit codes."""
    try:
        yield
    except (errors.LedgerLocked, errors.AuthError, errors.LedgerUnavailable, errors.LockLost) as exc:
        raise ResumableAbort(str(exc)) from None
    except (errors.InputError, errors.LedgerError, errors.ConfigError) as exc:
        raise InputFailure(str(exc)) from None


def ledger_option(command, envvar=None):
    """--ledger PATH, accepted on the group and on every command that uses the ledger."""
    return click.option(
        "--ledger", "ledger_path", type=click.Path(dir_okay=False), default=None, envvar=envvar,
        help=f"Ledger file (SQLite). Default: ./{DEFAULT_LEDGER}; env REVERSESYNC_LEDGER.")(command)


def group_ledger_option(command):
    """The group's --ledger also reads REVERSESYNC_LEDGER; the commands' do not, so that an explicit
    --ledger, before or after the command name, beats the environment."""
    return ledger_option(command, envvar="REVERSESYNC_LEDGER")


def _ledger_path(ctx, ledger_path):
    return ledger_path or (ctx.obj or {}).get("ledger_path") or DEFAULT_LEDGER


def next_step(ctx, *words, ledger_path=None):
    """A command line the user can paste as printed: `reversesync [--ledger PATH] words...`.

    The --ledger given on the group or on the command (or taken from REVERSESYNC_LEDGER) is carried along,
    so that following a hint works on the same ledger (issue #11)."""
    path = ledger_path or (ctx.obj or {}).get("ledger_path") if ctx is not None else ledger_path
    parts = ["reversesync"]
    if path:
        parts += ["--ledger", _quoted(os.path.abspath(path))]
    return " ".join(parts + [_quoted(str(word)) for word in words])


def _quoted(word):
    # Double quotes work in POSIX shells, cmd and PowerShell alike for the paths and words we print.
    return f'"{word}"' if not word or any(ch in word for ch in " \t'&;|()<>$`") else word


def open_ledger(ctx, ledger_path, create=False, readonly=False):
    """The ledger the command was pointed at, or exit 2 saying why it cannot be used (issue #11).

    Only `load` passes create=True; every other command refuses a path with no ledger. readonly=True opens it
    without writing anything (report, runs, history), so a read-only or archived copy works."""
    load = next_step(ctx, "load", ledger_path=ledger_path)
    with translated_errors():
        try:
            ledger = Ledger(_ledger_path(ctx, ledger_path), create=create, readonly=readonly)
        except LedgerMissing as exc:
            raise InputFailure(f"{exc}; run '{load}' first.") from None
        except LedgerNeedsUpgrade as exc:
            raise InputFailure(f"{exc}; load the sheet into it once with '{load}' to upgrade it (that writes "
                               "to it). It was not changed.") from None
    for note in ledger.notes:
        click.echo(note, err=True)
    return ledger


def example_sheet_path():
    """The bundled example sheet: about 300 rows with every case the tool handles."""
    return str(resources.files("reversesync.examples").joinpath("example_sheet.csv"))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reversesync")
@group_ledger_option
@click.pass_context
def cli(ctx, ledger_path):
    """Put lost timecodes from the GGmetadata sheet back into Iconik, exactly once.

    \b
    Example:
        reversesync load --csv sheet.csv && reversesync run && reversesync run --live
    """
    ensure_utf8_output()
    ctx.ensure_object(dict)
    ctx.obj["ledger_path"] = ledger_path


def ensure_utf8_output(streams=("stdout", "stderr")):
    """Write UTF-8 whatever the console's code page (issue #11).

    On Windows a redirected stdout (`reversesync report --csv - > x.csv`, a pipe) defaults to the ANSI code
    page, cp1252 or cp949, which cannot encode every title and would end in a UnicodeEncodeError. A stream
    that cannot be reconfigured (a test's capture, an odd wrapper) is left as it is."""
    for name in streams:
        stream = getattr(sys, name, None)
        try:
            if codecs.lookup(stream.encoding).name == "utf-8":
                continue
            stream.reconfigure(encoding="utf-8")
        except (AttributeError, LookupError, TypeError, ValueError, OSError):
            continue


@cli.command()
@click.option("--sheet", "spreadsheet_id", metavar="SPREADSHEET_ID", help="Google spreadsheet id to read.")
@click.option("--worksheet", default=sources.DEFAULT_WORKSHEET, show_default=True, help="Tab to read (with --sheet).")
@click.option("--credentials", type=click.Path(dir_okay=False), default=None,
              help="Service-account key (JSON), with --sheet. Default: env GOOGLE_APPLICATION_CREDENTIALS.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="A CSV export of the tab instead.")
@click.option("--example", is_flag=True, help="Load the bundled example sheet (about 300 rows).")
@click.option("--allow-shrink", is_flag=True,
              help="Load even if more than half of the ledger's assets would leave the source.")
@ledger_option
@click.pass_context
def load(ctx, spreadsheet_id, worksheet, credentials, csv_path, example, allow_shrink, ledger_path):
    """Read the sheet into the ledger (creating it): new rows become pending, changed rows go back to pending.

    Rejected rows are kept as skipped with a reason; rows already finished stay finished. A source with no
    data rows is refused, and so is one that would take more than half of the ledger's assets out of the
    source (a wrong tab or file), unless --allow-shrink is given.

    \b
    Example:
        reversesync load --sheet 1pUMPKe... --credentials key.json
        reversesync load --csv GGmetadata_and_timestamps.csv
    """
    words = _load_words(ctx, spreadsheet_id, worksheet, credentials, csv_path, example)
    records, where = _read_source(spreadsheet_id, worksheet, credentials, csv_path)
    if not records:
        raise InputFailure(f"{where} has a header but no data rows; nothing was loaded. Check that it is the "
                           "right tab or file.")
    ledger = open_ledger(ctx, ledger_path, create=True)
    try:
        with translated_errors():
            ledger.acquire("load")
            _refuse_a_shrink(ctx, ledger, records, where, allow_shrink, words + ["--allow-shrink"], ledger_path)
            counts = ledger.load(records)
    finally:
        ledger.release()
        ledger.close()
    rejected = counts["rejected"]
    rows_read = sum(len(record.row_numbers) for record in records)
    click.echo(f"Loaded {rows_read} rows from {where} into {ledger.path}")
    click.echo(f"  assets: {counts['new']} new, {counts['changed']} changed, {counts['unchanged']} unchanged, "
               f"{counts['removed']} removed from the source")
    if rejected:
        detail = ", ".join(f"{reason} {n}" for reason, n in sorted(rejected.items()))
        hint = next_step(ctx, "report", "--state", "skipped", "--csv", "-", ledger_path=ledger_path)
        click.echo(f"  rejected (skipped): {sum(rejected.values())} ({detail}); see: {hint}")


def _given(ctx, name):
    """Whether the user typed the option (a default, or a value passed by ctx.invoke, is not typed)."""
    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def _load_words(ctx, spreadsheet_id, worksheet, credentials, csv_path, example):
    """The load command as typed, to repeat in a hint; usage errors for options the source would ignore."""
    chosen = [flag for flag, value in (("--sheet", spreadsheet_id), ("--csv", csv_path), ("--example", example))
              if value]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --sheet SPREADSHEET_ID, --csv FILE or --example.")
    if not spreadsheet_id:
        # Issue #11: an option that is silently ignored makes the user believe it did something.
        for name, flag in (("worksheet", "--worksheet"), ("credentials", "--credentials")):
            if _given(ctx, name):
                raise click.UsageError(f"{flag} goes with --sheet; {chosen[0]} reads no Google tab.")
        return ["load", "--csv", os.path.abspath(csv_path)] if csv_path else ["load", "--example"]
    words = ["load", "--sheet", spreadsheet_id]
    if worksheet != sources.DEFAULT_WORKSHEET:
        words += ["--worksheet", worksheet]
    return words + (["--credentials", os.path.abspath(credentials)] if credentials else [])


def _read_source(spreadsheet_id, worksheet, credentials, csv_path):
    """The source's checked records, and how to name the source."""
    with translated_errors():
        try:
            if spreadsheet_id:
                header, rows = sources.read_google_sheet(spreadsheet_id, worksheet, credentials)
                where = f"spreadsheet {spreadsheet_id}, tab {worksheet}"
            else:
                where = csv_path or example_sheet_path()
                header, rows = sources.read_csv(where)
            return sources.records_from_table(header, rows), where
        except sources.GoogleUnreachable as exc:
            raise ResumableAbort(str(exc)) from None


def _refuse_a_shrink(ctx, ledger, records, where, allow_shrink, words, ledger_path):
    """Refuse a load that would take more than half of the ledger's assets out of the source (issue #11):
    that is a wrong tab, a truncated export or `load --example` on a real ledger, not a smaller sheet."""
    before = ledger.keys_in_source()
    leaving = len(before - {record.key for record in records})
    if allow_shrink or leaving * 2 <= len(before):
        return
    raise InputFailure(f"{where} would take {leaving} of the ledger's {len(before)} assets out of the source "
                       "(more than half); nothing was loaded. If it is the right source, load it with: "
                       f"{next_step(ctx, *words, ledger_path=ledger_path)}")


@cli.command("report")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write one line per asset to FILE ('-' for standard output).")
@click.option("--state", type=click.Choice(STATES), help="Only assets in this state (with --csv).")
@click.option("--json", "as_json", is_flag=True, help="Counts and success bars as JSON, for scripts.")
@click.option("--sync-log", is_flag=True, help="Append finished live runs to the spreadsheet's Sync_Log tab.")
@click.option("--to-sheet", is_flag=True,
              help="Write one row per asset into a tab of the spreadsheet (--tab), replacing what it held.")
@click.option("--tab", metavar="NAME", default=sources.STATUS_TAB, show_default=True,
              help="Tab for --to-sheet; added if missing. Never the data tab or Sync_Log.")
@click.option("--sheet", "spreadsheet_id", metavar="SPREADSHEET_ID", help="Spreadsheet for --sync-log or --to-sheet.")
@click.option("--credentials", type=click.Path(dir_okay=False), default=None,
              help="Service-account key with write access (--sync-log, --to-sheet). Default: "
                   "GOOGLE_APPLICATION_CREDENTIALS.")
@ledger_option
@click.pass_context
def report_command(ctx, csv_path, state, as_json, sync_log, to_sheet, tab, spreadsheet_id, credentials, ledger_path):
    """Show what the ledger holds: counts by state and reason and the PRD's success bars, or every asset as CSV.

    Only reads the ledger (it works on a read-only or archived copy), except --sync-log, which records what
    it appended. A CSV file starts with a byte-order mark so that Excel shows Korean titles; --csv - does not.

    --to-sheet puts each asset's state, reason and reason text into the spreadsheet's reversesync_status tab
    (or --tab), for the people who fix the sheet: it needs the key shared as Editor, and replaces the tab's
    rows each time.

    \b
    Example:
        reversesync report
        reversesync report --csv report.csv --state failed
        reversesync report --sync-log --sheet 1pUMPKe... --credentials key.json
        reversesync report --to-sheet --sheet 1pUMPKe... --credentials key.json
    """
    _check_report_options(csv_path, state, as_json, sync_log, spreadsheet_id, credentials, to_sheet)
    _check_status_tab_options(ctx, to_sheet, tab)
    if csv_path:
        outputs.check_output_path(csv_path)
    ledger = open_ledger(ctx, ledger_path, readonly=not sync_log)
    try:
        if sync_log:
            return _append_sync_log(ctx, ledger, spreadsheet_id, credentials, ledger_path)
        if to_sheet:
            return _write_status_tab(ctx, ledger, spreadsheet_id, tab, credentials, ledger_path)
        if csv_path:
            with outputs.private_output(csv_path, bom=True) as handle:
                count = report.write_csv(ledger, handle, state)
            if csv_path != outputs.STDOUT:
                click.echo(f"Wrote {count} assets to {csv_path}", err=True)
            return
        if as_json:
            by_state, by_reason = ledger.counts()
            click.echo(json.dumps({
                "ledger": ledger.path, "by_state": by_state,
                "by_reason": [{"state": s, "reason": r, "assets": n} for (s, r), n in sorted(
                    by_reason.items(), key=lambda item: (item[0][0], item[0][1] or "")) if r],
                "success_bars": report.success_bars(ledger)}, indent=2))
            return
        for line in report.summary_lines(ledger) + [""] + report.bars_lines(report.success_bars(ledger)):
            click.echo(line)
    finally:
        ledger.close()


def _check_status_tab_options(ctx, to_sheet, tab):
    """--tab goes with --to-sheet, and never names the data tab or Sync_Log (issue #12)."""
    if not to_sheet:
        if _given(ctx, "tab"):
            raise click.UsageError("--tab goes with --to-sheet.")
        return
    if not tab.strip():
        raise click.UsageError("--tab needs a tab name.")
    if sources.is_protected_tab(tab):
        raise click.UsageError(f"--tab {tab!r} names a tab reversesync never writes (the data tab "
                               f"{sources.DEFAULT_WORKSHEET} and {sources.SYNC_LOG_TAB} are the team's); give "
                               f"another, such as the default {sources.STATUS_TAB}.")


def _write_status_tab(ctx, ledger, spreadsheet_id, tab, credentials, ledger_path):
    """report --to-sheet: the ledger's rows into the status tab, replacing what it held (issue #12)."""
    values = report.status_rows(ledger)
    if len(values) == 1:
        load = next_step(ctx, "load", ledger_path=ledger_path)
        raise InputFailure(f"the ledger holds no asset of the sheet; run '{load}' first.")
    with translated_errors():
        try:
            properties = sources.write_status_tab(spreadsheet_id, tab, values, credentials)
        except sources.GoogleUnreachable as exc:
            raise ResumableAbort(str(exc)) from None
    click.echo(f"Wrote {len(values) - 1} assets to tab {properties['title']!r}: "
               f"https://docs.google.com/spreadsheets/d/{spreadsheet_id}/edit#gid={properties['sheetId']}")


def _check_report_options(csv_path, state, as_json, sync_log, spreadsheet_id, credentials, to_sheet=False):
    """Usage errors for combinations whose options would be silently ignored (issue #11)."""
    if sync_log and to_sheet:
        raise click.UsageError("--sync-log and --to-sheet write two different tabs; give one of them.")
    if sync_log or to_sheet:
        flag, does = ("--sync-log", "only appends to the Sync_Log tab") if sync_log else (
            "--to-sheet", "only writes the status tab")
        if not spreadsheet_id:
            raise click.UsageError(f"{flag} needs --sheet SPREADSHEET_ID.")
        if csv_path or state or as_json:
            raise click.UsageError(f"{flag} {does}; give --csv, --state or --json in another report command.")
        return
    if spreadsheet_id or credentials:
        raise click.UsageError("--sheet and --credentials go with --sync-log.")
    if as_json and csv_path:
        raise click.UsageError("--json and --csv are two outputs; give one of them.")
    if state and not csv_path:
        raise click.UsageError("--state filters the --csv listing; add --csv FILE (or --csv - for the screen).")


def _append_sync_log(ctx, ledger, spreadsheet_id, credentials, ledger_path):
    entries = []
    for run in ledger.query("select * from runs where mode = 'live' and status = 'finished' order by id"):
        counts = json.loads(run["counts"] or "{}")
        failed = sum(n for key, n in counts.items() if key.startswith("failed"))
        entries.append({
            "Sync_ID": f"rs-{run['started_at'][:19].replace('-', '').replace(':', '')}-{run['id']}",
            "Sync_Type": "reverse_timecode", "Started_At": run["started_at"], "Completed_At": run["finished_at"],
            "Assets_New": counts.get("created/create", 0), "Assets_Updated": counts.get("updated/update", 0),
            "Status": f"finished, {failed} failed" if failed else "finished",
        })
    if not entries:
        live_run = next_step(ctx, "run", "--live", ledger_path=ledger_path)
        raise InputFailure(f"no finished live run to log; run '{live_run}' first.")
    with translated_errors():
        try:
            appended, present = sources.append_sync_log(spreadsheet_id, entries, credentials)
        except sources.GoogleUnreachable as exc:
            raise ResumableAbort(str(exc)) from None
    ledger.mark_sync_logged({e["Sync_ID"]: int(e["Sync_ID"].rsplit("-", 1)[1]) for e in entries
                             if e["Sync_ID"] in appended + present})
    if appended:
        click.echo(f"Appended to Sync_Log: {', '.join(appended)}")
    if present:
        click.echo(f"Already in Sync_Log, not appended again: {', '.join(present)}")


def iconik_options(command):
    """--iconik-url, --app-id and --auth-token-file; the command still receives iconik_url, app_id, auth_token.

    There is no --auth-token (issue #11): a command line is in every local user's `ps` listing. The token is
    resolved by resolve_auth_token() from --auth-token-file, ICONIK_AUTH_TOKEN or a hidden prompt on a
    terminal, and both credentials are checked here, before any client is built, so that a missing one is
    exit 2 naming what to set."""

    @functools.wraps(command)
    def with_credentials(*args, auth_token_file=None, **kwargs):
        if not kwargs.get("app_id"):
            token_known = bool(auth_token_file or os.environ.get(iconik.ENV_AUTH_TOKEN))
            raise InputFailure(_missing_app_id(token_known))
        kwargs["auth_token"] = resolve_auth_token(auth_token_file)
        return command(*args, **kwargs)

    for option in (
        click.option("--auth-token-file", type=click.Path(dir_okay=False), default=None,
                     help=f"File holding the Iconik Auth-Token. Default: env {iconik.ENV_AUTH_TOKEN}, else asked "
                          "for on a terminal (never on the command line)."),
        click.option("--app-id", envvar=iconik.ENV_APP_ID, default=None, show_envvar=True, help="Iconik App-ID."),
        click.option("--iconik-url", envvar=iconik.ENV_URL, default=iconik.DEFAULT_URL, show_default=True,
                     show_envvar=True, help="Iconik base URL."),
    ):
        with_credentials = option(with_credentials)
    return with_credentials


def resolve_auth_token(auth_token_file=None):
    """The Iconik Auth-Token: from auth_token_file if given, else ICONIK_AUTH_TOKEN, else a hidden prompt when
    stdin is a terminal. Without any of them: InputFailure (exit 2) naming ICONIK_AUTH_TOKEN and
    --auth-token-file."""
    if auth_token_file:
        return _token_from_file(auth_token_file)
    token = os.environ.get(iconik.ENV_AUTH_TOKEN, "").strip()
    if token:
        return token
    if _stdin_is_terminal():
        return _token_from_prompt()
    raise InputFailure(f"no Iconik Auth-Token: set {iconik.ENV_AUTH_TOKEN} or give --auth-token-file FILE "
                       "(on a terminal it is asked for).")


def _missing_app_id(token_known):
    if token_known:
        return f"no Iconik App-ID: set {iconik.ENV_APP_ID} or give --app-id ID."
    return (f"no Iconik credentials: set {iconik.ENV_APP_ID} and {iconik.ENV_AUTH_TOKEN}, or give --app-id ID and "
            "--auth-token-file FILE.")


def _stdin_is_terminal():
    return sys.stdin is not None and sys.stdin.isatty()


def _token_from_prompt():
    try:
        token = click.prompt("Iconik Auth-Token", hide_input=True, err=True).strip()
    except click.Abort:
        click.echo("\nInterrupted.", err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    if not token:
        raise InputFailure("no Iconik Auth-Token was typed.")
    return token


def _token_from_file(path):
    try:
        with open(path, encoding="utf-8-sig") as handle:  # Notepad may start the file with a BOM
            lines = [line.strip() for line in handle.read().splitlines() if line.strip()]
    except FileNotFoundError:
        raise InputFailure(f"the token file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise InputFailure(f"the token file {path} is not UTF-8 text; put only the Auth-Token in it.") from None
    except OSError as exc:
        raise InputFailure(f"cannot read the token file {path}: {exc.strerror}.") from None
    if not lines:
        raise InputFailure(f"the token file {path} is empty; put the Auth-Token in it.")
    if len(lines) > 1:
        raise InputFailure(f"the token file {path} holds {len(lines)} lines; put only the Auth-Token in it.")
    if os.name == "posix" and os.stat(path).st_mode & 0o077:
        click.echo(f"note: the token file {path} is readable by other users; make it private: chmod 600 {path}",
                   err=True)
    return lines[0]


JSON_VERSION = 1
_DOCUMENT = "reversesync.document"


def json_option(command):
    """--json: one JSON document on stdout for scripts (keys in README); the human lines go to stderr."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON document on stdout (keys in README); the human lines go to stderr; "
                             "on an error stdout stays empty.")(command)


@contextlib.contextmanager
def machine_readable(ctx, as_json):
    """With --json, everything the command prints goes to stderr while it runs, and the document it recorded
    (document()) is printed alone on stdout at the end: none if it failed or was interrupted (issue #12)."""
    if not as_json:
        yield
        return
    stdout, sys.stdout = sys.stdout, sys.stderr
    ctx.meta[_DOCUMENT] = {}
    try:
        yield
    finally:
        sys.stdout = stdout
    if ctx.meta[_DOCUMENT]:
        click.echo(json.dumps({"version": JSON_VERSION, **ctx.meta[_DOCUMENT]}, indent=2, ensure_ascii=False))


def document(ctx, **fields):
    """Record what a --json command prints at its end; a no-op without --json."""
    if _DOCUMENT in ctx.meta:
        ctx.meta[_DOCUMENT].update(fields)


class Progress:
    """Renders the engine's events: a live line on a terminal, a plain line every few seconds elsewhere."""

    def __init__(self, stream=None, interrupt_after=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.last_line = 0.0
        self.interrupt_after = interrupt_after
        self.settling_said = False
        self.closed = None  # None: stdout open; False: closed, not yet told the run; True: told

    def __call__(self, kind, **data):
        if self.interrupt_after is not None and kind == "progress" and data["done"] >= self.interrupt_after:
            self.interrupt_after = None
            raise KeyboardInterrupt  # the demo's on-purpose Ctrl-C, taken exactly where a real one lands
        try:
            self._render(kind, **data)
        except BrokenPipeError:
            # A closed stdout stops the run as Ctrl-C does (issue #11); only the main thread may say so, a
            # worker that hit it must not fail its row.
            self.closed = False
            self.stream = open(os.devnull, "w", encoding="utf-8")
            _silence_stdout()
        if self.closed is False and kind == "progress" and threading.current_thread() is threading.main_thread():
            self.closed = True
            raise BrokenPipeError("stdout was closed")

    def _render(self, kind, **data):
        if kind == "start":
            click.echo(f"Run {data['run_id']} ({data['mode']}): {data['rows']} rows to check", file=self.stream)
        elif kind == "stopping":
            click.echo("\nStopping: finishing the requests in flight (Ctrl-C again to abandon them safely)...",
                       file=self.stream)
        elif kind == "progress":
            self._progress(**data)
        elif kind == "search_unavailable":
            click.echo(f"Search unavailable ({data['error']}); reading those assets one by one.", file=self.stream)
        elif kind == "unfinished_writes":
            click.echo(f"{data['rows']} row(s) hold a write whose outcome is not known yet; a dry run leaves them "
                       "to the next live run, which re-checks them first.", file=self.stream)
        elif kind == "settling" and not self.settling_said:
            self.settling_said = True
            click.echo(f"Waiting {data['seconds']:.0f} s before re-checking writes whose answers were lost, so that "
                       "Iconik has settled (a blind re-send could duplicate them).", file=self.stream)
        elif kind == "answer_lost" and not self.settling_said:
            self.settling_said = True
            click.echo(f"\nA write's answer was lost: it is re-checked {data['settle']:g} s after it was sent, once "
                       "Iconik has settled (a blind re-send could duplicate it).", file=self.stream)
        elif kind == "settle_wait":
            click.echo(f"Waiting {data['seconds']:.0f} s for the last writes to settle before reading segment "
                       "lists.", file=self.stream)

    def _progress(self, done, total, requests, elapsed, final=False, parked=0, next_due=0.0, waiting=0.0):
        now = time.monotonic()
        if not final and (not self.tty and now - self.last_line < 10 or self.tty and now - self.last_line < 0.2):
            return
        self.last_line = now
        rate = requests / elapsed if elapsed > 0 else 0.0
        eta = (elapsed / done * (total - done)) if done else 0.0
        width = 30
        filled = int(width * done / total) if total else width
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} rows  {rate:5.1f} req/s  "
                f"elapsed {_clock(elapsed)}  eta {_clock(eta)}")
        if parked:
            line += f"  {parked} settling ({next_due:.0f} s)"
        if waiting >= 5:
            line += f"  waiting on Iconik for {waiting:.0f} s"
        if self.tty:
            click.echo("\r" + line + "  ", nl=final, file=self.stream)
        else:
            click.echo(line, file=self.stream)


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _summary_lines(result, ledger):
    """This run's counts, then the ledger's totals over the current sheet (issue #11)."""
    lines = []
    by_state = {}
    for key, n in sorted(result.counts.items()):
        state, _, why = key.partition("/")
        by_state.setdefault(state, []).append((why, n))
    if result.mode == "dry":
        checked = dict(by_state.get("checked", []))
        in_sync = dict(by_state.get("skipped", [])).get("in_sync", 0)
        lines.append(f"Plan: would create {checked.get('create', 0)}, would update {checked.get('update', 0)}, "
                     f"in sync {in_sync}")
    lines.append(f"This run ({result.run_id}):")
    for state in STATES:
        for why, n in by_state.get(state, []):
            lines.append(f"  {state:<8} {why or '-':<18} {n:>6}")
    totals, _ = ledger.counts()
    lines.append("Ledger (current sheet): " + ", ".join(f"{state} {totals[state]}" for state in STATES))
    lines.append(f"Requests: {result.requests} ({result.writes} writes), 429s: {result.throttled}, "
                 f"elapsed {result.elapsed:.1f} s")
    return lines


def _silence_stdout():
    """The reader of stdout has gone away (`run --live | head -2`): what is printed from now on goes nowhere,
    and the interpreter's last flush at exit does not complain either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    sys.stdout = open(os.devnull, "w", encoding="utf-8")


def _do_run(ctx, ledger_path, iconik_url, app_id, auth_token, options=None, resume=False, progress=None):
    """The one implementation behind `run` and `resume`."""
    return _with_ledger(ctx, ledger_path, lambda ledger: _sync(ctx, ledger, iconik_url, app_id, auth_token, options,
                                                               resume, progress or Progress()))


def _with_ledger(ctx, ledger_path, work):
    """work(ledger) with the ledger open, its lock released and the file closed whatever happens; Ctrl-C (or a
    closed stdout) outside the row loop, in preflight or bookkeeping, exits 130: every committed step stands."""
    ledger = open_ledger(ctx, ledger_path)
    try:
        with translated_errors():
            return work(ledger)
    except (KeyboardInterrupt, BrokenPipeError):
        _say_stderr(f"Interrupted. Continue with: {next_step(ctx, 'resume', ledger_path=ledger_path)}")
        return EXIT_INTERRUPTED
    finally:
        ledger.release()
        ledger.close()


def _say_stderr(text):
    try:
        click.echo(text, err=True)
    except (BrokenPipeError, OSError):
        pass


def _preflight(runner, ledger, run_id, hint):
    """The recorded run's preflight; a refusal closes the run as aborted, so `resume` continues it (exit 3).
    Then the line that says where the run goes (issue #11)."""
    try:
        user = runner.preflight()
    except (errors.AuthError, errors.Forbidden) as exc:
        ledger.finish_run(run_id, "aborted", {})
        fix = ("set ICONIK_APP_ID and ICONIK_AUTH_TOKEN to a valid application token" if exc.status == 401
               else "grant the role(s) in Iconik (Admin > Roles)")
        raise ResumableAbort(f"Iconik refused the credentials ({exc.status}): {exc.message}. Nothing was written. "
                             f"Then {fix}, then continue with: {hint}") from None
    except errors.ConfigError:
        ledger.finish_run(run_id, "aborted", {})
        raise
    except (errors.TransientError, errors.IconikError) as exc:
        ledger.finish_run(run_id, "aborted", {})
        raise ResumableAbort(f"Iconik is unreachable at {runner.client.url}: {exc}. Nothing was written. When it "
                             f"answers, continue with: {hint}") from None
    who = user.get("email") or " ".join(filter(None, (user.get("first_name"), user.get("last_name")))) or "?"
    click.echo(f"Iconik {runner.client.url} as {who}; ledger {ledger.path}")


def _stopped(result, hint):
    """Exit 2 for a run stopped by what a person must look at, 3 for one that stopped on its own and can be
    resumed, 130 for an interrupted one, None for a finished one."""
    if result.status == "aborted" and isinstance(result.error, errors.PatchReplaced):
        raise InputFailure(str(result.error))
    if result.status == "aborted":
        raise ResumableAbort(f"stopped: {_cause(result.error)} Rows in flight were left unfinished, not failed; "
                             f"{_remedy(result.error)}, then continue with: {hint}")
    if result.status == "interrupted":
        _say_stderr(f"Interrupted. Continue with: {hint}")
        return EXIT_INTERRUPTED
    return None


def _sync(ctx, ledger, iconik_url, app_id, auth_token, options, resume, progress):
    """Record the run, preflight, then the run itself; returns the exit code."""
    hint = next_step(ctx, "resume", ledger_path=ledger.path)
    ledger.acquire("resume" if resume else "run")
    if resume:
        unfinished = ledger.unfinished_run()
        if unfinished is None:
            click.echo("Nothing to resume: the last run finished.")
            return EXIT_FAILED_ROWS if ledger.failed_in_source() else 0
        # Issue #12: an interrupted undo or repair is continued by its own machinery (reversesync/undo.py).
        if unfinished["mode"] in ("undo", "repair"):
            return _continue_undo(ctx, ledger, iconik_url, app_id, auth_token, unfinished, progress)
        run_id = unfinished["id"]
        options = engine.RunOptions.from_json(json.loads(unfinished["options"]))
        click.echo(f"Resuming run {run_id} ({unfinished['mode']}, started {unfinished['started_at']})")
    elif options.live:
        _refuse_while_undo_unfinished(ctx, ledger)  # a run never settles an undo's or repair's write (issue #15)
    client = iconik.IconikClient(iconik_url, app_id, auth_token, rate=options.rate, workers=options.workers,
                                 timeout=(5.0, options.read_timeout))
    sync = engine.Engine(ledger, client, options, on_event=progress)
    if resume:
        ledger.reopen_run(run_id)
    else:
        # Recorded before the first request, so a kill or a refusal at preflight leaves it to resume (issue #10).
        run_id = ledger.start_run("live" if options.live else "dry", options.to_json())
        if options.live:  # a dry command never changes another run's status (issue #15)
            ledger.supersede_unfinished_runs(but=run_id)
    _preflight(sync, ledger, run_id, hint)
    result = sync.run(run_id)
    for line in _summary_lines(result, ledger):
        click.echo(line)
    stopped = _stopped(result, hint)
    if stopped is not None:
        return stopped
    if result.mode == "dry" and result.unfinished_writes:
        click.echo("Before writing, re-check the unfinished writes with: "
                   f"{next_step(ctx, 'run', '--live', ledger_path=ledger.path)}")
    document(ctx, **report.run_document(ledger, result, "resume" if resume else "run"))
    # The exit code says what the ledger holds, not what this run happened to touch (issue #11).
    return EXIT_FAILED_ROWS if ledger.failed_in_source() else 0


def _cause(exc):
    if isinstance(exc, errors.AuthError) and exc.status == 401:
        return f"Iconik no longer accepts the token (401: {exc.message})."
    if isinstance(exc, errors.AuthError):
        return f"{exc.message}."
    if isinstance(exc, errors.LockLost):
        return str(exc)
    if isinstance(exc, errors.LedgerError):
        return str(exc)
    if isinstance(exc, engine.IconikUnreachable):
        return f"Iconik stopped answering: {exc.message}."
    if isinstance(exc, errors.IllegalTransition):
        return f"a state-machine bug ({exc}); please report it."
    return f"{type(exc).__name__}: {exc}."


def _remedy(exc):
    if isinstance(exc, errors.AuthError):
        return "fix the token or its access in Iconik"
    if isinstance(exc, errors.LockLost):
        return "let the other process finish"
    if isinstance(exc, errors.LedgerError):
        return "fix the ledger's disk or close the program holding it"
    if isinstance(exc, engine.IconikUnreachable):
        return "wait until Iconik answers again"
    return "look at the cause above"


def _known_reasons():
    return sorted(set(engine.RETRYABLE_REASONS) | set(rules.FINISHED_REASONS))


def _asset_ids(values):
    """--asset values as canonical asset ids, or a usage error naming the one that is not a UUID."""
    canonical = []
    for value in values:
        key = sources.canonical_uuid(value)
        if key is None:
            raise click.BadParameter(f"{value!r} is not an Iconik asset id (a UUID)", param_hint="--asset")
        canonical.append(key)
    return canonical


def _check_settle(settle, read_timeout):
    """A command that writes needs a settle time longer than the read timeout; 0 too is refused (issue #15):
    it would re-send a write whose answer was lost at once."""
    if settle <= read_timeout:
        raise click.BadParameter(f"must be longer than --read-timeout ({read_timeout:g} s): a write can still land "
                                 "after the client stops waiting for its answer", param_hint="--settle")


def settle_options(command):
    """--settle and --read-timeout: how long a write whose answer was lost is left to settle (issue #10)."""
    command = click.option("--read-timeout", type=click.FloatRange(0.1), default=engine.DEFAULT_READ_TIMEOUT,
                           show_default=True, help="Seconds to wait for an answer from Iconik.")(command)
    return click.option("--settle", type=click.FloatRange(0), default=engine.DEFAULT_SETTLE, show_default=True,
                        help="Seconds after a write whose answer was lost before it is re-checked, and before "
                             "segment lists are trusted (see README).")(command)


def run_options(command):
    """The options `run` shares with nobody else: mode, workers, pace, selection and the exactly-once knobs."""
    for option in reversed([
        click.option("--live", is_flag=True, help="Write to Iconik. Without it the run only checks and plans."),
        click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True,
                     help="Rows worked on at once."),
        click.option("--rate", type=click.FloatRange(0.1, 1000), default=iconik.DEFAULT_RATE, show_default=True,
                     help="Requests per second at most (Iconik allows about 50)."),
        click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N eligible rows."),
        click.option("--retry-failed", is_flag=True,
                     help=f"Send failed rows of a passing kind ({', '.join(engine.RETRYABLE_REASONS)}) back to "
                          "pending first."),
        click.option("--asset", "assets", multiple=True, metavar="ID",
                     help="Only this asset, checked again even if finished (repeatable)."),
        click.option("--search/--no-search", default=True, show_default=True,
                     help="Classify assets 100 at a time with Iconik's search; writes are still decided from a "
                          "per-asset read."),
        click.option("--recheck", multiple=True, metavar="REASON",
                     help="Check rows finished with this reason again, e.g. ambiguous (repeatable)."),
        settle_options,
    ]):
        command = option(command)
    return command


@cli.command("run")
@run_options
@json_option
@iconik_options
@ledger_option
@click.pass_context
def run_command(ctx, live, workers, rate, limit, retry_failed, assets, search, recheck, settle, read_timeout,
                as_json, iconik_url, app_id, auth_token, ledger_path):
    """Check every pending asset against Iconik and plan (default) or write (--live) its segment.

    A dry run reads Iconik and decides exactly as a live run would, but writes nothing.
    Exit codes: 0 no row of the sheet failed, 1 some rows are failed, 2 bad input, 3 stopped (resumable),
    130 interrupted.

    \b
    Example:
        reversesync run                  # dry run: prints the plan
        reversesync run --live --workers 8 --rate 50
    """
    canonical = _asset_ids(assets)
    unknown = sorted(set(recheck) - set(_known_reasons()))
    if unknown:
        raise click.BadParameter(f"unknown reason {', '.join(unknown)}; one of: {', '.join(_known_reasons())}",
                                 param_hint="--recheck")
    if live:
        _check_settle(settle, read_timeout)
    options = engine.RunOptions(live=live, workers=workers, rate=rate, limit=limit, retry_failed=retry_failed,
                                assets=tuple(canonical), recheck=tuple(recheck), search=search, settle=settle,
                                read_timeout=read_timeout)
    if canonical:
        ledger = open_ledger(ctx, ledger_path)
        try:
            missing = sorted(set(canonical) - ledger.known_keys(canonical))
        finally:
            ledger.close()
        if missing:
            raise click.BadParameter(f"{', '.join(missing)} not in the ledger; load a sheet that has it first",
                                     param_hint="--asset")
    with machine_readable(ctx, as_json):
        code = _do_run(ctx, ledger_path, iconik_url, app_id, auth_token, options)
    ctx.exit(code)


@cli.command("resume")
@json_option
@iconik_options
@ledger_option
@click.pass_context
def resume_command(ctx, as_json, iconik_url, app_id, auth_token, ledger_path):
    """Continue the most recent unfinished run: its mode, its options and exactly the rows it selected.

    Rows caught between recording a write and recording its result are re-checked first, once their
    settle time has passed; nothing is re-sent blindly.

    \b
    Example:
        reversesync resume
    """
    with machine_readable(ctx, as_json):
        code = _do_run(ctx, ledger_path, iconik_url, app_id, auth_token, resume=True)
    ctx.exit(code)


@cli.command("verify")
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True, help="Assets read at once.")
@click.option("--rate", type=click.FloatRange(0.1, 1000), default=iconik.DEFAULT_RATE, show_default=True,
              help="Requests per second at most.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True), help="Write mismatches here.")
@settle_options
@click.option("--repair", is_flag=True, help="Plan (or with --live, make) the deletion of duplicate reversesync "
                                             "segments, keeping the one the ledger records (else the oldest).")
@click.option("--live", is_flag=True, help="With --repair: delete the duplicates.")
@json_option
@iconik_options
@ledger_option
@click.pass_context
def verify_command(ctx, workers, rate, csv_path, settle, read_timeout, repair, live, as_json, iconik_url, app_id,
                   auth_token, ledger_path):
    """Read Iconik again and confirm it holds the sheet's times wherever the ledger says so.

    Every created, updated or in-sync asset: its segment read by id must be GENERIC and span the sheet's
    times (a SUBCLIP's own range likewise), and its segment list must hold no extra GENERIC segment, in
    particular no second one carrying reversesync's marker. Waits out the settle time after the last
    write first. Exit 0 when all match, 1 otherwise, 130 on Ctrl-C.

    --repair plans the removal of duplicates (two or more GENERIC segments with reversesync's marker on one
    asset): the one the ledger records is kept (else the oldest), each other one is deleted only after a GET by
    id shows it unchanged; a segment without the marker is never touched. --repair --live deletes them.

    \b
    Example:
        reversesync verify --csv mismatches.csv
        reversesync verify --repair --live
    """
    if live and not repair:
        raise click.UsageError("--live goes with --repair; verify alone only reads.")
    if repair:  # issue #12: the repair is an undo-like run of its own (reversesync/undo.py)
        if live:
            _check_settle(settle, read_timeout)
        if csv_path:
            raise click.UsageError("--csv lists mismatches; give it in a verify without --repair.")
        options = undo_module.UndoOptions(live=live, workers=workers, rate=rate, settle=settle,
                                          read_timeout=read_timeout)
        with machine_readable(ctx, as_json):
            code = _do_undo(ctx, ledger_path, iconik_url, app_id, auth_token, options, mode="repair")
        ctx.exit(code)
    with machine_readable(ctx, as_json):
        ledger = open_ledger(ctx, ledger_path)
        try:
            code = _verify(ledger, iconik_url, app_id, auth_token, workers, rate, csv_path, settle)
        except KeyboardInterrupt:
            _say_stderr("Interrupted; verify changed nothing.")
            code = EXIT_INTERRUPTED
        finally:
            ledger.close()
    ctx.exit(code)


def _verify(ledger, iconik_url, app_id, auth_token, workers, rate, csv_path=None, settle=0.0):
    if csv_path:
        outputs.check_output_path(csv_path)  # before any read: a bad path must not cost a whole verify (issue #11)
    with translated_errors():
        client = iconik.IconikClient(iconik_url, app_id, auth_token, rate=rate, workers=workers)
        checked, mismatches = verify_module.verify(ledger, client, workers, on_event=Progress(), settle=settle)
    for found in mismatches:
        click.echo(f"MISMATCH {found.asset_id} (row {found.row_numbers}, {found.state}, {found.kind}): expected "
                   f"{found.expected}; found {found.found}")
    if any(found.kind == "duplicate" for found in mismatches):
        repair = next_step(None, "verify", "--repair", "--live", ledger_path=ledger.path)
        click.echo(f"Remove the duplicates with: {repair} (plain --repair shows the plan first)")
    put_updates = ledger.put_updates()
    for asset_id, row_numbers, segment_id, run_id in put_updates:
        click.echo(f"PUT-UPDATED {asset_id} (row {row_numbers}): segment {segment_id}, run {run_id}")
    if put_updates:
        click.echo(f"{len(put_updates)} segment(s) were updated by reversesync 0.1/0.2 with a PUT, which resets the "
                   "fields it did not send (such as is_internal and shot, ICONIK-FACTS 8.1): check them in Iconik.")
    if csv_path:
        with outputs.private_output(csv_path, bom=True) as handle:
            writer = csv.writer(handle)
            writer.writerow(["asset_id", "row_numbers", "state", "kind", "expected", "found"])
            for found in mismatches:
                cells = (found.asset_id, found.row_numbers, found.state, found.kind, found.expected, found.found)
                writer.writerow([report.neutralise(cell) for cell in cells])
    click.echo(f"Verified {checked} assets: {checked - len(mismatches)} match, {len(mismatches)} do not "
               f"({client.stats.requests} requests).")
    document(click.get_current_context(), command="verify", verified=checked, matched=checked - len(mismatches),
             counts=dict(collections.Counter(found.kind for found in mismatches)),
             mismatches=[dataclasses.asdict(found) for found in mismatches],
             put_updated=[{"asset_id": a, "row_numbers": r, "segment_id": s, "run_id": n}
                          for a, r, s, n in put_updates])
    return 1 if mismatches else 0


@cli.command("runs")
@json_option
@ledger_option
@click.pass_context
def runs_command(ctx, as_json, ledger_path):
    """List the ledger's runs: mode, times, duration, status, requests, 429s, and what each did.

    The counts are the rows each run left created, updated, checked (a dry run's plan), skipped, failed or
    unfinished, from the ledger's event log: right for a run still going and for one that was killed.
    Reads the ledger only.

    \b
    Example:
        reversesync runs
    """
    ledger = open_ledger(ctx, ledger_path, readonly=True)
    try:
        table = [list(report.RUN_COLUMNS)] + report.runs_table(ledger)
    finally:
        ledger.close()
    if as_json:
        click.echo(json.dumps({"version": JSON_VERSION, "command": "runs",
                               "runs": [dict(zip(table[0], row)) for row in table[1:]]}, indent=2))
        return
    _echo_table(table)


def _echo_table(table):
    """Rows of text cells, aligned; the last column is left ragged."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])


@cli.command("undo")
@click.argument("run_id", metavar="RUN", type=click.IntRange(1))
@click.option("--live", is_flag=True, help="Delete and restore in Iconik. Without it the undo only reads and plans.")
@click.option("--asset", "assets", multiple=True, metavar="ID", help="Only this asset's row of RUN (repeatable).")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Rows worked on at once.")
@click.option("--rate", type=click.FloatRange(0.1, 1000), default=iconik.DEFAULT_RATE, show_default=True,
              help="Requests per second at most (Iconik allows about 50).")
@settle_options
@json_option
@iconik_options
@ledger_option
@click.pass_context
def undo_command(ctx, run_id, live, assets, workers, rate, settle, read_timeout, as_json, iconik_url, app_id,
                 auth_token, ledger_path):
    """Put Iconik back as it was before live run RUN: delete the segments it created, restore the ones it updated.

    Each segment is read by id first; one changed since reversesync wrote it (or now backing a subclip) is
    left alone and reported as changed_since, one already gone counts as undone, and a row a later run wrote
    again is left alone (undo that run first). Rows undone end skipped/undone: a plain run leaves them alone;
    `run --recheck undone`, or a load that changes the row, brings them back. Without --live it prints the plan
    and writes nothing. Exit codes as run: 0, 1 some rows failed, 2 bad input, 3 stopped (resume), 130.

    \b
    Example:
        reversesync runs                 # find the run's number
        reversesync undo 4               # the plan
        reversesync undo 4 --live        # act; `reversesync resume` continues it if interrupted
    """
    canonical = _asset_ids(assets)
    if live:
        _check_settle(settle, read_timeout)
    options = undo_module.UndoOptions(undo=run_id, live=live, assets=tuple(canonical), workers=workers, rate=rate,
                                      settle=settle, read_timeout=read_timeout)
    with machine_readable(ctx, as_json):
        code = _do_undo(ctx, ledger_path, iconik_url, app_id, auth_token, options)
    ctx.exit(code)


def _do_undo(ctx, ledger_path, iconik_url, app_id, auth_token, options, mode="undo", progress=None):
    """The one implementation behind `undo` and `verify --repair` (issue #12): record the run, then work it."""

    def work(ledger):
        ledger.acquire(mode)
        if mode == "undo":
            _check_undo_target(ctx, ledger, options)
        if options.live:
            _refuse_while_undo_unfinished(ctx, ledger)
        if mode == "repair":
            _wait_for_late_writes(ledger, options.settle, progress or Progress())
        run_id = ledger.start_run(mode, options.to_json())
        if options.live:  # a dry command never changes another run's status (issue #15)
            if mode == "undo":
                ledger.close_undone_run(options.undo)  # a resume must never redo what the undo removes
            ledger.supersede_unfinished_runs(but=run_id)
        return _undo_run(ctx, ledger, iconik_url, app_id, auth_token, mode, options, run_id, progress or Progress())

    return _with_ledger(ctx, ledger_path, work)


def _check_undo_target(ctx, ledger, options):
    """Only a live run's writes can be undone; an unknown run, or a dry one, is an input error."""
    run = ledger.run(options.undo)
    listing = next_step(ctx, "runs", ledger_path=ledger.path)
    if run is None:
        raise InputFailure(f"there is no run {options.undo} in {ledger.path}; the runs are listed by: {listing}")
    if run["mode"] != "live":
        raise InputFailure(f"run {options.undo} is a {run['mode']} run, not a live run: it wrote nothing to undo. "
                           f"The runs are listed by: {listing}")
    known = ledger.known_keys(list(options.assets))
    missing = [key for key in options.assets if key not in known]
    if missing:
        raise InputFailure(f"{', '.join(missing)} not in the ledger; --asset names a row of run {options.undo}.")


def _wait_for_late_writes(ledger, settle, progress):
    # A write answered lost may still land and the lists trail writes: a repair looks once it has settled.
    wait = verify_module.settle_wait(ledger, settle)
    if wait > 0:
        progress("settle_wait", seconds=wait)
        time.sleep(wait)


def _refuse_while_undo_unfinished(ctx, ledger):
    """An unfinished live undo or repair is continued by resume before any command writes (issue #15): a new
    write could undo its work, or it ours."""
    unfinished = ledger.unfinished_undo()
    if unfinished:
        raise InputFailure(f"{unfinished['mode']} run {unfinished['id']} did not finish; continue it first with: "
                           f"{next_step(ctx, 'resume', ledger_path=ledger.path)}")


def _continue_undo(ctx, ledger, iconik_url, app_id, auth_token, unfinished, progress):
    """`resume` of an interrupted undo or repair (issue #12), the lock already held."""
    options = undo_module.UndoOptions.from_json(json.loads(unfinished["options"]))
    click.echo(f"Resuming run {unfinished['id']} ({unfinished['mode']}, started {unfinished['started_at']})")
    ledger.reopen_run(unfinished["id"])
    return _undo_run(ctx, ledger, iconik_url, app_id, auth_token, unfinished["mode"], options, unfinished["id"],
                     progress)


def _undo_run(ctx, ledger, iconik_url, app_id, auth_token, mode, options, run_id, progress):
    """Preflight, then the undo or repair itself; returns the exit code."""
    hint = next_step(ctx, "resume", ledger_path=ledger.path)
    client = iconik.IconikClient(iconik_url, app_id, auth_token, rate=options.rate, workers=options.workers,
                                 timeout=(5.0, options.read_timeout))
    runner = (undo_module.Undo if mode == "undo" else undo_module.Repair)(ledger, client, options, on_event=progress)
    _preflight(runner, ledger, run_id, hint)
    result = runner.run(run_id)
    for line in _undo_lines(ctx, ledger, mode, options, runner.outcomes, result):
        click.echo(line)
    stopped = _stopped(result, hint)
    if stopped is not None:
        return stopped
    document(ctx, **report.run_document(ledger, result, mode))
    return EXIT_FAILED_ROWS if any(what == "failed" for what in (o.what for o in runner.outcomes)) else 0


def _undo_lines(ctx, ledger, mode, options, outcomes, result):
    """The plan (dry) or what was done, one line per row worth a look, then the counts."""
    shown = outcomes if not options.live else [o for o in outcomes if o.what not in ("undone", "deleted")]
    lines = [f"  {o.what:<15} {o.asset_id} (row {o.row_numbers}): {o.text}" for o in shown]
    tally = {}
    for outcome in outcomes:
        tally[outcome.what] = tally.get(outcome.what, 0) + 1
    title = f"Undo of run {options.undo}" if mode == "undo" else "Repair of duplicates"
    lines.append(f"{title} ({'live' if options.live else 'dry'}, run {result.run_id}): "
                 + (", ".join(f"{what} {n}" for what, n in sorted(tally.items())) or "nothing to do"))
    lines.append(f"Requests: {result.requests} ({result.writes} writes), 429s: {result.throttled}, "
                 f"elapsed {result.elapsed:.1f} s")
    if not options.live and any(o.what.startswith("would ") for o in outcomes):
        words = ["undo", str(options.undo), "--live"] if mode == "undo" else ["verify", "--repair", "--live"]
        lines.append(f"Nothing was written. To act: {next_step(ctx, *words, ledger_path=ledger.path)}")
    return lines


@cli.command("history")
@click.argument("asset_id")
@ledger_option
@click.pass_context
def history_command(ctx, asset_id, ledger_path):
    """Show one asset's history: every state it went through, when, in which run and why; then where it is now.

    ASSET_ID is the Iconik asset id (any case), or row:N for a row whose id was unusable. Reads the ledger
    only; the event log keeps what reversesync did even after later runs re-checked the asset.

    \b
    Example:
        reversesync history 1b4e28ba-2fa1-11d2-883f-0016d3cca427
    """
    ledger = open_ledger(ctx, ledger_path, readonly=True)
    try:
        row = ledger.find_asset(asset_id)
        if row is None:
            listing = next_step(ctx, "report", "--csv", "-", ledger_path=ledger_path)
            raise InputFailure(f"no asset {asset_id} in the ledger {ledger.path}; its assets are listed by: "
                               f"{listing}")
        events = ledger.asset_events(row["asset_key"])
    finally:
        ledger.close()
    for line in report.history_lines(row, events):
        click.echo(line)


@cli.command("demo")
@click.option("--keep", "keep_dir", type=click.Path(file_okay=False), help="Keep the ledger and CSV in DIR.")
@click.pass_context
def demo_command(ctx, keep_dir):
    """The whole flow on a local sandbox, no credentials or network: load, plan, write, resume, verify, undo.

    Without --keep it works in a temporary folder and removes it at the end.

    \b
    Example:
        reversesync demo --keep ./demo
    """
    folder = os.path.abspath(keep_dir) if keep_dir else tempfile.mkdtemp(prefix="reversesync-demo-")
    try:
        code = _demo(ctx, folder)
    finally:
        if not keep_dir:
            # Issue #11: the folder was announced as temporary, so it goes (a second Ctrl-C or a crash too).
            shutil.rmtree(folder, ignore_errors=True)
    click.echo("")
    if keep_dir:
        click.echo(f"Ledger: {os.path.join(folder, 'demo.db')}")
        click.echo(f"Report: {os.path.join(folder, 'report.csv')}")
    else:
        click.echo("The ledger and report were in a temporary folder, now removed; keep them with --keep DIR.")
    click.echo("The failed rows are ids the example sheet names but the sandbox does not hold (404), on purpose.")
    ctx.exit(code)


def _demo(ctx, folder):
    """The demo's seven steps in folder, then an undo of its live runs; returns verify's exit code (or the
    undo's, or 1 if the sandbox did not end as it was seeded)."""
    os.makedirs(folder, exist_ok=True)
    ledger_path = os.path.join(folder, "demo.db")
    for stale in (ledger_path, ledger_path + "-wal", ledger_path + "-shm"):
        if os.path.exists(stale):
            os.remove(stale)
    catalogue = sandbox_module.Catalogue()
    catalogue.seed_from_sheet(example_sheet_path(), seed=7)
    seeded = catalogue.dump()
    faults = sandbox_module.Faults(server_error=0.02, conflict=0.02, drop_before=0.01, drop_after=0.02)
    server = sandbox_module.Sandbox(catalogue, latency_ms=3, faults=faults, seed=7).start()
    url, app, token = server.url, server.app_id, server.auth_token
    rate = 200.0  # the sandbox is local; against Iconik keep the default 50

    def step(number, text):
        click.echo("")
        click.secho(f"== {number}/7 {text}", bold=True)

    try:
        click.echo(f"A sandbox Iconik is running on {url} with {len(catalogue.assets)} assets and a few injected "
                   "faults (5xx, 409, lost answers).")
        step(1, "load the example sheet (about 300 rows, every case) into the ledger")
        ctx.invoke(load, csv_path=example_sheet_path(), ledger_path=ledger_path)
        step(2, "dry run: read Iconik, decide every asset, write nothing")
        # Settle time and read timeout scaled down with the sandbox's small latency (issue #10): the
        # ratio that matters, settle > read timeout + late apply + index lag, is kept.
        options = engine.RunOptions(rate=rate, settle=4.0, read_timeout=2.0)
        _do_run(ctx, ledger_path, url, app, token, options)
        step(3, "live run, interrupted on purpose after 60 rows, as a Ctrl-C would")
        _do_run(ctx, ledger_path, url, app, token, dataclasses.replace(options, live=True),
                progress=Progress(interrupt_after=60))
        step(4, "resume: rows caught mid-write are re-checked first, nothing is re-sent blindly")
        _do_run(ctx, ledger_path, url, app, token, resume=True)
        step(5, "live run again: everything is done, so it makes zero writes")
        _do_run(ctx, ledger_path, url, app, token, dataclasses.replace(options, live=True))
        step(6, "report")
        ledger = open_ledger(ctx, ledger_path)
        try:
            for line in report.summary_lines(ledger) + [""] + report.bars_lines(report.success_bars(ledger)):
                click.echo(line)
            with outputs.private_output(os.path.join(folder, "report.csv"), bom=True) as handle:
                report.write_csv(ledger, handle)
            step(7, "verify: read Iconik again for every asset reversesync wrote or found in sync")
            code = _verify(ledger, url, app, token, 8, rate)
            live_runs = [run["id"] for run in ledger.runs() if run["mode"] == "live" and run["writes"]]
        finally:
            ledger.close()
        click.echo("")
        click.secho("== and back: undo the live runs, newest first, to leave the sandbox as it was seeded", bold=True)
        for run_id in reversed(live_runs):
            undone = _do_undo(ctx, ledger_path, url, app, token, undo_module.UndoOptions(
                undo=run_id, live=True, rate=rate, settle=options.settle, read_timeout=options.read_timeout))
            code = code or undone
        server.settle()
        changed = _catalogue_changes(seeded, catalogue.dump())
        if changed:
            click.echo(f"The sandbox is NOT as it was seeded: {'; '.join(changed[:5])}")
            return code or EXIT_FAILED_ROWS
        click.echo(f"The sandbox is back as it was seeded: every asset and segment equal to the seed, ids and "
                   f"fields alike (date_modified aside), after undoing run{'s' if len(live_runs) > 1 else ''} "
                   f"{', '.join(map(str, reversed(live_runs)))}.")
        return code
    finally:
        server.stop()


def _catalogue_changes(seeded, now):
    """What differs between two sandbox dumps, read-only stamps that any write moves (date_modified) and the
    segments an undo deleted softly (they wait in Iconik's bin, status DELETED) aside."""
    def plain(dump):
        strip = lambda item: {k: v for k, v in item.items() if k != "date_modified"}  # noqa: E731
        return ({key: strip(asset) for key, asset in dump["assets"].items()},
                {key: [strip(s) for s in found if s.get("status") != "DELETED"]
                 for key, found in dump["segments"].items()})

    (assets_before, segments_before), (assets_now, segments_now) = plain(seeded), plain(now)
    changes = [f"asset {key}" for key in sorted(set(assets_before) | set(assets_now))
               if assets_before.get(key) != assets_now.get(key)]
    changes += [f"segments of {key}" for key in sorted(set(segments_before) | set(segments_now))
                if (segments_before.get(key) or []) != (segments_now.get(key) or [])]
    return changes


def _mix_option(ctx, param, value):
    if not value:
        return None
    try:
        mix = {name.strip(): float(weight) for name, weight in (part.split("=") for part in value.split(","))}
    except ValueError:
        raise click.BadParameter("write it as scenario=weight,... e.g. no_segments=40,in_sync=25") from None
    unknown = set(mix) - set(sandbox_module.SCENARIOS)
    if unknown:
        raise click.BadParameter(f"unknown scenario {', '.join(sorted(unknown))}; known: "
                                 f"{', '.join(sandbox_module.SCENARIOS)}")
    if any(weight < 0 for weight in mix.values()) or not sum(mix.values()) > 0:
        raise click.BadParameter("weights are 0 or more, and at least one is above 0")
    return mix


def _faults_option(ctx, param, value):
    try:
        return sandbox_module.Faults.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command("sandbox")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--from-csv", "from_csv", type=click.Path(exists=True, dir_okay=False),
              help="Seed a believable catalogue for the ids of this sheet CSV.")
@click.option("--state", "state_file", type=click.Path(exists=True, dir_okay=False),
              help="Start from a JSON state written by --dump.")
@click.option("--seed", type=int, default=0, show_default=True, help="Makes seeding and faults repeatable.")
@click.option("--mix", callback=_mix_option,
              help="Share of each scenario when seeding, e.g. no_segments=40,in_sync=25.")
@click.option("--latency-ms", type=click.FloatRange(0), default=0, show_default=True,
              help="Delay before every answer.")
@click.option("--jitter-ms", type=click.FloatRange(0), default=0, show_default=True,
              help="Random +/- added to the delay.")
@click.option("--faults", callback=_faults_option, default="",
              help="e.g. 5xx=0.05,409=0.02,drop_before=0.01,drop_after=0.01,apply_late=0.02,late_min_ms=500,"
                   "late_max_ms=4000,slow=0.01,slow_ms=3000,revoke_after=N")
@click.option("--rate", type=click.FloatRange(0, min_open=True), default=None,
              help="Requests/s allowed before 429, and 20 x that per 20 s (default: no limit).")
@click.option("--remaining", type=click.Choice(sandbox_module.REMAINING_READINGS), default="bucket",
              show_default=True, help="What RateLimit-Remaining counts: what is left of this second's budget "
                                      "(bucket) or of the 20 s window (window).")
@click.option("--index-lag", type=click.FloatRange(0), default=sandbox_module.DEFAULT_INDEX_LAG, show_default=True,
              metavar="S", help="Seconds by which segment lists and search trail the stored records.")
@click.option("--patch", "patch_mode", type=click.Choice(sandbox_module.PATCH_MODES), default="merge",
              show_default=True,
              help="What a segment PATCH does: change only the fields it carries (merge, as Iconik's SDK documents) "
                   "or replace the whole segment like a PUT (to rehearse reversesync's guard against that).")
@click.option("--roles", default=",".join(sandbox_module.ALL_ROLES), show_default=True,
              help="Roles the credentials have, comma separated.")
# Never read from the environment: ICONIK_* there may be production credentials (issue #11).
@click.option("--app-id", default=None, help="App-ID to accept. Default: a fresh one each start.")
@click.option("--auth-token", default=None, help="Auth-Token to accept. Default: a fresh one each start.")
@click.option("--dump", "dump_file", type=click.Path(dir_okay=False),
              help="Write the state as JSON on exit (mode 0600).")
@click.pass_context
def sandbox_command(ctx, port, from_csv, state_file, seed, mix, latency_ms, jitter_ms, faults, rate, remaining,
                    index_lag, patch_mode, roles, app_id, auth_token, dump_file):
    """Run a local Iconik stand-in on 127.0.0.1 to rehearse a sync without touching production.

    It behaves as Iconik does where reversesync depends on it: segment lists and search trail the
    stored records by --index-lag, RateLimit-Remaining is on every answer, some assets answer 403.

    \b
    Example:
        reversesync sandbox --from-csv sheet.csv --latency-ms 100 --faults 5xx=0.02
    """
    catalogue = sandbox_module.Catalogue()
    if state_file:
        try:
            catalogue.restore(sandbox_module.load_state(state_file))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--state'") from None
    elif from_csv:
        with translated_errors():
            catalogue.seed_from_sheet(from_csv, seed=seed, mix=mix)
    if dump_file and not os.path.isdir(os.path.dirname(os.path.abspath(dump_file))):
        raise click.BadParameter(f"no folder {os.path.dirname(os.path.abspath(dump_file))} to write it in",
                                 param_hint="'--dump'")
    minted_app_id, minted_token = sandbox_module.mint_credentials()
    if ctx.get_parameter_source("app_id") is ParameterSource.DEFAULT:
        app_id = minted_app_id
    if ctx.get_parameter_source("auth_token") is ParameterSource.DEFAULT:
        auth_token = minted_token
    server = sandbox_module.Sandbox(catalogue, port=port, app_id=app_id, auth_token=auth_token,
                                    roles=[r.strip() for r in roles.split(",") if r.strip()],
                                    latency_ms=latency_ms, jitter_ms=jitter_ms, rate=rate, faults=faults, seed=seed,
                                    index_lag=index_lag, remaining=remaining, patch=patch_mode)
    try:
        server.start()
    except OSError as exc:
        raise InputFailure(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}; pick another --port.") from None
    # Before the first line: whoever reads it may stop us at once, and the --dump must still be written.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *args: stop.set())
    click.echo(f"Iconik sandbox listening on {server.url}")
    settings = (("ICONIK_URL", server.url), ("ICONIK_APP_ID", app_id), ("ICONIK_AUTH_TOKEN", auth_token))
    for name, value in settings:
        click.echo(f"export {name}={value}")
    click.echo("# PowerShell:")
    for name, value in settings:
        click.echo(f'$env:{name} = "{value}"')
    click.echo(f"{len(catalogue.assets)} assets, index lag {index_lag:g} s; Ctrl-C to stop.")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if dump_file:
            sandbox_module.write_state(dump_file, catalogue.dump())
            click.echo(f"State written to {dump_file}")


if __name__ == "__main__":
    cli(prog_name="reversesync")
