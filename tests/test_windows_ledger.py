"""Issue #18, one ledger, in one place, on a local disk: the default ledger is refused in a system folder (a
scheduled task starts in C:\\Windows\\System32 and would make a second ledger); a ledger on a network share, a
remote drive or under OneDrive is refused unless --allow-network-ledger, which keeps it without WAL; SQLite URIs
are the quoted path; a folder is writable on Windows when a file can be made in it.

Windows is played on Linux: the CLI is handed a fake machine (`obj={"host": Machine(...)}`) with Windows' rules, its
environment, drive types and mounts; the ledger files themselves are real files in the test's folder."""

import dataclasses
import os
import sqlite3
from pathlib import PureWindowsPath

import pytest

from reversesync.cli import cli

SYSTEM_FOLDER = ("will not keep the ledger in the system folder {folder}: a scheduled task starts there, and a "
                 "ledger made there would be a second one, which does not see the lock of your hand runs. Give the "
                 "ledger one absolute path, the same for the hand runs and the task: --ledger {example}, or set "
                 "REVERSESYNC_LEDGER to it.")
NOT_LOCAL = ("will not use the ledger {path} {where}: SQLite's WAL journal works on one machine only, and another PC "
             "or a sync client (uploading the ledger, its -wal and -shm files apart, making conflict copies) can lose "
             "what was committed. Keep it on a local disk (--ledger {example}), or, if only one machine ever uses "
             "it, give --allow-network-ledger (or set REVERSESYNC_ALLOW_NETWORK_LEDGER=1): it is then kept without "
             "WAL.")
WINDOWS_EXAMPLE = r"C:\reversesync\reversesync.db"
POSIX_EXAMPLE = "/var/lib/reversesync/reversesync.db"


@dataclasses.dataclass
class Machine:
    """The machine as the ledger's place rules see it (ledger/place.py's Host)."""

    windows: bool = True
    env: dict = dataclasses.field(default_factory=dict)
    remote_drives: tuple = ()
    mount_table: list = dataclasses.field(default_factory=lambda: [("/", "ext4")])

    def drive_type(self, root):
        return 4 if root[:2].upper() in self.remote_drives else 3  # DRIVE_REMOTE, DRIVE_FIXED

    def mounts(self):
        return self.mount_table


def journal_mode_of(path):
    """'wal' or 'rollback', from the file's header (bytes 18 and 19 are 2 for WAL), without opening it."""
    with open(path, "rb") as handle:
        header = handle.read(20)
    return {b"\x02\x02": "wal", b"\x01\x01": "rollback"}[header[18:20]]


def side_files(path):
    return [p for p in (f"{path}-wal", f"{path}-shm", f"{path}-journal") if os.path.exists(p)]


@pytest.fixture
def windows(tmp_path, monkeypatch):
    """A Windows whose %SystemRoot% is the test's Windows folder; REVERSESYNC_LEDGER unset."""
    monkeypatch.delenv("REVERSESYNC_LEDGER", raising=False)
    monkeypatch.delenv("REVERSESYNC_ALLOW_NETWORK_LEDGER", raising=False)
    (tmp_path / "Windows" / "System32").mkdir(parents=True)
    return Machine(env={"SystemRoot": str(tmp_path / "Windows")})


@pytest.fixture
def system32(tmp_path, monkeypatch):
    """The working folder of a task Task Scheduler starts."""
    folder = tmp_path / "Windows" / "System32"
    monkeypatch.chdir(folder)
    return folder


# --- the default ledger is not made in a system folder ------------------------------------------------------


def test_a_scheduled_task_started_in_system32_makes_no_second_ledger(runner, tmp_path, windows, system32):
    """0.2 made System32\\reversesync.db (elevated) beside the hand runs' ledger: two ledgers, two locks, the
    same assets written twice. Now the task stops at once, saying where the ledger goes."""
    hand = tmp_path / "reversesync" / "reversesync.db"
    hand.parent.mkdir()
    assert runner.invoke(cli, ["--ledger", str(hand), "load", "--example"], obj={"host": windows}).exit_code == 0

    result = runner.invoke(cli, ["load", "--example"], obj={"host": windows})  # the task, no --ledger
    assert result.exit_code == 2
    assert result.output == "Error: " + SYSTEM_FOLDER.format(folder=system32, example=WINDOWS_EXAMPLE) + "\n"
    assert os.listdir(system32) == []


