"""What the ledger says, shaped for people and scripts: counts, success bars, the CSV, the run history, one
asset's history, the rows that need a person, the status tab's rows, a run's JSON document. Every question goes
to the ledger's named queries; nothing here prints."""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import socket
import time
from collections.abc import Callable, Sequence
from typing import IO, Any, NamedTuple

from . import rules
from .ledger import REPORT_COLUMNS, STATES, Ledger, Row, holder_alive
from .types import DEFAULT_RETRY_NIGHTS, Json, RunResult

CSV_COLUMNS = REPORT_COLUMNS
NEEDS_PERSON_COLUMNS = (*REPORT_COLUMNS, "sync_retries")

# Every reason a row can carry: what `report --reason` accepts.
KNOWN_REASONS = tuple(sorted({*rules.FINISHED_REASONS, *rules.RETRYABLE_REASONS, *rules.LOAD_REJECTIONS,
                              *rules.SYNC_RETRY_REASONS}))

# A next step as the user can paste it: `Session.hint` (which carries the --ledger the user gave).
Hint = Callable[..., str]


def plain_hint(*words: object) -> str:
    """A next step naming no ledger, for callers without a session."""
    return " ".join(["reversesync", *map(str, words)])


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 row', '2 rows': every count a person reads."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


# A spreadsheet runs a cell starting with one of these as a formula; titles are free text (ICONIK-FACTS 6).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """value, made safe to open in a spreadsheet: text that would run as a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def summary_lines(ledger: Ledger, reasons: Sequence[str] = ()) -> list[str]:
    """Counts by state, then by (state, reason), as aligned text lines; with reasons, of the rows with one of
    them only."""
    by_state, by_reason = ledger.counts()
    if reasons:
        by_reason = {pair: n for pair, n in by_reason.items() if pair[1] in reasons}
        by_state = {state: sum(n for pair, n in by_reason.items() if pair[0] == state) for state in STATES}
    total = sum(by_state.values())
    lines = [f"{'state':<10} {'assets':>7}"]
    lines += [f"{state:<10} {by_state[state]:>7}" for state in STATES]
    lines.append(f"{'total':<10} {total:>7}")
    with_reason = sorted(((s, r), n) for (s, r), n in by_reason.items() if r)
    if with_reason:
        lines += ["", f"{'state':<10} {'reason':<20} {'assets':>7}"]
        lines += [f"{s:<10} {r:<20} {n:>7}" for (s, r), n in with_reason]
    # That count is of every reason: a table of some reasons leaves it out rather than mislead.
    removed = 0 if reasons else ledger.removed_from_source()
    if removed:
        lines += ["", f"{counted(removed, 'asset')} {'is' if removed == 1 else 'are'} no longer in the source and "
                      f"{'is' if removed == 1 else 'are'} left out of runs."]
    return lines


def write_csv(ledger: Ledger, handle: IO[str], state: str | None = None, reasons: Sequence[str] = ()) -> int:
    """One line per asset (all of them, or those in state, with one of reasons) to an open text handle; returns
    the count."""
    return _write_rows(handle, CSV_COLUMNS, ledger.report_rows(state, reasons))


def _write_rows(handle: IO[str], columns: Sequence[str], rows: Any) -> int:
    # Closed here, while the ledger is open: a reader that stops early (`report --csv - | head`) would otherwise
    # leave the query's generator to the garbage collector, after the ledger closed ("Exception ignored").
    with contextlib.closing(iter(rows)) if hasattr(rows, "close") else contextlib.nullcontext(rows) as lines:
        writer = csv.writer(handle)
        writer.writerow(columns)
        count = 0
        for row in lines:
            writer.writerow([neutralise(value) for value in row])
            count += 1
    return count


# --- the rows that need a person (issue #17) -----------------------------------------------------------


def retry_nights(ledger: Ledger) -> int:
    """How many syncs retry a row failed for a passing cause before it needs a person: the newest sync's
    --retry-nights, else the default (no sync ran yet)."""
    last = ledger.last_sync()
    options = json.loads(last["options"] or "{}") if last else {}
    nights = options.get("retry_nights")
    return int(nights) if isinstance(nights, (int, float)) and not isinstance(nights, bool) else DEFAULT_RETRY_NIGHTS


def rows_needing_person(ledger: Ledger, nights: int | None = None) -> list[Row]:
    """The rows of the current sheet that need a person (rules.needs_person, asked of the ledger), in sheet order;
    a retryable failure counts once nights syncs (default: the newest sync's --retry-nights) have tried it."""
    return ledger.rows_needing_person(rules.NEEDS_PERSON_REASONS, rules.SYNC_RETRY_REASONS,
                                      retry_nights(ledger) if nights is None else nights)


