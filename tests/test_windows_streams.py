"""Output streams as Windows has them (issue #18), simulated on Linux: a closed pipe that raises OSError(EINVAL)
instead of BrokenPipeError, a console stream that turns \\n into \\r\\n, PowerShell 5.1's re-encoding, a user's
PYTHONIOENCODING, a report another program holds for a moment, and pythonw.exe's missing stdout and stderr."""

import errno
import io
import json
import os
import subprocess
import sys
import threading

import pytest

from reversesync import errors, outputs
from reversesync.cli import cli
from reversesync.ledger import Ledger
from tests.conftest import ROOT, load_rows, sandbox_for_cli, write_sheet

A, B, C = (f"5e7a0c00-0000-4000-8000-0000000018a{n}" for n in range(1, 4))
READ_TIMEOUT = 0.5


class ClosedPipeOnWindows(io.StringIO):
    """A text stream whose reader quits once quits(text) says so (`| more`, then q): from then on every write
    raises OSError(EINVAL), as a closed pipe does on Windows."""

    def __init__(self, quits):
        super().__init__()
        self.quits = quits
        self.closed_by = None
        self.refused = 0

    def write(self, text):
        if self.closed_by is None and self.quits(text):
            self.closed_by = threading.current_thread()
        if self.closed_by is not None:
            self.refused += 1
            raise OSError(errno.EINVAL, "Invalid argument")
        return super().write(text)


def run_main(monkeypatch, *args, stdout=None, stderr=None):
    """The command as the installed script runs it (click's standalone main), with the process's own streams
    swapped for these; returns its exit status."""
    monkeypatch.setattr(sys, "stdout", stdout if stdout is not None else io.StringIO())
    monkeypatch.setattr(sys, "stderr", stderr if stderr is not None else io.StringIO())
    with pytest.raises(SystemExit) as ended:
        cli.main(list(map(str, args)), prog_name="reversesync")
    return ended.value.code


@pytest.fixture
def lagging(monkeypatch):
    with sandbox_for_cli(monkeypatch, index_lag=0.2) as running:
        yield running


def posts(sandbox, key):
    return [entry for entry in sandbox.requests("POST") if f"/assets/{key}/segments/" in entry[1]]


# --- 1. a closed stream is a closed stream, whatever Windows calls it ---------------------------------------


@pytest.mark.parametrize("who", ["worker", "first"])
def test_a_pipe_closed_during_a_lost_write_stops_the_run_with_130_and_keeps_the_intent(
        lagging, invoke, tmp_path, ledger_path, monkeypatch, who):
    """`reversesync run --live 2>&1 | more`, then q, while A's POST is lost and applied late. worker: the reader
    quits as the line about the lost answer comes, so the worker thread that says it hits the closed pipe
    (OSError EINVAL; 0.2 failed the row, clearing its intent, and ended in a traceback). first: the reader quits
    once the POST is on the wire, and whichever thread writes next hits it (often the main thread's progress
    line: 0.2's traceback and exit 1). Either way the run stops
    as on Ctrl-C (130), A keeps its intent, and resume re-checks it instead of sending it again."""
    for key in (A, B, C):
        lagging.catalogue.add_asset(key)
    lagging.force("POST", f"/assets/{A}/segments/$", action="apply_late", delay_ms=1500)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000), (C, 1000, 5000))
    if who == "worker":
        human = ClosedPipeOnWindows(lambda text: "answer was lost" in text)
    else:
        human = ClosedPipeOnWindows(lambda text: bool(posts(lagging, A)))
    code = run_main(monkeypatch, "--ledger", ledger_path, "run", "--live", "--workers", "1", "--no-search",
                    "--settle", 2, "--read-timeout", READ_TIMEOUT, stderr=human)
    assert code == 130
    assert human.refused >= 1 and "Traceback" not in human.getvalue()
    if who == "worker":
        assert human.closed_by is not threading.main_thread()
    ledger = Ledger(ledger_path)
    assert ledger.query("select status from runs order by id desc")[0]["status"] == "interrupted"
    may_have_landed = ledger.query("select asset_key, intent_id from writes where outcome = 'pending' "
                                   "and sent_at is not null")
    assert A in [write["asset_key"] for write in may_have_landed]
    for write in may_have_landed:  # every write that may have been sent is still the row's open intent
        row = ledger.asset(write["asset_key"])
        assert row["intent"] is not None and write["intent_id"] in row["intent"], dict(row)
        assert row["state"] != "failed", dict(row)
    ledger.close()

    lagging.settle()
    result = invoke("resume")
    assert result.exit_code == 0, result.output
    lagging.settle()
    assert len(posts(lagging, A)) == 1  # re-checked after its settle time, never re-sent
    assert [len(lagging.generic_segments(key)) for key in (A, B, C)] == [1, 1, 1]
    assert Ledger(ledger_path).asset(A)["state"] == "created"


