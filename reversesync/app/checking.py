"""`verify` (reads only) and the commands that write to the spreadsheet from the ledger (report --sync-log,
report --to-sheet)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from .. import errors, progress
from ..engine import Mismatch
from ..engine import verify as verify_rows
from ..iconik import IconikClient
from ..ledger import Ledger
from ..report import status_rows
from ..sheets import append_sync_log, write_status_tab
from .session import Credentials, Session


@dataclasses.dataclass
class Verified:
    checked: int
    mismatches: list[Mismatch]
    put_updates: list[tuple[str, str, str, int]]   # segments 0.1/0.2 updated by PUT
    requests: int
    repair_hint: str | None                         # the command that removes the duplicates found


def verify(session: Session, credentials: Credentials, workers: int, rate: float, settle: float,
           sink: progress.Sink) -> Verified:
    """Read Iconik again for every row reversesync wrote, found in sync or undid."""
    ledger = session.open_ledger()
    try:
        client = IconikClient(credentials.url, credentials.app_id, credentials.auth_token, rate=rate,
                              workers=workers, clock=session.clock)
        checked, mismatches = verify_rows(ledger, client, workers, sink, settle, session.clock)
        duplicates = any(found.kind == "duplicate" for found in mismatches)
        return Verified(checked, mismatches, ledger.put_updates(), client.stats.requests,
                        session.hint("verify", "--repair", "--live", here=True) if duplicates else None)
    except KeyboardInterrupt:
        raise errors.Interrupted("Interrupted; verify changed nothing.") from None
    finally:
        ledger.close()


def sync_log(session: Session, spreadsheet_id: str, credentials: str | None) -> tuple[list[str], list[str]]:
    """Append every finished live run to the spreadsheet's Sync_Log tab, once: (appended ids, ids already there)."""
    ledger = session.open_ledger()
    try:
        entries: list[dict[str, Any]] = []
        for run, counts in ledger.finished_live_runs():
            failed = sum(n for (state, _), n in counts.items() if state == "failed")
            entries.append({
                "Sync_ID": f"rs-{run['started_at'][:19].replace('-', '').replace(':', '')}-{run['id']}",
                "Sync_Type": "reverse_timecode", "Started_At": run["started_at"], "Completed_At": run["finished_at"],
                "Assets_New": counts.get(("created", "create"), 0),
                "Assets_Updated": counts.get(("updated", "update"), 0),
                "Status": f"finished, {failed} failed" if failed else "finished",
            })
        if not entries:
            raise errors.InputError(f"no finished live run to log; run '{session.hint('run', '--live')}' first.")
        appended, present = append_sync_log(spreadsheet_id, entries, credentials)
        ledger.mark_sync_logged({e["Sync_ID"]: int(e["Sync_ID"].rsplit("-", 1)[1]) for e in entries
                                 if e["Sync_ID"] in appended + present})
        return appended, present
    finally:
        ledger.close()


def status_tab(session: Session, spreadsheet_id: str, tab: str, credentials: str | None) -> tuple[int, dict[str, Any]]:
    """report --to-sheet: the ledger's rows into the status tab, replacing what it held (issue #12); returns the
    rows written and the tab's properties (title, sheetId)."""
    ledger = session.open_ledger(readonly=True)
    try:
        values = status_rows(ledger)
    finally:
        ledger.close()
    if len(values) == 1:
        raise errors.InputError(f"the ledger holds no asset of the sheet; run '{session.hint('load')}' first.")
    return len(values) - 1, write_status_tab(spreadsheet_id, tab, values, credentials)


@contextlib.contextmanager
def reading(session: Session, *, readonly: bool = True) -> Iterator[Ledger]:
    """The ledger opened for the commands that only read it (report, runs, history), closed at the end."""
    ledger = session.open_ledger(readonly=readonly)
    try:
        yield ledger
    finally:
        ledger.close()
