"""Issue #11, Windows: output is UTF-8 even where the console's code page is not (a redirected stdout on
Windows defaults to the ANSI code page)."""

import io
import os
import subprocess
import sys

from reversesync.cli.group import ensure_utf8_output
from tests.conftest import ID_A, ROOT, write_sheet

KOREAN = "메인 이벤트 — 파이널 테이블"


def test_a_cp1252_stdout_and_stderr_are_switched_to_utf8(monkeypatch):
    monkeypatch.delenv("PYTHONIOENCODING", raising=False)  # one a user set is honoured (issue #18)
    out, err = io.BytesIO(), io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding="cp1252"))
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(err, encoding="cp1252"))
    ensure_utf8_output()
    print(KOREAN)
    print(KOREAN, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    assert out.getvalue() == (KOREAN + "\n").encode("utf-8")
    assert err.getvalue() == (KOREAN + "\n").encode("utf-8")


def test_a_stream_that_cannot_be_reconfigured_is_left_alone(monkeypatch):
    class Odd:
        encoding = "cp1252"

    monkeypatch.setattr(sys, "stdout", Odd())
    ensure_utf8_output()  # no AttributeError
    assert sys.stdout.encoding == "cp1252"


def test_report_to_a_pipe_in_the_ansi_code_page_is_utf8(tmp_path):
    """The real process, its streams opened in cp1252 as a redirected stdout is on Windows (not by
    PYTHONIOENCODING, which reversesync honours since issue #18)."""
    ledger = str(tmp_path / "l.db")
    env = {name: value for name, value in os.environ.items() if name != "PYTHONIOENCODING"}
    env.update(PYTHONPATH=str(ROOT))
    in_the_ansi_code_page = ("import sys; sys.stdout.reconfigure(encoding='cp1252'); "
                             "sys.stderr.reconfigure(encoding='cp1252'); from reversesync.cli import main; "
                             "sys.argv[0] = 'reversesync'; main()")

    def reversesync(*args):
        return subprocess.run([sys.executable, "-c", in_the_ansi_code_page, "--ledger", ledger, *args], env=env,
                              capture_output=True, cwd=ROOT, timeout=60)

    assert reversesync("load", "--csv", write_sheet(tmp_path / "s.csv", [(ID_A, KOREAN, 1, 2)])).returncode == 0
    done = reversesync("report", "--csv", "-")
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert done.stdout.decode("utf-8").splitlines()[1].startswith(f"{ID_A},2,{KOREAN},1,2,pending")
    assert not done.stdout.startswith(b"\xef\xbb\xbf")
