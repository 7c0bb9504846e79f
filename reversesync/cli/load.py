"""`reversesync load`, and the source options and loaded lines that `sync` shares with it."""

from __future__ import annotations

import codecs
import io
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from .. import app
from ..report import counted
from ..sheets import DEFAULT_WORKSHEET
from .console import Console, reported
from .group import cli
from .options import ledger_option, session
from .progress import Renderer

F = TypeVar("F", bound=Callable[..., Any])


def _text_encoding(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        codecs.lookup(value)
        io.TextIOWrapper(io.BytesIO(), encoding=value)  # refuses a codec that is not text (base64, rot13)
    except LookupError:
        raise click.BadParameter(f"{value!r} is not a text encoding Python knows (such as cp949, utf-16, "
                                 "utf-8)") from None
    return value


def source_options(command: F) -> F:
    """--sheet, --worksheet, --credentials, --csv, --example, --encoding and --allow-shrink: where the rows come
    from (`load` and `sync`); the command builds the source with source_from()."""
    for option in reversed((
        click.option("--sheet", "spreadsheet_id", metavar="SPREADSHEET_ID", help="Google spreadsheet id to read."),
        click.option("--worksheet", default=DEFAULT_WORKSHEET, show_default=True, help="Tab to read (with --sheet)."),
        click.option("--credentials", type=click.Path(dir_okay=False), default=None,
                     help="Service-account key (JSON), with --sheet. Default: env GOOGLE_APPLICATION_CREDENTIALS."),
        click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="A CSV export of the tab instead."),
        click.option("--example", is_flag=True, help="Load the bundled example sheet (about 300 rows)."),
        click.option("--encoding", metavar="NAME", default=None, callback=_text_encoding,
                     help="The --csv file's encoding (cp949, utf-16, ...). Default: UTF-8, UTF-16 with a byte-order "
                          "mark, else cp949 (with a note)."),
        click.option("--allow-shrink", is_flag=True,
                     help="Load even if more than 10% of the assets in the source would leave it."),
    )):
        command = option(command)
    return command


@cli.command()
@source_options
@ledger_option
@click.pass_context
def load(ctx: click.Context, spreadsheet_id: str | None, worksheet: str, credentials: str | None,
         csv_path: str | None, example: bool, encoding: str | None, allow_shrink: bool,
         ledger_path: str | None) -> None:
    """Read the sheet into the ledger (creating it): new rows become pending, changed rows go back to pending.

    Rejected rows are kept as skipped with a reason; rows already finished stay finished. A source with no
    data rows is refused, and so is one that would take more than 10% of the assets in the source out of it
    (a wrong tab, a truncated export), unless --allow-shrink is given. A CSV file is read as UTF-8, as UTF-16
    when it starts with a UTF-16 byte-order mark (Excel's "Unicode Text"), else as cp949 (Korean Excel's CSV);
    --encoding names another.

    \b
    Example:
        reversesync load --sheet 1pUMPKe... --credentials key.json
        reversesync load --csv GGmetadata_and_timestamps.csv
    """
    console = Console()
    source = source_from(ctx, spreadsheet_id, worksheet, credentials, csv_path, example, encoding)
    where = session(ctx, ledger_path, console)
    with reported(console):
        loaded = app.load(where, source, allow_shrink, Renderer(console, clock=where.clock))
        for line in loaded_lines(where, loaded):
            console.say(line)


def loaded_lines(where: app.Session, loaded: app.Loaded) -> list[str]:
    """What `load` prints once the source is in the ledger (and `sync` after its load)."""
    counts = loaded.counts
    lines = [f"Loaded {counted(loaded.rows_read, 'row')} from {loaded.where} into {loaded.ledger}",
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
                csv_path: str | None, example: bool, encoding: str | None = None) -> app.Source:
    """The source the options of source_options name, with the load command that reads it (to repeat in a
    hint); usage errors for options the source would ignore."""
    chosen = [flag for flag, value in (("--sheet", spreadsheet_id), ("--csv", csv_path), ("--example", example))
              if value]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --sheet SPREADSHEET_ID, --csv FILE or --example.")
    if encoding is not None and not csv_path:
        raise click.UsageError(f"--encoding goes with --csv; {chosen[0]} reads no CSV file.")
    if not spreadsheet_id:
        # Issue #11: an option that is silently ignored makes the user believe it did something.
        for name, flag in (("worksheet", "--worksheet"), ("credentials", "--credentials")):
            if given(ctx, name):
                raise click.UsageError(f"{flag} goes with --sheet; {chosen[0]} reads no Google tab.")
        if not csv_path:
            return app.Source(words=("load", "--example"))
        words = ["load", "--csv", os.path.abspath(csv_path)]
        if encoding is not None:
            words += ["--encoding", encoding]
        return app.Source(csv_path=csv_path, words=tuple(words), encoding=encoding)
    sheet_words = ["load", "--sheet", spreadsheet_id]
    if worksheet != DEFAULT_WORKSHEET:
        sheet_words += ["--worksheet", worksheet]
    if credentials:
        sheet_words += ["--credentials", os.path.abspath(credentials)]
    return app.Source(spreadsheet_id=spreadsheet_id, worksheet=worksheet, credentials=credentials,
                      words=tuple(sheet_words))
