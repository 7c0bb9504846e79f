"""The Iconik client: one paced session that retries reads and hands every failed write back to its caller."""

import collections
import datetime
import email.utils
import os
import random
import re
import ssl
import threading
import time
import urllib.parse

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception

from . import __version__, errors
from .sources import canonical_uuid

DEFAULT_URL = "https://app.iconik.io"
ENV_URL, ENV_APP_ID, ENV_AUTH_TOKEN = "ICONIK_URL", "ICONIK_APP_ID", "ICONIK_AUTH_TOKEN"

# Iconik's published limits per App-ID/Auth-Token pair (ICONIK-FACTS 5).
DEFAULT_RATE = 50.0
WINDOW_REQUESTS, WINDOW_SECONDS = 1000, 20.0
MAX_SEARCH_PER_PAGE = 1000  # ICONIK-FACTS 7.6

READ_ROLES = ("can_read_assets", "can_read_segments")
WRITE_ROLES = ("can_create_segments", "can_write_segments")

# How the pace reacts (see Pacer): a 429 cuts it by a fifth, a Remaining warning by a fiftieth; without
# either, it climbs back by RECOVERY x rate per second, ten times slower within 90-110% of the pace that
# drew the last 429 (in a simulation of a server stricter than configured this halved the 429s).
THROTTLE_CUT, WARNING_CUT, RECOVERY = 0.8, 0.98, 1 / 25
NEAR_LAST_429, NEAR_LAST_429_SLOWDOWN = (0.9, 1.1), 0.1


