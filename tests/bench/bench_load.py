"""Benchmark: `load` and `report --csv` of a generated 100,000-row sheet, through the real CLI.

    python tests/bench/bench_load.py [--rows 100000] [--repeat 3]

Prints wall time and peak memory (max RSS of the reversesync process) for each run and their medians.
Targets (issue #2 and #6): load under 5 s and 300 MB; report --csv under 3 s.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from tests import sheetgen  # noqa: E402

MEASURE = ("import resource, sys, time; from reversesync.cli import cli; t = time.perf_counter()\n"
           "try:\n    cli(sys.argv[1:], prog_name='reversesync')\n"
           "except SystemExit as e:\n    code = e.code\n"
           "sys.stderr.write('BENCH %.3f %d\\n' % (time.perf_counter() - t,"
           " resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\nsys.exit(code)")


def timed(args):
    """Run `reversesync ARGS` in a fresh interpreter; returns (seconds, peak MiB)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"reversesync {' '.join(args)} failed: {done.stderr}")
    line = [x for x in done.stderr.splitlines() if x.startswith("BENCH ")][-1]
    _, inner, rss_kib = line.split()
    return wall, float(inner), int(rss_kib) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sheet = os.path.join(folder, "sheet.csv")
        with open(sheet, "w", encoding="utf-8", newline="") as handle:
            sheetgen.write(sheetgen.valid_rows(random.Random(options.rows), options.rows), handle)
        print(f"sheet: {options.rows} rows, {os.path.getsize(sheet) / 2**20:.1f} MiB; machine: "
              f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
        figures = {"load (new ledger)": [], "load again (unchanged)": [], "report --csv": []}
        for attempt in range(options.repeat):
            ledger = os.path.join(folder, f"bench{attempt}.db")
            figures["load (new ledger)"].append(timed(["--ledger", ledger, "load", "--csv", sheet]))
            figures["load again (unchanged)"].append(timed(["--ledger", ledger, "load", "--csv", sheet]))
            out = os.path.join(folder, "report.csv")
            figures["report --csv"].append(timed(["--ledger", ledger, "report", "--csv", out]))
        print(f"{'step':<24} {'wall s (median)':>16} {'in-process s':>13} {'peak MiB':>9}   runs (wall s)")
        for step, runs in figures.items():
            walls = [r[0] for r in runs]
            print(f"{step:<24} {statistics.median(walls):>16.2f} {statistics.median(r[1] for r in runs):>13.2f} "
                  f"{max(r[2] for r in runs):>9.0f}   {', '.join(f'{w:.2f}' for w in walls)}")


if __name__ == "__main__":
    main()
