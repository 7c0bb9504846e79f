"""Exit codes that mean one thing each (issue #17): 0 done, 1 rows need a person, 2 a person must act before it can
go on, 3 it heals by itself, try again later. Wrong targets are named as such; verify takes run's preflight."""

import contextlib
import http.server
import socket
import threading

import pytest

from reversesync.clock import FakeClock
from reversesync.ledger import Ledger
from tests.conftest import ID_A, ID_B

PAGE = b"<html><head><title>Welcome to nginx!</title></head><body>It works</body></html>"


@contextlib.contextmanager
def web_server(status):
    """Some other web server on 127.0.0.1: every GET answers `status` with an HTML page."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_server():
    """A server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.fixture
def pointed_at(monkeypatch, loaded):
    def point(url):
        monkeypatch.setenv("ICONIK_URL", url)
        monkeypatch.setenv("ICONIK_APP_ID", "app")
        monkeypatch.setenv("ICONIK_AUTH_TOKEN", "token")
        loaded((ID_A, 1000, 5000))

    return point


@pytest.mark.parametrize("command", [["run"], ["verify"]])
@pytest.mark.parametrize("status", [200, 404])
def test_a_url_that_reaches_another_web_server_is_not_an_iconik_api_exit_2(pointed_at, invoke, status, command):
    with web_server(status) as url:
        pointed_at(url)
        result = invoke(*command)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {url} is not an Iconik API: GET /API/users/v1/users/current/ "
                                    f"answered {status}, a web page (text/html), not Iconik's JSON. Set ICONIK_URL")
    assert "nginx" not in result.output and "<html" not in result.output


def test_a_server_that_never_answers_gives_up_in_seconds_saying_how_long_it_waited(pointed_at, runner, ledger_path):
    from reversesync.cli import cli

    with silent_server() as url:
        pointed_at(url)
        result = runner.invoke(cli, ["--ledger", ledger_path, "run", "--read-timeout", "0.5"],
                               obj={"clock": FakeClock()})
    assert result.exit_code == 3, result.output
    assert f"Connecting to Iconik at {url}: waiting on Iconik for " in result.output
    assert f"Error: Iconik is unreachable at {url}: GET /API/users/v1/users/current/" in result.output
    assert "continue with: reversesync --ledger" in result.output


def test_verify_names_where_it_goes_and_a_refused_token_exits_2(sandbox, loaded, invoke, ledger_path, monkeypatch):
    sandbox.catalogue.add_asset(ID_A)
    loaded((ID_A, 1000, 5000))
    assert invoke("run", "--live").exit_code == 0
    result = invoke("verify")
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == f"Iconik {sandbox.url} as sync@sandbox.invalid; ledger {ledger_path}"
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", "expired")
    refused = invoke("verify")
    assert refused.exit_code == 2
    assert refused.output.startswith("Error: Iconik refused the credentials (401): ")
    assert refused.output.endswith(f"First set ICONIK_APP_ID and ICONIK_AUTH_TOKEN to a valid application token, "
                                   f"then: reversesync --ledger {ledger_path} verify\n")
    assert "GET /API" not in refused.output


def test_verify_with_iconik_down_exits_3_not_1(loaded, invoke, monkeypatch):
    from tests.conftest import closed_loopback_port

    monkeypatch.setenv("ICONIK_URL", f"http://127.0.0.1:{closed_loopback_port()}")
    monkeypatch.setenv("ICONIK_APP_ID", "app")
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", "token")
    loaded((ID_A, 1000, 5000))
    result = invoke("verify")
    assert result.exit_code == 3
    assert result.output.startswith("Error: Iconik is unreachable at http://127.0.0.1:")


def test_verify_stops_with_exit_3_when_iconik_goes_away_mid_verify(sandbox, loaded, invoke, ledger_path):
    keys = [f"8c0d9a10-0000-4000-8000-0000000005{n:02d}" for n in range(30)]
    for key in keys:
        sandbox.catalogue.add_asset(key)
    loaded(*[(key, 1000, 5000) for key in keys])
    assert invoke("run", "--live", "--no-search").exit_code == 0
    sandbox.force("GET", "/assets/", 503, {"errors": ["down"]}, times=10_000)
    result = invoke("verify", "--workers", "2", obj={"clock": FakeClock()})
    assert result.exit_code == 3, result.output
    assert "Error: stopped: Iconik stopped answering: 10 assets in a row could not be read" in result.output
    assert result.output.rstrip().endswith(f"when Iconik answers again: reversesync --ledger {ledger_path} verify")


def test_verify_ends_with_the_command_that_fixes_what_it_found(sandbox, loaded, invoke, ledger_path):
    for key in (ID_A, ID_B):
        sandbox.catalogue.add_asset(key)
    loaded((ID_A, 1000, 5000), (ID_B, 1000, 5000))
    assert invoke("run", "--live").exit_code == 0
    [ours] = sandbox.generic_segments(ID_A)
    sandbox.person_deletes(ours["id"])
    result = invoke("verify")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Let the sheet win for the times of 1 asset (every other field stays as a person left it): "
        f"reversesync --ledger {ledger_path} run --live --asset {ID_A}")
    assert invoke("run", "--live", "--asset", ID_A).exit_code == 0
    assert invoke("verify").exit_code == 0


def test_a_dry_run_never_changes_a_finished_row_and_keeps_its_plan_with_the_run(sandbox, loaded, invoke,
                                                                                ledger_path):
    for key in (ID_A, ID_B):
        sandbox.catalogue.add_asset(key)
    loaded((ID_A, 1000, 5000), (ID_B, 1000, 5000))
    sandbox.force("GET", f"/assets/{ID_B}/$", 503, {"errors": ["busy"]}, times=100)
    assert invoke("run", "--live", "--no-search", obj={"clock": FakeClock()}).exit_code == 1  # B: server_error
    sandbox.unforce()
    [ours] = sandbox.generic_segments(ID_A)
    sandbox.person_edits(ours["id"], time_start_milliseconds=2000)
    ledger = Ledger(ledger_path)
    before = {key: ledger.asset(key) for key in (ID_A, ID_B)}
    result = invoke("run", "--asset", ID_A, "--retry-failed", "--no-search")
    assert result.exit_code == 1, result.output
    assert {key: ledger.asset(key) for key in (ID_A, ID_B)} == before
    lines = result.output.splitlines()
    assert "Plan: would create 1, would update 1, in sync 0" in lines
    assert "  created  would update            1" in lines and "  failed   would create            1" in lines
    plans = ledger.query("select asset_key, state, plan from plans order by asset_key")
    assert [(p["asset_key"], p["state"], p["plan"]) for p in plans] == [(ID_A, "created", "would update"),
                                                                         (ID_B, "failed", "would create")]
