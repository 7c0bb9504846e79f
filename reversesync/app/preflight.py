"""The preflight every command that talks to Iconik takes before its first row (run, resume, undo, verify, sync):
who the token is, whether its user has the roles, and whether the URL is Iconik's API at all. Its failures say
what only a person can fix (exit 2) apart from what heals by itself (exit 3), and while Iconik keeps it waiting
the sink hears how long (issue #17)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from .. import errors, progress
from ..clock import Clock
from ..types import Json

T = TypeVar("T")

# How often the person watching hears that the preflight still waits.
TICK = 1.0


def checked(check: Callable[[], Json], url: str, sink: progress.Sink, clock: Clock, hint: str,
            on_refusal: Callable[[], None] = lambda: None) -> Json:
    """The token's user from check(), or the error the command ends with. on_refusal runs before any error is
    raised (a run closes its record, so that `resume` continues it)."""
    try:
        return waiting_out(check, url, sink, clock)
    except (errors.AuthError, errors.Forbidden) as exc:
        on_refusal()
        fix = ("set ICONIK_APP_ID and ICONIK_AUTH_TOKEN to a valid application token" if exc.status == 401
               else "grant the role(s) in Iconik (Admin > Roles)")
        raise errors.MustAct(f"Iconik refused the credentials ({exc.status}): {exc.message}. Nothing was written. "
                             f"First {fix}, then: {hint}") from None
    except errors.ConfigError:
        on_refusal()
        raise
    except errors.IconikError as exc:
        on_refusal()
        raise errors.Stopped(f"Iconik is unreachable at {url}: {exc}. Nothing was written. When it answers, "
                             f"continue with: {hint}") from None


def who(user: Json) -> str:
    """The token's user as a person would name it."""
    return user.get("email") or " ".join(filter(None, (user.get("first_name"), user.get("last_name")))) or "?"


def waiting_out(call: Callable[[], T], url: str, sink: progress.Sink, clock: Clock) -> T:
    """call() in a thread of its own, telling the sink every TICK seconds how long it has waited; Ctrl-C stops the
    wait at once (the request is abandoned: a preflight only reads)."""
    outcome: dict[str, object] = {}
    finished = threading.Condition()

    def work() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the waiting thread, which raises it
            outcome["error"] = exc
        with finished:
            finished.notify_all()

    began = clock.monotonic()
    threading.Thread(target=work, name="preflight", daemon=True).start()
    with finished:
        while not outcome:
            clock.wait(finished, TICK)
            if not outcome:
                sink(progress.Connecting(url, clock.monotonic() - began))
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
