"""verify by id, extras by batch (issue #19): one GET by id per recorded segment, extra or duplicate GENERIC
segments looked up by a batched search (a hundred assets per request), the asset's own list read only where the
search shows another GENERIC segment or cannot tell. Run with list lag != search lag."""

import pytest

from reversesync import rules
from tests.conftest import sandbox_for_cli

SEARCH = "/API/search/v1/search/"


def key(n):
    return f"5c2e7a40-0000-4000-8000-{n:012d}"


@pytest.fixture(params=[(0.05, 0.3), (0.3, 0.05)], ids=["search-trails-more", "list-trails-more"])
def sandbox(monkeypatch, request):
    list_lag, search_lag = request.param
    with sandbox_for_cli(monkeypatch, list_lag=list_lag, search_lag=search_lag) as running:
        yield running


def since(sandbox, count):
    return [(method, path) for method, path, _ in sandbox.requests()[count:]]


def kinds(paths):
    found = {"search": 0, "segment": 0, "list": 0, "asset": 0}
    for _method, path in paths:
        if path.startswith(SEARCH):
            found["search"] += 1
        elif path.endswith("/segments/"):
            found["list"] += 1
        elif "/segments/" in path:
            found["segment"] += 1
        elif path.startswith("/API/assets/"):
            found["asset"] += 1
    return found


def test_a_clean_ledger_is_verified_by_id_with_one_search_per_hundred_rows(sandbox, loaded, invoke):
    keys = [key(n) for n in range(130)]
    for n, asset in enumerate(keys):
        if n % 13 == 0:
            sandbox.catalogue.add_asset(asset, type="SUBCLIP", start=1000, end=5000)
        else:
            sandbox.catalogue.add_asset(asset)
        if n % 5 == 0:
            sandbox.catalogue.add_segment(asset, "GENERIC", 1000, 5000)  # in sync
        if n % 7 == 0:
            sandbox.catalogue.add_segment(asset, "COMMENT", 7, 7)
    loaded(*[(asset, 1000, 5000) for asset in keys])
    assert invoke("run", "--live").exit_code == 0
    sandbox.settle()
    count = len(sandbox.requests())
    result = invoke("verify")
    assert result.exit_code == 0, result.output
    subclips = len(keys[::13])
    found = kinds(since(sandbox, count))
    # Two searches of segments (130 recorded... less the SUBCLIPs), one of the SUBCLIPs' asset documents.
    assert found == {"search": 3, "segment": len(keys) - subclips, "list": 0, "asset": 0}
    sandbox.catalogue.edit_asset(keys[0], time_end_milliseconds=6000)  # a SUBCLIP moved: confirmed by a fresh read
    sandbox.settle()
    count = len(sandbox.requests())
    result = invoke("verify")
    assert result.exit_code == 1 and "subclip" in result.output and keys[0] in result.output
    assert kinds(since(sandbox, count))["asset"] == 1


def test_an_extra_a_duplicate_and_a_gone_segment_are_found_reading_the_list_only_for_them(sandbox, loaded, invoke):
    plain, extra, duplicate, gone, gone_asset = (key(n) for n in range(5))
    for asset in (plain, extra, duplicate, gone, gone_asset):
        sandbox.catalogue.add_asset(asset)
    loaded(*[(asset, 1000, 5000) for asset in (plain, extra, duplicate, gone, gone_asset)])
    assert invoke("run", "--live").exit_code == 0
    sandbox.person_creates(extra, "GENERIC", 0, 900)
    [ours] = sandbox.generic_segments(duplicate)
    sandbox.person_creates(duplicate, "GENERIC", 1000, 5000, external_id=ours["external_id"])  # a late copy
    [lost] = sandbox.generic_segments(gone)
    sandbox.person_deletes(lost["id"], soft=False)
    with sandbox.catalogue.lock:
        del sandbox.catalogue.assets[gone_asset]
    sandbox.settle()
    count = len(sandbox.requests())
    result = invoke("verify")
    assert result.exit_code == 1
    found = kinds(since(sandbox, count))
    assert found["list"] == 2 and found["search"] == 1  # the lists of `extra` and `duplicate` only
    lines = result.output
    assert f"{extra}" in lines and "extra" in lines
    assert "duplicate" in lines and duplicate in lines
    assert "missing" in lines and lost["id"] in lines
    assert "gone" in lines and gone_asset in lines
    assert plain not in lines


