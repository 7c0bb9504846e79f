"""The HTTP side: the threaded server on 127.0.0.1 and the handler that takes each request through what happens
before Iconik answers it (latency, the request log, tests' hooks and scripted answers, the rate budget,
authentication, routing, injected faults, late writes) and then sends the Api's answer, or drops the
connection. Which path is which endpoint is here (ROUTES); what each endpoint answers is api.py's."""

import http.server
import json
import math
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .api import Api

if TYPE_CHECKING:  # the sandbox makes the server and hands it itself
    from .service import Sandbox

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

_UUID_PART = r"[0-9a-fA-F-]{36}"
ROUTES = [
    ("token", re.compile(r"^/API/auth/v1/auth/token/$")),
    ("user", re.compile(r"^/API/users/v1/users/current/$")),
    ("roles", re.compile(r"^/API/users/v1/users/current/roles/$")),
    ("asset", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/$")),
    ("segments", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/$")),
    ("segments_of_type",
     re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/(?P<type>[A-Z_]+)/$")),
    ("segment",
     re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/(?P<segment>{_UUID_PART})/$")),
    ("search", re.compile(r"^/API/search/v1/search/$")),
    ("state", re.compile(r"^/_sandbox/state/$")),
]


def make_server(sandbox: "Sandbox", port: int) -> "Server":
    """A server on 127.0.0.1:port (0: a free one) whose handlers answer for sandbox; not serving yet."""

    class Handler(RequestHandler):
        pass

    Handler.sandbox = sandbox  # a class per sandbox: the server makes a handler per connection
    server = Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def reuse_address(os_name: str = os.name) -> bool:
    """SO_REUSEADDR only where it means "rebind after TIME_WAIT": on Windows it lets a second server bind a port
    already in use and steal its connections, where the second sandbox must fail with "pick another --port"."""
    return os_name != "nt"


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = reuse_address()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that was killed mid-request (the chaos test does it on purpose) is not a sandbox error.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server_version = "IconikSandbox/1"
    sandbox: "Sandbox"  # set on the per-sandbox subclass (make_server)
    _on_answer: Callable[[], None] | None = None
    _slow: float  # seconds by which to delay this answer (the slow fault)
    _remaining: int  # this request's reading of the rate budget, for RateLimit-Remaining

    def log_message(self, format: str, *args: Any) -> None:  # the request log is Sandbox.log, not printed
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # --- plumbing ----------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        sandbox = self.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parsed = urllib.parse.urlsplit(self.path)
        path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
        route, match = _route(path)
        write = method in WRITE_METHODS and route != "search"
        rng = sandbox.draw(method, path)
        faults = sandbox.faults
        delay = sandbox.latency_ms + (rng.uniform(-1, 1) * sandbox.jitter_ms if sandbox.jitter_ms else 0)
        # slow delays the answer, not the work: a write is applied at arrival, then its answer is late.
        self._slow = faults.slow_ms / 1000.0 if faults.slow and rng.random() < faults.slow else 0.0
        if delay > 0:
            time.sleep(delay / 1000.0)
        count = sandbox.record_request(method, path)
        for hook in list(sandbox.hooks):
            hook(method, path)
        forced = sandbox.take_forced(method, path)
        self._on_answer = forced.on_answer if forced else None  # one handler serves every request of a connection
        # Every request counts against the budget and every answer reports it, as Iconik's do; a
        # scripted answer is never refused in its place.
        allowed, self._remaining, retry_after = sandbox.limiter.take(enforce=forced is None)
        if forced and forced.status is not None:
            payload = forced.body if forced.body is not None else {"errors": ["forced"]}
            return self._answer(forced.status, payload, count, forced.headers)
        forced_action = forced.action if forced else None
        if forced_action == "drop_before":
            return self._drop(count)
        if self.headers.get("App-ID") != sandbox.app_id or self.headers.get("Auth-Token") != sandbox.auth_token \
                or (faults.revoke_after and count > faults.revoke_after):
            return self._answer(401, {"errors": ["Authentication failed: check App-ID and Auth-Token"]}, count)
        if not allowed:
            return self._answer(429, {"errors": ["Too many requests"]}, count,
                                {"Retry-After": str(max(1, math.ceil(retry_after)))})
        if route is None or match is None:
            return self._answer(404, {"errors": [f"no such endpoint {path}"]}, count)
        if path.startswith("/API/assets") and faults.server_error and rng.random() < faults.server_error:
            return self._answer(503, {"errors": ["Service temporarily unavailable"]}, count)
        if write and faults.conflict and rng.random() < faults.conflict:
            return self._answer(409, {"errors": ["Segment was modified by another request"]}, count)
        if write and faults.drop_before and rng.random() < faults.drop_before:
            return self._drop(count)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._answer(400, {"errors": ["Request body is not JSON"]}, count)
        if raw:
            sandbox.record_body(method, path, body)
        api = Api(sandbox, method, route, match, query, body, path)
        if forced_action == "apply_late" or (write and faults.apply_late and rng.random() < faults.apply_late):
            delay_ms = forced.delay_ms if forced and forced.delay_ms is not None else \
                rng.uniform(faults.late_min_ms, faults.late_max_ms)
            sandbox.apply_later(api, delay_ms)
            return self._drop(count)
        status, payload = api.answer()
        if forced_action == "drop_after" or (
                write and status < 300 and faults.drop_after and rng.random() < faults.drop_after):
            return self._drop(count)
        self._answer(status, payload, count)

    def _before_sending(self) -> None:
        """Run a forced answer's on_answer: what happens in Iconik between the work and the answer."""
        on_answer, self._on_answer = self._on_answer, None
        if on_answer is not None:
            on_answer()

    def _answer(self, status: int, payload: Any, count: int, headers: dict[str, str] | None = None) -> None:
        if self._slow:
            time.sleep(self._slow)
        self._before_sending()
        data = b"" if status == 204 else json.dumps(payload).encode()
        # Logged before it goes out: a client that has its answer must find it in the log (Sandbox.requests).
        self.sandbox.set_status(count, status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("RateLimit-Remaining", str(self._remaining))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self, count: int) -> None:
        self._before_sending()
        self.close_connection = True
        self.sandbox.set_status(count, "dropped")


def _route(path: str) -> tuple[str | None, dict[str, str] | None]:
    for name, pattern in ROUTES:
        match = pattern.match(path)
        if match:
            return name, match.groupdict()
    return None, None
