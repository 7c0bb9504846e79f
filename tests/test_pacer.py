"""The Pacer against simulated Iconiks on a fake clock: logical tests, no timing.

Each simulated Iconik enforces both published limits (50/s, 1000 per 20 s) and reports RateLimit-Remaining
under one reading: "bucket" (what is left of this second's budget) or "window" (what is left of the 20 s
window). ICONIK-FACTS 7.7 leaves open which one Iconik uses, so the client must run at the limit under both.
"""

import collections
import http.server
import json
import math
import threading
import time

import pytest

from reversesync.iconik import IconikClient, Pacer
from reversesync.iconik.pacing import THROTTLE_CUT, WARNING_CUT

RATE, WINDOW_REQUESTS, WINDOW_SECONDS = 50, 1000, 20.0
READINGS = ["bucket", "second", "window"]
LATENCY = 0.15  # seconds from send to answer: about eight requests in flight at 50/s


class FakeClock:
    """A monotonic clock that only moves when someone sleeps; on_move(now) runs each time it does."""

    def __init__(self):
        self.now = 0.0
        self.on_move = lambda now: None

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(seconds, 1e-6)
        self.on_move(self.now)


class FakeIconik:
    """Both limits on one token shared by every caller; Remaining under one reading.

    "bucket": what is left of a token bucket of one second's budget; "second": what is left of this calendar
    second's budget; "window": what is left of the 20 s window."""

    def __init__(self, reading, rate=RATE, window_requests=WINDOW_REQUESTS, window_seconds=WINDOW_SECONDS):
        self.reading = reading
        self.rate = rate
        self.window_requests, self.window_seconds = window_requests, window_seconds
        self.tokens, self.stamp = float(rate), 0.0
        self.this_second, self.in_this_second = None, 0
        self.window = collections.deque()

    def arrive(self, at):
        """(status, remaining, retry_after) for a request arriving at `at` (arrivals in time order)."""
        self.tokens = min(self.rate, self.tokens + (at - self.stamp) * self.rate)
        self.stamp = at
        if int(at) != self.this_second:
            self.this_second, self.in_this_second = int(at), 0
        while self.window and self.window[0] <= at - self.window_seconds:
            self.window.popleft()
        if len(self.window) >= self.window_requests:
            return 429, 0, self.window[0] + self.window_seconds - at
        if self.tokens < 1 or self.in_this_second >= self.rate:
            return 429, 0, max((1 - self.tokens) / self.rate, 0.0 if self.tokens < 1 else int(at) + 1 - at)
        self.tokens -= 1
        self.in_this_second += 1
        self.window.append(at)
        return 200, self.remaining(), None

    def remaining(self):
        if self.reading == "bucket":
            return int(self.tokens)
        if self.reading == "second":
            return self.rate - self.in_this_second
        return self.window_requests - len(self.window)


class Run:
    """Our client's requests against a FakeIconik, answered LATENCY later, with another client perhaps."""

    def __init__(self, reading, other_rate=0.0, other_until=math.inf, use_remaining=True, server_rate=RATE):
        self.clock = FakeClock()
        self.pacer = Pacer(RATE, window_requests=WINDOW_REQUESTS, window_seconds=WINDOW_SECONDS, clock=self.clock,
                           sleep=self.clock.sleep)
        self.server = FakeIconik(reading, rate=server_rate)
        self.clock.now = self.server.stamp = 1.0
        self.others = (1.0 + n / other_rate for n in range(10 ** 9)) if other_rate else iter(())
        self.next_other = next(self.others, math.inf)
        self.other_until = other_until
        self.use_remaining = use_remaining
        self.pending = collections.deque()
        self.sent = self.throttled = 0
        self.per_second = collections.Counter()  # our answered (200) requests per whole second of the run
        self.clock.on_move = self.deliver

    def go(self, seconds):
        while self.clock.now < 1.0 + seconds:
            at = self.pacer.wait()
            self.deliver(at)
            while self.next_other <= at and self.next_other < self.other_until:
                self.server.arrive(self.next_other)
                self.next_other = next(self.others, math.inf)
            status, remaining, retry_after = self.server.arrive(at)
            self.sent += 1
            self.per_second[int(at - 1.0)] += status == 200
            self.pending.append((at + LATENCY, at, status, remaining, retry_after))
        return self

    def deliver(self, now):
        while self.pending and self.pending[0][0] <= now:
            _, sent_at, status, remaining, retry_after = self.pending.popleft()
            if status == 429:
                self.throttled += 1
                self.pacer.throttled(sent_at)
                self.pacer.pause(max(0.0, sent_at + retry_after - now))
            else:
                self.pacer.answered(sent_at, remaining if self.use_remaining else None)

    def answered(self, first=0, last=None):
        last = max(self.per_second) + 1 if last is None else last
        return sum(self.per_second[s] for s in range(first, last))

    def slowest_second(self, first=0, last=None):
        last = max(self.per_second) if last is None else last
        return min(self.per_second[s] for s in range(first, last))


