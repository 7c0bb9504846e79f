"""The segment model of Iconik's live specs, as its SDK shows it (ICONIK-FACTS 8): every editable field of the live
EditSegmentSchema and fields Iconik may add later, PUT that replaces and PATCH that merges, soft deletes, segment
statuses; the seeded scenarios that go with them; and the test hooks through which a person changes the catalogue
while a client runs."""

import pytest
import requests

from reversesync.sandbox import (
    DEFAULT_MIX,
    EDITABLE_DEFAULTS,
    EXPECTED,
    PATCH_MODES,
    SCENARIOS,
    SEGMENT_STATUSES,
    SEGMENT_TYPES,
    Catalogue,
    Sandbox,
)
from tests.conftest import EXAMPLE_SHEET, raw
from tests.conftest import SANDBOX_ASSET as ASSET

SEGMENTS = f"/API/assets/v1/assets/{ASSET}/segments/"
PARENT = "6a1d0f3c-0000-4000-8000-0000000000a1"
SUBCLIP = "6a1d0f3c-0000-4000-8000-0000000000a2"
LIVE_FIELDS = {"is_internal": False, "has_attachments": False, "semantic_transcription": None,
               "share_session_id": None, "shot": None}
SHOT = {"shot_scale": {"label": "close-up", "score": 0.9}}
# What a person set by hand, in fields the older spec has, the live one adds, and one Iconik added later.
BY_HAND = {"metadata": {"Editor": ["kim"]}, "segment_text": "by hand", "is_internal": True, "has_attachments": True,
           "shot": SHOT, "ai_labels": ["chips", "river"]}


@pytest.fixture
def sandbox():
    """No index lag: these tests are about the model, not the lag (the lag tests reindex instead)."""
    with Sandbox(Catalogue(extra_fields={"ai_labels": None}), index_lag=0) as running:
        running.catalogue.add_asset(ASSET, title="clip")
        yield running


@pytest.fixture
def lagging():
    """An index so far behind that nothing a test does shows until it calls catalogue.reindex()."""
    with Sandbox(index_lag=60) as running:
        running.catalogue.add_asset(ASSET, title="clip")
        yield running


def segment_path(segment):
    return f"/API/assets/v1/assets/{segment['asset_id']}/segments/{segment['id']}/"


def listed(sandbox, query=""):
    return raw(sandbox, "GET", SEGMENTS + query).json()["objects"]


def search_segments(sandbox):
    return raw(sandbox, "POST", "/API/search/v1/search/", {"doc_types": ["segments"], "filter": {
        "operator": "AND", "terms": [{"name": "asset_id", "value_in": [ASSET]}]}}).json()["objects"]


def by_hand(sandbox):
    return sandbox.catalogue.add_segment(ASSET, "GENERIC", 1000, 2000, **BY_HAND)


# --- the live schema ------------------------------------------------------------------------------------------


def test_a_new_segment_reads_back_every_field_of_the_live_schema_with_its_default(sandbox):
    created = raw(sandbox, "POST", SEGMENTS, {"segment_type": "GENERIC", "time_start_milliseconds": 1,
                                              "time_end_milliseconds": 2})
    assert created.status_code == 201
    read = raw(sandbox, "GET", segment_path(created.json())).json()
    assert {field: read[field] for field in LIVE_FIELDS} == LIVE_FIELDS
    assert read["ai_labels"] is None and read["status"] == "ACTIVE"
    assert set(LIVE_FIELDS) <= set(EDITABLE_DEFAULTS)


def test_live_fields_in_a_post_body_are_stored(sandbox):
    body = {"segment_type": "GENERIC", "is_internal": True, "shot": SHOT, "ai_labels": ["chips"],
            "share_session_id": "6a1d0f3c-0000-4000-8000-0000000000c1"}
    created = raw(sandbox, "POST", SEGMENTS, body).json()
    stored = sandbox.stored_segment(created["id"])
    assert {field: stored[field] for field in body} == body


