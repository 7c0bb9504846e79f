"""The decision rules against a sandbox that behaves as the real Iconik does (issue #9, ICONIK-FACTS 7): segment
lists that trail writes, segments backing subclips, asset types, per-asset 403s, answers of the wrong shape."""

import pytest

from reversesync.ledger import Ledger
from tests.conftest import sandbox_for_cli, state, writes

A, B, C = (f"2b9d0e00-0000-4000-8000-00000000000{n}" for n in range(1, 4))
SUB = "2b9d0e00-0000-4000-8000-0000000000aa"
LAG = 0.3


@pytest.fixture
def sandbox(monkeypatch):
    with sandbox_for_cli(monkeypatch, index_lag=LAG) as running:
        yield running


def live(invoke, *args):
    return invoke("run", "--live", "--settle", "2", "--read-timeout", "0.5", *args)


def with_subclip(catalogue, key, start, end):
    """An ASSET whose only GENERIC segment backs a SUBCLIP (ICONIK-FACTS 7.2)."""
    catalogue.add_asset(key)
    catalogue.add_asset(SUB, type="SUBCLIP", start=start, end=end, original_asset_id=key)
    return catalogue.add_segment(key, "GENERIC", start, end, subclip_id=SUB)


@pytest.mark.parametrize("search", ["--search", "--no-search"])
def test_a_segment_backing_a_subclip_is_never_written(sandbox, loaded, invoke, ledger_path, search):  # noqa: F811
    with_subclip(sandbox.catalogue, A, 1, 2)
    before = sandbox.catalogue.dump()
    loaded((A, 1000, 5000))
    assert live(invoke, search).exit_code == 0
    assert state(ledger_path, A) == ("skipped", "subclip_linked")
    assert f"backs SUBCLIP {SUB}" in Ledger(ledger_path).asset(A)["reason_text"]
    assert writes(sandbox) == [] and sandbox.catalogue.dump() == before


def test_a_subclip_link_seen_only_by_the_fresh_get_stops_the_put(sandbox, loaded, invoke, ledger_path):  # noqa: F811
    """The list (an index) does not show subclip_id yet; the GET by id before the PUT does."""
    sandbox.catalogue.add_asset(A)
    segment = sandbox.catalogue.add_segment(A, "GENERIC", 1, 2)
    sandbox.catalogue.add_asset(SUB, type="SUBCLIP", start=1, end=2, original_asset_id=A)

    def link_after_the_list(method, path):
        if method == "GET" and path.endswith(f"/segments/{segment['id']}/"):
            segment["subclip_id"] = SUB  # stored record only: the index still shows it unlinked

    sandbox.hooks.append(link_after_the_list)
    loaded((A, 1000, 5000))
    assert live(invoke, "--no-search").exit_code == 0
    assert state(ledger_path, A) == ("skipped", "subclip_linked")
    assert writes(sandbox) == []
    assert (sandbox.catalogue.assets[SUB]["time_start_milliseconds"], sandbox.catalogue.assets[SUB][
        "time_end_milliseconds"]) == (1, 2)


def test_a_segment_that_became_a_comment_between_list_and_get_is_not_put(
        sandbox, loaded, invoke, ledger_path):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    segment = sandbox.catalogue.add_segment(A, "GENERIC", 1, 2, segment_text="a note")

    def retype(method, path):
        if method == "GET" and path.endswith(f"/segments/{segment['id']}/"):
            segment["segment_type"] = "COMMENT"

    sandbox.hooks.append(retype)
    loaded((A, 1000, 5000))
    live(invoke, "--no-search")
    assert [w for w in writes(sandbox) if w[0] == "PUT"] == []
    assert segment["segment_text"] == "a note" and segment["time_end_milliseconds"] == 2


@pytest.mark.parametrize("kind", ["SEQUENCE", "NLE_PROJECT", "PLACEHOLDER", "CUSTOM", "LINK"])
def test_assets_of_other_types_are_skipped_unsupported(sandbox, loaded, invoke, ledger_path, kind):  # noqa: F811
    sandbox.catalogue.add_asset(A, type=kind)
    loaded((A, 1000, 5000))
    assert live(invoke).exit_code == 0
    assert state(ledger_path, A) == ("skipped", "unsupported_type")
    assert writes(sandbox) == []


