"""The Iconik client: one paced session that retries reads and hands every failed write back to its caller."""

import os
import random
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception

from .. import __version__, errors
from ..clock import SYSTEM, Clock
from ..rules import canonical_uuid
from ..types import DEFAULT_RATE, Json
from .pacing import WINDOW_SECONDS, Pacer, Stats, parse_retry_after
from .transport import checked_base_url, error_message, never_sent, not_json, tls_cause

# Called as each attempt of a write goes on the wire (the ledger records the send time).
OnSend = Callable[[], None] | None

# The preflight's first request: a server that accepts connections but never answers must not hold a command for
# minutes (issue #17). Read timeout per try, and tries.
PREFLIGHT_READ_TIMEOUT = 10.0
PREFLIGHT_TRIES = 2
CURRENT_USER = "/API/users/v1/users/current/"

DEFAULT_URL = "https://app.iconik.io"
ENV_URL, ENV_APP_ID, ENV_AUTH_TOKEN = "ICONIK_URL", "ICONIK_APP_ID", "ICONIK_AUTH_TOKEN"
MAX_SEARCH_PER_PAGE = 1000  # ICONIK-FACTS 7.6

READ_ROLES = ("can_read_assets", "can_read_segments")
WRITE_ROLES = ("can_create_segments", "can_write_segments")


def _safe_id(value: str, what: str) -> str:
    canonical = canonical_uuid(value)
    if canonical is None:
        # Ids are validated on load; one reaching here unvalidated is a bug, never a request.
        raise ValueError(f"{what} {value!r} is not a canonical UUID")
    return urllib.parse.quote(canonical, safe="")