def test_shot_and_semantic_transcription_are_segment_types_with_their_own_lists(sandbox):
    assert {"SHOT", "SEMANTIC_TRANSCRIPTION"} <= set(SEGMENT_TYPES)
    for segment_type in ("SHOT", "SEMANTIC_TRANSCRIPTION"):
        assert raw(sandbox, "POST", SEGMENTS, {"segment_type": segment_type}).status_code == 201
    [semantic] = raw(sandbox, "GET", SEGMENTS + "SEMANTIC_TRANSCRIPTION/").json()["objects"]
    assert semantic["segment_type"] == "SEMANTIC_TRANSCRIPTION"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_segment_status_iconik_does_not_have_is_a_400_and_changes_nothing(sandbox, method):
    segment = by_hand(sandbox)
    path = SEGMENTS if method == "POST" else segment_path(segment)
    answer = raw(sandbox, method, path, {"segment_type": "GENERIC", "status": "ARCHIVED"})
    assert answer.status_code == 400 and "status" in answer.json()["errors"]
    assert [s["id"] for s in sandbox.generic_segments(ASSET)] == [segment["id"]]
    assert sandbox.stored_segment(segment["id"])["status"] == "ACTIVE"


@pytest.mark.parametrize("status", SEGMENT_STATUSES)
def test_every_segment_status_of_the_live_schema_is_accepted(sandbox, status):
    assert SEGMENT_STATUSES == ("ACTIVE", "AWAITED", "DELETED")
    created = raw(sandbox, "POST", SEGMENTS, {"segment_type": "GENERIC", "status": status})
    assert created.status_code == 201 and created.json()["status"] == status


def test_extra_fields_may_not_redeclare_a_field_the_schema_has():
    for name in ("shot", "segment_type", "date_modified"):
        with pytest.raises(ValueError, match=name):
            Catalogue(extra_fields={name: None})


def test_extra_fields_survive_dump_and_restore():
    catalogue = Catalogue(extra_fields={"ai_labels": None})
    catalogue.add_asset(ASSET)
    catalogue.add_segment(ASSET, "GENERIC", 1, 2, ai_labels=["chips"])
    again = Catalogue()
    again.restore(catalogue.dump())
    assert again.extra_fields == {"ai_labels": None} and again.dump() == catalogue.dump()


def test_the_current_user_carries_its_type(sandbox):
    user = raw(sandbox, "GET", "/API/users/v1/users/current/").json()
    assert user["type"] == "STANDARD"


# --- PUT replaces, PATCH merges -------------------------------------------------------------------------------


def test_put_resets_every_field_the_body_leaves_out_live_and_extra_fields_included(sandbox):
    segment = by_hand(sandbox)
    answer = raw(sandbox, "PUT", segment_path(segment), {"segment_type": "GENERIC", "time_start_milliseconds": 5,
                                                         "time_end_milliseconds": 9, "segment_text": "kept"})
    assert answer.status_code == 200
    stored = sandbox.stored_segment(segment["id"])
    assert {field: stored[field] for field in LIVE_FIELDS} == LIVE_FIELDS
    assert (stored["metadata"], stored["ai_labels"], stored["segment_text"]) == ({}, None, "kept")
    assert (stored["time_start_milliseconds"], stored["time_end_milliseconds"]) == (5, 9)


def test_patch_changes_only_the_fields_it_carries(sandbox):
    segment = by_hand(sandbox)
    answer = raw(sandbox, "PATCH", segment_path(segment), {"segment_type": "GENERIC", "time_start_milliseconds": 5,
                                                           "time_end_milliseconds": 9})
    assert answer.status_code == 200
    stored = sandbox.stored_segment(segment["id"])
    assert {field: stored[field] for field in BY_HAND} == BY_HAND
    assert (stored["time_start_milliseconds"], stored["time_end_milliseconds"]) == (5, 9)


