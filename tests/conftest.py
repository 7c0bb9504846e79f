import contextlib
import csv
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
import vcr
from click.testing import CliRunner

from reversesync.cli import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
EXAMPLE_SHEET = ROOT / "reversesync" / "examples" / "example_sheet.csv"
OPENAPI_ASSETS = ROOT.parent / "shared" / "iconik-openapi" / "assets.json"

SECRET_HEADERS = ["Authorization", "App-ID", "Auth-Token", "Cookie", "Set-Cookie"]
_TOKEN_IN_BODY = re.compile(rb'"(access_token|id_token|refresh_token)"\s*:\s*"[^"]*"')


def _scrub_response(response):
    body = response["body"].get("string")
    if isinstance(body, bytes):
        response["body"]["string"] = _TOKEN_IN_BODY.sub(rb'"\1": "REDACTED"', body)
    for header in SECRET_HEADERS:
        response["headers"].pop(header, None)
    return response


def recorder():
    """vcrpy set up as every cassette test uses it: replay only, secrets filtered if ever re-recorded.

    REVERSESYNC_RECORD=once re-records a missing cassette against the real service.
    """
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode=os.environ.get("REVERSESYNC_RECORD", "none"),
        filter_headers=SECRET_HEADERS,
        filter_post_data_parameters=["assertion", "client_secret", "refresh_token"],
        before_record_response=_scrub_response,
        decode_compressed_response=True,
    )


def client_for(sandbox, **options):
    """The real Iconik client pointed at a running sandbox, with short back-off for tests."""
    from reversesync.iconik import IconikClient

    options.setdefault("backoff", 0.001)
    return IconikClient(sandbox.url, sandbox.app_id, sandbox.auth_token, **options)


@contextlib.contextmanager
def sandbox_for_cli(monkeypatch, **options):
    """A sandbox on a free loopback port, with ICONIK_URL, ICONIK_APP_ID and ICONIK_AUTH_TOKEN pointing at it."""
    from reversesync.sandbox import Sandbox

    with Sandbox(**options) as running:
        monkeypatch.setenv("ICONIK_URL", running.url)
        monkeypatch.setenv("ICONIK_APP_ID", running.app_id)
        monkeypatch.setenv("ICONIK_AUTH_TOKEN", running.auth_token)
        yield running


@pytest.fixture
def ledger_path(tmp_path):
    return str(tmp_path / "ledger.db")


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def invoke(runner, ledger_path):
    """Run the CLI against this test's ledger, like a user typing `reversesync --ledger L ...`."""

    def run(*args, **kwargs):
        return runner.invoke(cli, ["--ledger", ledger_path, *map(str, args)], catch_exceptions=False, **kwargs)

    return run


@pytest.fixture
def credentials(monkeypatch):
    """Credentials in the environment, so that commands that talk to Iconik get as far as the ledger."""
    monkeypatch.setenv("ICONIK_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ICONIK_APP_ID", "app")
    monkeypatch.setenv("ICONIK_AUTH_TOKEN", "token")


@pytest.fixture(scope="session")
def service_account_key(tmp_path_factory):
    """A throwaway service-account key, made fresh for the run (its signature never reaches a cassette)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    key = {
        "type": "service_account", "project_id": "reversesync-test", "private_key_id": "0" * 40,
        "private_key": pem, "client_email": "sync-reader@reversesync-test.iam.gserviceaccount.com",
        "client_id": "100000000000000000000", "token_uri": "https://oauth2.googleapis.com/token",
    }
    path = tmp_path_factory.mktemp("keys") / "key.json"
    path.write_text(json.dumps(key))
    return str(path)


# --- the sheet ----------------------------------------------------------------------------------------------

ID_A = "0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2aa1"
ID_B = "0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2aa2"
ID_C = "0b7c7c4e-1f6a-4d55-9a35-8f0b7f1d2aa3"


def write_sheet(path, rows, header=None, bom=False):
    """A CSV export of the sheet with (id, title, start, end) rows; the other columns empty."""
    from tests.sheetgen import COLUMNS

    header = header or COLUMNS
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for values in rows:
            cells = dict(zip(["id", "title", "time_start_ms", "time_end_ms"], values, strict=False))
            writer.writerow([cells.get(column, "") for column in header])
    return str(path)


def load_rows(invoke, tmp_path, *rows, name="sheet.csv"):
    """`reversesync load --csv` of a sheet of (id, start, end) rows, asserting it succeeded."""
    path = write_sheet(tmp_path / name, [(key, "clip", start, end) for key, start, end in rows])
    result = invoke("load", "--csv", path)
    assert result.exit_code == 0, result.output


@pytest.fixture
def loaded(invoke, tmp_path):
    """Load a sheet of (id, start, end) rows into this test's ledger."""

    def load(*rows):
        path = write_sheet(tmp_path / "sheet.csv", [(key, f"clip {key[-2:]}", s, e) for key, s, e in rows])
        result = invoke("load", "--csv", path)
        assert result.exit_code == 0, result.output
    return load