def test_a_surprise_in_the_sink_after_a_lost_write_fails_the_row_but_keeps_its_intent(lagging, invoke, tmp_path,
                                                                                      ledger_path):
    """The engine's own guard (issue #15), under the CLI's translation: any other error where the lost answer is
    reported fails the row internal_error, and the write that may have landed stays its intent; resume re-checks
    it and sends nothing twice."""
    from reversesync import progress
    from reversesync.engine import Sync
    from reversesync.types import RunOptions
    from tests.conftest import client_for

    lagging.catalogue.add_asset(A)
    lagging.force("POST", f"/assets/{A}/segments/$", action="apply_late", delay_ms=1500)
    load_rows(invoke, tmp_path, (A, 1000, 5000))

    def surprised(event):
        if isinstance(event, progress.AnswerLost):
            raise ValueError("a bug in a sink")

    ledger = Ledger(ledger_path)
    ledger.acquire("run")
    try:
        options = RunOptions(live=True, settle=2.0, read_timeout=READ_TIMEOUT, search=False)
        engine = Sync(ledger, client_for(lagging, timeout=(5.0, READ_TIMEOUT), max_backoff=0.01), options, surprised)
        engine.preflight()
        engine.run(ledger.start_run("live", options.to_json()))
    finally:
        ledger.release()
        ledger.close()
    row = Ledger(ledger_path).asset(A)
    assert (row["state"], row["reason"]) == ("failed", "internal_error") and row["intent"] is not None
    lagging.settle()
    assert invoke("run", "--live", "--settle", 2, "--read-timeout", READ_TIMEOUT).exit_code == 0
    assert len(posts(lagging, A)) == 1 and len(lagging.generic_segments(A)) == 1


class ClosedPipeBytes(io.BytesIO):
    """The binary side of a pipe closed on Windows: every write raises OSError(EINVAL)."""

    def write(self, data):
        raise OSError(errno.EINVAL, "Invalid argument")


def test_report_csv_to_a_closed_pipe_exits_130_without_a_traceback(invoke, tmp_path, ledger_path, monkeypatch):
    """`reversesync report --csv - | more`, then q, on Windows."""
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    stderr = io.StringIO()
    stdout = io.TextIOWrapper(ClosedPipeBytes(), encoding="utf-8", newline="\r\n")
    assert run_main(monkeypatch, "--ledger", ledger_path, "report", "--csv", "-", stdout=stdout, stderr=stderr) == 130
    assert "Traceback" not in stderr.getvalue()


