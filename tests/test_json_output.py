"""--json on run, resume, verify, runs, undo and report (issues #12, #17): one document on stdout with a version
key, the human lines on stderr, and an empty stdout on an error."""

import json

import pytest
from click.testing import CliRunner

from reversesync.cli import cli
from tests.conftest import fixed_run

A, B, C, D = (f"8c0d9a10-0000-4000-8000-00000000000{n}" for n in range(1, 5))
PARENT = "8c0d9a10-0000-4000-8000-0000000000ff"


@pytest.fixture
def split(ledger_path):
    """The CLI with stdout and stderr kept apart, as a script would read them."""

    def run(*args):
        return CliRunner().invoke(cli, ["--ledger", ledger_path, *map(str, args)], catch_exceptions=False)

    return run


def test_run_json_is_one_document_with_counts_rows_and_ledger_totals(sandbox, loaded, split):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000), (B, 1000, 5000))
    result = split("run", "--live", "--json")
    assert result.exit_code == 1  # B is unknown to Iconik
    document = json.loads(result.stdout)
    assert (document["version"], document["command"], document["mode"], document["status"]) == (
        2, "run", "live", "finished")
    assert document["counts"] == {"created": {"create": 1}, "failed": {"not_found": 1}}
    assert document["ledger"]["created"] == 1 and document["ledger"]["failed"] == 1
    assert [(row["asset_id"], row["state"]) for row in document["rows"]] == [(A, "created"), (B, "failed")]
    assert set(document) >= {"run_id", "requests", "writes", "throttled", "elapsed_seconds"}
    assert "Iconik " in result.stderr and "This run (1):" in result.stderr


def test_json_on_an_error_leaves_stdout_empty(sandbox, loaded, split, monkeypatch):  # noqa: F811
    loaded((A, 1000, 5000))
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", "expired")
    result = split("run", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Iconik refused the credentials (401)" in result.stderr


def test_verify_runs_and_undo_take_json(sandbox, loaded, split):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000))
    assert split("run", "--live").exit_code == 0
    verified = json.loads(split("verify", "--json").stdout)
    assert (verified["command"], verified["verified"], verified["matched"], verified["mismatches"]) == (
        "verify", 1, 1, [])
    runs = json.loads(split("runs", "--json").stdout)
    assert runs["version"] == 2 and [run["mode"] for run in runs["runs"]] == ["live"]
    assert runs["runs"][0]["counts"] == {"created": 1}
    undone = json.loads(split("undo", "1", "--json").stdout)
    assert (undone["command"], undone["mode"], undone["version"]) == ("undo", "undo", 2)


def test_runs_json_gives_numbers_as_numbers_and_counts_as_an_object(split, ledger_path):
    assert split("load", "--example").exit_code == 0
    ledger = fixed_run(ledger_path)  # run 1: a dry run that never closed; run 2: a finished live run
    key = ledger.query("select asset_key from assets where state = 'pending' limit 1")[0]["asset_key"]
    ledger.move(key, "checked", run_id=2, action="create", kind="other")
    ledger.move(key, "created", run_id=2, segment_id="s", kind="other")
    ledger.close()
    result = split("runs", "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    assert (document["version"], document["command"]) == (2, "runs")
    killed, live = document["runs"]
    assert live == {"id": 2, "mode": "live", "started": "2026-11-26T01:02:03.000+00:00", "finished": live["finished"],
                    "duration": "0:00:12", "elapsed_seconds": 12.5, "status": "finished", "requests": 20, "429s": 0,
                    "writes": 7, "figures_complete": True, "counts": {"created": 1}}
    assert live["finished"].endswith("+00:00")
    # A run that never closed a leg has recorded no figures: unknown (null), not zero.
    assert (killed["status"], killed["finished"], killed["requests"], killed["429s"], killed["writes"],
            killed["figures_complete"], killed["counts"]) == ("killed", None, None, None, None, False, {})
    assert set(live) >= {"id", "mode", "started", "finished", "duration", "status", "requests", "429s", "counts"}


def test_report_json_has_version_and_command(split, ledger_path):
    assert split("load", "--example").exit_code == 0
    result = split("report", "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    assert list(document)[:2] == ["version", "command"]
    assert (document["version"], document["command"], document["ledger"]) == (2, "report", ledger_path)
    assert document["by_state"]["pending"] == 261 and document["success_bars"] is None
    assert {"state": "skipped", "reason": "invalid", "assets": 17} in document["by_reason"]