# --- the ledger and Iconik, as a test checks them -----------------------------------------------------------


def state(ledger_path, key):
    """(state, reason or action) of one row."""
    from reversesync.ledger import Ledger

    row = Ledger(ledger_path).asset(key)
    return row["state"], row["reason"] or row["action"]


def writes(sandbox):
    """The writes the sandbox was asked for (searches aside)."""
    return [entry for entry in sandbox.requests()
            if entry[0] in ("POST", "PUT", "PATCH", "DELETE") and not entry[1].startswith("/API/search/")]


def strand_intent(ledger_path, key):
    """A row failed while its write may have landed: the intent is kept, as a settle re-check that failed leaves it."""
    from reversesync.ledger import Ledger
    from reversesync.rules import MARKER
    from reversesync.types import Intent

    ledger = Ledger(ledger_path)
    run_id = ledger.start_run("live", {"live": True})
    ledger.select_rows(run_id, [key])
    intent = Intent("0ddba11", "create", "POST", marker=f"{MARKER}:0ddba11", start_ms=1000, end_ms=5000)
    ledger.record_intent(key, intent, run_id=run_id, to_state="checked", kind="intent", detail="about to create",
                         action="create")
    ledger.mark_sent(key)
    ledger.move(key, "failed", run_id=run_id, kind="failed", reason="server_error", reason_text="kept failing")
    ledger.finish_run(run_id, "finished", {})
    ledger.close()
    return intent


def fixed_run(ledger_path):
    """A ledger holding a dry run and a finished live run with known figures."""
    from reversesync.ledger import Ledger

    ledger = Ledger(ledger_path)
    ledger.start_run("dry", {})
    run_id = ledger.start_run("live", {"live": True})
    ledger.finish_run(run_id, "finished", {("created", "create"): 5, ("updated", "update"): 2}, 20, 0, 7, 12.5)
    ledger.db.execute("update runs set started_at = '2026-11-26T01:02:03.000+00:00' where id = ?", [run_id])
    ledger.db.conn.commit()
    return ledger


# --- processes ----------------------------------------------------------------------------------------------


