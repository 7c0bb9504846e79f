"""The SQLite ledger: schema through migrations, the row state machine, runs, and the process lock."""

import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import socket
import sqlite3
import threading
import time
import uuid
from importlib import resources

import psutil
import sqlite_utils
from sqlite_utils import Migrations

from .errors import IllegalTransition, LedgerError, LedgerLocked, LedgerTooNew, LedgerUnavailable, LockLost
from .types import PENDING_WRITE, Write

DEFAULT_LEDGER = "reversesync.db"

PENDING, CHECKED, CREATED, UPDATED, SKIPPED, FAILED = (
    "pending", "checked", "created", "updated", "skipped", "failed")
STATES = (PENDING, CHECKED, CREATED, UPDATED, SKIPPED, FAILED)

# The state machine is this table and nothing else. A self-transition records a change of a row's
# details (new plan, new reason, source edited) without moving it. None is "not yet in the ledger".
# A row holding an intent (a write that may have landed) can sit in pending, checked, skipped or failed;
# from each of them it can go back to checked to be re-checked (issue #10). Any row can fail, so that a bug
# on one row fails that row and never the run.
TRANSITIONS = {
    None: frozenset({PENDING, SKIPPED}),
    PENDING: frozenset({PENDING, CHECKED, SKIPPED, FAILED}),
    CHECKED: frozenset({CHECKED, PENDING, CREATED, UPDATED, SKIPPED, FAILED}),
    CREATED: frozenset({CREATED, PENDING, SKIPPED, FAILED}),
    UPDATED: frozenset({UPDATED, PENDING, SKIPPED, FAILED}),
    SKIPPED: frozenset({SKIPPED, PENDING, CHECKED, FAILED}),
    FAILED: frozenset({FAILED, PENDING, CHECKED, SKIPPED}),
}
FINAL_STATES = (CREATED, UPDATED, SKIPPED, FAILED)

# A holder on another host cannot be probed: it is stale once its heartbeat is this old. On this host
# a holder is alive exactly as long as its process (pid and start time) exists, whatever its heartbeat.
LOCK_STALE_AFTER = 120.0
HEARTBEAT_EVERY = 5.0

_MIGRATION_SET = "reversesync"

# A run that neither finished nor was closed: `resume` may continue it.
_UNFINISHED = "('running', 'interrupted', 'aborted')"
_LIVE_UNDO = "(mode in ('undo', 'repair') and json_extract(options, '$.live'))"


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def check_transition(from_state, to_state):
    """Raise IllegalTransition unless the table allows from_state -> to_state."""
    if to_state not in TRANSITIONS.get(from_state, ()):
        raise IllegalTransition(f"a row cannot move from {from_state or 'nothing'} to {to_state}")


def _migration_files():
    folder = resources.files("reversesync.migrations")
    return sorted((entry for entry in folder.iterdir() if entry.name.endswith(".sql")), key=lambda e: e.name)


MIGRATION_NAMES = tuple(entry.name[: -len(".sql")] for entry in _migration_files())


def migrations():
    """The ledger's schema migrations, one per SQL file shipped in reversesync.migrations, in name order."""
    steps = Migrations(_MIGRATION_SET)
    for entry in _migration_files():
        sql = entry.read_text(encoding="utf-8")

        def apply(db, sql=sql):
            db.executescript(sql)

        steps(name=entry.name[: -len(".sql")])(apply)
    return steps


# --- opening (issue #11) ---------------------------------------------------------------------------
# Only `load` creates a ledger; another application's SQLite file is refused before anything touches it;
# commands that only read open the file read-only (no pragma, no migration), so an archived or read-only
# copy can be reported on.


class LedgerMissing(LedgerError):
    """There is no ledger at the path (or only the empty file a failed first load left); `load` makes one."""


class NotALedger(LedgerError):
    """The file is another application's SQLite database; it is refused and left untouched."""


class LedgerReadOnly(LedgerError):
    """A command that writes was pointed at a ledger it cannot write."""


class LedgerNeedsUpgrade(LedgerError):
    """A read-only opening found a ledger written by an older reversesync; upgrading it needs a write."""


def _create_private_file(path):
    # Mode 0600 from the first byte: the ledger holds asset ids and titles of a production catalogue.
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        raise LedgerError(f"cannot create the ledger {path}: {exc.strerror}. Choose a folder you can write "
                          "with --ledger PATH.") from None
    os.close(fd)