class Pacer:
    """Request pacing shared by every worker thread.

    The pace is the client's own: request starts spaced evenly at `rate` per second and never more than
    `window_requests` in any `window_seconds`. That alone keeps a client that has the token to itself under
    both of Iconik's limits (~50/s and 1000 per 20 s, ICONIK-FACTS 5), so nothing else needs to slow it.

    A 429 is the one hard signal: it cuts the pace multiplicatively (once per burst of 429s, not once per
    worker) and pauses every worker for Retry-After. The pace then climbs back linearly as answers come:
    quickly to near the pace that drew the 429, slowly through it (the limit is probably there), quickly
    beyond it (the limit has moved, e.g. another client stopped).

    RateLimit-Remaining is undocumented (ICONIK-FACTS 7.7). It may count the per-second budget (~50; a token
    bucket or a calendar second) or what is left of the 20 s window (falls towards 0 at a steady 50/s by
    design). Reading it either way as "low means slow down" throttles a well-behaved client under the other
    reading (a live run fell from 50 to ~5 req/s). So the pacer asks whether Remaining is lower than our own
    sends can explain. From its own send times it predicts the least Remaining could be under any reading:
    one second's budget less our sends in the last second (no per-second scheme leaves less to a client that
    paces evenly) and the window less our sends in it. A warning needs Remaining both below the lower
    prediction, by a margin for network jitter and for the requests sent after this one (they may have
    reached Iconik first), and low (under a fifth of a second's budget: about to run out). Then something
    else spends this token, and the pace eases off a little.

    - Alone on the token, under any reading: Remaining is never below both predictions, so it never slows
      us. At full pace both predictions are near 0, as is a window reading: that is expected, not a warning.
    - A shared token (another client, a previous run) while we run below full pace: Remaining falls below
      what we explain and we ease off before the 429s come. At full pace the predictions are near 0 and the
      other client's share cannot show: its 429s remain the signal, as they must be anyway.
    - A budget smaller than ours (a stricter server, a steady other client): a budget we stay under keeps
      Remaining above the low mark, so the warnings stop there instead of cutting the pace without end.
    Because each prediction is a lower bound for a client alone, Remaining can slow us only when the budget
    is really being spent elsewhere, and only a 429 cuts the pace hard.
    """

    def __init__(self, rate=DEFAULT_RATE, window_requests=WINDOW_REQUESTS, window_seconds=WINDOW_SECONDS, *,
                 clock=time.monotonic, sleep=time.sleep):
        self.max_rate = float(rate)
        self.rate = float(rate)
        self.min_rate = max(1.0, self.max_rate / 20)
        self.window_requests = window_requests
        # A little slack on the window: our send times and Iconik's arrival times differ by network jitter.
        self.window_seconds = window_seconds * 1.01 if window_requests else 0
        # Spread the window's requests evenly too, rather than run at `rate` into the cap and stall there.
        self._min_interval = self.window_seconds / window_requests if window_requests else 0.0
        self.second_budget = max(1.0, self.max_rate)
        self.low = 0.2 * self.second_budget
        self.slack = max(2.0, 0.1 * self.second_budget)
        self.warnings = 0
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = 0.0
        self._paused_until = 0.0
        self._sent = collections.deque()  # our send times inside the window
        self._last_second = collections.deque()  # our send times inside the last second
        self._seq = 0
        self._expected = {}  # send time -> (sequence number, least Remaining our own sends explain)
        # Requests up to these sequence numbers were sent before the last cut for a 429 / for a warning.
        self._cut_seq = {THROTTLE_CUT: 0, WARNING_CUT: 0}
        self._last_change = float("-inf")
        self.rate_at_last_429 = float("inf")

    def wait(self):
        """Block until this thread may send a request; returns the send time."""
        while True:
            with self._lock:
                now = self._clock()
                start = self._start_time(now)
                if start <= now:
                    self._grant(now)
                    return now
            self._sleep(min(start - now, 0.25))

    def _start_time(self, now):
        start = max(self._next, self._paused_until)
        if self.window_requests:
            _drop_before(self._sent, now - self.window_seconds)
            if len(self._sent) >= self.window_requests:
                start = max(start, self._sent[0] + self.window_seconds)
        return start

    def _grant(self, now):
        # Keep the schedule after a late wake-up, so sleep overshoot does not cost throughput; after an
        # idle spell start a new one, so an idle pacer never releases a burst.
        interval = max(1.0 / self.rate, self._min_interval)
        self._next = self._next + interval if now - self._next < interval else now + interval
        if self.window_requests:
            self._sent.append(now)
        self._last_second.append(now)
        _drop_before(self._last_second, now - 1.0)
        self._seq += 1
        self._expected[now] = (self._seq, self._least_remaining())
        # Forget sends whose answer will never come (transport errors): older than any answer can be.
        horizon = now - max(60.0, 2 * self.window_seconds)
        while self._expected and next(iter(self._expected)) < horizon:
            del self._expected[next(iter(self._expected))]

    def _least_remaining(self):
        """The least RateLimit-Remaining our own sends explain, whichever budget Iconik reports."""
        least = self.second_budget - len(self._last_second)
        if self.window_requests:
            least = min(least, self.window_requests - len(self._sent))
        return least

    def pause(self, seconds):
        """Stop every worker for seconds (a 429's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def throttled(self, sent_at):
        """A 429 for a request sent at sent_at: slow down once per burst of them, not once per worker."""
        with self._lock:
            seq, _ = self._expected.pop(sent_at, (0, None))
            self._cut(seq, THROTTLE_CUT)

    def answered(self, sent_at, remaining=None):
        """Any other answer: ease off if Remaining shows the budget spent elsewhere, else recover the pace."""
        with self._lock:
            seq, least = self._expected.pop(sent_at, (0, None))
            if not seq:
                return  # sent so long ago that it tells nothing about the pace now
            sent_since = self._seq - seq  # sent after this request: they may have reached Iconik before it
            if remaining is not None and remaining <= self.low and remaining < least - sent_since - self.slack:
                self.warnings += 1
                self._cut(seq, WARNING_CUT)
            elif seq > max(self._cut_seq.values()):
                self._recover()

    def _cut(self, seq, factor):
        """Slow down, unless the request was sent before the last such cut: one per burst, not per worker."""
        if seq > self._cut_seq[factor]:
            if factor == THROTTLE_CUT:
                self.rate_at_last_429 = self.rate
            self.rate = max(self.min_rate, self.rate * factor)
            self._cut_seq[factor] = self._seq
            self._last_change = self._clock()

    def _recover(self):
        """Climb back: quickly up to near the pace of the last 429, slowly through it, quickly beyond it."""
        now = self._clock()
        if self.rate < self.max_rate:
            speed = self.max_rate * RECOVERY
            low, high = (share * self.rate_at_last_429 for share in NEAR_LAST_429)
            if low <= self.rate <= high:  # the server's limit is probably about there: probe it gently
                speed *= NEAR_LAST_429_SLOWDOWN
            self.rate = min(self.max_rate, self.rate + speed * max(0.0, now - self._last_change))
        self._last_change = now


def _drop_before(times, cutoff):
    """Drop the times at or before cutoff from the left of a sorted deque."""
    while times and times[0] <= cutoff:
        times.popleft()


class Stats:
    """Counters every run reports (requests by method, 429s, writes), when we last sent and Iconik last answered."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.by_method = collections.Counter()
        self.throttled = 0
        self.writes = 0
        self.last_sent = None  # monotonic time the last request went on the wire
        self.last_answer = None  # monotonic time of the last HTTP answer, errors included
        self.in_flight = 0
        self._busy_since = None

    def sent(self):
        """A request goes on the wire now."""
        with self._lock:
            now = self._clock()
            if not self.in_flight:
                self._busy_since = now
            self.in_flight += 1
            self.last_sent = now

    def count(self, method, status, write=False):
        """A request ended: with an HTTP status, or None when no answer came (the connection failed)."""
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
            if status is not None:
                self.last_answer = self._clock()
            self.by_method[method] += 1
            self.writes += write
            if status == 429:
                self.throttled += 1

    def waiting_for(self):
        """Seconds without an answer while requests are on the wire ("waiting on Iconik for N s"); 0 when idle."""
        with self._lock:
            if not self.in_flight:
                return 0.0
            return self._clock() - max(self._busy_since, self.last_answer or self._busy_since)

    @property
    def requests(self):
        return sum(self.by_method.values())


