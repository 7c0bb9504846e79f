"""RateLimit-Remaining on every answer, counting Iconik's budgets whether or not --rate enforces them; what it
counts (the per-second bucket or the 20 s window) is a switch, since Iconik does not say (ICONIK-FACTS 7.7)."""

import pytest

from reversesync.sandbox import RateLimiter, Sandbox
from tests.conftest import SANDBOX_ASSET as ASSET
from tests.conftest import raw


def remaining(answer):
    return int(answer.headers["RateLimit-Remaining"])


def test_every_answer_carries_the_header_even_without_a_rate():
    with Sandbox(index_lag=0) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        answers = [raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/"),
                   raw(sandbox, "GET", "/API/assets/v1/assets/6a1d0f3c-0000-4000-8000-00000000ffff/"),
                   raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/", **{"Auth-Token": "wrong"}),
                   raw(sandbox, "GET", "/API/nowhere/")]
        assert [a.status_code for a in answers] == [200, 404, 401, 404]
        readings = [remaining(a) for a in answers]
        assert readings[0] == 49 and all(0 <= r <= 49 for r in readings)
        assert readings == sorted(readings, reverse=True)


def test_the_header_counts_the_per_second_bucket_by_default():
    with Sandbox(index_lag=0) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        readings = [remaining(raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/")) for _ in range(10)]
        assert readings[0] == 49 and readings[-1] < 45  # it refills at 50/s, so a little slower than 1 a request


def test_the_window_reading_counts_what_is_left_of_1000_per_20_seconds():
    with Sandbox(index_lag=0, remaining="window") as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        assert [remaining(raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/")) for _ in range(3)] == [
            999, 998, 997]


def test_without_a_rate_nothing_is_refused_and_the_reading_bottoms_out_at_zero():
    limiter = RateLimiter()
    taken = [limiter.take() for _ in range(80)]
    assert all(allowed for allowed, _, _ in taken)
    assert taken[0][1] == 49 and taken[-1][1] == 0


def test_with_a_rate_the_per_second_budget_is_enforced_with_retry_after():
    with Sandbox(rate=5, index_lag=0, remaining="window") as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        answers = [raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/") for _ in range(7)]
        assert [a.status_code for a in answers[:5]] == [200] * 5 and 429 in [a.status_code for a in answers[5:]]
        assert [remaining(a) for a in answers[:5]] == [99, 98, 97, 96, 95]  # 20 x 5 a window
        limited = next(a for a in answers if a.status_code == 429)
        assert limited.headers["Retry-After"] == "1"


def test_with_a_rate_the_window_is_enforced_too():
    limiter = RateLimiter(rate=1, enforce=True, remaining="window")
    limiter.capacity = limiter.tokens = 100.0  # a roomy bucket, so that only the window can refuse
    taken = [limiter.take() for _ in range(21)]
    assert all(allowed for allowed, _, _ in taken[:20]) and taken[19][1] == 0
    allowed, left, retry_after = taken[20]
    assert not allowed and left == 0 and 19 < retry_after <= 20


def test_a_reading_the_sandbox_does_not_know_is_refused():
    with pytest.raises(ValueError, match="bucket, window"):
        Sandbox(remaining="daily")
