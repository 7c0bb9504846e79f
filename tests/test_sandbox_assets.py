"""Assets as Iconik has them: every type, DELETED ones, ones the token may not read, and SUBCLIPs whose range
is a segment on their parent (ICONIK-FACTS 7.2 to 7.5); and the seeded scenarios built from them."""

import collections
import json
import time

import pytest

from reversesync import errors
from reversesync.sandbox import (
    ASSET_TYPES,
    DEFAULT_MIX,
    EXPECTED,
    FORBIDDEN_MESSAGE,
    OTHER_ASSET_TYPES,
    SCENARIOS,
    Catalogue,
    Sandbox,
)
from tests.conftest import EXAMPLE_SHEET, client_for, raw
from tests.conftest import SANDBOX_ASSET as ASSET

PARENT = "6a1d0f3c-0000-4000-8000-0000000000a1"
SUBCLIP = "6a1d0f3c-0000-4000-8000-0000000000a2"
OTHER = "6a1d0f3c-0000-4000-8000-0000000000a3"
LAG = 0.2


@pytest.fixture
def linked():
    """A parent whose GENERIC segment backs a SUBCLIP, one to one, as Iconik makes them."""
    with Sandbox(index_lag=LAG) as sandbox:
        sandbox.catalogue.add_asset(PARENT, title="parent")
        backing = sandbox.catalogue.add_segment(PARENT, "GENERIC", 1000, 5000, segment_text="subclip range")
        sandbox.catalogue.add_asset(SUBCLIP, type="SUBCLIP", start=1000, end=5000, original_asset_id=PARENT,
                                    original_segment_id=backing["id"])
        backing["subclip_id"] = SUBCLIP
        sandbox.backing = backing
        yield sandbox


def subclip_times(asset):
    return asset["time_start_milliseconds"], asset["time_end_milliseconds"]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_editing_a_segment_that_backs_a_subclip_moves_the_subclip(linked, method):
    path = f"/API/assets/v1/assets/{PARENT}/segments/{linked.backing['id']}/"
    answer = raw(linked, method, path, {"segment_type": "GENERIC", "time_start_milliseconds": 2000,
                                        "time_end_milliseconds": 7000})
    assert answer.status_code == 200 and answer.json()["subclip_id"] == SUBCLIP  # a PUT does not unlink it
    client = client_for(linked)
    assert subclip_times(client.get_asset(SUBCLIP)) == (2000, 7000)
    [indexed] = client.search("assets", {"id": [SUBCLIP]})
    assert subclip_times(indexed) == (1000, 5000)  # search trails the move like any other change
    time.sleep(LAG + 0.05)
    [indexed] = client.search("assets", {"id": [SUBCLIP]})
    assert subclip_times(indexed) == (2000, 7000)


def test_subclip_id_is_shown_but_never_accepted_in_a_body(linked):
    listed = raw(linked, "GET", f"/API/assets/v1/assets/{PARENT}/segments/GENERIC/").json()["objects"]
    assert [s["subclip_id"] for s in listed] == [SUBCLIP]
    path = f"/API/assets/v1/assets/{PARENT}/segments/"
    for method, where in (("POST", path), ("PUT", path + linked.backing["id"] + "/")):
        answer = raw(linked, method, where, {"segment_type": "GENERIC", "subclip_id": SUBCLIP})
        assert answer.status_code == 400 and answer.json()["errors"] == {"subclip_id": "is read-only"}


def test_a_segment_posted_on_a_subclip_is_filed_under_its_parent(linked):
    created = client_for(linked).create_segment(SUBCLIP, 1000, 5000, external_id="reversesync")
    assert created["asset_id"] == PARENT
    assert linked.requests("POST")[0][2] == 201
    assert linked.generic_segments(SUBCLIP) == []
    assert [s["id"] for s in linked.generic_segments(PARENT)] == [linked.backing["id"], created["id"]]
    assert created["subclip_id"] is None


@pytest.mark.parametrize("asset_type", ASSET_TYPES)
def test_every_asset_type_reads_as_itself(asset_type):
    with Sandbox(index_lag=0) as sandbox:
        sandbox.catalogue.add_asset(OTHER, type=asset_type)
        client = client_for(sandbox)
        assert client.get_asset(OTHER)["type"] == asset_type
        assert client.list_segments(OTHER) == []
        assert [a["type"] for a in client.search("assets", {"id": [OTHER]})] == [asset_type]


def test_an_asset_type_or_status_iconik_does_not_have_is_refused_when_building():
    with pytest.raises(ValueError, match="asset type 'CLIP'"):
        Catalogue().add_asset(type="CLIP")
    with pytest.raises(ValueError, match="asset status 'GONE'"):
        Catalogue().add_asset(status="GONE")


def test_a_deleted_asset_reads_200_with_status_deleted():
    with Sandbox(index_lag=0) as sandbox:
        sandbox.catalogue.add_asset(OTHER, status="DELETED")
        assert raw(sandbox, "GET", f"/API/assets/v1/assets/{OTHER}/").json()["status"] == "DELETED"


