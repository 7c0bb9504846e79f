"""The lifecycle of the commands that run over rows (run, resume, undo, verify --repair): open and lock the
ledger, refuse what must not start, record or reopen the run, build the client, preflight, run, and say how it
ended. Nothing here prints: events go to the sink, the outcome comes back as a RunReport."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from .. import errors, progress
from ..engine import Machinery, Outcome, Repair, Reverting, Sync, Undo, settle_wait
from ..ledger import Ledger, Row
from ..report import run_document
from ..types import ExitStatus, Json, RunOptions, RunResult
from . import preflight
from .session import Credentials, Session, holding

PATCH_REPLACED = "patch_replaced"


@dataclasses.dataclass
class RunReport:
    """How a run (or one leg of it) ended, for the CLI to show."""

    command: str                       # run / resume / undo / repair
    result: RunResult
    options: RunOptions
    totals: dict[str, int]             # the ledger's rows by state over the current sheet
    exit_status: ExitStatus
    stop: errors.ReverseSyncError | None = None   # why it ended early; shown after the summary
    next_steps: list[str] = dataclasses.field(default_factory=list)
    outcomes: list[Outcome] = dataclasses.field(default_factory=list)   # an undo's or a repair's rows
    document: Json | None = None       # what --json prints (only when it did not end early)


@dataclasses.dataclass
class NothingToResume:
    exit_status: ExitStatus


def missing_assets(session: Session, keys: tuple[str, ...]) -> list[str]:
    """The asset ids of keys that the ledger does not hold (--asset names rows of the sheet)."""
    if not keys:
        return []
    ledger = session.open_ledger()
    try:
        return sorted(set(keys) - ledger.known_keys(list(keys)))
    finally:
        ledger.close()


def run(session: Session, credentials: Credentials, options: RunOptions, sink: progress.Sink,
        patch_checked: bool = False) -> RunReport:
    """`run` (dry) and `run --live`: record a new run, preflight, work its rows."""
    return _locked(session, lambda ledger: _sync(session, ledger, credentials, options, sink, patch_checked))


def resume(session: Session, credentials: Credentials, sink: progress.Sink,
           patch_checked: bool = False) -> RunReport | NothingToResume:
    """Continue the newest unfinished live undo or repair, else the newest unfinished run, with its mode, its
    options and exactly the rows it selected."""
    return _locked(session, lambda ledger: _resume(session, ledger, credentials, sink, patch_checked))


def undo(session: Session, credentials: Credentials, options: RunOptions, sink: progress.Sink,
         patch_checked: bool = False) -> RunReport:
    """`undo RUN`: plan (dry) or make the undo of a live run."""
    return _locked(session, lambda ledger: _start_reverting(session, ledger, credentials, "undo", options, sink,
                                                            patch_checked))


def repair(session: Session, credentials: Credentials, options: RunOptions, sink: progress.Sink,
           patch_checked: bool = False) -> RunReport:
    """`verify --repair`: plan (dry) or make the removal of duplicates."""
    return _locked(session, lambda ledger: _start_reverting(session, ledger, credentials, "repair", options, sink,
                                                            patch_checked))


def _locked(session: Session, work: Callable[[Ledger], Any]) -> Any:
    """work(ledger) with the ledger open, its lock released and the file closed whatever happens; Ctrl-C (or a
    closed stdout) outside the row loop, in preflight or bookkeeping, is an interruption: every committed step
    stands."""
    ledger = session.open_ledger()
    try:
        return work(ledger)
    except (KeyboardInterrupt, BrokenPipeError):
        raise errors.Interrupted(f"Interrupted. Continue with: {session.hint('resume')}") from None
    finally:
        ledger.release()
        ledger.close()


def _sync(session: Session, ledger: Ledger, credentials: Credentials, options: RunOptions, sink: progress.Sink,
          patch_checked: bool) -> RunReport:
    ledger.acquire("run")
    holding(ledger, "run", sink)
    if options.live:
        refuse_to_write(session, ledger, patch_checked)
    # Recorded before the first request, so a kill or a refusal at preflight leaves it to resume (issue #10).
    run_id = ledger.start_run("live" if options.live else "dry", options.to_json())
    if options.live:  # a dry command never changes another run's status (issue #15)
        ledger.supersede_unfinished_runs(but=run_id)
    return work(session, ledger, credentials, Sync, "run", run_id, options, sink)


def _resume(session: Session, ledger: Ledger, credentials: Credentials, sink: progress.Sink,
            patch_checked: bool) -> RunReport | NothingToResume:
    ledger.acquire("resume")
    holding(ledger, "resume", sink)
    unfinished = ledger.unfinished_run()
    if unfinished is None:
        sink(progress.Note("Nothing to resume: the last run finished."))
        return NothingToResume(ExitStatus.FAILED_ROWS if ledger.failed_in_source() else ExitStatus.OK)
    options = RunOptions.from_json(_json(unfinished["options"]))
    if options.live:
        refuse_to_write(session, ledger, patch_checked, resuming=unfinished)
    sink(progress.Resuming(unfinished["id"], unfinished["mode"], unfinished["started_at"]))
    ledger.reopen_run(unfinished["id"])
    kind: type[Machinery] = {"undo": Undo, "repair": Repair}.get(unfinished["mode"], Sync)
    command = unfinished["mode"] if unfinished["mode"] in ("undo", "repair") else "resume"
    return work(session, ledger, credentials, kind, command, unfinished["id"], options, sink)


def _start_reverting(session: Session, ledger: Ledger, credentials: Credentials, mode: str, options: RunOptions,
                     sink: progress.Sink, patch_checked: bool) -> RunReport:
    ledger.acquire(mode)
    holding(ledger, mode, sink)
    if mode == "undo":
        _check_undo_target(session, ledger, options)
    if options.live:
        refuse_to_write(session, ledger, patch_checked)
    if mode == "repair":
        # A write answered lost may still land and the lists trail writes: a repair looks once it has settled.
        wait = settle_wait(ledger, options.settle, session.clock.time())
        if wait > 0:
            sink(progress.SettleWait(wait))
            session.clock.sleep(wait)
    run_id = ledger.start_run(mode, options.to_json())
    if options.live:  # a dry command never changes another run's status (issue #15)
        if mode == "undo" and options.undo is not None:
            ledger.close_undone_run(options.undo, options.assets)  # a resume must never redo what it removes
        ledger.supersede_unfinished_runs(but=run_id)
    return work(session, ledger, credentials, Undo if mode == "undo" else Repair, mode, run_id, options, sink)


def work(session: Session, ledger: Ledger, credentials: Credentials, kind: type[Machinery], command: str,
         run_id: int, options: RunOptions, sink: progress.Sink,
         before_rows: Callable[[Machinery], None] = lambda runner: None) -> RunReport:
    """Preflight the recorded run, work it, and say how it ended. before_rows(runner) runs between the preflight
    and the rows (a sync's drift check and retries)."""
    client = session.client(credentials, options)
    runner = kind(ledger, client, options, sink, session.clock)
    _preflight(session, runner, ledger, run_id, sink)
    before_rows(runner)
    result = runner.run(run_id)
    stop = _stop_of(session, ledger, result)
    outcomes = runner.outcomes if isinstance(runner, Reverting) else []
    report = RunReport(command, result, options, ledger.counts()[0], _exit_status(ledger, stop, outcomes, result),
                       stop, outcomes=outcomes)
    if stop is None:
        report.document = run_document(ledger, result, command)
        if isinstance(runner, Reverting):  # an undo's or a repair's rows, planned (dry) or done (issue #17)
            report.document["outcomes"] = [dataclasses.asdict(outcome) for outcome in outcomes]
        if result.mode == "dry" and result.unfinished_writes:
            report.next_steps.append("Before writing, re-check the unfinished writes with: "
                                     f"{session.hint('run', '--live', here=True)}")
        if result.mode in ("undo", "repair") and not options.live \
                and any(o.what.startswith("would ") for o in outcomes):
            words = ["undo", str(options.undo), "--live"] if result.mode == "undo" else ["verify", "--repair", "--live"]
            report.next_steps.append(f"Nothing was written. To act: {session.hint(*words, here=True)}")
    return report


def _exit_status(ledger: Ledger, stop: errors.ReverseSyncError | None, outcomes: list[Outcome],
                 result: RunResult) -> ExitStatus:
    if stop is not None:
        return stop.exit_status
    if result.mode in ("undo", "repair"):
        return ExitStatus.FAILED_ROWS if any(o.what == "failed" for o in outcomes) else ExitStatus.OK
    # The exit code says what the ledger holds, not what this run happened to touch (issue #11).
    return ExitStatus.FAILED_ROWS if ledger.failed_in_source() else ExitStatus.OK


def _preflight(session: Session, runner: Machinery, ledger: Ledger, run_id: int, sink: progress.Sink) -> None:
    """The recorded run's preflight; a refusal closes the run as aborted, so `resume` continues it once the cause
    is fixed (exit 2) or has passed (exit 3). Then the line that says where the run goes (issue #11)."""
    user = preflight.checked(runner.preflight, runner.client.url, sink, session.clock,
                             session.hint("resume", here=True),
                             on_refusal=lambda: ledger.finish_run(run_id, "aborted", {}))
    sink(progress.Target(runner.client.url, preflight.who(user), ledger.path))


def _stop_of(session: Session, ledger: Ledger, result: RunResult) -> errors.ReverseSyncError | None:
    """Why a run ended before finishing, as the error the command ends with; None for a finished run."""
    hint = session.hint("resume", here=True)
    if isinstance(result.error, errors.PatchReplaced):
        # Every further PATCH would reset another person's segment, a resume's included: the run is closed, not
        # left to resume, and every write is held until a person clears the hold.
        ledger.set_run_status(result.run_id, "failed")
        ledger.hold(PATCH_REPLACED, result.run_id, str(result.error))
        return errors.MustAct(f"{result.error} Every writing command refuses until then; once Iconik's PATCH "
                              "changes only the fields it carries again, run the command again with --patch-checked.")
    if result.status == "aborted":
        cause, remedy = errors.stopped_cause(result.error)
        text = f"stopped: {cause} Rows in flight were left unfinished, not failed; {remedy}, then continue with: {hint}"
        # A revoked token or a user that can read nothing never heals by itself: a person must act (exit 2).
        needs_person = result.error is not None and errors.exit_status(result.error) == ExitStatus.INPUT
        return errors.MustAct(text) if needs_person else errors.Stopped(text)
    if result.status == "interrupted":
        return errors.Interrupted(f"Interrupted. Continue with: {hint}")
    return None


def refuse_to_write(session: Session, ledger: Ledger, patch_checked: bool, resuming: Row | None = None) -> None:
    """A writing command refuses while a hold stands (unless the person cleared it) or while a live undo or
    repair is unfinished (issue #15): a new write could undo its work, or it ours."""
    hold = ledger.active_hold()
    if hold and patch_checked:
        ledger.clear_holds()
    elif hold:
        raise errors.MustAct(f"writes are on hold since {hold['at']}: {hold['detail']} Once Iconik's PATCH changes "
                             "only the fields it carries again, run the command again with --patch-checked.")
    unfinished = ledger.unfinished_undo()
    if unfinished and (resuming is None or unfinished["id"] != resuming["id"]):
        raise errors.MustAct(f"{unfinished['mode']} run {unfinished['id']} did not finish; continue it first with: "
                             f"{session.hint('resume', here=True)}")


def _check_undo_target(session: Session, ledger: Ledger, options: RunOptions) -> None:
    """Only a live run's writes can be undone; an unknown run, or a dry one, is an input error."""
    target = ledger.run(options.undo or 0)
    listing = session.hint("runs", here=True)
    if target is None:
        raise errors.InputError(f"there is no run {options.undo} in {ledger.path}; the runs are listed by: {listing}")
    if target["mode"] != "live":
        article = "an" if target["mode"][0] in "aeiou" else "a"
        raise errors.InputError(f"run {options.undo} is {article} {target['mode']} run, not a live run: it wrote "
                                f"nothing to undo. The runs are listed by: {listing}")
    known = ledger.known_keys(list(options.assets))
    missing = [key for key in options.assets if key not in known]
    if missing:
        raise errors.InputError(f"{', '.join(missing)} not in the ledger; --asset names a row of run {options.undo}.")


def _json(text: str) -> Json:
    value = json.loads(text or "{}")
    return value if isinstance(value, dict) else {}
