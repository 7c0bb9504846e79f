"""The exceptions reversesync raises. Transient ones are retried; terminal ones are recorded and the run moves on.

The CLI maps each family to an exit code (see README, "Exit codes").
"""


class ReverseSyncError(Exception):
    """Base class of every error reversesync raises on purpose."""


# --- input and ledger ---------------------------------------------------------------------------------


class InputError(ReverseSyncError):
    """The input (sheet, CSV, options) cannot be used; nothing was changed."""


class SheetAccessError(InputError):
    """Google Sheets refused or failed the read; the message says what to fix."""


class LedgerError(ReverseSyncError):
    """The ledger file cannot be used as it is."""


class LedgerTooNew(LedgerError):
    """The ledger was written by a newer reversesync; it is left untouched."""


class LedgerLocked(LedgerError):
    """Another reversesync process is working on this ledger."""


class IllegalTransition(LedgerError):
    """A row was asked to move between states that the state table does not allow."""


class LockLost(LedgerError):
    """Another process took this ledger's lock; this process must stop writing at once."""


class LedgerUnavailable(LedgerError):
    """The ledger cannot be written just now (disk full, busy); a resume can continue once it can."""


# --- Iconik -------------------------------------------------------------------------------------------


class IconikError(ReverseSyncError):
    """An Iconik request failed; carries method, path, HTTP status and Iconik's own message."""

    def __init__(self, method, path, status=None, message=""):
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


class AuthError(IconikError):
    """401, or a role the whole run needs is missing: the credentials cannot do the job; the run must stop."""


class Forbidden(TerminalError):
    """403 on one request: the token's user may not do this to this asset; recorded against the row."""


class UnexpectedAnswer(TerminalError):
    """Iconik answered with a shape a decision cannot be taken from (a field missing, a stray segment)."""


class NotFound(TerminalError):
    """404: the asset or segment does not exist."""


class Conflict(TerminalError):
    """409: Iconik refused the write because the segment changed underneath it."""


class BadRequest(TerminalError):
    """400 or another 4xx: Iconik rejected the request body."""


class RateLimited(TransientError):
    """429: over Iconik's rate limit; retry_after is the server's hint in seconds, or None."""

    def __init__(self, method, path, retry_after=None, message=""):
        super().__init__(method, path, 429, message)
        self.retry_after = retry_after


class ServerError(TransientError):
    """5xx: Iconik failed; retried, then recorded."""


class ConnectionFailed(TransientError):
    """The connection failed; never_sent is True when the request provably did not leave this machine."""

    def __init__(self, method, path, message="", never_sent=False):
        super().__init__(method, path, None, message)
        self.never_sent = never_sent


class UnknownOutcome(IconikError):
    """A write may or may not have been applied (timeout or dropped connection after sending)."""


class Duplicated(ReverseSyncError):
    """A write whose answer was lost landed more than once: several segments carry its marker."""

    def __init__(self, segments):
        self.segments = segments
        self.message = "segments " + ", ".join(
            f"{s.get('id')} ({s.get('time_start_milliseconds')}-{s.get('time_end_milliseconds')} ms)"
            for s in segments) + " carry the same reversesync marker"
        super().__init__(self.message)


class ConfigError(ReverseSyncError):
    """A required setting (URL, App-ID, Auth-Token) is missing; no request was made."""


class EndpointError(ConfigError):
    """The Iconik URL cannot work as given (malformed, or its TLS certificate is refused); exit 2."""


class PatchReplaced(ReverseSyncError):
    """Iconik answered a PATCH of a segment's times with other fields changed too: its PATCH replaced the segment
    like a PUT. Every further write could reset a person's work, so the run stops (exit 2, issue #15).

    segments: [(asset id, segment id, [changed field, ...])]; the list may grow while in-flight PATCHes land."""

    def __init__(self, segments):
        super().__init__()
        self.segments = segments

    def __str__(self):
        named = "; ".join(f"segment {segment_id} of asset {asset_id} ({', '.join(fields)})"
                          for asset_id, segment_id, fields in list(self.segments))
        return (f"Iconik's answer to a PATCH of the times shows other fields changed too: {named}. Its PATCH "
                "seems to replace the whole segment, so reversesync stopped writing. Check those segments in Iconik "
                "(restore the fields by hand if needed) and report it before running again.")
