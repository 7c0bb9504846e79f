"""A local stand-in for Iconik on 127.0.0.1: the endpoints reversesync uses, with Iconik's behaviour,
its limits, and faults on demand. Good enough to rehearse a production run on a copy of the sheet."""

import copy
import dataclasses
import datetime
import hashlib
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

from . import sources

DEMO_APP_ID = "00000000-0000-4000-8000-00000000a99d"
DEMO_AUTH_TOKEN = "sandbox-token-not-a-secret"
ALL_ROLES = ("can_read_assets", "can_read_segments", "can_create_segments", "can_write_segments",
             "can_delete_segments", "can_search")
SEGMENT_TYPES = ("MARKER", "QC", "GENERIC", "COMMENT", "TAG", "TRANSCRIPTION", "SCENE", "PERSON")
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 500

# Fields a client must never send (ICONIK-FACTS 3); the sandbox rejects them like a strict Iconik would.
READ_ONLY_SEGMENT_FIELDS = ("id", "asset_id", "date_created", "date_modified", "has_drawing", "subclip_id",
                            "user_first_name", "user_last_name", "user_photo")
READ_ONLY_ON_EDIT = READ_ONLY_SEGMENT_FIELDS + ("parent_id", "path", "top_level", "user_id")
EDITABLE_DEFAULTS = {
    "metadata": {}, "metadata_view_id": None, "segment_color": None, "segment_text": None,
    "segment_track": None, "segment_checked": False, "external_id": None, "drawing": None, "keyframe_id": None,
    "version_id": None, "status": "ACTIVE", "person_id": None, "project_id": None, "share_id": None,
    "share_user_email": None, "face_bounding_boxes": None, "transcription": None, "transcription_id": None,
    "time_start_milliseconds": None, "time_end_milliseconds": None,
}

# What each seeded asset looks like, and what reversesync should make of it.
SCENARIOS = {
    "no_segments": "ASSET without segments: create",
    "comments_only": "ASSET with only COMMENT and MARKER point segments (over several pages): create",
    "in_sync": "ASSET with one GENERIC segment holding the sheet's times: in sync",
    "differs": "ASSET with one GENERIC segment holding other times: update",
    "zero_length": "ASSET with one zero-length GENERIC segment: update",
    "two_one_equal": "ASSET with two GENERIC segments, one equal to the sheet: in sync",
    "two_none_equal": "ASSET with two GENERIC segments, neither equal: ambiguous",
    "subclip_equal": "SUBCLIP whose own times equal the sheet: in sync",
    "subclip_differs": "SUBCLIP whose own times differ: subclip_mismatch",
    "deleted": "ASSET with status DELETED: asset_deleted",
    "unknown": "no such asset (404): not_found",
}
DEFAULT_MIX = {"no_segments": 30, "comments_only": 10, "in_sync": 17, "differs": 5, "zero_length": 3,
               "two_one_equal": 3, "two_none_equal": 2, "subclip_equal": 12, "subclip_differs": 3,
               "deleted": 2, "unknown": 13}

