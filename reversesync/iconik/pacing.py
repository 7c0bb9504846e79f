"""Pacing requests to Iconik's limits (ICONIK-FACTS 5, 7.7), and counting them: shared by every worker."""

from __future__ import annotations

import collections
import datetime
import email.utils
import threading
import time
from collections.abc import Callable

from ..types import DEFAULT_RATE

# Iconik's published limits per App-ID/Auth-Token pair (ICONIK-FACTS 5).
WINDOW_REQUESTS, WINDOW_SECONDS = 1000, 20.0

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

    def __init__(self, rate: float = DEFAULT_RATE, window_requests: int = WINDOW_REQUESTS,
                 window_seconds: float = WINDOW_SECONDS, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
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
        self._sent: collections.deque[float] = collections.deque()  # our send times inside the window
        self._last_second: collections.deque[float] = collections.deque()  # our send times inside the last second
        self._seq = 0
        # send time -> (sequence number, least Remaining our own sends explain)
        self._expected: dict[float, tuple[int, float]] = {}
        # Requests up to these sequence numbers were sent before the last cut for a 429 / for a warning.
        self._cut_seq = {THROTTLE_CUT: 0, WARNING_CUT: 0}
        self._last_change = float("-inf")
        self.rate_at_last_429 = float("inf")

    def wait(self) -> float:
        """Block until this thread may send a request; returns the send time."""
        while True:
            with self._lock:
                now = self._clock()
                start = self._start_time(now)
                if start <= now:
                    self._grant(now)
                    return now
            self._sleep(min(start - now, 0.25))

    def _start_time(self, now: float) -> float:
        start = max(self._next, self._paused_until)
        if self.window_requests:
            drop_before(self._sent, now - self.window_seconds)
            if len(self._sent) >= self.window_requests:
                start = max(start, self._sent[0] + self.window_seconds)
        return start

    def _grant(self, now: float) -> None:
        # Keep the schedule after a late wake-up, so sleep overshoot does not cost throughput; after an
        # idle spell start a new one, so an idle pacer never releases a burst.
        interval = max(1.0 / self.rate, self._min_interval)
        self._next = self._next + interval if now - self._next < interval else now + interval
        if self.window_requests:
            self._sent.append(now)
        self._last_second.append(now)
        drop_before(self._last_second, now - 1.0)
        self._seq += 1
        self._expected[now] = (self._seq, self._least_remaining())
        # Forget sends whose answer will never come (transport errors): older than any answer can be.
        horizon = now - max(60.0, 2 * self.window_seconds)
        while self._expected and next(iter(self._expected)) < horizon:
            del self._expected[next(iter(self._expected))]

    def _least_remaining(self) -> float:
        """The least RateLimit-Remaining our own sends explain, whichever budget Iconik reports."""
        least = self.second_budget - len(self._last_second)
        if self.window_requests:
            least = min(least, self.window_requests - len(self._sent))
        return least

    def pause(self, seconds: float) -> None:
        """Stop every worker for seconds (a 429's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def throttled(self, sent_at: float) -> None:
        """A 429 for a request sent at sent_at: slow down once per burst of them, not once per worker."""
        with self._lock:
            seq, _ = self._expected.pop(sent_at, (0, None))
            self._cut(seq, THROTTLE_CUT)

    def answered(self, sent_at: float, remaining: float | None = None) -> None:
        """Any other answer: ease off if Remaining shows the budget spent elsewhere, else recover the pace."""
        with self._lock:
            expected = self._expected.pop(sent_at, None)
            if expected is None:
                return  # sent so long ago that it tells nothing about the pace now
            seq, least = expected
            sent_since = self._seq - seq  # sent after this request: they may have reached Iconik before it
            if remaining is not None and remaining <= self.low and remaining < least - sent_since - self.slack:
                self.warnings += 1
                self._cut(seq, WARNING_CUT)
            elif seq > max(self._cut_seq.values()):
                self._recover()

    def _cut(self, seq: int, factor: float) -> None:
        """Slow down, unless the request was sent before the last such cut: one per burst, not per worker."""
        if seq > self._cut_seq[factor]:
            if factor == THROTTLE_CUT:
                self.rate_at_last_429 = self.rate
            self.rate = max(self.min_rate, self.rate * factor)
            self._cut_seq[factor] = self._seq
            self._last_change = self._clock()

    def _recover(self) -> None:
        """Climb back: quickly up to near the pace of the last 429, slowly through it, quickly beyond it."""
        now = self._clock()
        if self.rate < self.max_rate:
            speed = self.max_rate * RECOVERY
            low, high = (share * self.rate_at_last_429 for share in NEAR_LAST_429)
            if low <= self.rate <= high:  # the server's limit is probably about there: probe it gently
                speed *= NEAR_LAST_429_SLOWDOWN
            self.rate = min(self.max_rate, self.rate + speed * max(0.0, now - self._last_change))
        self._last_change = now


def drop_before(times: collections.deque[float], cutoff: float) -> None:
    """Drop the times at or before cutoff from the left of a sorted deque."""
    while times and times[0] <= cutoff:
        times.popleft()


class Stats:
    """Counters every run reports (requests by method, 429s, writes), when we last sent and Iconik last answered."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.by_method: collections.Counter[str] = collections.Counter()
        self.throttled = 0
        self.writes = 0
        self.last_sent: float | None = None  # monotonic time the last request went on the wire
        self.last_answer: float | None = None  # monotonic time of the last HTTP answer, errors included
        self.in_flight = 0
        self._busy_since: float | None = None

    def sent(self) -> None:
        """A request goes on the wire now."""
        with self._lock:
            now = self._clock()
            if not self.in_flight:
                self._busy_since = now
            self.in_flight += 1
            self.last_sent = now

    def count(self, method: str, status: int | None, write: bool = False) -> None:
        """A request ended: with an HTTP status, or None when no answer came (the connection failed)."""
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
            if status is not None:
                self.last_answer = self._clock()
            self.by_method[method] += 1
            self.writes += write
            if status == 429:
                self.throttled += 1

    def waiting_for(self) -> float:
        """Seconds without an answer while requests are on the wire ("waiting on Iconik for N s"); 0 when idle."""
        with self._lock:
            if not self.in_flight or self._busy_since is None:
                return 0.0
            return self._clock() - max(self._busy_since, self.last_answer or self._busy_since)

    @property
    def requests(self) -> int:
        return sum(self.by_method.values())


def parse_retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
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


