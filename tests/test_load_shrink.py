"""Issue #17: a source that would take more than 10% of the assets in the source out of it is refused (it was half),
saying how many and from which tab or file, and leaves the ledger as it was, byte for byte; `--allow-shrink` loads
it. `load_into`, `source_options`, `source_from` and `loaded_lines` are that load for the nightly `sync`, on a
ledger it has open and locked."""

import os
import random

import click
import pytest

from reversesync import errors
from reversesync.app import Session, Source
from reversesync.app.loading import load_into
from reversesync.cli.load import loaded_lines, source_from, source_options
from reversesync.ledger import Ledger
from tests.conftest import recorder, write_sheet
from tests.make_sheet_cassettes import SHEET_ID
from tests.sheetgen import valid_rows, write


def the_real_sheet(tmp_path, rows):
    """An export of the size of the production sheet (2,479 assets), or its first `rows` rows."""
    path = tmp_path / f"export-{rows}.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        write(valid_rows(random.Random(2479), 2479)[:rows], handle)
    return str(path)


def ledger_files(ledger_path):
    """Every file of the ledger (its -wal and -shm included) and its bytes."""
    folder = os.path.dirname(ledger_path)
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))
            if name.startswith(os.path.basename(ledger_path))}


def test_a_truncated_export_is_refused_and_the_ledger_left_byte_for_byte(invoke, ledger_path, tmp_path):
    assert invoke("load", "--csv", the_real_sheet(tmp_path, 2479)).exit_code == 0
    before = ledger_files(ledger_path)
    truncated = the_real_sheet(tmp_path, 1300)
    result = invoke("load", "--csv", truncated)
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {truncated} would take 1,179 of the ledger's 2,479 assets out of the source (48%, more than 10%); "
        f"nothing was loaded. If it is the right source, load it with: reversesync --ledger {ledger_path} load "
        f"--csv {truncated} --allow-shrink\n")
    assert ledger_files(ledger_path) == before
    allowed = invoke("load", "--csv", truncated, "--allow-shrink")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.output.splitlines()[1] == "  assets: 0 new, 0 changed, 1300 unchanged, 1179 removed from the source"


@pytest.mark.parametrize("total, leaving, shown", [(79, 8, "10.1%"), (10, 4, "40%"), (3, 1, "33%")])
def test_the_share_is_shown_with_the_decimals_that_put_it_above_the_limit(invoke, tmp_path, total, leaving, shown):
    ids = [f"5e1f0c00-0000-4000-8000-{n:012d}" for n in range(total)]
    assert invoke("load", "--csv", write_sheet(tmp_path / "all.csv", [(i, "t", 1, 2) for i in ids])).exit_code == 0
    result = invoke("load", "--csv", write_sheet(tmp_path / "fewer.csv", [(i, "t", 1, 2) for i in ids[leaving:]]))
    assert result.exit_code == 2
    assert f"would take {leaving} of the ledger's {total} assets out of the source ({shown}, more than 10%)" in (
        result.output)


def test_the_hint_repeats_the_encoding_given(invoke, ledger_path, tmp_path):
    ids = [f"5e1f0c00-0000-4000-8000-{n:012d}" for n in range(3)]
    assert invoke("load", "--csv", write_sheet(tmp_path / "all.csv", [(i, "t", 1, 2) for i in ids])).exit_code == 0
    one = write_sheet(tmp_path / "one.csv", [(ids[0], "t", 1, 2)])
    result = invoke("load", "--csv", one, "--encoding", "cp949")
    assert result.exit_code == 2
    assert result.output.endswith(f"load it with: reversesync --ledger {ledger_path} load --csv {one} --encoding "
                                  "cp949 --allow-shrink\n")


def test_a_google_tab_is_named_by_spreadsheet_and_tab(invoke, ledger_path, tmp_path, service_account_key):
    ids = [f"5e1f0c00-0000-4000-8000-{n:012d}" for n in range(10)]
    assert invoke("load", "--csv", write_sheet(tmp_path / "all.csv", [(i, "t", 1, 2) for i in ids])).exit_code == 0
    before = ledger_files(ledger_path)
    with recorder().use_cassette("sheets_success.yaml"):
        result = invoke("load", "--sheet", SHEET_ID, "--credentials", service_account_key)
    assert result.exit_code == 2
    assert result.output == (
        f"Error: spreadsheet {SHEET_ID}, tab GGmetadata_and_timestamps would take 10 of the ledger's 10 assets out "
        "of the source (100%, more than 10%); nothing was loaded. If it is the right source, load it with: "
        f"reversesync --ledger {ledger_path} load --sheet {SHEET_ID} --credentials {service_account_key} "
        "--allow-shrink\n")
    assert ledger_files(ledger_path) == before


def test_load_into_works_on_a_locked_ledger_and_refuses_before_changing_it(invoke, ledger_path, tmp_path):
    ids = [f"5e1f0c00-0000-4000-8000-{n:012d}" for n in range(10)]
    assert invoke("load", "--csv", write_sheet(tmp_path / "all.csv", [(i, "t", 1, 2) for i in ids])).exit_code == 0
    half = write_sheet(tmp_path / "half.csv", [(i, "t", 1, 3) for i in ids[:5]])
    source = Source(csv_path=half, words=("load", "--csv", half))
    ledger = Ledger(ledger_path)
    ledger.acquire("sync")
    try:
        before = ledger.query("select * from assets"), ledger.query("select * from events")
        with pytest.raises(errors.InputError, match=r"would take 5 of the ledger's 10 assets .* \(50%, more than"):
            load_into(Session(ledger_path), ledger, source, allow_shrink=False)
        assert (ledger.query("select * from assets"), ledger.query("select * from events")) == before
        loaded = load_into(Session(ledger_path), ledger, source, allow_shrink=True)
        assert (loaded.where, loaded.rows_read) == (half, 5)
        assert {k: loaded.counts[k] for k in ("new", "changed", "unchanged", "removed")} == {
            "new": 0, "changed": 5, "unchanged": 0, "removed": 5}
        assert ledger.lock_holder()["command"] == "sync", "the caller's lock is the caller's to release"
    finally:
        ledger.release()
        ledger.close()


def test_a_command_built_from_the_source_options_loads_and_prints_as_load_does(runner, ledger_path, tmp_path):
    @click.command()
    @source_options
    @click.pass_context
    def nightly(ctx, spreadsheet_id, worksheet, credentials, csv_path, example, encoding, allow_shrink):
        source = source_from(ctx, spreadsheet_id, worksheet, credentials, csv_path, example, encoding)
        where = Session(ledger_path)
        ledger = where.open_ledger(create=True)
        ledger.acquire("sync")
        try:
            loaded = load_into(where, ledger, source, allow_shrink)
        finally:
            ledger.release()
            ledger.close()
        for line in loaded_lines(where, loaded):
            click.echo(line)

    sheet = write_sheet(tmp_path / "s.csv", [("5e1f0c00-0000-4000-8000-000000000001", "t", 1, 2), ("../x", "t", 1, 2)])
    result = runner.invoke(nightly, ["--csv", sheet])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"Loaded 2 rows from {sheet} into {ledger_path}",
        "  assets: 2 new, 0 changed, 0 unchanged, 0 removed from the source",
        f"  rejected (skipped): 1 (invalid 1); see: reversesync --ledger {ledger_path} report --state skipped --csv -"]
    assert runner.invoke(nightly, ["--csv", sheet, "--worksheet", "x"]).output.splitlines()[-1] == (
        "Error: --worksheet goes with --sheet; --csv reads no Google tab.")