def parse_retry_after(value, now=None):
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None when it gives no usable hint."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        now = now or datetime.datetime.now(datetime.timezone.utc)
        seconds = (when - now).total_seconds()
    if not seconds > 0 or seconds != seconds or seconds > 3600:
        return None
    return seconds


def error_message(response):
    """Iconik's own error text from {"errors": [...]} or {"errors": {"field": "..."}}, else the body's start."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    found = body.get("errors") if isinstance(body, dict) else None
    if isinstance(found, list):
        return "; ".join(map(str, found))
    if isinstance(found, dict):
        return "; ".join(f"{field}: {message}" for field, message in found.items())
    return str(body)[:200]


def _causes(exc):
    """exc and every exception it wraps (reason, __cause__, __context__, args), each once."""
    seen, pending = set(), [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue  # urllib3 puts plain strings in args and sometimes in reason
        seen.add(id(current))
        yield current
        pending += [getattr(current, "reason", None), current.__cause__, current.__context__, *current.args]


def _never_sent(exc):
    """True when a requests exception proves the request never left this machine."""
    return any(isinstance(cause, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
                                  ConnectionRefusedError, requests.exceptions.ConnectTimeout))
               for cause in _causes(exc))


# What OpenSSL versions call a plain-HTTP answer to a TLS hello.
PLAIN_HTTP_REASONS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}


def tls_cause(exc):
    """The TLS problem behind an SSLError in a few words, e.g. 'certificate verify failed: self-signed certificate'."""
    found = [cause for cause in _causes(exc) if isinstance(cause, ssl.SSLError)]
    if not found:
        return str(exc)[:200]
    deepest = found[-1]
    if isinstance(deepest, ssl.SSLCertVerificationError) and deepest.verify_message:
        return f"certificate verify failed: {deepest.verify_message}"
    text = deepest.args[1] if len(deepest.args) > 1 and isinstance(deepest.args[1], str) else str(deepest)
    # "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)" -> "wrong version number"
    text = re.sub(r"^\[SSL(: [A-Z_]+)?\]\s*|\s*\(_ssl\.c:\d+\)$", "", text).strip()
    if getattr(deepest, "reason", None) in PLAIN_HTTP_REASONS:
        text += " (the server does not seem to speak TLS)"
    return text or type(deepest).__name__


URL_FORM = "use the form https://app.iconik.io (scheme http or https, host, optional port, no path)"


def checked_base_url(url):
    """The Iconik base URL without its trailing slash, or EndpointError naming what is wrong with it."""
    problem = _base_url_problem(url)
    if problem:
        raise errors.EndpointError(f"ICONIK_URL {url!r} is not an Iconik base URL ({problem}); {URL_FORM}.")
    return url.rstrip("/")


def _base_url_problem(url):
    if url != url.strip() or any(ch.isspace() for ch in url):
        return "it contains spaces"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme!r} is not http or https" if parts.scheme else "no scheme"
    if not parts.hostname:
        return "no host"
    if "@" in parts.netloc:
        return "credentials belong in ICONIK_APP_ID and ICONIK_AUTH_TOKEN, not in the URL"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "the port is not a number from 1 to 65535"
    if parts.path not in ("", "/"):
        return f"it has a path {parts.path!r}; the client adds /API/... itself"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "it has a query or fragment"
    return None


def _safe_id(value, what):
    canonical = canonical_uuid(value)
    if canonical is None:
        # Ids are validated on load; one reaching here unvalidated is a bug, never a request.
        raise ValueError(f"{what} {value!r} is not a canonical UUID")
    return urllib.parse.quote(canonical, safe="")


class IconikClient:
    """Talks to one Iconik (or the sandbox) with one pooled session, shared pacing, and retries of reads only."""

    def __init__(self, url=None, app_id=None, auth_token=None, *, rate=DEFAULT_RATE, retries=3, workers=8,
                 timeout=(5.0, 30.0), per_page=100, pacer=None, backoff=0.5, max_backoff=20.0):
        url = checked_base_url(url or os.environ.get(ENV_URL) or DEFAULT_URL)
        app_id = app_id or os.environ.get(ENV_APP_ID)
        auth_token = auth_token or os.environ.get(ENV_AUTH_TOKEN)
        missing = [name for name, value in ((ENV_APP_ID, app_id), (ENV_AUTH_TOKEN, auth_token)) if not value]
        if missing:
            raise errors.ConfigError(f"no Iconik credentials: set {' and '.join(missing)} (or pass --app-id and "
                                     "--auth-token).")
        self.url = url
        self.retries = retries
        self.timeout = timeout
        self.per_page = per_page
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._retrying = {False: self._retrying_for(False), True: self._retrying_for(True)}
        self.pacer = pacer or Pacer(rate, window_requests=int(rate * WINDOW_SECONDS))
        self.stats = Stats()
        # One pooled adapter, sent to directly: requests' Session machinery (cookie jars, redirects, hooks,
        # re-reading proxy and CA settings from the environment on every call) cost about half of the
        # tool's CPU per row in the issue #6 profile, and Iconik needs none of it.
        self._adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(workers, 1) + 2, max_retries=0)
        self._headers = {"App-ID": app_id, "Auth-Token": auth_token, "Accept": "application/json",
                         "User-Agent": f"reversesync/{__version__}"}
        self._proxies = requests.utils.get_environ_proxies(self.url)
        self._verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True

    def __repr__(self):
        return f"<IconikClient {self.url}>"

    def close(self):
        self._adapter.close()

    # --- operations ---------------------------------------------------------------------------------

    def get_asset(self, asset_id):
        return self._call("GET", f"/API/assets/v1/assets/{_safe_id(asset_id, 'asset id')}/")

    def list_segments(self, asset_id, segment_type=None):
        """Every segment of an asset (of one type if given), following every page."""
        path = f"/API/assets/v1/assets/{_safe_id(asset_id, 'asset id')}/segments/"
        params = {"per_page": self.per_page, "page": 1}
        if segment_type:
            params["segment_type"] = segment_type
        found = []
        while True:
            page = self._call("GET", path, params=dict(params))
            found += page.get("objects") or []
            # Stop at `pages`: Iconik may answer 404 for a page past the last (ICONIK-FACTS 2).
            if params["page"] >= (page.get("pages") or 1):
                return found
            params["page"] += 1

    def get_segment(self, asset_id, segment_id):
        return self._call("GET", self._segment_path(asset_id, segment_id))

    def create_segment(self, asset_id, start_ms, end_ms, *, on_send=None, **fields):
        """POST a GENERIC segment; on_send() is called as each attempt goes on the wire."""
        body = {"segment_type": "GENERIC", "time_start_milliseconds": int(start_ms),
                "time_end_milliseconds": int(end_ms), **fields}
        return self._call("POST", f"/API/assets/v1/assets/{_safe_id(asset_id, 'asset id')}/segments/", body=body,
                          on_send=on_send)

    def patch_segment_times(self, asset_id, segment_id, start_ms, end_ms, *, on_send=None):
        """PATCH a GENERIC segment's two times and nothing else.

        A PUT replaces the whole segment: every field its body lacks is reset, fields Iconik added after
        reversesync was written included (ICONIK-FACTS 8.1). A PATCH changes only what it carries; segment_type
        is required in every edit body (ICONIK-FACTS 3)."""
        body = {"segment_type": "GENERIC", "time_start_milliseconds": int(start_ms),
                "time_end_milliseconds": int(end_ms)}
        return self._call("PATCH", self._segment_path(asset_id, segment_id), body=body, on_send=on_send)

    def delete_segment(self, asset_id, segment_id, *, on_send=None):
        """DELETE one segment softly (204): it stays readable with status DELETED and a person can restore it
        from Iconik's bin (ICONIK-FACTS 8.3)."""
        return self._call("DELETE", self._segment_path(asset_id, segment_id), params={"soft_delete": "true"},
                          on_send=on_send)

    def search(self, doc_type, terms, per_page=MAX_SEARCH_PER_PAGE, *, fields=None):
        """Every document of one type matching all terms ({name: [values]}), following every page.

        fields limits each document to those fields (include_fields), so the index sends only what is used."""
        body = {"doc_types": [doc_type], "filter": {"operator": "AND", "terms": [
            {"name": name, "value_in": list(values)} for name, values in terms.items()]}}
        if fields:
            body["include_fields"] = list(fields)
        # No signed URLs to compute, and no entry in the API user's search history per batch (ICONIK-FACTS 7.6).
        params = {"per_page": max(1, min(int(per_page), MAX_SEARCH_PER_PAGE)), "page": 1,
                  "generate_signed_url": "false", "save_search_history": "false"}
        found = []
        while True:
            answer = self._call("POST", "/API/search/v1/search/", params=dict(params), body=body, write=False)
            found += answer.get("objects") or []
            if params["page"] >= (answer.get("pages") or 1):
                return found
            params["page"] += 1

    def current_user(self):
        return self._call("GET", "/API/users/v1/users/current/")

    def current_roles(self):
        return set(self._call("GET", "/API/users/v1/users/current/roles/").get("objects") or [])

    def missing_roles(self, needed):
        """The roles of needed that this token's user lacks, sorted (one request)."""
        return sorted(set(needed) - self.current_roles())

    def _segment_path(self, asset_id, segment_id):
        return (f"/API/assets/v1/assets/{_safe_id(asset_id, 'asset id')}/segments/"
                f"{_safe_id(segment_id, 'segment id')}/")

    # --- the request path -------------------------------------------------------------------------

    def _call(self, method, path, params=None, body=None, write=None, on_send=None):
        if write is None:  # a search is a POST that changes nothing: it may be retried like a read
            write = method in ("POST", "PUT", "PATCH", "DELETE")
        return self._retrying[write](self._once, method, path, params, body, write, on_send)

    def _retrying_for(self, write):
        # Built once per client: tenacity keeps each call's state per thread, so workers can share them.
        return Retrying(retry=retry_if_exception(lambda exc: self._retryable(exc, write)), stop=self._stop,
                        wait=self._wait, reraise=True)

    @staticmethod
    def _retryable(exc, write):
        # A write is never re-sent from here, not even one that provably was not applied (a 429, a connection
        # never made): time passes before a re-send (Retry-After, back-off), and a person may change the
        # segment meanwhile. The caller reads the target again and decides again (issue #15).
        return not write and isinstance(exc, errors.TransientError)

    def _stop(self, state: RetryCallState):
        exc = state.outcome.exception()
        if isinstance(exc, errors.RateLimited):
            # Throttling is the server pacing us, not a failure of this request: allow many more tries.
            return state.attempt_number > self.retries + 20
        return state.attempt_number > self.retries

    def _wait(self, state: RetryCallState):
        exc = state.outcome.exception()
        if isinstance(exc, errors.RateLimited) and exc.retry_after is not None:
            return 0  # the pacer already holds every worker for Retry-After
        return min(self.max_backoff, self.backoff * 2 ** (state.attempt_number - 1)) * (0.5 + random.random())

    def _once(self, method, path, params, body, write, on_send):
        prepared = requests.Request(method, self.url + path, params=params, json=body,
                                    headers=self._headers).prepare()
        sent_at = self.pacer.wait()
        if on_send is not None:
            on_send()  # the caller records the real send time of this attempt (a write settles from it)
        self.stats.sent()
        try:
            response = self._adapter.send(prepared, timeout=self.timeout, verify=self._verify, proxies=self._proxies)
        except requests.exceptions.RequestException as exc:
            self.stats.count(method, None, write)
            raise self._transport_error(exc, method, path, write) from None
        self.stats.count(method, response.status_code, write)
        if response.status_code == 429:
            raise self._throttled(response, method, path, sent_at)
        self.pacer.answered(sent_at, _remaining(response))
        if response.status_code < 300:
            return response.json() if response.content else {}
        raise self._status_error(response, method, path, write)

    def _transport_error(self, exc, method, path, write):
        kind = type(exc).__name__
        if isinstance(exc, requests.exceptions.SSLError):
            # A TLS handshake that fails is a setting to fix, not a blip: never retried.
            return errors.EndpointError(f"cannot talk TLS to {self.url}: {tls_cause(exc)}; check ICONIK_URL "
                                        "(http:// or https://) or the certificate (REQUESTS_CA_BUNDLE).")
        if _never_sent(exc):
            return errors.ConnectionFailed(method, path, f"could not connect to {self.url} ({kind})", True)
        if write:
            return errors.UnknownOutcome(method, path, None, f"the answer was lost ({kind}); the write may or "
                                                             "may not have been applied")
        return errors.ConnectionFailed(method, path, f"the connection failed ({kind})")

    def _throttled(self, response, method, path, sent_at):
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        self.pacer.throttled(sent_at)
        if retry_after is not None:
            self.pacer.pause(retry_after)
        return errors.RateLimited(method, path, retry_after, error_message(response))

    @staticmethod
    def _status_error(response, method, path, write):
        status = response.status_code
        message = error_message(response)
        if status == 401:
            return errors.AuthError(method, path, status, message)
        if status == 403:  # this user may not do this to this asset; the rest of the run may go on (7.5)
            return errors.Forbidden(method, path, status, message)
        if status == 404:
            return errors.NotFound(method, path, status, message)
        if status == 409:
            return errors.Conflict(method, path, status, message)
        if status >= 500 and write:
            # A gateway may have passed the write on before failing: it may or may not have been applied.
            return errors.UnknownOutcome(method, path, status, f"{message or 'server error'}; the write may or "
                                                               "may not have been applied")
        if status >= 500:
            return errors.ServerError(method, path, status, message)
        return errors.BadRequest(method, path, status, message)


def _remaining(response):
    """RateLimit-Remaining as a number, or None when absent or not a whole number."""
    value = (response.headers.get("RateLimit-Remaining") or "").strip()
    return int(value) if value.isdigit() else None