def _writable(path):
    """Writable by this process and not marked read-only. Root may write anything, but a file or folder
    with no write bit is read-only by intent (and is how Windows shows its read-only attribute)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(mode & 0o222)


def _connect_without_writing(path):
    """A connection that cannot write the file and leaves no trace beside it.

    mode=ro still creates -wal and -shm files for a WAL database; immutable=1 creates nothing. immutable is
    right only while no process writes: a writer in WAL mode keeps a -wal file beside the database, so
    without one the file is at rest (and an archived copy or a read-only folder never has a writer)."""
    uri = pathlib.Path(path).as_uri()  # file:///C:/... on Windows, percent-encoded everywhere
    if os.path.exists(path + "-wal"):
        return sqlite3.connect(uri + "?mode=ro", uri=True, check_same_thread=False, timeout=10)
    return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, check_same_thread=False, timeout=10)


def _inspect(conn):
    """("empty" | "reversesync" | "foreign", names of the applied reversesync migrations, table names)."""
    tables = [row[0] for row in conn.execute(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name")]
    if not tables:
        return "empty", [], tables
    if "_sqlite_migrations" not in tables:
        return "foreign", [], tables
    applied = [row[0] for row in conn.execute(
        "select name from _sqlite_migrations where migration_set = ? order by id", [_MIGRATION_SET])]
    return ("reversesync" if applied else "foreign"), applied, tables


class Ledger:
    """One open ledger file. Every read and write goes through one connection guarded by one lock.

    create=False refuses a path with no ledger (LedgerMissing); readonly=True reads without writing
    anything (LedgerNeedsUpgrade if the file needs a migration first). Opening for writing tightens a
    ledger readable by others to 0600 and leaves a line about it in `notes` for the CLI to print."""

    def __init__(self, path, *, upgrade=True, stop_before=None, create=True, readonly=False):
        self.path = os.path.abspath(path)
        self._lock = threading.RLock()
        self._lock_token = None
        self.lock_lost = threading.Event()
        self.readonly = readonly
        self.notes = []
        self.heartbeat_every = HEARTBEAT_EVERY
        self.sleep = time.sleep
        try:
            applied = self._check_what_is_there(create and not readonly)
            if readonly:
                self._open_readonly(applied)
            else:
                self._open_for_writing(upgrade, stop_before)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path} is not a usable reversesync ledger: {exc}. It was not changed.") from exc

    def _check_what_is_there(self, create):
        """Make sure the path holds a reversesync ledger (or create one); never writes to an existing file."""
        if not os.path.exists(self.path):
            if not create:
                raise LedgerMissing(f"no ledger at {self.path}")
            folder = os.path.dirname(self.path)
            if not os.path.isdir(folder):
                raise LedgerError(f"cannot create the ledger {self.path}: folder {folder} does not exist")
            if not _writable(folder):
                raise LedgerReadOnly(f"cannot create the ledger {self.path}: the folder {folder} is not writable. "
                                     "Choose a folder you can write with --ledger PATH.")
            _create_private_file(self.path)
            return []
        if os.path.isdir(self.path):
            raise LedgerError(f"{self.path} is a folder, not a ledger file.")
        conn = _connect_without_writing(self.path)
        try:
            kind, applied, tables = _inspect(conn)
        finally:
            conn.close()
        if kind == "foreign":
            shown = ", ".join(tables[:8]) + (", ..." if len(tables) > 8 else "")
            raise NotALedger(f"{self.path} is not a reversesync ledger: it is another application's SQLite "
                             f"database (tables {shown}). It was not changed; give another path with --ledger.")
        if kind == "empty" and not create:
            raise LedgerMissing(f"no ledger at {self.path} (the file is empty)")
        return applied

    def _open_readonly(self, applied):
        unknown = sorted(set(applied) - set(MIGRATION_NAMES))
        if unknown:
            raise LedgerTooNew(
                f"{self.path} was written by a newer reversesync (it has migrations {', '.join(unknown)}); "
                "upgrade reversesync to use it. The ledger was not changed.")
        missing = [name for name in MIGRATION_NAMES if name not in applied]
        if missing:
            raise LedgerNeedsUpgrade(
                f"the ledger {self.path} was written by an older reversesync (it lacks {', '.join(missing)})")
        self.db = sqlite_utils.Database(_connect_without_writing(self.path))

    def _open_for_writing(self, upgrade, stop_before):
        folder = os.path.dirname(self.path)
        if not _writable(self.path):
            raise LedgerReadOnly(f"the ledger {self.path} is read-only; this command writes to it. Make it "
                                 "writable, or work on a writable copy.")
        if not _writable(folder):
            raise LedgerReadOnly(f"the ledger's folder {folder} is not writable; SQLite keeps its journal "
                                 f"beside {os.path.basename(self.path)}, so this command cannot run there. "
                                 "Move the ledger to a folder you can write.")
        self._make_private()
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        self.db = sqlite_utils.Database(conn)
        steps = migrations()
        self._refuse_newer(steps)
        self.db.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL survives a killed process; only power loss can drop the last commits.
        self.db.execute("PRAGMA synchronous=NORMAL")
        if upgrade:
            steps.apply(self.db, stop_before=stop_before)

    def _make_private(self):
        """A ledger others can read is tightened to 0600 (with a note): it is as private as the catalogue."""
        if os.name != "posix":
            return  # no modes on Windows: the user's profile folder's ACL protects the file (see README)
        for path in (self.path, self.path + "-wal", self.path + "-shm"):
            try:
                mode = os.stat(path).st_mode & 0o777
            except FileNotFoundError:
                continue
            if not mode & 0o077:
                continue
            try:
                os.chmod(path, 0o600)
            except OSError as exc:
                self.notes.append(f"note: {path} is readable by others (mode {mode:04o}) and could not be made "
                                  f"private: {exc.strerror}.")
                continue
            if path == self.path:
                self.notes.append(f"note: {path} was readable by others (mode {mode:04o}); it is now 0600.")

    def _refuse_newer(self, steps):
        unknown = sorted({m.name for m in steps.applied(self.db)} - set(MIGRATION_NAMES))
        if unknown:
            raise LedgerTooNew(
                f"{self.path} was written by a newer reversesync (it has migrations {', '.join(unknown)}); "
                "upgrade reversesync to use it. The ledger was not changed.")

    def close(self):
        with self._lock:
            self.db.close()

    # --- reading ---------------------------------------------------------------------------------

    def query(self, sql, params=()):
        with self._lock:
            return list(self.db.query(sql, params))

    def iterate(self, sql, params=()):
        """Yield plain tuples of a query, for reports too large to hold as dicts."""
        with self._lock:
            yield from self.db.execute(sql, params)

    def asset(self, key):
        rows = self.query("select * from assets where asset_key = ?", [key])
        return rows[0] if rows else None

    def counts(self):
        """{state: n} and {(state, reason): n} over the assets still in the source."""
        by_state = {s: 0 for s in STATES}
        by_reason = {}
        for row in self.query(
                "select state, reason, count(*) as n from assets where in_source = 1 group by state, reason"):
            by_state[row["state"]] += row["n"]
            by_reason[(row["state"], row["reason"])] = row["n"]
        return by_state, by_reason

    # --- the state machine -------------------------------------------------------------------------

    def move(self, key, to_state, *, run_id=None, detail=None, done=False, writes=(), **fields):
        """Move one row to to_state, set fields, and record the event, all in one transaction.

        done=True also marks the row finished for run_id, so a resume of that run does not take it again.
        writes: WriteChanges to the write log (a write settled, or undone), committed with the move."""
        self.move_many([(key, to_state, fields, detail)], run_id=run_id, done=done, writes=writes)

    def move_many(self, moves, *, run_id=None, done=False, writes=()):
        """Apply (key, to_state, fields, detail) moves in one transaction; any illegal move rolls back all."""
        stamp = now_iso()
        with self._writing():
            self._check_lock_held()
            for change in writes:
                self._change_write(change, stamp)
            self._move_in_transaction(moves, run_id, done, stamp)

    def _move_in_transaction(self, moves, run_id, done, stamp):
        events = []
        for key, to_state, fields, detail in moves:
            row = self.db.execute("select state from assets where asset_key = ?", [key]).fetchone()
            if row is None:
                raise LedgerError(f"no asset {key} in the ledger")
            check_transition(row[0], to_state)
            values = dict(fields, state=to_state, updated_at=stamp)
            assignments = ", ".join(f"[{column}] = ?" for column in values)
            self.db.execute(f"update assets set {assignments} where asset_key = ?", [*values.values(), key])
            events.append((key, run_id, row[0], to_state, stamp, detail))
            if done and run_id is not None:
                self.db.execute("update run_rows set done = 1 where run_id = ? and asset_key = ?", [run_id, key])
        self.record_events(events)

    @contextlib.contextmanager
    def _writing(self):
        """One write transaction; SQLite's own failures come out as errors that name their cause."""
        with self._lock:
            try:
                with self.db.atomic():
                    yield
            except sqlite3.OperationalError as exc:
                raise _unavailable(self.path, exc) from exc

    def record_events(self, events):
        """Append (asset_key, run_id, from_state, to_state, at, detail) rows to the event log."""
        self.db.conn.executemany(
            "insert into events (asset_key, run_id, from_state, to_state, at, detail) "
            "values (?, ?, ?, ?, ?, ?)", events)

    # --- loading the source -------------------------------------------------------------------------

    def load(self, records):
        """Make the ledger match the source's records in one transaction; returns counts of what changed.

        Unchanged rows keep their state (a finished row stays finished); changed rows go back to pending
        (or to skipped if now rejected); rows gone from the source are kept, marked in_source = 0.
        """
        stamp = now_iso()
        counts = {"new": 0, "changed": 0, "unchanged": 0, "removed": 0, "rejected": {}}
        with self._lock, self.db.atomic():
            existing = {row[0]: row[1:] for row in self.db.execute(
                "select asset_key, source_hash, state, in_source from assets")}
            inserts, updates, events = [], [], []
            for record in records:
                target = SKIPPED if record.reason else PENDING
                if record.reason:
                    counts["rejected"][record.reason] = counts["rejected"].get(record.reason, 0) + 1
                source = [record.asset_id, ",".join(map(str, record.row_numbers)), record.title,
                          record.time_start_ms, record.time_end_ms]
                before = existing.pop(record.key, None)
                if before is None:
                    check_transition(None, target)
                    counts["new"] += 1
                    inserts.append([record.key, *source, record.source_hash, target, record.reason,
                                    record.reason_text, stamp, stamp])
                    events.append((record.key, None, None, target, stamp, "loaded"))
                    continue
                old_hash, state, in_source = before
                if old_hash == record.source_hash:
                    counts["unchanged"] += 1
                    updates.append([*source, 1, record.key])
                    if not in_source:
                        events.append((record.key, None, state, state, stamp, "back in the source"))
                    continue
                check_transition(state, target)
                counts["changed"] += 1
                self.db.execute(
                    "update assets set asset_id = ?, row_numbers = ?, title = ?, time_start_ms = ?, "
                    "time_end_ms = ?, source_hash = ?, state = ?, reason = ?, reason_text = ?, action = null, "
                    "in_source = 1, updated_at = ? where asset_key = ?",
                    [*source, record.source_hash, target, record.reason, record.reason_text, stamp, record.key])
                events.append((record.key, None, state, target, stamp, "source changed"))
            self.db.conn.executemany(
                "insert into assets (asset_key, asset_id, row_numbers, title, time_start_ms, time_end_ms, "
                "source_hash, state, reason, reason_text, created_at, updated_at) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", inserts)
            self.db.conn.executemany(
                "update assets set asset_id = ?, row_numbers = ?, title = ?, time_start_ms = ?, time_end_ms = ?, "
                "in_source = ? where asset_key = ?", updates)
            gone = [key for key, (_, _, in_source) in existing.items() if in_source]
            counts["removed"] = len(gone)
            self.db.conn.executemany("update assets set in_source = 0, updated_at = ? where asset_key = ?",
                                     [(stamp, key) for key in gone])
            events.extend((key, None, existing[key][1], existing[key][1], stamp, "no longer in the source")
                          for key in gone)
            self.record_events(events)
        return counts

    # --- runs ---------------------------------------------------------------------------------------

    def start_run(self, mode, options):
        """Record a run before its first request, so a kill at any instant leaves one to resume (issue #10)."""
        with self._writing():
            cursor = self.db.execute(
                "insert into runs (mode, options, started_at, status) values (?, ?, ?, 'running')",
                [mode, json.dumps(options, sort_keys=True), now_iso()])
            return cursor.lastrowid

    def finish_run(self, run_id, status, counts, requests=0, throttled=0, writes=0, elapsed=0.0):
        """Close a run (or one leg of it, before a resume); figures add up over the legs."""
        with self._writing():
            self.db.execute(
                "update runs set status = ?, finished_at = ?, counts = ?, requests = requests + ?, "
                "throttled = throttled + ?, writes = writes + ?, elapsed_seconds = elapsed_seconds + ? "
                "where id = ?",
                [status, now_iso(), json.dumps(counts, sort_keys=True), requests, throttled, writes, elapsed,
                 run_id])

    def reopen_run(self, run_id):
        with self._writing():
            self.db.execute("update runs set status = 'running', finished_at = null where id = ?", [run_id])

    def run(self, run_id):
        rows = self.query("select * from runs where id = ?", [run_id])
        return rows[0] if rows else None

    def mark_sync_logged(self, ids_by_run):
        """Remember which runs are in the spreadsheet's Sync_Log ({sync id: run id})."""
        with self._writing():
            for sync_id, run_id in ids_by_run.items():
                self.db.execute("update runs set sync_log_id = ? where id = ?", [sync_id, run_id])

    def supersede_unfinished_runs(self, but=None):
        """A new writing run replaces any unfinished run or dry undo: `resume` then continues the new one.

        An unfinished live undo or repair is never superseded: it blocks writing commands until resumed."""
        with self._writing():
            self.db.execute(f"update runs set status = 'superseded' where status in {_UNFINISHED} and id != ? and "
                            f"not {_LIVE_UNDO}", [but or 0])

    def unfinished_run(self):
        """The run `resume` continues: the newest unfinished live undo or repair (interrupted, aborted, refused at
        preflight or killed), else the newest unfinished run of any kind; None when every run is closed."""
        return self.unfinished_undo() or next(iter(self.query(
            f"select * from runs where status in {_UNFINISHED} order by id desc limit 1")), None)

    def unfinished_undo(self):
        """The newest live undo or repair that did not finish, or None: it must be resumed before any write."""
        return next(iter(self.query(f"select * from runs where status in {_UNFINISHED} and {_LIVE_UNDO} "
                                    "order by id desc limit 1")), None)

    def close_undone_run(self, run_id):
        """An undo of an unfinished run closes it: a resume must never redo what the undo removed (issue #15)."""
        with self._writing():
            self.db.execute(f"update runs set status = 'undone', finished_at = coalesce(finished_at, ?) where id = ? "
                            f"and status in {_UNFINISHED}", [now_iso(), run_id])

    # --- what a run works on ----------------------------------------------------------------------

    def select_rows(self, run_id, keys, reopen=()):
        """Fix the run's rows once, reopening finished rows the options asked for, in one transaction.

        reopen: keys of finished rows to send back to pending first (--retry-failed, --recheck, --asset)."""
        stamp = now_iso()
        with self._writing():
            self._check_lock_held()
            events = []
            for key in reopen:
                state = self.db.execute("select state from assets where asset_key = ?", [key]).fetchone()[0]
                check_transition(state, PENDING)
                self.db.execute("update assets set state = 'pending', reason = null, reason_text = null, "
                                "updated_at = ? where asset_key = ?", [stamp, key])
                events.append((key, run_id, state, PENDING, stamp, "re-check requested"))
            self.record_events(events)
            self.db.conn.executemany("insert or ignore into run_rows (run_id, asset_key, position) values (?, ?, ?)",
                                     [(run_id, key, n) for n, key in enumerate(keys)])
            self.db.execute("update runs set selected_at = ? where id = ?", [stamp, run_id])

    def run_keys(self, run_id):
        """The selected rows of a run not finished yet, rows holding an intent first."""
        return [row[0] for row in self.iterate(
            "select r.asset_key from run_rows r join assets a on a.asset_key = r.asset_key "
            "where r.run_id = ? and r.done = 0 order by a.intent is null, r.position", [run_id])]

    def run_size(self, run_id):
        return self.query("select count(*) as n from run_rows where run_id = ?", [run_id])[0]["n"]

    def candidate_keys(self, *, assets=(), limit=None, with_intent_only=False):
        """Rows a new run takes: those holding an intent first (they must be re-checked before anything
        else), then pending and checked rows of the current sheet, in sheet order."""
        # A row holding an undo's or a repair's write open is that command's to settle, never a run's.
        sync_intent = "intent in (select intent_id from writes where action in ('create', 'update'))"
        where = [sync_intent] if with_intent_only else [
            f"({sync_intent} or (intent is null and in_source = 1 and state in ('pending', 'checked')))"]
        params = []
        if assets:
            where.append(f"asset_key in ({', '.join('?' for _ in assets)})")
            params += list(assets)
        sql = (f"select asset_key from assets where {' and '.join(where)} "
               "order by intent is null, cast(row_numbers as integer), asset_key")
        if limit:
            sql += f" limit {int(limit)}"
        return [row[0] for row in self.iterate(sql, params)]

    def reopenable_keys(self, *, failed_reasons=(), reasons=(), assets=(), never=()):
        """Finished rows of the current sheet that match any of: failed with one of failed_reasons, finished
        with one of reasons, or one of assets; rows finished with a reason in `never` excepted."""
        clauses, params = [], []
        if failed_reasons:
            clauses.append(f"(state = 'failed' and reason in ({', '.join('?' for _ in failed_reasons)}))")
            params += failed_reasons
        if reasons:
            clauses.append(f"reason in ({', '.join('?' for _ in reasons)})")
            params += reasons
        if assets:
            clauses.append(f"asset_key in ({', '.join('?' for _ in assets)})")
            params += assets
        if not clauses:
            return []
        excepted = ", ".join("?" for _ in never) or "''"
        return [row[0] for row in self.iterate(
            f"select asset_key from assets where in_source = 1 and intent is null and state in "
            f"('created', 'updated', 'skipped', 'failed') and coalesce(reason, '') not in ({excepted}) "
            f"and ({' or '.join(clauses)})", [*never, *params])]

    def known_keys(self, keys):
        """The subset of keys that the ledger holds."""
        return {row[0] for row in self.iterate(
            "select asset_key from assets where asset_key in (select value from json_each(?))", [json.dumps(keys)])}

    def rows(self, keys):
        """{asset key: row} for keys."""
        return {row["asset_key"]: row for row in self.query(
            "select * from assets where asset_key in (select value from json_each(?))", [json.dumps(list(keys))])}

    def run_counts(self, run_id):
        """{"state/reason-or-action": n} over every row this run touched (across resumes)."""
        rows = self.query(
            "select state, coalesce(reason, action, '') as why, count(*) as n from assets where asset_key in "
            "(select asset_key from events where run_id = ?) group by state, why", [run_id])
        return {f"{r['state']}/{r['why']}".rstrip("/"): r["n"] for r in rows}

    def rows_of_run(self, run_id):
        """The rows a run touched, as they are now, in sheet order (for --json)."""
        return self.query(
            "select asset_id, row_numbers, state, reason, reason_text, action, segment_id from assets where "
            "asset_key in (select asset_key from events where run_id = ?) order by cast(row_numbers as integer), "
            "asset_key", [run_id])

    def failed_in_source(self):
        """How many rows of the current sheet are failed, whichever run failed them."""
        return self.query("select count(*) as n from assets where in_source = 1 and state = 'failed'")[0]["n"]

    def rows_to_verify(self):
        """Rows reversesync wrote or found in sync, and rows an undo reverted (whose leftovers verify looks for)."""
        return self.query("select * from assets where in_source = 1 and (state in ('created', 'updated') or "
                          "(state = 'skipped' and reason in ('in_sync', 'undone'))) "
                          "order by cast(row_numbers as integer)")

    def last_unknown_outcome_at(self):
        """Epoch seconds of the latest send of a write whose answer was lost (it may still land late), or None."""
        return self.query("select max(sent_at) as at from writes where lost = 1")[0]["at"]

    # --- the write log: a write about to be sent, when it was, and what came of it (issue #15) ----------

    def record_intent(self, key, intent, *, run_id, to_state, detail, **fields):
        """Log an Intent (a write about to be sent) and tie the row to it, with the row's move, in one
        transaction; returns the logged Write.

        An intent_id already logged is a re-send of that write: it is pending again, keeps its owner (the run
        that first recorded it) and its marker."""
        stamp = now_iso()
        with self._writing():
            self._check_lock_held()
            known = self.db.execute("select id from writes where intent_id = ?", [intent.intent_id]).fetchone()
            if known:
                self.db.execute("update writes set outcome = ?, settled_at = null, segment_id = coalesce(?, "
                                "segment_id), before = coalesce(?, before) where id = ?",
                                [PENDING_WRITE, intent.segment_id, _json(intent.before), known[0]])
            else:
                self.db.execute(
                    "insert into writes (intent_id, run_id, asset_key, action, method, segment_id, marker, undoes, "
                    "before, start_ms, end_ms, outcome, recorded_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [intent.intent_id, run_id, key, intent.action, intent.method, intent.segment_id, intent.marker,
                     intent.undoes, _json(intent.before), intent.start_ms, intent.end_ms, PENDING_WRITE, stamp])
            self._move_in_transaction([(key, to_state, dict(fields, intent=intent.intent_id), detail)], run_id, False,
                                      stamp)
        return self.write(intent.intent_id)

    def mark_sent(self, key):
        """Record that the row's open write goes on the wire now; its settle time counts from here.

        Also the last check before a write that this process still holds the lock (issue #10)."""
        with self._writing():
            self._check_lock_held()
            self.db.execute("update writes set sent_at = ? where intent_id = (select intent from assets where "
                            "asset_key = ?)", [time.time(), key])

    def _change_write(self, change, stamp):
        found = self.db.execute("update writes set outcome = coalesce(?, outcome), after = coalesce(?, after), "
                                "segment_id = coalesce(?, segment_id), undone_by = coalesce(?, undone_by), "
                                "lost = max(lost, ?), settled_at = case when ? is null then settled_at else ? end "
                                "where intent_id = ?",
                                [change.outcome, _json(change.after), change.segment_id, change.undone_by,
                                 int(change.lost), change.outcome, stamp, change.intent_id]).rowcount
        if not found:
            raise LedgerError(f"no write {change.intent_id} in the write log")

    def write(self, intent_id):
        """The logged write with this intent id, or None."""
        rows = self.query("select * from writes where intent_id = ?", [intent_id])
        return _write_of(rows[0]) if rows else None

    def open_write(self, key):
        """The write the row holds open (its outcome not settled yet), or None."""
        rows = self.query("select w.* from writes w join assets a on a.intent = w.intent_id where a.asset_key = ?",
                          [key])
        return _write_of(rows[0]) if rows else None

    def writes_of_run(self, run_id, assets=()):
        """Every write a run recorded (its re-sends included), newest first; assets: only these keys."""
        where, params = "", [run_id]
        if assets:
            where = f" and asset_key in ({', '.join('?' for _ in assets)})"
            params += list(assets)
        return [_write_of(row) for row in self.query(f"select * from writes where run_id = ?{where} order by id desc",
                                                     params)]

    def writes_of_asset(self, key):
        """Every write logged for one asset, oldest first."""
        return [_write_of(row) for row in self.query("select * from writes where asset_key = ? order by id", [key])]

    def assets_written_by_run(self, run_id, assets=()):
        """Keys of the assets a run logged writes for, in sheet order."""
        where, params = "", [run_id]
        if assets:
            where = f" and a.asset_key in ({', '.join('?' for _ in assets)})"
            params += list(assets)
        return [row[0] for row in self.iterate(
            "select a.asset_key from assets a where a.asset_key in (select asset_key from writes where run_id = ?)"
            f"{where} order by cast(a.row_numbers as integer), a.asset_key", params)]

    def markers_of_undone_writes(self, key):
        """The markers of an asset's creates that an undo reverted: no live segment should carry one."""
        return {row[0] for row in self.iterate(
            "select marker from writes where asset_key = ? and marker is not null and undone_by is not null", [key])}

    def put_updates(self):
        """The segments 0.1 and 0.2 updated by PUT (which reset fields they did not know), in sheet order:
        (asset_id, row_numbers, segment_id, run_id)."""
        return list(self.iterate(
            "select a.asset_id, a.row_numbers, w.segment_id, w.run_id from writes w join assets a on "
            "a.asset_key = w.asset_key where w.method = 'PUT' and w.outcome = 'applied' "
            "order by cast(a.row_numbers as integer), a.asset_key, w.id"))

    # --- the process lock ---------------------------------------------------------------------------

    def acquire(self, command):
        """Take the ledger for this process, or raise LedgerLocked naming the live holder.

        A holder that died is taken over, and the takeover is recorded in lock_log. A heartbeat thread
        keeps the lock fresh from here to release() and notices if it is ever lost."""
        token = uuid.uuid4().hex
        host = socket.gethostname()
        me = psutil.Process()
        # Decided outside the write transaction: watching a holder's heartbeat move needs fresh reads.
        holder = self.lock_holder()
        if holder and holder_alive(holder, host, heartbeat_moves=lambda: self._heartbeat_moves(holder)):
            raise self._locked(holder)
        with self._writing():
            now = self.lock_holder()
            if now and (holder is None or now["token"] != holder["token"]):
                raise self._locked(now)  # another process took it while this one looked
            if now:
                self.db.execute("insert into lock_log (at, event, pid, host, command, detail) values "
                                "(?, ?, ?, ?, ?, ?)", [now_iso(), "taken_over", now["pid"], now["host"], now["command"],
                                                       f"held since {now['acquired_at']}; its process is gone"])
            self.db.execute("delete from lock")
            self.db.execute(
                "insert into lock (id, token, pid, host, command, acquired_at, heartbeat, started) "
                "values (1, ?, ?, ?, ?, ?, ?, ?)",
                [token, me.pid, host, command, now_iso(), time.time(), me.create_time()])
        self._lock_token = token
        self.lock_lost = threading.Event()
        self._beating = threading.Event()
        self._beat_thread = threading.Thread(target=self._beat, name="ledger-heartbeat", daemon=True)
        self._beat_thread.start()

    def _locked(self, holder):
        return LedgerLocked(f"{self.path} is in use by 'reversesync {holder['command']}' (pid {holder['pid']} on "
                            f"{holder['host']}, since {holder['acquired_at']}); wait for it to finish or stop it, then "
                            "try again.")

    def _heartbeat_moves(self, holder):
        """Whether the holder's heartbeat changes within two beats: a holder that still beats is alive, whatever
        its start time now reads (a clock step moves psutil's start times, issue #15)."""
        waited = 0.0
        while waited < 2 * HEARTBEAT_EVERY + 1:
            self.sleep(0.5)
            waited += 0.5
            now = self.lock_holder()
            if now is None or now["token"] != holder["token"]:
                return False  # released meanwhile: the lock is free
            if now["heartbeat"] != holder["heartbeat"]:
                return True
        return False

    def _beat(self):
        # Its own thread (issue #10): a holder busy in preflight, a search pre-pass or a frozen terminal
        # still beats; and a holder that finds its lock gone says so at once.
        while not self._beating.wait(self.heartbeat_every):
            try:
                self.heartbeat()
            except LockLost:
                return
            except (LedgerError, sqlite3.Error):
                continue  # a busy moment; the next beat tries again

    def heartbeat(self):
        if self._lock_token:
            with self._writing():
                updated = self.db.execute("update lock set heartbeat = ? where token = ?",
                                          [time.time(), self._lock_token]).rowcount
                if not updated:
                    self.lock_lost.set()
                    raise LockLost(f"another process took the lock of {self.path}; this one stops at once.")

    def _check_lock_held(self):
        """Inside a write transaction: raise LockLost unless this process still holds the lock."""
        if not self._lock_token:
            return
        row = self.db.execute("select token from lock").fetchone()
        if self.lock_lost.is_set() or row is None or row[0] != self._lock_token:
            self.lock_lost.set()
            raise LockLost(f"another process took the lock of {self.path}; this one stopped at once, leaving "
                           "its unfinished rows for a resume.")

    def release(self):
        if self._lock_token:
            self._beating.set()
            with self._writing():
                self.db.execute("delete from lock where token = ?", [self._lock_token])
            self._lock_token = None

    # --- history and run figures (issue #11) ---
    # What each run did, counted from the event log, so that a killed or still running run shows its work
    # (runs.counts is written only when a run closes), and an asset's history survives re-checks.

    def keys_in_source(self):
        """The keys of the assets the source held at its last load (the rows runs work on)."""
        return {row[0] for row in self.iterate("select asset_key from assets where in_source = 1")}

    def find_asset(self, text):
        """The asset row named by text (its id in any case, 'row:N', or the id exactly as the sheet wrote it)."""
        text = text.strip()
        for sql, value in (("select * from assets where asset_key = ?", text.lower()),
                           ("select * from assets where asset_key = ?", text),
                           ("select * from assets where asset_id = ? order by asset_key limit 1", text)):
            rows = self.query(sql, [value])
            if rows:
                return rows[0]
        return None

    def asset_events(self, key):
        """Every event of one asset, oldest first: at, run_id, from_state, to_state, detail."""
        return self.query("select at, run_id, from_state, to_state, detail from events where asset_key = ? "
                          "order by id", [key])

    def run_outcomes(self):
        """{run id: {state: assets}}: each asset a run touched, once, in the state its last event in that
        run left it (across resumes)."""
        outcomes = {}
        for run_id, state, n in self.iterate(
                "select e.run_id, e.to_state, count(*) from events e join "
                "(select max(id) as id from events where run_id is not null group by run_id, asset_key) last "
                "on e.id = last.id group by e.run_id, e.to_state"):
            outcomes.setdefault(run_id, {})[state] = n
        return outcomes

    def run_last_events(self):
        """{run id: time of its last event}."""
        return {run_id: at for run_id, at in self.iterate(
            "select run_id, max(at) from events where run_id is not null group by run_id")}

    def runs(self):
        """Every run, oldest first."""
        return self.query("select * from runs order by id")

    def lock_holder(self):
        """The lock's row (token, pid, host, command, acquired_at, heartbeat, started), or None when nobody holds
        it."""
        rows = self.query("select token, pid, host, command, acquired_at, heartbeat, started from lock")
        return rows[0] if rows else None

    # --- undo and repair (issue #12) ---
    # `undo RUN` finds the rows a live run wrote from the event log and the done_* columns; `verify --repair`
    # the rows whose asset may hold a duplicate. Both hold their write's intent in the same intent column
    # as a run does, with ops of their own, so that a kill leaves something `resume` settles.

    def keys_holding_intent(self, actions):
        """Keys of the rows holding open a write whose action is one of actions."""
        return [row[0] for row in self.iterate(
            "select a.asset_key from assets a join writes w on w.intent_id = a.intent where w.action in "
            "(select value from json_each(?))", [json.dumps(list(actions))])]

    def mark_rows_done(self, run_id, keys):
        """Mark rows finished for a run that records nothing on them (a dry undo or repair only reads)."""
        with self._writing():
            self._check_lock_held()
            self.db.conn.executemany("update run_rows set done = 1 where run_id = ? and asset_key = ?",
                                     [(run_id, key) for key in keys])

    def rows_to_repair(self):
        """Rows whose asset may hold a segment of reversesync's twice: written by a create, or failed
        as duplicated, in sheet order."""
        return [row[0] for row in self.iterate(
            "select asset_key from assets where done_action = 'create' or state = 'created' or "
            "(state = 'failed' and reason = 'duplicated') order by cast(row_numbers as integer), asset_key")]

    def last_run_failing(self, key, reason_like):
        """The run of the row's latest move into failed whose detail starts with reason_like, or None."""
        rows = self.query("select run_id from events where asset_key = ? and to_state = 'failed' and detail like ? "
                          "order by id desc limit 1", [key, reason_like + "%"])
        return rows[0]["run_id"] if rows else None

    # --- the status tab (issue #12) ---

    def status_rows(self):
        """One tuple per asset still in the source, in sheet order: asset_id, row_numbers, state, reason,
        reason_text, action, segment_id, last_run, updated_at. last_run is the latest run that touched the row
        (its events), or the run that wrote it (done_run_id) where that is later or no event names a run."""
        return self.iterate(
            "select a.asset_id, a.row_numbers, a.state, a.reason, a.reason_text, a.action, a.segment_id, "
            "nullif(max(coalesce(e.last_run, 0), coalesce(a.done_run_id, 0)), 0), a.updated_at "
            "from assets a left join (select asset_key, max(run_id) as last_run from events "
            "where run_id is not null group by asset_key) e on e.asset_key = a.asset_key "
            "where a.in_source = 1 order by cast(a.row_numbers as integer), a.asset_key")