@pytest.mark.parametrize("command", [["report"], ["runs"], ["run", "--live"]], ids=" ".join)
def test_a_ledger_0_2_left_in_system32_is_not_used_either(credentials, runner, windows, system32, command):
    (system32 / "reversesync.db").write_bytes(b"")
    result = runner.invoke(cli, command, obj={"host": windows})
    assert result.exit_code == 2
    assert result.output == "Error: " + SYSTEM_FOLDER.format(folder=system32, example=WINDOWS_EXAMPLE) + "\n"
    assert os.listdir(system32) == ["reversesync.db"]


def test_a_relative_ledger_from_the_environment_is_placed_by_the_working_folder_too(runner, windows, system32,
                                                                                     monkeypatch):
    monkeypatch.setenv("REVERSESYNC_LEDGER", "nightly.db")
    result = runner.invoke(cli, ["load", "--example"], obj={"host": windows})
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: will not keep the ledger in the system folder {system32}: ")
    assert os.listdir(system32) == []


def test_an_absolute_ledger_is_the_users_choice_even_in_a_system_folder(runner, windows, system32, tmp_path,
                                                                         monkeypatch):
    explicit = system32 / "reversesync.db"
    assert runner.invoke(cli, ["--ledger", str(explicit), "load", "--example"], obj={"host": windows}).exit_code == 0
    shared = tmp_path / "shared.db"
    monkeypatch.setenv("REVERSESYNC_LEDGER", str(shared))
    assert runner.invoke(cli, ["load", "--example"], obj={"host": windows}).exit_code == 0
    assert shared.exists()