# What a person does about a row, by what its reason says can change it: one sentence per group, in the order the
# table shows them. Each is given the session's hint, so that the command it names carries the user's --ledger.
PERSON_STEPS: tuple[tuple[tuple[str, ...], Callable[[Hint, str], str]], ...] = (
    ((*rules.LOAD_REJECTIONS, "not_found"),
     lambda hint, reason: f"fix the row in the sheet (its id or its times), then load it: "
                          f"{hint('load', '--csv', 'FILE')} (or --sheet SPREADSHEET_ID)"),
    (("forbidden",),
     lambda hint, reason: f"grant the token's user access to the asset in Iconik, then: "
                          f"{hint('run', '--live', '--retry-failed')}"),
    (("ambiguous", "subclip_linked", "subclip_mismatch", "segment_status", "unsupported_status", "unsupported_type",
      "asset_deleted", "duplicated", "bad_request", "unexpected_answer", "internal_error"),
     lambda hint, reason: f"fix the asset or its segments by hand in Iconik, then: "
                          f"{hint('run', '--live', '--recheck', reason)}"),
    (("cannot_restore", "undo_failed", "repair_failed"),
     lambda hint, reason: "an undo or repair could not put the segment back (the reason text says why): put it "
                          "right by hand in Iconik, or run that undo or repair again"),
    (rules.DRIFT_REASONS,
     lambda hint, reason: f"a person changed a segment reversesync wrote: keep it, or let the sheet win for the "
                          f"times: {hint('sync', '--repair-drift')} (or {hint('run', '--live', '--recheck', reason)})"),
    (rules.SYNC_RETRY_REASONS,
     lambda hint, reason: f"Iconik kept failing on it night after night; once the cause is gone: "
                          f"{hint('run', '--live', '--retry-failed')}"),
)


def person_step(reason: str, hint: Hint = plain_hint) -> str:
    """What a person does about a row that needs one with this reason ('' for a reason that needs nobody)."""
    return next((step(hint, reason) for reasons, step in PERSON_STEPS if reason in reasons), "")


def needs_person_lines(rows: Sequence[Row], hint: Hint = plain_hint) -> list[str]:
    """One line per reason: how many rows, what a person does; then the total."""
    if not rows:
        return ["No row needs a person."]
    by_reason: dict[str, int] = {}
    for row in rows:
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + 1
    order = [reason for reasons, _ in PERSON_STEPS for reason in reasons]
    shown = sorted(by_reason, key=lambda reason: (order.index(reason) if reason in order else len(order), reason))
    width = max(len("reason"), *map(len, shown))
    lines = [f"{'reason':<{width}} {'rows':>5}  what a person does"]
    lines += [f"{reason:<{width}} {by_reason[reason]:>5}  {person_step(reason, hint) or '-'}" for reason in shown]
    lines.append(f"{counted(len(rows), 'row')} {'needs' if len(rows) == 1 else 'need'} a person.")
    return lines


def write_needs_person_csv(ledger: Ledger, handle: IO[str], rows: Sequence[Row]) -> int:
    """The report CSV's columns and sync_retries, one line per row that needs a person; returns the count."""
    return _write_rows(handle, NEEDS_PERSON_COLUMNS, ledger.report_rows_of([row["asset_key"] for row in rows]))


# --- machine-readable results (issue #12) --------------------------------------------------------------


def run_document(ledger: Ledger, result: RunResult, command: str) -> Json:
    """What `run`, `resume`, `undo` and `verify --repair` print with --json: the run, its counts by state and
    reason, the ledger's totals over the current sheet, and one object per row the run touched."""
    counts: dict[str, dict[str, int]] = {}
    for (state, why), n in sorted(result.counts.items()):
        counts.setdefault(state, {})[why or "-"] = n
    totals, _ = ledger.counts()
    return {"command": command, "run_id": result.run_id, "mode": result.mode, "status": result.status,
            "counts": counts, "ledger": totals, "requests": result.requests, "writes": result.writes,
            "throttled": result.throttled, "elapsed_seconds": round(result.elapsed, 3),
            "rows": ledger.rows_of_run(result.run_id)}


# --- run history and the PRD's success bars ----------------------------------------------------------

RUN_COLUMNS = ("id", "mode", "started", "finished", "duration", "status", "requests", "429s", "counts")
# The order a run's counts are told in: rows by the state it left them in, then those it did not finish.
OUTCOMES = ("created", "updated", "checked", "skipped", "failed", "unfinished")


