"""Time, injected: every wait of the engine, the schedule, verify and the progress display goes through a Clock,
so tests run them on a fake clock instead of waiting for real (issue #16).

A Clock tells the wall time (what the ledger records, settle times across processes) and the monotonic time
(durations), and waits: on nothing (sleep), or on a threading.Condition that another thread notifies.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Wait on condition (held by the caller) until notified or timeout seconds have passed."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        condition.wait(timeout)


SYSTEM = SystemClock()


class FakeClock:
    """A clock that moves only when something waits on it: sleep(s) and a timed wait move it forward at once.

    A timed wait on a condition first gives other threads a moment to notify it (they run on real time), then
    moves the clock to the end of the timeout; an untimed wait is a real one."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.time()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        if timeout is None:
            condition.wait()
            return
        if not condition.wait(0.001):
            self.advance(timeout)
