"""Sandbox: the stand-in Iconik a client talks to. Its settings (credentials, roles, latency, rate, faults, index
lag, what a PATCH does), its lifecycle (start on a free port of 127.0.0.1, stop), the request log, and the
writes it applies late. It answers through http_server and api, over a Catalogue; its methods for tests only
are in test_hooks."""

import random
import threading
import time
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .catalogue import Catalogue
from .faults import Faults
from .http_server import Server, make_server
from .index import DEFAULT_INDEX_LAG
from .rate import ICONIK_RATE, RateLimiter
from .schema import ALL_ROLES, PATCH_MODES
from .test_hooks import LogEntry, TestHooks

if TYPE_CHECKING:
    from .api import Api

DEMO_APP_ID = "00000000-0000-4000-8000-00000000a99d"
DEMO_AUTH_TOKEN = "sandbox-token-not-a-secret"


def mint_credentials() -> tuple[str, str]:
    """A fresh (App-ID, Auth-Token) pair for one sandbox start: never a value anyone else holds."""
    return str(uuid.uuid4()), str(uuid.uuid4())


class Sandbox(TestHooks):
    """The server: start() on a free port of 127.0.0.1, stop() to end. Usable from tests in-process.

    index_lag: seconds by which segment lists and search trail the stored records (0: never); list_lag and
    search_lag set each on its own (issue #19), each defaulting to index_lag.
    remaining: what RateLimit-Remaining counts, 'bucket' (left of this second's budget) or 'window' (left
    of the 20 s window); the header is on every answer, whether or not rate enforces a limit.
    patch: 'merge' (a segment PATCH changes only what it carries) or 'replace' (it resets the rest, like a PUT)."""

    def __init__(self, catalogue: Catalogue | None = None, *, port: int = 0, app_id: str = DEMO_APP_ID,
                 auth_token: str = DEMO_AUTH_TOKEN, roles: Iterable[str] = ALL_ROLES,
                 latency_ms: float = 0, jitter_ms: float = 0, rate: float | None = None,
                 faults: Faults | None = None, seed: int = 0, index_lag: float = DEFAULT_INDEX_LAG,
                 remaining: str = "bucket", patch: str = "merge", list_lag: float | None = None,
                 search_lag: float | None = None) -> None:
        if patch not in PATCH_MODES:
            raise ValueError(f"patch must be one of {', '.join(PATCH_MODES)}")
        super().__init__()
        self.catalogue = catalogue or Catalogue()
        self.patch = patch
        self.port = port
        self.app_id, self.auth_token = app_id, auth_token
        self.roles = list(roles)
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms
        # Always counting at Iconik's pace when rate is not set, so the header reads as Iconik's would.
        self.limiter = RateLimiter(rate or ICONIK_RATE, enforce=bool(rate), remaining=remaining)
        self.faults = faults or Faults()
        self.seed = seed
        self.list_lag = float(index_lag if list_lag is None else list_lag)
        self.search_lag = float(index_lag if search_lag is None else search_lag)
        self.log: list[LogEntry] = []  # (method, path, status) of every request, in arrival order
        self.bodies: list[tuple[str, str, Any]] = []  # (method, path, parsed JSON body) of each that carried one
        self.late_writes: list[dict[str, Any]] = []  # {"method", "path", "delay_ms", "status"}: applied after a drop
        self.search_options: list[dict[str, bool]] = []  # {"generate_signed_url", "save_search_history"} per search
        self.log_lock = threading.Lock()
        self._seen: dict[tuple[str, str], int] = {}
        self._timers: list[threading.Timer] = []
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running: start() it first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "Sandbox":
        self._server = make_server(self, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="iconik-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; late writes not yet applied never will be (the backend went away with them)."""
        with self.log_lock:
            for timer in self._timers:
                timer.cancel()
            for entry in self.late_writes:
                if entry["status"] is None:
                    entry["status"] = "cancelled"
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def list_lag(self) -> float:
        """Seconds by which segment lists trail the stored records."""
        return self._list_lag

    @list_lag.setter
    def list_lag(self, seconds: float) -> None:
        self._list_lag = float(seconds)
        self._spread()

    @property
    def search_lag(self) -> float:
        """Seconds by which search answers trail the stored records."""
        return self._search_lag

    @search_lag.setter
    def search_lag(self, seconds: float) -> None:
        self._search_lag = float(seconds)
        self._spread()

    @property
    def index_lag(self) -> float:
        """The longer of the two lags: everything the index shows is caught up this long after the last write.
        Setting it sets both."""
        return max(self.list_lag, self.search_lag)

    @index_lag.setter
    def index_lag(self, seconds: float) -> None:
        self._list_lag = self._search_lag = float(seconds)
        self._spread()

    def _spread(self) -> None:
        # The index keeps old versions long enough for the reader that trails more.
        if hasattr(self, "_list_lag") and hasattr(self, "_search_lag"):
            with self.catalogue.lock:
                self.catalogue.index.spread = abs(self._list_lag - self._search_lag)

    # --- for the server: time, the log, draws, late writes ------------------------------------------

    def index_time(self, reader: str = "list") -> float:
        """The moment the index reflects for a reader ('list': segment lists, 'search': the batch search), on
        time.monotonic()'s clock: list_lag or search_lag seconds ago."""
        return time.monotonic() - (self.search_lag if reader == "search" else self.list_lag)

    def record_request(self, method: str, path: str) -> int:
        """Log a request as it arrives, its status unknown yet; returns its number (from 1) for set_status."""
        with self.log_lock:
            self.log.append((method, path, None))
            return len(self.log)

    def set_status(self, count: int, status: int | str) -> None:
        with self.log_lock:
            method, path, _ = self.log[count - 1]
            self.log[count - 1] = (method, path, status)

    def record_body(self, method: str, path: str, body: Any) -> None:
        with self.log_lock:
            self.bodies.append((method, path, body))

    def record_search(self, options: dict[str, bool]) -> None:
        with self.log_lock:
            self.search_options.append(options)

    def draw(self, method: str, path: str) -> random.Random:
        """A random draw for this request, the same for the nth time a method and path are requested."""
        with self.log_lock:
            nth = self._seen[(method, path)] = self._seen.get((method, path), 0) + 1
        return random.Random(f"{self.seed}:{method}:{path}:{nth}")

    def apply_later(self, api: "Api", delay_ms: float) -> None:
        """Apply a write delay_ms from now, as a backend that finishes after the client gave up."""
        entry: dict[str, Any] = {"method": api.method, "path": api.path, "delay_ms": delay_ms, "status": None}

        def apply() -> None:
            status, _ = api.answer()
            with self.log_lock:
                entry["status"] = status

        timer = threading.Timer(delay_ms / 1000.0, apply)
        timer.daemon = True
        with self.log_lock:
            self.late_writes.append(entry)
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def late_write_timers(self) -> list[threading.Timer]:
        """The timers of late writes, some maybe done: settle waits for them."""
        with self.log_lock:
            return list(self._timers)
