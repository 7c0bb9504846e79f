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
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert child.stdout is not None
    assert child.stdout.readline().startswith("Iconik sandbox listening on")  # serving: the break handler is in
    child.send_signal(signal.SIGUSR1)
    rest, errors = child.communicate(timeout=30)
    assert child.returncode == 0, errors
    assert rest.splitlines()[-1] == f"State written to {dump}"
    assert dump.exists()


def test_without_sigbreak_nothing_is_installed():
    import types

    calls = []
    terminal.break_acts_as_ctrl_c(types.SimpleNamespace(signal=lambda *a: calls.append(a)))
    assert calls == []


def test_runs_and_history_show_local_time_with_its_zone_and_json_keeps_utc(sandbox, loaded, invoke, zone):  # noqa: F811
    import datetime
    import json
    import re

    asset = "8c0d9a10-0000-4000-8000-000000000001"
    sandbox.catalogue.add_asset(asset)
    loaded((asset, 1000, 5000))
    assert invoke("run", "--live").exit_code == 0
    zone("Asia/Seoul")
    record = json.loads(invoke("runs", "--json").output)["runs"][0]
    utc = datetime.datetime.fromisoformat(record["started"])
    assert utc.utcoffset() == datetime.timedelta(0)  # the ledger and --json keep UTC
    seoul = (utc + datetime.timedelta(hours=9)).strftime("%Y-%m-%d %H:%M:%S")
    lines = invoke("runs").output.splitlines()
    assert re.split(r"\s{2,}", lines[0])[2:4] == ["started (UTC+09:00)", "finished (UTC+09:00)"]
    assert re.split(r"\s{2,}", lines[1])[2] == seoul
    history = invoke("history", asset).output.splitlines()
    assert re.match(r"^time \(UTC\+09:00\)\s+run", history[2])
    assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", line) for line in history[3:6])


def test_times_across_a_clock_change_each_carry_their_offset():
    from zoneinfo import ZoneInfo

    from reversesync.report import local_times

    shown = local_times(["2026-01-10T12:00:00+00:00", None, "2026-07-10T12:00:00+00:00"], ZoneInfo("Europe/Berlin"))
    assert shown.zone == "local time"
    assert shown.cells == ["2026-01-10 13:00:00+0100", "-", "2026-07-10 14:00:00+0200"]
    assert local_times(["2026-07-10T12:00:00+00:00"], ZoneInfo("Asia/Seoul")) == (["2026-07-10 21:00:00"], "UTC+09:00")
    assert local_times([], ZoneInfo("Asia/Seoul")).zone == "UTC+09:00"


def test_workers_are_joined_in_short_steps_so_a_second_ctrl_c_lands_on_windows_too():
    """Before Python 3.14 a join() without a timeout cannot be interrupted on Windows: a second Ctrl-C would wait
    out the read timeout. The run joins in 0.1 s steps, and a Ctrl-C between them abandons the requests."""
    from reversesync.engine.machinery import _join

    class Busy:
        def __init__(self):
            self.timeouts = []

        def is_alive(self):
            return True

        def join(self, timeout=None):
            self.timeouts.append(timeout)
            if len(self.timeouts) == 3:
                raise KeyboardInterrupt  # the second Ctrl-C, between two steps

    busy = Busy()
    _join([busy])  # returns: the requests in flight are abandoned, their rows keep their logged writes open
    assert busy.timeouts == [0.1, 0.1, 0.1]
