"""Issue #17: every next step `report` prints names the ledger as the user gave it (--ledger, before or after the
command, or REVERSESYNC_LEDGER), and none when the user gave none; the "no ledger" error says what `load` reads."""

import pytest

from reversesync.cli import cli
from tests.conftest import fixed_run, write_sheet

A = "3c9e4f00-0000-4000-8000-000000000001"


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A user in a folder of their own, giving no --ledger: the ledger is ./reversesync.db."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVERSESYNC_LEDGER", raising=False)
    return tmp_path


def rerun_detail(output):
    return next(line for line in output.splitlines() if "rerun_writes" in line).split("not measured ")[-1]


def test_the_rerun_step_names_the_ledger_given(invoke, ledger_path):
    invoke("load", "--example")
    fixed_run(ledger_path).close()
    assert rerun_detail(invoke("report").output) == (
        f"yet: run 'reversesync --ledger {ledger_path} run --live' again")


def test_without_a_ledger_option_the_rerun_step_is_the_plain_command(runner, here):
    assert runner.invoke(cli, ["load", "--example"]).exit_code == 0
    fixed_run(str(here / "reversesync.db")).close()
    assert rerun_detail(runner.invoke(cli, ["report"]).output) == "yet: run 'reversesync run --live' again"


def test_the_ledger_from_the_environment_or_after_the_command_is_named_too(runner, here, monkeypatch):
    path = here / "my ledger.db"
    assert runner.invoke(cli, ["--ledger", str(path), "load", "--example"]).exit_code == 0
    fixed_run(str(path)).close()
    named = f"yet: run 'reversesync --ledger \"{path}\" run --live' again"
    assert rerun_detail(runner.invoke(cli, ["report", "--ledger", str(path)]).output) == named
    monkeypatch.setenv("REVERSESYNC_LEDGER", str(path))
    assert rerun_detail(runner.invoke(cli, ["report"]).output) == named


def test_needs_person_steps_name_the_ledger_given_or_none(runner, here, ledger_path):
    sheet = write_sheet(here / "s.csv", [("not-an-id", "clip", 1000, 5000)])
    for ledger, named in ((["--ledger", ledger_path], f"reversesync --ledger {ledger_path} load"),
                          ([], "reversesync load")):
        assert runner.invoke(cli, [*ledger, "load", "--csv", sheet]).exit_code == 0
        line = runner.invoke(cli, [*ledger, "report", "--needs-person"]).output.splitlines()[1]
        assert line.endswith(f"then load it: {named} --csv FILE (or --sheet SPREADSHEET_ID)"), line


@pytest.mark.parametrize("command", [["report"], ["report", "--needs-person"], ["runs"], ["history", A]],
                         ids=" ".join)
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
