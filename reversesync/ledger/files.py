"""Opening a ledger file (issue #11): only `load` creates one; another application's SQLite file is refused
before anything touches it; commands that only read open the file read-only (no pragma, no migration), so an
archived or read-only copy can be reported on. And the schema migrations, one SQL file each."""

from __future__ import annotations

import os
import pathlib
import sqlite3
from importlib import resources
from importlib.abc import Traversable

import sqlite_utils
from sqlite_utils import Migrations

from ..errors import LedgerError, LedgerMissing, LedgerNeedsUpgrade, LedgerReadOnly, LedgerTooNew, NotALedger

MIGRATION_SET = "reversesync"


def _migration_files() -> list[Traversable]:
    folder = resources.files("reversesync.migrations")
    return sorted((entry for entry in folder.iterdir() if entry.name.endswith(".sql")), key=lambda e: e.name)


MIGRATION_NAMES = tuple(entry.name[: -len(".sql")] for entry in _migration_files())


def migrations() -> Migrations:
    """The ledger's schema migrations, one per SQL file shipped in reversesync.migrations, in name order."""
    steps = Migrations(MIGRATION_SET)
    for entry in _migration_files():
        sql = entry.read_text(encoding="utf-8")

        def apply(db: sqlite_utils.Database, sql: str = sql) -> None:
            db.executescript(sql)

        steps(name=entry.name[: -len(".sql")])(apply)
    return steps


def create_private_file(path: str) -> None:
    # Mode 0600 from the first byte: the ledger holds asset ids and titles of a production catalogue.
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        raise LedgerError(f"cannot create the ledger {path}: {exc.strerror}. Choose a folder you can write "
                          "with --ledger PATH.") from None
    os.close(fd)


def writable(path: str) -> bool:
    """Writable by this process and not marked read-only. Root may write anything, but a file or folder
    with no write bit is read-only by intent (and is how Windows shows its read-only attribute)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(mode & 0o222)


def connect_without_writing(path: str) -> sqlite3.Connection:
    """A connection that cannot write the file and leaves no trace beside it.

    mode=ro still creates -wal and -shm files for a WAL database; immutable=1 creates nothing. immutable is
    right only while no process writes: a writer in WAL mode keeps a -wal file beside the database, so
    without one the file is at rest (and an archived copy or a read-only folder never has a writer)."""
    uri = pathlib.Path(path).as_uri()  # file:///C:/... on Windows, percent-encoded everywhere
    if os.path.exists(path + "-wal"):
        return sqlite3.connect(uri + "?mode=ro", uri=True, check_same_thread=False, timeout=10)
    return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, check_same_thread=False, timeout=10)


def inspect(conn: sqlite3.Connection) -> tuple[str, list[str], list[str]]:
    """("empty" | "reversesync" | "foreign", names of the applied reversesync migrations, table names)."""
    tables = [row[0] for row in conn.execute(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name")]
    if not tables:
        return "empty", [], tables
    if "_sqlite_migrations" not in tables:
        return "foreign", [], tables
    applied = [row[0] for row in conn.execute(
        "select name from _sqlite_migrations where migration_set = ? order by id", [MIGRATION_SET])]
    return ("reversesync" if applied else "foreign"), applied, tables


def check_what_is_there(path: str, create: bool) -> list[str]:
    """Make sure path holds a reversesync ledger (or create an empty file for one); never writes to an existing
    file. Returns the names of the migrations already applied."""
    if not os.path.exists(path):
        if not create:
            raise LedgerMissing(f"no ledger at {path}")
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            raise LedgerError(f"cannot create the ledger {path}: folder {folder} does not exist")
        if not writable(folder):
            raise LedgerReadOnly(f"cannot create the ledger {path}: the folder {folder} is not writable. "
                                 "Choose a folder you can write with --ledger PATH.")
        create_private_file(path)
        return []
    if os.path.isdir(path):
        raise LedgerError(f"{path} is a folder, not a ledger file.")
    conn = connect_without_writing(path)
    try:
        kind, applied, tables = inspect(conn)
    finally:
        conn.close()
    if kind == "foreign":
        shown = ", ".join(tables[:8]) + (", ..." if len(tables) > 8 else "")
        raise NotALedger(f"{path} is not a reversesync ledger: it is another application's SQLite "
                         f"database (tables {shown}). It was not changed; give another path with --ledger.")
    if kind == "empty" and not create:
        raise LedgerMissing(f"no ledger at {path} (the file is empty)")
    return applied


def open_readonly(path: str, applied: list[str]) -> sqlite_utils.Database:
    unknown = sorted(set(applied) - set(MIGRATION_NAMES))
    if unknown:
        raise _too_new(path, unknown)
    missing = [name for name in MIGRATION_NAMES if name not in applied]
    if missing:
        raise LedgerNeedsUpgrade(
            f"the ledger {path} was written by an older reversesync (it lacks {', '.join(missing)})")
    return sqlite_utils.Database(connect_without_writing(path))


def open_for_writing(path: str, upgrade: bool, stop_before: str | None, notes: list[str]) -> sqlite_utils.Database:
    folder = os.path.dirname(path)
    if not writable(path):
        raise LedgerReadOnly(f"the ledger {path} is read-only; this command writes to it. Make it "
                             "writable, or work on a writable copy.")
    if not writable(folder):
        raise LedgerReadOnly(f"the ledger's folder {folder} is not writable; SQLite keeps its journal "
                             f"beside {os.path.basename(path)}, so this command cannot run there. "
                             "Move the ledger to a folder you can write.")
    make_private(path, notes)
    db = sqlite_utils.Database(sqlite3.connect(path, check_same_thread=False, timeout=10))
    steps = migrations()
    unknown = sorted({m.name for m in steps.applied(db)} - set(MIGRATION_NAMES))
    if unknown:
        raise _too_new(path, unknown)
    db.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL survives a killed process; only power loss can drop the last commits.
    db.execute("PRAGMA synchronous=NORMAL")
    if upgrade:
        steps.apply(db, stop_before=stop_before)
    return db


def make_private(path: str, notes: list[str]) -> None:
    """A ledger others can read is tightened to 0600 (with a note): it is as private as the catalogue."""
    if os.name != "posix":
        return  # no modes on Windows: the user's profile folder's ACL protects the file (see README)
    for name in (path, path + "-wal", path + "-shm"):
        try:
            mode = os.stat(name).st_mode & 0o777
        except FileNotFoundError:
            continue
        if not mode & 0o077:
            continue
        try:
            os.chmod(name, 0o600)
        except OSError as exc:
            notes.append(f"note: {name} is readable by others (mode {mode:04o}) and could not be made "
                         f"private: {exc.strerror}.")
            continue
        if name == path:
            notes.append(f"note: {name} was readable by others (mode {mode:04o}); it is now 0600.")


def _too_new(path: str, unknown: list[str]) -> LedgerTooNew:
    return LedgerTooNew(f"{path} was written by a newer reversesync (it has migrations {', '.join(unknown)}); "
                        "upgrade reversesync to use it. The ledger was not changed.")
