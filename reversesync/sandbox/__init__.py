"""A local stand-in for Iconik on 127.0.0.1: the endpoints reversesync uses, with Iconik's behaviour,
its limits, and faults on demand. Good enough to rehearse a production run on a copy of the sheet.

Where the real service differs from a naive model, the sandbox does what Iconik does (ICONIK-FACTS 7):
segment lists and search come from an index that trails the stored records, a write can land after its
answer was lost, editing a segment that backs a SUBCLIP moves the subclip, assets come in every type and
some answer 403, and every answer carries RateLimit-Remaining.

Segments follow the live schema that Iconik's own SDK shows (ICONIK-FACTS 8): every editable field of
EditSegmentSchema, and for tests fields Iconik may add later (Catalogue extra_fields); a PUT replaces them all
while a PATCH changes only what it carries (Sandbox patch='replace' plays a PATCH that does not); a soft delete
leaves a segment readable, and listed, with status DELETED; statuses are ACTIVE, AWAITED and DELETED.

Sandbox's test hooks, marked as such, script answers (force) and let a person edit, create or delete segments
while a client runs (person_edits, person_creates, person_deletes), as through Iconik's UI."""

import copy
import dataclasses
import http.server
import json
import math
import random
import re
import sys
import threading
import time
import urllib.parse
import uuid

from .catalogue import Catalogue
from .faults import Faults
from .index import DEFAULT_INDEX_LAG
from .rate import ICONIK_RATE, REMAINING_READINGS, WINDOW_SECONDS, RateLimiter
from .schema import (
    ALL_ROLES,
    ASSET_STATUSES,
    ASSET_TYPES,
    EDITABLE_DEFAULTS,
    OTHER_ASSET_TYPES,
    PATCH_MODES,
    READ_ONLY_ON_EDIT,
    READ_ONLY_SEGMENT_FIELDS,
    SEGMENT_STATUSES,
    SEGMENT_TYPES,
)
from .seeding import DEFAULT_MIX, EXPECTED, SCENARIOS
from .state import load_state, state_problem, write_state

__all__ = ["ALL_ROLES", "ASSET_STATUSES", "ASSET_TYPES", "DEFAULT_INDEX_LAG", "DEFAULT_MIX", "DEFAULT_PER_PAGE",
           "DEMO_APP_ID", "DEMO_AUTH_TOKEN", "EDITABLE_DEFAULTS", "EXPECTED", "FORBIDDEN_MESSAGE", "FORCED_ACTIONS",
           "ICONIK_RATE", "MAX_PER_PAGE", "OTHER_ASSET_TYPES", "PATCH_MODES", "READ_ONLY_ON_EDIT",
           "READ_ONLY_SEGMENT_FIELDS", "REMAINING_READINGS", "SCENARIOS", "SEGMENT_STATUSES", "SEGMENT_TYPES",
           "WINDOW_SECONDS", "WRITE_METHODS", "Catalogue", "Faults", "RateLimiter", "Sandbox", "load_state",
           "mint_credentials", "state_problem", "write_state"]

DEMO_APP_ID = "00000000-0000-4000-8000-00000000a99d"
DEMO_AUTH_TOKEN = "sandbox-token-not-a-secret"
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 1000  # segment lists and search both take per_page up to 1000 (ICONIK-FACTS 7.6, 7.9)
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
FORCED_ACTIONS = (None, "drop_before", "drop_after", "apply_late")

FORBIDDEN_MESSAGE = "You do not have permission to access this asset"

