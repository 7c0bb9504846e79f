"""The `reversesync` command group: --version, the group's --ledger, UTF-8 output."""

from __future__ import annotations

import codecs
import sys

import click

from .. import __version__
from .options import ledger_option


class Group(click.Group):
    """The command group; an option of a command typed before it (`reversesync --live run`) is named as such."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            name = next((arg for arg in args if arg in self.commands), None)
            command = self.commands.get(name or "")
            if command is None or exc.option_name not in {opt for param in command.params
                                                          for opt in (*param.opts, *param.secondary_opts)}:
                raise
            raise click.UsageError(f"{exc.option_name} is an option of '{name}': put it after the command, as in "
                                   f"'reversesync {name} {exc.option_name}'.", ctx) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reversesync")
@ledger_option
@click.pass_context
def cli(ctx: click.Context, ledger_path: str | None) -> None:
    """Put lost timecodes from the GGmetadata sheet back into Iconik, exactly once.

    \b
    Example:
        reversesync load --csv sheet.csv && reversesync run && reversesync run --live
    """
    ensure_utf8_output()
    ctx.ensure_object(dict)
    ctx.obj["ledger_path"] = ledger_path


# The group's --ledger also reads REVERSESYNC_LEDGER; the commands' do not, so that an explicit --ledger, before or
# after the command name, beats the environment.
next(p for p in cli.params if p.name == "ledger_path").envvar = "REVERSESYNC_LEDGER"


def ensure_utf8_output(streams: tuple[str, ...] = ("stdout", "stderr")) -> None:
    """Write UTF-8 whatever the console's code page (issue #11).

    On Windows a redirected stdout (`reversesync report --csv - > x.csv`, a pipe) defaults to the ANSI code
    page, cp1252 or cp949, which cannot encode every title and would end in a UnicodeEncodeError. A stream
    that cannot be reconfigured (a test's capture, an odd wrapper) is left as it is."""
    for name in streams:
        stream = getattr(sys, name, None)
        try:
            if codecs.lookup(stream.encoding).name == "utf-8":  # type: ignore[union-attr]
                continue
            stream.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
        except (AttributeError, LookupError, TypeError, ValueError, OSError):
            continue
