"""Issue #17: the "no ledger" error says what `load` reads, naming the ledger as the user gave it, and none when
the user gave none."""

import pytest

from reversesync.cli import cli

A = "3c9e4f00-0000-4000-8000-000000000001"


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A user in a folder of their own, giving no --ledger: the ledger is ./reversesync.db."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVERSESYNC_LEDGER", raising=False)
    return tmp_path


@pytest.mark.parametrize("command", [["report"], ["runs"], ["history", A]], ids=" ".join)
def test_no_ledger_says_what_load_reads_with_the_ledger_given(invoke, ledger_path, command):
    result = invoke(*command)
    assert (result.exit_code, result.output) == (2, (
        f"Error: no ledger at {ledger_path}; run 'reversesync --ledger {ledger_path} load --csv FILE' (or --sheet "
        "SPREADSHEET_ID) first.\n"))


def test_no_ledger_without_a_ledger_option_names_none(runner, here):
    result = runner.invoke(cli, ["report"])
    assert (result.exit_code, result.output) == (2, (
        f"Error: no ledger at {here / 'reversesync.db'}; run 'reversesync load --csv FILE' (or --sheet "
        "SPREADSHEET_ID) first.\n"))