@pytest.mark.parametrize("reading", READINGS)
def test_alone_on_the_token_the_pace_holds_the_limit_under_every_reading(reading):
    run = Run(reading).go(60)
    assert run.throttled == 0
    assert run.pacer.warnings == 0 and run.pacer.rate == RATE
    # every whole second from start to end, not just on average: the window reading used to sink after 15 s
    assert run.slowest_second() >= 45
    assert run.answered() >= 49 * 60


def test_the_window_reading_falls_to_zero_at_full_pace_and_that_is_no_warning():
    run = Run("window").go(25)
    assert run.server.remaining() <= 10  # what the old reading took for "about to exceed"
    assert run.pacer.warnings == 0 and run.slowest_second() >= 45


@pytest.mark.parametrize("reading", READINGS)
def test_a_token_shared_with_a_greedy_client_draws_few_429s_and_uses_what_is_left(reading):
    run = Run(reading, other_rate=15).go(60)  # the other client never slows down: the worst case
    assert run.throttled <= 0.03 * run.sent
    assert run.answered() >= 0.85 * (RATE - 15) * 60


@pytest.mark.parametrize("reading", READINGS)
def test_a_server_stricter_than_configured_is_followed_near_its_limit_with_few_429s(reading):
    run = Run(reading, server_rate=20).go(60)  # 20/s while the client is configured for 50/s
    assert run.answered() >= 0.8 * 20 * 60
    assert run.throttled <= 0.05 * run.sent


@pytest.mark.parametrize("reading", READINGS)
def test_once_the_other_client_stops_the_pace_climbs_back_to_the_limit(reading):
    run = Run(reading, other_rate=15, other_until=31.0).go(80)
    assert run.pacer.rate == RATE
    assert run.slowest_second(70, 80) >= 45


# --- the rules one at a time ----------------------------------------------------------------------------


def paced(rate=RATE, **options):
    clock = FakeClock()
    return clock, Pacer(rate, clock=clock, sleep=clock.sleep, **options)


def test_a_429_cuts_the_pace_once_per_burst_not_once_per_worker():
    clock, pacer = paced()
    sends = [pacer.wait() for _ in range(8)]
    for sent_at in sends:  # eight workers all answered 429 for the same burst
        pacer.throttled(sent_at)
    assert pacer.rate == pytest.approx(RATE * THROTTLE_CUT)
    pacer.throttled(pacer.wait())  # a request sent after the cut: a new burst
    assert pacer.rate == pytest.approx(RATE * THROTTLE_CUT ** 2)


def answer_for(clock, pacer, seconds):
    until = clock.now + seconds
    while clock.now < until:
        pacer.answered(pacer.wait(), None)


def test_after_a_429_the_pace_climbs_quickly_to_near_where_it_was_then_probes_slowly():
    clock, pacer = paced()
    pacer.throttled(pacer.wait())
    answer_for(clock, pacer, 3.0)
    assert 0.9 * RATE <= pacer.rate < RATE  # back near the pace that drew the 429 within seconds
    answer_for(clock, pacer, 30.0)
    assert pacer.rate == RATE


def test_a_pace_far_below_the_last_429_climbs_quickly():
    clock, pacer = paced()
    for _ in range(5):
        pacer.throttled(pacer.wait())
    assert pacer.rate < 0.4 * RATE
    answer_for(clock, pacer, 10.0)
    assert pacer.rate >= 0.9 * pacer.rate_at_last_429


def test_answers_to_requests_sent_before_a_cut_do_not_undo_it():
    clock, pacer = paced()
    early = pacer.wait()
    pacer.throttled(pacer.wait())
    clock.sleep(5)
    pacer.answered(early, None)
    assert pacer.rate == pytest.approx(RATE * THROTTLE_CUT)


