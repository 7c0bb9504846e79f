"""What the ledger says: counts by state and reason, and one CSV line per asset."""

import csv

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
