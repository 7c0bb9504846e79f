"""Whether a person is at the keyboard (issue #18): the token prompt appears only then.

`isatty()` alone is not enough on Windows: `NUL` is a character device, so `reversesync run < NUL` and the
hidden console of a task that runs "whether the user is logged on or not" answer True, and a prompt there waits
forever, skipping every later night. A real console is one whose handle Windows gives a console mode for.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import IO, Any


def _windows_console_mode(fd: int) -> bool:
    """GetConsoleMode on the descriptor's handle: it succeeds only for a console (not NUL, not a pipe)."""
    import ctypes
    import msvcrt

    handle = msvcrt.get_osfhandle(fd)  # type: ignore[attr-defined]
    mode = ctypes.c_uint32()
    return bool(ctypes.windll.kernel32.GetConsoleMode(handle, ctypes.byref(mode)))  # type: ignore[attr-defined]


# Swapped by tests that play Windows on Linux.
console_mode: Callable[[int], bool] = _windows_console_mode


def is_console(stream: IO[Any] | None, windows: bool | None = None) -> bool:
    """True when stream is an interactive console a person types into or reads."""
    if stream is None:
        return False
    try:
        fd = stream.fileno()
        if not os.isatty(fd):
            return False
    except (AttributeError, OSError, ValueError):
        return False
    on_windows = os.name == "nt" if windows is None else windows
    if on_windows:
        try:
            return console_mode(fd)
        except (ImportError, OSError, AttributeError):
            return False
    return True


def break_acts_as_ctrl_c(signals: Any = signal) -> None:
    """Ctrl-Break (and a console closing, which Windows sends a process group as a break) stops reversesync as
    Ctrl-C does: the run stops between rows, its open writes kept for resume, instead of dying mid-row with the
    sandbox's --dump unwritten. Task Scheduler's "End" kills the process outright; only the ledger's commits
    protect against that. No SIGBREAK outside Windows: nothing to do."""
    sigbreak = getattr(signals, "SIGBREAK", None)
    if sigbreak is not None:
        signals.signal(sigbreak, signals.default_int_handler)
