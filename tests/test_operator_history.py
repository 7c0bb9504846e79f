"""Issue #11, history that survives: `history ID` shows an asset's events, `runs` counts what each run did from
the ledger (live, after a kill), and `demo` leaves no temporary folder behind."""

import datetime
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from reversesync.ledger import Ledger
from reversesync.sandbox import Catalogue, Sandbox
from tests.conftest import ROOT, write_sheet

A, B, C, D = (f"8c0d9a10-0000-4000-8000-00000000000{n}" for n in range(1, 5))
PARENT = "8c0d9a10-0000-4000-8000-0000000000ff"

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def test_history_shows_every_event_and_the_row_now(sandbox, loaded, invoke, ledger_path, zone):  # noqa: F811
    zone("UTC")
    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000))
    assert invoke("run", "--live").exit_code == 0
    segment = Ledger(ledger_path).asset(A)["segment_id"]
    assert invoke("run", "--asset", A).exit_code == 0  # a dry re-check: the row stays created (issue #17)
    result = invoke("history", A.upper())
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Asset {A} (row 2): clip 01, 1000-5000 ms"
    assert re.match(r"^time \(UTC\)\s+run\s+from -> to\s+detail$", lines[2])
    events = [re.split(r"\s{2,}", line, maxsplit=3) for line in lines[3:lines.index("", 3)]]
    assert all(re.match(STAMP, event[0]) for event in events)
    assert [event[1:3] for event in events[:2]] == [["-", "- -> pending"], ["1", "pending -> checked"]]
    assert events[1][3].startswith("about to create")
    assert events[2][1:] == ["1", "checked -> created", f"created segment {segment}"]
    assert len(events) == 3  # the dry re-check stored its plan with run 2, not on the row
    now = lines[lines.index("", 3) + 1]
    assert now == f"Now: created; reason -; action create; segment {segment}"


def test_history_of_an_unknown_id_exits_2_naming_it(invoke, ledger_path):
    invoke("load", "--example")
    result = invoke("history", "8c0d9a10-0000-4000-8000-0000000000aa")
    assert result.exit_code == 2
    assert result.output == (f"Error: no asset 8c0d9a10-0000-4000-8000-0000000000aa in the ledger {ledger_path}; "
                             f"its assets are listed by: reversesync --ledger {ledger_path} report --csv -\n")


def test_history_of_a_row_whose_id_was_unusable(invoke, tmp_path):
    invoke("load", "--csv", write_sheet(tmp_path / "s.csv", [("../x", "bad", 1, 2)]))
    for name in ("row:2", "../x"):
        result = invoke("history", name)
        assert result.exit_code == 0
        assert result.output.splitlines()[0] == "Asset ../x (row 2): bad"
        assert "Now: skipped; reason invalid; action -; segment -" in result.output


# --- runs, from the event log ------------------------------------------------------------------------


def runs_lines(invoke):
    result = invoke("runs")
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[1:]


def ago(seconds):
    return (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)).isoformat(
        timespec="milliseconds")


def killed_run(ledger_path):
    """A live run that created two rows, had a third in flight and then died without closing its record."""
    ledger = Ledger(ledger_path)
    run_id = ledger.start_run("live", {"live": True})
    ledger.db.execute("update runs set started_at = ? where id = ?", [ago(125), run_id])
    ledger.db.conn.commit()
    keys = [row["asset_key"] for row in ledger.query("select asset_key from assets where state = 'pending' "
                                                     "order by asset_key limit 3")]
    for key in keys:
        ledger.move(key, "checked", run_id=run_id, action="create", kind="other")
    for key in keys[:2]:
        ledger.move(key, "created", run_id=run_id, segment_id="s", kind="other")
    ledger.db.execute("update events set at = ? where run_id = ?", [ago(5), run_id])
    ledger.db.conn.commit()
    return ledger, run_id


