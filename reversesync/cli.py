"""The reversesync command line. This module parses options and prints; the work happens elsewhere."""

import contextlib
import os
import sys
from importlib import resources

import click

from . import __version__, errors, report, sources
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
