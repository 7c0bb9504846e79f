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
    assert COMMANDS == ["demo", "history", "load", "report", "resume", "run", "runs", "sandbox", "sync", "undo",
                        "verify"]


def unwrapped_help(name):
    """A command's help as click prints it on a terminal wide enough never to wrap."""
    import click

    command = cli.commands[name]
    group = click.Context(cli, info_name="reversesync")
    with click.Context(command, parent=group, info_name=name, terminal_width=10_000, max_content_width=10_000) as ctx:
        return command.get_help(ctx)


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("name", ["report", "runs", "history"])
def test_help_wraps_only_between_words(name, columns):
    """Issue #17: click may move whitespace, never cut an option or a value at a hyphen or mid-word, and no line
    is wider than the terminal (which would cut it again). `sandbox --help` has its own test."""
    from collections import Counter

    from click.testing import CliRunner

    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, [name, "--help"], prog_name="reversesync")
    assert Counter(result.output.split()) == Counter(unwrapped_help(name).split())
    assert max(map(len, result.output.splitlines())) <= columns
