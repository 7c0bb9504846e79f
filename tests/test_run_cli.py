"""`run`, `resume` and `verify` as an operator meets them (issue #11): where they go, honest exit codes, next steps
that work as printed, and no traceback when Iconik goes away, stdout closes or the disk fills."""

import os
import subprocess
import sys

import pytest

from reversesync.cli import cli as cli_group
from reversesync.clock import FakeClock, SystemClock
from reversesync.ledger import Ledger
from reversesync.sandbox import Catalogue, Sandbox
from tests.conftest import ROOT, state, wait_for, write_sheet


class SleepsAtOnce(SystemClock):
    def sleep(self, seconds):
        pass


A, B, C, D = (f"8c0d9a10-0000-4000-8000-00000000000{n}" for n in range(1, 5))
PARENT = "8c0d9a10-0000-4000-8000-0000000000ff"


def test_the_first_line_names_iconik_the_user_and_the_ledger(sandbox, loaded, invoke, ledger_path):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000))
    result = invoke("run")
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == f"Iconik {sandbox.url} as sync@sandbox.invalid; ledger {ledger_path}"


def test_recheck_of_an_unknown_reason_is_a_usage_error(sandbox, loaded, invoke):  # noqa: F811
    loaded((A, 1000, 5000))
    result = invoke("run", "--recheck", "nonsense")
    assert result.exit_code == 2
    assert "Invalid value for --recheck: unknown reason nonsense; one of: ambiguous," in result.output
    assert sandbox.requests() == []


def test_asset_not_in_the_ledger_is_a_usage_error(sandbox, loaded, invoke):  # noqa: F811
    loaded((A, 1000, 5000))
    result = invoke("run", "--asset", B)
    assert result.exit_code == 2
    assert f"Invalid value for --asset: {B} not in the ledger; load a sheet that has it first" in result.output


def test_settle_must_outlast_the_read_timeout(sandbox, loaded, invoke):  # noqa: F811
    loaded((A, 1000, 5000))
    result = invoke("run", "--live", "--settle", "5", "--read-timeout", "10")
    assert result.exit_code == 2
    assert "must be longer than --read-timeout (10 s)" in result.output


@pytest.mark.parametrize("command", [("run", "--live"), ("undo", "1", "--live"), ("verify", "--repair", "--live")])
def test_a_command_that_writes_refuses_a_settle_time_of_0(sandbox, loaded, invoke, command):  # noqa: F811
    """0 would re-send a write whose answer was lost at once, and duplicate it (issue #15)."""
    loaded((A, 1000, 5000))
    result = invoke(*command, "--settle", "0")
    assert result.exit_code == 2
    assert "Invalid value for --settle: must be longer than --read-timeout (30 s)" in result.output


def test_verify_and_dry_commands_take_a_settle_time_of_0(sandbox, loaded, invoke):  # noqa: F811
    loaded((A, 1000, 5000))
    assert invoke("verify", "--settle", "0").exit_code == 0
    assert invoke("run", "--settle", "0").exit_code == 1  # A is unknown to the sandbox: failed/not_found


def test_resume_after_a_refused_preflight_continues_the_refused_run(
        sandbox, loaded, invoke, ledger_path, monkeypatch):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000))
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", "expired")
    refused = invoke("run", "--live")
    assert refused.exit_code == 2  # a person must act: a refused token never heals by itself (issue #17)
    assert f"then: reversesync --ledger {ledger_path} resume" in refused.output
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", sandbox.auth_token)
    resumed = invoke("resume")
    assert resumed.exit_code == 0, resumed.output
    assert "Resuming run 1 (live" in resumed.output
    assert state(ledger_path, A) == ("created", "create")


def test_the_exit_code_says_what_the_ledger_holds_not_what_this_run_touched(sandbox, loaded, invoke):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000), (B, 1000, 5000))  # B is unknown to Iconik: failed/not_found
    assert invoke("run").exit_code == 1
    live = invoke("run", "--live")
    assert live.exit_code == 1
    assert "Ledger (current sheet): pending 0, checked 0, created 1, updated 0, skipped 0, failed 1" in live.output


