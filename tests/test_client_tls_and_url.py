"""A wrong ICONIK_URL or a TLS problem is a setting to fix: one clear EndpointError, never a retry or a traceback."""

import datetime
import http.server
import ipaddress
import json
import ssl
import threading

import pytest

from reversesync import errors
from reversesync.iconik import IconikClient
from reversesync.sandbox import DEMO_APP_ID, DEMO_AUTH_TOKEN, Sandbox

ASSET = "5f0c1a9e-0000-4000-8000-0000000000a1"
FORM = "use the form https://app.iconik.io (scheme http or https, host, optional port, no path)."


# --- the URL, checked before any request --------------------------------------------------------------


@pytest.mark.parametrize("url, problem", [
    ("https://app.iconik.io/API", "it has a path '/API'"),
    ("https://app.iconik.io/API/assets/v1/", "it has a path"),
    ("app.iconik.io", "no scheme"),
    ("ftp://app.iconik.io", "scheme 'ftp' is not http or https"),
    ("https://", "no host"),
    ("http://:8080", "no host"),
    ("https://app.iconik .io", "it contains spaces"),
    (" https://app.iconik.io", "it contains spaces"),
    ("https://app.iconik.io?x=1", "it has a query or fragment"),
    ("https://app.iconik.io/#top", "it has a query or fragment"),
    ("https://app.iconik.io:99999", "the port is not a number"),
    ("https://app.iconik.io:0", "the port is not a number"),
    ("https://user:secret@app.iconik.io", "credentials belong in ICONIK_APP_ID"),
])
def test_a_bad_iconik_url_is_refused_at_once_showing_the_accepted_form(url, problem):
    with pytest.raises(errors.EndpointError) as caught:
        IconikClient(url, DEMO_APP_ID, DEMO_AUTH_TOKEN)
    message = str(caught.value)
    assert message.startswith(f"ICONIK_URL {url!r} is not an Iconik base URL (")
    assert problem in message and message.endswith(FORM)
    assert "\n" not in message


def test_a_bad_url_from_the_environment_is_refused_too(monkeypatch):
    monkeypatch.setenv("ICONIK_URL", "ftp://x")
    with pytest.raises(errors.EndpointError, match="ICONIK_URL 'ftp://x' is not an Iconik base URL"):
        IconikClient(app_id=DEMO_APP_ID, auth_token=DEMO_AUTH_TOKEN)


