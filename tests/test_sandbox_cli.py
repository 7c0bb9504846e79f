"""`reversesync sandbox`: its usage errors (issue #11), the credentials it mints and prints, its --dump file."""

import json
import os
import signal
import stat
import subprocess
import sys

import pytest
import requests

from reversesync.cli import cli
from tests.conftest import EXAMPLE_SHEET, ROOT


def usage_error(runner, *args):
    """Exit code and the last output line of a sandbox command that must stop before serving."""
    result = runner.invoke(cli, ["sandbox", "--port", "0", *map(str, args)])
    assert isinstance(result.exception, SystemExit), result.exception  # never a traceback
    assert "Traceback" not in result.output
    return result.exit_code, result.output.strip().splitlines()[-1]


def test_state_that_is_a_csv_is_a_usage_error(runner, tmp_path):
    export = tmp_path / "export.csv"
    export.write_text("id,title\n1,clip\n")
    assert usage_error(runner, "--state", export) == (
        2, f"Error: Invalid value for '--state': {export} is not a JSON state written by --dump "
           "(Expecting value: line 1 column 1 (char 0))")


@pytest.mark.parametrize("state, problem", [
    ({"foo": 1}, "it needs 'assets' and 'segments' objects, as --dump writes them"),
    ([], "it needs 'assets' and 'segments' objects, as --dump writes them"),
    ({"assets": {"a": {"id": "a"}}, "segments": {}}, "every asset needs id, type and status"),
    ({"assets": {}, "segments": {"a": [{"id": "s"}]}},
     "'segments' must map asset ids to lists of segments with id, asset_id and segment_type"),
])
def test_state_of_the_wrong_shape_is_a_usage_error(runner, tmp_path, state, problem):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    assert usage_error(runner, "--state", path) == (
        2, f"Error: Invalid value for '--state': {path} is not a sandbox state: {problem}")


@pytest.mark.parametrize("args, line", [
    (["--port", "80000"], "Error: Invalid value for '--port': 80000 is not in the range 0<=x<=65535."),
    (["--faults", "5xx"], "Error: Invalid value for '--faults': 5xx needs a value, e.g. 5xx=0.05"),
    (["--faults", "5xx="], "Error: Invalid value for '--faults': 5xx needs a value, e.g. 5xx=0.05"),
    (["--faults", "5xx=2"], "Error: Invalid value for '--faults': 5xx=2: a probability is between 0 and 1"),
    (["--faults", "slow_ms=-5"], "Error: Invalid value for '--faults': slow_ms=-5: must be a whole number, 0 or more"),
    (["--faults", "apply_late=x"], "Error: Invalid value for '--faults': apply_late=x: not a number"),
    (["--faults", "late_min_ms=5000"],
     "Error: Invalid value for '--faults': late_min_ms=5000 is above late_max_ms=4000"),
    (["--faults", "gremlins=1"], "Error: Invalid value for '--faults': unknown fault 'gremlins'; known: 5xx, 409, "
                                 "drop_before, drop_after, apply_late, late_min_ms, late_max_ms, slow, slow_ms, "
                                 "revoke_after"),
    (["--mix", "no_segments=-1"],
     "Error: Invalid value for '--mix': weights are 0 or more, and at least one is above 0"),
    (["--index-lag", "-1"], "Error: Invalid value for '--index-lag': -1.0 is not in the range x>=0."),
    (["--remaining", "sometimes"],
     "Error: Invalid value for '--remaining': 'sometimes' is not one of 'bucket', 'window'."),
])
def test_bad_options_are_one_line_usage_errors(runner, args, line):
    assert usage_error(runner, *args) == (2, line)


def test_dump_into_a_missing_folder_is_refused_before_serving(runner, tmp_path):
    missing = tmp_path / "nope"
    assert usage_error(runner, "--dump", missing / "state.json") == (
        2, f"Error: Invalid value for '--dump': no folder {missing} to write it in")