def test_iconik_going_away_mid_run_stops_with_exit_3_and_fails_no_row(
        loaded, invoke, ledger_path, monkeypatch):  # noqa: F811
    """The retries' back-off returns at once (a clock whose sleeps take no time): the streak that stops the run is
    the same, without waiting it out for real. A wholly fake clock would not do: its time races ahead while
    requests are on the wire, so the silence rule, not the streak, would stop the run."""
    keys = [f"8c0d9a10-0000-4000-8000-0000000003{n:02d}" for n in range(40)]
    catalogue = Catalogue()
    for key in keys:
        catalogue.add_asset(key)
    server = Sandbox(catalogue, latency_ms=20, index_lag=0).start()
    monkeypatch.setenv("ICONIK_URL", server.url)
    monkeypatch.setenv("ICONIK_APP_ID", server.app_id)
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", server.auth_token)
    loaded(*[(key, 1000, 5000) for key in keys])

    def go_away_after_some_writes(method, path):  # every later read's connection drops unanswered
        if method == "POST" and len(server.requests("POST")) == 5:
            server.force("GET", ".", action="drop_before", times=10_000)

    server.hooks.append(go_away_after_some_writes)
    result = invoke("run", "--live", "--no-search", "--workers", "4", obj={"clock": SleepsAtOnce()})
    assert result.exit_code == 3, result.output
    assert "Error: stopped: Iconik stopped answering: 10 connection failures in a row" in result.output
    ledger = Ledger(ledger_path)
    assert ledger.query("select count(*) as n from assets where state = 'failed'")[0]["n"] == 0
    assert ledger.query("select status from runs")[0]["status"] == "aborted"


def test_the_progress_line_says_how_long_iconik_has_kept_us_waiting(loaded, runner, ledger_path, monkeypatch):  # noqa: F811
    clock = FakeClock()
    catalogue = Catalogue()
    catalogue.add_asset(A)
    with Sandbox(catalogue, index_lag=0) as server:
        monkeypatch.setenv("ICONIK_URL", server.url)
        monkeypatch.setenv("ICONIK_APP_ID", server.app_id)
        monkeypatch.setenv("ICONIK_AUTH_TOKEN", server.auth_token)
        loaded((A, 1000, 5000))

        def keep_the_run_waiting_12_s(method, path):  # on the run's clock, which its own waits move on
            if path.endswith(f"/assets/{A}/"):
                answer_at = clock.monotonic() + 12
                wait_for(lambda: clock.monotonic() >= answer_at)

        server.hooks.append(keep_the_run_waiting_12_s)
        result = runner.invoke(cli_group, ["--ledger", ledger_path, "run", "--no-search"], obj={"clock": clock},
                               catch_exceptions=False)
    assert result.exit_code == 0
    assert "waiting on Iconik for 1" in result.output  # 10 s or 11 s, from the plain line every 10 s


def cli(ledger_path, server, *args, **kwargs):
    env = dict(os.environ, ICONIK_URL=server.url, ICONIK_APP_ID=server.app_id,
               ICONIK_AUTH_TOKEN=server.auth_token, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "reversesync", "--ledger", ledger_path, *map(str, args)],
                            env=env, cwd=ROOT, text=True, **kwargs)


