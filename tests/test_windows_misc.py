"""Issue #18, the smaller Windows items, each exercised on Linux through the Windows code path."""

from reversesync.cli import cli
from reversesync.sandbox import Catalogue, Sandbox
from reversesync.sandbox.http_server import reuse_address


def test_on_windows_the_sandbox_never_shares_its_port():
    assert reuse_address("nt") is False  # SO_REUSEADDR there lets a second server steal the port
    assert reuse_address("posix") is True  # here it only allows a rebind after TIME_WAIT


def test_a_second_sandbox_on_a_taken_port_says_pick_another(runner):
    with Sandbox(Catalogue()) as first:
        port = first.url.rsplit(":", 1)[1].rstrip("/")
        result = runner.invoke(cli, ["sandbox", "--port", port])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; pick another --port.")
