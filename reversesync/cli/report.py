"""`reversesync report` (and its --sync-log and --to-sheet), `runs` and `history`: they read the ledger."""

from __future__ import annotations

import click

from .. import app, outputs, report
from ..ledger import Ledger
from ..sheets import DEFAULT_WORKSHEET, STATUS_TAB, SYNC_LOG_TAB, is_protected_tab
from ..types import STATES
from .console import Console, reported
from .group import cli
from .load import given
from .options import input_error, json_option, ledger_option, session


def _reasons_option(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """--reason values, each one a row can carry; an unknown one is a usage error listing them all."""
    reasons = tuple(dict.fromkeys(value.strip().lower() for value in values))
    unknown = [reason for reason in reasons if reason not in report.KNOWN_REASONS]
    if unknown:
        raise click.BadParameter(f"unknown reason {', '.join(map(repr, unknown))}; known: "
                                 f"{', '.join(report.KNOWN_REASONS)}")
    return reasons


@cli.command("report")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write one line per asset to FILE ('-' for standard output).")
@click.option("--state", type=click.Choice(STATES), help="Only assets in this state (with --csv).")
@click.option("--reason", "reasons", multiple=True, metavar="REASON", callback=_reasons_option,
              help="Only rows with this reason, in the table or with --csv; give it again for more.")
@click.option("--needs-person", is_flag=True,
              help="The rows of the sheet that need a person: by reason, with what to do (or one line per row "
                   "with --csv).")
@click.option("--json", "as_json", is_flag=True, help="Counts and success bars as JSON, for scripts.")
@click.option("--sync-log", is_flag=True, help="Append finished live runs to the spreadsheet's Sync_Log tab.")
@click.option("--to-sheet", is_flag=True,
              help="Write one row per asset into a tab of the spreadsheet (--tab), replacing what it held.")
@click.option("--tab", metavar="NAME", default=STATUS_TAB, show_default=True,
              help="Tab for --to-sheet; added if missing. Never the data tab or Sync_Log.")
@click.option("--sheet", "spreadsheet_id", metavar="SPREADSHEET_ID", help="Spreadsheet for --sync-log or --to-sheet.")
@click.option("--credentials", type=click.Path(dir_okay=False), default=None,
              help="Service-account key with write access, for --sync-log or --to-sheet. Default: "
                   "GOOGLE_APPLICATION_CREDENTIALS.")
@ledger_option
@click.pass_context
def report_command(ctx: click.Context, csv_path: str | None, state: str | None, reasons: tuple[str, ...],
                   needs_person: bool, as_json: bool, sync_log: bool, to_sheet: bool, tab: str,
                   spreadsheet_id: str | None, credentials: str | None, ledger_path: str | None) -> None:
    """Show what the ledger holds: counts by state and reason and the PRD's success bars, or every asset as CSV.

    Only reads the ledger (it works on a read-only or archived copy), except --sync-log, which records what
    it appended. A CSV file starts with a BOM (byte order mark) so that Excel shows Korean titles; --csv - does
    not.

    --needs-person lists the rows of the current sheet that nothing reversesync runs by itself will settle
    (a row failed for a passing cause counts once sync has retried it --retry-nights times), by reason, with
    what a person does about each; with --csv, one line per row.

    --to-sheet puts each asset's state, reason and reason text into the spreadsheet's reversesync_status tab
    (or --tab), for the people who fix the sheet: it needs the key shared as Editor, and replaces the tab's
    rows each time.

    \b
    Example:
        reversesync report
        reversesync report --csv report.csv --state failed
        reversesync report --reason forbidden --reason not_found --csv -
        reversesync report --needs-person
        reversesync report --sync-log --sheet 1pUMPKe... --credentials key.json
        reversesync report --to-sheet --sheet 1pUMPKe... --credentials key.json
    """
    _check_report_options(csv_path, state, reasons, needs_person, as_json, sync_log, spreadsheet_id, credentials,
                          to_sheet)
    _check_status_tab_options(ctx, to_sheet, tab)
    console = Console(as_json=as_json)
    where = session(ctx, ledger_path, console)
    with reported(console):
        if csv_path:
            outputs.check_output_path(csv_path)
        if sync_log and spreadsheet_id:
            appended, present = app.sync_log(where, spreadsheet_id, credentials)
            if appended:
                console.say(f"Appended to Sync_Log: {', '.join(appended)}")
            if present:
                console.say(f"Already in Sync_Log, not appended again: {', '.join(present)}")
            return
        if to_sheet and spreadsheet_id:
            rows, properties = app.status_tab(where, spreadsheet_id, tab, credentials)
            console.say(f"Wrote {report.counted(rows, 'asset')} to tab {properties['title']!r}: "
                        f"https://docs.google.com/spreadsheets/d/{spreadsheet_id}/edit#gid={properties['sheetId']}")
            return
        with app.reading(where) as ledger:
            if needs_person:
                _needs_person(console, where, ledger, csv_path)
                return
            if csv_path:
                with outputs.private_output(csv_path, bom=True, stdout=console.stdout) as handle:
                    count = report.write_csv(ledger, handle, state, reasons)
                if csv_path != outputs.STDOUT:
                    console.note(f"Wrote {report.counted(count, 'asset')} to {csv_path}")
                return
            if as_json:
                by_state, by_reason = ledger.counts()
                console.record(command="report", ledger=ledger.path, by_state=by_state, by_reason=[
                    {"state": s, "reason": r, "assets": n} for (s, r), n in sorted(
                        by_reason.items(), key=lambda item: (item[0][0], item[0][1] or "")) if r],
                    success_bars=report.success_bars(ledger, where.hint))
                console.finish()
                return
            lines = report.summary_lines(ledger, reasons)
            if not reasons:  # the bars are about runs, not rows: a table of some reasons leaves them out
                lines += [""] + report.bars_lines(report.success_bars(ledger, where.hint))
            for line in lines:
                console.out(line)


def _needs_person(console: Console, where: app.Session, ledger: Ledger, csv_path: str | None) -> None:
    """report --needs-person: the table of reasons and what to do, or one CSV line per row. It only reads: the
    exit status is 0 however many rows need a person (`sync` is the command whose exit status says so)."""
    rows = report.rows_needing_person(ledger)
    if not csv_path:
        for line in report.needs_person_lines(rows, where.hint):
            console.out(line)
        return
    with outputs.private_output(csv_path, bom=True, stdout=console.stdout) as handle:
        count = report.write_needs_person_csv(ledger, handle, rows)
    if csv_path != outputs.STDOUT:
        console.note(f"Wrote {report.counted(count, 'row')} that {'needs' if count == 1 else 'need'} a person "
                     f"to {csv_path}")


def _check_status_tab_options(ctx: click.Context, to_sheet: bool, tab: str) -> None:
    """--tab goes with --to-sheet, and never names the data tab or Sync_Log (issue #12)."""
    if not to_sheet:
        if given(ctx, "tab"):
            raise click.UsageError("--tab goes with --to-sheet.")
        return
    if not tab.strip():
        raise click.UsageError("--tab needs a tab name.")
    if is_protected_tab(tab):
        raise click.UsageError(f"--tab {tab!r} names a tab reversesync never writes (the data tab "
                               f"{DEFAULT_WORKSHEET} and {SYNC_LOG_TAB} are the team's); give another, such as the "
                               f"default {STATUS_TAB}.")


def _check_report_options(csv_path: str | None, state: str | None, reasons: tuple[str, ...], needs_person: bool,
                          as_json: bool, sync_log: bool, spreadsheet_id: str | None, credentials: str | None,
                          to_sheet: bool) -> None:
    """Usage errors for combinations whose options would be silently ignored (issue #11)."""
    if sync_log and to_sheet:
        raise click.UsageError("--sync-log and --to-sheet write two different tabs; give one of them.")
    if sync_log or to_sheet:
        flag, does = ("--sync-log", "only appends to the Sync_Log tab") if sync_log else (
            "--to-sheet", "only writes the status tab")
        if not spreadsheet_id:
            raise click.UsageError(f"{flag} needs --sheet SPREADSHEET_ID.")
        if csv_path or state or reasons or needs_person or as_json:
            raise click.UsageError(f"{flag} {does}; give --csv, --state, --reason, --needs-person or --json in "
                                   "another report command.")
        return
    if spreadsheet_id or credentials:
        raise click.UsageError("--sheet and --credentials go with --sync-log.")
    if as_json and csv_path:
        raise click.UsageError("--json and --csv are two outputs; give one of them.")
    if needs_person and (state or reasons):
        raise click.UsageError("--needs-person lists its own rows; give --state or --reason in another report "
                               "command.")
    if as_json and (needs_person or reasons):
        raise click.UsageError(f"--json counts every row; {'--needs-person' if needs_person else '--reason'} goes "
                               "with the table or --csv (--csv - for a script).")
    if state and not csv_path:
        raise click.UsageError("--state filters the --csv listing; add --csv FILE (or --csv - for the screen).")


@cli.command("runs")
@json_option
@ledger_option
@click.pass_context
def runs_command(ctx: click.Context, as_json: bool, ledger_path: str | None) -> None:
    """List the ledger's runs: mode, times, duration, status, requests, 429s, and what each did.

    The counts are the rows each run left created, updated, checked (a dry run's plan), skipped, failed or
    unfinished, from the ledger's event log: right for a run still going and for one that was killed.
    Reads the ledger only.

    \b
    Example:
        reversesync runs
    """
    console = Console(as_json=as_json)
    with reported(console), app.reading(session(ctx, ledger_path, console)) as ledger:
        if as_json:
            console.record(command="runs", runs=report.run_records(ledger))
            console.finish()
            return
        table = report.runs_table(ledger)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    with reported(console):  # `runs | more`, then q: a closed pipe is exit 130, as for every command
        for row in table:  # aligned; the last column left ragged
            console.out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  "
                        + row[-1])


@cli.command("history")
@click.argument("asset_id")
@ledger_option
@click.pass_context
def history_command(ctx: click.Context, asset_id: str, ledger_path: str | None) -> None:
    """Show one asset's history: every state it went through, when, in which run and why; then where it is now.

    ASSET_ID is the Iconik asset id (any case), or row:N for a row whose id was unusable. Reads the ledger
    only; the event log keeps what reversesync did even after later runs re-checked the asset.

    \b
    Example:
        reversesync history 1b4e28ba-2fa1-11d2-883f-0016d3cca427
    """
    console = Console()
    where = session(ctx, ledger_path, console)
    with reported(console), app.reading(where) as ledger:
        row = ledger.find_asset(asset_id)
        if row is None:
            raise input_error(f"no asset {asset_id} in the ledger {ledger.path}; its assets are listed by: "
                              f"{where.hint('report', '--csv', '-')}")
        events = ledger.asset_events(row["asset_key"])
    with reported(console):
        for line in report.history_lines(row, events):
            console.out(line)

