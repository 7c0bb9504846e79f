import contextlib
import json
import os
import pathlib
import re

import pytest
import vcr
from click.testing import CliRunner

from reversesync.cli import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
EXAMPLE_SHEET = ROOT / "reversesync" / "examples" / "example_sheet.csv"
OPENAPI_ASSETS = ROOT.parent / "shared" / "iconik-openapi" / "assets.json"

_SECRET_HEADERS = ["Authorization", "App-ID", "Auth-Token", "Cookie", "Set-Cookie"]
_TOKEN_IN_BODY = re.compile(rb'"(access_token|id_token|refresh_token)"\s*:\s*"[^"]*"')


def _scrub_response(response):
    body = response["body"].get("string")
    if isinstance(body, bytes):
        response["body"]["string"] = _TOKEN_IN_BODY.sub(rb'"\1": "REDACTED"', body)
    for header in _SECRET_HEADERS:
        response["headers"].pop(header, None)
    return response


def recorder():
    """vcrpy set up as every cassette test uses it: replay only, secrets filtered if ever re-recorded.

    REVERSESYNC_RECORD=once re-records a missing cassette against the real service.
    """
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode=os.environ.get("REVERSESYNC_RECORD", "none"),
        filter_headers=_SECRET_HEADERS,
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
