"""`reversesync verify` (and `verify --repair`, an undo-like run of its own)."""

from __future__ import annotations

import collections
import csv
import dataclasses

import click

from .. import app, outputs
from ..app import Credentials
from ..report import counted, neutralise
from ..types import DEFAULT_RATE, ExitStatus, RunOptions
from .console import Console, reported
from .group import cli
from .options import (
    check_settle,
    iconik_options,
    json_option,
    ledger_option,
    patch_checked_option,
    session,
    settle_options,
)
from .progress import Renderer
from .runs import show


@cli.command("verify")
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True, help="Assets read at once.")
@click.option("--rate", type=click.FloatRange(0.1, 1000), default=DEFAULT_RATE, show_default=True,
              help="Requests per second at most.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True), help="Write mismatches here.")
@settle_options
@click.option("--repair", is_flag=True, help="Plan (or with --live, make) the deletion of duplicate reversesync "
                                             "segments, keeping the one the ledger records (else the oldest).")
@click.option("--live", is_flag=True, help="With --repair: delete the duplicates.")
@patch_checked_option
@json_option
@iconik_options
@ledger_option
@click.pass_context
def verify_command(ctx: click.Context, workers: int, rate: float, csv_path: str | None, settle: float,
                   read_timeout: float, repair: bool, live: bool, patch_checked: bool, as_json: bool,
                   credentials: Credentials, ledger_path: str | None) -> None:
    """Read Iconik again and confirm it holds the sheet's times wherever the ledger says so.

    Every created, updated or in-sync asset: its segment read by id must be GENERIC and span the sheet's
    times (a SUBCLIP's own range likewise), and its segment list must hold no extra GENERIC segment, in
    particular no second one carrying reversesync's marker; every row an undo reverted must carry no copy of
    reversesync's marker left. Waits out the settle time after the last write first. Exit 0 when all match, 1
    otherwise, 130 on Ctrl-C.

    --repair plans the removal of duplicates (two or more GENERIC segments with reversesync's marker on one
    asset): the one the ledger records is kept (else the oldest), each other one is deleted only after a GET by
    id shows it equal to the one kept; a segment without the marker is never touched. --repair --live deletes
    them.

    \b
    Example:
        reversesync verify --csv mismatches.csv
        reversesync verify --repair --live
    """
    if live and not repair:
        raise click.UsageError("--live goes with --repair; verify alone only reads.")
    console = Console(as_json)
    where = session(ctx, ledger_path, console)
    if repair:
        if live:
            check_settle(settle, read_timeout)
        if csv_path:
            raise click.UsageError("--csv lists mismatches; give it in a verify without --repair.")
        options = RunOptions(live=live, workers=workers, rate=rate, settle=settle, read_timeout=read_timeout)
        with reported(console):
            report = app.repair(where, credentials, options, Renderer(console, clock=where.clock), patch_checked)
        ctx.exit(show(console, report))
    with reported(console):
        if csv_path:
            outputs.check_output_path(csv_path)  # before any read: a bad path must not cost a whole verify
        found = app.verify(where, credentials, workers, rate, settle, Renderer(console, clock=where.clock))
        code = print_verified(console, found, csv_path)
    ctx.exit(code)


def print_verified(console: Console, found: app.Verified, csv_path: str | None = None) -> int:
    """What verify found, line by line (and as CSV to csv_path); returns the exit status."""
    for mismatch in found.mismatches:
        console.say(f"MISMATCH {mismatch.asset_id} (row {mismatch.row_numbers}, {mismatch.state}, "
                    f"{mismatch.kind}): expected {mismatch.expected}; found {mismatch.found}")
    for asset_id, row_numbers, segment_id, run_id in found.put_updates:
        console.say(f"PUT-UPDATED {asset_id} (row {row_numbers}): segment {segment_id}, run {run_id}")
    if found.put_updates:
        were = "was" if len(found.put_updates) == 1 else "were"
        console.say(f"{counted(len(found.put_updates), 'segment')} {were} updated by reversesync 0.1/0.2 with a PUT, "
                    "which resets the fields it did not send (such as is_internal and shot, ICONIK-FACTS 8.1): check "
                    "them in Iconik.")
    if csv_path:
        with outputs.private_output(csv_path, bom=True, stdout=console.stdout) as handle:
            writer = csv.writer(handle)
            writer.writerow(["asset_id", "row_numbers", "state", "kind", "expected", "found"])
            for mismatch in found.mismatches:
                cells = (mismatch.asset_id, mismatch.row_numbers, mismatch.state, mismatch.kind, mismatch.expected,
                         mismatch.found)
                writer.writerow([neutralise(cell) for cell in cells])
    matched = found.checked - len(found.mismatches)
    console.say(f"Verified {counted(found.checked, 'asset')}: {matched} match, {len(found.mismatches)} do not "
                f"({counted(found.requests, 'request')}).")
    if found.repair_hint:
        console.say(f"Remove the duplicates with: {found.repair_hint} (plain --repair shows the plan first)")
    for line in found.next_steps:
        console.say(line)
    console.record(command="verify", verified=found.checked, matched=matched,
                   counts=dict(collections.Counter(mismatch.kind for mismatch in found.mismatches)),
                   mismatches=[dataclasses.asdict(mismatch) for mismatch in found.mismatches],
                   put_updated=[{"asset_id": a, "row_numbers": r, "segment_id": s, "run_id": n}
                                for a, r, s, n in found.put_updates])
    console.finish()
    return int(ExitStatus.FAILED_ROWS if found.mismatches else ExitStatus.OK)