def test_a_patch_that_replaces_resets_what_it_leaves_out_like_a_put():
    assert PATCH_MODES == ("merge", "replace") and Sandbox().patch == "merge"
    with Sandbox(Catalogue(extra_fields={"ai_labels": None}), index_lag=0, patch="replace") as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        segment = by_hand(sandbox)
        answer = raw(sandbox, "PATCH", segment_path(segment), {"segment_type": "GENERIC",
                                                               "time_start_milliseconds": 5})
        assert answer.status_code == 200
        stored = sandbox.stored_segment(segment["id"])
        assert {field: stored[field] for field in BY_HAND} == {
            "metadata": {}, "segment_text": None, "is_internal": False, "has_attachments": False, "shot": None,
            "ai_labels": None}
        assert (stored["time_start_milliseconds"], stored["time_end_milliseconds"]) == (5, None)


def test_a_patch_mode_other_than_merge_or_replace_is_refused():
    with pytest.raises(ValueError, match="merge, replace"):
        Sandbox(patch="ignore")


@pytest.mark.parametrize("patch", PATCH_MODES)
def test_a_patch_of_a_segment_that_backs_a_subclip_moves_the_subclip_in_either_patch_mode(patch):
    with Sandbox(index_lag=0, patch=patch) as sandbox:
        backing = linked(sandbox)
        raw(sandbox, "PATCH", segment_path(backing), {"segment_type": "GENERIC", "time_start_milliseconds": 2000,
                                                      "time_end_milliseconds": 7000})
        subclip = raw(sandbox, "GET", f"/API/assets/v1/assets/{SUBCLIP}/").json()
        assert (subclip["time_start_milliseconds"], subclip["time_end_milliseconds"]) == (2000, 7000)


def linked(sandbox):
    """A parent whose GENERIC segment backs a SUBCLIP (ICONIK-FACTS 7.2); returns the backing segment."""
    sandbox.catalogue.add_asset(PARENT)
    backing = sandbox.catalogue.add_segment(PARENT, "GENERIC", 1000, 5000)
    sandbox.catalogue.add_asset(SUBCLIP, type="SUBCLIP", start=1000, end=5000, original_asset_id=PARENT,
                                original_segment_id=backing["id"])
    backing["subclip_id"] = SUBCLIP
    return backing


# --- soft deletes and segment statuses ------------------------------------------------------------------------


def test_a_soft_delete_keeps_the_segment_readable_by_id_with_status_deleted(sandbox):
    segment = sandbox.stored_segment(by_hand(sandbox)["id"])
    assert raw(sandbox, "DELETE", segment_path(segment) + "?soft_delete=true").status_code == 204
    read = raw(sandbox, "GET", segment_path(segment))
    assert read.status_code == 200 and read.json()["status"] == "DELETED"
    assert read.json()["date_modified"] > segment["date_modified"]  # even within the same millisecond
    assert read.json()["segment_text"] == "by hand"  # nothing else changes


@pytest.mark.parametrize("query", ["", "?soft_delete=false", "?soft_delete=0"])
def test_a_delete_without_soft_delete_true_removes_the_segment(sandbox, query):
    segment = by_hand(sandbox)
    assert raw(sandbox, "DELETE", segment_path(segment) + query).status_code == 204
    assert raw(sandbox, "GET", segment_path(segment)).status_code == 404
    assert sandbox.stored_segment(segment["id"]) is None and listed(sandbox) == []


def test_a_soft_delete_value_that_is_not_a_boolean_is_a_400_and_deletes_nothing(sandbox):
    segment = by_hand(sandbox)
    answer = raw(sandbox, "DELETE", segment_path(segment) + "?soft_delete=maybe")
    assert answer.status_code == 400 and "soft_delete" in answer.json()["errors"]
    assert sandbox.stored_segment(segment["id"])["status"] == "ACTIVE"


