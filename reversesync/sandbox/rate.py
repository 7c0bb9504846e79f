"""Rate limiting: Iconik's published budgets per App-ID/Auth-Token pair (ICONIK-FACTS 5), counted for every
request so that each answer's RateLimit-Remaining reads as Iconik's would, and enforced (429) only on demand."""

import collections
import threading
import time

ICONIK_RATE = 50.0
WINDOW_SECONDS = 20.0
REMAINING_READINGS = ("bucket", "window")


class RateLimiter:
    """Iconik's two budgets: a bucket of `rate` per second holding one second's worth, and 20 x rate
    requests in any 20 s window. It always counts (for RateLimit-Remaining); it refuses only if enforce."""

    def __init__(self, rate: float = ICONIK_RATE, enforce: bool = False, remaining: str = "bucket") -> None:
        if remaining not in REMAINING_READINGS:
            raise ValueError(f"remaining must be one of {', '.join(REMAINING_READINGS)}")
        self.rate = float(rate)
        self.enforce = enforce
        self.remaining = remaining
        self.capacity = max(1.0, self.rate)
        self.window_size = int(round(WINDOW_SECONDS * self.rate))
        self.tokens = self.capacity
        self.window: collections.deque[float] = collections.deque()
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self, enforce: bool = True) -> tuple[bool, int, float]:
        """(allowed, remaining, retry_after_seconds) for one request; enforce=False counts it whatever."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            while self.window and self.window[0] <= now - WINDOW_SECONDS:
                self.window.popleft()
            if self.enforce and enforce:
                if len(self.window) >= self.window_size:
                    return False, 0, self.window[0] + WINDOW_SECONDS - now
                if self.tokens < 1.0:
                    return False, 0, (1.0 - self.tokens) / self.rate
            self.tokens = max(0.0, self.tokens - 1.0)
            self.window.append(now)
            return True, self._remaining(), 0.0

    def _remaining(self) -> int:
        if self.remaining == "window":
            return max(0, self.window_size - len(self.window))
        return int(self.tokens)