def run_records(ledger: Ledger, now: float | None = None) -> list[Json]:
    """One record per run, newest last, its figures as numbers: what `runs --json` prints and `runs` shows.

    Counts come from the event log, not from the figures a run writes when it closes (issue #11): a run
    that was killed, or is still running, shows what it did so far, and a running run's duration counts from
    its start. A run that never closed and is not running is shown as killed. Requests, 429s and writes are
    recorded when a run (or a leg of it) closes: before that they are a lower bound, or None when no leg
    closed (figures_complete says which)."""
    now = time.time() if now is None else now
    runs = ledger.runs()
    outcomes, last_events = ledger.run_outcomes(), ledger.run_last_events()
    holder = ledger.lock_holder()
    live_id = _live_run_id(runs, holder)
    records = []
    for run in runs:
        closed = run["finished_at"] is not None
        live = run["id"] == live_id
        status = "killed" if run["status"] == "running" and not live else run["status"]
        lower_bound = False
        if closed:
            seconds = float(run["elapsed_seconds"] or 0)
        elif live and holder is not None:
            # The leg under way started with the run, or, after a closed leg, when the resume took the lock.
            leg_start = _epoch(holder["acquired_at"]) if run["elapsed_seconds"] else _epoch(run["started_at"])
            seconds = run["elapsed_seconds"] + max(0.0, now - leg_start)
        else:
            seconds, lower_bound = _unclosed_seconds(run, last_events.get(run["id"]))
        known = closed or bool(run["elapsed_seconds"] or run["requests"] or run["throttled"] or run["writes"])
        records.append({
            "id": int(run["id"]), "mode": run["mode"], "started": run["started_at"], "finished": run["finished_at"],
            "duration": _duration(seconds) + ("+" if lower_bound else ""), "elapsed_seconds": round(seconds, 3),
            "status": status, "requests": int(run["requests"]) if known else None,
            "429s": int(run["throttled"]) if known else None, "writes": int(run["writes"]) if known else None,
            "figures_complete": closed, "counts": _outcome_counts(outcomes.get(run["id"], {}), run["mode"])})
    return records


def runs_table(ledger: Ledger, now: float | None = None, zone: datetime.tzinfo | None = None) -> list[list[str]]:
    """The `runs` table: a header (RUN_COLUMNS, the times' zone named) and one row of text cells per run,
    newest last; a figure not final yet is '12+', or '?'. Times in local time (zone None) or zone."""
    records = run_records(ledger, now)
    started, finished = (local_times([record[which] for record in records], zone) for which in ("started", "finished"))
    named = started.zone if started.zone == finished.zone else "local time"
    header = [f"{column} ({named})" if column in ("started", "finished") else column for column in RUN_COLUMNS]
    return [header] + [
        [str(record["id"]), record["mode"], start, finish, record["duration"], record["status"],
         _figure(record["requests"], record["figures_complete"]), _figure(record["429s"], record["figures_complete"]),
         _outcome_summary(record["counts"])]
        for record, start, finish in zip(records, started.cells, finished.cells, strict=True)]


class LocalTimes(NamedTuple):
    cells: list[str]
    zone: str  # "UTC+09:00" when every time shares it; "local time" when they differ (each cell then says its own)


def local_times(stamps: Sequence[str | None], zone: datetime.tzinfo | None = None) -> LocalTimes:
    """The ledger's UTC stamps as a person beside the machine reads them (issue #18: a scheduler's log and
    Explorer speak local time); the ledger and --json keep UTC."""
    moments = [None if stamp is None else datetime.datetime.fromisoformat(stamp).astimezone(zone) for stamp in stamps]
    offsets = {moment.strftime("%z") for moment in moments if moment is not None}
    one_zone = len(offsets) <= 1
    cells = ["-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S" if one_zone else "%Y-%m-%d %H:%M:%S%z")
             for moment in moments]
    if not one_zone:
        return LocalTimes(cells, "local time")
    offset = next(iter(offsets), datetime.datetime.now().astimezone(zone).strftime("%z"))
    return LocalTimes(cells, "UTC" if offset == "+0000" else f"UTC{offset[:3]}:{offset[3:]}")


def _live_run_id(runs: list[Row], holder: Row | None) -> int | None:
    """The run a live process holds the ledger for, or None."""
    running = [run for run in runs if run["status"] == "running"]
    if not running or holder is None or holder["command"] not in ("run", "resume", "undo", "repair", "sync") \
            or not holder_alive(holder, socket.gethostname()):
        return None
    return int(running[-1]["id"])