def start(*args, env=None):
    """A real `reversesync sandbox` process on a free port; returns it and the nine lines it prints first."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("ICONIK_")}
    base.update(env or {}, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-m", "reversesync", "sandbox", "--port", "0", *map(str, args)],
                               stdout=subprocess.PIPE, text=True, env=base, cwd=ROOT)
    return process, [process.stdout.readline().rstrip("\n") for _ in range(9)]


def finish(process):
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    return out


def settings(lines):
    """{name: value} from the `export NAME=value` lines."""
    return dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))


def test_prints_export_and_powershell_lines_that_work():
    process, lines = start("--from-csv", EXAMPLE_SHEET, "--app-id", "app-1", "--auth-token", "tok-1")
    try:
        url = lines[0].split()[-1]
        assert lines[0] == f"Iconik sandbox listening on {url}" and url.startswith("http://127.0.0.1:")
        assert lines[1:8] == [f"export ICONIK_URL={url}", "export ICONIK_APP_ID=app-1",
                              "export ICONIK_AUTH_TOKEN=tok-1", "# PowerShell:", f'$env:ICONIK_URL = "{url}"',
                              '$env:ICONIK_APP_ID = "app-1"', '$env:ICONIK_AUTH_TOKEN = "tok-1"']
        assert lines[8].endswith("assets, index lag 2 s; Ctrl-C to stop.")
        answer = requests.get(url + "/API/users/v1/users/current/roles/",
                              headers={"App-ID": "app-1", "Auth-Token": "tok-1"}, timeout=5)
        assert answer.status_code == 200 and "can_search" in answer.json()["objects"]
    finally:
        finish(process)


def test_mints_fresh_credentials_each_start_and_never_adopts_the_environments():
    real = {"ICONIK_APP_ID": "real-app-id", "ICONIK_AUTH_TOKEN": "real-looking-secret"}
    first, first_lines = start(env=real)
    second, second_lines = start(env=real)
    try:
        minted, again = settings(first_lines), settings(second_lines)
        assert "real-looking-secret" not in "\n".join(first_lines + second_lines)
        assert "real-app-id" not in "\n".join(first_lines + second_lines)
        assert minted["ICONIK_APP_ID"] != again["ICONIK_APP_ID"]
        assert minted["ICONIK_AUTH_TOKEN"] != again["ICONIK_AUTH_TOKEN"]
        check = minted["ICONIK_URL"] + "/API/auth/v1/auth/token/"
        assert requests.get(check, headers={"App-ID": minted["ICONIK_APP_ID"], "Auth-Token": minted[
            "ICONIK_AUTH_TOKEN"]}, timeout=5).status_code == 200
        assert requests.get(check, headers={"App-ID": "real-app-id", "Auth-Token": "real-looking-secret"},
                            timeout=5).status_code == 401
    finally:
        finish(first)
        finish(second)


def test_an_explicit_app_id_keeps_a_minted_token():
    process, lines = start("--app-id", "app-1")
    try:
        found = settings(lines)
        assert found["ICONIK_APP_ID"] == "app-1" and found["ICONIK_AUTH_TOKEN"] not in ("", "tok-1")
    finally:
        finish(process)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_dump_is_written_readable_by_its_owner_only_and_restores(tmp_path):
    dump = tmp_path / "state.json"
    dump.write_text("{}")
    os.chmod(dump, 0o644)  # an old dump lying there must not keep its loose mode
    process, lines = start("--from-csv", EXAMPLE_SHEET, "--seed", "4", "--dump", dump)
    out = finish(process)
    assert f"State written to {dump}" in out
    assert stat.S_IMODE(os.stat(dump).st_mode) == 0o600
    state = json.loads(dump.read_text())
    assert state["forbidden"] and len(state["assets"]) > 200
    again, lines = start("--state", dump)
    try:
        assert lines[8].startswith(f"{len(state['assets'])} assets")
    finally:
        finish(again)


def test_index_lag_and_remaining_reach_the_server():
    process, lines = start("--index-lag", "0", "--remaining", "window")
    try:
        found = settings(lines)
        assert lines[8].endswith("index lag 0 s; Ctrl-C to stop.")
        answer = requests.get(found["ICONIK_URL"] + "/API/users/v1/users/current/",
                              headers={"App-ID": found["ICONIK_APP_ID"], "Auth-Token": found["ICONIK_AUTH_TOKEN"]},
                              timeout=5)
        assert answer.headers["RateLimit-Remaining"] == "999"
    finally:
        finish(process)


def test_list_lag_and_search_lag_reach_the_server():
    process, lines = start("--list-lag", "0.5", "--search-lag", "3")
    try:
        assert lines[8].endswith("list lag 0.5 s, search lag 3 s; Ctrl-C to stop.")
    finally:
        finish(process)


# --- its --help (issue #17): no value broken mid-word by click's wrapping ------------------------------------------


def rendered_help(columns):
    from click.testing import CliRunner

    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, ["sandbox", "--help"], prog_name="reversesync")
    assert result.exit_code == 0
    return result.output


def unwrapped_help():
    """The help as click would print it on a terminal wide enough never to wrap."""
    import click

    command = cli.commands["sandbox"]
    group = click.Context(cli, info_name="reversesync")
    with click.Context(command, parent=group, info_name="sandbox", terminal_width=10_000,
                       max_content_width=10_000) as ctx:
        return command.get_help(ctx)


@pytest.mark.parametrize("columns", [80, 120])
def test_help_wraps_only_between_words_and_fits_the_terminal(columns):
    """Wrapping may only move whitespace: every word of the unwrapped help is in the wrapped one, whole (a fault
    spec, a role, an example line split by click would show here), and no line is wider than the terminal, which
    would split it again."""
    from collections import Counter

    text = rendered_help(columns)
    assert Counter(text.split()) == Counter(unwrapped_help().split())
    assert max(map(len, text.splitlines())) <= columns


@pytest.mark.parametrize("columns", [80, 120])
def test_help_shows_every_fault_role_and_example_whole(columns):
    from reversesync.sandbox import ALL_ROLES, Faults

    text = rendered_help(columns)
    words = {word.strip(".,;:()") for word in text.split()}
    assert set(Faults._NAMES) <= {word.split("=")[0] for word in words}
    assert set(ALL_ROLES) <= words
    lines = unwrapped_help().splitlines()
    examples = [line for line in lines[lines.index("  Example:") + 1:] if line.startswith("      reversesync ")]
    assert len(examples) == 2 and all(line in text.splitlines() for line in examples)
