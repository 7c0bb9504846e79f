"""The Google Sheets client reversesync uses, and what to tell a person when Google refuses or fails."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TypeVar

import gspread
import requests
from google.auth import exceptions as google_auth_errors
from google.oauth2 import service_account

from ..errors import GoogleUnreachable, SheetAccessError

READONLY_SCOPES = ["https://www.googleapis.com/auth/spreadsheets.readonly"]
WRITE_SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
SYNC_LOG_TAB = "Sync_Log"

T = TypeVar("T")


# --- Google Sheets ----------------------------------------------------------------------------------


def sheets_http(credentials: str | None, scopes: list[str],
                timeout: tuple[float, float]) -> tuple[gspread.HTTPClient, str, str]:
    """gspread's HTTP client for a service-account key, and the account's email."""
    key_file = credentials or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not key_file:
        raise SheetAccessError("no Google service-account key: pass --credentials FILE or set "
                               "GOOGLE_APPLICATION_CREDENTIALS.")
    try:
        creds = service_account.Credentials.from_service_account_file(key_file, scopes=scopes)
    except FileNotFoundError:
        raise SheetAccessError(f"the service-account key {key_file} does not exist.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise SheetAccessError(
            f"{key_file} is not a service-account key file ({type(exc).__name__}); download a JSON key for "
            "the service account from Google Cloud (IAM > Service accounts > Keys).") from None
    client = gspread.Client(auth=creds, http_client=SheetsHTTPClient)
    # gspread sets no timeout of its own: without one a stalled connection hangs the command forever.
    client.set_timeout(timeout)
    return client.http_client, creds.service_account_email, key_file


def google_call(call: Callable[[], T], spreadsheet_id: str, worksheet: str, http: gspread.HTTPClient, email: str,
                key_file: str, writing: bool = False, purpose: str | None = None) -> T:
    try:
        return call()
    except gspread.exceptions.APIError as exc:
        raise sheet_error(exc, http, spreadsheet_id, worksheet, email, writing, purpose) from None
    except google_auth_errors.GoogleAuthError as exc:
        raise sign_in_error(exc, key_file) from None
    except OSError as exc:  # requests' connection errors and timeouts are OSErrors
        raise unreachable(exc) from None


def sign_in_error(exc: google_auth_errors.GoogleAuthError, key_file: str) -> SheetAccessError:
    """google.auth raises TransportError (a GoogleAuthError) when the network fails while it signs in:
    that is no refused key (issue #11). A RefreshError is Google's answer about the key itself, unless it
    is marked retryable (the sign-in service failed)."""
    if isinstance(exc, (google_auth_errors.TransportError, google_auth_errors.TimeoutError)):
        return unreachable(exc)
    said = (exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)).rstrip(".")
    if getattr(exc, "retryable", False):
        return GoogleUnreachable(f"could not reach Google: its sign-in service failed ({said}); try again in a "
                                 "few minutes.")
    return SheetAccessError(f"Google refused the key {key_file}: {said}. Check that the service account and "
                            "this key still exist, or download a new JSON key for it.")


def unreachable(exc: BaseException) -> GoogleUnreachable:
    """'could not reach Google (Connection refused)': the operating system's words when there are some
    (refused, name not known, unreachable), else the kind of failure that started it (ReadTimeout, ...)."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    if found:
        why = found.group(1).strip()
    else:
        while exc.__cause__ is not None:
            exc = exc.__cause__
        why = type(exc).__name__
    return GoogleUnreachable(f"could not reach Google ({why}); check the network (or the proxy) and try again.")


def plain_client(http: gspread.HTTPClient, timeout: tuple[float, float]) -> gspread.HTTPClient:
    """A client on the same signed-in session that sends each request once: gspread's back-off client
    re-sends any request answered 5xx, POST included (issue #10), so writes go through this one."""
    # gspread documents auth=None with a session of one's own, but annotates auth as Credentials.
    plain = gspread.HTTPClient(auth=None, session=http.session)  # type: ignore[arg-type]
    plain.set_timeout(timeout)
    return plain


def send_once(send: Callable[[], object], refused: Callable[[gspread.exceptions.APIError], Exception],
              key_file: str) -> str | None:
    """Make one write request without retrying: None when Google confirmed it, else why its outcome is
    unknown (a 429 or 5xx answer, a timeout, a dropped connection). A refusal (4xx) raises refused(exc)."""
    try:
        send()
        return None
    except gspread.exceptions.APIError as exc:
        code = status_code(exc)
        if code == 429 or code >= 500:
            return f"Google answered {code}"
        raise refused(exc) from None
    except google_auth_errors.GoogleAuthError as exc:
        raise sign_in_error(exc, key_file) from None  # signing in failed: the write was never sent
    except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
        return f"no answer: {type(exc).__name__}"


def status_code(exc: gspread.exceptions.APIError) -> int:
    return exc.code if isinstance(exc.code, int) else exc.response.status_code


def sheet_error(exc: gspread.exceptions.APIError, http: gspread.HTTPClient, spreadsheet_id: str, worksheet: str,
                email: str, writing: bool = False, purpose: str | None = None) -> SheetAccessError:
    """What to tell the user about Google's refusal. writing: the refused request was a write; purpose: the
    write the command is for ('append to Sync_Log'), so that even a refused read says Editor is needed."""
    code = status_code(exc)
    message = exc.error.get("message", "") if isinstance(exc.error, dict) else str(exc.error)
    purpose = purpose or (f"append to {SYNC_LOG_TAB}" if writing else None)
    if code == 404:
        return SheetAccessError(
            f"spreadsheet {spreadsheet_id} was not found. Check the id (the part of the sheet's URL after /d/) "
            f"and share the sheet with {email}.")
    if code == 403 and writing:
        return SheetAccessError(
            f"the service account {email} may read but not write spreadsheet {spreadsheet_id}: share it with "
            f"{email} as Editor to {purpose}. Google said: {message}")
    if code == 403 and purpose:
        return SheetAccessError(
            f"the service account {email} may not read spreadsheet {spreadsheet_id}: share it with {email} as "
            f"Editor to {purpose}. Google said: {message}")
    if code == 403:
        return SheetAccessError(
            f"the service account {email} may not read spreadsheet {spreadsheet_id}: share the sheet with "
            f"{email} (Viewer is enough). Google said: {message}")
    if code == 400 and "parse range" in message:
        try:
            meta = http.fetch_sheet_metadata(spreadsheet_id, params={"fields": "sheets.properties.title"})
            tabs = ", ".join(repr(s["properties"]["title"]) for s in meta.get("sheets", []))
        except gspread.exceptions.APIError:
            tabs = "(could not list them)"
        return SheetAccessError(f"spreadsheet {spreadsheet_id} has no tab {worksheet!r}; its tabs are: {tabs}. "
                                "Pass the right one with --worksheet.")
    if code == 429 or code >= 500:
        return SheetAccessError(f"Google Sheets answered {code} ({message}) after retrying; wait a minute "
                                "and run the same command again.")
    return SheetAccessError(f"Google Sheets answered {code}: {message}")


class SheetsHTTPClient(gspread.BackOffHTTPClient):
    """gspread's back-off client (429 and 5xx), giving up after about 30 s instead of four minutes."""

    _MAX_BACKOFF = 16
