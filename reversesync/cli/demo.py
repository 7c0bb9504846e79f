"""`reversesync demo`: the whole flow on a local sandbox, then an undo that leaves it as it was seeded."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from typing import Any

import click

from .. import app, errors, outputs, report
from .. import sandbox as sandbox_module
from ..types import ExitStatus, Json, RunOptions
from .console import Console, reported
from .group import cli
from .load import load
from .progress import Renderer
from .runs import show
from .verify import print_verified


@cli.command("demo")
@click.option("--keep", "keep_dir", type=click.Path(file_okay=False), help="Keep the ledger and CSV in DIR.")
@click.pass_context
def demo_command(ctx: click.Context, keep_dir: str | None) -> None:
    """The whole flow on a local sandbox, no credentials or network: load, plan, write, resume, verify, undo.

    Without --keep it works in a temporary folder and removes it at the end.

    \b
    Example:
        reversesync demo --keep ./demo
    """
    folder = os.path.abspath(keep_dir) if keep_dir else tempfile.mkdtemp(prefix="reversesync-demo-")
    console = Console()
    try:
        with reported(console):
            code = _demo(ctx, console, folder)
    finally:
        if not keep_dir:
            # Issue #11: the folder was announced as temporary, so it goes (a second Ctrl-C or a crash too).
            shutil.rmtree(folder, ignore_errors=True)
    console.say("")
    if keep_dir:
        console.say(f"Ledger: {os.path.join(folder, 'demo.db')}")
        console.say(f"Report: {os.path.join(folder, 'report.csv')}")
    else:
        console.say("The ledger and report were in a temporary folder, now removed; keep them with --keep DIR.")
    console.say("The failed rows are ids the example sheet names but the sandbox does not hold (404), on purpose.")
    ctx.exit(code)


def _demo(ctx: click.Context, console: Console, folder: str) -> int:
    """The demo's seven steps in folder, then an undo of its live runs; returns verify's exit code (or the
    undo's, or 1 if the sandbox did not end as it was seeded)."""
    os.makedirs(folder, exist_ok=True)
    ledger_path = os.path.join(folder, "demo.db")
    for stale in (ledger_path, ledger_path + "-wal", ledger_path + "-shm"):
        if os.path.exists(stale):
            os.remove(stale)
    catalogue = sandbox_module.Catalogue()
    catalogue.seed_from_sheet(app.example_sheet_path(), seed=7)
    seeded = catalogue.dump()
    faults = sandbox_module.Faults(server_error=0.02, conflict=0.02, drop_before=0.01, drop_after=0.02)
    rate = 200.0  # the sandbox is local; against Iconik keep the default 50
    # The sandbox's budget matches the client's: its RateLimit-Remaining would otherwise count at Iconik's 50/s
    # and the client, which follows that header, would run the demo at a quarter of the pace it asked for.
    server = sandbox_module.Sandbox(catalogue, latency_ms=3, faults=faults, seed=7, rate=rate).start()
    credentials = app.Credentials(server.url, server.app_id, server.auth_token)
    where = app.Session(ledger_path, notes=console.note)

    def step(number: int, text: str) -> None:
        console.say("")
        click.secho(f"== {number}/7 {text}", bold=True, file=console.human)

    try:
        console.say(f"A sandbox Iconik is running on {server.url} with {len(catalogue.assets)} assets and a few "
                    "injected faults (5xx, 409, lost answers).")
        step(1, "load the example sheet (about 300 rows, every case) into the ledger")
        ctx.invoke(load, csv_path=app.example_sheet_path(), ledger_path=ledger_path)
        step(2, "dry run: read Iconik, decide every asset, write nothing")
        # Settle time and read timeout scaled down with the sandbox's small latency (issue #10): the
        # ratio that matters, settle > read timeout + late apply + index lag, is kept.
        options = RunOptions(rate=rate, settle=4.0, read_timeout=2.0)
        shown(console, app.run(where, credentials, options, Renderer(console)))
        step(3, "live run, interrupted on purpose after 60 rows, as a Ctrl-C would")
        interrupting = Renderer(console, interrupt_after=60)
        shown(console, app.run(where, credentials, dataclasses.replace(options, live=True), interrupting),
              on_purpose=interrupting.interrupted_on_purpose)
        step(4, "resume: rows caught mid-write are re-checked first, nothing is re-sent blindly")
        shown(console, app.resume(where, credentials, Renderer(console)))
        step(5, "live run again: everything is done, so it makes zero writes")
        shown(console, app.run(where, credentials, dataclasses.replace(options, live=True), Renderer(console)))
        step(6, "report")
        with app.reading(where, readonly=False) as ledger:
            bars = report.bars_lines(report.success_bars(ledger, where.hint))
            for line in report.summary_lines(ledger) + [""] + bars:
                console.say(line)
            with outputs.private_output(os.path.join(folder, "report.csv"), bom=True) as handle:
                report.write_csv(ledger, handle)
            live_runs = [run["id"] for run in ledger.runs() if run["mode"] == "live" and run["writes"]]
        step(7, "verify: read Iconik again for every asset reversesync wrote or found in sync")
        code = print_verified(console, app.verify(where, credentials, 8, rate, 0.0, Renderer(console)))
        console.say("")
        click.secho("== and back: undo the live runs, newest first, to leave the sandbox as it was seeded", bold=True,
                    file=console.human)
        for run_id in reversed(live_runs):
            undone = shown(console, app.undo(where, credentials, RunOptions(
                undo=run_id, live=True, workers=4, rate=rate, settle=options.settle,
                read_timeout=options.read_timeout), Renderer(console)))
            code = code or undone
        server.settle()
        changed = catalogue_changes(seeded, catalogue.dump())
        if changed:
            console.say(f"The sandbox is NOT as it was seeded: {'; '.join(changed[:5])}")
            return code or int(ExitStatus.FAILED_ROWS)
        console.say(f"The sandbox is back as it was seeded: every asset and segment equal to the seed, ids and "
                    f"fields alike (date_modified aside), after undoing run{'s' if len(live_runs) > 1 else ''} "
                    f"{', '.join(map(str, reversed(live_runs)))}.")
        return code
    finally:
        server.stop()


def shown(console: Console, report: app.RunReport | app.NothingToResume, on_purpose: bool = False) -> int:
    """Print a step's run; a Ctrl-C the person pressed (not the demo's own) ends the demo there, its temporary
    folder removed, instead of carrying on to the next step."""
    code = show(console, report)
    if code == ExitStatus.INTERRUPTED and not on_purpose:
        raise errors.Interrupted("Demo stopped.")
    return code


def catalogue_changes(seeded: Json, now: Json) -> list[str]:
    """What differs between two sandbox dumps, read-only stamps that any write moves (date_modified) and the
    segments an undo deleted softly (they wait in Iconik's bin, status DELETED) aside."""

    def strip(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if k != "date_modified"}

    def plain(dump: Json) -> tuple[dict[str, Any], dict[str, Any]]:
        return ({key: strip(asset) for key, asset in dump["assets"].items()},
                {key: [strip(s) for s in found if s.get("status") != "DELETED"]
                 for key, found in dump["segments"].items()})

    (assets_before, segments_before), (assets_now, segments_now) = plain(seeded), plain(now)
    changes = [f"asset {key}" for key in sorted(set(assets_before) | set(assets_now))
               if assets_before.get(key) != assets_now.get(key)]
    changes += [f"segments of {key}" for key in sorted(set(segments_before) | set(segments_now))
                if (segments_before.get(key) or []) != (segments_now.get(key) or [])]
    return changes