_UUID_PART = r"[0-9a-fA-F-]{36}"
_ROUTES = [
    ("token", re.compile(r"^/API/auth/v1/auth/token/$")),
    ("user", re.compile(r"^/API/users/v1/users/current/$")),
    ("roles", re.compile(r"^/API/users/v1/users/current/roles/$")),
    ("asset", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/$")),
    ("segments", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/$")),
    ("segments_of_type", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/(?P<type>[A-Z_]+)/$")),
    ("segment", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/(?P<segment>{_UUID_PART})/$")),
    ("search", re.compile(r"^/API/search/v1/search/$")),
    ("state", re.compile(r"^/_sandbox/state/$")),
]


def mint_credentials():
    """A fresh (App-ID, Auth-Token) pair for one sandbox start: never a value anyone else holds."""
    return str(uuid.uuid4()), str(uuid.uuid4())


@dataclasses.dataclass
class _Forced:
    """One scripted answer (Sandbox.force)."""

    method: str
    pattern: re.Pattern
    status: int = None
    body: object = None
    headers: dict = None
    action: str = None
    times: int = 1
    delay_ms: float = None
    on_answer: object = None


class Sandbox:
    """The server: start() on a free port of 127.0.0.1, stop() to end. Usable from tests in-process.

    index_lag: seconds by which segment lists and search trail the stored records (0: never).
    remaining: what RateLimit-Remaining counts, 'bucket' (left of this second's budget) or 'window' (left
    of the 20 s window); the header is on every answer, whether or not rate enforces a limit.
    patch: 'merge' (a segment PATCH changes only what it carries) or 'replace' (it resets the rest, like a PUT)."""

    def __init__(self, catalogue=None, *, port=0, app_id=DEMO_APP_ID, auth_token=DEMO_AUTH_TOKEN, roles=ALL_ROLES,
                 latency_ms=0, jitter_ms=0, rate=None, faults=None, seed=0, index_lag=DEFAULT_INDEX_LAG,
                 remaining="bucket", patch="merge"):
        if patch not in PATCH_MODES:
            raise ValueError(f"patch must be one of {', '.join(PATCH_MODES)}")
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
        self.index_lag = float(index_lag)
        self.log = []  # (method, path, status) of every request, in arrival order
        self.bodies = []  # (method, path, parsed JSON body) of every request that carried one
        self.late_writes = []  # {"method", "path", "delay_ms", "status"}: writes applied after their drop
        self.search_options = []  # {"generate_signed_url": bool, "save_search_history": bool} per search
        self._log_lock = threading.Lock()
        self._seen = {}
        self._forced = []
        self._timers = []
        self.hooks = []  # callables (method, path) run as each request arrives: tests change the world with them
        self._server = None
        self._thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self):
        sandbox = self

        class Handler(_Handler):
            pass

        Handler.sandbox = sandbox
        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="iconik-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving; late writes not yet applied never will be (the backend went away with them)."""
        with self._log_lock:
            for timer in self._timers:
                timer.cancel()
            for entry in self.late_writes:
                if entry["status"] is None:
                    entry["status"] = "cancelled"
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- test hooks ---------------------------------------------------------------------------------
    # For tests only: what they read of the sandbox, the answers they script, and the people who change the
    # catalogue while a client runs. A person's change goes through the catalogue as an API write would:
    # date_modified moves and the index shows it index_lag later.

    def requests(self, method=None):
        with self._log_lock:
            return [entry for entry in self.log if method is None or entry[0] == method]

    def force(self, method, path_pattern, status=None, body=None, headers=None, action=None, times=1,
              delay_ms=None, on_answer=None):
        """Script the next `times` answers to matching requests: a status and body, or an action:
        'drop_before' (close without applying), 'drop_after' (apply, then close without answering) or
        'apply_late' (close at once, apply delay_ms later; default a draw between the late_*_ms faults).

        on_answer, if given, is called with no arguments right before each such answer goes out (or its
        connection is closed): what happens in Iconik while the client waits, e.g. a person's edit."""
        if action not in FORCED_ACTIONS:
            raise ValueError(f"action {action!r}; one of {', '.join(map(str, FORCED_ACTIONS))}")
        if on_answer is not None and not callable(on_answer):
            raise ValueError("on_answer must be callable with no arguments")
        with self._log_lock:
            self._forced.append(_Forced(method, re.compile(path_pattern), status, body, headers or {}, action, times,
                                        delay_ms, on_answer))

    def _take_forced(self, method, path):
        with self._log_lock:
            for entry in self._forced:
                if entry.method == method and entry.pattern.search(path) and entry.times > 0:
                    entry.times -= 1
                    return entry
        return None

    def generic_segments(self, asset_id, deleted=False):
        """The asset's stored GENERIC segments (fresh, not the index): the truth a test checks against.

        Soft-deleted ones (status DELETED) are in Iconik's bin, not live, so they are left out unless deleted."""
        with self.catalogue.lock:
            return [dict(s) for s in self.catalogue.segments.get(asset_id, []) if s["segment_type"] == "GENERIC"
                    and (deleted or s.get("status") != "DELETED")]

    def indexed_segments(self, asset_id, segment_type=None):
        """The asset's segments as a segment list (the index) shows them now."""
        return [dict(s) for s in self.catalogue.indexed_segments(asset_id, self.index_time())
                if segment_type is None or s["segment_type"] == segment_type]

    def stored_segment(self, segment_id):
        """A copy of the stored segment (fresh, not the index; soft-deleted ones too), or None."""
        with self.catalogue.lock:
            return copy.deepcopy(self.catalogue.find_segment(segment_id))

    def person_edits(self, segment_id, **fields):
        """A person edits a stored segment now, as through Iconik's UI: only the given fields change (and a
        subclip its range backs moves with it). Returns a copy of the segment after the edit.

        Besides the editable fields, subclip_id may be set: a person who makes a subclip from the segment
        links it so, though no API body may carry it."""
        self._check_fields(fields, also=("subclip_id",))
        with self.catalogue.lock:
            segment = self._stored(segment_id)
            return copy.deepcopy(self.catalogue.edit_segment(segment, fields))

    def person_deletes(self, segment_id, soft=True):
        """A person deletes a stored segment now: soft keeps it with status DELETED and returns a copy of it;
        otherwise it is removed and None returned."""
        with self.catalogue.lock:
            return copy.deepcopy(self.catalogue.delete_segment(self._stored(segment_id), soft=soft))

    def person_creates(self, asset_id, segment_type, start, end, **fields):
        """A person creates a segment on an asset now. Returns a copy of the new segment."""
        if segment_type not in SEGMENT_TYPES:
            raise ValueError(f"segment type {segment_type!r}; one of {', '.join(SEGMENT_TYPES)}")
        self._check_fields(fields)
        with self.catalogue.lock:
            if asset_id not in self.catalogue.assets:
                raise KeyError(f"no asset {asset_id} in the sandbox")
            return copy.deepcopy(self.catalogue.create_segment(asset_id, segment_type, start, end, **fields))

    def _stored(self, segment_id):
        segment = self.catalogue.find_segment(segment_id)
        if segment is None:
            raise KeyError(f"no segment {segment_id} in the sandbox")
        return segment

    def _check_fields(self, fields, also=()):
        """A typo in a test's field name would otherwise add a field Iconik does not have."""
        unknown = sorted(set(fields) - set(self.catalogue.editable_defaults()) - {"segment_type", *also})
        if unknown:
            raise ValueError(f"not editable segment fields: {', '.join(unknown)}")
        if "status" in fields and fields["status"] not in SEGMENT_STATUSES:
            raise ValueError(f"segment status {fields['status']!r}; one of {', '.join(SEGMENT_STATUSES)}")

    def settle(self, timeout=30.0):
        """Wait until every late write has been applied and the index shows every stored change."""
        deadline = time.monotonic() + timeout
        with self._log_lock:
            timers = list(self._timers)
        for timer in timers:
            timer.join(max(0.0, deadline - time.monotonic()))
        wait = self.catalogue.last_change + self.index_lag - time.monotonic()
        if wait > 0:
            time.sleep(min(wait + 0.001, max(0.0, deadline - time.monotonic())))

    # --- plumbing ----------------------------------------------------------------------------------

    def index_time(self):
        """The moment the index reflects: index_lag seconds ago, on time.monotonic()'s clock."""
        return time.monotonic() - self.index_lag

    def _record(self, method, path, status):
        with self._log_lock:
            self.log.append((method, path, status))
            return len(self.log)

    def _set_status(self, count, status):
        with self._log_lock:
            method, path, _ = self.log[count - 1]
            self.log[count - 1] = (method, path, status)

    def _draw(self, method, path):
        """A random draw for this request, the same for the nth time a method and path are requested."""
        with self._log_lock:
            nth = self._seen[(method, path)] = self._seen.get((method, path), 0) + 1
        return random.Random(f"{self.seed}:{method}:{path}:{nth}")

    def _apply_later(self, api, delay_ms):
        """Apply a write delay_ms from now, as a backend that finishes after the client gave up."""
        entry = {"method": api.method, "path": api.path, "delay_ms": delay_ms, "status": None}

        def apply():
            status, _ = api.answer()
            with self._log_lock:
                entry["status"] = status

        timer = threading.Timer(delay_ms / 1000.0, apply)
        timer.daemon = True
        with self._log_lock:
            self.late_writes.append(entry)
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that was killed mid-request (the chaos test does it on purpose) is not a sandbox error.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server_version = "IconikSandbox/1"
    sandbox = None
    _on_answer = None

    def log_message(self, *args):  # the request log is kept in Sandbox.log, not printed
        pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    # --- plumbing ----------------------------------------------------------------------------------

    def _handle(self, method):
        sandbox = self.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parsed = urllib.parse.urlsplit(self.path)
        path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
        route, match = self._route(path)
        write = method in WRITE_METHODS and route != "search"
        rng = sandbox._draw(method, path)
        faults = sandbox.faults
        delay = sandbox.latency_ms + (rng.uniform(-1, 1) * sandbox.jitter_ms if sandbox.jitter_ms else 0)
        # slow delays the answer, not the work: a write is applied at arrival, then its answer is late.
        self._slow = faults.slow_ms / 1000.0 if faults.slow and rng.random() < faults.slow else 0.0
        if delay > 0:
            time.sleep(delay / 1000.0)
        count = sandbox._record(method, path, None)
        for hook in list(sandbox.hooks):
            hook(method, path)
        forced = sandbox._take_forced(method, path)
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
        if route is None:
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
            with sandbox._log_lock:
                sandbox.bodies.append((method, path, body))
        api = _Api(sandbox, method, route, match, query, body, path)
        if forced_action == "apply_late" or (write and faults.apply_late and rng.random() < faults.apply_late):
            delay_ms = forced.delay_ms if forced and forced.delay_ms is not None else \
                rng.uniform(faults.late_min_ms, faults.late_max_ms)
            sandbox._apply_later(api, delay_ms)
            return self._drop(count)
        status, payload = api.answer()
        if forced_action == "drop_after" or (
                write and status < 300 and faults.drop_after and rng.random() < faults.drop_after):
            return self._drop(count)
        self._answer(status, payload, count)

    def _before_sending(self):
        """Run a forced answer's on_answer: what happens in Iconik between the work and the answer."""
        on_answer, self._on_answer = self._on_answer, None
        if on_answer is not None:
            on_answer()

    def _route(self, path):
        for name, pattern in _ROUTES:
            match = pattern.match(path)
            if match:
                return name, match.groupdict()
        return None, None

    def _answer(self, status, payload, count, headers=None):
        if self._slow:
            time.sleep(self._slow)
        self._before_sending()
        data = b"" if status == 204 else json.dumps(payload).encode()
        # Logged before it goes out: a client that has its answer must find it in the log (Sandbox.requests).
        self.sandbox._set_status(count, status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("RateLimit-Remaining", str(self._remaining))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self, count):
        self._before_sending()
        self.close_connection = True
        self.sandbox._set_status(count, "dropped")


class _Api:
    """Iconik's answers for one request: (status, JSON body)."""

    def __init__(self, sandbox, method, route, match, query, body, path=""):
        self.sandbox, self.method, self.route, self.match = sandbox, method, route, match
        self.query, self.body, self.path = query, body, path
        self.catalogue = sandbox.catalogue

    def answer(self):
        handler = getattr(self, f"{self.route}_{self.method.lower()}", None)
        if handler is None:
            return 405, {"errors": [f"{self.method} is not allowed here"]}
        with self.catalogue.lock:
            return handler()

    def _needs(self, role):
        if role not in self.sandbox.roles:
            return 403, {"errors": [f"You do not have the role {role}"]}
        return None

    def _asset(self, role):
        """(asset, None), or (None, the error answer) when the role is missing, the asset unknown or forbidden."""
        refused = self._needs(role)
        if refused:
            return None, refused
        asset_id = self.match["asset"].lower()
        asset = self.catalogue.assets.get(asset_id)
        if asset is None:
            return None, (404, {"errors": ["Asset not found"]})
        if asset_id in self.catalogue.forbidden:
            return None, (403, {"errors": [FORBIDDEN_MESSAGE]})
        return asset, None

    def _flag(self, name, default):
        """A boolean query parameter: (value, None) or (None, a 400 answer)."""
        text = (self.query.get(name) or [None])[0]
        if text is None:
            return default, None
        if text.lower() not in ("true", "false", "1", "0"):
            return None, (400, {"errors": {name: "Not a valid boolean."}})
        return text.lower() in ("true", "1"), None

    def _page(self, items, copy_items=True):
        """One page of items as Iconik lists them, or a 400/404 answer: (page body, None) / (None, answer)."""
        try:
            per_page = min(MAX_PER_PAGE, max(1, int((self.query.get("per_page") or [DEFAULT_PER_PAGE])[0])))
            page = max(1, int((self.query.get("page") or [1])[0]))
        except ValueError:
            return None, (400, {"errors": {"per_page": "must be a whole number"}})
        pages = max(1, math.ceil(len(items) / per_page))
        if page > pages:
            return None, (404, {"errors": ["Page not found"]})
        shown = items[(page - 1) * per_page: page * per_page]
        return {"objects": copy.deepcopy(shown) if copy_items else shown, "page": page, "pages": pages,
                "per_page": per_page, "total": len(items)}, None

    # --- users and auth -----------------------------------------------------------------------------

    def token_get(self):
        return 200, {"app_id": self.sandbox.app_id, "expires": None}

    def user_get(self):
        # UserSchema always carries type (ICONIK-FACTS 8.5).
        return 200, {"id": "7f3d2c10-0000-4000-8000-000000000002", "email": "sync@sandbox.invalid",
                     "first_name": "Sandbox", "last_name": "Sync", "status": "ACTIVE", "type": "STANDARD"}

    def roles_get(self):
        return 200, {"objects": list(self.sandbox.roles)}

    def state_get(self):
        return 200, self.catalogue.dump()

    # --- assets and segments ------------------------------------------------------------------------

    def asset_get(self):
        asset, error = self._asset("can_read_assets")
        return error or (200, asset)

    def segments_get(self, segment_type=None):
        """A segment list: it comes from the search index, so it shows the segments as they were index_lag
        seconds ago (ICONIK-FACTS 7.1)."""
        asset, error = self._asset("can_read_segments")
        if error:
            return error
        segment_type = segment_type or (self.query.get("segment_type") or [None])[0]
        status = (self.query.get("status") or [None])[0]
        if status is not None and status not in SEGMENT_STATUSES:
            return 400, {"errors": {"status": f"one of {', '.join(SEGMENT_STATUSES)}"}}
        # Soft-deleted segments stay listed, with status DELETED, unless the status filter leaves them out.
        found = [s for s in self.catalogue.indexed_segments(asset["id"], self.sandbox.index_time())
                 if (segment_type is None or s["segment_type"] == segment_type)
                 and (status is None or s.get("status") == status)]
        body, error = self._page(found)
        if error:
            return error
        body["next_url"] = None
        if body["page"] < body["pages"]:
            next_query = dict((k, v[0]) for k, v in self.query.items())
            next_query.update(page=body["page"] + 1, per_page=body["per_page"])
            body["next_url"] = f"{self.path}?{urllib.parse.urlencode(next_query)}"
        return 200, body

    def segments_of_type_get(self):
        if self.match["type"] not in SEGMENT_TYPES:
            return 400, {"errors": {"segment_type": f"unknown segment type {self.match['type']}"}}
        return self.segments_get(self.match["type"])

    def segments_post(self):
        asset, error = self._asset("can_create_segments")
        if error:
            return error
        problem = _check_segment_body(self.body, READ_ONLY_SEGMENT_FIELDS)
        if problem:
            return 400, {"errors": problem}
        if asset["type"] == "SUBCLIP" and asset.get("original_asset_id") in self.catalogue.assets:
            # Iconik files a segment posted on a SUBCLIP under its parent (ICONIK-FACTS 7.3).
            asset = self.catalogue.assets[asset["original_asset_id"]]
            if asset["id"] in self.catalogue.forbidden:
                return 403, {"errors": [FORBIDDEN_MESSAGE]}
        editable = self.catalogue.editable_defaults()
        fields = {k: v for k, v in self.body.items() if k in editable}
        segment = self.catalogue.create_segment(asset["id"], self.body["segment_type"],
                                                self.body.get("time_start_milliseconds"),
                                                self.body.get("time_end_milliseconds"),
                                                user_first_name="Sync", user_last_name="Bot", **fields)
        return 201, copy.deepcopy(segment)

    def _segment(self, role):
        asset, error = self._asset(role)
        if error:
            return None, error
        for segment in self.catalogue.segments.get(asset["id"], []):
            if segment["id"] == self.match["segment"].lower():
                return segment, None
        return None, (404, {"errors": ["Segment not found"]})

    def segment_get(self):
        segment, missing = self._segment("can_read_segments")
        return missing or (200, copy.deepcopy(segment))

    def segment_put(self, merge=False):
        segment, missing = self._segment("can_write_segments")
        if missing:
            return missing
        problem = _check_segment_body(self.body, READ_ONLY_ON_EDIT)
        if problem:
            return 400, {"errors": problem}
        # A PUT replaces every editable field of the live schema, extra fields included: what the body leaves
        # out is reset (ICONIK-FACTS 8.1).
        editable = self.catalogue.editable_defaults()
        fields = {k: v for k, v in self.body.items() if k in editable or k == "segment_type"}
        self.catalogue.edit_segment(segment, fields, replace=not merge)
        return 200, copy.deepcopy(segment)

    def segment_patch(self):
        # A PATCH changes only what it carries, unless the sandbox plays a PATCH that replaces (patch="replace").
        return self.segment_put(merge=self.sandbox.patch == "merge")

    def segment_delete(self):
        segment, missing = self._segment("can_delete_segments")
        if missing:
            return missing
        # Absent, the sandbox removes the segment as it always did: what Iconik does then is not documented
        # (its SDK always sends soft_delete, True unless told, ICONIK-FACTS 8.3).
        soft, error = self._flag("soft_delete", False)
        if error:
            return error
        self.catalogue.delete_segment(segment, soft=soft)
        return 204, {}

    # --- search -------------------------------------------------------------------------------------

    SEARCH_TERMS = ("id", "asset_id", "segment_type", "type", "status")

    def search_post(self):
        """Iconik's batch search, for the two document types and the terms reversesync uses. Like every
        index read it trails the store by index_lag."""
        refused = self._needs("can_search")
        if refused:
            return refused
        body = self.body if isinstance(self.body, dict) else {}
        doc_types = body.get("doc_types") or []
        if doc_types not in (["assets"], ["segments"]):
            return 400, {"errors": {"doc_types": "the sandbox searches one of assets, segments"}}
        refused = self._needs("can_read_assets" if doc_types == ["assets"] else "can_read_segments")
        if refused:
            return refused
        options = {}
        for name in ("generate_signed_url", "save_search_history"):
            options[name], error = self._flag(name, True)
            if error:
                return error
        wanted = {}
        for term in (body.get("filter") or {}).get("terms") or []:
            values = term.get("value_in") or ([term["value"]] if "value" in term else [])
            wanted[term.get("name")] = {str(value) for value in values}
        unknown = set(wanted) - set(self.SEARCH_TERMS)
        if unknown:
            return 400, {"errors": {"filter": f"unsupported terms {sorted(unknown)}"}}
        include = body.get("include_fields")
        if include is not None and not (isinstance(include, list) and all(isinstance(f, str) for f in include)):
            return 400, {"errors": {"include_fields": "must be a list of field names"}}
        with self.sandbox._log_lock:
            self.sandbox.search_options.append(options)
        as_of = self.sandbox.index_time()
        pick = self._assets_indexed if doc_types == ["assets"] else self._segments_indexed
        found = pick(wanted, as_of)
        hits = [_document(item, doc_types[0], include) for item in found
                if all(str(item.get(name)) in values for name, values in wanted.items())]
        body, error = self._page(hits, copy_items=False)
        return error or (200, body)

    def _assets_indexed(self, wanted, as_of):
        """Candidate asset documents: by id through the catalogue's dict, so a batch costs its ids only."""
        ids = wanted["id"] if "id" in wanted else self.catalogue.assets
        found = (self.catalogue.indexed_asset(asset_id, as_of) for asset_id in ids)
        return [a for a in found if a is not None and a["id"] not in self.catalogue.forbidden]

    def _segments_indexed(self, wanted, as_of):
        """Candidate segment documents: by asset id or id through dicts, never a scan when either is given."""
        forbidden = self.catalogue.forbidden
        if "id" in wanted:
            found = (self.catalogue.indexed_segment(segment_id, as_of) for segment_id in wanted["id"])
            return [s for s in found if s is not None and s["asset_id"] not in forbidden]
        asset_ids = wanted["asset_id"] if "asset_id" in wanted else list(self.catalogue.segments)
        return [s for asset_id in asset_ids if asset_id not in forbidden
                for s in self.catalogue.indexed_segments(asset_id, as_of)]


def _document(item, doc_type, include):
    """A search document (SegmentElasticSchema and kin): unset fields are absent, include_fields trims it."""
    document = {key: copy.deepcopy(value) for key, value in item.items() if value is not None
                and (include is None or key in include)}
    document["object_type"] = doc_type
    return document


def _check_segment_body(body, read_only):
    if not isinstance(body, dict):
        return ["The body must be a JSON object"]
    problems = {}
    if body.get("segment_type") not in SEGMENT_TYPES:
        problems["segment_type"] = f"required, one of {', '.join(SEGMENT_TYPES)}"
    if "status" in body and body["status"] not in SEGMENT_STATUSES:
        problems["status"] = f"one of {', '.join(SEGMENT_STATUSES)}"
    for field in ("time_start_milliseconds", "time_end_milliseconds"):
        value = body.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems[field] = "must be an integer"
    for field in read_only:
        if field in body:
            problems[field] = "is read-only"
    return problems
