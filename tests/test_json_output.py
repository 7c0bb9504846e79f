"""--json on run, resume, verify, runs and undo (issue #12): one document on stdout with a version key, the human
lines on stderr, and an empty stdout on an error."""

import json

import pytest
from click.testing import CliRunner

from reversesync.cli import cli

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
        1, "run", "live", "finished")
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
    assert runs["version"] == 1 and [run["mode"] for run in runs["runs"]] == ["live"]
    undone = json.loads(split("undo", "1", "--json").stdout)
    assert (undone["command"], undone["mode"], undone["version"]) == ("undo", "undo", 1)