def _json(value):
    return None if value is None else json.dumps(value, sort_keys=True)


def _write_of(row):
    """A Write from its writes row."""
    fields = {field.name for field in dataclasses.fields(Write)}
    values = {name: value for name, value in row.items() if name in fields}
    for name in ("before", "after"):
        values[name] = json.loads(values[name]) if values[name] else None
    return Write(**values)


def _unavailable(path, exc):
    text = str(exc)
    if "full" in text:
        return LedgerUnavailable(f"the ledger {path} cannot grow: {text} (disk full?). Free some space, then resume.")
    if "locked" in text or "busy" in text:
        return LedgerUnavailable(f"the ledger {path} is busy ({text}): another program holds it. Close it, then "
                                 "resume.")
    if "readonly" in text:
        return LedgerError(f"the ledger {path} is read-only ({text}).")
    return LedgerUnavailable(f"the ledger {path} could not be written: {text}")


def holder_alive(holder, this_host, *, heartbeat_moves=lambda: False, now=time.time):
    """Whether the lock's holder may still be working: the one liveness rule (the lock and `runs` both use it).

    On this host: not while its process is gone or a zombie (dead, not yet reaped); yes while a process with its
    pid and start time exists (psutil, which also works on Windows, where os.kill(pid, 0) would send a Ctrl-C
    instead of probing, issue #11). A start time that no longer matches is a reused pid, or a clock step (psutil
    derives start times from the wall clock): then, as for a holder on another host or a 0.1 lock without a
    start time, it is alive while its heartbeat is fresh, or is seen to move (heartbeat_moves())."""
    beating = lambda: now() - holder["heartbeat"] <= LOCK_STALE_AFTER or heartbeat_moves()  # noqa: E731
    if holder["host"] != this_host:
        return beating()
    try:
        process = psutil.Process(holder["pid"])
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if holder["started"] is not None and abs(process.create_time() - holder["started"]) < 1.0:
            return True
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        pass
    return beating()
