"""`verify` (reads only) and the commands that write to the spreadsheet from the ledger (report --sync-log,
report --to-sheet)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from .. import errors, progress
from ..engine import Mismatch, check_roles
from ..engine import verify as verify_rows
from ..iconik import READ_ROLES, IconikClient
from ..ledger import Ledger
from ..report import status_rows
from ..sheets import append_sync_log, write_status_tab
from . import preflight
from .session import Credentials, Session


@dataclasses.dataclass
class Verified:
    checked: int
    mismatches: list[Mismatch]
    put_updates: list[tuple[str, str, str, int]]   # segments 0.1/0.2 updated by PUT
    requests: int
    repair_hint: str | None                         # the command that removes the duplicates found
    next_steps: list[str] = dataclasses.field(default_factory=list)   # what fixes the rest


# Mismatches a run of the row fixes: the sheet wins for the times (a segment gone, moved or never there).
RESYNCED_KINDS = ("missing", "different", "gone")
# Assets named one by one in the command that fixes them; more, and the command names the sync that does it.
NAMED_ASSETS = 10


def verify(session: Session, credentials: Credentials, workers: int, rate: float, settle: float,
           sink: progress.Sink) -> Verified:
    """Read Iconik again for every row reversesync wrote, found in sync or undid, after the same preflight as a
    run (issue #17): a token Iconik refuses or a URL that is not its API ends it with exit 2, an Iconik that does
    not answer with exit 3, never with a list of unreadable rows."""
    ledger = session.open_ledger()
    again = session.hint("verify", here=True)
    try:
        client = IconikClient(credentials.url, credentials.app_id, credentials.auth_token, rate=rate,
                              workers=workers, clock=session.clock)
        user = preflight.checked(lambda: check_roles(client, READ_ROLES)[0], client.url, sink, session.clock, again)
        sink(progress.Target(client.url, preflight.who(user), ledger.path))
        try:
            checked, mismatches = verify_rows(ledger, client, workers, sink, settle, session.clock)
        except errors.AuthError as exc:
            raise errors.MustAct(f"Iconik refused the credentials mid-verify ({exc.status}): {exc.message}. Fix the "
                                 f"token, then: {again}") from None
        except errors.IconikUnreachable as exc:
            raise errors.Stopped(f"stopped: {exc.cause()} Nothing was changed; when Iconik answers again: "
                                 f"{again}") from None
        duplicates = any(found.kind == "duplicate" for found in mismatches)
        return Verified(checked, mismatches, ledger.put_updates(), client.stats.requests,
                        session.hint("verify", "--repair", "--live", here=True) if duplicates else None,
                        fix_lines(session, mismatches))
    except KeyboardInterrupt:
        raise errors.Interrupted("Interrupted; verify changed nothing.") from None
    finally:
        ledger.close()


def fix_lines(session: Session, mismatches: list[Mismatch]) -> list[str]:
    """The commands that fix what verify found, beside the duplicates' repair (issue #17)."""
    lines = []
    resynced = sorted({found.asset_id for found in mismatches if found.kind in RESYNCED_KINDS})
    if 0 < len(resynced) <= NAMED_ASSETS:
        words = ["run", "--live", *[word for key in resynced for word in ("--asset", key)]]
        lines.append(f"Let the sheet win for the times of {len(resynced)} asset{'s' if len(resynced) > 1 else ''} "
                     f"(every other field stays as a person left it): {session.hint(*words, here=True)}")
    elif resynced:
        lines.append(f"Let the sheet win for the times of {len(resynced)} assets (every other field stays as a "
                     f"person left it): {session.hint('sync', '--repair-drift', here=True)} with the sync's source "
                     "options (--sheet or --csv)")
    if any(found.kind == "extra" for found in mismatches):
        lines.append("Extra GENERIC segments are someone's work: reversesync leaves them; check them in Iconik.")
    if any(found.kind == "unreadable" for found in mismatches):
        lines.append(f"Some assets could not be read; run verify again later: {session.hint('verify', here=True)}")
    return lines


def sync_log(session: Session, spreadsheet_id: str, credentials: str | None) -> tuple[list[str], list[str]]:
    """Append every finished live run to the spreadsheet's Sync_Log tab, once: (appended ids, ids already there)."""
    ledger = session.open_ledger()
    try:
        return append_runs_to_sync_log(session, ledger, spreadsheet_id, credentials)
    finally:
        ledger.close()


def append_runs_to_sync_log(session: Session, ledger: Ledger, spreadsheet_id: str,
                            credentials: str | None) -> tuple[list[str], list[str]]:
    """sync_log() on a ledger already open (a sync holds it locked)."""
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


def status_tab(session: Session, spreadsheet_id: str, tab: str, credentials: str | None) -> tuple[int, dict[str, Any]]:
    """report --to-sheet: the ledger's rows into the status tab, replacing what it held (issue #12); returns the
    rows written and the tab's properties (title, sheetId)."""
    ledger = session.open_ledger(readonly=True)
    try:
        return write_status(session, ledger, spreadsheet_id, tab, credentials)
    finally:
        ledger.close()


def write_status(session: Session, ledger: Ledger, spreadsheet_id: str, tab: str,
                 credentials: str | None) -> tuple[int, dict[str, Any]]:
    """status_tab() from a ledger already open."""
    values = status_rows(ledger)
    if len(values) == 1:
        load = session.hint("load", "--csv", "FILE")
        raise errors.InputError(f"the ledger holds no asset of the sheet; run '{load}' (or --sheet SPREADSHEET_ID) "
                                "first.")
    return len(values) - 1, write_status_tab(spreadsheet_id, tab, values, credentials)


@contextlib.contextmanager
def reading(session: Session, *, readonly: bool = True) -> Iterator[Ledger]:
    """The ledger opened for the commands that only read it (report, runs, history), closed at the end."""
    ledger = session.open_ledger(readonly=readonly)
    try:
        yield ledger
    finally:
        ledger.close()