def test_the_default_ledger_in_an_ordinary_folder_is_still_fine(runner, windows, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(cli, ["load", "--example"], obj={"host": windows}).exit_code == 0
    assert (tmp_path / "reversesync.db").exists()


def test_on_posix_the_root_folder_is_a_system_folder(runner, monkeypatch):
    """The real machine's rules (no fake): a service starts in /. Only a read is tried, so 0.2 made nothing there."""
    monkeypatch.delenv("REVERSESYNC_LEDGER", raising=False)
    monkeypatch.chdir("/")
    result = runner.invoke(cli, ["report"])
    assert result.exit_code == 2
    assert result.output == "Error: " + SYSTEM_FOLDER.format(folder="/", example=POSIX_EXAMPLE) + "\n"


@pytest.mark.parametrize(("folder", "system_root", "system"), [
    (r"C:\Windows\System32", r"C:\Windows", True),
    (r"c:\WINDOWS\system32", r"C:\Windows", True),          # Windows compares names without case
    (r"C:\Windows", r"C:\Windows", True),
    (r"C:\Windows\SysWOW64\config", None, True),            # without %SystemRoot%: C:\Windows
    (r"\\?\C:\Windows\System32", r"C:\Windows", True),      # a long-path prefix changes nothing
    (r"D:\WinNT\System32", r"D:\WinNT", True),
    (r"C:\Windows2", r"C:\Windows", False),
    (r"C:\reversesync", r"C:\Windows", False),
    (r"C:\Users\kim\Documents", r"C:\Windows", False),
])
def test_system_folders_on_windows(folder, system_root, system):
    from reversesync.ledger import place

    machine = Machine(env={"SystemRoot": system_root} if system_root else {})
    assert place.system_folder(str(PureWindowsPath(folder)), machine) is system


@pytest.mark.parametrize(("folder", "system"), [("/", True), ("/.", True), ("/root", False), ("/srv/rs", False)])
def test_system_folders_on_posix(folder, system):
    from reversesync.ledger import place

    assert place.system_folder(folder, Machine(windows=False)) is system


# --- network shares, remote drives, OneDrive ----------------------------------------------------------------


@pytest.fixture
def nas(tmp_path):
    """A folder the (fake) mount table says is an NFS share."""
    folder = tmp_path / "nas"
    folder.mkdir()
    return folder, Machine(windows=False, mount_table=[("/", "ext4"), (str(folder), "nfs4")])


def test_a_ledger_on_a_network_mount_is_refused_and_allowed_only_without_wal(runner, nas, monkeypatch):
    """0.2 ran a ledger on a share in WAL mode, its -wal and -shm beside it: two machines lose commits."""
    monkeypatch.delenv("REVERSESYNC_ALLOW_NETWORK_LEDGER", raising=False)
    folder, machine = nas
    ledger = folder / "ledger.db"
    result = runner.invoke(cli, ["--ledger", str(ledger), "load", "--example"], obj={"host": machine})
    assert result.exit_code == 2
    where = f"on a network file system (nfs4 at {folder})"
    assert result.output == "Error: " + NOT_LOCAL.format(path=ledger, where=where, example=POSIX_EXAMPLE) + "\n"
    assert os.listdir(folder) == []

    result = runner.invoke(cli, ["--ledger", str(ledger), "--allow-network-ledger", "load", "--example"],
                           obj={"host": machine})
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (f"note: --allow-network-ledger: the ledger {ledger} {where} is kept "
                                             "without WAL (journal_mode=DELETE); use it from one machine at a time.")
    assert journal_mode_of(ledger) == "rollback"
    assert os.listdir(folder) == ["ledger.db"]

    # Said once: the next run finds it so already. Given after the command name, the option works the same.
    result = runner.invoke(cli, ["--ledger", str(ledger), "load", "--allow-network-ledger", "--example"],
                           obj={"host": machine})
    assert result.exit_code == 0 and "note:" not in result.stderr
    result = runner.invoke(cli, ["--ledger", str(ledger), "--allow-network-ledger", "report"], obj={"host": machine})
    assert result.exit_code == 0 and result.output.splitlines()[1] == "pending        261"
    assert os.listdir(folder) == ["ledger.db"] and journal_mode_of(ledger) == "rollback"


def test_every_command_refuses_a_network_ledger_without_the_option(credentials, runner, nas):
    folder, machine = nas
    ledger = folder / "ledger.db"
    assert runner.invoke(cli, ["--ledger", str(ledger), "--allow-network-ledger", "load", "--example"],
                         obj={"host": machine}).exit_code == 0
    for command in (["report"], ["runs"], ["run", "--live"], ["verify"]):
        result = runner.invoke(cli, ["--ledger", str(ledger), *command], obj={"host": machine})
        assert result.exit_code == 2, command
        assert result.output.startswith(f"Error: will not use the ledger {ledger} on a network file system "), command


def test_a_wal_ledger_moved_to_a_share_is_switched_once_and_says_so(runner, tmp_path, monkeypatch):
    ledger = tmp_path / "moved" / "ledger.db"
    ledger.parent.mkdir()
    assert runner.invoke(cli, ["--ledger", str(ledger), "load", "--example"]).exit_code == 0
    assert journal_mode_of(ledger) == "wal"
    share = Machine(windows=False, mount_table=[("/", "ext4"), (str(ledger.parent), "cifs")])
    monkeypatch.setenv("REVERSESYNC_ALLOW_NETWORK_LEDGER", "1")
    result = runner.invoke(cli, ["--ledger", str(ledger), "load", "--example"], obj={"host": share})
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (f"note: --allow-network-ledger: the ledger {ledger} on a network file "
                                             f"system (cifs at {ledger.parent}) is kept without WAL "
                                             "(journal_mode=DELETE); use it from one machine at a time.")
    assert journal_mode_of(ledger) == "rollback" and side_files(ledger) == []


def test_a_ledger_under_onedrive_is_refused_on_windows(runner, tmp_path, windows, monkeypatch):
    onedrive = tmp_path / "Users" / "kim" / "OneDrive - Contoso"
    (onedrive / "문서").mkdir(parents=True)
    windows.env["OneDriveCommercial"] = str(onedrive)
    ledger = onedrive / "문서" / "reversesync.db"
    result = runner.invoke(cli, ["--ledger", str(ledger), "load", "--example"], obj={"host": windows})
    assert result.exit_code == 2
    assert result.output == "Error: " + NOT_LOCAL.format(path=ledger, where=f"under OneDrive ({onedrive})",
                                                         example=WINDOWS_EXAMPLE) + "\n"
    assert os.listdir(onedrive / "문서") == []

    monkeypatch.setenv("REVERSESYNC_ALLOW_NETWORK_LEDGER", "1")
    result = runner.invoke(cli, ["--ledger", str(ledger), "load", "--example"], obj={"host": windows})
    assert result.exit_code == 0, result.output
    assert journal_mode_of(ledger) == "rollback" and side_files(ledger) == []


def test_a_folder_named_onedrive_is_onedrive_without_its_variable(runner, tmp_path):
    ledger = tmp_path / "OneDrive" / "ledger.db"
    ledger.parent.mkdir()
    result = runner.invoke(cli, ["--ledger", str(ledger), "load", "--example"], obj={"host": Machine(windows=False)})
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: will not use the ledger {ledger} under OneDrive (a folder named "
                                    "OneDrive): ")


@pytest.mark.parametrize(("path", "where"), [
    (r"\\nas01\제작\reversesync.db", r"on the network share \\nas01\제작"),
    (r"\\?\UNC\nas01\share\deep\reversesync.db", r"on the network share \\nas01\share"),
    (r"//nas01/share/reversesync.db", "on the network share //nas01/share"),
    (r"Z:\reversesync\reversesync.db", "on the network drive Z:"),
    (r"\\?\Z:\reversesync\reversesync.db", "on the network drive Z:"),
    (r"C:\Users\kim\OneDrive\reversesync.db", r"under OneDrive (C:\Users\kim\OneDrive)"),
    (r"c:\users\KIM\onedrive\문서\reversesync.db", r"under OneDrive (C:\Users\kim\OneDrive)"),
    (r"D:\Sync\OneDrive - Contoso\r.db", "under OneDrive (a folder named OneDrive - Contoso)"),
    (r"C:\reversesync\reversesync.db", None),
    (r"\\?\C:\reversesync\reversesync.db", None),
    (r"\\.\C:\reversesync\reversesync.db", None),        # the device namespace is no share (a review found)
    (r"C:\OneDriveless.db", None),                     # a file's own name is no folder
])
def test_where_a_windows_ledger_is(path, where):
    from reversesync.ledger import place

    machine = Machine(env={"OneDrive": r"C:\Users\kim\OneDrive"}, remote_drives=("Z:",))
    assert place.remote_place(path, machine) == where


def test_a_drive_windows_cannot_say_the_type_of_is_taken_as_local():
    from reversesync.ledger import place

    class NoApi(Machine):
        def drive_type(self, root):
            raise OSError("no kernel32")

    assert place.remote_place(r"Z:\r.db", NoApi()) is None


def test_a_mount_table_that_cannot_be_read_leaves_posix_alone(tmp_path):
    from reversesync.ledger import place

    class Unreadable(Machine):
        def mounts(self):
            raise PermissionError("/proc/self/mounts")

    assert place.remote_place(str(tmp_path / "r.db"), Unreadable(windows=False)) is None


def test_the_innermost_mount_decides(tmp_path):
    from reversesync.ledger import place

    local = tmp_path / "nfs" / "local"
    local.mkdir(parents=True)
    machine = Machine(windows=False, mount_table=[("/", "ext4"), (str(tmp_path / "nfs"), "nfs"), (str(local), "xfs")])
    assert place.remote_place(str(local / "r.db"), machine) is None
    assert place.remote_place(str(tmp_path / "nfs" / "r.db"), machine) == f"on a network file system (nfs at " \
                                                                           f"{tmp_path / 'nfs'})"


# --- SQLite URIs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "uri"), [
    (r"C:\a b\#%\제작.db", "file:///C:/a%20b/%23%25/%EC%A0%9C%EC%9E%91.db"),
    (r"C:\x\what?.db", "file:///C:/x/what%3F.db"),
    (r"\\nas01\share\r.db", "file:////nas01/share/r.db"),
    (r"\\nas01\제작\r.db", "file:////nas01/%EC%A0%9C%EC%9E%91/r.db"),
    (r"\\?\C:\x\r.db", "file:///C:/x/r.db"),
    (r"\\?\UNC\srv\sh\r.db", "file:////srv/sh/r.db"),
])
def test_sqlite_uris_of_windows_paths(path, uri):
    r"""0.2's Path.as_uri() made `file://nas01/...`, which SQLite refuses ("invalid uri authority"), and failed on
    `\\?\` paths. Both spellings of a path, with backslashes or with slashes, give the same URI."""
    from reversesync.ledger import place

    assert place.sqlite_uri(path, windows=True) == uri
    assert place.sqlite_uri(path.replace("\\", "/"), windows=True) == uri
    if not path.startswith("\\\\?"):
        assert place.sqlite_uri(str(PureWindowsPath(path)), windows=True) == uri


