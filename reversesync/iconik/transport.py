"""What a failed request or a configured URL means: Iconik's error text, whether a request provably never left
this machine, a TLS failure in a few words, and whether ICONIK_URL is a base URL the client can use."""

from __future__ import annotations

import re
import ssl
import urllib.parse
from collections.abc import Iterator

import requests
import urllib3

from .. import errors


def error_message(response: requests.Response) -> str:
    """Iconik's own error text from {"errors": [...]} or {"errors": {"field": "..."}}, else the body's start."""
    try:
        body = response.json()
    except ValueError:
        return not_json(response)
    found = body.get("errors") if isinstance(body, dict) else None
    if isinstance(found, list):
        return "; ".join(map(str, found))
    if isinstance(found, dict):
        return "; ".join(f"{field}: {message}" for field, message in found.items())
    return str(body)[:200]


def not_json(response: requests.Response) -> str:
    """A body that is not JSON, in a few words: a web page is named, never pasted (issue #17)."""
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip() or "no content type"
    if "html" in kind:
        return f"a web page ({kind}), not Iconik's JSON"
    text = " ".join(response.text[:120].split())
    return f"not JSON ({kind}): {text}" if text else f"an empty {kind} answer, not JSON"


def causes(exc: BaseException) -> Iterator[BaseException]:
    """exc and every exception it wraps (reason, __cause__, __context__, args), each once."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue  # urllib3 puts plain strings in args and sometimes in reason
        seen.add(id(current))
        yield current
        pending += [getattr(current, "reason", None), current.__cause__, current.__context__, *current.args]


def never_sent(exc: BaseException) -> bool:
    """True when a requests exception proves the request never left this machine."""
    return any(isinstance(cause, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
                                  ConnectionRefusedError, requests.exceptions.ConnectTimeout))
               for cause in causes(exc))


# What OpenSSL versions call a plain-HTTP answer to a TLS hello.
PLAIN_HTTP_REASONS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}


def tls_cause(exc: BaseException) -> str:
    """The TLS problem behind an SSLError in a few words, e.g. 'certificate verify failed: self-signed certificate'."""
    found = [cause for cause in causes(exc) if isinstance(cause, ssl.SSLError)]
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


def checked_base_url(url: str) -> str:
    """The Iconik base URL without its trailing slash, or EndpointError naming what is wrong with it."""
    problem = _base_url_problem(url)
    if problem:
        raise errors.EndpointError(f"ICONIK_URL {url!r} is not an Iconik base URL ({problem}); {URL_FORM}.")
    return url.rstrip("/")


def _base_url_problem(url: str) -> str | None:
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


