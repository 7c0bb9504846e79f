"""The sandbox behaves like Iconik where reversesync depends on it; exercised through the real client."""

import collections
import json
import time

import pytest

from reversesync import errors
from reversesync.iconik import Pacer
from reversesync.sandbox import DEFAULT_MIX, Catalogue, Faults, Sandbox
from tests.conftest import EXAMPLE_SHEET, client_for, raw
from tests.conftest import SANDBOX_ASSET as ASSET


@pytest.fixture
def sandbox():
    with Sandbox() as running:
        running.catalogue.add_asset(ASSET, title="clip")
        yield running


def test_users_roles_and_token_endpoints(sandbox):
    client = client_for(sandbox)
    assert client.current_user()["email"] == "sync@sandbox.invalid"
    assert "can_write_segments" in client.current_roles()
    assert raw(sandbox, "GET", "/API/auth/v1/auth/token/").status_code == 200


def test_post_answers_201_with_server_made_id_and_dates(sandbox):
    created = client_for(sandbox).create_segment(ASSET, 1000, 2000, external_id="reversesync")
    assert created["id"] and created["date_created"] and created["asset_id"] == ASSET
    assert raw(sandbox, "POST", f"/API/assets/v1/assets/{ASSET}/segments/",
               {"segment_type": "GENERIC"}).status_code == 201
    assert sandbox.requests("POST")[0][2] == 201


def test_segment_list_pages_and_stops_at_pages(sandbox):
    for n in range(12):
        sandbox.catalogue.add_segment(ASSET, "COMMENT" if n % 3 else "GENERIC", n, n)
    first = raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/segments/").json()
    assert (first["per_page"], first["pages"], first["total"], len(first["objects"])) == (10, 2, 12, 10)
    assert first["next_url"].startswith(f"/API/assets/v1/assets/{ASSET}/segments/?")
    assert raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/segments/?page=3").status_code == 404
    by_type = raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/segments/GENERIC/").json()
    assert by_type["total"] == 4
    assert len(client_for(sandbox, per_page=2).list_segments(ASSET, "COMMENT")) == 8


def test_put_replaces_editable_fields_and_patch_merges(sandbox):
    segment = sandbox.catalogue.add_segment(ASSET, "GENERIC", 5, 5, metadata={"Editor": ["kim"]},
                                            segment_text="by hand")
    path = f"/API/assets/v1/assets/{ASSET}/segments/{segment['id']}/"
    patched = raw(sandbox, "PATCH", path, {"segment_type": "GENERIC", "segment_color": "#00ff00"}).json()
    assert (patched["segment_text"], patched["segment_color"]) == ("by hand", "#00ff00")
    # the lesson the sheet's owners paid for: a PUT with only the times wipes everything else
    wiped = raw(sandbox, "PUT", path, {"segment_type": "GENERIC", "time_start_milliseconds": 1,
                                       "time_end_milliseconds": 9}).json()
    assert (wiped["metadata"], wiped["segment_text"], wiped["time_end_milliseconds"]) == ({}, None, 9)


@pytest.mark.parametrize("body, field", [
    ({"time_start_milliseconds": 1}, "segment_type"),
    ({"segment_type": "CLIP"}, "segment_type"),
    ({"segment_type": "GENERIC", "time_start_milliseconds": 1.0}, "time_start_milliseconds"),
    ({"segment_type": "GENERIC", "id": "x"}, "id"),
    ({"segment_type": "GENERIC", "date_created": "x"}, "date_created"),
])
def test_bad_segment_bodies_answer_400_naming_the_field(sandbox, body, field):
    answer = raw(sandbox, "POST", f"/API/assets/v1/assets/{ASSET}/segments/", body)
    assert answer.status_code == 400 and field in answer.json()["errors"]


def test_auth_is_required_and_roles_are_enforced():
    with Sandbox(roles=["can_read_assets", "can_read_segments"]) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        assert raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/", **{"Auth-Token": "wrong"}).status_code == 401
        assert raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/").status_code == 200
        with pytest.raises(errors.Forbidden, match="answered 403: You do not have the role can_create_segments"):
            client_for(sandbox).create_segment(ASSET, 1, 2)
        assert sandbox.generic_segments(ASSET) == []


def test_unknown_asset_and_segment_are_404(sandbox):
    client = client_for(sandbox)
    with pytest.raises(errors.NotFound, match="Asset not found"):
        client.get_asset("6a1d0f3c-0000-4000-8000-00000000ffff")
    with pytest.raises(errors.NotFound, match="Segment not found"):
        client.get_segment(ASSET, "6a1d0f3c-0000-4000-8000-00000000ffff")