def test_documents_lacking_a_field_or_a_search_refused_fall_back_to_the_list(sandbox, loaded, invoke):
    keys = [key(n) for n in range(3)]
    for asset in keys:
        sandbox.catalogue.add_asset(asset)
    loaded(*[(asset, 1000, 5000) for asset in keys])
    assert invoke("run", "--live").exit_code == 0
    sandbox.person_creates(keys[0], "GENERIC", 0, 900)
    sandbox.settle()
    documents = [{"asset_id": asset, "segment_type": "GENERIC", "object_type": "segments"} for asset in keys[:2]]
    sandbox.force("POST", "^/API/search/", 200, {"objects": documents, "page": 1, "pages": 1})  # no ids
    count = len(sandbox.requests())
    result = invoke("verify")
    assert result.exit_code == 1 and "extra" in result.output and keys[0] in result.output
    assert kinds(since(sandbox, count))["list"] == 2  # the two assets the documents cannot speak for
    sandbox.force("POST", "^/API/search/", 403, {"errors": ["You do not have the role can_search"]})
    count = len(sandbox.requests())
    result = invoke("verify")
    assert result.exit_code == 1 and "extra" in result.output and keys[0] in result.output
    assert kinds(since(sandbox, count))["list"] == 3


def test_verify_straight_after_a_run_sees_no_false_extra_while_the_index_lags(sandbox, loaded, invoke):
    keys = [key(n) for n in range(20)]
    for asset in keys:
        sandbox.catalogue.add_asset(asset)
        sandbox.catalogue.add_segment(asset, "GENERIC", 1, 2)  # every row an update
    loaded(*[(asset, 1000, 5000) for asset in keys])
    assert invoke("run", "--live").exit_code == 0
    result = invoke("verify")  # no settle: the index may still show the old times
    assert result.exit_code == 0, result.output
    assert all(not rules.is_ours(s) for asset in keys for s in sandbox.generic_segments(asset))


# --- what an adversarial review of issue #19 found ----------------------------------------------------------------


def test_verify_straight_after_an_undo_reports_no_leftover_the_lagging_list_still_shows(sandbox, loaded, invoke):
    keys = [key(70 + n) for n in range(3)]
    for asset in keys:
        sandbox.catalogue.add_asset(asset)
    loaded(*[(asset, 1000, 5000) for asset in keys])
    assert invoke("run", "--live").exit_code == 0
    sandbox.settle()
    assert invoke("undo", "1", "--live").exit_code == 0
    result = invoke("verify")  # the lists still show the deleted segments, with their markers
    assert all(sandbox.generic_segments(asset) == [] for asset in keys)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("search", ["answers", "refused"])
def test_a_subclip_in_iconiks_bin_is_no_match(sandbox, loaded, invoke, search):
    asset = key(300)
    sandbox.catalogue.add_asset(asset, type="SUBCLIP", start=1000, end=5000)
    loaded((asset, 1000, 5000))
    assert invoke("run", "--live").exit_code == 0
    sandbox.catalogue.edit_asset(asset, status="DELETED")
    sandbox.settle()
    if search == "refused":
        sandbox.force("POST", "^/API/search/", 403, {"errors": ["no can_search"]})
    result = invoke("verify")
    assert result.exit_code == 1, result.output
    assert f"MISMATCH {asset} (row 2, skipped, gone)" in result.output
    assert "the asset is deleted (status DELETED)" in result.output
