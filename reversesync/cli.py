"""The reversesync command line. This module parses options and prints; the work happens elsewhere."""

import contextlib
import csv
import dataclasses
import json
import os
import signal
import sys
import tempfile
import threading
import time
from importlib import resources

import click
from click.core import ParameterSource

from . import __version__, engine, errors, iconik, report, sources
from . import sandbox as sandbox_module
from .ledger import DEFAULT_LEDGER, STATES, Ledger

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
    except (errors.LedgerLocked, errors.AuthError) as exc:
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


def open_ledger(ctx, ledger_path):
    with translated_errors():
        return Ledger(_ledger_path(ctx, ledger_path))


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
    ctx.ensure_object(dict)
    ctx.obj["ledger_path"] = ledger_path


@cli.command()
@click.option("--sheet", "spreadsheet_id", metavar="SPREADSHEET_ID", help="Google spreadsheet id to read.")
@click.option("--worksheet", default=sources.DEFAULT_WORKSHEET, show_default=True, help="Tab to read.")
@click.option("--credentials", type=click.Path(dir_okay=False), default=None,
              help="Service-account key (JSON). Default: env GOOGLE_APPLICATION_CREDENTIALS.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="A CSV export of the tab instead.")
@click.option("--example", is_flag=True, help="Load the bundled example sheet (about 300 rows).")
@ledger_option
@click.pass_context
def load(ctx, spreadsheet_id, worksheet, credentials, csv_path, example, ledger_path):
    """Read the sheet into the ledger: new rows become pending, changed rows go back to pending.

    Rejected rows are kept as skipped with a reason; rows already finished stay finished.

    \b
    Example:
        reversesync load --sheet 1pUMPKe... --credentials key.json
        reversesync load --csv GGmetadata_and_timestamps.csv
    """
    chosen = [flag for flag, value in (("--sheet", spreadsheet_id), ("--csv", csv_path), ("--example", example))
              if value]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --sheet SPREADSHEET_ID, --csv FILE or --example.")
    with translated_errors():
        if spreadsheet_id:
            header, rows = sources.read_google_sheet(spreadsheet_id, worksheet, credentials)
            where = f"spreadsheet {spreadsheet_id}, tab {worksheet}"
        else:
            path = csv_path or example_sheet_path()
            header, rows = sources.read_csv(path)
            where = path
        records = sources.records_from_table(header, rows)
        ledger = Ledger(_ledger_path(ctx, ledger_path))
        try:
            ledger.acquire("load")
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
        click.echo(f"  rejected (skipped): {sum(rejected.values())} ({detail}); "
                   "see: reversesync report --state skipped --csv -")


@cli.command("report")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write one line per asset to FILE ('-' for standard output).")
@click.option("--state", type=click.Choice(STATES), help="Only assets in this state (with --csv).")
@click.option("--json", "as_json", is_flag=True, help="Counts and success bars as JSON, for scripts.")
@click.option("--sync-log", is_flag=True, help="Append finished live runs to the spreadsheet's Sync_Log tab.")
@click.option("--sheet", "spreadsheet_id", metavar="SPREADSHEET_ID", help="Spreadsheet for --sync-log.")
@click.option("--credentials", type=click.Path(dir_okay=False), default=None,
              help="Service-account key with write access (--sync-log). Default: GOOGLE_APPLICATION_CREDENTIALS.")
@ledger_option
@click.pass_context
def report_command(ctx, csv_path, state, as_json, sync_log, spreadsheet_id, credentials, ledger_path):
    """Show what the ledger holds: counts by state and reason and the PRD's success bars, or every asset as CSV.

    \b
    Example:
        reversesync report
        reversesync report --csv report.csv --state failed
        reversesync report --sync-log --sheet 1pUMPKe... --credentials key.json
    """
    path = _ledger_path(ctx, ledger_path)
    if not os.path.exists(path):
        raise InputFailure(f"no ledger at {os.path.abspath(path)}; run 'reversesync load' first.")
    if sync_log and not spreadsheet_id:
        raise click.UsageError("--sync-log needs --sheet SPREADSHEET_ID.")
    ledger = open_ledger(ctx, ledger_path)
    try:
        if sync_log:
            return _append_sync_log(ledger, spreadsheet_id, credentials)
        if csv_path:
            if csv_path == "-":
                count = report.write_csv(ledger, sys.stdout, state)
            else:
                with _output_file(csv_path) as handle:
                    count = report.write_csv(ledger, handle, state)
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


def _output_file(path):
    """A CSV file opened for writing, or an input error that says why it cannot be."""
    try:
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise InputFailure(f"cannot write {path}: {exc.strerror}.") from None


def _append_sync_log(ledger, spreadsheet_id, credentials):
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
        raise InputFailure("no finished live run to log; run 'reversesync run --live' first.")
    with translated_errors():
        appended, present = sources.append_sync_log(spreadsheet_id, entries, credentials)
    ledger.mark_sync_logged({e["Sync_ID"]: int(e["Sync_ID"].rsplit("-", 1)[1]) for e in entries
                             if e["Sync_ID"] in appended + present})
    if appended:
        click.echo(f"Appended to Sync_Log: {', '.join(appended)}")
    if present:
        click.echo(f"Already in Sync_Log, not appended again: {', '.join(present)}")


def iconik_options(command):
    """--iconik-url, --app-id, --auth-token (env ICONIK_URL, ICONIK_APP_ID, ICONIK_AUTH_TOKEN)."""
    command = click.option("--auth-token", envvar=iconik.ENV_AUTH_TOKEN, default=None, show_envvar=True,
                           help="Iconik Auth-Token.")(command)
    command = click.option("--app-id", envvar=iconik.ENV_APP_ID, default=None, show_envvar=True,
                           help="Iconik App-ID.")(command)
    return click.option("--iconik-url", envvar=iconik.ENV_URL, default=iconik.DEFAULT_URL, show_default=True,
                        show_envvar=True, help="Iconik base URL.")(command)


class Progress:
    """Renders the engine's events: a live line on a terminal, a plain line every few seconds elsewhere."""

    def __init__(self, stream=None, interrupt_after=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.last_line = 0.0
        self.interrupt_after = interrupt_after

    def __call__(self, kind, **data):
        if self.interrupt_after is not None and kind == "progress" and data["done"] >= self.interrupt_after:
            self.interrupt_after = None
            raise KeyboardInterrupt  # the demo's on-purpose Ctrl-C, taken exactly where a real one lands
        if kind == "start":
            click.echo(f"Run {data['run_id']} ({data['mode']}): {data['rows']} rows to check", file=self.stream)
        elif kind == "stopping":
            click.echo("\nStopping: finishing the requests in flight (Ctrl-C again to abandon them safely)...",
                       file=self.stream)
        elif kind == "progress":
            self._progress(**data)
        elif kind == "search_unavailable":
            click.echo(f"Search unavailable ({data['error']}); reading those assets one by one.", file=self.stream)

    def _progress(self, done, total, requests, elapsed, final=False):
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
        if self.tty:
            click.echo("\r" + line, nl=final, file=self.stream)
        else:
            click.echo(line, file=self.stream)


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _summary_lines(result):
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
    for state in STATES:
        for why, n in by_state.get(state, []):
            lines.append(f"  {state:<8} {why or '-':<18} {n:>6}")
    lines.append(f"Requests: {result.requests} ({result.writes} writes), 429s: {result.throttled}, "
                 f"elapsed {result.elapsed:.1f} s")
    return lines


def _do_run(ctx, ledger_path, iconik_url, app_id, auth_token, options=None, resume=False, progress=None):
    """The one implementation behind `run` and `resume`."""
    ledger = open_ledger(ctx, ledger_path)
    try:
        return _sync(ledger, iconik_url, app_id, auth_token, options, resume, progress or Progress())
    except KeyboardInterrupt:
        # Ctrl-C outside the row loop (preflight, bookkeeping): every committed step stands.
        click.echo("Interrupted. resume with: reversesync resume", err=True)
        return EXIT_INTERRUPTED
    finally:
        ledger.release()
        ledger.close()


def _sync(ledger, iconik_url, app_id, auth_token, options, resume, progress):
    """Preflight, then the run itself; returns the exit code."""
    with translated_errors():
        ledger.acquire("resume" if resume else "run")
    if resume:
        unfinished = ledger.unfinished_run()
        if unfinished is None:
            click.echo("Nothing to resume: the last run finished.")
            return 0
        run_id = unfinished["id"]
        options = engine.RunOptions.from_json(json.loads(unfinished["options"]))
        click.echo(f"Resuming run {run_id} ({unfinished['mode']}, started {unfinished['started_at']})")
    with translated_errors():
        client = iconik.IconikClient(iconik_url, app_id, auth_token, rate=options.rate, workers=options.workers)
    sync = engine.Engine(ledger, client, options, on_event=progress)
    try:
        sync.preflight()
    except errors.AuthError as exc:
        variable = "ICONIK_AUTH_TOKEN (or ICONIK_APP_ID)" if exc.status == 401 else "the token's roles"
        raise ResumableAbort(f"Iconik refused the credentials ({exc.status}): {exc.message}. "
                             f"Fix {variable}; nothing was written.") from None
    except (errors.TransientError, errors.IconikError) as exc:
        raise ResumableAbort(f"Iconik is unreachable at {client.url}: {exc}. Nothing was written; "
                             "try again when it answers.") from None
    if resume:
        ledger.reopen_run(run_id)
    else:
        ledger.supersede_unfinished_runs()
        run_id = ledger.start_run("live" if options.live else "dry", options.to_json())
    result = sync.run(run_id, heartbeat=ledger.heartbeat)
    for line in _summary_lines(result):
        click.echo(line)
    if result.status == "aborted":
        raise ResumableAbort(f"stopped: {result.error}. Rows in flight were left unfinished, not failed; "
                             "fix the credentials, then resume with: reversesync resume")
    if result.status == "interrupted":
        click.echo("Interrupted. resume with: reversesync resume", err=True)
        return EXIT_INTERRUPTED
    return EXIT_FAILED_ROWS if any(k.startswith("failed") for k in result.counts) else 0


def run_options(command):
    """The options `run` shares with nobody else: mode, workers, pace and selection."""
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
                          "fresh per-asset read."),
        click.option("--recheck", multiple=True, metavar="REASON",
                     help="Check rows finished with this reason again, e.g. ambiguous (repeatable)."),
    ]):
        command = option(command)
    return command


