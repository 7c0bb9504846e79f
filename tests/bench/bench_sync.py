"""Benchmark: load, dry run and live run of a real-sized sheet through the real CLI against the sandbox.

    python tests/bench/bench_sync.py                      # everything (about 20 minutes per reading)
    python tests/bench/bench_sync.py --only live --repeat 1 --remaining window

Prints, per step: wall time, requests by method, 429s, requests/s, the ideal time and wall / ideal, as medians of
--repeat runs. With search the ideal is write-bound, from the row mix (issue #19): (ceil(rows / 100) x 2 + creates
+ 2 x updates + ids the index lacks) / 50 per second; `verify` of the live run's ledger: (recorded segments + one
search per hundred of them + one per hundred rows without one) / 50; --no-search: the fewest per-asset requests /
50. Then the same live run with --workers 1 (one request at a time, as the sheet's owners and the PRD planned), a
run against a sandbox that allows only 20 requests/s, and the tool's own CPU time per row at zero latency.

RateLimit-Remaining is undocumented (ICONIK-FACTS 7.7): the rate-limited steps run once per reading the
sandbox can send (`Sandbox(remaining="bucket"|"window")`), and every row names the reading it ran under. A
sandbox without that option sends the per-second (bucket) reading only; --index-lag is passed on only to a
sandbox that takes `index_lag`.
"""

import argparse
import collections
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from reversesync.sandbox import Catalogue, Sandbox  # noqa: E402
from tests import sheetgen  # noqa: E402

# The real mix (issue #6): 40% need a segment, 8% an update, 25% in sync, 15% SUBCLIPs, the rest 404s;
# rejected rows come from the sheet itself.
MIX = {"no_segments": 32, "comments_only": 8, "differs": 5, "zero_length": 3, "in_sync": 22, "two_one_equal": 3,
       "subclip_equal": 12, "subclip_differs": 3, "unknown": 10}
# Requests a decision needs at least: asset read; GENERIC list unless SUBCLIP or 404; POST; GET + PUT.
READS = {"unknown": 1, "subclip_equal": 1, "subclip_differs": 1, "deleted": 1}
WRITES = {"no_segments": 1, "comments_only": 1, "differs": 2, "zero_length": 2}
RATE = 50.0
READINGS = ("bucket", "window")


def readings_to_run(wanted):
    """The RateLimit-Remaining readings to benchmark (ICONIK-FACTS 7.7: Iconik does not say which it sends)."""
    return list(READINGS) if wanted == "both" else [wanted]


def limited_sandbox(catalogue, reading, index_lag, **options):
    """A sandbox with Iconik's limits, sending Remaining in `reading`, its lists and search trailing by index_lag."""
    return Sandbox(catalogue, remaining=reading, index_lag=index_lag, **options)


