"""`reversesync sandbox`: a local stand-in for Iconik, to rehearse a sync without touching production."""

from __future__ import annotations

import os
import signal
import threading

import click
from click.core import ParameterSource

from .. import sandbox as sandbox_module
from ..report import counted
from .console import Console, reported
from .group import cli
from .options import input_error


def _mix_option(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, float] | None:
    if not value:
        return None
    try:
        mix = {name.strip(): float(weight) for name, weight in (part.split("=") for part in value.split(","))}
    except ValueError:
        raise click.BadParameter("write it as scenario=weight,... e.g. no_segments=40,in_sync=25") from None
    unknown = set(mix) - set(sandbox_module.SCENARIOS)
    if unknown:
        raise click.BadParameter(f"unknown scenario {', '.join(sorted(unknown))}; known: "
                                 f"{', '.join(sandbox_module.SCENARIOS)}")
    if any(weight < 0 for weight in mix.values()) or not sum(mix.values()) > 0:
        raise click.BadParameter("weights are 0 or more, and at least one is above 0")
    return mix


def _faults_option(ctx: click.Context, param: click.Parameter, value: str) -> sandbox_module.Faults:
    try:
        return sandbox_module.Faults.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command("sandbox")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--from-csv", "from_csv", type=click.Path(exists=True, dir_okay=False),
              help="Seed a believable catalogue for the ids of this sheet CSV.")
@click.option("--state", "state_file", type=click.Path(exists=True, dir_okay=False),
              help="Start from a JSON state written by --dump.")
@click.option("--seed", type=int, default=0, show_default=True, help="Makes seeding and faults repeatable.")
@click.option("--mix", callback=_mix_option,
              help="Share of each scenario when seeding, e.g. no_segments=40,in_sync=25.")
@click.option("--latency-ms", type=click.FloatRange(0), default=0, show_default=True,
              help="Delay before every answer.")
@click.option("--jitter-ms", type=click.FloatRange(0), default=0, show_default=True,
              help="Random +/- added to the delay.")
# Help text is wrapped by click at spaces only where it can: a run of NAME=VALUE pairs longer than the column would
# be cut mid-word (issue #17), so each name stands alone and the example is short.
@click.option("--faults", callback=_faults_option, default="",
              help="Faults to inject, as NAME=VALUE pairs joined by commas, e.g. 5xx=0.02,apply_late=0.01. "
                   "Probabilities (0 to 1): 5xx, 409, drop_before, drop_after, apply_late, slow. Milliseconds: "
                   f"late_min_ms (default {sandbox_module.Faults.late_min_ms}), late_max_ms (default "
                   f"{sandbox_module.Faults.late_max_ms}), slow_ms (default {sandbox_module.Faults.slow_ms}). "
                   "revoke_after=N: the token stops working (401) after N requests.")
@click.option("--rate", type=click.FloatRange(0, min_open=True), default=None,
              help="Requests/s allowed before 429, and 20 x that per 20 s (default: no limit).")
@click.option("--remaining", type=click.Choice(sandbox_module.REMAINING_READINGS), default="bucket",
              show_default=True, help="What RateLimit-Remaining counts: what is left of this second's budget "
                                      "(bucket) or of the 20 s window (window).")
@click.option("--index-lag", type=click.FloatRange(0), default=sandbox_module.DEFAULT_INDEX_LAG, show_default=True,
              metavar="S", help="Seconds by which segment lists and search trail the stored records.")
@click.option("--list-lag", type=click.FloatRange(0), default=None, metavar="S",
              help="Seconds by which segment lists trail the stored records. Default: --index-lag.")
@click.option("--search-lag", type=click.FloatRange(0), default=None, metavar="S",
              help="Seconds by which search answers trail the stored records. Default: --index-lag.")
@click.option("--patch", "patch_mode", type=click.Choice(sandbox_module.PATCH_MODES), default="merge",
              show_default=True,
              help="What a segment PATCH does: change only the fields it carries (merge, as Iconik's SDK documents) "
                   "or replace the whole segment like a PUT (to rehearse reversesync's guard against that).")
