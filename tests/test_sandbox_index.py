"""Segment lists and search come from an index that trails the stored records by index_lag (ICONIK-FACTS 7.1);
reads by id are always fresh."""

import time

import pytest

from reversesync.sandbox import Catalogue, Sandbox
from tests.conftest import SANDBOX_ASSET as ASSET
from tests.conftest import client_for, raw

LAG = 0.2
SEGMENTS = f"/API/assets/v1/assets/{ASSET}/segments/"


@pytest.fixture
def lagging():
    with Sandbox(index_lag=LAG) as running:
        running.catalogue.add_asset(ASSET, title="clip")
        yield running


def listed(sandbox, path=SEGMENTS):
    return [(s["id"], s["time_start_milliseconds"], s["time_end_milliseconds"]) for s in
            raw(sandbox, "GET", path).json()["objects"]]


def search_segments(sandbox):
    return [(s["id"], s["time_start_milliseconds"]) for s in client_for(sandbox).search("segments", {
        "asset_id": [ASSET]})]


def test_segment_list_trails_a_create_by_the_index_lag(lagging):
    created = client_for(lagging).create_segment(ASSET, 1000, 2000)
    assert listed(lagging) == [] and listed(lagging, SEGMENTS + "GENERIC/") == []
    assert raw(lagging, "GET", SEGMENTS + created["id"] + "/").json()["time_end_milliseconds"] == 2000
    assert [s["id"] for s in lagging.generic_segments(ASSET)] == [created["id"]]  # the store has it
    time.sleep(LAG + 0.05)
    assert listed(lagging) == [(created["id"], 1000, 2000)]


def test_segment_list_shows_the_old_times_of_an_update_until_it_is_indexed(lagging):
    segment = lagging.catalogue.add_segment(ASSET, "GENERIC", 5, 5)
    path = SEGMENTS + segment["id"] + "/"
    assert raw(lagging, "PUT", path, {"segment_type": "GENERIC", "time_start_milliseconds": 7,
                                      "time_end_milliseconds": 9}).status_code == 200
    assert listed(lagging) == [(segment["id"], 5, 5)]
    assert raw(lagging, "GET", path).json()["time_end_milliseconds"] == 9
    time.sleep(LAG + 0.05)
    assert listed(lagging) == [(segment["id"], 7, 9)]


def test_segment_list_still_shows_a_deleted_segment_until_it_is_indexed(lagging):
    segment = lagging.catalogue.add_segment(ASSET, "GENERIC", 5, 6)
    path = SEGMENTS + segment["id"] + "/"
    assert raw(lagging, "DELETE", path).status_code == 204
    assert raw(lagging, "GET", path).status_code == 404
    assert listed(lagging) == [(segment["id"], 5, 6)] and lagging.generic_segments(ASSET) == []
    time.sleep(LAG + 0.05)
    assert listed(lagging) == []


def test_each_list_shows_the_version_of_index_lag_ago_through_several_writes():
    lag = 0.5  # wider than LAG: the test reads between two writes, and must not race them
    with Sandbox(index_lag=lag) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        segment = sandbox.catalogue.add_segment(ASSET, "GENERIC", 1, 1)
        path = SEGMENTS + segment["id"] + "/"
        for end in (2, 3):
            raw(sandbox, "PATCH", path, {"segment_type": "GENERIC", "time_end_milliseconds": end})
            time.sleep(lag * 0.6)
        # now: end=3 was written 0.3 s ago (not shown yet), end=2 0.6 s ago (shown)
        assert listed(sandbox) == [(segment["id"], 1, 2)]
        time.sleep(lag * 0.6)
        assert listed(sandbox) == [(segment["id"], 1, 3)]