def cli_process(ledger_path, sandbox, *args):
    """`python -m reversesync --ledger L args...` as its own process, pointed at the sandbox (it can be killed)."""
    env = dict(os.environ, ICONIK_URL=sandbox.url, ICONIK_APP_ID=sandbox.app_id,
               ICONIK_AUTH_TOKEN=sandbox.auth_token, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "reversesync", "--ledger", ledger_path, *map(str, args)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


# `python -m reversesync` that a test can Ctrl-C however pytest was started: a process started in the background
# of a non-interactive shell (nohup, `&`, some CI runners) inherits SIGINT ignored, and Python then never raises
# KeyboardInterrupt. The child puts Python's handler back itself (a preexec_fn is unsafe with threads running).
INTERRUPTIBLE = [sys.executable, "-c", "import runpy, signal; "
                 "signal.signal(signal.SIGINT, signal.default_int_handler); "
                 "runpy.run_module('reversesync', run_name='__main__', alter_sys=True)"]


def wait_for(condition, timeout=20.0):
    """Poll a condition another process or thread will make true; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- the sandbox, as its own tests use it -------------------------------------------------------------------

SANDBOX_ASSET = "6a1d0f3c-0000-4000-8000-0000000000b1"


def raw(sandbox, method, path, body=None, **headers):
    """One request to the sandbox as any HTTP client would send it."""
    import requests

    auth = {"App-ID": sandbox.app_id, "Auth-Token": sandbox.auth_token}
    auth.update(headers)
    return requests.request(method, sandbox.url + path, json=body, headers=auth, timeout=5)


def closed_loopback_port():
    """A port on 127.0.0.1 nobody listens on: connecting to it is refused at once, deterministically."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def unreachable_key(service_account_key, tmp_path):
    """A service-account key whose token endpoint nobody answers."""
    key = json.loads(open(service_account_key).read())
    key["token_uri"] = f"http://127.0.0.1:{closed_loopback_port()}/token"
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    return str(path)


@pytest.fixture
def sandbox(monkeypatch):
    """A sandbox for the CLI (ICONIK_* point at it), its index lag scaled down with the tests' settle times.
    Test modules that need another one define their own `sandbox` fixture."""
    with sandbox_for_cli(monkeypatch, index_lag=0.3) as running:
        yield running


def ledger_of_version_02(ledger_path, keys):
    """A ledger file with 0.2's schema (migrations up to 005) holding keys as pending rows 2, 3, ... written by
    plain SQL, as 0.2 wrote them (today's code writes columns 0.2 did not have). Returns an open sqlite3
    connection for the test to shape the rows further; the test commits and closes it."""
    import sqlite3

    from reversesync.ledger import Ledger
    from reversesync.sheets import AssetRecord

    Ledger(ledger_path, stop_before="006_write_log").close()
    conn = sqlite3.connect(ledger_path)
    for n, key in enumerate(keys, start=2):
        record = AssetRecord(key, key, [n], "t", 1000, 5000)
        conn.execute("insert into assets (asset_key, asset_id, row_numbers, title, time_start_ms, time_end_ms, "
                     "source_hash, state, created_at, updated_at) values (?, ?, ?, 't', 1000, 5000, ?, 'pending', "
                     "'x', 'x')", [key, key, str(n), record.source_hash])
        conn.execute("insert into events (asset_key, run_id, from_state, to_state, at, detail) values "
                     "(?, null, null, 'pending', 'x', 'loaded')", [key])
    return conn


@pytest.fixture
def zone(monkeypatch):
    """Put this process in a time zone, as a person's PC is (TZ + tzset); the zone of before comes back after."""
    import time

    def put(name):
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield put
    monkeypatch.undo()
    time.tzset()


class PersonAtWork:
    """A person editing the given segments' text, colour and internal flag every few milliseconds until stop();
    edits: {segment id: the fields as the person last left them}."""

    def __init__(self, sandbox, segment_ids, rng):
        self.sandbox, self.segment_ids, self.rng = sandbox, segment_ids, rng
        self.edits: dict[str, dict] = {}
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._worker.start()

    def _work(self):
        n = 0
        while self.segment_ids and not self._stop.wait(self.rng.uniform(0.005, 0.03)):
            n += 1
            segment_id = self.rng.choice(self.segment_ids)
            # Values, never a field emptied: a person clearing a field while a PATCH is on its way looks, in the
            # answer, exactly like a PATCH that reset it, and stops the writes (the safe side; README says so).
            fields = {"segment_text": f"edited by a person ({n})", "is_internal": True,
                      "segment_color": self.rng.choice(("#ff0000", "#00ff00", "#0000ff"))}
            self.sandbox.person_edits(segment_id, **fields)
            self.edits.setdefault(segment_id, {}).update(fields)

    def stop(self):
        self._stop.set()
        self._worker.join()


@pytest.fixture
def sql_written(monkeypatch):
    """The statements the ledger sends SQLite from here on that are not reads: call it after the command. sqlite-utils
    wraps each query in a savepoint and sets recursive_triggers for its connection, which write nothing. (Run as
    root, a chmod alone cannot show a command writes nothing: root may write a read-only file.)"""
    import sqlite3

    statements, connect = [], sqlite3.connect

    def traced(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr("reversesync.ledger.sqlite3.connect", traced)
    reading = re.compile(r'^\s*(select\b|savepoint "sqlite_utils_query"|release "sqlite_utils_query"|'
                         r"pragma recursive_triggers=on;)", re.I)

    def not_reads():
        assert statements, "SQLite was sent nothing: the trace is not on the ledger's connection"
        return [sql for sql in statements if not reading.match(sql)]

    return not_reads
