"""`reversesync sync`: the nightly job (issue #17) — parse, call app.sync, print what it did and who must act."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import click

from .. import app
from ..app import Credentials, SyncReport
from ..ledger import Row
from ..sheets import STATUS_TAB
from ..types import DEFAULT_RATE, DEFAULT_RETRY_NIGHTS, DEFAULT_WORKERS, ExitStatus, RunOptions
from .console import Console, Failure, reported
from .group import cli
from .load import loaded_lines, source_from, source_options
from .options import check_settle, iconik_options, ledger_option, patch_checked_option, session, settle_options
from .progress import Renderer
from .runs import summary_lines


@cli.command("sync")
@source_options
@click.option("--dry-run", is_flag=True, help="Read and plan everything; write nothing to Iconik or the spreadsheet.")
@click.option("--retry-nights", type=click.IntRange(0), default=DEFAULT_RETRY_NIGHTS, show_default=True,
              help="Syncs that try a row failed for a passing cause (5xx, no connection, 429, 409) again before it "
                   "needs a person.")
@click.option("--repair-drift", is_flag=True,
              help="Let the sheet win for the times of segments reversesync wrote that were deleted or moved since "
                   "(every other field stays as a person left it).")
@click.option("--sync-log", is_flag=True, help="Then append the finished live runs to the Sync_Log tab.")
@click.option("--to-sheet", is_flag=True, help="Then write every asset's state into the status tab (--tab).")
@click.option("--tab", metavar="NAME", default=STATUS_TAB, show_default=True, help="Tab for --to-sheet.")
@click.option("--spreadsheet", "log_spreadsheet", metavar="SPREADSHEET_ID",
              help="Spreadsheet for --sync-log and --to-sheet when the rows come from --csv (default: --sheet's).")
@click.option("--workers", type=click.IntRange(1, 64), default=DEFAULT_WORKERS, show_default=True,
              help="Rows worked on at once.")
@click.option("--rate", type=click.FloatRange(0.1, 1000), default=DEFAULT_RATE, show_default=True,
              help="Requests per second at most (Iconik allows about 50).")
@click.option("--search/--no-search", default=True, show_default=True,
              help="Search Iconik 100 assets at a time right before their writes; a create goes out from that answer "
                   "(at most 5 s old), an update after a read of its segment by id. --no-search reads each asset's "
                   "own list instead.")
@settle_options
@patch_checked_option
@functools.partial(iconik_options, into="iconik", prompt=False)
@ledger_option
@click.pass_context
def sync_command(ctx: click.Context, spreadsheet_id: str | None, worksheet: str, credentials: str | None,
                 csv_path: str | None, example: bool, encoding: str | None, allow_shrink: bool, dry_run: bool,
                 retry_nights: int,
                 repair_drift: bool, sync_log: bool, to_sheet: bool, tab: str, log_spreadsheet: str | None,
                 workers: int, rate: float, search: bool, settle: float, read_timeout: float, patch_checked: bool,
                 iconik: Credentials, ledger_path: str | None) -> None:
    """The nightly job, under one lock: back up the ledger, load the sheet, check the segments reversesync wrote
    for drift, retry rows failed for a passing cause, run live, then --sync-log / --to-sheet if asked.

    Exit status: 0 done, nothing new needs a person; 1 done, and rows need a person that the previous sync did
    not report; 2 a person must act before it can go on (configuration, a refused token, a truncated sheet);
    3 it will heal by itself, run it again later (Iconik or Google unreachable, the ledger busy). The last line
    says how many rows need a person and why.

    \b
    Example:
        reversesync sync --sheet 1pUMPKe... --credentials key.json
        reversesync sync --csv export.csv --dry-run
    """
    if not dry_run:
        check_settle(settle, read_timeout)
    spreadsheet = log_spreadsheet or spreadsheet_id
    if (sync_log or to_sheet) and not spreadsheet:
        raise click.UsageError("--sync-log and --to-sheet write to a spreadsheet: load with --sheet, or name it "
                               "with --spreadsheet.")
    source = source_from(ctx, spreadsheet_id, worksheet, credentials, csv_path, example, encoding)
    # A refused load's hint repeats this command, not `load` (words[0] is the command's name).
    source = dataclasses.replace(source, words=("sync", *source.words[1:]))
    options = app.SyncOptions(
        run=RunOptions(live=not dry_run, workers=workers, rate=rate, search=search, settle=settle,
                       read_timeout=read_timeout),
        source=source, allow_shrink=allow_shrink, retry_nights=retry_nights, repair_drift=repair_drift,
        sync_log=sync_log, to_sheet=to_sheet, spreadsheet_id=spreadsheet, sheet_credentials=credentials, tab=tab,
        patch_checked=patch_checked)
    console = Console()
    where = session(ctx, ledger_path, console)

    def watch(step: str, so_far: SyncReport) -> None:
        for line in step_lines(where, step, so_far):
            console.say(line)

    try:
        with reported(console):
            report = app.sync(where, iconik, options, Renderer(console, clock=where.clock), watch)
    except Failure as refused:
        # Stopped before the sync began (a truncated export, the ledger busy): the last line still says who needs
        # a person, from the ledger as it stands (issue #17).
        console.note(f"Error: {refused.format_message()}")
        with reported(console):
            console.say(needs_person_line(where, app.needs_person_now(where, options)))
        ctx.exit(refused.exit_code)
    # A closed stdout/stderr while the end is said is exit 130, as anywhere else, never click's 1 ("rows need a
    # person") that a scheduler would act on.
    with reported(console):
        for line in step_lines(where, "done", report):
            console.say(line)
        if report.stop is not None:
            console.note(f"{'' if report.exit_status == ExitStatus.INTERRUPTED else 'Error: '}{report.stop}")
        console.say(needs_person_line(where, report.needs_person))
    ctx.exit(int(report.exit_status))


def step_lines(where: app.Session, step: str, report: SyncReport) -> list[str]:
    """What one step of the sync did, printed as it is done (the run's progress shows in between)."""
    if step == "begun":
        return [f"Sync {report.sync_id} ({'live' if report.live else 'dry run'}); ledger backed up to {report.backup}",
                *loaded_lines(where, report.loaded)]
    if step == "drift":
        return _drift_lines(report)
    if step == "retrying" and report.retried:
        detail = ", ".join(f"{why} {n}" for why, n in sorted(report.retried.items()))
        return [f"Retrying {_count(sum(report.retried.values()), 'row')} failed for a passing cause ({detail})."]
    if step != "done":
        return []
    lines = summary_lines(report.run) if report.run is not None else []
    lines += report.sheet_lines
    if report.new_pairs:
        reasons: dict[str, int] = {}
        for _, reason in report.new_pairs:
            reasons[reason] = reasons.get(reason, 0) + 1
        lines.append("New since the last sync: " + ", ".join(f"{why} {n}" for why, n in sorted(reasons.items())))
    return lines


def _drift_lines(report: SyncReport) -> list[str]:
    if not report.drift:
        return [f"Drift: none among the {_count(report.drift_checked, 'segment')} reversesync wrote."]
    lines = [f"Drift: {_count(len(report.drift), 'segment')} reversesync wrote no longer as it left "
             f"{'it' if len(report.drift) == 1 else 'them'} ({report.drift_checked} read again):"]
    lines += [f"  {drift.reason:<16} {row['asset_id']} (row {row['row_numbers']}): {drift.text}"
              for row, drift in report.drift]
    if report.drift_repaired:
        lines.append(f"Repairing drift: {_count(report.drift_repaired, 'row')} sent back for the sheet's times to win.")
    elif report.live:
        lines.append("Set aside for a person; `sync --repair-drift` lets the sheet win for their times.")
    return lines


def needs_person_line(where: app.Session, rows: Sequence[Row] | None) -> str:
    """The sync's last line: how many rows need a person and why (issue #17); rows None: no ledger to ask."""
    if rows is None:
        return "No ledger could be read: no row is known to need a person."
    if not rows:
        return "No row needs a person."
    reasons = ", ".join(f"{why} {n}" for why, n in app.reasons_counted(rows).items())
    return (f"{_count(len(rows), 'row')} need{'s' if len(rows) == 1 else ''} a person: "
            f"{reasons} — {where.hint('report', '--needs-person')}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
