"""Issue #11, ledgers: only `load` creates one; another application's file is refused untouched; commands that
only read work on a read-only or archived copy; a readable ledger is tightened; unwritable folders are errors."""

import contextlib
import os
import sqlite3
import stat

import pytest

from reversesync.cli import cli
from reversesync.ledger import MIGRATION_NAMES, Ledger
from tests.conftest import ID_A, write_sheet

ID = "8c0d9a10-0000-4000-8000-000000000001"


def side_files(path):
    return [p for p in (str(path) + "-wal", str(path) + "-shm", str(path) + "-journal") if os.path.exists(p)]


@contextlib.contextmanager
def read_only(*paths):
    """chmod a-w for the block. Root may still write such files; reversesync treats them as read-only anyway."""
    modes = {path: stat.S_IMODE(os.stat(path).st_mode) for path in paths}
    for path, mode in modes.items():
        os.chmod(path, mode & ~0o222)
    try:
        yield
    finally:
        for path, mode in modes.items():
            os.chmod(path, mode)


COMMANDS_THAT_NEED_A_LEDGER = [["run"], ["run", "--live"], ["resume"], ["verify"], ["runs"], ["report"],
                               ["report", "--json"], ["history", ID]]


@pytest.mark.parametrize("command", COMMANDS_THAT_NEED_A_LEDGER, ids=" ".join)
def test_only_load_creates_a_ledger(credentials, invoke, ledger_path, command):
    result = invoke(*command)
    assert result.exit_code == 2
    assert result.output == (f"Error: no ledger at {ledger_path}; run 'reversesync --ledger {ledger_path} load --csv "
                             "FILE' (or --sheet SPREADSHEET_ID) first.\n")
    assert not os.path.exists(ledger_path)


def test_without_ledger_option_the_hint_is_the_plain_command(credentials, runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVERSESYNC_LEDGER", raising=False)
    result = runner.invoke(cli, ["run", "--live"])
    assert result.exit_code == 2
    assert result.output == (f"Error: no ledger at {tmp_path / 'reversesync.db'}; run 'reversesync load --csv FILE' "
                             "(or --sheet SPREADSHEET_ID) first.\n")
    assert os.listdir(tmp_path) == []


def test_an_empty_file_left_by_a_failed_first_load_is_no_ledger_but_load_fills_it(credentials, invoke, ledger_path):
    open(ledger_path, "w").close()
    result = invoke("run")
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: no ledger at {ledger_path} (the file is empty); run ")
    assert invoke("load", "--example").exit_code == 0
    assert Ledger(ledger_path).counts()[0]["pending"] == 261


@pytest.fixture
def foreign(tmp_path):
    path = tmp_path / "photos.db"
    conn = sqlite3.connect(path)
    conn.execute("create table photos (id integer primary key, title text)")
    conn.execute("create table albums (id integer primary key)")
    conn.execute("insert into photos (title) values ('summer')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("command", [["load", "--example"], ["run"], ["report"], ["runs"], ["history", ID],
                                     ["report", "--csv", "-"]], ids=" ".join)
def test_another_applications_sqlite_file_is_refused_untouched(credentials, runner, foreign, command):
    before = foreign.read_bytes(), os.stat(foreign).st_mtime_ns, stat.S_IMODE(os.stat(foreign).st_mode)
    result = runner.invoke(cli, ["--ledger", str(foreign), *command])
    assert result.exit_code == 2
    assert result.output == (f"Error: {foreign} is not a reversesync ledger: it is another application's SQLite "
                             "database (tables albums, photos). It was not changed; give another path with "
                             "--ledger.\n")
    assert (foreign.read_bytes(), os.stat(foreign).st_mtime_ns, stat.S_IMODE(os.stat(foreign).st_mode)) == before
    assert side_files(foreign) == []