def _unclosed_seconds(run: Row, last_event: str | None) -> tuple[float, bool]:
    """A run that stopped without closing: from its start to its last recorded step. With legs closed
    before (a resume), the last leg's time is unknown: the closed legs' time, a lower bound (True)."""
    if run["elapsed_seconds"]:
        return float(run["elapsed_seconds"]), True
    if last_event is None:
        return 0.0, False
    return max(0.0, _epoch(last_event) - _epoch(run["started_at"])), False


def _outcome_counts(outcome: dict[str, int], mode: str) -> dict[str, int]:
    """{'created': 60, 'skipped': 2, 'unfinished': 3}: rows by the state the run left them in; a live run's
    rows left pending or checked are unfinished."""
    unfinished = outcome.get("pending", 0) + (outcome.get("checked", 0) if mode == "live" else 0)
    counts = {state: outcome[state] for state in OUTCOMES[:-1]
              if outcome.get(state) and not (state == "checked" and mode == "live")}
    if unfinished:
        counts["unfinished"] = unfinished
    return counts


def _outcome_summary(counts: dict[str, int]) -> str:
    """'created 60, skipped 2, unfinished 3'."""
    return ", ".join(f"{state} {n}" for state, n in counts.items()) or "-"


def _figure(value: int | None, complete: bool) -> str:
    if value is None:
        return "?"
    return str(value) if complete else f"{value}+"


def _epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp).timestamp()