@pytest.mark.parametrize("command", [["runs"], ["history", A]], ids=" ".join)
def test_a_table_to_a_closed_pipe_is_130_on_windows_as_on_posix(invoke, tmp_path, ledger_path, monkeypatch,
                                                                command):
    """`reversesync runs | more`, then q: EINVAL ends the command as EPIPE does on POSIX: 130, no traceback."""
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    invoke("run")

    class ClosedPipeOnPosix(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    on_posix = run_main(monkeypatch, "--ledger", ledger_path, *command, stdout=ClosedPipeOnPosix())
    on_windows = run_main(monkeypatch, "--ledger", ledger_path, *command,
                          stdout=ClosedPipeOnWindows(lambda text: True))
    assert on_windows == on_posix == 130


# --- 2. CSV to a stream that turns \n into \r\n ---------------------------------------------------------------


def windows_text_stream(encoding="utf-8"):
    """A text stream as Windows opens a console or pipe: each \n written becomes \r\n."""
    return io.TextIOWrapper(io.BytesIO(), encoding=encoding, newline="\r\n")


def test_csv_to_a_translating_stdout_ends_lines_in_crlf_not_cr_cr_lf():
    import csv

    stream = windows_text_stream()
    with outputs.private_output(outputs.STDOUT, bom=True, stdout=stream) as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title"])
        writer.writerow([A, "메인 이벤트\n두 줄"])  # a newline inside a quoted cell stays as it is
    stream.flush()
    data = stream.buffer.getvalue()
    assert b"\r\r\n" not in data
    assert data == f'id,title\r\n{A},"메인 이벤트\n두 줄"\r\n'.encode()
    assert not data.startswith(b"\xef\xbb\xbf")  # no BOM on standard output
    stream.write("and the stream still works\n")  # the borrowed buffer was not closed
    stream.flush()
    assert stream.buffer.getvalue().endswith(b"works\r\n")


def test_csv_to_stdout_keeps_the_streams_encoding():
    stream = windows_text_stream("cp949")
    with outputs.private_output(outputs.STDOUT, stdout=stream) as handle:
        handle.write("메인\r\n")
    assert stream.buffer.getvalue() == "메인\r\n".encode("cp949")


def test_report_csv_dash_on_a_windows_stdout_has_no_cr_cr_lf(invoke, tmp_path, ledger_path, monkeypatch):
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    stdout = windows_text_stream()
    assert run_main(monkeypatch, "--ledger", ledger_path, "report", "--csv", "-", stdout=stdout) == 0
    stdout.flush()
    data = stdout.buffer.getvalue()
    assert b"\r\r\n" not in data and data.count(b"\r\n") == 3
    assert data.decode().splitlines()[1].startswith(f"{A},")


# --- JSON that PowerShell 5.1's re-encoding cannot mangle --------------------------------------------------------


def test_json_is_ascii_and_reads_back_as_the_korean_it_carries(runner, tmp_path):
    """Windows PowerShell 5.1 re-encodes what it pipes or redirects (cp949, UTF-16): \\uXXXX escapes survive it."""
    from reversesync.cli import cli as group
    from tests.conftest import write_sheet

    folder = tmp_path / "제작 팀"
    folder.mkdir()
    ledger = str(folder / "원장.db")
    sheet = write_sheet(tmp_path / "s.csv", [(A, "메인 이벤트", 1000, 5000)])
    assert runner.invoke(group, ["--ledger", ledger, "load", "--csv", sheet]).exit_code == 0
    result = runner.invoke(group, ["--ledger", ledger, "report", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.isascii() and "\\uc81c\\uc791" in result.stdout
    assert json.loads(result.stdout)["ledger"] == ledger


# --- pythonw.exe: no stdout, no stderr --------------------------------------------------------------------------


def without_streams(*args, env=None):
    """The command as pythonw.exe runs it: sys.stdout and sys.stderr are None."""
    code = ("import sys; sys.stdout = None; sys.stderr = None; from reversesync.cli import main; "
            f"sys.argv = ['reversesync'] + {list(map(str, args))!r}; main()")
    return subprocess.run([sys.executable, "-c", code], env=dict(env or os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
                          capture_output=True, timeout=120)


def test_without_stdout_and_stderr_commands_run_and_say_nothing(lagging, tmp_path, ledger_path):
    from tests.conftest import write_sheet

    lagging.catalogue.add_asset(A)
    sheet = write_sheet(tmp_path / "s.csv", [(A, "메인 이벤트", 1000, 5000)])
    for args, status in [(("load", "--csv", sheet), 0), (("run", "--live", "--no-search"), 0),
                         (("report", "--csv", "-"), 0), (("report", "--json"), 0), (("runs",), 0),
                         (("history", B), 2)]:
        done = without_streams("--ledger", ledger_path, *args)
        assert (done.returncode, done.stdout, done.stderr) == (status, b"", b""), args
    assert len(lagging.generic_segments(A)) == 1


def test_a_console_without_streams_takes_lines_and_shows_none(monkeypatch):
    from reversesync import progress
    from reversesync.cli.console import Console
    from reversesync.cli.journal import Journal
    from reversesync.cli.progress import Renderer

    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    console = Console(as_json=True, journal=Journal(None))
    console.say("Run 1")
    console.out("a table line")
    console.note("a note")
    console.record(command="runs")
    console.finish()
    sink = Renderer(console)
    sink(progress.RunStarted(1, "live", 3, 3))
    sink(progress.Tick(1, 3, 2, 1.0, 0, 0.0, 0.0, False, 0.0))
    with outputs.private_output(outputs.STDOUT, stdout=console.stdout) as handle:
        handle.write("id\r\n")


# --- a report another program holds for a moment -----------------------------------------------------------------


def sharing_violation():
    error = PermissionError(13, "The process cannot access the file because it is being used by another process")
    error.winerror = 32  # what Windows adds; reversesync goes by the PermissionError alone
    return error


def test_a_report_held_for_a_moment_is_renamed_once_it_is_let_go(tmp_path, monkeypatch):
    """Antivirus or OneDrive holds the new file for a moment: the rename is tried again, waiting on a fake sleep."""
    out = tmp_path / "report.csv"
    out.write_text("last night's")
    renames, slept = [], []
    real_replace = os.replace

    def held_twice(source, target):
        renames.append(target)
        if len(renames) <= 2:
            raise sharing_violation()
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", held_twice)
    with outputs.private_output(str(out), sleep=slept.append) as handle:
        handle.write("tonight's")
    assert out.read_text() == "tonight's"
    assert len(renames) == 3 and slept == [outputs.RENAME_PAUSE] * 2
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_a_report_held_all_along_is_a_clear_error_after_about_a_second(tmp_path, monkeypatch):
    out = tmp_path / "report.csv"
    out.write_text("the sheet Excel shows")
    slept = []

    def held(source, target):
        raise sharing_violation()

    monkeypatch.setattr(os, "replace", held)
    with pytest.raises(errors.OutputRefused) as refused:
        with outputs.private_output(str(out), sleep=slept.append) as handle:
            handle.write("tonight's")
    assert "another program has it open" in str(refused.value)
    assert "close it in Excel and run the command again" in str(refused.value)
    assert sum(slept) == pytest.approx(outputs.RENAME_TRIES * outputs.RENAME_PAUSE - outputs.RENAME_PAUSE)
    assert 0.8 <= sum(slept) <= 1.2  # about a second
    assert out.read_text() == "the sheet Excel shows"
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_another_rename_failure_is_not_waited_on(tmp_path, monkeypatch):
    slept = []

    def no_space(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(errors.OutputRefused, match="No space left on device"):
        with outputs.private_output(str(tmp_path / "r.csv"), sleep=slept.append) as handle:
            handle.write("x")
    assert slept == []


# --- PYTHONIOENCODING is the user's ------------------------------------------------------------------------------


def test_pythonioencoding_is_honoured_not_overridden_by_utf8(tmp_path):
    """A user who set PYTHONIOENCODING=cp949 (a console tool that reads cp949) gets cp949, Hangul and all."""
    ledger = str(tmp_path / "l.db")
    sheet = write_sheet(tmp_path / "s.csv", [(A, "메인 이벤트", 1000, 5000)])
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONIOENCODING="cp949")

    def reversesync(*args):
        return subprocess.run([sys.executable, "-m", "reversesync", "--ledger", ledger, *args], env=env,
                              capture_output=True, cwd=ROOT, timeout=60)

    assert reversesync("load", "--csv", sheet).returncode == 0
    done = reversesync("report", "--csv", "-")
    assert done.returncode == 0, done.stderr
    line = done.stdout.decode("cp949").splitlines()[1]
    assert line.startswith(f"{A},2,메인 이벤트,1000,5000,pending")
    assert "메인 이벤트".encode() not in done.stdout  # not UTF-8
    table = reversesync("history", A)
    assert table.returncode == 0 and "메인 이벤트" in table.stdout.decode("cp949")


def test_report_csv_read_only_in_part_ends_130_with_nothing_ignored_on_stderr(invoke, tmp_path, ledger_path):
    """`reversesync report --csv - | head -1`: the query is closed before the ledger, not left to the garbage
    collector after it ("Exception ignored ... Cannot operate on a closed database")."""
    from tests.conftest import ROOT, write_sheet

    rows = [(f"8c0d9a10-0000-4000-8000-{n:012d}", "clip", 1000, 5000) for n in range(3000)]  # > a pipe's buffer
    assert invoke("load", "--csv", write_sheet(tmp_path / "big.csv", rows)).exit_code == 0
    child = subprocess.Popen([sys.executable, "-m", "reversesync", "--ledger", str(ledger_path), "report", "--csv",
                              "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.readline().startswith(b"asset_id,")
    child.stdout.close()  # head has what it wanted
    errors = child.stderr.read().decode()
    assert child.wait(timeout=60) == 130
    assert errors == ""
