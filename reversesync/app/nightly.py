"""`sync`: the nightly job as one command under one lock (issue #17).

Its steps, each only after the one before it succeeded: a backup of the ledger (SQLite's backup API, the newest
seven kept); the load of the sheet (refused, with the ledger unchanged, if it would take more than 10% of the
assets out of the source); the sync's run record; the preflight; a drift check that reads again, fresh by id,
every segment reversesync wrote (set aside for a person, or sent back for the sheet to win with --repair-drift);
the rows failed for a passing cause sent back for another try, up to --retry-nights syncs per row; the run over
the rows; then, only when asked, the Sync_Log and status tab. A dry sync reads and plans the same and writes
nothing to Iconik or the spreadsheet.

Its exit status: 2 or 3 when a step stopped it (a person must act / it heals by itself), else 1 only when the
(asset, reason) pairs that need a person include one the previous finished sync did not report, else 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from .. import errors, progress, rules
from ..engine import Machinery, Sync, drift_check
from ..ledger import Ledger, Pair, Row
from ..report import rows_needing_person
from ..rules import Drift
from ..sheets import STATUS_TAB
from ..types import DEFAULT_RETRY_NIGHTS, ExitStatus, RunOptions
from .checking import append_runs_to_sync_log, write_status
from .loading import Loaded, Source, load_into
from .runs import RunReport, refuse_to_write, work
from .session import Credentials, Session, holding


@dataclasses.dataclass(frozen=True)
class SyncOptions:
    run: RunOptions                    # live or dry, workers, rate, settle, read timeout, search
    source: Source
    allow_shrink: bool = False
    retry_nights: int = DEFAULT_RETRY_NIGHTS
    repair_drift: bool = False
    sync_log: bool = False             # append the finished live runs to the spreadsheet's Sync_Log tab
    to_sheet: bool = False             # write the status tab
    spreadsheet_id: str | None = None  # the spreadsheet of --sync-log and --to-sheet
    sheet_credentials: str | None = None
    tab: str = STATUS_TAB
    patch_checked: bool = False

    def recorded(self) -> dict[str, Any]:
        """What the sync's record keeps of its options (report --needs-person reads retry_nights)."""
        return {"retry_nights": self.retry_nights, "repair_drift": self.repair_drift, "live": self.run.live,
                "source": self.source.describe()}


@dataclasses.dataclass
class SyncReport:
    sync_id: int
    live: bool
    backup: str
    loaded: Loaded
    run: RunReport | None = None
    drift: list[tuple[Row, Drift]] = dataclasses.field(default_factory=list)
    drift_checked: int = 0
    drift_repaired: int = 0
    retried: dict[str, int] = dataclasses.field(default_factory=dict)   # reason -> rows sent back
    sheet_lines: list[str] = dataclasses.field(default_factory=list)    # what --sync-log / --to-sheet did
    needs_person: list[Row] = dataclasses.field(default_factory=list)
    new_pairs: list[Pair] = dataclasses.field(default_factory=list)
    stop: errors.ReverseSyncError | None = None
    exit_status: ExitStatus = ExitStatus.OK

    def needs_person_by_reason(self) -> dict[str, int]:
        return reasons_counted(self.needs_person)