def test_lists_and_search_keep_showing_a_soft_deleted_segment_with_status_deleted(sandbox):
    segment = by_hand(sandbox)
    raw(sandbox, "DELETE", segment_path(segment) + "?soft_delete=true")
    assert [(s["id"], s["status"]) for s in listed(sandbox)] == [(segment["id"], "DELETED")]
    assert [(s["id"], s["status"]) for s in listed(sandbox, "GENERIC/")] == [(segment["id"], "DELETED")]
    assert [(s["id"], s["status"]) for s in search_segments(sandbox)] == [(segment["id"], "DELETED")]


def test_segment_lists_filter_on_status(sandbox):
    active = by_hand(sandbox)
    awaited = sandbox.catalogue.add_segment(ASSET, "GENERIC", 1, 2, status="AWAITED")
    deleted = sandbox.catalogue.add_segment(ASSET, "COMMENT", 3, 3, status="DELETED")
    assert [s["id"] for s in listed(sandbox, "?status=ACTIVE")] == [active["id"]]
    assert [s["id"] for s in listed(sandbox, "?status=AWAITED")] == [awaited["id"]]
    assert [s["id"] for s in listed(sandbox, "GENERIC/?status=DELETED")] == []
    assert [s["id"] for s in listed(sandbox, "?status=DELETED&segment_type=COMMENT")] == [deleted["id"]]
    assert len(listed(sandbox)) == 3
    answer = raw(sandbox, "GET", SEGMENTS + "?status=GONE")
    assert answer.status_code == 400 and "status" in answer.json()["errors"]


def test_the_index_shows_a_soft_delete_only_once_it_catches_up(lagging):
    segment = lagging.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
    raw(lagging, "DELETE", segment_path(segment) + "?soft_delete=true")
    assert [s["status"] for s in listed(lagging)] == ["ACTIVE"]
    assert [s["id"] for s in listed(lagging, "?status=DELETED")] == []
    assert raw(lagging, "GET", segment_path(segment)).json()["status"] == "DELETED"  # a read by id is fresh
    lagging.catalogue.reindex()
    assert [s["status"] for s in listed(lagging)] == ["DELETED"]


# --- seeding --------------------------------------------------------------------------------------------------


def hand_made(catalogue):
    return [s for found in catalogue.segments.values() for s in found if s.get("segment_text") == "logged by hand"]


def test_seeded_hand_made_segments_are_internal_on_some_and_carry_a_shot_on_some_repeatably():
    first, second = Catalogue(), Catalogue()
    first.seed_from_sheet(str(EXAMPLE_SHEET), seed=3)
    second.seed_from_sheet(str(EXAMPLE_SHEET), seed=3)
    segments = hand_made(first)
    assert {s["is_internal"] for s in segments} == {True, False}
    shots = [s["shot"] for s in segments if s["shot"] is not None]
    assert shots and len(shots) < len(segments)
    assert [(s["id"], s["is_internal"], s["shot"]) for s in segments] == [
        (s["id"], s["is_internal"], s["shot"]) for s in hand_made(second)]


def test_the_awaited_and_odd_status_scenarios_are_dealt_only_when_a_mix_asks_for_them():
    assert EXPECTED["awaited"] == "skipped/segment_status"
    assert EXPECTED["odd_status"] == "skipped/unsupported_status"
    assert {"awaited", "odd_status"} <= set(SCENARIOS) and not {"awaited", "odd_status"} & set(DEFAULT_MIX)
    catalogue = Catalogue()
    dealt = catalogue.seed_from_sheet(str(EXAMPLE_SHEET), mix={"awaited": 1, "odd_status": 1})
    assert set(dealt.values()) == {"awaited", "odd_status", "rejected"}
    for key, scenario in dealt.items():
        if scenario == "rejected":
            continue
        [generic] = [s for s in catalogue.segments[key] if s["segment_type"] == "GENERIC"]
        if scenario == "awaited":
            assert (catalogue.assets[key]["status"], generic["status"]) == ("ACTIVE", "AWAITED")
        else:
            assert (catalogue.assets[key]["status"], generic["status"]) == ("ARCHIVED", "ACTIVE")


