"""Writes whose answer is lost while the backend goes on: apply_late, and slow answers to applied writes."""

import time

import pytest
import requests

from reversesync import errors
from reversesync.sandbox import Faults, Sandbox
from tests.conftest import SANDBOX_ASSET as ASSET
from tests.conftest import client_for, raw

LAG = 0.2
SEGMENTS = f"/API/assets/v1/assets/{ASSET}/segments/"


@pytest.fixture
def lagging():
    with Sandbox(index_lag=LAG) as running:
        running.catalogue.add_asset(ASSET, title="clip")
        yield running


def listed_ends(sandbox):
    return [s["time_end_milliseconds"] for s in raw(sandbox, "GET", SEGMENTS + "GENERIC/").json()["objects"]]


def put_times(sandbox, segment, start, end, timeout=5):
    """A raw PUT of a segment's times: these tests are about the sandbox, whatever way a client edits."""
    body = {"segment_type": "GENERIC", "time_start_milliseconds": start, "time_end_milliseconds": end}
    return requests.put(f"{sandbox.url}{SEGMENTS}{segment['id']}/", json=body, timeout=timeout,
                        headers={"App-ID": sandbox.app_id, "Auth-Token": sandbox.auth_token})


def test_a_late_put_is_invisible_to_an_immediate_recheck_and_seen_after_its_delay_and_the_lag(lagging):
    segment = lagging.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
    lagging.force("PUT", "/segments/", action="apply_late", delay_ms=300)
    client = client_for(lagging)
    sent = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        put_times(lagging, segment, 1, 9)
    assert time.monotonic() - sent < 0.2  # the connection dropped at once, not after the delay
    assert client.get_segment(ASSET, segment["id"])["time_end_milliseconds"] == 2
    assert listed_ends(lagging) == [2]
    time.sleep(max(0.0, sent + 0.3 + 0.05 - time.monotonic()))
    assert client.get_segment(ASSET, segment["id"])["time_end_milliseconds"] == 9  # applied: the store has it
    assert listed_ends(lagging) == [2]  # the index does not, yet
    time.sleep(LAG)
    assert listed_ends(lagging) == [9]
    assert lagging.late_writes == [{"method": "PUT", "path": SEGMENTS + segment["id"] + "/", "delay_ms": 300,
                                    "status": 200}]
    assert lagging.requests("PUT")[0][2] == "dropped"


def test_a_late_post_leaves_an_empty_list_that_is_no_proof_nothing_was_written(lagging):
    lagging.force("POST", "/segments/$", action="apply_late", delay_ms=150)
    with pytest.raises(errors.UnknownOutcome):
        client_for(lagging).create_segment(ASSET, 1000, 2000)
    assert listed_ends(lagging) == [] and lagging.generic_segments(ASSET) == []
    lagging.settle()
    assert listed_ends(lagging) == [2000] and len(lagging.generic_segments(ASSET)) == 1


def post_outcome(sandbox):
    try:
        return raw(sandbox, "POST", SEGMENTS, {"segment_type": "GENERIC"}).status_code
    except requests.ConnectionError:
        return "dropped"


def test_apply_late_fault_draws_a_seeded_delay_between_its_bounds():
    def run(seed):
        with Sandbox(faults=Faults(apply_late=0.5, late_min_ms=50, late_max_ms=100), seed=seed, index_lag=0) as sandbox:
            sandbox.catalogue.add_asset(ASSET)
            outcomes = [post_outcome(sandbox) for _ in range(12)]
            sandbox.settle()
            assert all(50 <= entry["delay_ms"] <= 100 and entry["status"] == 201 for entry in sandbox.late_writes)
            assert len(sandbox.generic_segments(ASSET)) == 12  # every write landed, late or not
            return outcomes, [entry["delay_ms"] for entry in sandbox.late_writes]

    first = run(5)
    assert first == run(5) != run(6)
    assert "dropped" in first[0] and 201 in first[0]


def test_apply_late_never_touches_reads_nor_search():
    with Sandbox(faults=Faults(apply_late=1.0), index_lag=0) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        client = client_for(sandbox)
        assert client.get_asset(ASSET)["id"] == ASSET
        assert client.list_segments(ASSET) == []
        assert [a["id"] for a in client.search("assets", {"id": [ASSET]})] == [ASSET]
        assert sandbox.late_writes == []


def test_stopping_the_sandbox_cancels_late_writes_not_yet_applied():
    with Sandbox(index_lag=0) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        sandbox.force("POST", "/segments/$", action="apply_late", delay_ms=5000)
        with pytest.raises(errors.UnknownOutcome):
            client_for(sandbox).create_segment(ASSET, 1, 2)
    assert sandbox.late_writes[0]["status"] == "cancelled"
    time.sleep(0.1)
    assert sandbox.generic_segments(ASSET) == []


def test_slow_fault_applies_a_write_at_arrival_and_delays_only_its_answer(lagging):
    segment = lagging.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
    lagging.faults = Faults(slow=1.0, slow_ms=600)
    with pytest.raises(requests.ReadTimeout):
        put_times(lagging, segment, 5, 9, timeout=(2, 0.2))
    # the client gave up after 0.2 s; the write was applied on arrival, long before the answer was due
    assert lagging.generic_segments(ASSET)[0]["time_end_milliseconds"] == 9
    assert lagging.requests("PUT")[0][2] is None  # its answer is still on its way


def test_slow_fault_delays_a_read_answer_too(lagging):
    lagging.faults = Faults(slow=1.0, slow_ms=300)
    began = time.monotonic()
    client_for(lagging).get_asset(ASSET)
    assert time.monotonic() - began >= 0.3


def test_a_search_is_a_read_for_write_faults():
    with Sandbox(faults=Faults(conflict=1.0, drop_before=1.0, drop_after=1.0), index_lag=0) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        assert [a["id"] for a in client_for(sandbox).search("assets", {"id": [ASSET]})] == [ASSET]


@pytest.mark.parametrize("spec, expected", [
    ("", Faults()),
    ("apply_late=0.02", Faults(apply_late=0.02)),
    ("apply_late=1,late_min_ms=10,late_max_ms=20", Faults(apply_late=1.0, late_min_ms=10, late_max_ms=20)),
    (" 5xx=0.05 , 409=0.02,slow_ms=3000.0,revoke_after=500",
     Faults(server_error=0.05, conflict=0.02, slow_ms=3000, revoke_after=500)),
])
def test_faults_parse_the_documented_spelling(spec, expected):
    assert Faults.parse(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("5xx", "5xx needs a value, e.g. 5xx=0.05"),
    ("slow_ms=", "slow_ms needs a value, e.g. slow_ms=1000"),
    ("5xx=2", "5xx=2: a probability is between 0 and 1"),
    ("apply_late=-0.1", "apply_late=-0.1: a probability is between 0 and 1"),
    ("slow_ms=1.5", "slow_ms=1.5: must be a whole number, 0 or more"),
    ("409=often", "409=often: not a number"),
    ("late_min_ms=10,late_max_ms=5", "late_min_ms=10 is above late_max_ms=5"),
    ("gremlins=1", "unknown fault 'gremlins'"),
])
def test_faults_refuse_what_they_cannot_mean(spec, message):
    with pytest.raises(ValueError, match=message):
        Faults.parse(spec)


def test_force_refuses_an_action_it_does_not_know(lagging):
    with pytest.raises(ValueError, match="action 'drop_later'"):
        lagging.force("POST", "/segments/$", action="drop_later")
