"""Every command explains itself: --version, --help, and an example in each command's --help."""

import pytest

from reversesync import __version__
from reversesync.cli import cli

COMMANDS = sorted(cli.commands)


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"reversesync, version {__version__}"


def test_group_help_lists_every_command(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_help_has_an_example(runner, name):
    result = runner.invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and f"reversesync {name}" in result.output


def test_commands_are_the_documented_ones():
    assert COMMANDS == ["demo", "history", "load", "report", "resume", "run", "runs", "sandbox", "undo", "verify"]