def test_an_asset_with_a_status_iconik_may_add_later_reads_200_with_that_status():
    with Sandbox(index_lag=0) as sandbox:
        with pytest.raises(ValueError, match="asset status 'ARCHIVED'"):
            sandbox.catalogue.add_asset(ASSET, status="ARCHIVED")
        sandbox.catalogue.add_asset(ASSET, status="ARCHIVED", strict=False)
        answer = raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/")
        assert (answer.status_code, answer.json()["status"]) == (200, "ARCHIVED")


# --- test hooks: a person changes the catalogue while a client runs -------------------------------------------


def test_a_person_edit_merges_moves_date_modified_and_reaches_the_index_after_the_lag(lagging):
    segment = dict(lagging.catalogue.add_segment(ASSET, "GENERIC", 1, 2, metadata={"Editor": ["kim"]}))
    edited = lagging.person_edits(segment["id"], segment_text="mine", time_end_milliseconds=3)
    assert (edited["segment_text"], edited["time_end_milliseconds"], edited["metadata"]) == (
        "mine", 3, {"Editor": ["kim"]})
    assert edited["date_modified"] > segment["date_modified"]
    assert raw(lagging, "GET", segment_path(segment)).json() == edited
    assert [s["segment_text"] for s in listed(lagging)] == [None]  # the index has not taken it in
    lagging.catalogue.reindex()
    assert [s["segment_text"] for s in listed(lagging)] == ["mine"]


def test_a_person_moving_a_segment_that_backs_a_subclip_moves_the_subclip():
    with Sandbox(index_lag=0) as sandbox:
        backing = linked(sandbox)
        sandbox.person_edits(backing["id"], time_start_milliseconds=2000, time_end_milliseconds=7000)
        subclip = raw(sandbox, "GET", f"/API/assets/v1/assets/{SUBCLIP}/").json()
        assert (subclip["time_start_milliseconds"], subclip["time_end_milliseconds"]) == (2000, 7000)


def test_a_person_making_a_subclip_from_a_segment_links_it_though_no_api_body_may():
    with Sandbox(index_lag=0) as sandbox:
        sandbox.catalogue.add_asset(PARENT)
        segment = sandbox.catalogue.add_segment(PARENT, "GENERIC", 1000, 5000)
        sandbox.catalogue.add_asset(SUBCLIP, type="SUBCLIP", start=1000, end=5000, original_asset_id=PARENT,
                                    original_segment_id=segment["id"])
        assert sandbox.person_edits(segment["id"], subclip_id=SUBCLIP)["subclip_id"] == SUBCLIP
        assert raw(sandbox, "GET", segment_path(segment)).json()["subclip_id"] == SUBCLIP
        answer = raw(sandbox, "PATCH", segment_path(segment), {"segment_type": "GENERIC", "subclip_id": None})
        assert answer.status_code == 400 and answer.json()["errors"] == {"subclip_id": "is read-only"}
        with pytest.raises(ValueError, match="subclip_id"):
            sandbox.person_creates(PARENT, "GENERIC", 1, 2, subclip_id=SUBCLIP)


def test_a_person_edit_refuses_a_field_or_status_the_schema_lacks(sandbox):
    segment = by_hand(sandbox)
    with pytest.raises(ValueError, match="segment_txt"):
        sandbox.person_edits(segment["id"], segment_txt="typo")
    with pytest.raises(ValueError, match="ARCHIVED"):
        sandbox.person_edits(segment["id"], status="ARCHIVED")
    with pytest.raises(KeyError):
        sandbox.person_edits("6a1d0f3c-0000-4000-8000-00000000ffff", segment_text="x")
    assert sandbox.person_edits(segment["id"], ai_labels=["flop"])["ai_labels"] == ["flop"]  # extra fields are fine


