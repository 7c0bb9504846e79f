"""The SQLite ledger: schema through migrations, the row state machine, runs, and the process lock."""

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

import sqlite_utils
from sqlite_utils import Migrations

from .errors import IllegalTransition, LedgerError, LedgerLocked, LedgerTooNew

DEFAULT_LEDGER = "reversesync.db"

PENDING, CHECKED, CREATED, UPDATED, SKIPPED, FAILED = (
    "pending", "checked", "created", "updated", "skipped", "failed")
STATES = (PENDING, CHECKED, CREATED, UPDATED, SKIPPED, FAILED)

# The state machine is this table and nothing else. A self-transition records a change of a row's
# details (new plan, new reason, source edited) without moving it. None is "not yet in the ledger".
TRANSITIONS = {
    None: frozenset({PENDING, SKIPPED}),
    PENDING: frozenset({PENDING, CHECKED, SKIPPED, FAILED}),
    CHECKED: frozenset({CHECKED, PENDING, CREATED, UPDATED, SKIPPED, FAILED}),
    CREATED: frozenset({CREATED, PENDING, SKIPPED}),
    UPDATED: frozenset({UPDATED, PENDING, SKIPPED}),
    SKIPPED: frozenset({SKIPPED, PENDING}),
    FAILED: frozenset({FAILED, PENDING, SKIPPED}),
}

# A lock whose holder has not shown a sign of life for this long is stale even if its pid exists
# (pids are reused after a kill).
LOCK_STALE_AFTER = 120.0

_MIGRATION_SET = "reversesync"


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
        self.readonly = readonly
        self.notes = []
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

    def move(self, key, to_state, *, run_id=None, detail=None, **fields):
        """Move one row to to_state, set fields, and record the event, all in one transaction."""
        self.move_many([(key, to_state, fields, detail)], run_id=run_id)

    def move_many(self, moves, *, run_id=None):
        """Apply (key, to_state, fields, detail) moves in one transaction; any illegal move rolls back all."""
        stamp = now_iso()
        with self._lock, self.db.atomic():
            events = []
            for key, to_state, fields, detail in moves:
                row = self.db.execute("select state from assets where asset_key = ?", [key]).fetchone()
                if row is None:
                    raise LedgerError(f"no asset {key} in the ledger")
                check_transition(row[0], to_state)
                values = dict(fields, state=to_state, updated_at=stamp)
                assignments = ", ".join(f"[{column}] = ?" for column in values)
                self.db.execute(f"update assets set {assignments} where asset_key = ?",
                                [*values.values(), key])
                events.append((key, run_id, row[0], to_state, stamp, detail))
            self.record_events(events)

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
        with self._lock, self.db.atomic():
            cursor = self.db.execute(
                "insert into runs (mode, options, started_at, status) values (?, ?, ?, 'running')",
                [mode, json.dumps(options, sort_keys=True), now_iso()])
            return cursor.lastrowid

    def finish_run(self, run_id, status, counts, requests=0, throttled=0, writes=0, elapsed=0.0):
        """Close a run (or one leg of it, before a resume); figures add up over the legs."""
        with self._lock, self.db.atomic():
            self.db.execute(
                "update runs set status = ?, finished_at = ?, counts = ?, requests = requests + ?, "
                "throttled = throttled + ?, writes = writes + ?, elapsed_seconds = elapsed_seconds + ? "
                "where id = ?",
                [status, now_iso(), json.dumps(counts, sort_keys=True), requests, throttled, writes, elapsed,
                 run_id])

    def reopen_run(self, run_id):
        with self._lock, self.db.atomic():
            self.db.execute("update runs set status = 'running', finished_at = null where id = ?", [run_id])

    def mark_sync_logged(self, ids_by_run):
        """Remember which runs are in the spreadsheet's Sync_Log ({sync id: run id})."""
        with self._lock, self.db.atomic():
            for sync_id, run_id in ids_by_run.items():
                self.db.execute("update runs set sync_log_id = ? where id = ?", [sync_id, run_id])

    def supersede_unfinished_runs(self):
        """A new run replaces any unfinished one: `resume` then continues the new one."""
        with self._lock, self.db.atomic():
            self.db.execute("update runs set status = 'superseded' where status in "
                            "('running', 'interrupted', 'aborted')")

    def unfinished_run(self):
        """The most recent run that did not finish (interrupted, aborted or killed), or None."""
        rows = self.query("select * from runs order by id desc limit 1")
        if rows and rows[0]["status"] not in ("finished", "failed", "superseded"):
            return rows[0]
        return None

    # --- the process lock ---------------------------------------------------------------------------

    def acquire(self, command):
        """Take the ledger for this process, or raise LedgerLocked naming the live holder."""
        token = uuid.uuid4().hex
        host = socket.gethostname()
        with self._lock, self.db.atomic():
            holder = self.db.execute("select pid, host, command, acquired_at, heartbeat from lock").fetchone()
            if holder and _holder_alive(holder[0], holder[1], holder[4], host):
                pid, holder_host, holder_command, acquired_at, _ = holder
                raise LedgerLocked(
                    f"{self.path} is in use by 'reversesync {holder_command}' (pid {pid} on {holder_host}, "
                    f"since {acquired_at}); wait for it to finish or stop it, then try again.")
            self.db.execute("delete from lock")
            self.db.execute(
                "insert into lock (id, token, pid, host, command, acquired_at, heartbeat) "
                "values (1, ?, ?, ?, ?, ?, ?)",
                [token, os.getpid(), host, command, now_iso(), time.time()])
        self._lock_token = token

    def heartbeat(self):
        if self._lock_token:
            with self._lock, self.db.atomic():
                self.db.execute("update lock set heartbeat = ? where token = ?",
                                [time.time(), self._lock_token])

    def release(self):
        if self._lock_token:
            with self._lock, self.db.atomic():
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
        """The lock's row (pid, host, command, acquired_at, heartbeat), or None when nobody holds it."""
        rows = self.query("select pid, host, command, acquired_at, heartbeat from lock")
        return rows[0] if rows else None


def _holder_alive(pid, host, heartbeat, this_host):
    if time.time() - heartbeat > LOCK_STALE_AFTER:
        return False
    if host != this_host:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True