@pytest.mark.slow
def test_a_closed_output_stops_the_run_as_ctrl_c_does(tmp_path, ledger_path):
    """`run --live 2>&1 | head -2` (the human lines go to stderr, issue #17): exit 130, not a traceback's 1, the run
    recorded as interrupted, the log's last line the exit, and resume finishes it."""
    keys = [f"8c0d9a10-0000-4000-8000-0000000004{n:02d}" for n in range(40)]
    catalogue = Catalogue()
    for key in keys:
        catalogue.add_asset(key)
    with Sandbox(catalogue, latency_ms=30, index_lag=0) as server:
        sheet = write_sheet(tmp_path / "s.csv", [(key, "t", 1000, 5000) for key in keys])
        assert cli(ledger_path, server, "load", "--csv", sheet).wait(30) == 0
        log = tmp_path / "run.log"
        run = cli(ledger_path, server, "--log", log, "run", "--live", "--workers", "1", "--no-search",
                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        head = subprocess.run(["head", "-2"], stdin=run.stdout, capture_output=True, text=True, timeout=60)
        run.stdout.close()
        assert run.wait(60) == 130
        assert len(head.stdout.splitlines()) == 2
        assert log.read_text().splitlines()[-1].endswith(" exit 130")
        ledger = Ledger(ledger_path)
        assert ledger.query("select status from runs")[0]["status"] == "interrupted"
        assert cli(ledger_path, server, "resume", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait(60) == 0
        assert all(len(server.generic_segments(key)) == 1 for key in keys)


def test_a_full_disk_stops_the_run_with_one_line_and_exit_3(
        sandbox, loaded, invoke, ledger_path, monkeypatch):  # noqa: F811
    keys = [f"8c0d9a10-0000-4000-8000-0000000005{n:02d}" for n in range(60)]
    for key in keys:
        sandbox.catalogue.add_asset(key)
    loaded(*[(key, 1000, 5000) for key in keys])
    from reversesync.ledger import files

    opened = files.open_for_writing

    def on_a_nearly_full_disk(*args, **kwargs):  # SQLite's max_page_count stands in for a full disk
        db = opened(*args, **kwargs)
        pages = db.execute("pragma page_count").fetchone()[0]
        db.execute(f"pragma max_page_count = {pages + 1}")
        return db

    monkeypatch.setattr(files, "open_for_writing", on_a_nearly_full_disk)
    result = invoke("run", "--live", "--no-search", "--workers", "1")
    assert result.exit_code == 3, result.output
    assert "cannot grow: database or disk is full (disk full?). Free some space, then resume." in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("url, problem", [
    ("https://app.iconik.io/API", "path"), ("app.iconik.io", "scheme"), ("ftp://app.iconik.io", "scheme"),
])
def test_a_malformed_iconik_url_is_an_input_error_before_any_request(
        sandbox, loaded, invoke, monkeypatch, url, problem):  # noqa: F811
    loaded((A, 1000, 5000))
    monkeypatch.setenv("ICONIK_URL", url)
    result = invoke("run")
    assert result.exit_code == 2, result.output
    assert "use the form https://app.iconik.io" in result.output
    assert "Traceback" not in result.output and sandbox.requests() == []


def test_https_to_a_plain_http_server_is_one_line_and_exit_2(
        sandbox, loaded, invoke, ledger_path, monkeypatch):  # noqa: F811
    loaded((A, 1000, 5000))
    monkeypatch.setenv("ICONIK_URL", sandbox.url.replace("http://", "https://"))
    result = invoke("run")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: cannot talk TLS to https://127.0.0.1:")
    assert "Traceback" not in result.output
    assert Ledger(ledger_path).query("select status from runs")[0]["status"] == "aborted"


def test_verify_checks_its_csv_path_before_reading_anything(sandbox, loaded, invoke, tmp_path):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000))
    assert invoke("run", "--live").exit_code == 0
    before = len(sandbox.requests())
    result = invoke("verify", "--csv", tmp_path / "missing" / "x.csv")
    assert result.exit_code == 2
    assert len(sandbox.requests()) == before


def test_ctrl_c_in_verify_exits_130_not_1(sandbox, loaded, invoke, monkeypatch):  # noqa: F811
    from reversesync.app import checking

    loaded((A, 1000, 5000))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checking, "verify_rows", interrupted)
    result = invoke("verify")
    assert result.exit_code == 130
    assert "Interrupted; verify changed nothing." in result.output


# --- small things a nightly operator meets (issue #17) -------------------------------------------------------


def test_version_is_the_package_version(invoke):
    from importlib.metadata import version

    result = invoke("--version")
    assert result.output == f"reversesync, version {version('reversesync')}\n" == "reversesync, version 0.3.0\n"


def test_recheck_of_invalid_rows_explains_they_come_back_by_load(sandbox, loaded, invoke, ledger_path):  # noqa: F811
    loaded((A, 1000, 5000))
    result = invoke("run", "--recheck", "invalid")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: Invalid value for --recheck: invalid rows are rejected by the sheet itself, so no run re-checks "
        f"them: correct the rows in the sheet, then load it again (reversesync --ledger {ledger_path} load --csv "
        "FILE or --sheet), and they come back as pending")


def test_an_option_of_a_command_typed_before_it_names_where_it_goes(runner):
    result = runner.invoke(cli_group, ["--live", "run"])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "Error: --live is an option of 'run': put it after the command, as in 'reversesync run --live'.")


def test_undo_json_lists_the_rows_of_its_plan(sandbox, loaded, runner, ledger_path):  # noqa: F811
    import json

    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000))
    assert runner.invoke(cli_group, ["--ledger", ledger_path, "run", "--live"]).exit_code == 0
    result = runner.invoke(cli_group, ["--ledger", ledger_path, "undo", "1", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    [outcome] = document["outcomes"]
    assert (outcome["asset_id"], outcome["row_numbers"], outcome["what"]) == (A, "2", "would delete")


def test_the_eta_counts_rows_waiting_out_their_settle_time():
    import io

    from reversesync import progress
    from reversesync.cli.console import Console
    from reversesync.cli.progress import Renderer

    out = io.StringIO()
    render = Renderer(Console(stdout=out, stderr=out), clock=FakeClock())
    render(progress.Tick(done=9, total=10, requests=30, elapsed=3.0, parked=1, next_due=80.0, last_due=85.0))
    render(progress.Tick(done=0, total=0, requests=2, elapsed=0.01, final=True))
    assert out.getvalue() == ("[###########################...] 9/10 rows   10.0 req/s  elapsed 0:03  eta 1:25  "
                              "1 settling (80 s)\n")