def test_sqlite_uris_of_posix_paths():
    from reversesync.ledger import place

    assert place.sqlite_uri("/srv/제작 #1/50% ?/r.db", False) == (
        "file:///srv/%EC%A0%9C%EC%9E%91%20%231/50%25%20%3F/r.db")
    assert place.sqlite_uri("/srv/caf\udce9.db", False) == "file:///srv/caf%E9.db"  # a Latin-1 name, as its bytes


def test_a_ledger_in_folders_named_with_hangul_spaces_and_uri_characters_works(runner, tmp_path):
    """For real: a full load, then the read-only opening (a URI) by report, runs and an archived copy."""
    folder = tmp_path / "제작 팀" / "#1 50% done?" / "a&b"
    folder.mkdir(parents=True)
    ledger = folder / "원장 #2.db"
    result = runner.invoke(cli, ["--ledger", str(ledger), "load", "--example"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["--ledger", str(ledger), "report"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "pending        261"
    assert runner.invoke(cli, ["--ledger", str(ledger), "runs"]).exit_code == 0
    assert side_files(ledger) == []

    copy = folder / "보관 %23.db"
    copy.write_bytes(ledger.read_bytes())
    result = runner.invoke(cli, ["--ledger", str(copy), "report", "--json"])
    assert result.exit_code == 0, result.output
    assert side_files(copy) == []


# --- folders Windows marks read-only ------------------------------------------------------------------------


@pytest.fixture
def documents(tmp_path):
    """A folder as Windows shows Documents: mode 0o555 (the read-only attribute Explorer sets), yet writable."""
    folder = tmp_path / "Documents"
    folder.mkdir()
    os.chmod(folder, 0o555)
    yield folder
    os.chmod(folder, 0o755)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0,
                    reason="a folder without write bits that can still be written: only root has one on POSIX")
def test_on_windows_documents_holds_a_ledger_although_its_mode_says_read_only(runner, documents, windows):
    ledger = documents / "reversesync.db"
    result = runner.invoke(cli, ["--ledger", str(ledger), "load", "--example"], obj={"host": windows})
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["--ledger", str(ledger), "load", "--example"], obj={"host": windows}).exit_code == 0
    assert sorted(os.listdir(documents)) == ["reversesync.db"]  # the probe's file is gone

    # On POSIX the missing write bits are the owner's word, as before.
    result = runner.invoke(cli, ["--ledger", str(ledger), "load", "--example"])
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: the ledger's folder {documents} is not writable; ")


def test_on_windows_a_folder_where_no_file_can_be_made_is_not_writable(runner, tmp_path, windows, monkeypatch):
    folder = tmp_path / "Program Files"
    folder.mkdir()

    def denied(*args, **kwargs):
        raise PermissionError(13, "Access is denied")

    monkeypatch.setattr("reversesync.ledger.files.tempfile.NamedTemporaryFile", denied)
    ledger = folder / "reversesync.db"
    result = runner.invoke(cli, ["--ledger", str(ledger), "load", "--example"], obj={"host": windows})
    assert result.exit_code == 2
    assert result.output == (f"Error: cannot create the ledger {ledger}: the folder {folder} is not writable. Choose a "
                             "folder you can write with --ledger PATH.\n")
    assert os.listdir(folder) == []


def test_the_windows_probe_leaves_nothing_and_a_missing_folder_is_not_writable(tmp_path):
    from reversesync.ledger import files

    folder = tmp_path / "probe"
    folder.mkdir()
    assert files.folder_writable(str(folder), windows=True)
    assert os.listdir(folder) == []
    assert not files.folder_writable(str(tmp_path / "missing"), windows=True)
    assert not files.folder_writable(str(tmp_path / "missing"), windows=False)


def test_sqlite_reads_a_rollback_ledger_read_only_while_it_is_open_for_writing(tmp_path):
    """A ledger kept without WAL is read with mode=ro, not immutable=1: a writer elsewhere is seen, not ignored."""
    from reversesync.ledger import files

    path = tmp_path / "r.db"
    writer = sqlite3.connect(path)
    writer.execute("create table t (x)")
    writer.commit()
    reader = files.connect_without_writing(str(path))
    writer.execute("insert into t values (1)")
    writer.commit()
    assert reader.execute("select count(*) from t").fetchone() == (1,)
    reader.close()
    writer.close()
