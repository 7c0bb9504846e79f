"""Search as Iconik answers it: the can_search role, include_fields, its query flags, and documents in the shape
of SegmentElasticSchema (unset fields absent)."""

import pytest

from reversesync import errors
from reversesync.sandbox import ALL_ROLES, Sandbox
from tests.conftest import SANDBOX_ASSET as ASSET
from tests.conftest import client_for, raw

SEARCH = "/API/search/v1/search/"


@pytest.fixture
def sandbox():
    with Sandbox(index_lag=0) as running:
        running.catalogue.add_asset(ASSET, title="clip")
        running.segment = running.catalogue.add_segment(ASSET, "GENERIC", 1, 2, segment_text="by hand")
        yield running


def by_asset(doc_type="segments", **extra):
    return dict({"doc_types": [doc_type], "filter": {"operator": "AND", "terms": [
        {"name": "asset_id" if doc_type == "segments" else "id", "value_in": [ASSET]}]}}, **extra)


def test_search_needs_the_can_search_role():
    assert "can_search" in ALL_ROLES
    roles = [role for role in ALL_ROLES if role != "can_search"]
    with Sandbox(roles=roles, index_lag=0) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        answer = raw(sandbox, "POST", SEARCH, by_asset("assets"))
        assert (answer.status_code, answer.json()) == (403, {"errors": ["You do not have the role can_search"]})
        with pytest.raises(errors.Forbidden, match="can_search"):
            client_for(sandbox).search("assets", {"id": [ASSET]})
        assert client_for(sandbox).get_asset(ASSET)["id"] == ASSET  # the other roles still work


def test_include_fields_trims_the_documents(sandbox):
    [document] = raw(sandbox, "POST", SEARCH, by_asset(include_fields=["id", "time_start_milliseconds"])).json()[
        "objects"]
    assert document == {"id": sandbox.segment["id"], "time_start_milliseconds": 1, "object_type": "segments"}
    [document] = raw(sandbox, "POST", SEARCH, by_asset("assets", include_fields=["type"])).json()["objects"]
    assert document == {"type": "ASSET", "object_type": "assets"}
    assert raw(sandbox, "POST", SEARCH, by_asset(include_fields="id")).status_code == 400


def test_segment_documents_leave_unset_fields_out(sandbox):
    [document] = raw(sandbox, "POST", SEARCH, by_asset()).json()["objects"]
    assert "subclip_id" not in document and "external_id" not in document
    assert (document["asset_id"], document["segment_type"], document["segment_text"], document["object_type"]) == (
        ASSET, "GENERIC", "by hand", "segments")
    assert raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/segments/{sandbox.segment['id']}/").json()[
        "subclip_id"] is None  # the stored record names every field


@pytest.mark.parametrize("query, flags", [
    ("", {"generate_signed_url": True, "save_search_history": True}),
    ("?generate_signed_url=false&save_search_history=false",
     {"generate_signed_url": False, "save_search_history": False}),
    ("?generate_signed_url=True&save_search_history=0", {"generate_signed_url": True, "save_search_history": False}),
])
def test_search_takes_the_signed_url_and_history_flags(sandbox, query, flags):
    assert raw(sandbox, "POST", SEARCH + query, by_asset()).status_code == 200
    assert sandbox.search_options == [flags]


def test_a_flag_that_is_not_a_boolean_is_a_400(sandbox):
    answer = raw(sandbox, "POST", SEARCH + "?save_search_history=maybe", by_asset())
    assert (answer.status_code, answer.json()) == (400, {"errors": {"save_search_history": "Not a valid boolean."}})


def test_search_finds_segments_by_their_own_id(sandbox):
    other = sandbox.catalogue.add_segment(ASSET, "COMMENT", 5, 5)
    found = client_for(sandbox).search("segments", {"id": [other["id"], "6a1d0f3c-0000-4000-8000-00000000ffff"]})
    assert [s["id"] for s in found] == [other["id"]]


def test_search_pages_up_to_a_thousand(sandbox):
    for n in range(1100):
        sandbox.catalogue.add_segment(ASSET, "COMMENT", n, n)
    answer = raw(sandbox, "POST", SEARCH + "?per_page=5000", by_asset()).json()
    assert (answer["per_page"], answer["pages"], answer["total"], len(answer["objects"])) == (1000, 2, 1101, 1000)