def make_sheet(path, rows, seed=2450):
    rng = random.Random(seed)
    good = sheetgen.valid_rows(rng, rows - rows // 50)
    bad = []
    for n in range(rows // 50):
        start, end = ("", "") if n % 2 else ("abc", "9000")
        bad.append(sheetgen._row(rng, sheetgen._new_id(rng), start, end))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        sheetgen.write(good + bad, handle)


def eligible(ledger):
    import sqlite3

    with sqlite3.connect(ledger) as conn:
        return {key for (key,) in conn.execute(
            "select asset_key from assets where in_source = 1 and state in ('pending', 'checked')")}


def minimum_requests(dealt, keys, live, search):
    """The ideal's request count for these rows.

    With search (issue #19) the run is write-bound: two searches per hundred rows, one request per create, two per
    update (the read by id and the PATCH), and a read for each id the index does not know:
    ceil(rows / 100) x 2 + creates + 2 x updates + ids the index lacks. Without search, the fewest requests the
    per-asset decision rules allow: the asset read, the GENERIC list unless SUBCLIP, deleted or 404, then the writes
    (POST; GET + PATCH). The preflight's two requests count in neither."""
    scenarios = [dealt[key] for key in keys if key in dealt]
    if search:
        total = 2 * -(-len(scenarios) // 100)
        for scenario in scenarios:
            if scenario == "unknown":
                total += 1
            elif live and scenario in WRITES:
                total += WRITES[scenario]
        return total
    total = 2  # the preflight: the token's user and its roles
    for scenario in scenarios:
        total += READS.get(scenario, 2) + (WRITES.get(scenario, 0) if live else 0)
    return total


def verify_minimum(ledger):
    """verify's ideal request count (issue #19): one GET by id per recorded segment, one search per hundred of
    them for extras, one asset search per hundred rows without a recorded segment (a SUBCLIP's range)."""
    import sqlite3

    with sqlite3.connect(ledger) as conn:
        with_segment, without = conn.execute(
            "select sum(segment_id is not null), sum(segment_id is null) from assets where in_source = 1 and "
            "(state in ('created', 'updated') or (state = 'skipped' and reason = 'in_sync'))").fetchone()
    return with_segment + -(-with_segment // 100) + -(-without // 100)


def cli(ledger, sandbox, *args):
    """Run the real CLI in a fresh process; returns (wall seconds, CPU seconds, stdout)."""
    env = dict(os.environ, ICONIK_URL=sandbox.url, ICONIK_APP_ID=sandbox.app_id, ICONIK_AUTH_TOKEN=sandbox.auth_token)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "reversesync", "--ledger", ledger, *args], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"reversesync {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.stdout


def seeded(sheet, seed=5):
    catalogue = Catalogue()
    dealt = catalogue.seed_from_sheet(sheet, seed=seed, mix=MIX)
    return catalogue, {key: scenario for key, scenario in dealt.items() if scenario != "rejected"}


def figures(sandbox, wall, minimum, since):
    log = sandbox.requests()[since:]
    by_method = collections.Counter(method for method, _, _ in log)
    throttled = sum(1 for _, _, status in log if status == 429)
    ideal = minimum / RATE
    return {"wall": wall, "requests": len(log), "by_method": dict(by_method), "429s": throttled,
            "req_per_s": len(log) / wall, "minimum": minimum, "ideal": ideal, "ratio": wall / ideal,
            "extra": len(log) / minimum}


def print_table(title, runs):
    print(f"\n{title}")
    print(f"{'step [Remaining reading]':<24} {'wall s':>8} {'requests':>9} {'ideal':>6} {'req/ideal':>8} {'429s':>5} "
          f"{'req/s':>6} {'ideal s':>8} {'wall/ideal':>10}   by method; walls")
    for step, results in runs.items():
        if not results:
            continue
        med = {key: statistics.median(r[key] for r in results) for key in
               ("wall", "requests", "minimum", "429s", "req_per_s", "ideal", "ratio", "extra")}
        methods = ", ".join(f"{m} {n}" for m, n in sorted(results[-1]["by_method"].items()))
        walls = ", ".join(f"{r['wall']:.1f}" for r in results)
        print(f"{step:<24} {med['wall']:>8.1f} {med['requests']:>9.0f} {med['minimum']:>6.0f} {med['extra']:>8.3f} "
              f"{med['429s']:>5.0f} {med['req_per_s']:>6.1f} {med['ideal']:>8.1f} {med['ratio']:>10.3f}   {methods}; "
              f"{walls}")


def bench_rate_budget(sheet, repeat, latency, jitter, folder, search, reading, index_lag,
                      sequences=(("dry", "live"), ("live only",))):
    """load -> dry run -> live run, and load -> live run straight away (then, with search, verify), as medians of
    repeat."""
    flag = "--search" if search else "--no-search"
    runs = {f"{step} [{reading}]": [] for step in ("dry", "live", "live only", "verify")}
    loads = []
    for attempt in range(repeat):
        for steps in sequences:
            catalogue, dealt = seeded(sheet)
            with limited_sandbox(catalogue, reading, index_lag, latency_ms=latency, jitter_ms=jitter, rate=RATE,
                                 seed=attempt) as sandbox:
                ledger = os.path.join(folder, f"{flag}-{reading}-{attempt}-{len(steps)}.db")
                loads.append(cli(ledger, sandbox, "load", "--csv", sheet)[0])
                for step in steps:
                    live = step != "dry"
                    minimum = minimum_requests(dealt, eligible(ledger), live, search)
                    since = len(sandbox.requests())
                    wall, _, _ = cli(ledger, sandbox, "run", *(["--live"] if live else []), flag)
                    runs[f"{step} [{reading}]"].append(figures(sandbox, wall, minimum, since))
                if steps == ("live only",) and search:  # verify of the same ledger, straight after
                    minimum = verify_minimum(ledger)
                    since = len(sandbox.requests())
                    wall, _, _ = cli(ledger, sandbox, "verify")
                    runs[f"verify [{reading}]"].append(figures(sandbox, wall, minimum, since))
    print(f"\nload of the sheet (no requests): median wall {statistics.median(loads):.2f} s over {len(loads)} loads")
    return runs


def bench_serial(sheet, latency, jitter, folder, reading, index_lag):
    catalogue, dealt = seeded(sheet)
    with limited_sandbox(catalogue, reading, index_lag, latency_ms=latency, jitter_ms=jitter, rate=RATE) as sandbox:
        ledger = os.path.join(folder, f"serial-{reading}.db")
        cli(ledger, sandbox, "load", "--csv", sheet)
        minimum = minimum_requests(dealt, eligible(ledger), True, False)
        since = len(sandbox.requests())
        wall, _, _ = cli(ledger, sandbox, "run", "--live", "--workers", "1", "--no-search")
        return figures(sandbox, wall, minimum, since)


def bench_throttled(sheet, latency, jitter, folder, reading, index_lag, server_rate=20.0, rows=800):
    """The server allows fewer requests than configured: the run must settle at the server's pace."""
    catalogue, _ = seeded(sheet)
    with limited_sandbox(catalogue, reading, index_lag, latency_ms=latency, jitter_ms=jitter,
                         rate=server_rate) as sandbox:
        ledger = os.path.join(folder, f"throttled-{reading}.db")
        cli(ledger, sandbox, "load", "--csv", sheet)
        since = len(sandbox.requests())
        wall, _, out = cli(ledger, sandbox, "run", "--live", "--limit", str(rows), "--rate", "50", "--no-search")
        log = sandbox.requests()[since:]
        ok = sum(1 for _, _, status in log if status != 429)
        throttled = len(log) - ok
        failed = [line for line in out.splitlines() if line.strip().startswith("failed") and "not_found" not in line]
        print(f"\nServer limited to {server_rate:.0f}/s, client configured for 50/s, {rows} rows, Remaining reading "
              f"{reading}:")
        print(f"  wall {wall:.1f} s, answered requests {ok} -> {ok / wall:.1f}/s "
              f"({ok / wall / server_rate * 100:.0f}% of the server's pace); 429s {throttled} "
              f"({throttled / len(log) * 100:.1f}% of requests); rows failed other than 404: {failed or 'none'}")


def bench_overhead(sheet, folder):
    """CPU time of the reversesync process per row with an instant sandbox and no limit."""
    for flag in ("--search", "--no-search"):
        catalogue, dealt = seeded(sheet)
        with Sandbox(catalogue) as sandbox:
            ledger = os.path.join(folder, f"overhead{flag}.db")
            cli(ledger, sandbox, "load", "--csv", sheet)
            wall, cpu, _ = cli(ledger, sandbox, "run", "--live", "--rate", "1000", flag)
            rows = len(dealt)
            print(f"\nZero latency, no limit, {flag}, {rows} rows: wall {wall:.1f} s, reversesync CPU {cpu:.2f} s "
                  f"(start-up included) = {cpu / rows * 1000:.2f} ms per row (target < 2 ms), "
                  f"{len(sandbox.requests())} requests")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2450)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--jitter-ms", type=float, default=20)
    parser.add_argument("--only", choices=["live", "search", "search-live", "serial", "throttled", "overhead"],
                        action="append", help="search-live: with search, only load -> live run -> verify")
    parser.add_argument("--remaining", choices=["both", *READINGS], default="both",
                        help="the RateLimit-Remaining reading(s) the sandbox sends (ICONIK-FACTS 7.7)")
    parser.add_argument("--index-lag", type=float, default=2.0,
                        help="seconds by which the sandbox's segment lists and search trail its records")
    options = parser.parse_args()
    readings = readings_to_run(options.remaining)
    only = set(options.only or ["live", "search", "serial", "throttled", "overhead"])
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; sheet {options.rows} rows; sandbox "
          f"latency {options.latency_ms:.0f} +/- {options.jitter_ms:.0f} ms, limit {RATE:.0f}/s; medians of "
          f"{options.repeat}; RateLimit-Remaining reading(s): {', '.join(readings)}; index lag "
          f"{options.index_lag:g} s")
    with tempfile.TemporaryDirectory() as folder:
        sheet = os.path.join(folder, "sheet.csv")
        make_sheet(sheet, options.rows)
        args = (options.latency_ms, options.jitter_ms, folder)
        for reading in readings:
            lag = options.index_lag
            live = None
            if "live" in only:
                runs = bench_rate_budget(sheet, options.repeat, *args, search=False, reading=reading, index_lag=lag)
                print_table(f"Per-asset reads (--no-search), Remaining reading {reading}:", runs)
                live = statistics.median(r["wall"] for r in runs[f"live only [{reading}]"])
            if "search" in only:
                runs = bench_rate_budget(sheet, options.repeat, *args, search=True, reading=reading, index_lag=lag)
                print_table(f"With batched search (the default), Remaining reading {reading}:", runs)
                live = statistics.median(r["wall"] for r in runs[f"live only [{reading}]"])
            if "search-live" in only:
                runs = bench_rate_budget(sheet, options.repeat, *args, search=True, reading=reading, index_lag=lag,
                                         sequences=(("live only",),))
                print_table(f"With batched search (the default), Remaining reading {reading}:", runs)
                live = statistics.median(r["wall"] for r in runs[f"live only [{reading}]"])
            if "serial" in only:
                serial = bench_serial(sheet, *args, reading=reading, index_lag=lag)
                print(f"\n--workers 1 --no-search, load -> live, Remaining reading {reading}: "
                      f"wall {serial['wall']:.1f} s, {serial['requests']} requests, {serial['req_per_s']:.1f} req/s"
                      + (f"; the 'live only' run above is {serial['wall'] / live:.1f}x faster" if live else ""))
            if "throttled" in only:
                bench_throttled(sheet, *args, reading=reading, index_lag=lag)
        if "overhead" in only:  # no rate limit: the reading does not matter
            bench_overhead(sheet, folder)


if __name__ == "__main__":
    main()