def test_search_trails_segment_documents_and_asset_status(lagging):
    created = client_for(lagging).create_segment(ASSET, 1000, 2000)
    lagging.catalogue.edit_asset(ASSET, status="DELETED")
    assert search_segments(lagging) == []
    [asset] = client_for(lagging).search("assets", {"id": [ASSET]})
    assert asset["status"] == "ACTIVE"
    assert raw(lagging, "GET", f"/API/assets/v1/assets/{ASSET}/").json()["status"] == "DELETED"  # fresh
    time.sleep(LAG + 0.05)
    assert search_segments(lagging) == [(created["id"], 1000)]
    [asset] = client_for(lagging).search("assets", {"id": [ASSET]})
    assert asset["status"] == "DELETED"


def test_search_still_finds_a_deleted_segment_by_id_until_it_is_indexed(lagging):
    segment = lagging.catalogue.add_segment(ASSET, "GENERIC", 5, 6)
    raw(lagging, "DELETE", SEGMENTS + segment["id"] + "/")
    assert [s["id"] for s in client_for(lagging).search("segments", {"id": [segment["id"]]})] == [segment["id"]]
    time.sleep(LAG + 0.05)
    assert client_for(lagging).search("segments", {"id": [segment["id"]]}) == []


def test_a_catalogue_built_before_the_run_is_indexed_at_once():
    with Sandbox(index_lag=60) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        segment = sandbox.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
        assert listed(sandbox) == [(segment["id"], 1, 2)]
        assert [s["id"] for s in client_for(sandbox).search("segments", {"asset_id": [ASSET]})] == [segment["id"]]


def test_the_index_lag_is_two_seconds_unless_told():
    assert Sandbox().index_lag == 2.0


def test_index_lag_zero_lists_every_write_at_once():
    with Sandbox(index_lag=0) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        created = client_for(sandbox).create_segment(ASSET, 1, 2)
        assert listed(sandbox) == [(created["id"], 1, 2)]


def test_indexed_segments_reads_the_index_and_generic_segments_the_store(lagging):
    created = client_for(lagging).create_segment(ASSET, 1, 2)
    assert lagging.indexed_segments(ASSET) == [] and len(lagging.generic_segments(ASSET)) == 1
    lagging.settle()
    assert [s["id"] for s in lagging.indexed_segments(ASSET, "GENERIC")] == [created["id"]]


def test_settle_waits_out_the_lag_and_reindex_skips_it():
    with Sandbox(index_lag=30) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        client_for(sandbox).create_segment(ASSET, 1, 2)
        assert sandbox.indexed_segments(ASSET) == []
        sandbox.catalogue.reindex()  # as Iconik's reindex endpoints do: no waiting for 30 s
        assert len(sandbox.indexed_segments(ASSET)) == 1
    with Sandbox(index_lag=LAG) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        client_for(sandbox).create_segment(ASSET, 1, 2)
        began = time.monotonic()
        sandbox.settle()
        assert LAG * 0.5 < time.monotonic() - began < LAG + 0.5
        assert len(sandbox.indexed_segments(ASSET)) == 1


def test_restoring_a_dump_starts_with_the_index_caught_up(lagging):
    client_for(lagging).create_segment(ASSET, 1, 2)
    again = Catalogue()
    again.restore(lagging.catalogue.dump())
    assert len(again.indexed_segments(ASSET, as_of=time.monotonic())) == 1


def test_a_twenty_thousand_asset_catalogue_searches_by_id_in_time_of_the_ids_not_the_catalogue():
    catalogue = Catalogue()
    keys = [f"6a1d0f3c-0000-4000-8000-{n:012d}" for n in range(20_000)]
    for key in keys:
        catalogue.add_asset(key)
        catalogue.add_segment(key, "GENERIC", 1, 2)
    for key in keys[:200]:  # recent writes the index has not taken in yet
        catalogue.create_segment(key, "GENERIC", 3, 4)
    with Sandbox(catalogue, index_lag=60) as sandbox:
        client = client_for(sandbox, rate=1000)
        began = time.process_time()  # the sandbox's threads and the client's alike
        for batch in range(0, 4000, 100):  # what a 4,000-row run asks: two searches per hundred rows
            ids = keys[batch:batch + 100]
            assert len(client.search("assets", {"id": ids})) == 100
            assert len(client.search("segments", {"asset_id": ids, "segment_type": ["GENERIC"]})) == 100
        # A scan of every document per search took 2.4 s of CPU here; looking ids up takes about 0.15 s.
        assert time.process_time() - began < 1.0


