"""Issue #11, secrets: the Iconik token never comes from the command line (it would show in `ps`); it comes from
ICONIK_AUTH_TOKEN, --auth-token-file or a hidden prompt on a terminal, and a missing one is exit 2."""

import os
import re
import stat

import pytest

A, B, C, D = (f"8c0d9a10-0000-4000-8000-00000000000{n}" for n in range(1, 5))
PARENT = "8c0d9a10-0000-4000-8000-0000000000ff"


NO_TOKEN = ("Error: no Iconik Auth-Token: set ICONIK_AUTH_TOKEN or give --auth-token-file FILE (on a terminal it "
            "is asked for).")


def last_line(result):
    return result.output.splitlines()[-1]


@pytest.fixture
def ready(sandbox, loaded, monkeypatch):  # noqa: F811
    """A loaded ledger and a sandbox, with the token taken out of the environment."""
    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000))
    monkeypatch.delenv("ICONIK_AUTH_TOKEN")
    return sandbox


def token_file(tmp_path, text, mode=0o600):
    path = tmp_path / "token"
    path.write_bytes(text.encode("utf-8"))
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("command", [["run"], ["run", "--live"], ["resume"], ["verify"]], ids=" ".join)
def test_there_is_no_auth_token_option(ready, invoke, command):
    result = invoke(*command, "--auth-token", ready.auth_token)
    assert result.exit_code == 2
    # click's wording: "Error: No such option '--auth-token'. Did you mean '--auth-token-file'?"
    assert last_line(result).startswith("Error: No such option '--auth-token'")
    assert ready.requests() == []


@pytest.mark.parametrize("command", [["run"], ["resume"], ["verify"]], ids=" ".join)
def test_without_a_token_or_a_terminal_exit_2_naming_the_two_ways(ready, invoke, command):
    result = invoke(*command)
    assert result.exit_code == 2
    assert result.output == NO_TOKEN + "\n"
    assert not re.search(r"--auth-token(?!-file)", result.output), "never suggest the token on the command line"
    assert ready.requests() == []


def test_without_an_app_id_either_both_are_named(ready, invoke, monkeypatch):
    monkeypatch.delenv("ICONIK_APP_ID")
    result = invoke("run")
    assert result.exit_code == 2
    assert result.output == ("Error: no Iconik credentials: set ICONIK_APP_ID and ICONIK_AUTH_TOKEN, or give "
                             "--app-id ID and --auth-token-file FILE.\n")


def test_without_an_app_id_but_with_a_token(sandbox, loaded, invoke, monkeypatch):  # noqa: F811
    loaded((A, 1000, 5000))
    monkeypatch.delenv("ICONIK_APP_ID")
    result = invoke("run")
    assert result.exit_code == 2
    assert result.output == "Error: no Iconik App-ID: set ICONIK_APP_ID or give --app-id ID.\n"


def test_the_token_from_a_file_saved_by_notepad(ready, invoke, tmp_path, ledger_path):
    path = token_file(tmp_path, "\ufeff" + ready.auth_token + "\r\n")
    result = invoke("run", "--live", "--auth-token-file", path)
    assert result.exit_code == 0, result.output
    assert "note:" not in result.stderr and "Error" not in result.stderr
    assert len(ready.generic_segments(A)) == 1


def test_the_file_beats_the_environment(ready, invoke, tmp_path, monkeypatch):
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", "an-old-token")
    result = invoke("run", "--auth-token-file", token_file(tmp_path, ready.auth_token))
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_token_file_others_can_read_gets_a_note(ready, invoke, tmp_path):
    path = token_file(tmp_path, ready.auth_token, mode=0o644)
    result = invoke("run", "--auth-token-file", path)
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == (f"note: the token file {path} is readable by other users; make it "
                                             f"private: chmod 600 {path}")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # a note, not a change to the user's file


@pytest.mark.parametrize("content, error", [
    ("", "is empty; put the Auth-Token in it."),
    ("one\ntwo\n", "holds 2 lines; put only the Auth-Token in it."),
])
def test_an_unusable_token_file(ready, invoke, tmp_path, content, error):
    path = token_file(tmp_path, content)
    result = invoke("run", "--auth-token-file", path)
    assert result.exit_code == 2
    assert result.output == f"Error: the token file {path} {error}\n"


def test_a_missing_token_file(ready, invoke, tmp_path):
    result = invoke("run", "--auth-token-file", tmp_path / "nope")
    assert result.exit_code == 2
    assert result.output == f"Error: the token file {tmp_path / 'nope'} does not exist.\n"


def test_on_a_terminal_the_token_is_asked_for_without_echo(ready, invoke, monkeypatch):
    monkeypatch.setattr("reversesync.cli.options.stdin_is_terminal", lambda: True)
    result = invoke("run", "--live", input=ready.auth_token + "\n")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Iconik Auth-Token: ")
    assert ready.auth_token not in result.output
    assert len(ready.generic_segments(A)) == 1


def test_help_offers_the_file_and_not_the_token(runner):
    from reversesync.cli import cli

    for command in ("run", "resume", "verify"):
        text = runner.invoke(cli, [command, "--help"]).output
        assert "--auth-token-file" in text and not re.search(r"--auth-token(?!-file)", text)