def test_a_forbidden_asset_fails_its_row_and_the_run_goes_on(sandbox, loaded, invoke, ledger_path):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_asset(B)
    sandbox.catalogue.forbid(A)
    loaded((A, 1000, 5000), (B, 1000, 5000))
    result = live(invoke)
    assert result.exit_code == 1
    row = Ledger(ledger_path).asset(A)
    assert (row["state"], row["reason"], row["http_status"]) == ("failed", "forbidden", 403)
    assert "You do not have permission to access this asset" in row["reason_text"]
    assert state(ledger_path, B) == ("created", "create")
    sandbox.catalogue.forbidden.discard(A)  # access granted
    again = live(invoke, "--retry-failed")
    assert again.exit_code == 0, again.output
    assert state(ledger_path, A) == ("created", "create")


def test_a_token_that_can_read_none_of_the_first_25_assets_stops_the_run_leaving_them_pending(
        sandbox, loaded, invoke, ledger_path):  # noqa: F811
    keys = [f"2b9d0e00-0000-4000-8000-0000000001{n:02d}" for n in range(30)]
    for key in keys:
        sandbox.catalogue.add_asset(key)
        sandbox.catalogue.forbid(key)
    loaded(*[(key, 1000, 5000) for key in keys])
    result = live(invoke, "--no-search", "--workers", "4")
    assert result.exit_code == 2  # no readable asset: a person must grant access (issue #17)
    assert "the token's user may read none of the first 25 assets" in result.output
    states = {r["state"] for r in Ledger(ledger_path).query("select state from assets")}
    assert states == {"pending"}


def test_a_201_for_another_asset_fails_the_row_naming_the_stray_segment(
        sandbox, loaded, invoke, ledger_path):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    stray = {"id": "2b9d0e00-0000-4000-8000-0000000000ee", "asset_id": SUB, "segment_type": "GENERIC"}
    sandbox.force("POST", f"/assets/{A}/segments/$", 201, stray)
    loaded((A, 1000, 5000))
    assert live(invoke).exit_code == 1
    row = Ledger(ledger_path).asset(A)
    assert (row["state"], row["reason"], row["intent"]) == ("failed", "unexpected_answer", None)
    assert f"segment {stray['id']} (GENERIC) on asset {SUB}" in row["reason_text"]
    assert len([w for w in writes(sandbox) if w[0] == "POST"]) == 1


def test_a_fresh_read_without_a_type_is_never_guessed(sandbox, loaded, invoke, ledger_path):  # noqa: F811
    sandbox.catalogue.add_asset(A)
    sandbox.force("GET", f"/assets/{A}/$", 200, {"id": A, "status": "ACTIVE"})
    loaded((A, 1000, 5000))
    assert live(invoke, "--no-search").exit_code == 1
    assert state(ledger_path, A) == ("failed", "unexpected_answer")
    assert "has no type" in Ledger(ledger_path).asset(A)["reason_text"]
    assert writes(sandbox) == []


def test_verify_straight_after_a_live_run_reports_no_false_mismatch(sandbox, loaded, invoke):  # noqa: F811
    for key in (A, B):
        sandbox.catalogue.add_asset(key)
    sandbox.catalogue.add_segment(B, "GENERIC", 1, 2)
    loaded((A, 1000, 5000), (B, 1000, 5000))
    assert live(invoke).exit_code == 0
    result = invoke("verify")  # the lists still trail the writes by the index lag
    assert result.exit_code == 0, result.output
    assert "Verified 2 assets: 2 match, 0 do not" in result.output


def test_a_recheck_right_after_a_create_reads_our_segment_by_id_and_writes_nothing(
        sandbox, loaded, invoke, ledger_path):  # noqa: F811
    """The list trails the create; the segment reversesync recorded is read by id instead of created again."""
    sandbox.catalogue.add_asset(A)
    loaded((A, 1000, 5000))
    assert live(invoke).exit_code == 0
    assert live(invoke, "--asset", A).exit_code == 0
    assert len(sandbox.generic_segments(A)) == 1
    assert state(ledger_path, A) == ("skipped", "in_sync")
    row = Ledger(ledger_path).asset(A)
    assert (row["done_action"], row["done_segment_id"]) == ("create", sandbox.generic_segments(A)[0]["id"])


def test_a_token_without_can_search_runs_per_asset_and_says_so_once(sandbox, loaded, invoke):  # noqa: F811
    sandbox.roles = [role for role in sandbox.roles if role != "can_search"]
    for key in (A, B):
        sandbox.catalogue.add_asset(key)
    loaded((A, 1000, 5000), (B, 1000, 5000))
    result = live(invoke)
    assert result.exit_code == 0
    assert result.output.count("Search unavailable (the token's user lacks the role can_search)") == 1
    assert not [r for r in sandbox.requests() if "/search/" in r[1]]