_UUID_PART = r"[0-9a-fA-F-]{36}"
_ROUTES = [
    ("token", re.compile(r"^/API/auth/v1/auth/token/$")),
    ("user", re.compile(r"^/API/users/v1/users/current/$")),
    ("roles", re.compile(r"^/API/users/v1/users/current/roles/$")),
    ("asset", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/$")),
    ("segments", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/$")),
    ("segments_of_type", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/(?P<type>[A-Z]+)/$")),
    ("segment", re.compile(rf"^/API/assets/v1/assets/(?P<asset>{_UUID_PART})/segments/(?P<segment>{_UUID_PART})/$")),
    ("search", re.compile(r"^/API/search/v1/search/$")),
    ("state", re.compile(r"^/_sandbox/state/$")),
]


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


@dataclasses.dataclass
class Faults:
    """Per-request fault probabilities. Writes are POST, PUT and PATCH."""

    server_error: float = 0.0     # 503 on any request under /API/assets
    conflict: float = 0.0         # 409 on a write, not applied
    drop_before: float = 0.0      # a write's connection closed before it is applied
    drop_after: float = 0.0       # a write applied, then its connection closed with no answer
    slow: float = 0.0             # an answer delayed by slow_ms
    slow_ms: int = 2000
    revoke_after: int = 0         # after this many requests the token stops working (401); 0 = never

    _NAMES = {"5xx": "server_error", "409": "conflict", "drop_before": "drop_before",
              "drop_after": "drop_after", "slow": "slow", "slow_ms": "slow_ms", "revoke_after": "revoke_after"}

    @classmethod
    def parse(cls, spec):
        """'5xx=0.05,409=0.02,drop_before=0.01,drop_after=0.01,slow=0.01,slow_ms=3000,revoke_after=500'."""
        faults = cls()
        for part in filter(None, (p.strip() for p in (spec or "").split(","))):
            name, _, value = part.partition("=")
            field = cls._NAMES.get(name.strip())
            if field is None:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(cls._NAMES)}")
            setattr(faults, field, type(getattr(faults, field))(float(value)))
        return faults


class RateLimiter:
    """Iconik's limits as the sandbox enforces them: a bucket of `rate` per second holding one second's
    worth, and at most 20 x rate in any 20 s window."""

    def __init__(self, rate):
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.window = []
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self):
        """(allowed, remaining, retry_after_seconds)."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            while self.window and self.window[0] <= now - 20.0:
                self.window.pop(0)
            if len(self.window) >= 20 * self.rate:
                return False, 0, self.window[0] + 20.0 - now
            if self.tokens < 1.0:
                return False, 0, (1.0 - self.tokens) / self.rate
            self.tokens -= 1.0
            self.window.append(now)
            return True, int(self.tokens), 0.0


class Catalogue:
    """The assets and segments the sandbox holds, behind one lock."""

    def __init__(self):
        self.lock = threading.RLock()
        self.assets = {}
        self.segments = {}  # asset id -> [segment, ...] in creation order

    # --- building ---------------------------------------------------------------------------------

    def add_asset(self, asset_id=None, *, title="", type="ASSET", status="ACTIVE", start=None, end=None,
                  original_asset_id=None):
        asset_id = asset_id or str(uuid.uuid4())
        with self.lock:
            self.assets[asset_id] = {
                "id": asset_id, "title": title, "type": type, "status": status, "time_start_milliseconds": start,
                "time_end_milliseconds": end, "original_asset_id": original_asset_id,
                "original_segment_id": None, "date_created": _now(), "date_modified": _now(),
            }
            self.segments.setdefault(asset_id, [])
        return self.assets[asset_id]

    def add_segment(self, asset_id, segment_type, start, end, **fields):
        segment = dict(EDITABLE_DEFAULTS, **{
            "id": str(uuid.uuid4()), "asset_id": asset_id, "segment_type": segment_type,
            "time_start_milliseconds": start, "time_end_milliseconds": end, "date_created": _now(),
            "date_modified": _now(), "user_id": "7f3d2c10-0000-4000-8000-000000000001",
            "user_first_name": "Editor", "user_last_name": "Human", "user_photo": None, "has_drawing": False,
            "subclip_id": None, "parent_id": None, "path": None, "top_level": True,
        })
        segment.update(fields)
        with self.lock:
            self.segments.setdefault(asset_id, []).append(segment)
        return segment

    def seed_from_sheet(self, path, seed=0, mix=None):
        """A believable catalogue for the ids in a sheet CSV; returns {asset id: scenario}.

        Scenarios are dealt in proportion to mix, in an order fixed by seed and each id, so the same
        sheet and seed always give the same catalogue."""
        header, rows = sources.read_csv(path)
        records = sources.records_from_table(header, rows)
        ids = sorted({r.key for r in records if not r.key.startswith("row:")},
                     key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
        by_key = {r.key: r for r in records}
        weights = mix or DEFAULT_MIX
        total = float(sum(weights.values()))
        bounds, running = [], 0.0
        for name, weight in weights.items():
            running += weight / total
            bounds.append((running, name))
        dealt = {}
        for position, key in enumerate(ids):
            record = by_key[key]
            if record.reason:
                self.add_asset(key, title=record.title)  # rejected rows still name real assets
                dealt[key] = "rejected"
                continue
            fraction = (position + 0.5) / len(ids)
            scenario = next(name for bound, name in bounds if fraction <= bound + 1e-12)
            self._build(scenario, key, record, random.Random(f"{seed}:{key}"))
            dealt[key] = scenario
        return dealt

    def _build(self, scenario, key, record, rng):
        start, end = record.time_start_ms, record.time_end_ms
        if scenario == "unknown":
            return
        if scenario.startswith("subclip"):
            parent = self.add_asset(title=f"parent of {record.title}")
            shift = 0 if scenario == "subclip_equal" else rng.randint(1, 90) * 1000
            self.add_asset(key, title=record.title, type="SUBCLIP", start=start + shift, end=end + shift,
                           original_asset_id=parent["id"])
            return
        self.add_asset(key, title=record.title, status="DELETED" if scenario == "deleted" else "ACTIVE")
        human = {"metadata": {"Quality": ["broadcast"], "Editor": ["kim"]}, "segment_text": "logged by hand",
                 "segment_color": "#ff9900"}
        if scenario == "comments_only":
            for n in range(rng.randint(3, 25)):
                point = rng.randint(0, end + 60_000)
                self.add_segment(key, rng.choice(("COMMENT", "MARKER")), point, point,
                                 segment_text=f"note {n}")
        elif scenario == "in_sync":
            self.add_segment(key, "GENERIC", start, end, **human)
        elif scenario == "differs":
            self.add_segment(key, "GENERIC", start + rng.randint(1, 30) * 1000, end + rng.randint(1, 30) * 1000,
                             **human)
        elif scenario == "zero_length":
            self.add_segment(key, "GENERIC", start, start, **human)
        elif scenario == "two_one_equal":
            self.add_segment(key, "GENERIC", start + 500_000, end + 500_000)
            self.add_segment(key, "GENERIC", start, end, **human)
        elif scenario == "two_none_equal":
            self.add_segment(key, "GENERIC", start + 1000, end + 1000)
            self.add_segment(key, "GENERIC", start + 2000, end + 7000)
        if scenario in ("in_sync", "differs") and rng.random() < 0.5:
            self.add_segment(key, "COMMENT", start + 10, start + 10, segment_text="nice hand")

    # --- state as JSON ---------------------------------------------------------------------------

    def dump(self):
        with self.lock:
            return copy.deepcopy({"assets": self.assets, "segments": self.segments})

    def restore(self, state):
        with self.lock:
            self.assets = copy.deepcopy(state["assets"])
            self.segments = copy.deepcopy(state["segments"])


class Sandbox:
    """The server: start() on a free port of 127.0.0.1, stop() to end. Usable from tests in-process."""

    def __init__(self, catalogue=None, *, port=0, app_id=DEMO_APP_ID, auth_token=DEMO_AUTH_TOKEN, roles=ALL_ROLES,
                 latency_ms=0, jitter_ms=0, rate=None, faults=None, seed=0):
        self.catalogue = catalogue or Catalogue()
        self.port = port
        self.app_id, self.auth_token = app_id, auth_token
        self.roles = list(roles)
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms
        self.limiter = RateLimiter(rate) if rate else None
        self.faults = faults or Faults()
        self.seed = seed
        self.log = []  # (method, path, status) of every request, in arrival order
        self.bodies = []  # (method, path, parsed JSON body) of every request that carried one
        self._log_lock = threading.Lock()
        self._seen = {}
        self._forced = []
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
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- for tests ----------------------------------------------------------------------------------

    def requests(self, method=None):
        with self._log_lock:
            return [entry for entry in self.log if method is None or entry[0] == method]

    def force(self, method, path_pattern, status=None, body=None, headers=None, action=None, times=1):
        """Script the next `times` answers to matching requests: a status and body, or action
        'drop_before' (close without applying) or 'drop_after' (apply, then close without answering)."""
        with self._log_lock:
            self._forced.append([method, re.compile(path_pattern), status, body, headers or {}, action, times])

    def _take_forced(self, method, path):
        with self._log_lock:
            for entry in self._forced:
                if entry[0] == method and entry[1].search(path) and entry[6] > 0:
                    entry[6] -= 1
                    return entry[2:6]
        return None

    def generic_segments(self, asset_id):
        with self.catalogue.lock:
            return [dict(s) for s in self.catalogue.segments.get(asset_id, []) if s["segment_type"] == "GENERIC"]

    def _record(self, method, path, status):
        with self._log_lock:
            self.log.append((method, path, status))
            return len(self.log)

    def _draw(self, method, path):
        """A random draw for this request, the same for the nth time a method and path are requested."""
        with self._log_lock:
            nth = self._seen[(method, path)] = self._seen.get((method, path), 0) + 1
        return random.Random(f"{self.seed}:{method}:{path}:{nth}")


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
        write = method in ("POST", "PUT", "PATCH", "DELETE")
        rng = sandbox._draw(method, path)
        faults = sandbox.faults
        delay = sandbox.latency_ms + (rng.uniform(-1, 1) * sandbox.jitter_ms if sandbox.jitter_ms else 0)
        if faults.slow and rng.random() < faults.slow:
            delay += faults.slow_ms
        if delay > 0:
            time.sleep(delay / 1000.0)
        count = sandbox._record(method, path, None)
        for hook in list(sandbox.hooks):
            hook(method, path)
        forced = sandbox._take_forced(method, path)
        if forced and forced[0] is not None:
            status, payload, headers, _ = forced
            return self._answer(status, payload if payload is not None else {"errors": ["forced"]}, count, headers)
        forced_action = forced[3] if forced else None
        if forced_action == "drop_before":
            return self._drop(count)
        if self.headers.get("App-ID") != sandbox.app_id or self.headers.get("Auth-Token") != sandbox.auth_token \
                or (faults.revoke_after and count > faults.revoke_after):
            return self._answer(401, {"errors": ["Authentication failed: check App-ID and Auth-Token"]}, count)
        remaining = None
        if sandbox.limiter:
            allowed, remaining, retry_after = sandbox.limiter.take()
            if not allowed:
                return self._answer(429, {"errors": ["Too many requests"]}, count,
                                    {"Retry-After": str(max(1, math.ceil(retry_after)))})
        self._remaining = remaining
        route, match = self._route(path)
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
        status, payload = _Api(sandbox, method, route, match, query, body).answer()
        if forced_action == "drop_after" or (
                write and status < 300 and faults.drop_after and rng.random() < faults.drop_after):
            return self._drop(count)
        self._answer(status, payload, count)

    def _route(self, path):
        for name, pattern in _ROUTES:
            match = pattern.match(path)
            if match:
                return name, match.groupdict()
        return None, None

    def _answer(self, status, payload, count, headers=None):
        data = b"" if status == 204 else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        remaining = getattr(self, "_remaining", None)
        if remaining is not None:
            self.send_header("RateLimit-Remaining", str(remaining))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self._remaining = None
        with self.sandbox._log_lock:
            method, path, _ = self.sandbox.log[count - 1]
            self.sandbox.log[count - 1] = (method, path, status)

    def _drop(self, count):
        self.close_connection = True
        with self.sandbox._log_lock:
            method, path, _ = self.sandbox.log[count - 1]
            self.sandbox.log[count - 1] = (method, path, "dropped")


class _Api:
    """Iconik's answers for one request: (status, JSON body)."""

    def __init__(self, sandbox, method, route, match, query, body):
        self.sandbox, self.method, self.route, self.match = sandbox, method, route, match
        self.query, self.body = query, body
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
        """(asset, None), or (None, the error answer) when the role is missing or the asset unknown."""
        refused = self._needs(role)
        if refused:
            return None, refused
        asset = self.catalogue.assets.get(self.match["asset"].lower())
        if asset is None:
            return None, (404, {"errors": ["Asset not found"]})
        return asset, None

    def _page(self, items):
        """One page of items as Iconik lists them, or a 400/404 answer: (page body, None) / (None, answer)."""
        try:
            per_page = min(MAX_PER_PAGE, max(1, int((self.query.get("per_page") or [DEFAULT_PER_PAGE])[0])))
            page = max(1, int((self.query.get("page") or [1])[0]))
        except ValueError:
            return None, (400, {"errors": {"per_page": "must be a whole number"}})
        pages = max(1, math.ceil(len(items) / per_page))
        if page > pages:
            return None, (404, {"errors": ["Page not found"]})
        return {"objects": copy.deepcopy(items[(page - 1) * per_page: page * per_page]), "page": page,
                "pages": pages, "per_page": per_page, "total": len(items)}, None

    # --- users and auth -----------------------------------------------------------------------------

    def token_get(self):
        return 200, {"app_id": self.sandbox.app_id, "expires": None}

    def user_get(self):
        return 200, {"id": "7f3d2c10-0000-4000-8000-000000000002", "email": "sync@sandbox.invalid",
                     "first_name": "Sandbox", "last_name": "Sync", "status": "ACTIVE"}

    def roles_get(self):
        return 200, {"objects": list(self.sandbox.roles)}

    def state_get(self):
        return 200, self.catalogue.dump()

    # --- assets and segments ------------------------------------------------------------------------

    def asset_get(self):
        asset, error = self._asset("can_read_assets")
        return error or (200, asset)

    def segments_get(self, segment_type=None):
        asset, error = self._asset("can_read_segments")
        if error:
            return error
        segment_type = segment_type or (self.query.get("segment_type") or [None])[0]
        found = [s for s in self.catalogue.segments.get(asset["id"], [])
                 if segment_type is None or s["segment_type"] == segment_type]
        body, error = self._page(found)
        if error:
            return error
        body["next_url"] = None
        if body["page"] < body["pages"]:
            next_query = dict((k, v[0]) for k, v in self.query.items())
            next_query.update(page=body["page"] + 1, per_page=body["per_page"])
            body["next_url"] = f"/API/assets/v1/assets/{asset['id']}/segments/?{urllib.parse.urlencode(next_query)}"
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
        fields = {k: v for k, v in self.body.items() if k in EDITABLE_DEFAULTS}
        segment = self.catalogue.add_segment(asset["id"], self.body["segment_type"],
                                             self.body.get("time_start_milliseconds"),
                                             self.body.get("time_end_milliseconds"), **fields)
        segment.update(user_first_name="Sync", user_last_name="Bot")
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
        if not merge:
            # PUT replaces every editable field: what the body leaves out is reset (ICONIK-FACTS 3).
            segment.update(copy.deepcopy(EDITABLE_DEFAULTS))
        segment.update({k: v for k, v in self.body.items() if k in EDITABLE_DEFAULTS or k == "segment_type"})
        segment["date_modified"] = _now()
        return 200, copy.deepcopy(segment)

    def search_post(self):
        """Iconik's batch search, for the two document types and the terms reversesync uses."""
        body = self.body if isinstance(self.body, dict) else {}
        doc_types = body.get("doc_types") or []
        if doc_types not in (["assets"], ["segments"]):
            return 400, {"errors": {"doc_types": "the sandbox searches one of assets, segments"}}
        refused = self._needs("can_read_assets" if doc_types == ["assets"] else "can_read_segments")
        if refused:
            return refused
        terms = (body.get("filter") or {}).get("terms") or []
        wanted = {}
        for term in terms:
            values = term.get("value_in") or ([term["value"]] if "value" in term else [])
            wanted[term.get("name")] = set(values)
        if doc_types == ["assets"]:
            pool = [dict(a, object_type="assets") for a in self.catalogue.assets.values()]
        else:
            pool = [dict(s, object_type="segments") for found in self.catalogue.segments.values() for s in found]
        unknown = set(wanted) - {"id", "asset_id", "segment_type", "type", "status"}
        if unknown:
            return 400, {"errors": {"filter": f"unsupported terms {sorted(unknown)}"}}
        hits = [doc for doc in pool if all(str(doc.get(name)) in values for name, values in wanted.items())]
        body, error = self._page(hits)
        return error or (200, body)

    def segment_patch(self):
        return self.segment_put(merge=True)

    def segment_delete(self):
        segment, missing = self._segment("can_delete_segments")
        if missing:
            return missing
        self.catalogue.segments[segment["asset_id"]].remove(segment)
        return 204, {}


def _check_segment_body(body, read_only):
    if not isinstance(body, dict):
        return ["The body must be a JSON object"]
    problems = {}
    if body.get("segment_type") not in SEGMENT_TYPES:
        problems["segment_type"] = f"required, one of {', '.join(SEGMENT_TYPES)}"
    for field in ("time_start_milliseconds", "time_end_milliseconds"):
        value = body.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems[field] = "must be an integer"
    for field in read_only:
        if field in body:
            problems[field] = "is read-only"
    return problems
