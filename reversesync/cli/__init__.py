"""The reversesync command line: each module parses a command group's options, calls the application layer
(reversesync/app) and prints what it reports. Nothing below this package prints or imports click."""

from . import demo, load, report, runs, sandbox, sync, terminal, verify
from .group import cli


def main() -> None:
    terminal.break_acts_as_ctrl_c()
    cli(prog_name="reversesync")


__all__ = ["cli", "demo", "load", "main", "report", "runs", "sandbox", "sync", "verify"]
