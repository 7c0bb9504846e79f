"""Issue #18, the smaller Windows items, each exercised on Linux through the Windows code path."""

from reversesync.cli import cli, terminal
from reversesync.sandbox import Catalogue, Sandbox
from reversesync.sandbox.http_server import reuse_address


def test_on_windows_the_sandbox_never_shares_its_port():
    assert reuse_address("nt") is False  # SO_REUSEADDR there lets a second server steal the port
    assert reuse_address("posix") is True  # here it only allows a rebind after TIME_WAIT


def test_a_second_sandbox_on_a_taken_port_says_pick_another(runner):
    with Sandbox(Catalogue()) as first:
        port = first.url.rsplit(":", 1)[1].rstrip("/")
        result = runner.invoke(cli, ["sandbox", "--port", port])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; pick another --port.")


def test_ctrl_break_stops_the_sandbox_as_ctrl_c_does_and_its_dump_is_written(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    dump = tmp_path / "state.json"
    script = ("import signal, types, sys\n"
              "from reversesync.cli import terminal, cli\n"
              "terminal.break_acts_as_ctrl_c(types.SimpleNamespace(SIGBREAK=signal.SIGUSR1, signal=signal.signal,"
              " default_int_handler=signal.default_int_handler))\n"
              f"cli(['sandbox', '--port', '0', '--dump', {str(dump)!r}], prog_name='reversesync')\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert child.stdout is not None
    assert child.stdout.readline().startswith("Iconik sandbox listening on")  # serving: the break handler is in
    child.send_signal(signal.SIGUSR1)
    rest = child.communicate(timeout=30)[0]
    assert child.returncode == 0
    assert rest.splitlines()[-1] == f"State written to {dump}"
    assert dump.exists()


def test_without_sigbreak_nothing_is_installed():
    import types

    calls = []
    terminal.break_acts_as_ctrl_c(types.SimpleNamespace(signal=lambda *a: calls.append(a)))
    assert calls == []