def reasons_counted(rows: Sequence[Row]) -> dict[str, int]:
    """{reason: rows}, most first."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["reason"]] = counts.get(row["reason"], 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def needs_person_now(session: Session, options: SyncOptions) -> list[Row] | None:
    """The rows that need a person as the ledger stands (a sync stopped before it began); None without a ledger
    that can be read."""
    try:
        ledger = session.open_ledger(readonly=True)
    except errors.ReverseSyncError:
        return None
    try:
        return rows_needing_person(ledger, options.retry_nights)
    finally:
        ledger.close()


# Hears of each step as it is done, with the report so far: "begun" (backed up and loaded), "drift" (the drift
# check read and set aside), "retrying" (rows sent back); the run's own progress goes to the sink.
Watcher = Callable[[str, SyncReport], None]


def sync(session: Session, credentials: Credentials, options: SyncOptions, sink: progress.Sink,
         watcher: Watcher = lambda step, report: None) -> SyncReport:
    """The nightly job; a step that stops it still leaves the sync recorded (status stopped) with what it did."""
    ledger = session.open_ledger(create=True)
    try:
        ledger.acquire("sync")
        holding(ledger, "sync", sink)
        if options.run.live:
            refuse_to_write(session, ledger, options.patch_checked)
        backup = ledger.back_up()
        loaded = load_into(session, ledger, options.source, options.allow_shrink)
        report = SyncReport(ledger.start_sync(not options.run.live, options.recorded(), backup), options.run.live,
                            backup, loaded)
        try:
            watcher("begun", report)  # inside: the sheet is loaded, so a stop here must still close the sync
            _sync(session, ledger, credentials, options, sink, watcher, report)
        except errors.ReverseSyncError as exc:
            report.stop = exc
        except (KeyboardInterrupt, BrokenPipeError):
            report.stop = errors.Interrupted(f"Interrupted. The next sync continues: {session.hint('sync', '...')}")
        _finish(ledger, options, report)
        return report
    except (KeyboardInterrupt, BrokenPipeError):
        raise errors.Interrupted("Interrupted before the sync started: the ledger is as it was (it may hold the sheet "
                                 "just loaded); nothing was sent to Iconik.") from None
    finally:
        ledger.release()
        ledger.close()


def _sync(session: Session, ledger: Ledger, credentials: Credentials, options: SyncOptions, sink: progress.Sink,
          watcher: Watcher, report: SyncReport) -> None:
    live = options.run.live
    run_options = options.run
    if not live:
        # A dry sync plans for what a live one would send back (it moves no finished row, issue #17).
        again = rules.SYNC_RETRY_REASONS + (rules.REPAIRABLE_DRIFT if options.repair_drift else ())
        run_options = dataclasses.replace(run_options, recheck=tuple(dict.fromkeys(run_options.recheck + again)))
    run_id = ledger.start_run("live" if live else "dry", run_options.to_json())
    ledger.attach_run(report.sync_id, run_id)
    if live:
        ledger.supersede_unfinished_runs(but=run_id)

    def before_rows(runner: Machinery) -> None:
        try:
            report.drift_checked, report.drift = drift_check(ledger, runner.client, run_options.workers, sink,
                                                             session.clock)
        except errors.AuthError as exc:
            ledger.finish_run(run_id, "aborted", {})
            raise errors.MustAct(f"Iconik refused the credentials during the drift check ({exc.status}): "
                                 f"{exc.message}. Fix the token, then run the sync again.") from None
        except errors.IconikUnreachable as exc:
            ledger.finish_run(run_id, "aborted", {})
            raise errors.Stopped(f"stopped: {exc.cause()} Nothing was written; the next sync continues.") from None
        if live:
            for row, drift in report.drift:
                ledger.set_drift_aside(row["asset_key"], drift.reason, drift.text, report.sync_id)
            if options.repair_drift:
                drifted = ledger.reopenable_keys(reasons=rules.REPAIRABLE_DRIFT)
                ledger.send_drift_back(drifted, report.sync_id)
                report.drift_repaired = len(drifted)
        watcher("drift", report)
        if not live:
            return
        for _, why in ledger.send_back_for_retry(rules.SYNC_RETRY_REASONS, options.retry_nights):
            report.retried[why] = report.retried.get(why, 0) + 1
        watcher("retrying", report)

    report.run = work(session, ledger, credentials, Sync, "sync", run_id, run_options, sink, before_rows)
    if report.run.stop is not None:
        report.stop = report.run.stop
        return
    if live and options.spreadsheet_id and options.sync_log:
        appended, present = append_runs_to_sync_log(session, ledger, options.spreadsheet_id,
                                                    options.sheet_credentials)
        report.sheet_lines.append(f"Sync_Log: appended {', '.join(appended) or 'nothing new'}"
                                  + (f" ({len(present)} already there)" if present else ""))
    if live and options.spreadsheet_id and options.to_sheet:
        rows, properties = write_status(session, ledger, options.spreadsheet_id, options.tab,
                                        options.sheet_credentials)
        report.sheet_lines.append(f"Wrote {rows} assets to tab {properties['title']!r}.")


def _finish(ledger: Ledger, options: SyncOptions, report: SyncReport) -> None:
    """Who needs a person now, whether any of it is new, the exit status, and the sync's record."""
    report.needs_person = rows_needing_person(ledger, options.retry_nights)
    pairs = {(row["asset_key"], row["reason"]) for row in report.needs_person}
    previous = ledger.previous_needs_person(report.sync_id) or set()
    report.new_pairs = sorted(pairs - previous)
    if report.stop is not None:
        report.exit_status = errors.exit_status(report.stop)
    else:
        report.exit_status = ExitStatus.FAILED_ROWS if report.new_pairs else ExitStatus.OK
    drift = [(row["asset_key"], found.reason) for row, found in report.drift]
    ledger.finish_sync(report.sync_id, "stopped" if report.stop is not None else "finished", int(report.exit_status),
                       sorted(pairs), drift)
