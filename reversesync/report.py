"""What the ledger says: counts by state and reason, and one CSV line per asset."""

import csv
import json

from .ledger import STATES

CSV_COLUMNS = ("asset_id", "row_numbers", "title", "time_start_ms", "time_end_ms", "state", "reason",
               "reason_text", "action", "segment_id", "attempts", "http_status", "last_error", "in_source",
               "updated_at")

# A spreadsheet runs a cell starting with one of these as a formula; titles are free text (ICONIK-FACTS 6).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """value, made safe to open in a spreadsheet: text that would run as a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def summary_lines(ledger):
    """Counts by state, then by (state, reason), as aligned text lines."""
    by_state, by_reason = ledger.counts()
    total = sum(by_state.values())
    lines = [f"{'state':<10} {'assets':>7}"]
    lines += [f"{state:<10} {by_state[state]:>7}" for state in STATES]
    lines.append(f"{'total':<10} {total:>7}")
    reasons = sorted(((s, r), n) for (s, r), n in by_reason.items() if r)
    if reasons:
        lines += ["", f"{'state':<10} {'reason':<20} {'assets':>7}"]
        lines += [f"{s:<10} {r:<20} {n:>7}" for (s, r), n in reasons]
    removed = ledger.query("select count(*) as n from assets where in_source = 0")[0]["n"]
    if removed:
        lines += ["", f"{removed} asset(s) are no longer in the source and are left out of runs."]
    return lines


def write_csv(ledger, handle, state=None):
    """One line per asset (all of them, or those in state) to an open text handle; returns the count."""
    where, params = ("where state = ?", [state]) if state else ("", [])
    writer = csv.writer(handle)
    writer.writerow(CSV_COLUMNS)
    count = 0
    sql = (f"select {', '.join(CSV_COLUMNS)} from assets {where} "
           "order by cast(row_numbers as integer), asset_key")
    for row in ledger.iterate(sql, params):
        writer.writerow([neutralise(value) for value in row])
        count += 1
    return count


# --- run history and the PRD's success bars ----------------------------------------------------------

RUN_COLUMNS = ("id", "mode", "started", "finished", "duration", "status", "requests", "429s", "counts")


def runs_table(ledger):
    """One row of text cells per run, newest last."""
    table = []
    for run in ledger.query("select * from runs order by id"):
        counts = json.loads(run["counts"] or "{}")
        summary = ", ".join(f"{key} {n}" for key, n in sorted(counts.items())) or "-"
        table.append([str(run["id"]), run["mode"], run["started_at"][:19].replace("T", " "),
                      (run["finished_at"] or "-")[:19].replace("T", " "), _duration(run["elapsed_seconds"]),
                      run["status"], str(run["requests"]), str(run["throttled"]), summary])
    return table


def _duration(seconds):
    seconds = int(round(seconds or 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def success_bars(ledger):
    """The PRD's success bars for the latest live run that did the work, or None before any live run."""
    live = ledger.query("select * from runs where mode = 'live' order by id")
    if not live:
        return None
    writing = [run for run in live if run["writes"]]
    work = (writing or live)[-1]
    # Rates are over the whole sync the ledger holds (a dry run may have found the 404s before the
    # live run); elapsed is the live run that did the writing.
    checked = ledger.query(
        "select state, action, count(*) as n from assets where in_source = 1 and asset_key in "
        "(select asset_key from events where run_id is not null) group by state, action")
    written = sum(r["n"] for r in checked if r["state"] in ("created", "updated"))
    failed = sum(r["n"] for r in checked if r["state"] == "failed")
    failed_writes = sum(r["n"] for r in checked if r["state"] == "failed" and r["action"])
    rows = sum(r["n"] for r in checked)
    reruns = [run for run in live if run["id"] > work["id"] and run["status"] == "finished"]
    bars = [
        _bar("creation_success_rate", ">= 95%", _ratio(written, written + failed_writes),
             lambda v: v >= 0.95, f"{written} of {written + failed_writes} needed writes done"),
        _bar("error_rate", "< 5%", _ratio(failed, rows), lambda v: v < 0.05, f"{failed} of {rows} rows failed"),
        _bar("elapsed_seconds", "< 1800", round(work["elapsed_seconds"], 1), lambda v: v < 1800,
             f"{_duration(work['elapsed_seconds'])} of active run time"),
        _bar("rerun_writes", "0", reruns[0]["writes"] if reruns else None, lambda v: v == 0,
             f"re-run {reruns[0]['id']} made {reruns[0]['writes']} writes" if reruns
             else "not measured yet: run 'reversesync run --live' again"),
    ]
    return {"run_id": work["id"], "status": work["status"], "bars": bars}


def _ratio(part, whole):
    return round(part / whole, 4) if whole else None


def _bar(name, target, value, test, detail):
    return {"name": name, "target": target, "value": value, "met": None if value is None else bool(test(value)),
            "detail": detail}


def bars_lines(bars):
    if bars is None:
        return ["Success bars: no live run yet."]
    lines = [f"Success bars (live run {bars['run_id']}, {bars['status']}):"]
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