def test_a_killed_run_shows_what_it_did_and_how_long_it_ran(invoke, ledger_path):
    invoke("load", "--example")
    killed_run(ledger_path)
    [line] = runs_lines(invoke)
    assert re.match(rf"^1\s+live\s+{STAMP}\s+-\s+0:02:0\d\s+killed\s+\?\s+\?\s+created 2, unfinished 1$", line), line


def test_a_run_superseded_after_a_kill_keeps_its_counts(invoke, ledger_path):
    invoke("load", "--example")
    ledger, _ = killed_run(ledger_path)
    ledger.supersede_unfinished_runs()
    dry = ledger.start_run("dry", {})
    key = ledger.query("select asset_key from assets where state = 'pending' limit 1")[0]["asset_key"]
    ledger.move(key, "checked", run_id=dry, action="create", kind="other")
    ledger.finish_run(dry, "finished", {("checked", "create"): 1}, requests=3, elapsed=1.2)
    first, second = runs_lines(invoke)
    assert re.match(r"^1\s+live\s+.*\s+superseded\s+\?\s+\?\s+created 2, unfinished 1$", first), first
    assert re.match(rf"^2\s+dry\s+{STAMP}\s+{STAMP}\s+0:00:01\s+finished\s+3\s+0\s+checked 1$", second), second


def test_a_running_run_counts_its_duration_from_its_start(invoke, ledger_path):
    invoke("load", "--example")
    ledger, _ = killed_run(ledger_path)
    ledger.acquire("run")  # this process is the live holder
    [line] = runs_lines(invoke)
    assert re.match(rf"^1\s+live\s+{STAMP}\s+-\s+0:02:0\d\s+running\s+\?\s+\?\s+created 2, unfinished 1$", line), line


@pytest.mark.slow
def test_runs_of_a_real_run_while_it_works_and_after_sigkill(ledger_path, tmp_path):
    keys = [f"9d1e0b20-0000-4000-8000-0000000003{n:02d}" for n in range(80)]
    catalogue = Catalogue()
    for key in keys:
        catalogue.add_asset(key)
    with Sandbox(catalogue, latency_ms=50) as server:
        env = dict(os.environ, ICONIK_URL=server.url, ICONIK_APP_ID=server.app_id,
                   ICONIK_AUTH_TOKEN=server.auth_token, PYTHONPATH=str(ROOT))

        def reversesync(*args, **kwargs):
            return subprocess.Popen([sys.executable, "-m", "reversesync", "--ledger", ledger_path, *args],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)

        sheet = write_sheet(tmp_path / "s.csv", [(key, "t", 1000, 2000) for key in keys])
        assert reversesync("load", "--csv", sheet).wait(60) == 0
        process = reversesync("run", "--live", "--workers", "1", "--no-search")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _created(ledger_path) < 5:
            time.sleep(0.1)
        time.sleep(1.2)
        live = subprocess.run([sys.executable, "-m", "reversesync", "--ledger", ledger_path, "runs"], env=env,
                              capture_output=True, text=True, cwd=ROOT)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        after = subprocess.run([sys.executable, "-m", "reversesync", "--ledger", ledger_path, "runs"], env=env,
                               capture_output=True, text=True, cwd=ROOT)
    line = live.stdout.splitlines()[1]
    assert re.match(rf"^1\s+live\s+{STAMP}\s+-\s+0:00:(0[1-9]|[1-5]\d)\s+running\s+\?\s+\?\s+created \d+", line), line
    created = _created(ledger_path)
    line = after.stdout.splitlines()[1]
    assert re.match(rf"^1\s+live\s+{STAMP}\s+-\s+0:00:\d\d\s+killed\s+\?\s+\?\s+created {created}(, |$)", line), line
    assert " 0:00:00 " not in line and created > 0


def _created(ledger_path):
    try:
        return Ledger(ledger_path, readonly=True).query(
            "select count(*) as n from assets where state = 'created'")[0]["n"]
    except Exception:  # noqa: BLE001  (the run may be creating the ledger's tables this instant)
        return 0


# --- demo -----------------------------------------------------------------------------------------------