@cli.command("run")
@run_options
@iconik_options
@ledger_option
@click.pass_context
def run_command(ctx, live, workers, rate, limit, retry_failed, assets, search, recheck, iconik_url, app_id,
                auth_token, ledger_path):
    """Check every pending asset against Iconik and plan (default) or write (--live) its segment.

    A dry run reads Iconik and decides exactly as a live run would, but writes nothing.
    Exit codes: 0 done, 1 some rows failed, 2 bad input, 3 stopped (resumable), 130 interrupted.

    \b
    Example:
        reversesync run                  # dry run: prints the plan
        reversesync run --live --workers 8 --rate 50
    """
    canonical = []
    for value in assets:
        key = sources.canonical_uuid(value)
        if key is None:
            raise click.BadParameter(f"{value!r} is not an Iconik asset id (a UUID)", param_hint="--asset")
        canonical.append(key)
    options = engine.RunOptions(live=live, workers=workers, rate=rate, limit=limit, retry_failed=retry_failed,
                                assets=tuple(canonical), recheck=tuple(recheck), search=search)
    ctx.exit(_do_run(ctx, ledger_path, iconik_url, app_id, auth_token, options))


@cli.command("resume")
@iconik_options
@ledger_option
@click.pass_context
def resume_command(ctx, iconik_url, app_id, auth_token, ledger_path):
    """Continue the most recent unfinished run with its mode and options.

    Rows caught between recording a write and recording its result are re-checked first;
    nothing is re-sent blindly.

    \b
    Example:
        reversesync resume
    """
    ctx.exit(_do_run(ctx, ledger_path, iconik_url, app_id, auth_token, resume=True))


