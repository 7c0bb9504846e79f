"""Issue #11: a network failure is not a refused key. Issue #10 item 6: `report --sync-log` never appends a run
twice, even when Google's answer to the append is lost."""


import gspread
import pytest

from reversesync import errors, sheets
from reversesync.sheets import google, writing
from tests.conftest import fixed_run, recorder
from tests.make_sheet_cassettes import SHEET_ID, SYNC_ID


def test_a_network_failure_while_signing_in_is_could_not_reach_google(invoke, unreachable_key, ledger_path):
    """google.auth raises TransportError, a GoogleAuthError, when the network fails during the token
    exchange: that must not read as a refused key."""
    result = invoke("load", "--sheet", SHEET_ID, "--credentials", unreachable_key)
    assert result.exit_code == 3
    assert result.output == ("Error: could not reach Google (Connection refused); check the network (or the "
                             "proxy) and try again.\n")


def test_a_refused_key_says_google_refused_the_key(invoke, service_account_key):
    with recorder().use_cassette("sheets_key_refused.yaml") as tape:
        result = invoke("load", "--sheet", SHEET_ID, "--credentials", service_account_key)
    assert tape.all_played
    assert result.exit_code == 2
    assert result.output == (f"Error: Google refused the key {service_account_key}: invalid_grant: Invalid JWT "
                             "Signature. Check that the service account and this key still exist, or download "
                             "a new JSON key for it.\n")


def test_sync_log_on_an_unreachable_google_exits_3_and_records_nothing(invoke, ledger_path, unreachable_key):
    invoke("load", "--example")
    ledger = fixed_run(ledger_path)
    result = invoke("report", "--sync-log", "--sheet", SHEET_ID, "--credentials", unreachable_key)
    assert result.exit_code == 3
    assert result.output.startswith("Error: could not reach Google (Connection refused)")
    assert ledger.query("select sync_log_id from runs where id = 2")[0]["sync_log_id"] is None


# --- issue #10 item 6 -----------------------------------------------------------------------------------


@pytest.fixture
def appends(monkeypatch):
    """Every values:append body sent, and no waiting between a lost answer and the look-up."""
    sent = []
    append = gspread.http_client.HTTPClient.values_append
    monkeypatch.setattr(gspread.http_client.HTTPClient, "values_append",
                        lambda self, *args, **kwargs: sent.append(kwargs["body"]) or append(self, *args, **kwargs))
    monkeypatch.setattr(writing, "APPEND_SETTLE_SECONDS", 0, raising=False)  # raising=False: 0.1 has none
    return sent


def sync_log(invoke, ledger_path, key, cassette):
    invoke("load", "--example")
    ledger = fixed_run(ledger_path)
    with recorder().use_cassette(cassette) as tape:
        result = invoke("report", "--sync-log", "--sheet", SHEET_ID, "--credentials", key)
    assert tape.all_played, "every exchange of the cassette is used, and nothing else was sent"
    return result, ledger, tape


def test_a_lost_append_that_landed_is_not_sent_again(invoke, ledger_path, service_account_key, appends):
    result, ledger, tape = sync_log(invoke, ledger_path, service_account_key, "sync_log_append_lost_landed.yaml")
    assert result.exit_code == 0, result.output
    assert result.output == f"Appended to Sync_Log: {SYNC_ID}\n"
    assert len(appends) == 1, "gspread's back-off must not re-send the POST answered 503"
    assert [r.method for r in tape.requests] == ["POST", "GET", "POST", "GET"]  # token, read, append, look-up
    assert ledger.query("select sync_log_id from runs where id = 2")[0]["sync_log_id"] == SYNC_ID


def test_a_lost_append_that_did_not_land_is_sent_once_more(invoke, ledger_path, service_account_key, appends):
    result, ledger, tape = sync_log(invoke, ledger_path, service_account_key, "sync_log_append_lost_absent.yaml")
    assert result.exit_code == 0, result.output
    assert result.output == f"Appended to Sync_Log: {SYNC_ID}\n"
    assert len(appends) == 2 and appends[0] == appends[1]
    assert [r.method for r in tape.requests] == ["POST", "GET", "POST", "GET", "POST"]


def test_an_append_never_confirmed_stops_after_three_tries_without_a_blind_resend(monkeypatch):
    """Each send is followed by a look-up; after three unconfirmed sends the command stops (exit 3)."""
    calls = []

    class Http:
        session = object()

        def values_get(self, *args, **kwargs):
            calls.append("look-up")
            return {"values": [["Sync_ID"]]}

    def unanswered(plain, spreadsheet_id, entries, refused, key_file):
        calls.append("append")
        return "Google answered 503"

    monkeypatch.setattr(writing, "sheets_http", lambda *args: (Http(), "sa@example.com", "key.json"))
    monkeypatch.setattr(writing, "append_once", unanswered)
    monkeypatch.setattr(writing, "APPEND_SETTLE_SECONDS", 0)
    entry = {column: "x" for column in sheets.SYNC_LOG_COLUMNS}
    with pytest.raises(errors.GoogleUnreachable) as caught:
        sheets.append_sync_log(SHEET_ID, [dict(entry, Sync_ID="rs-1")])
    assert calls == ["look-up"] + ["append", "look-up"] * 3
    assert str(caught.value) == ("Google did not confirm the Sync_Log append of rs-1 after 3 tries (last: Google "
                                 "answered 503), and the rows are not in the tab; nothing was appended twice. "
                                 "Try again later.")


def _raised(make):
    try:
        make()
    except Exception as exc:  # noqa: BLE001
        return exc


def _timeout_while_signing_in():
    import requests
    from google.auth import exceptions

    try:
        raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=60)")
    except requests.exceptions.ReadTimeout as exc:
        raise exceptions.TransportError(exc) from exc


def test_sign_in_failures_that_are_not_about_the_key():
    from google.auth import exceptions

    timeout = google.sign_in_error(_raised(_timeout_while_signing_in), "key.json")
    assert isinstance(timeout, errors.GoogleUnreachable)
    assert str(timeout) == "could not reach Google (ReadTimeout); check the network (or the proxy) and try again."
    busy = google.sign_in_error(exceptions.RefreshError("Internal Error.", retryable=True), "key.json")
    assert isinstance(busy, errors.GoogleUnreachable)
    assert str(busy) == ("could not reach Google: its sign-in service failed (Internal Error); try again in a few "
                         "minutes.")