def test_the_index_forgets_what_it_has_caught_up_with_so_a_long_run_stays_small():
    catalogue = Catalogue()
    keys = [f"6a1d0f3c-0000-4000-8000-{n:012d}" for n in range(2000)]
    for key in keys:
        catalogue.add_asset(key)
        catalogue.create_segment(key, "GENERIC", 1, 2)
    assert catalogue.indexed_segments(keys[0], as_of=time.monotonic() - 60) == []
    assert catalogue.backlog() == 2000
    assert len(catalogue.indexed_segments(keys[-1], as_of=time.monotonic())) == 1
    assert catalogue.backlog() == 0  # one read of the index, of any asset, let go of every caught-up change


# --- separate lags for segment lists and for search (issue #19) ------------------------------------------------


def test_list_lag_and_search_lag_default_to_the_index_lag_and_index_lag_sets_both():
    sandbox = Sandbox(index_lag=3)
    assert (sandbox.list_lag, sandbox.search_lag, sandbox.index_lag) == (3.0, 3.0, 3.0)
    sandbox = Sandbox(list_lag=0.5, search_lag=4)
    assert (sandbox.list_lag, sandbox.search_lag, sandbox.index_lag) == (0.5, 4.0, 4.0)
    assert Sandbox().list_lag == Sandbox().search_lag == 2.0
    sandbox.index_lag = 1
    assert (sandbox.list_lag, sandbox.search_lag) == (1.0, 1.0)


@pytest.mark.parametrize("list_lag, search_lag", [(0.0, 0.4), (0.4, 0.0)])
def test_a_list_and_a_search_each_trail_by_their_own_lag(list_lag, search_lag):
    with Sandbox(list_lag=list_lag, search_lag=search_lag) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        created = client_for(sandbox).create_segment(ASSET, 1000, 2000)
        # Read each many times, the quicker reader first: the slower one must still see the older version.
        for _ in range(3):
            assert (listed(sandbox) == []) is (list_lag > 0)
            assert (search_segments(sandbox) == []) is (search_lag > 0)
        time.sleep(0.45)
        assert listed(sandbox) == [(created["id"], 1000, 2000)]
        assert search_segments(sandbox) == [(created["id"], 1000)]


def test_an_update_shows_its_old_times_to_the_reader_that_trails_more_through_several_writes():
    with Sandbox(list_lag=0.0, search_lag=0.3) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        segment = sandbox.catalogue.add_segment(ASSET, "GENERIC", 5, 5)
        path = SEGMENTS + segment["id"] + "/"
        for n, start in enumerate((7, 8, 9)):
            assert raw(sandbox, "PATCH", path, {"segment_type": "GENERIC", "time_start_milliseconds": start,
                                                "time_end_milliseconds": 100}).status_code == 200
            assert listed(sandbox) == [(segment["id"], start, 100)]  # the list lag is 0: the list reads first
            assert search_segments(sandbox) == [(segment["id"], 5)], n  # search still shows the first version
        time.sleep(0.35)
        assert search_segments(sandbox) == [(segment["id"], 9)]
        assert listed(sandbox) == [(segment["id"], 9, 100)]


def test_a_deleted_segment_stays_in_the_search_that_trails_more():
    with Sandbox(list_lag=0.0, search_lag=0.3) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        segment = sandbox.catalogue.add_segment(ASSET, "GENERIC", 5, 6)
        assert raw(sandbox, "DELETE", SEGMENTS + segment["id"] + "/").status_code == 204
        assert listed(sandbox) == []
        assert search_segments(sandbox) == [(segment["id"], 5)]
        sandbox.settle()  # waits out the longer lag
        assert search_segments(sandbox) == []