@cli.command("verify")
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True, help="Assets read at once.")
@click.option("--rate", type=click.FloatRange(0.1, 1000), default=iconik.DEFAULT_RATE, show_default=True,
              help="Requests per second at most.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True), help="Write mismatches here.")
@iconik_options
@ledger_option
@click.pass_context
def verify_command(ctx, workers, rate, csv_path, iconik_url, app_id, auth_token, ledger_path):
    """Read Iconik again and confirm it holds the sheet's times wherever the ledger says so.

    Checks every asset that is created, updated or in sync: the GENERIC segment (exactly one where
    reversesync wrote) or the SUBCLIP must span the sheet's times. Exit 0 when all match, 1 otherwise.

    \b
    Example:
        reversesync verify --csv mismatches.csv
    """
    ledger = open_ledger(ctx, ledger_path)
    try:
        code = _verify(ledger, iconik_url, app_id, auth_token, workers, rate, csv_path)
    finally:
        ledger.close()
    ctx.exit(code)


def _verify(ledger, iconik_url, app_id, auth_token, workers, rate, csv_path=None):
    with translated_errors():
        client = iconik.IconikClient(iconik_url, app_id, auth_token, rate=rate, workers=workers)
        checked, mismatches = engine.verify(ledger, client, workers, on_event=Progress())
    for found in mismatches:
        click.echo(f"MISMATCH {found.asset_id} (row {found.row_numbers}, {found.state}): expected {found.expected}; "
                   f"found {found.found}")
    if csv_path:
        handle = sys.stdout if csv_path == "-" else _output_file(csv_path)
        try:
            writer = csv.writer(handle)
            writer.writerow(["asset_id", "row_numbers", "state", "expected", "found"])
            for found in mismatches:
                cells = (found.asset_id, found.row_numbers, found.state, found.expected, found.found)
                writer.writerow([report.neutralise(cell) for cell in cells])
        finally:
            if handle is not sys.stdout:
                handle.close()
    click.echo(f"Verified {checked} assets: {checked - len(mismatches)} match, {len(mismatches)} do not "
               f"({client.stats.requests} requests).")
    return 1 if mismatches else 0


@cli.command("runs")
@ledger_option
@click.pass_context
def runs_command(ctx, ledger_path):
    """List the ledger's runs: mode, times, duration, status, counts, requests and 429s.

    \b
    Example:
        reversesync runs
    """
    ledger = open_ledger(ctx, ledger_path)
    try:
        table = [list(report.RUN_COLUMNS)] + report.runs_table(ledger)
    finally:
        ledger.close()
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])


