"""Issue #18, the token prompt on Windows: it appears only when a person is at a real console. A scheduled task's
stdin is NUL or a hidden console, both of which `isatty()` calls a terminal on Windows; a prompt there waits
forever and every later night is skipped. Credentials typed in a Korean input mode are refused, saying why."""

import os

import pytest

from reversesync.cli import terminal

A = "8c0d9a10-0000-4000-8000-000000000001"
NEVER_ASKED = ("Error: no Iconik Auth-Token: set ICONIK_AUTH_TOKEN or give --auth-token-file FILE (--no-prompt: it "
               "is never asked for).\n")


@pytest.fixture
def pty_stream():
    """A stream isatty() calls a terminal: on Windows, NUL and a hidden console look just like this."""
    leader, follower = os.openpty()
    with os.fdopen(follower, "r") as stream:
        yield stream
    os.close(leader)


def test_a_character_device_windows_gives_no_console_mode_for_is_no_console(pty_stream, monkeypatch):
    monkeypatch.setattr(terminal, "console_mode", lambda fd: False)  # NUL: GetConsoleMode fails
    assert not terminal.is_console(pty_stream, windows=True)


def test_a_windows_console_with_a_console_mode_is_one(pty_stream, monkeypatch):
    monkeypatch.setattr(terminal, "console_mode", lambda fd: True)
    assert terminal.is_console(pty_stream, windows=True)


def test_without_the_windows_api_a_windows_stream_is_no_console(pty_stream, monkeypatch):
    def no_api(fd):
        raise ImportError("no msvcrt")

    monkeypatch.setattr(terminal, "console_mode", no_api)
    assert not terminal.is_console(pty_stream, windows=True)


def test_elsewhere_a_tty_is_a_console_and_none_or_a_file_is_not(pty_stream, tmp_path):
    assert terminal.is_console(pty_stream, windows=False)
    assert not terminal.is_console(None, windows=False)  # pythonw.exe: no streams at all
    with open(tmp_path / "f", "w") as plain:
        assert not terminal.is_console(plain, windows=False)


def test_the_prompt_needs_stdin_and_stderr_both_consoles(monkeypatch):
    import sys

    from reversesync.cli import options

    consoles = {id(sys.stdin): True, id(sys.stderr): False}
    monkeypatch.setattr(terminal, "is_console", lambda stream: consoles.get(id(stream), False))
    assert not options.stdin_is_terminal()  # stderr to a log file: a prompt would be unseen
    consoles[id(sys.stderr)] = True
    assert options.stdin_is_terminal()


@pytest.fixture
def at_a_console(sandbox, loaded, monkeypatch):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000))
    monkeypatch.delenv("ICONIK_AUTH_TOKEN")
    monkeypatch.setattr("reversesync.cli.options.stdin_is_terminal", lambda: True)
    return sandbox


def test_no_prompt_exits_2_naming_the_file_and_the_variable_without_asking(at_a_console, invoke):
    result = invoke("run", "--live", "--no-prompt", input="would-be-typed\n")
    assert result.exit_code == 2
    assert result.output == NEVER_ASKED
    assert at_a_console.requests() == []


def test_no_prompt_from_the_environment(at_a_console, invoke, monkeypatch):
    monkeypatch.setenv("REVERSESYNC_NO_PROMPT", "1")
    result = invoke("verify", input="would-be-typed\n")
    assert (result.exit_code, result.output) == (2, NEVER_ASKED)


def test_sync_never_asks_even_at_a_console(at_a_console, invoke, tmp_path):
    from tests.conftest import write_sheet

    csv = write_sheet(tmp_path / "s.csv", [(A, "clip", 1000, 5000)])
    result = invoke("sync", "--csv", csv, input="would-be-typed\n")
    assert result.exit_code == 2
    assert result.output == ("Error: no Iconik Auth-Token: set ICONIK_AUTH_TOKEN or give --auth-token-file FILE "
                             "(sync never asks for it).\n")
    assert "--no-prompt" not in invoke("sync", "--help").output


HANGUL_MODE = "ㅁㅠㅊ"  # "abc" typed with the Korean input mode left on


@pytest.mark.parametrize("where", ["environment", "file", "prompt"])
def test_a_token_typed_in_korean_mode_is_refused_saying_why_and_where(at_a_console, invoke, monkeypatch, tmp_path,
                                                                      where):
    token = "12" + HANGUL_MODE
    args, typed = ["run", "--live"], None
    if where == "environment":
        monkeypatch.setenv("ICONIK_AUTH_TOKEN", token)
    elif where == "file":
        (tmp_path / "token").write_text(token, encoding="utf-8")
        os.chmod(tmp_path / "token", 0o600)
        args += ["--auth-token-file", tmp_path / "token"]
    else:
        typed = token + "\n"
    result = invoke(*args, input=typed)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "Error: the Iconik Auth-Token holds a non-ASCII character (at position 3): Iconik's are letters, digits and "
        "dashes only. Was it typed with a Korean input mode on? Type or paste it again in English mode.")
    assert HANGUL_MODE not in result.output
    assert at_a_console.requests() == []


def test_an_app_id_typed_in_korean_mode_is_refused(at_a_console, invoke, monkeypatch):
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", at_a_console.auth_token)
    monkeypatch.setenv("ICONIK_APP_ID", HANGUL_MODE)
    result = invoke("verify")
    assert result.exit_code == 2
    assert result.output.startswith("Error: the Iconik App-ID holds a non-ASCII character (at position 1)")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_a_token_file_written_by_powershell_5_or_notepad_is_read(at_a_console, invoke, tmp_path, encoding):
    """`"<token>" > token.txt` in Windows PowerShell 5.1 writes UTF-16 with a BOM and a CRLF; Notepad, UTF-8 with
    a BOM."""
    path = tmp_path / "token.txt"
    path.write_bytes((at_a_console.auth_token + "\r\n").encode(encoding))
    os.chmod(path, 0o600)
    result = invoke("run", "--live", "--auth-token-file", path)
    assert result.exit_code == 0, result.output
    assert len(at_a_console.generic_segments(A)) == 1


def test_a_token_file_that_is_no_text_says_so(at_a_console, invoke, tmp_path):
    path = tmp_path / "token.bin"
    path.write_bytes(b"\xff\xfe\xff\x00\xd8")
    os.chmod(path, 0o600)
    result = invoke("run", "--auth-token-file", path)
    assert (result.exit_code, result.output) == (2, f"Error: the token file {path} is neither UTF-8 nor UTF-16 text; "
                                                    "put only the Auth-Token in it (Notepad: save as UTF-8).\n")