def test_low_remaining_that_our_own_sends_explain_is_no_warning():
    clock, pacer = paced(window_requests=20, window_seconds=10.0)
    sends = [pacer.wait() for _ in range(18)]
    pacer.answered(sends[-1], 2)  # window reading: 20 - 18 = 2 left, exactly our own doing
    assert pacer.warnings == 0


@pytest.mark.parametrize("reading", ["per second", "window"])
def test_remaining_falling_with_our_own_sends_never_slows_the_pace(reading):
    clock, pacer = paced()
    for n in range(1, 50):
        pacer.answered(pacer.wait(), RATE - n if reading == "per second" else WINDOW_REQUESTS - n)
    assert pacer.warnings == 0 and pacer.rate == RATE


def test_low_remaining_that_our_own_sends_do_not_explain_is_a_warning():
    clock, pacer = paced()
    pacer.answered(pacer.wait(), 0)  # first request, yet nothing left: someone else spends this token
    assert pacer.warnings == 1 and pacer.rate == pytest.approx(RATE * WARNING_CUT)


def test_remaining_our_sends_do_not_explain_but_far_from_zero_is_no_warning():
    clock, pacer = paced()
    pacer.answered(pacer.wait(), 20)  # a smaller budget than ours, not about to run out: nothing to do yet
    assert pacer.warnings == 0


def test_requests_sent_after_this_one_may_have_reached_iconik_first():
    clock, pacer = paced(window_requests=0)
    first = pacer.wait()
    for _ in range(40):
        pacer.wait()
    pacer.answered(first, 4)  # 49 left after it, less 40 later requests that may have been counted first
    assert pacer.warnings == 0


def test_the_pace_never_drops_below_its_floor():
    clock, pacer = paced()
    for _ in range(200):
        pacer.throttled(pacer.wait())
    assert pacer.rate == pacer.min_rate == RATE / 20


def test_a_pause_holds_every_request_until_it_ends():
    clock, pacer = paced()
    pacer.pause(3.0)
    assert pacer.wait() >= 3.0


def test_the_window_is_never_exceeded_whatever_the_rate():
    clock, pacer = paced(rate=1000, window_requests=100, window_seconds=2.0)
    sends = [pacer.wait() for _ in range(500)]
    for n in range(len(sends) - 100):
        assert sends[n + 100] - sends[n] >= 2.0


# --- over real loopback HTTP: one generous floor, as a smoke test of the whole path ---------------------


class LimitedServer:
    """A tiny HTTP server with Iconik's limits scaled down (50/s, 100 per 2 s), Remaining in one reading.

    The window fills, and under the window reading Remaining falls to 0, within 2 s instead of 20."""

    def __init__(self, reading):
        self.reading = reading
        self.lock = threading.Lock()
        self.limit = FakeIconik(reading, window_requests=100, window_seconds=2.0)
        self.started = time.monotonic()
        self.answers = collections.Counter()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                status, remaining = owner.arrive()
                body = json.dumps({"id": "user"} if status == 200 else {"errors": ["Too many requests"]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("RateLimit-Remaining", str(remaining))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def arrive(self):
        with self.lock:
            status, remaining, _ = self.limit.arrive(time.monotonic() - self.started)
            self.answers[status] += 1
            return status, remaining

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("reading", ["bucket", "window"])
def test_over_loopback_the_client_keeps_its_pace_under_either_reading(reading):
    server = LimitedServer(reading)
    client = IconikClient(server.url, "app", "token", pacer=Pacer(RATE, window_requests=100, window_seconds=2.0),
                          workers=8, backoff=0.01)
    until = time.monotonic() + 3.0

    def worker():
        while time.monotonic() < until:
            client.current_user()

    try:
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        client.close()
        server.stop()
    # About 150 at 50/s when the machine is idle. A wall-clock test cannot pin the pace on a shared 2-core CI
    # machine (it once answered 108 there), so it pins only that the real HTTP path keeps going under either
    # reading without a 429 storm; the pace itself is pinned by the fake-clock simulations above and measured
    # by tests/bench/bench_sync.py.
    assert server.answers[200] >= 25 * 3
    assert server.answers[429] <= 2