@cli.command("demo")
@click.option("--keep", "keep_dir", type=click.Path(file_okay=False), help="Keep the ledger and CSV in DIR.")
@click.pass_context
def demo_command(ctx, keep_dir):
    """The whole flow on a local sandbox, no credentials or network: load, plan, write, resume, verify.

    \b
    Example:
        reversesync demo --keep ./demo
    """
    folder = os.path.abspath(keep_dir) if keep_dir else tempfile.mkdtemp(prefix="reversesync-demo-")
    os.makedirs(folder, exist_ok=True)
    ledger_path = os.path.join(folder, "demo.db")
    for stale in (ledger_path, ledger_path + "-wal", ledger_path + "-shm"):
        if os.path.exists(stale):
            os.remove(stale)
    catalogue = sandbox_module.Catalogue()
    catalogue.seed_from_sheet(example_sheet_path(), seed=7)
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
        ctx.invoke(load, csv_path=example_sheet_path(), ledger_path=ledger_path, spreadsheet_id=None,
                   worksheet=sources.DEFAULT_WORKSHEET, credentials=None, example=False)
        step(2, "dry run: read Iconik, decide every asset, write nothing")
        options = engine.RunOptions(rate=rate)
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
        csv_file = os.path.join(folder, "report.csv")
        try:
            for line in report.summary_lines(ledger) + [""] + report.bars_lines(report.success_bars(ledger)):
                click.echo(line)
            with open(csv_file, "w", encoding="utf-8", newline="") as handle:
                report.write_csv(ledger, handle)
            step(7, "verify: read Iconik again for every asset reversesync wrote or found in sync")
            code = _verify(ledger, url, app, token, 8, rate)
        finally:
            ledger.close()
    finally:
        server.stop()
    click.echo("")
    click.echo(f"Ledger: {ledger_path}")
    click.echo(f"Report: {csv_file}")
    click.echo("The failed rows are ids the example sheet names but the sandbox does not hold (404), on purpose.")
    if not keep_dir:
        click.echo("(a temporary folder; keep the files with --keep DIR)")
    ctx.exit(code)


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
@click.option("--roles", default=",".join(sandbox_module.ALL_ROLES), show_default=True,
              help="Roles the credentials have, comma separated.")
# Never read from the environment: ICONIK_* there may be production credentials (issue #11).
@click.option("--app-id", default=None, help="App-ID to accept. Default: a fresh one each start.")
@click.option("--auth-token", default=None, help="Auth-Token to accept. Default: a fresh one each start.")
@click.option("--dump", "dump_file", type=click.Path(dir_okay=False),
              help="Write the state as JSON on exit (mode 0600).")
@click.pass_context
def sandbox_command(ctx, port, from_csv, state_file, seed, mix, latency_ms, jitter_ms, faults, rate, remaining,
                    index_lag, roles, app_id, auth_token, dump_file):
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
                                    index_lag=index_lag, remaining=remaining)
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