@click.option("--roles", default=",".join(sandbox_module.ALL_ROLES),
              help=f"Roles the credentials have, comma separated. Default: all of "
                   f"{', '.join(sandbox_module.ALL_ROLES)}.")
# Never read from the environment: ICONIK_* there may be production credentials (issue #11).
@click.option("--app-id", default=None, help="App-ID to accept. Default: a fresh one each start.")
@click.option("--auth-token", default=None, help="Auth-Token to accept. Default: a fresh one each start.")
@click.option("--dump", "dump_file", type=click.Path(dir_okay=False),
              help="Write the state as JSON on exit (mode 0600).")
@click.pass_context
def sandbox_command(ctx: click.Context, port: int, from_csv: str | None, state_file: str | None, seed: int,
                    mix: dict[str, float] | None, latency_ms: float, jitter_ms: float, faults: sandbox_module.Faults,
                    rate: float | None, remaining: str, index_lag: float, list_lag: float | None,
                    search_lag: float | None, patch_mode: str, roles: str,
                    app_id: str | None, auth_token: str | None, dump_file: str | None) -> None:
    """Run a local Iconik stand-in on 127.0.0.1 to rehearse a sync without touching production.

    It behaves as Iconik does where reversesync depends on it: segment lists and search trail the
    stored records by --index-lag, RateLimit-Remaining is on every answer, some assets answer 403.

    \b
    Example:
        reversesync sandbox --from-csv sheet.csv --latency-ms 100 --rate 50
        reversesync sandbox --from-csv sheet.csv --faults 5xx=0.02,apply_late=0.01
    """
    console = Console()
    catalogue = sandbox_module.Catalogue()
    if state_file:
        try:
            catalogue.restore(sandbox_module.load_state(state_file))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--state'") from None
    elif from_csv:
        with reported(console):
            catalogue.seed_from_sheet(from_csv, seed=seed, mix=mix)
    if dump_file and not os.path.isdir(os.path.dirname(os.path.abspath(dump_file))):
        raise click.BadParameter(f"no folder {os.path.dirname(os.path.abspath(dump_file))} to write it in",
                                 param_hint="'--dump'")
    minted_app_id, minted_token = sandbox_module.mint_credentials()
    if app_id is None or ctx.get_parameter_source("app_id") is ParameterSource.DEFAULT:
        app_id = minted_app_id
    if auth_token is None or ctx.get_parameter_source("auth_token") is ParameterSource.DEFAULT:
        auth_token = minted_token
    server = sandbox_module.Sandbox(catalogue, port=port, app_id=app_id, auth_token=auth_token,
                                    roles=[r.strip() for r in roles.split(",") if r.strip()],
                                    latency_ms=latency_ms, jitter_ms=jitter_ms, rate=rate, faults=faults, seed=seed,
                                    index_lag=index_lag, list_lag=list_lag, search_lag=search_lag,
                                    remaining=remaining, patch=patch_mode)
    try:
        server.start()
    except OSError as exc:
        raise input_error(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}; pick another --port.") from None
    # Before the first line: whoever reads it may stop us at once, and the --dump must still be written.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *args: stop.set())
    try:
        lags = (f"index lag {server.list_lag:g} s" if server.list_lag == server.search_lag
                else f"list lag {server.list_lag:g} s, search lag {server.search_lag:g} s")
        _say_settings(console, server.url, app_id, auth_token, len(catalogue.assets), lags)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if dump_file:
            sandbox_module.write_state(dump_file, catalogue.dump())
            console.out(f"State written to {dump_file}")


def _say_settings(console: Console, url: str, app_id: str, auth_token: str, assets: int, lags: str) -> None:
    """The settings are what the command outputs (stdout): a script can read them, a person paste them."""
    console.out(f"Iconik sandbox listening on {url}")
    settings = (("ICONIK_URL", url), ("ICONIK_APP_ID", app_id), ("ICONIK_AUTH_TOKEN", auth_token))
    for name, value in settings:
        console.out(f"export {name}={value}")
    console.out("# PowerShell:")
    for name, value in settings:
        console.out(f'$env:{name} = "{value}"')
    console.out(f"{counted(assets, 'asset')}, {lags}; Ctrl-C to stop.")
    console.stdout.flush()