@pytest.mark.parametrize("method, tail", [
    ("GET", ""), ("GET", "segments/"), ("GET", "segments/GENERIC/"), ("GET", "segments/{segment}/"),
    ("POST", "segments/"), ("PUT", "segments/{segment}/"), ("PATCH", "segments/{segment}/"),
    ("DELETE", "segments/{segment}/"),
])
def test_an_asset_the_user_may_not_read_answers_403_to_every_request_on_it(method, tail):
    with Sandbox(index_lag=0) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        sandbox.catalogue.add_asset(OTHER)
        segment = sandbox.catalogue.add_segment(OTHER, "GENERIC", 1, 2)
        sandbox.catalogue.forbid(OTHER)
        path = f"/API/assets/v1/assets/{OTHER}/" + tail.format(segment=segment["id"])
        answer = raw(sandbox, method, path, {"segment_type": "GENERIC"} if method in ("POST", "PUT", "PATCH") else None)
        assert (answer.status_code, answer.json()) == (403, {"errors": [FORBIDDEN_MESSAGE]})
        assert "RateLimit-Remaining" in answer.headers
        assert raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/").status_code == 200  # the others read fine
        assert sandbox.generic_segments(OTHER) == [segment]  # nothing changed


def test_a_forbidden_asset_is_absent_from_search_and_the_client_sees_403(linked):
    linked.catalogue.forbid(PARENT)
    client = client_for(linked)
    assert [a["id"] for a in client.search("assets", {"id": [PARENT, SUBCLIP]})] == [SUBCLIP]
    assert client.search("segments", {"asset_id": [PARENT]}) == []
    assert client.search("segments", {"id": [linked.backing["id"]]}) == []
    with pytest.raises(errors.Forbidden) as caught:
        client.get_asset(PARENT)
    assert caught.value.status == 403 and FORBIDDEN_MESSAGE in str(caught.value)
    # a segment posted on its SUBCLIP would land on the parent: refused as well
    assert raw(linked, "POST", f"/API/assets/v1/assets/{SUBCLIP}/segments/",
               {"segment_type": "GENERIC"}).status_code == 403


def test_the_forbidden_set_survives_dump_and_restore():
    catalogue = Catalogue()
    catalogue.add_asset(OTHER)
    catalogue.forbid(OTHER)
    again = Catalogue()
    again.restore(json.loads(json.dumps(catalogue.dump())))
    assert again.forbidden == {OTHER} and again.dump() == catalogue.dump()


# --- seeded scenarios -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded():
    catalogue = Catalogue()
    dealt = catalogue.seed_from_sheet(str(EXAMPLE_SHEET), seed=3)
    return catalogue, dealt


def each(seeded, scenario):
    catalogue, dealt = seeded
    keys = [key for key, name in dealt.items() if name == scenario]
    assert keys, scenario
    return [(key, catalogue.assets[key], catalogue.segments[key]) for key in keys]


def test_every_scenario_names_its_expected_outcome():
    assert EXPECTED["subclip_parent"] == "skipped/subclip_linked"
    assert EXPECTED["other_type"] == "skipped/unsupported_type"
    assert EXPECTED["forbidden"] == "failed/forbidden"
    assert EXPECTED["no_segments"] == "created/create" and EXPECTED["unknown"] == "failed/not_found"
    assert set(EXPECTED) == set(SCENARIOS) == set(DEFAULT_MIX) | {"awaited", "odd_status"}
    assert all(0 < DEFAULT_MIX[name] <= 2 for name in ("subclip_parent", "other_type", "forbidden"))


def test_subclip_parent_has_one_generic_segment_that_backs_a_subclip_with_other_times(seeded):
    catalogue, _ = seeded
    for key, asset, segments in each(seeded, "subclip_parent"):
        assert asset["type"] == "ASSET" and key not in catalogue.forbidden
        [backing] = [s for s in segments if s["segment_type"] == "GENERIC"]
        subclip = catalogue.assets[backing["subclip_id"]]
        assert (subclip["type"], subclip["original_asset_id"], subclip["original_segment_id"]) == (
            "SUBCLIP", key, backing["id"])
        assert subclip_times(subclip) == subclip_times(backing)


def test_seeded_subclips_are_backed_by_a_segment_on_their_parent(seeded):
    catalogue, _ = seeded
    for key, asset, segments in each(seeded, "subclip_equal") + each(seeded, "subclip_differs"):
        assert segments == []
        [backing] = catalogue.segments[asset["original_asset_id"]]
        assert backing["id"] == asset["original_segment_id"] and backing["subclip_id"] == key
        assert subclip_times(backing) == subclip_times(asset)


def test_other_type_assets_are_of_the_types_reversesync_must_leave_alone(seeded):
    found = {asset["type"] for _, asset, segments in each(seeded, "other_type") if not segments}
    assert found and found <= set(OTHER_ASSET_TYPES)


def test_forbidden_assets_are_in_the_forbidden_set(seeded):
    catalogue, _ = seeded
    assert {key for key, _, _ in each(seeded, "forbidden")} == catalogue.forbidden


def test_a_mix_of_only_the_new_scenarios_deals_only_them():
    dealt = Catalogue().seed_from_sheet(str(EXAMPLE_SHEET), mix={"subclip_parent": 1, "other_type": 1,
                                                                 "forbidden": 1})
    counts = collections.Counter(name for name in dealt.values() if name != "rejected")
    assert set(counts) == {"subclip_parent", "other_type", "forbidden"}
    assert max(counts.values()) < 1.1 * min(counts.values())  # in proportion (rejected rows take places too)
