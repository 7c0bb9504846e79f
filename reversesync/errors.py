"""The exceptions reversesync raises, each with what it means for the person running it.

Transient errors are retried (reads) or waited out; terminal ones are recorded against the row and the run moves
on; the rest stop the command. Every class carries its reason code (what a failed row records), its exit status
and its remedy, so that one place (exit_status, stopped_cause) turns any of them into what the user is told.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .types import ExitStatus


class ReverseSyncError(Exception):
    """Base class of every error reversesync raises on purpose."""

    exit_status: ClassVar[ExitStatus] = ExitStatus.INPUT
    reason: ClassVar[str] = "internal_error"
    remedy: ClassVar[str] = "look at the cause above"

    def cause(self) -> str:
        """What went wrong, as a sentence for 'stopped: ...'."""
        return f"{type(self).__name__}: {self}."


# --- input, configuration and output --------------------------------------------------------------------


class InputError(ReverseSyncError):
    """The input (sheet, CSV, options) cannot be used; nothing was changed."""


class SheetAccessError(InputError):
    """Google Sheets refused or failed the read; the message says what to fix."""


class GoogleUnreachable(SheetAccessError):
    """Google did not answer (network, proxy, a sign-in service failing); trying again later can work."""

    exit_status = ExitStatus.RESUMABLE


class OutputRefused(InputError):
    """The output path cannot be written as asked; nothing was written there."""


class ConfigError(ReverseSyncError):
    """A required setting (URL, App-ID, Auth-Token) is missing; no request was made."""


class EndpointError(ConfigError):
    """The Iconik URL cannot work as given (malformed, or its TLS certificate is refused)."""


# --- the ledger -------------------------------------------------------------------------------------------


class LedgerError(ReverseSyncError):
    """The ledger file cannot be used as it is."""

    remedy = "fix the ledger's disk or close the program holding it"

    def cause(self) -> str:
        return str(self)


class LedgerMissing(LedgerError):
    """There is no ledger at the path (or only the empty file a failed first load left); `load` makes one."""


class NotALedger(LedgerError):
    """The file is another application's SQLite database; it is refused and left untouched."""


class LedgerReadOnly(LedgerError):
    """A command that writes was pointed at a ledger it cannot write."""


class LedgerNeedsUpgrade(LedgerError):
    """A read-only opening found a ledger written by an older reversesync; upgrading it needs a write."""


class LedgerTooNew(LedgerError):
    """The ledger was written by a newer reversesync; it is left untouched."""


class LedgerPlace(LedgerError):
    """The ledger is somewhere it must not be (issue #18): the default one in a system folder, where a scheduled
    task would make a second ledger, or one on a network share, remote drive or OneDrive without
    --allow-network-ledger. Nothing was created or opened."""

    remedy = "give --ledger one absolute path on a local disk"


class IllegalTransition(LedgerError):
    """A row was asked to move between states that the state table does not allow (a bug: the row fails)."""


class LedgerLocked(LedgerError):
    """Another reversesync process is working on this ledger."""

    exit_status = ExitStatus.RESUMABLE


class LockLost(LedgerError):
    """Another process took this ledger's lock; this process must stop writing at once."""

    exit_status = ExitStatus.RESUMABLE
    remedy = "let the other process finish"


class LedgerUnavailable(LedgerError):
    """The ledger cannot be written just now (disk full, busy); a resume can continue once it can."""

    exit_status = ExitStatus.RESUMABLE


# --- Iconik ---------------------------------------------------------------------------------------------


class IconikError(ReverseSyncError):
    """An Iconik request failed; carries method, path, HTTP status and Iconik's own message."""

    exit_status = ExitStatus.RESUMABLE
    reason = "server_error"

    def __init__(self, method: str, path: str, status: int | None = None, message: str = "") -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        where = f"{method} {path}"
        status_text = f" answered {status}" if status else ""
        super().__init__(f"{where}{status_text}: {message}" if message else f"{where}{status_text}")


class TransientError(IconikError):
    """Worth retrying: the server was busy or the connection failed before anything was applied."""


class TerminalError(IconikError):
    """Retrying will not help: record it against the row and move on."""

    exit_status = ExitStatus.INPUT
    reason = "bad_request"


class AuthError(IconikError):
    """401, or a role the whole run needs is missing: the credentials cannot do the job; the run must stop, and
    only a person can fix it (exit 2: it never heals by itself)."""

    exit_status = ExitStatus.INPUT
    remedy = "fix the token or its access in Iconik"

    def cause(self) -> str:
        if self.status == 401:
            return f"Iconik no longer accepts the token (401: {self.message})."
        return f"{self.message}."