def _duration(seconds: float | None) -> str:
    seconds = int(round(seconds or 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --- one asset's history -------------------------------------------------------------------------------


def history_lines(row: Row, events: list[Row], zone: datetime.tzinfo | None = None) -> list[str]:
    """An asset's events (local time or zone's, run, from -> to, detail), then where it stands now (issue #11)."""
    times = "" if row["time_start_ms"] is None else f", {row['time_start_ms']}-{row['time_end_ms']} ms"
    title = " ".join((row["title"] or "").split())
    numbers = str(row["row_numbers"])
    where = f"{'rows' if ',' in numbers else 'row'} {numbers}"
    lines = [f"Asset {row['asset_id']} ({where}): {title or '(no title)'}{times}"]
    if not row["in_source"]:
        lines.append("  no longer in the source: left out of runs")
    shown = local_times([event["at"] for event in events], zone)
    table = [[f"time ({shown.zone})", "run", "from -> to", "detail"]]
    table += [[when, "-" if event["run_id"] is None else str(event["run_id"]),
               f"{event['from_state'] or '-'} -> {event['to_state']}", event["detail"] or ""]
              for when, event in zip(shown.cells, events, strict=True)]
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    lines += [""] + ["  ".join(cell.ljust(width) for cell, width in zip(line[:3], widths, strict=True)) + "  " + line[3]
                     for line in table]
    lines += ["", f"Now: {row['state']}; reason {row['reason'] or '-'}; action {row['action'] or '-'}; "
                  f"segment {row['segment_id'] or '-'}"]
    if row.get("done_action"):
        lines.append(f"  reversesync's last write: {row['done_action']} of segment {row.get('done_segment_id') or '-'} "
                     f"in run {row.get('done_run_id') or '-'}")
    if row["reason_text"]:
        lines.append(f"  {row['reason_text']}")
    return lines


def success_bars(ledger: Ledger, hint: Hint = plain_hint) -> Json | None:
    """The PRD's success bars for the latest live run that did the work and still stands, or None before any
    live run.

    An undo takes back what a run did, so the bars never count it (issue #17): a live run whose every landed
    write an undo reverted no longer stands (when none stands, nothing is measured and the bars say how to write
    the rows again); rows an undo reverted or left (rules.UNDO_REASONS) are out of the rates and counted in
    left_out; a re-run is a later live run that stands, never an undo."""
    live = ledger.runs(mode="live")
    if not live:
        return None
    reverted = {run_id: undo_runs for run_id, (landed, undone, undo_runs) in ledger.live_writes_undone().items()
                if landed and undone == landed}
    undone_runs = [{"run_id": run_id, "undone_by": by} for run_id, by in sorted(reverted.items())]
    standing = [run for run in live if run["id"] not in reverted]
    if not standing:
        again = hint("run", "--live", "--recheck", "undone")
        detail = f"not measured: every live run's writes were undone; to write them again: {again}"
        return {"run_id": None, "status": None, "undone_runs": undone_runs, "left_out": None, "next_step": again,
                "bars": [_bar(name, target, None, lambda v: True, detail) for name, target in _BAR_TARGETS]}
    writing = [run for run in standing if run["writes"]]
    work = (writing or standing)[-1]
    # Rates are over the whole sync the ledger holds (a dry run may have found the 404s before the
    # live run); elapsed is the live run that did the writing.
    checked = ledger.checked_by_state_and_action()
    left_out = sum(r["n"] for r in checked if r["reason"] in rules.UNDO_REASONS)
    checked = [r for r in checked if r["reason"] not in rules.UNDO_REASONS]
    written = sum(r["n"] for r in checked if r["state"] in ("created", "updated"))
    failed = sum(r["n"] for r in checked if r["state"] == "failed")
    failed_writes = sum(r["n"] for r in checked if r["state"] == "failed" and r["action"])
    rows = sum(r["n"] for r in checked)
    reruns = [run for run in standing if run["id"] > work["id"] and run["status"] == "finished"]
    bars = [
        _bar("creation_success_rate", ">= 95%", _ratio(written, written + failed_writes),
             lambda v: v >= 0.95, f"{written} of {counted(written + failed_writes, 'needed write')} done"),
        _bar("error_rate", "< 5%", _ratio(failed, rows), lambda v: v < 0.05,
             f"{failed} of {counted(rows, 'row')} failed"),
        _bar("elapsed_seconds", "< 1800", round(work["elapsed_seconds"], 1), lambda v: v < 1800,
             f"{_duration(work['elapsed_seconds'])} of active run time"),
        _bar("rerun_writes", "0", reruns[0]["writes"] if reruns else None, lambda v: v == 0,
             f"re-run {reruns[0]['id']} made {counted(reruns[0]['writes'], 'write')}" if reruns
             else f"not measured yet: run '{hint('run', '--live')}' again"),
    ]
    return {"run_id": work["id"], "status": work["status"], "undone_runs": undone_runs, "left_out": left_out,
            "bars": bars}


_BAR_TARGETS = (("creation_success_rate", ">= 95%"), ("error_rate", "< 5%"), ("elapsed_seconds", "< 1800"),
                ("rerun_writes", "0"))


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _bar(name: str, target: str, value: float | None, test: Callable[[float], bool], detail: str) -> Json:
    return {"name": name, "target": target, "value": value, "met": None if value is None else bool(test(value)),
            "detail": detail}


def bars_lines(bars: Json | None) -> list[str]:
    if bars is None:
        return ["Success bars: no live run yet."]
    undone = "; ".join(f"live run {found['run_id']} by undo {'run' if len(found['undone_by']) == 1 else 'runs'} "
                       f"{', '.join(map(str, found['undone_by']))}" for found in bars.get("undone_runs", []))
    if bars["run_id"] is None:
        return [f"Success bars: not measured: every live run's writes were undone ({undone}); to write them again: "
                f"{bars['next_step']}"]
    notes = [bars["status"]]
    if undone:
        notes.append(f"undone: {undone}")
    if bars.get("left_out"):
        notes.append(f"not counted: {counted(bars['left_out'], 'row')} an undo reverted or left")
    lines = [f"Success bars (live run {bars['run_id']}, {'; '.join(notes)}):"]
    for bar in bars["bars"]:
        value = bar["value"]
        if value is None:
            shown = "-"
        elif bar["name"].endswith("rate"):
            shown = f"{value * 100:.1f}%"
        else:
            shown = str(value)
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[bar["met"]]
        lines.append(f"  {bar['name']:<22} {shown:>8}  target {bar['target']:<7} {verdict:<12} {bar['detail']}")
    return lines


# --- the status tab in the spreadsheet (issue #12) -----------------------------------------------------

STATUS_COLUMNS = ("asset_id", "row_numbers", "state", "reason", "reason_text", "action", "segment_id", "last_run",
                  "updated_at")


def status_rows(ledger: Ledger) -> list[list[Any]]:
    """The status tab's rows: the header, then one row per asset still in the sheet, in sheet order.

    Values go to Google as they are (written RAW, so no neutralise(): a quote would show in the cell); an
    empty value is '', since a null in a values write leaves the cell's old value in place. A single row
    number is a number, so that the column sorts as numbers (2 before 10); '7,8' stays text."""
    rows: list[list[Any]] = [list(STATUS_COLUMNS)]
    for found in ledger.status_rows():
        row: list[Any] = ["" if value is None else value for value in found]
        row[1] = int(row[1]) if row[1].isdigit() else row[1]
        rows.append(row)
    return rows
