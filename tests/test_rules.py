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
    # ICONIK-FACTS 8.2: a status reversesync does not know is never taken for ACTIVE (issue #15)
    (asset(status="ARCHIVED"), [], ("skipped", "unsupported_status", None)),
    (asset(), [generic("s1", 1, 2, status="AWAITED")], ("skipped", "segment_status", None)),
    (asset(), [generic("s1", 1000, 5000, status="AWAITED")], ("skipped", "segment_status", None)),
    (asset(), [generic("s1", 1, 2, status="SOMETHING_NEW"), generic("s2", 3, 4)], ("skipped", "segment_status", None)),
    (asset(), [generic("s1", 1, 2, status="ACTIVE")], (None, None, "update")),
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
    (generic("s1", 1, 2, status="AWAITED"), "segment_status"),
    (generic("s9", 1, 2), "changed"),
])
def test_a_patch_goes_out_only_on_a_fresh_live_generic_segment_without_subclip(segment, expected):
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


def test_deleted_segments_count_as_absent_everywhere():
    assert rules.generic_only([generic("s1", 1, 2, status="DELETED"), generic("s2", 1, 2)]) == [generic("s2", 1, 2)]
    assert rules.is_absent(None) and rules.is_absent(generic("s1", 1, 2, status="DELETED"))
    assert not rules.is_absent(generic("s1", 1, 2, status="AWAITED"))


BEFORE = generic("s1", 1, 2, segment_text="by hand", is_internal=True, shot={"kind": "close"},
                 date_modified="2026-01-01", labels=["face"])


@pytest.mark.parametrize("answer, replaced", [
    (dict(BEFORE, time_start_milliseconds=5, time_end_milliseconds=9, date_modified="2026-12-06"), []),
    (dict(BEFORE, time_start_milliseconds=5, is_internal=False), ["is_internal"]),   # the PUT lesson, by PATCH
    (dict(BEFORE, segment_text=None, shot=None), ["segment_text", "shot"]),
    ({k: v for k, v in BEFORE.items() if k != "shot"}, ["shot"]),                   # a field gone from the answer
    (dict(BEFORE, labels=[]), ["labels"]),                                          # one reversesync never heard of
    (dict(BEFORE, ai_labels=[]), []),                                               # appeared empty: nothing lost
    (dict(BEFORE, segment_text="a person's edit", shot={"kind": "wide"}), []),      # edited meanwhile, not reset
])
def test_a_patch_answer_with_other_fields_emptied_is_a_replaced_segment(answer, replaced):
    assert rules.patch_replaced(BEFORE, answer) == replaced


def test_field_differences_leave_the_stamps_aside_and_count_absent_as_null():
    found = dict(BEFORE, date_modified="later", user_first_name="Someone", user_info={"id": "u"}, extra=None)
    assert rules.field_differences(found, BEFORE) == []
    assert rules.field_differences(dict(found, segment_color="#f00"), BEFORE) == [("segment_color", None, "#f00")]
    assert rules.field_differences(dict(BEFORE, id="s2"), BEFORE, aside=("id",)) == []


# --- drift (issue #17): what became of a segment reversesync wrote ------------------------------------------------

OURS = {"id": "s1", "segment_type": "GENERIC", "time_start_milliseconds": 1000, "time_end_milliseconds": 5000,
        "status": "ACTIVE", "external_id": "reversesync:abc"}


@pytest.mark.parametrize("read, listed, reason, says", [
    (OURS, [OURS], None, None),
    (None, [], "drift_deleted", "was deleted in Iconik; `sync --repair-drift` creates it again"),
    ({**OURS, "status": "DELETED"}, [], "drift_deleted", "was deleted"),
    ({**OURS, "time_end_milliseconds": 6000}, [], "drift_moved", "is now GENERIC 1000-6000 ms; `sync --repair-drift` "
                                                                "sets the sheet's times back"),
    ({**OURS, "segment_type": "QC"}, [], "drift_moved", "is now QC 1000-5000 ms; `sync --repair-drift` creates a "
                                                       "GENERIC segment with the sheet's times and leaves this one"),
    (OURS, [OURS, {**OURS, "id": "s2"}], "drift_duplicated", "also s2 1000-5000 ms"),
    (OURS, [OURS, {**OURS, "id": "s3", "external_id": None}], "drift_duplicated", "also s3"),
    (OURS, [OURS, {**OURS, "id": "s4", "external_id": None, "time_end_milliseconds": 7000}], None, None),
], ids=["as-written", "404", "soft-deleted", "moved", "made-qc", "copied-with-marker", "same-times", "another"])
def test_drift_of_a_segment_reversesync_wrote(read, listed, reason, says):
    from reversesync.rules.drift import drift

    found = drift("s1", 1000, 5000, read, listed)
    if reason is None:
        assert found is None
    else:
        assert found is not None and found.reason == reason
        assert says in found.text, found.text


@pytest.mark.parametrize("listed, action, reason, otherwise", [
    ([], "create", None, "create"),                                    # gone and none there: created again
    ([generic("s2", 7000, 9000)], None, "drift_deleted", "update"),    # a person's since: never moved onto
    ([generic("s2", 1000, 5000)], None, "in_sync", None),              # a person's already holding the times
])
def test_a_row_whose_own_segment_was_deleted_is_never_moved_onto_another(listed, action, reason, otherwise):
    asset = {"id": "a", "type": "ASSET", "status": "ACTIVE"}
    decision = rules.decide(asset, listed, 1000, 5000, lost="s1")
    assert (decision.action, decision.reason) == (action, reason), decision.text
    assert rules.decide(asset, listed, 1000, 5000).action == otherwise  # a row whose segment was not lost
