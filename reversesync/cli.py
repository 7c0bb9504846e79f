"""The reversesync command line. This module parses options and prints; the work happens elsewhere."""

import contextlib
import json
import os
import signal
import sys
import threading
from importlib import resources

import click

from . import __version__, errors, report, sources
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
    except (errors.LedgerLocked, errors.AuthError, errors.ConfigError) as exc:
        raise ResumableAbort(str(exc)) from None
    except (errors.InputError, errors.LedgerError) as exc:
        raise InputFailure(str(exc)) from None


def ledger_option(command):
    """--ledger PATH, accepted on the group and on every command that uses the ledger."""
    return click.option(
        "--ledger", "ledger_path", type=click.Path(dir_okay=False), default=None, envvar="REVERSESYNC_LEDGER",
        help=f"Ledger file (SQLite). Default: ./{DEFAULT_LEDGER}; env REVERSESYNC_LEDGER.")(command)


def _ledger_path(ctx, ledger_path):
    return ledger_path or (ctx.obj or {}).get("ledger_path") or DEFAULT_LEDGER


def open_ledger(ctx, ledger_path):
    with translated_errors():
        return Ledger(_ledger_path(ctx, ledger_path))


def example_sheet_path():
    """The bundled example sheet: about 300 rows with every case the tool handles."""
    return str(resources.files("reversesync.examples").joinpath("example_sheet.csv"))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reversesync")
@ledger_option
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
@ledger_option
@click.pass_context
def report_command(ctx, csv_path, state, ledger_path):
    """Show what the ledger holds: counts by state and reason, or every asset as CSV.

    \b
    Example:
        reversesync report
        reversesync report --csv report.csv --state failed
    """
    path = _ledger_path(ctx, ledger_path)
    if not os.path.exists(path):
        raise InputFailure(f"no ledger at {os.path.abspath(path)}; run 'reversesync load' first.")
    ledger = open_ledger(ctx, ledger_path)
    try:
        if csv_path:
            if csv_path == "-":
                count = report.write_csv(ledger, sys.stdout, state)
            else:
                with open(csv_path, "w", encoding="utf-8", newline="") as handle:
                    count = report.write_csv(ledger, handle, state)
                click.echo(f"Wrote {count} assets to {csv_path}", err=True)
            return
        for line in report.summary_lines(ledger):
            click.echo(line)
    finally:
        ledger.close()


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
    return mix


def _faults_option(ctx, param, value):
    try:
        return sandbox_module.Faults.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command("sandbox")
@click.option("--port", type=int, default=8765, show_default=True, help="Port on 127.0.0.1 (0: any free port).")
@click.option("--from-csv", "from_csv", type=click.Path(exists=True, dir_okay=False),
              help="Seed a believable catalogue for the ids of this sheet CSV.")
@click.option("--state", "state_file", type=click.Path(exists=True, dir_okay=False),
              help="Start from a JSON state written by --dump.")
@click.option("--seed", type=int, default=0, show_default=True, help="Makes seeding and faults repeatable.")
@click.option("--mix", callback=_mix_option, help="Share of each scenario when seeding, e.g. no_segments=40,in_sync=25.")
@click.option("--latency-ms", type=float, default=0, show_default=True, help="Delay before every answer.")
@click.option("--jitter-ms", type=float, default=0, show_default=True, help="Random +/- added to the delay.")
@click.option("--faults", callback=_faults_option, default="",
              help="e.g. 5xx=0.05,409=0.02,drop_before=0.01,drop_after=0.01,slow=0.01,slow_ms=3000,revoke_after=N")
@click.option("--rate", type=float, default=None, help="Requests/s allowed before 429 (default: no limit).")
@click.option("--roles", default=",".join(sandbox_module.ALL_ROLES), show_default=True,
              help="Roles the credentials have, comma separated.")
@click.option("--app-id", envvar="ICONIK_APP_ID", default=sandbox_module.DEMO_APP_ID,
              help="App-ID to accept. Default: env ICONIK_APP_ID, else a demo value.")
@click.option("--auth-token", envvar="ICONIK_AUTH_TOKEN", default=sandbox_module.DEMO_AUTH_TOKEN,
              help="Auth-Token to accept. Default: env ICONIK_AUTH_TOKEN, else a demo value.")
@click.option("--dump", "dump_file", type=click.Path(dir_okay=False), help="Write the state as JSON on exit.")
def sandbox_command(port, from_csv, state_file, seed, mix, latency_ms, jitter_ms, faults, rate, roles, app_id,
                    auth_token, dump_file):
    """Run a local Iconik stand-in on 127.0.0.1 to rehearse a sync without touching production.

    \b
    Example:
        reversesync sandbox --from-csv sheet.csv --latency-ms 100 --faults 5xx=0.02
    """
    catalogue = sandbox_module.Catalogue()
    if state_file:
        with open(state_file, encoding="utf-8") as handle:
            catalogue.restore(json.load(handle))
    elif from_csv:
        with translated_errors():
            catalogue.seed_from_sheet(from_csv, seed=seed, mix=mix)
    server = sandbox_module.Sandbox(catalogue, port=port, app_id=app_id, auth_token=auth_token,
                                    roles=[r.strip() for r in roles.split(",") if r.strip()],
                                    latency_ms=latency_ms, jitter_ms=jitter_ms, rate=rate, faults=faults, seed=seed)
    try:
        server.start()
    except OSError as exc:
        raise InputFailure(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}; pick another --port.") from None
    click.echo(f"Iconik sandbox listening on {server.url}")
    click.echo(f"ICONIK_URL={server.url}")
    click.echo(f"ICONIK_APP_ID={app_id} ICONIK_AUTH_TOKEN={auth_token}")
    click.echo(f"{len(catalogue.assets)} assets; Ctrl-C to stop.")
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *args: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if dump_file:
            with open(dump_file, "w", encoding="utf-8") as handle:
                json.dump(catalogue.dump(), handle, indent=1)
            click.echo(f"State written to {dump_file}")


if __name__ == "__main__":
    cli(prog_name="reversesync")
