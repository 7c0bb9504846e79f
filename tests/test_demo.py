"""`reversesync demo`: the whole flow once per suite (it takes about 20 s), and a person's Ctrl-C stopping it."""

import os
import signal
import subprocess
import tempfile

import pytest
from click.testing import CliRunner

from reversesync.cli import cli
from tests.conftest import INTERRUPTIBLE, ROOT

pytestmark = pytest.mark.slow

STEPS = ("== 1/7 load", "== 2/7 dry run", "== 3/7 live run, interrupted", "== 4/7 resume", "== 5/7 live run again",
         "== 6/7 report", "== 7/7 verify", "== and back: undo the live runs")


def test_demo_runs_the_whole_flow_undoes_it_and_removes_its_temporary_folder(tmp_path, monkeypatch):
    """One test, so the suite runs the demo once: the flow, the undo back to the seed, the temporary folder gone."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith("== ")] == [
        next(line for line in lines if line.startswith(step)) for step in STEPS]
    assert "Plan: would create 103, would update 22, in sync 79" in lines
    assert any(line.startswith("Interrupted. Continue with: reversesync --ledger ") for line in lines)
    assert "Ledger (current sheet): pending 0, checked 0, created 103, updated 22, skipped 128, failed 32" in lines
    assert "Verified 204 assets: 204 match, 0 do not" in result.output
    assert "Undo of run 2 (live, run 4): undone 125" in lines
    assert "The sandbox is back as it was seeded" in result.output
    assert "NOT as it was seeded" not in result.output
    assert os.listdir(tmp_path) == []
    assert "The ledger and report were in a temporary folder, now removed; keep them with --keep DIR." in lines


def _demo_stopped_by_ctrl_c(args, env):
    """Start `reversesync demo args`, press Ctrl-C once the dry run has begun; (exit status, output)."""
    demo = subprocess.Popen([*INTERRUPTIBLE, "demo", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), **env))
    output = []
    for line in demo.stdout:
        output.append(line)
        if line.startswith("== 2/7"):
            demo.send_signal(signal.SIGINT)
    return demo.wait(30), "".join(output)


def test_a_ctrl_c_stops_the_demo_and_keep_keeps_its_ledger(tmp_path):
    code, output = _demo_stopped_by_ctrl_c(["--keep", str(tmp_path / "kept")], {})
    assert code == 130, output
    assert "== 4/7" not in output
    assert (tmp_path / "kept" / "demo.db").exists()


def test_a_ctrl_c_stops_the_demo_and_removes_its_temporary_folder(tmp_path):
    code, output = _demo_stopped_by_ctrl_c([], {"TMPDIR": str(tmp_path)})
    assert code == 130, output
    assert "== 4/7" not in output
    assert os.listdir(tmp_path) == []
