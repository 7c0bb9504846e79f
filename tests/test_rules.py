"""The decision rules as a table: what was read in, what the row becomes (README, "What it decides")."""

import pytest

from reversesync import rules

ID = "3c1b0a00-0000-4000-8000-000000000001"
SUB = "3c1b0a00-0000-4000-8000-0000000000aa"


def asset(**fields):
    return dict({"id": ID, "type": "ASSET", "status": "ACTIVE"}, **fields)


def generic(segment_id, start, end, **fields):
    return dict({"id": segment_id, "asset_id": ID, "segment_type": "GENERIC", "time_start_milliseconds": start,
                 "time_end_milliseconds": end}, **fields)


@pytest.mark.parametrize("read, segments, expected", [
    (None, [], ("failed", "not_found", None)),
    (asset(status="DELETED", type="SUBCLIP"), [], ("skipped", "asset_deleted", None)),  # deleted comes first
    (asset(type="SUBCLIP", time_start_milliseconds=1000, time_end_milliseconds=5000), [], ("skipped", "in_sync", None)),
    (asset(type="SUBCLIP", time_start_milliseconds=1, time_end_milliseconds=2), [],
     ("skipped", "subclip_mismatch", None)),
    (asset(type="SEQUENCE"), [], ("skipped", "unsupported_type", None)),
    (asset(type="PLACEHOLDER"), [], ("skipped", "unsupported_type", None)),
    (asset(type="LINK"), [], ("skipped", "unsupported_type", None)),
    (asset(type="NLE_PROJECT"), [], ("skipped", "unsupported_type", None)),
    (asset(type="CUSTOM"), [], ("skipped", "unsupported_type", None)),
    (asset(type="SOMETHING_NEW"), [], ("skipped", "unsupported_type", None)),
    ({"id": ID, "status": "ACTIVE"}, [], ("failed", "unexpected_answer", None)),
    ({"id": ID, "type": "ASSET"}, [], ("failed", "unexpected_answer", None)),
    (asset(), [], (None, None, "create")),
    (asset(), [generic("s1", 1, 2)], (None, None, "update")),
    (asset(), [generic("s1", 3000, 3000)], (None, None, "update")),  # zero length
    (asset(), [generic("s1", 1000, 5000)], ("skipped", "in_sync", None)),
    (asset(), [generic("s1", 1, 2), generic("s2", 1000, 5000)], ("skipped", "in_sync", None)),
    (asset(), [generic("s1", 1, 2), generic("s2", 3, 4)], ("skipped", "ambiguous", None)),
    (asset(), [generic("s1", 1, 2, subclip_id=SUB)], ("skipped", "subclip_linked", None)),
    (asset(), [generic("s1", 1, 2, subclip_id=SUB), generic("s2", 3, 4)], ("skipped", "subclip_linked", None)),
    (asset(), [generic("s1", 1000, 5000, subclip_id=SUB)], ("skipped", "in_sync", None)),
])
def test_decision_table(read, segments, expected):
    decision = rules.decide(read, segments, 1000, 5000)
    assert (decision.state, decision.reason, decision.action) == expected


def test_subclip_linked_names_the_subclip_and_never_plans_a_write():
    decision = rules.decide(asset(), [generic("s1", 1, 2, subclip_id=SUB)], 1000, 5000)
    assert decision.action is None
    assert f"segment s1 1-2 ms backs SUBCLIP {SUB}" in decision.text


def test_unexpected_answer_names_what_was_missing():
    assert "has no type or status" in rules.decide({"id": ID}, [], 1, 2).text


def test_ambiguous_text_names_the_command_that_rechecks_it():
    decision = rules.decide(asset(), [generic("s1", 1, 2), generic("s2", 3, 4)], 1000, 5000)
    assert decision.text.endswith("then run --live --recheck ambiguous.")


@pytest.mark.parametrize("segment, expected", [
    (generic("s1", 1, 2), None),
    (generic("s1", 1, 2, subclip_id=SUB), "subclip_linked"),
    (generic("s1", 1, 2, segment_type="COMMENT"), "changed"),
    (generic("s1", 1, 2, status="DELETED"), "changed"),
    (generic("s9", 1, 2), "changed"),
])
def test_a_put_goes_out_only_on_a_fresh_generic_segment_without_subclip(segment, expected):
    problem = rules.update_target_problem(segment, "s1")
    assert (problem[0] if problem else None) == expected


@pytest.mark.parametrize("answer, ok", [
    ({"id": "n", "asset_id": ID, "segment_type": "GENERIC"}, True),
    ({"id": "n", "asset_id": SUB, "segment_type": "GENERIC"}, False),  # filed under another asset
    ({"id": "n", "asset_id": ID, "segment_type": "COMMENT"}, False),
    ({"asset_id": ID, "segment_type": "GENERIC"}, False),
    ([], False),
])
def test_a_201_answer_is_checked(answer, ok):
    assert (rules.created_answer_problem(answer, ID) is None) == ok


def test_index_documents_count_absent_nullable_fields_as_null_but_need_id_type_status():
    assert rules.index_document_trusted({"id": ID, "type": "ASSET", "status": "ACTIVE"}, ("id", "type", "status"))
    assert not rules.index_document_trusted({"id": ID, "type": "ASSET"}, ("id", "type", "status"))


def test_markers_are_recognised_in_every_version():
    assert rules.is_ours({"external_id": "reversesync"})  # 0.1 wrote the bare word
    assert rules.is_ours({"external_id": rules.marker("abc")})
    assert not rules.is_ours({"external_id": "someone else"}) and not rules.is_ours({})
