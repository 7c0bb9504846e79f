"""`reversesync run`, `resume` and `undo`: parse, call the application layer, print what it reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .. import app, errors, rules
from ..app import Credentials, NothingToResume, RunReport
from ..report import counted
from ..types import DEFAULT_RATE, STATES, ExitStatus, RunOptions
from .console import Console, Failure, reported
from .group import cli
from .options import (
    asset_ids,
    check_settle,
    iconik_options,
    json_option,
    known_reasons,
    ledger_option,
    patch_checked_option,
    session,
    settle_options,
)
from .progress import Renderer

F = TypeVar("F", bound=Callable[..., Any])


def run_options(command: F) -> F:
    """The options `run` shares with nobody else: mode, workers, pace, selection and the exactly-once knobs."""
    for option in reversed([
        click.option("--live", is_flag=True, help="Write to Iconik. Without it the run only checks and plans."),
        click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True,
                     help="Rows worked on at once."),
        click.option("--rate", type=click.FloatRange(0.1, 1000), default=DEFAULT_RATE, show_default=True,
                     help="Requests per second at most (Iconik allows about 50)."),
        click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N eligible rows."),
        click.option("--retry-failed", is_flag=True,
                     help="Send failed rows of a passing kind (server_error, connection_error, rate_limited, "
                          "conflict, unknown_outcome, forbidden) back to pending first."),
        click.option("--asset", "assets", multiple=True, metavar="ID",
                     help="Only this asset, checked again even if finished (repeatable)."),
        click.option("--search/--no-search", default=True, show_default=True,
                     help="Search Iconik 100 assets at a time right before their writes; a create goes out from that "
                          "answer (at most 5 s old), an update after a read of its segment by id. --no-search reads "
                          "each asset's own list instead."),
        click.option("--recheck", multiple=True, metavar="REASON",
                     help="Check rows finished with this reason again, e.g. ambiguous (repeatable)."),
        settle_options,
    ]):
        command = option(command)
    return command


@cli.command("run")
@run_options
@patch_checked_option
@json_option
@iconik_options
@ledger_option
@click.pass_context
def run_command(ctx: click.Context, live: bool, workers: int, rate: float, limit: int | None, retry_failed: bool,
                assets: Sequence[str], search: bool, recheck: Sequence[str], settle: float, read_timeout: float,
                patch_checked: bool, as_json: bool, credentials: Credentials, ledger_path: str | None) -> None:
    """Check every pending asset against Iconik and plan (default) or write (--live) its segment.

    A dry run reads Iconik and decides exactly as a live run would, but writes nothing.
    Exit codes: 0 no row of the sheet failed, 1 some rows are failed, 2 bad input, 3 stopped (resumable),
    130 interrupted.

    \b
    Example:
        reversesync run                  # dry run: prints the plan
        reversesync run --live --workers 8 --rate 50
    """
    canonical = asset_ids(assets)
    from_sheet = [reason for reason in recheck if reason in rules.LOAD_REJECTIONS]
    if from_sheet:
        load = session(ctx, ledger_path, Console()).hint("load", "--csv", "FILE")
        raise click.BadParameter(f"{', '.join(from_sheet)} rows are rejected by the sheet itself, so no run re-checks "
                                 f"them: correct the rows in the sheet, then load it again ({load} or --sheet), and "
                                 "they come back as pending", param_hint="--recheck")
    unknown = sorted(set(recheck) - set(known_reasons()))
    if unknown:
        raise click.BadParameter(f"unknown reason {', '.join(unknown)}; one of: {', '.join(known_reasons())}",
                                 param_hint="--recheck")
    if live:
        check_settle(settle, read_timeout)
    options = RunOptions(live=live, workers=workers, rate=rate, limit=limit, retry_failed=retry_failed,
                         assets=canonical, recheck=tuple(recheck), search=search, settle=settle,
                         read_timeout=read_timeout)
    console = Console(as_json)
    where = session(ctx, ledger_path, console)
    with reported(console):
        missing = app.missing_assets(where, canonical)
        if missing:
            raise click.BadParameter(f"{', '.join(missing)} not in the ledger; load a sheet that has it first",
                                     param_hint="--asset")
        report = app.run(where, credentials, options, Renderer(console, clock=where.clock), patch_checked)
    ctx.exit(show(console, report))


@cli.command("resume")
@patch_checked_option
@json_option
@iconik_options
@ledger_option
@click.pass_context
def resume_command(ctx: click.Context, patch_checked: bool, as_json: bool, credentials: Credentials,
                   ledger_path: str | None) -> None:
    """Continue the most recent unfinished run: its mode, its options and exactly the rows it selected.

    Rows caught between recording a write and recording its result are re-checked first, once their
    settle time has passed; nothing is re-sent blindly. An unfinished undo or repair is continued first.

    \b
    Example:
        reversesync resume
    """
    console = Console(as_json)
    where = session(ctx, ledger_path, console)
    with reported(console):
        report = app.resume(where, credentials, Renderer(console, clock=where.clock), patch_checked)
    ctx.exit(show(console, report))


@cli.command("undo")
@click.argument("run_id", metavar="RUN", type=click.IntRange(1))
@click.option("--live", is_flag=True, help="Delete and restore in Iconik. Without it the undo only reads and plans.")
@click.option("--asset", "assets", multiple=True, metavar="ID", help="Only this asset's row of RUN (repeatable).")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Rows worked on at once.")
@click.option("--rate", type=click.FloatRange(0.1, 1000), default=DEFAULT_RATE, show_default=True,
              help="Requests per second at most (Iconik allows about 50).")
@settle_options
@patch_checked_option
@json_option
@iconik_options
@ledger_option
@click.pass_context
def undo_command(ctx: click.Context, run_id: int, live: bool, assets: Sequence[str], workers: int, rate: float,
                 settle: float, read_timeout: float, patch_checked: bool, as_json: bool, credentials: Credentials,
                 ledger_path: str | None) -> None:
    """Put Iconik back as it was before live run RUN: delete the segments it created, restore the times of the
    ones it updated, from the write log.

    Each segment is read by id first; one changed in any field since reversesync wrote it (or now backing a
    subclip) is left alone and reported as changed_since, one already gone counts as undone, and a row a later
    run wrote again is left alone (undo that run first). Rows undone end skipped/undone: a plain run leaves them
    alone; `run --recheck undone`, or a load that changes the row, brings them back. Without --live it prints
    the plan and writes nothing. Exit codes as run: 0, 1 some rows failed, 2 bad input, 3 stopped (resume), 130.

    \b
    Example:
        reversesync runs                 # find the run's number
        reversesync undo 4               # the plan
        reversesync undo 4 --live        # act; `resume` continues it if interrupted
    """
    canonical = asset_ids(assets)
    if live:
        check_settle(settle, read_timeout)
    options = RunOptions(undo=run_id, live=live, assets=canonical, workers=workers, rate=rate, settle=settle,
                         read_timeout=read_timeout)
    console = Console(as_json)
    with reported(console):
        where = session(ctx, ledger_path, console)
        report = app.undo(where, credentials, options, Renderer(console, clock=where.clock), patch_checked)
    ctx.exit(show(console, report))


def show(console: Console, report: RunReport | NothingToResume) -> int:
    """Print how a run ended; returns its exit status (an early end raises it as the command's error). A stream
    closed while it is said is exit 130, never click's 1, which a scheduler reads as "rows need a person"."""
    if isinstance(report, NothingToResume):
        return int(report.exit_status)
    with reported(console):
        lines = reverting_lines(report) if report.result.mode in ("undo", "repair") else summary_lines(report)
        for line in lines + report.next_steps:
            console.say(line)
        if isinstance(report.stop, errors.Interrupted):  # every committed step stands: say how to continue
            console.note(str(report.stop))
            return int(ExitStatus.INTERRUPTED)
        if report.stop is None and report.document is not None:
            console.record(**report.document)
            console.finish()
    if report.stop is not None:
        raise Failure(str(report.stop), int(report.stop.exit_status))
    return int(report.exit_status)


def summary_lines(report: RunReport) -> list[str]:
    """This run's counts, then the ledger's totals over the current sheet (issue #11)."""
    result = report.result
    by_state: dict[str, list[tuple[str, int]]] = {}
    for (state, why), n in sorted(result.counts.items()):
        by_state.setdefault(state, []).append((why, n))
    lines = []
    if result.mode == "dry":
        # Rows it moved to checked, and finished rows it only planned for (they keep their state, issue #17).
        plan = {action: sum(n for (state, why), n in result.counts.items()
                            if (state, why) == ("checked", action) or why == f"would {action}")
                for action in ("create", "update")}
        in_sync = sum(n for (state, why), n in result.counts.items() if why == "in_sync")
        lines.append(f"Plan: would create {plan['create']}, would update {plan['update']}, in sync {in_sync}")
    lines.append(f"This run ({result.run_id}):")
    for state in STATES:
        for why, n in by_state.get(state, []):
            lines.append(f"  {state:<8} {why or '-':<18} {n:>6}")
    lines.append("Ledger (current sheet): " + ", ".join(f"{state} {report.totals[state]}" for state in STATES))
    lines.append(f"Requests: {result.requests} ({counted(result.writes, 'write')}), 429s: {result.throttled}, "
                 f"elapsed {result.elapsed:.1f} s")
    return lines


def reverting_lines(report: RunReport) -> list[str]:
    """An undo's or a repair's plan (dry) or what it did: one line per row worth a look, then the counts."""
    options, result, outcomes = report.options, report.result, report.outcomes
    shown = outcomes if not options.live else [o for o in outcomes if o.what not in ("undone", "deleted")]
    lines = [f"  {o.what:<15} {o.asset_id} (row {o.row_numbers}): {o.text}" for o in shown]
    tally: dict[str, int] = {}
    for outcome in outcomes:
        tally[outcome.what] = tally.get(outcome.what, 0) + 1
    title = f"Undo of run {options.undo}" if result.mode == "undo" else "Repair of duplicates"
    lines.append(f"{title} ({'live' if options.live else 'dry'}, run {result.run_id}): "
                 + (", ".join(f"{what} {n}" for what, n in sorted(tally.items())) or "nothing to do"))
    lines.append(f"Requests: {result.requests} ({counted(result.writes, 'write')}), 429s: {result.throttled}, "
                 f"elapsed {result.elapsed:.1f} s")
    return lines