class IconikClient:
    """Talks to one Iconik (or the sandbox) with one pooled session, shared pacing, and retries of reads only."""

    def __init__(self, url: str | None = None, app_id: str | None = None, auth_token: str | None = None, *,
                 rate: float = DEFAULT_RATE, retries: int = 3, workers: int = 8,
                 timeout: tuple[float, float] = (5.0, 30.0), per_page: int = 100, pacer: Pacer | None = None,
                 backoff: float = 0.5, max_backoff: float = 20.0, clock: Clock = SYSTEM) -> None:
        url = checked_base_url(url or os.environ.get(ENV_URL) or DEFAULT_URL)
        app_id = app_id or os.environ.get(ENV_APP_ID)
        auth_token = auth_token or os.environ.get(ENV_AUTH_TOKEN)
        missing = [name for name, value in ((ENV_APP_ID, app_id), (ENV_AUTH_TOKEN, auth_token)) if not value]
        if missing or app_id is None or auth_token is None:
            raise errors.ConfigError(f"no Iconik credentials: set {' and '.join(missing)} (or pass --app-id and "
                                     "--auth-token).")
        self.url = url
        self.retries = retries
        self.timeout = timeout
        self.per_page = per_page
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self._retrying = {False: self._retrying_for(False), True: self._retrying_for(True)}
        self._preflight_retrying = Retrying(retry=retry_if_exception(lambda exc: self._retryable(exc, False)),
                                            stop=lambda state: state.attempt_number >= PREFLIGHT_TRIES,
                                            wait=self._wait, sleep=self.clock.sleep, reraise=True)
        self.pacer = pacer or Pacer(rate, window_requests=int(rate * WINDOW_SECONDS), clock=clock.monotonic,
                                    sleep=clock.sleep)
        self.stats = Stats(clock=clock.monotonic)
        # One pooled adapter, sent to directly: requests' Session machinery (cookie jars, redirects, hooks,
        # re-reading proxy and CA settings from the environment on every call) cost about half of the
        # tool's CPU per row in the issue #6 profile, and Iconik needs none of it.
        self._adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(workers, 1) + 2, max_retries=0)
        self._headers = {"App-ID": app_id, "Auth-Token": auth_token, "Accept": "application/json",
                         "User-Agent": f"reversesync/{__version__}"}
        self._proxies = requests.utils.get_environ_proxies(self.url)
        self._verify: str | bool = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True

    def __repr__(self) -> str:
        return f"<IconikClient {self.url}>"

    def close(self) -> None:
        self._adapter.close()

    # --- operations ---------------------------------------------------------------------------------

    def get_asset(self, asset_id: str) -> Json:
        return self._call("GET", f"/API/assets/v1/assets/{_safe_id(asset_id, 'asset id')}/")

    def list_segments(self, asset_id: str, segment_type: str | None = None) -> list[Json]:
        """Every segment of an asset (of one type if given), following every page."""
        path = f"/API/assets/v1/assets/{_safe_id(asset_id, 'asset id')}/segments/"
        params: dict[str, Any] = {"per_page": self.per_page, "page": 1}
        if segment_type:
            params["segment_type"] = segment_type
        found: list[Json] = []
        while True:
            page = self._call("GET", path, params=dict(params))
            found += page.get("objects") or []
            # Stop at `pages`: Iconik may answer 404 for a page past the last (ICONIK-FACTS 2).
            if params["page"] >= (page.get("pages") or 1):
                return found
            params["page"] += 1

    def get_segment(self, asset_id: str, segment_id: str) -> Json:
        return self._call("GET", self._segment_path(asset_id, segment_id))

    def create_segment(self, asset_id: str, start_ms: int, end_ms: int, *, on_send: OnSend = None,
                       **fields: Any) -> Json:
        """POST a GENERIC segment; on_send() is called as each attempt goes on the wire."""
        body = {"segment_type": "GENERIC", "time_start_milliseconds": int(start_ms),
                "time_end_milliseconds": int(end_ms), **fields}
        return self._call("POST", f"/API/assets/v1/assets/{_safe_id(asset_id, 'asset id')}/segments/", body=body,
                          on_send=on_send)

    def patch_segment_times(self, asset_id: str, segment_id: str, start_ms: int, end_ms: int, *,
                            on_send: OnSend = None) -> Json:
        """PATCH a GENERIC segment's two times and nothing else.

        A PUT replaces the whole segment: every field its body lacks is reset, fields Iconik added after
        reversesync was written included (ICONIK-FACTS 8.1). A PATCH changes only what it carries; segment_type
        is required in every edit body (ICONIK-FACTS 3)."""
        body = {"segment_type": "GENERIC", "time_start_milliseconds": int(start_ms),
                "time_end_milliseconds": int(end_ms)}
        return self._call("PATCH", self._segment_path(asset_id, segment_id), body=body, on_send=on_send)

    def delete_segment(self, asset_id: str, segment_id: str, *, on_send: OnSend = None) -> Json:
        """DELETE one segment softly (204): it stays readable with status DELETED and a person can restore it
        from Iconik's bin (ICONIK-FACTS 8.3)."""
        return self._call("DELETE", self._segment_path(asset_id, segment_id), params={"soft_delete": "true"},
                          on_send=on_send)

    def search(self, doc_type: str, terms: dict[str, Sequence[str]], per_page: int = MAX_SEARCH_PER_PAGE, *,
               fields: Sequence[str] | None = None) -> list[Json]:
        """Every document of one type matching all terms ({name: [values]}), following every page.

        fields limits each document to those fields (include_fields), so the index sends only what is used."""
        body: dict[str, Any] = {"doc_types": [doc_type], "filter": {"operator": "AND", "terms": [
            {"name": name, "value_in": list(values)} for name, values in terms.items()]}}
        if fields:
            body["include_fields"] = list(fields)
        # No signed URLs to compute, and no entry in the API user's search history per batch (ICONIK-FACTS 7.6).
        params: dict[str, Any] = {"per_page": max(1, min(int(per_page), MAX_SEARCH_PER_PAGE)), "page": 1,
                                  "generate_signed_url": "false", "save_search_history": "false"}
        found: list[Json] = []
        while True:
            answer = self._call("POST", "/API/search/v1/search/", params=dict(params), body=body, write=False)
            found += answer.get("objects") or []
            if params["page"] >= (answer.get("pages") or 1):
                return found
            params["page"] += 1

    def current_user(self) -> Json:
        """The token's user: every command's first request. A 404 or an answer that is not JSON means the URL
        reaches some other web server, not Iconik's API (EndpointError, exit 2); a server that does not answer
        gives up after PREFLIGHT_TRIES tries of PREFLIGHT_READ_TIMEOUT seconds."""
        timeout = (self.timeout[0], min(self.timeout[1], PREFLIGHT_READ_TIMEOUT))
        try:
            answer: Json = self._preflight_retrying(self._once, "GET", CURRENT_USER, None, None, False, None, timeout)
        except (errors.NotFound, errors.NotJson) as exc:
            raise errors.EndpointError(
                f"{self.url} is not an Iconik API: GET {CURRENT_USER} answered {exc.status}, {exc.message}. Set "
                "ICONIK_URL to your Iconik's address (https://app.iconik.io or your own domain, without /API)."
            ) from None
        return answer

    def current_roles(self) -> set[str]:
        return set(self._call("GET", "/API/users/v1/users/current/roles/").get("objects") or [])

    def missing_roles(self, needed: Iterable[str]) -> list[str]:
        """The roles of needed that this token's user lacks, sorted (one request)."""
        return sorted(set(needed) - self.current_roles())

    def _segment_path(self, asset_id: str, segment_id: str) -> str:
        return (f"/API/assets/v1/assets/{_safe_id(asset_id, 'asset id')}/segments/"
                f"{_safe_id(segment_id, 'segment id')}/")

    # --- the request path -------------------------------------------------------------------------

    def _call(self, method: str, path: str, params: dict[str, Any] | None = None, body: Json | None = None,
              write: bool | None = None, on_send: OnSend = None) -> Json:
        if write is None:  # a search is a POST that changes nothing: it may be retried like a read
            write = method in ("POST", "PUT", "PATCH", "DELETE")
        answer: Json = self._retrying[write](self._once, method, path, params, body, write, on_send)
        return answer

    def _retrying_for(self, write: bool) -> Retrying:
        # Built once per client: tenacity keeps each call's state per thread, so workers can share them.
        return Retrying(retry=retry_if_exception(lambda exc: self._retryable(exc, write)), stop=self._stop,
                        wait=self._wait, sleep=self.clock.sleep, reraise=True)

    @staticmethod
    def _retryable(exc: BaseException, write: bool) -> bool:
        # A write is never re-sent from here, not even one that provably was not applied (a 429, a connection
        # never made): time passes before a re-send (Retry-After, back-off), and a person may change the
        # segment meanwhile. The caller reads the target again and decides again (issue #15).
        return not write and isinstance(exc, errors.TransientError)

    def _stop(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, errors.RateLimited):
            # Throttling is the server pacing us, not a failure of this request: allow many more tries.
            return state.attempt_number > self.retries + 20
        return state.attempt_number > self.retries

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, errors.RateLimited) and exc.retry_after is not None:
            return 0  # the pacer already holds every worker for Retry-After
        return min(self.max_backoff, self.backoff * 2 ** (state.attempt_number - 1)) * (0.5 + random.random())

    def _once(self, method: str, path: str, params: dict[str, Any] | None, body: Json | None, write: bool,
              on_send: OnSend, timeout: tuple[float, float] | None = None) -> Json:
        prepared = requests.Request(method, self.url + path, params=params, json=body,
                                    headers=self._headers).prepare()
        sent_at = self.pacer.wait()
        if on_send is not None:
            on_send()  # the caller records the real send time of this attempt (a write settles from it)
        self.stats.sent()
        try:
            response = self._adapter.send(prepared, timeout=timeout or self.timeout, verify=self._verify,
                                          proxies=self._proxies)
        except requests.exceptions.RequestException as exc:
            self.stats.count(method, None, write)
            raise self._transport_error(exc, method, path, write) from None
        self.stats.count(method, response.status_code, write)
        if response.status_code == 429:
            raise self._throttled(response, method, path, sent_at)
        self.pacer.answered(sent_at, _remaining(response))
        if response.status_code < 300:
            try:
                answer: Json = response.json() if response.content else {}
            except ValueError:
                raise errors.NotJson(method, path, response.status_code, not_json(response)) from None
            return answer
        raise self._status_error(response, method, path, write)

    def _transport_error(self, exc: requests.exceptions.RequestException, method: str, path: str,
                         write: bool) -> errors.IconikError | errors.EndpointError:
        kind = type(exc).__name__
        if isinstance(exc, requests.exceptions.SSLError):
            # A TLS handshake that fails is a setting to fix, not a blip: never retried.
            return errors.EndpointError(f"cannot talk TLS to {self.url}: {tls_cause(exc)}; check ICONIK_URL "
                                        "(http:// or https://) or the certificate (REQUESTS_CA_BUNDLE; behind a "
                                        "proxy that inspects TLS, --system-certs).")
        if never_sent(exc):
            return errors.ConnectionFailed(method, path, f"could not connect to {self.url} ({kind})", True)
        if write:
            return errors.UnknownOutcome(method, path, None, f"the answer was lost ({kind}); the write may or "
                                                             "may not have been applied")
        return errors.ConnectionFailed(method, path, f"the connection failed ({kind})")

    def _throttled(self, response: requests.Response, method: str, path: str, sent_at: float) -> errors.RateLimited:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        self.pacer.throttled(sent_at)
        if retry_after is not None:
            self.pacer.pause(retry_after)
        return errors.RateLimited(method, path, retry_after, error_message(response))

    @staticmethod
    def _status_error(response: requests.Response, method: str, path: str, write: bool) -> errors.IconikError:
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


def _remaining(response: requests.Response) -> int | None:
    """RateLimit-Remaining as a number, or None when absent or not a whole number."""
    value = (response.headers.get("RateLimit-Remaining") or "").strip()
    return int(value) if value.isdigit() else None

