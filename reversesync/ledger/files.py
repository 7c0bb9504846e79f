"""Opening a ledger file (issue #11): only `load` creates one; another application's SQLite file is refused
before anything touches it; commands that only read open the file read-only (no pragma, no migration), so an
archived or read-only copy can be reported on. And the schema migrations, one SQL file each."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from importlib import resources
from importlib.abc import Traversable

import sqlite_utils
from sqlite_utils import Migrations

from ..errors import (
    LedgerError,
    LedgerMissing,
    LedgerNeedsUpgrade,
    LedgerReadOnly,
    LedgerTooNew,
    LedgerUnavailable,
    NotALedger,
)
from . import place

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
    with no write bit is read-only by intent (and is how Windows shows a file's read-only attribute)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(mode & 0o222)


def folder_writable(folder: str, windows: bool | None = None) -> bool:
    """A file can be made in folder. On Windows that is found by making one (issue #18): Windows shows a folder
    with the read-only attribute (Explorer sets it on Documents and other special folders) as mode 0o555, yet
    files can be made in it; the attribute means nothing for a folder, and only its ACL decides. Elsewhere the
    mode bits are the owner's intent, as for a file (root could write anyway)."""
    if not (os.name == "nt" if windows is None else windows):
        return writable(folder)
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".reversesync-", suffix=".tmp"):
            return True  # removed on leaving the block
    except OSError:
        return False


def is_wal(path: str) -> bool:
    """The file is a WAL-mode SQLite database: its header's read and write versions are 2 (1 is rollback)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18:20] == b"\x02\x02"


def connect_without_writing(path: str) -> sqlite3.Connection:
    """A connection that cannot write the file and leaves no trace beside it.

    mode=ro still creates -wal and -shm files for a WAL database; immutable=1 creates nothing. immutable is
    right only while no process writes: a writer in WAL mode keeps a -wal file beside the database, so
    without one the file is at rest (and an archived copy or a read-only folder never has a writer). A ledger
    kept without WAL (--allow-network-ledger) is read with mode=ro alone, which creates nothing for it and sees
    a writer's locks. The URI is the quoted path (issue #18), never Path.as_uri(), which Windows SQLite refuses
    for a UNC path."""
    uri = place.sqlite_uri(path, windows=os.name == "nt")
    if os.path.exists(path + "-wal") or not is_wal(path):
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


def check_what_is_there(path: str, create: bool, windows: bool | None = None) -> list[str]:
    """Make sure path holds a reversesync ledger (or create an empty file for one); never writes to an existing
    file. Returns the names of the migrations already applied."""
    if not os.path.exists(path):
        if not create:
            raise LedgerMissing(f"no ledger at {path}")
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            raise LedgerError(f"cannot create the ledger {path}: folder {folder} does not exist")
        if not folder_writable(folder, windows):
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


def open_for_writing(path: str, upgrade: bool, stop_before: str | None, notes: list[str],
                     network: str | None = None, windows: bool | None = None) -> sqlite_utils.Database:
    """The ledger opened to be written, in WAL mode. network (--allow-network-ledger, issue #18: where the ledger
    is, as "on the network share ...", or "" for a place not known to be remote) keeps it without WAL, saying so
    when it switches."""
    folder = os.path.dirname(path)
    if not writable(path):
        raise LedgerReadOnly(f"the ledger {path} is read-only; this command writes to it. Make it "
                             "writable, or work on a writable copy.")
    if not folder_writable(folder, windows):
        raise LedgerReadOnly(f"the ledger's folder {folder} is not writable; SQLite keeps its journal "
                             f"beside {os.path.basename(path)}, so this command cannot run there. "
                             "Move the ledger to a folder you can write.")
    make_private(path, notes)
    db = sqlite_utils.Database(sqlite3.connect(path, check_same_thread=False, timeout=10))
    steps = migrations()
    unknown = sorted({m.name for m in steps.applied(db)} - set(MIGRATION_NAMES))
    if unknown:
        raise _too_new(path, unknown)
    set_journal_mode(db, path, network, notes)
    # WAL with synchronous=NORMAL survives a killed process; only power loss can drop the last commits.
    db.execute("PRAGMA synchronous=NORMAL")
    if upgrade:
        steps.apply(db, stop_before=stop_before)
    return db


def set_journal_mode(db: sqlite_utils.Database, path: str, network: str | None, notes: list[str]) -> None:
    """WAL on a local disk. Off it (--allow-network-ledger) the rollback journal, journal_mode=DELETE: WAL's index
    is shared memory, which two machines (or a sync client) cannot share, and -wal/-shm files beside a ledger on a
    share are how commits get lost. Said once, when the ledger is switched (or made) so."""
    wanted = "delete" if network is not None else "wal"
    before = str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    new = not db.table_names()
    now = str(db.execute(f"PRAGMA journal_mode={wanted}").fetchone()[0]).lower()
    if now != wanted:
        raise LedgerUnavailable(f"the ledger {path} could not be switched to journal_mode={wanted.upper()} (it "
                                f"stays {now.upper()}): another program has it open. Close it, then run again.")
    if network is not None and (before != wanted or new):
        where = f" {network}" if network else ""
        notes.append(f"note: --allow-network-ledger: the ledger {path}{where} is kept without WAL "
                     "(journal_mode=DELETE); use it from one machine at a time.")


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