def test_rate_limit_answers_429_with_retry_after_and_remaining_header():
    with Sandbox(rate=5) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        answers = [raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/") for _ in range(7)]
        statuses = [a.status_code for a in answers]
        assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
        assert [a.headers["RateLimit-Remaining"] for a in answers[:5]] == ["4", "3", "2", "1", "0"]
        limited = next(a for a in answers if a.status_code == 429)
        assert limited.headers["Retry-After"] == "1" and limited.json() == {"errors": ["Too many requests"]}


def test_client_pacing_keeps_under_the_sandbox_limit():
    with Sandbox(rate=20) as sandbox:
        sandbox.catalogue.add_asset(ASSET)
        client = client_for(sandbox, pacer=Pacer(rate=20))
        for _ in range(30):
            client.get_asset(ASSET)
        assert client.stats.throttled == 0


@pytest.mark.parametrize("faults, check", [
    (Faults(server_error=1.0), lambda sb, c: pytest.raises(errors.ServerError, c.get_asset, ASSET)),
    (Faults(conflict=1.0), lambda sb, c: pytest.raises(errors.Conflict, c.create_segment, ASSET, 1, 2)),
    (Faults(drop_before=1.0), lambda sb, c: pytest.raises(errors.UnknownOutcome, c.create_segment, ASSET, 1, 2)),
    (Faults(drop_after=1.0), lambda sb, c: pytest.raises(errors.UnknownOutcome, c.create_segment, ASSET, 1, 2)),
    (Faults(revoke_after=2), lambda sb, c: [c.get_asset(ASSET), c.get_asset(ASSET),
                                            pytest.raises(errors.AuthError, c.get_asset, ASSET)]),
])
def test_each_fault_kind(sandbox, faults, check):
    sandbox.faults = faults
    check(sandbox, client_for(sandbox, retries=1))
    expected = 1 if faults.drop_after else 0
    assert len(sandbox.generic_segments(ASSET)) == expected


def test_slow_fault_delays_the_answer(sandbox):
    sandbox.faults = Faults(slow=1.0, slow_ms=300)
    began = time.monotonic()
    client_for(sandbox).get_asset(ASSET)
    assert time.monotonic() - began >= 0.3


def test_faults_replay_the_same_for_the_same_seed():
    def outcomes(seed):
        with Sandbox(faults=Faults(server_error=0.5), seed=seed) as sandbox:
            sandbox.catalogue.add_asset(ASSET)
            return [raw(sandbox, "GET", f"/API/assets/v1/assets/{ASSET}/").status_code for _ in range(20)]

    assert outcomes(7) == outcomes(7) != outcomes(8)


def test_seeding_from_the_example_sheet_is_deterministic_and_covers_every_scenario_of_the_default_mix():
    first, second = Catalogue(), Catalogue()
    dealt = first.seed_from_sheet(str(EXAMPLE_SHEET), seed=3)
    assert dealt == second.seed_from_sheet(str(EXAMPLE_SHEET), seed=3)
    counts = collections.Counter(dealt.values())
    assert set(counts) == set(DEFAULT_MIX) | {"rejected"}
    assert first.dump()["segments"].keys() == second.dump()["segments"].keys()  # made-up ids are seeded too
    subclip = next(k for k, v in dealt.items() if v == "subclip_equal")
    assert first.assets[subclip]["type"] == "SUBCLIP" and first.segments[subclip] == []
    unknown = next(k for k, v in dealt.items() if v == "unknown")
    assert unknown not in first.assets


def test_state_dump_and_restore(sandbox, tmp_path):
    sandbox.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
    dumped = raw(sandbox, "GET", "/_sandbox/state/").json()
    assert dumped["segments"][ASSET][0]["time_end_milliseconds"] == 2
    again = Catalogue()
    again.restore(json.loads(json.dumps(dumped)))
    assert again.dump() == sandbox.catalogue.dump()


def test_search_answers_assets_and_generic_segments_by_id_in_pages(sandbox):
    other = "6a1d0f3c-0000-4000-8000-0000000000b2"
    sandbox.catalogue.add_asset(other)
    sandbox.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
    sandbox.catalogue.add_segment(ASSET, "COMMENT", 1, 1)
    sandbox.catalogue.add_segment(other, "GENERIC", 3, 4)
    client = client_for(sandbox)
    assets = client.search("assets", {"id": [ASSET, other, "6a1d0f3c-0000-4000-8000-00000000ffff"]}, per_page=1)
    assert sorted(a["id"] for a in assets) == sorted([ASSET, other])
    segments = client.search("segments", {"asset_id": [ASSET, other], "segment_type": ["GENERIC"]})
    assert sorted(s["time_start_milliseconds"] for s in segments) == [1, 3]
    assert client.stats.writes == 0 and client.stats.by_method["POST"] == 3
    bad = raw(sandbox, "POST", "/API/search/v1/search/", {"doc_types": ["assets"], "filter": {
        "operator": "AND", "terms": [{"name": "title", "value": "x"}]}})
    assert bad.status_code == 400