def test_a_file_that_is_not_sqlite_is_refused_untouched(runner, tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_text("hello, this is not sqlite\n" * 200)
    result = runner.invoke(cli, ["--ledger", str(notes), "load", "--example"])
    assert result.exit_code == 2
    assert result.output == (f"Error: {notes} is not a usable reversesync ledger: file is not a database. "
                             "It was not changed.\n")
    assert notes.read_text() == "hello, this is not sqlite\n" * 200


@pytest.fixture
def loaded(invoke, ledger_path):
    assert invoke("load", "--example").exit_code == 0
    return ledger_path


@pytest.mark.parametrize("command", [["report"], ["report", "--json"], ["report", "--csv", "-"], ["runs"],
                                     ["history", "882ed421-185a-4606-9e58-469629a88449"]], ids=" ".join)
def test_commands_that_only_read_work_on_a_read_only_ledger_and_write_nothing(loaded, invoke, command):
    before = open(loaded, "rb").read(), os.stat(loaded).st_mtime_ns
    with read_only(loaded):
        result = invoke(*command)
    assert result.exit_code in (0, 2), result.output
    assert "read-only" not in result.output and "Traceback" not in result.output
    assert (open(loaded, "rb").read(), os.stat(loaded).st_mtime_ns) == before
    assert side_files(loaded) == []


@pytest.mark.parametrize("command", [["report"], ["report", "--json"], ["report", "--csv", "-"], ["runs"],
                                     ["history", "882ed421-185a-4606-9e58-469629a88449"]], ids=" ".join)
def test_commands_that_only_read_send_sqlite_nothing_that_writes(loaded, invoke, sql_written, command):
    """Every statement SQLite runs for the command, traced: no pragma, no migration, nothing but reads."""
    assert invoke(*command).exit_code == 0
    assert sql_written() == []


def test_report_reads_an_archived_copy_in_a_read_only_folder(loaded, runner, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    copy = archive / "2026-11.db"
    copy.write_bytes(open(loaded, "rb").read())
    with read_only(copy, archive):
        result = runner.invoke(cli, ["--ledger", str(copy), "report"])
        assert os.listdir(archive) == ["2026-11.db"]
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "pending        261"


def test_read_only_opening_refuses_writes_at_the_sqlite_level(loaded):
    """The read-only opening is SQLite's own (mode=ro / immutable), not only a promise of the code."""
    ledger = Ledger(loaded, readonly=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ledger.db.execute("delete from assets")
    assert ledger.counts()[0]["pending"] == 261


@pytest.mark.parametrize("command", [["load", "--example"], ["run"], ["report", "--sync-log", "--sheet", "x"]],
                         ids=" ".join)
def test_commands_that_write_say_the_ledger_is_read_only(loaded, credentials, invoke, command):
    with read_only(loaded):
        result = invoke(*command)
    assert result.exit_code == 2
    assert result.output == (f"Error: the ledger {loaded} is read-only; this command writes to it. Make it "
                             "writable, or work on a writable copy.\n")


def test_a_ledger_that_needs_a_migration_says_so_when_read_and_load_upgrades_it(invoke, ledger_path, tmp_path):
    Ledger(ledger_path, stop_before="003_run_figures").close()
    before = open(ledger_path, "rb").read()
    result = invoke("report")
    assert result.exit_code == 2
    lacking = ", ".join(MIGRATION_NAMES[2:])
    assert result.output == (f"Error: the ledger {ledger_path} was written by an older reversesync (it lacks "
                             f"{lacking}); load the sheet into it once with 'reversesync --ledger "
                             f"{ledger_path} load --csv FILE' (or --sheet SPREADSHEET_ID) to upgrade it (that "
                             "writes to it). It was not changed.\n")
    assert open(ledger_path, "rb").read() == before
    assert invoke("load", "--csv", write_sheet(tmp_path / "s.csv", [(ID_A, "a", 1, 2)])).exit_code == 0
    assert invoke("report").exit_code == 0


def test_a_ledger_in_a_folder_that_cannot_be_written(runner, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    path = locked / "ledger.db"
    with read_only(locked):
        result = runner.invoke(cli, ["--ledger", str(path), "load", "--example"])
    assert result.exit_code == 2
    assert result.output == (f"Error: cannot create the ledger {path}: the folder {locked} is not writable. "
                             "Choose a folder you can write with --ledger PATH.\n")
    assert runner.invoke(cli, ["--ledger", str(path), "load", "--example"]).exit_code == 0
    with read_only(locked):
        result = runner.invoke(cli, ["--ledger", str(path), "load", "--example"])
    assert result.exit_code == 2
    assert result.output == (f"Error: the ledger's folder {locked} is not writable; SQLite keeps its journal "
                             "beside ledger.db, so this command cannot run there. Move the ledger to a folder "
                             "you can write.\n")


def test_creating_the_ledger_where_the_os_refuses_is_not_a_traceback(runner, tmp_path, monkeypatch):
    """What a non-root user meets in a folder they cannot write, simulated for a root test run."""
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("reversesync.ledger.os.open", refused)
    path = tmp_path / "ledger.db"
    result = runner.invoke(cli, ["--ledger", str(path), "load", "--example"])
    assert result.exit_code == 2
    assert result.output == (f"Error: cannot create the ledger {path}: Permission denied. Choose a folder you can "
                             "write with --ledger PATH.\n")


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_ledger_readable_by_others_is_tightened_when_opened_for_writing(loaded, invoke):
    os.chmod(loaded, 0o644)
    result = invoke("report")  # reading changes nothing, modes included
    assert stat.S_IMODE(os.stat(loaded).st_mode) == 0o644
    result = invoke("load", "--example")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == f"note: {loaded} was readable by others (mode 0644); it is now 0600."
    assert stat.S_IMODE(os.stat(loaded).st_mode) == 0o600
    assert "note:" not in invoke("load", "--example").stderr
