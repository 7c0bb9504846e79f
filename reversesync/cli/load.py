"""`reversesync load`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from .. import app
from ..sheets import DEFAULT_WORKSHEET
from .console import Console, reported
from .group import cli
from .options import ledger_option, session
from .progress import Renderer

F = TypeVar("F", bound=Callable[..., Any])


def source_options(command: F) -> F:
    """Where the sheet comes from, for `load` and `sync`: --sheet/--worksheet/--credentials, --csv or --example,
    and --allow-shrink."""
    for option in reversed([
        click.option("--sheet", "spreadsheet_id", metavar="SPREADSHEET_ID", help="Google spreadsheet id to read."),
        click.option("--worksheet", default=DEFAULT_WORKSHEET, show_default=True, help="Tab to read (with --sheet)."),
        click.option("--credentials", type=click.Path(dir_okay=False), default=None,
                     help="Service-account key (JSON), with --sheet. Default: env GOOGLE_APPLICATION_CREDENTIALS."),
        click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="A CSV export of the tab instead."),
        click.option("--example", is_flag=True, help="Load the bundled example sheet (about 300 rows)."),
        click.option("--allow-shrink", is_flag=True,
                     help="Load even if more than half of the ledger's assets would leave the source."),
    ]):
        command = option(command)
    return command


@cli.command()
@source_options
@ledger_option
@click.pass_context
def load(ctx: click.Context, spreadsheet_id: str | None, worksheet: str, credentials: str | None,
         csv_path: str | None, example: bool, allow_shrink: bool, ledger_path: str | None) -> None:
    """Read the sheet into the ledger (creating it): new rows become pending, changed rows go back to pending.

    Rejected rows are kept as skipped with a reason; rows already finished stay finished. A source with no
    data rows is refused, and so is one that would take more than half of the ledger's assets out of the
    source (a wrong tab or file), unless --allow-shrink is given.

    \b
    Example:
        reversesync load --sheet 1pUMPKe... --credentials key.json
        reversesync load --csv GGmetadata_and_timestamps.csv
    """
    console = Console()
    source = source_from(ctx, spreadsheet_id, worksheet, credentials, csv_path, example)
    where = session(ctx, ledger_path, console)
    with reported(console):
        loaded = app.load(where, source, allow_shrink, Renderer(console, clock=where.clock))
    for line in loaded_lines(where, loaded):
        console.say(line)


def loaded_lines(where: app.Session, loaded: app.Loaded) -> list[str]:
    """What a load did, as `load` (and `sync`) print it."""
    counts = loaded.counts
    lines = [f"Loaded {loaded.rows_read} rows from {loaded.where} into {loaded.ledger}",
             f"  assets: {counts['new']} new, {counts['changed']} changed, {counts['unchanged']} unchanged, "
             f"{counts['removed']} removed from the source"]
    rejected = counts["rejected"]
    if rejected:
        detail = ", ".join(f"{reason} {n}" for reason, n in sorted(rejected.items()))
        lines.append(f"  rejected (skipped): {sum(rejected.values())} ({detail}); see: "
                     f"{where.hint('report', '--state', 'skipped', '--csv', '-')}")
    return lines


def given(ctx: click.Context, name: str) -> bool:
    """Whether the user typed the option (a default, or a value passed by ctx.invoke, is not typed)."""
    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def source_from(ctx: click.Context, spreadsheet_id: str | None, worksheet: str, credentials: str | None,
            csv_path: str | None, example: bool) -> app.Source:
    """The source to read, with the load command as typed (to repeat in a hint); usage errors for options the
    source would ignore."""
    chosen = [flag for flag, value in (("--sheet", spreadsheet_id), ("--csv", csv_path), ("--example", example))
              if value]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --sheet SPREADSHEET_ID, --csv FILE or --example.")
    if not spreadsheet_id:
        # Issue #11: an option that is silently ignored makes the user believe it did something.
        for name, flag in (("worksheet", "--worksheet"), ("credentials", "--credentials")):
            if given(ctx, name):
                raise click.UsageError(f"{flag} goes with --sheet; {chosen[0]} reads no Google tab.")
        words = ("load", "--csv", os.path.abspath(csv_path)) if csv_path else ("load", "--example")
        return app.Source(csv_path=csv_path, words=words)
    sheet_words = ["load", "--sheet", spreadsheet_id]
    if worksheet != DEFAULT_WORKSHEET:
        sheet_words += ["--worksheet", worksheet]
    if credentials:
        sheet_words += ["--credentials", os.path.abspath(credentials)]
    return app.Source(spreadsheet_id=spreadsheet_id, worksheet=worksheet, credentials=credentials,
                      words=tuple(sheet_words))