def test_a_person_deletes_softly_unless_told_otherwise(lagging):
    kept, gone = (lagging.catalogue.add_segment(ASSET, "GENERIC", n, n + 1) for n in (1, 2))
    assert lagging.person_deletes(kept["id"])["status"] == "DELETED"
    assert lagging.person_deletes(gone["id"], soft=False) is None
    assert raw(lagging, "GET", segment_path(kept)).json()["status"] == "DELETED"
    assert raw(lagging, "GET", segment_path(gone)).status_code == 404
    assert [s["status"] for s in listed(lagging)] == ["ACTIVE", "ACTIVE"]  # the index trails deletes too
    lagging.catalogue.reindex()
    assert [(s["id"], s["status"]) for s in listed(lagging)] == [(kept["id"], "DELETED")]


def test_a_person_creates_a_segment_the_index_shows_after_the_lag(lagging):
    created = lagging.person_creates(ASSET, "GENERIC", 1000, 2000, segment_text="mine", is_internal=True)
    assert raw(lagging, "GET", segment_path(created)).json() == created
    assert (created["time_start_milliseconds"], created["is_internal"]) == (1000, True)
    assert listed(lagging) == []
    lagging.catalogue.reindex()
    assert [s["id"] for s in listed(lagging)] == [created["id"]]
    with pytest.raises(ValueError, match="CLIP"):
        lagging.person_creates(ASSET, "CLIP", 1, 2)


def test_a_forced_answer_runs_on_answer_right_before_it_is_sent(sandbox):
    segment = by_hand(sandbox)
    seen = []

    def person():
        seen.append(sandbox.person_edits(segment["id"], segment_text="mine"))

    sandbox.force("PATCH", "/segments/", 429, {"errors": ["Too many"]}, headers={"Retry-After": "1"},
                  on_answer=person)
    answer = raw(sandbox, "PATCH", segment_path(segment), {"segment_type": "GENERIC", "segment_text": "sync"})
    assert (answer.status_code, answer.headers["Retry-After"], answer.json()) == (429, "1", {"errors": ["Too many"]})
    assert len(seen) == 1 and sandbox.stored_segment(segment["id"])["segment_text"] == "mine"  # done by then
    assert raw(sandbox, "PATCH", segment_path(segment), {"segment_type": "GENERIC"}).status_code == 200
    assert len(seen) == 1  # once per forced answer, not for the requests after it


def test_on_answer_runs_before_a_forced_drop_after_the_write_was_applied(sandbox):
    segment = by_hand(sandbox)
    stored_when_answered = []
    sandbox.force("PATCH", "/segments/", action="drop_after",
                  on_answer=lambda: stored_when_answered.append(sandbox.stored_segment(segment["id"])))
    with pytest.raises(requests.ConnectionError):  # the connection closes with no answer
        raw(sandbox, "PATCH", segment_path(segment), {"segment_type": "GENERIC", "segment_text": "sync"})
    assert [s["segment_text"] for s in stored_when_answered] == ["sync"]


def test_on_answer_must_be_callable():
    with pytest.raises(ValueError, match="on_answer"):
        Sandbox().force("PATCH", "/segments/", 429, on_answer="not a function")


def test_generic_segments_leaves_soft_deleted_ones_out_unless_asked(sandbox):
    kept, binned = by_hand(sandbox), by_hand(sandbox)
    sandbox.person_deletes(binned["id"])
    assert [s["id"] for s in sandbox.generic_segments(ASSET)] == [kept["id"]]
    assert [s["id"] for s in sandbox.generic_segments(ASSET, deleted=True)] == [kept["id"], binned["id"]]


def test_stored_segment_is_a_copy_of_the_fresh_record_or_none(lagging):
    segment = lagging.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
    raw(lagging, "PATCH", segment_path(segment), {"segment_type": "GENERIC", "time_end_milliseconds": 9})
    stored = lagging.stored_segment(segment["id"])
    assert stored["time_end_milliseconds"] == 9 and listed(lagging)[0]["time_end_milliseconds"] == 2
    stored["time_end_milliseconds"] = 100
    assert lagging.stored_segment(segment["id"])["time_end_milliseconds"] == 9
    assert lagging.stored_segment("6a1d0f3c-0000-4000-8000-00000000ffff") is None