class Forbidden(TerminalError):
    """403 on one request: the token's user may not do this to this asset; recorded against the row."""

    reason = "forbidden"


class UnexpectedAnswer(TerminalError):
    """Iconik answered with a shape a decision cannot be taken from (a field missing, a stray segment)."""


class NotJson(UnexpectedAnswer):
    """A 2xx answer whose body is not JSON: on the preflight, the URL is some other web server (issue #17)."""

    reason = "unexpected_answer"


class NotFound(TerminalError):
    """404: the asset or segment does not exist."""

    reason = "not_found"


class Conflict(TerminalError):
    """409: Iconik refused the write because the segment changed underneath it."""

    reason = "conflict"


class BadRequest(TerminalError):
    """400 or another 4xx: Iconik rejected the request body."""


class RateLimited(TransientError):
    """429: over Iconik's rate limit; retry_after is the server's hint in seconds, or None."""

    reason = "rate_limited"

    def __init__(self, method: str, path: str, retry_after: float | None = None, message: str = "") -> None:
        super().__init__(method, path, 429, message)
        self.retry_after = retry_after


class ServerError(TransientError):
    """5xx: Iconik failed; retried, then recorded."""


class ConnectionFailed(TransientError):
    """The connection failed; never_sent is True when the request provably did not leave this machine."""

    reason = "connection_error"

    def __init__(self, method: str, path: str, message: str = "", never_sent: bool = False) -> None:
        super().__init__(method, path, None, message)
        self.never_sent = never_sent


class IconikUnreachable(TransientError):
    """Iconik stopped answering, or kept failing, mid-run: the run stops and is resumable."""

    remedy = "wait until Iconik answers again"

    def cause(self) -> str:
        return f"Iconik stopped answering: {self.message}."


class UnknownOutcome(IconikError):
    """A write may or may not have been applied (timeout or dropped connection after sending)."""

    reason = "unknown_outcome"


class Duplicated(ReverseSyncError):
    """A write whose answer was lost landed more than once: several segments carry its marker."""

    reason = "duplicated"

    def __init__(self, segments: list[dict[str, Any]]) -> None:
        self.segments = segments
        self.message = "segments " + ", ".join(
            f"{s.get('id')} ({s.get('time_start_milliseconds')}-{s.get('time_end_milliseconds')} ms)"
            for s in segments) + " carry the same reversesync marker"
        super().__init__(self.message)


class PatchReplaced(ReverseSyncError):
    """Iconik answered a PATCH of a segment's times with other fields changed too: its PATCH replaced the segment
    like a PUT. Every further write could reset a person's work, so the run stops (issue #15).

    segments: [(asset id, segment id, [changed field, ...])]; the list may grow while in-flight PATCHes land."""

    def __init__(self, segments: list[tuple[str | None, str | None, list[str]]]) -> None:
        super().__init__()
        self.segments = segments

    def __str__(self) -> str:
        named = "; ".join(f"segment {segment_id} of asset {asset_id} ({', '.join(fields)})"
                          for asset_id, segment_id, fields in list(self.segments))
        return (f"Iconik's answer to a PATCH of the times shows other fields changed too: {named}. Its PATCH "
                "seems to replace the whole segment, so reversesync stopped writing. Check those segments in Iconik "
                "(restore the fields by hand if needed) and report it before running again.")


class Stopped(ReverseSyncError):
    """A command stopped before finishing for a reason outside the data: preflight refused, Iconik unreachable, a
    run that stopped on its own. The message names the cause and how to continue (resume)."""

    exit_status = ExitStatus.RESUMABLE


class MustAct(ReverseSyncError):
    """A command refused to go on until a person acts: an unfinished undo to resume first, a hold to clear, a token
    Iconik refuses or whose user lacks a role, a URL that is not Iconik's API."""


class Interrupted(ReverseSyncError):
    """Ctrl-C, or stdout closed: every committed step stands; the message says how to continue."""

    exit_status = ExitStatus.INTERRUPTED


def exit_status(exc: BaseException) -> ExitStatus:
    """The exit status a command ends with when exc stops it."""
    if isinstance(exc, ReverseSyncError):
        return exc.exit_status
    if isinstance(exc, (KeyboardInterrupt, BrokenPipeError)):
        return ExitStatus.INTERRUPTED
    return ExitStatus.FAILED_ROWS


def stopped_cause(exc: BaseException | None) -> tuple[str, str]:
    """(what stopped a run, what to do about it): the two halves of the 'stopped: ...' line."""
    if isinstance(exc, ReverseSyncError):
        return exc.cause(), exc.remedy
    return f"{type(exc).__name__}: {exc}.", ReverseSyncError.remedy