@pytest.mark.parametrize("url, kept", [
    ("https://app.iconik.io", "https://app.iconik.io"),
    ("https://app.iconik.io/", "https://app.iconik.io"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("HTTPS://App.Iconik.io", "HTTPS://App.Iconik.io"),
    ("http://[::1]:8080", "http://[::1]:8080"),
])
def test_a_base_url_with_or_without_trailing_slash_is_accepted(url, kept):
    assert IconikClient(url, DEMO_APP_ID, DEMO_AUTH_TOKEN).url == kept


# --- TLS ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A certificate for 127.0.0.1 signed by itself, and its key: (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reversesync test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_server(self_signed):
    """An HTTPS server on 127.0.0.1 with the self-signed certificate; answers every GET with a user."""
    answered = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            answered.append(self.path)
            body = json.dumps({"id": "user"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.handle_error = lambda *args: None  # a refused handshake is the point of these tests
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    server.answered = answered
    yield server
    server.shutdown()
    server.server_close()


def https_url(server):
    return f"https://127.0.0.1:{server.server_address[1]}"


def test_https_to_a_plain_http_server_is_one_endpoint_error_never_retried(monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with Sandbox() as sandbox:
        url = sandbox.url.replace("http://", "https://")
        client = IconikClient(url, DEMO_APP_ID, DEMO_AUTH_TOKEN, backoff=0.001)
        with pytest.raises(errors.EndpointError) as caught:
            client.get_asset(ASSET)
    message = str(caught.value)
    assert message.startswith(f"cannot talk TLS to {url}: ")
    assert "(the server does not seem to speak TLS)" in message
    assert message.endswith("check ICONIK_URL (http:// or https://) or the certificate (REQUESTS_CA_BUNDLE; "
                            "behind a proxy that inspects TLS, --system-certs).")
    assert client.stats.requests == 1


@pytest.mark.parametrize("call", [lambda c: c.current_user(), lambda c: c.create_segment(ASSET, 1, 2)],
                         ids=["read", "write"])
def test_a_self_signed_certificate_is_one_endpoint_error_naming_it_never_retried(tls_server, monkeypatch, call):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = IconikClient(https_url(tls_server), DEMO_APP_ID, DEMO_AUTH_TOKEN, backoff=0.001)
    with pytest.raises(errors.EndpointError) as caught:
        call(client)
    assert str(caught.value) == (
        f"cannot talk TLS to {https_url(tls_server)}: certificate verify failed: self-signed certificate; "
        "check ICONIK_URL (http:// or https://) or the certificate (REQUESTS_CA_BUNDLE; "
        "behind a proxy that inspects TLS, --system-certs).")
    assert client.stats.requests == 1 and tls_server.answered == []


def test_the_same_certificate_named_in_requests_ca_bundle_is_trusted(tls_server, self_signed, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", self_signed[0])
    client = IconikClient(https_url(tls_server), DEMO_APP_ID, DEMO_AUTH_TOKEN)
    assert client.current_user() == {"id": "user"}


# --- --system-certs (issue #18): the OS's store, for a proxy that re-signs TLS with a company certificate ----


TRY_ICONIK = """
import sys
from reversesync import errors
from reversesync.cli.group import trust_the_system_store
from reversesync.iconik import IconikClient
if sys.argv[2] == "system":
    trust_the_system_store()
try:
    print(IconikClient(sys.argv[1], "app", "token", backoff=0.001).current_user())
except errors.EndpointError as exc:
    print(exc)
"""


@pytest.mark.parametrize("store, answer", [
    ("certifi", "cannot talk TLS to {url}: certificate verify failed: self-signed certificate; check ICONIK_URL "
                "(http:// or https://) or the certificate (REQUESTS_CA_BUNDLE; behind a proxy that inspects TLS, "
                "--system-certs)."),
    ("system", "{{'id': 'user'}}"),
])
def test_a_company_certificate_in_the_system_store_is_trusted_only_with_system_certs(tls_server, self_signed, store,
                                                                                      answer):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    # The "system store" of this test: OpenSSL's, which SSL_CERT_FILE points at (Windows' would be its own).
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env.update(SSL_CERT_FILE=self_signed[0], PYTHONPATH=str(ROOT))
    url = https_url(tls_server)
    done = subprocess.run([sys.executable, "-c", TRY_ICONIK, url, store], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == answer.format(url=url), done.stderr


def test_system_certs_from_the_option_or_the_environment(runner, monkeypatch):
    import truststore

    from reversesync.cli import cli

    injected = []
    monkeypatch.setattr(truststore, "inject_into_ssl", lambda: injected.append(True))
    assert runner.invoke(cli, ["--system-certs", "runs", "--help"]).exit_code == 0
    monkeypatch.setenv("REVERSESYNC_SYSTEM_CERTS", "1")
    assert runner.invoke(cli, ["runs", "--help"]).exit_code == 0
    monkeypatch.delenv("REVERSESYNC_SYSTEM_CERTS")
    assert runner.invoke(cli, ["runs", "--help"]).exit_code == 0
    assert injected == [True, True]


def test_system_certs_without_truststore_says_how_to_install_it(runner, monkeypatch):
    import sys

    from reversesync.cli import cli

    monkeypatch.setitem(sys.modules, "truststore", None)  # import fails as if it were not installed
    result = runner.invoke(cli, ["--system-certs", "runs"])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == ('Error: --system-certs needs the truststore package: pip install '
                                              '"reversesync[system-certs]" (or pip install truststore).')
