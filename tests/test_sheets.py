"""`load --sheet` through gspread and google-auth, replayed from cassettes/ (see tests/make_sheet_cassettes.py)."""

import pytest

from reversesync.ledger import Ledger
from tests.conftest import recorder
from tests.make_sheet_cassettes import SHEET_ID

EMAIL = "sync-reader@reversesync-test.iam.gserviceaccount.com"


@pytest.fixture
def load_sheet(invoke, service_account_key):
    def run(cassette, *extra):
        with recorder().use_cassette(f"{cassette}.yaml") as tape:
            result = invoke("load", "--sheet", SHEET_ID, "--credentials", service_account_key, *extra)
        assert tape.all_played, "every recorded exchange should be used"
        return result

    return run


def test_load_sheet_reads_unformatted_values_in_one_request(load_sheet, ledger_path):
    result = load_sheet("sheets_success")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "  assets: 6 new, 0 changed, 0 unchanged, 0 removed from the source"
    rows = {r["asset_id"]: r for r in Ledger(ledger_path).query("select * from assets")}
    first = rows["0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2a01"]
    assert (first["time_start_ms"], first["time_end_ms"], first["state"]) == (1234567, 1299000, "pending")
    assert first["title"] == 'WSOP 메인 이벤트, "final" hand\nangle 2'
    assert rows["0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2a02"]["time_end_ms"] == 15000
    assert rows["0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2a03"]["time_start_ms"] == 1000
    assert rows["0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2a04"]["reason"] == "no_timecode"
    assert rows["../x"]["reason"] == "invalid"
    assert rows["0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2a06"]["reason_text"] == (
        "Row 7: time_start_ms is 1000.5, not a whole number of milliseconds (0 or more); correct the cell.")


def test_sheet_not_found_names_the_service_account(load_sheet, ledger_path):
    result = load_sheet("sheets_not_found")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: spreadsheet {SHEET_ID} was not found. Check the id (the part of the sheet's URL after /d/) "
        f"and share the sheet with {EMAIL}.")
    assert Ledger(ledger_path).query("select count(*) as n from assets")[0]["n"] == 0


def test_sheet_not_shared_says_whom_to_share_with(load_sheet):
    result = load_sheet("sheets_not_shared")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: the service account {EMAIL} may not read spreadsheet {SHEET_ID}: share the sheet with {EMAIL} "
        "(Viewer is enough). Google said: The caller does not have permission")


def test_missing_worksheet_lists_the_tabs_that_exist(load_sheet):
    result = load_sheet("sheets_missing_worksheet", "--worksheet", "Timestamps")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: spreadsheet {SHEET_ID} has no tab 'Timestamps'; its tabs are: 'GGmetadata_and_timestamps', "
        "'Sync_Log'. Pass the right one with --worksheet.")


def test_missing_key_file(invoke, tmp_path):
    result = invoke("load", "--sheet", SHEET_ID, "--credentials", tmp_path / "key.json")
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: the service-account key {tmp_path / 'key.json'} does not exist."


def test_invalid_key_file(invoke, tmp_path):
    key = tmp_path / "key.json"
    key.write_text('{"type": "authorized_user"}')
    result = invoke("load", "--sheet", SHEET_ID, "--credentials", key)
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {key} is not a service-account key file")


def test_no_credentials_at_all(invoke, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    result = invoke("load", "--sheet", SHEET_ID)
    assert result.exit_code == 2
    assert result.output.strip() == ("Error: no Google service-account key: pass --credentials FILE or set "
                                     "GOOGLE_APPLICATION_CREDENTIALS.")


def test_cassettes_hold_no_secrets():
    """Nothing that could authenticate is ever stored in a cassette."""
    import yaml

    from tests.conftest import CASSETTES, SECRET_HEADERS

    secret = {h.lower() for h in SECRET_HEADERS}
    for path in CASSETTES.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert "ya29." not in text and "PRIVATE KEY" not in text and "sandbox-token" not in text, path.name
        for exchange in yaml.safe_load(text)["interactions"]:
            for part in (exchange["request"], exchange["response"]):
                assert not secret & {name.lower() for name in part["headers"]}, path.name
            assert "assertion=ey" not in str(exchange["request"]["body"]), path.name
