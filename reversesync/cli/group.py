"""The `reversesync` command group: --version, the group's --ledger, UTF-8 output."""

from __future__ import annotations

import codecs
import os
import sys
from typing import Any

import click

from .. import __version__
from .journal import Journal
from .options import ledger_option


class Group(click.Group):
    """The command group; an option of a command typed before it (`reversesync --live run`) is named as such, and
    the --log journal hears how the command ended."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
        except click.exceptions.Exit as ended:
            _finish_journal(ctx, ended.exit_code)
            raise
        except click.ClickException as failed:
            _finish_journal(ctx, failed.exit_code, failed.format_message())
            raise
        except BaseException:
            _finish_journal(ctx, 1, "stopped by an unexpected error")
            raise
        _finish_journal(ctx, 0)
        return result

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
@click.option("--log", "log_path", type=click.Path(dir_okay=False), envvar="REVERSESYNC_LOG", show_envvar=True,
              help="Append what the command did to FILE, timestamped: start, target, each row's change, summary, "
                   "exit (only a command that holds the ledger's lock writes it).")
@click.option("--system-certs", is_flag=True, envvar="REVERSESYNC_SYSTEM_CERTS", show_envvar=True,
              help="Trust the certificates of the operating system's store (Windows, macOS) rather than certifi's "
                   "list: behind a proxy that inspects TLS with the company's own certificate. Needs the "
                   "truststore package (pip install \"reversesync[system-certs]\").")
@click.pass_context
def cli(ctx: click.Context, ledger_path: str | None, log_path: str | None, system_certs: bool) -> None:
    """Put lost timecodes from the GGmetadata sheet back into Iconik, exactly once.

    \b
    Example:
        reversesync load --csv sheet.csv && reversesync run && reversesync run --live
    """
    ensure_utf8_output()
    if system_certs:
        trust_the_system_store()
    ctx.ensure_object(dict)
    ctx.obj["ledger_path"] = ledger_path
    if log_path:
        _check_log_path(log_path)
    ctx.obj["journal"] = Journal(log_path)


# The group's --ledger also reads REVERSESYNC_LEDGER; the commands' do not, so that an explicit --ledger, before or
# after the command name, beats the environment. --allow-network-ledger reads its variable on the group only too.
next(p for p in cli.params if p.name == "ledger_path").envvar = "REVERSESYNC_LEDGER"
next(p for p in cli.params if p.name == "allow_network_ledger").envvar = "REVERSESYNC_ALLOW_NETWORK_LEDGER"


def trust_the_system_store() -> None:
    """Iconik and Google are reached through the OS's certificate store for this process (issue #18): a corporate
    proxy that re-signs TLS with a company certificate installed in Windows' store is trusted, as the browser
    trusts it; certifi's list alone refuses it ("certificate verify failed")."""
    try:
        import truststore
    except ImportError:
        raise click.UsageError("--system-certs needs the truststore package: pip install "
                               "\"reversesync[system-certs]\" (or pip install truststore).") from None
    truststore.inject_into_ssl()


def _check_log_path(path: str) -> None:
    """The log file can be appended to, before the command does anything (a folder that is missing or cannot be
    written is found by creating the file, as a permission check alone can be wrong on network shares)."""
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise click.BadParameter(f"cannot append to {path}: {exc.strerror or exc}", param_hint="'--log'") from None


def _finish_journal(ctx: click.Context, exit_status: int, message: str | None = None) -> None:
    journal = (ctx.obj or {}).get("journal")
    if isinstance(journal, Journal):
        journal.finish(exit_status, message)


def ensure_utf8_output(streams: tuple[str, ...] = ("stdout", "stderr")) -> None:
    """Write UTF-8 whatever the console's code page (issue #11).

    On Windows a redirected stdout (`reversesync report --csv - > x.csv`, a pipe) defaults to the ANSI code
    page, cp1252 or cp949, which cannot encode every title and would end in a UnicodeEncodeError. A stream
    that cannot be reconfigured (a test's capture, an odd wrapper) is left as it is.

    A user who set PYTHONIOENCODING chose the encoding: the streams are left as Python set them up (issue #18)."""
    if os.environ.get("PYTHONIOENCODING"):
        return
    for name in streams:
        stream = getattr(sys, name, None)
        try:
            if codecs.lookup(stream.encoding).name == "utf-8":  # type: ignore[union-attr]
                continue
            stream.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
        except (AttributeError, LookupError, TypeError, ValueError, OSError):
            continue
