"""`undo RUN` and `verify --repair` (issue #12) through the real CLI against the sandbox, index lag on, with
settle time and read timeout scaled down in the ratios that matter (settle > read timeout + late apply + lag)."""

import dataclasses
import json
import os
import random
import time

import pytest

from reversesync.ledger import Ledger
from reversesync.rules import MARKER, undo
from reversesync.sandbox import Catalogue, Faults, Sandbox
from reversesync.types import SYNC_ACTIONS, UNDO_ACTIONS, Write
from tests.conftest import (
    PersonAtWork,
    cli_process,
    ledger_of_version_02,
    load_rows,
    sandbox_for_cli,
    strand_intent,
    wait_for,
    write_sheet,
)

A, B, C, D, E = (f"6f1b2c00-0000-4000-8000-00000000000{n}" for n in range(1, 6))
SUBCLIP = "6f1b2c00-0000-4000-8000-0000000000ff"
LAG = 0.2
FAST = ("--settle", "2", "--read-timeout", "0.5")
STAMPS = ("date_modified",)


@pytest.fixture
def sandbox(monkeypatch):
    with sandbox_for_cli(monkeypatch, index_lag=LAG) as running:
        yield running


def without_stamps(dump):
    """A catalogue dump with the read-only stamps a write moves (date_modified) taken out, and the segments an
    undo deleted softly (they wait in Iconik's bin with status DELETED) set aside."""
    dump = json.loads(json.dumps(dump))
    for asset in dump["assets"].values():
        for stamp in STAMPS:
            asset.pop(stamp, None)
    for key, segments in dump["segments"].items():
        dump["segments"][key] = [s for s in segments if s.get("status") != "DELETED"]
        for segment in dump["segments"][key]:
            for stamp in STAMPS:
                segment.pop(stamp, None)
    return dump


def writes(sandbox):
    return [entry for entry in sandbox.requests()
            if entry[0] in ("POST", "PUT", "PATCH", "DELETE") and not entry[1].startswith("/API/search/")]


def seed_three(sandbox):
    """A needs a segment, B an update (with fields a PUT must not lose), C is in sync."""
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_asset(B)
    sandbox.catalogue.add_segment(B, "GENERIC", 9000, 9000, metadata={"Editor": ["kim"]}, segment_text="by hand",
                                  segment_color="#ff9900")
    sandbox.catalogue.add_segment(B, "COMMENT", 100, 100, segment_text="nice")
    sandbox.catalogue.add_asset(C)
    sandbox.catalogue.add_segment(C, "GENERIC", 1000, 5000)


# --- the decisions, as a table -------------------------------------------------------------------------

OURS = {"id": "s1", "asset_id": A, "segment_type": "GENERIC", "time_start_milliseconds": 1000,
        "time_end_milliseconds": 5000, "external_id": f"{MARKER}:abc", "subclip_id": None, "segment_text": None,
        "is_internal": False, "date_modified": "2026-01-01", "user_id": "u1"}
BEFORE = dict(OURS, external_id=None, time_start_milliseconds=9000, time_end_milliseconds=9000,
              metadata={"Editor": ["kim"]}, segment_text="by hand", is_internal=True, shot={"kind": "close"})
WRITTEN = dict(BEFORE, time_start_milliseconds=1000, time_end_milliseconds=5000, date_modified="2026-02-01")
CREATE_W = Write(1, "abc", 3, A, "create", "POST", segment_id="s1", marker=f"{MARKER}:abc", after=OURS,
                 start_ms=1000, end_ms=5000, outcome="applied")
UPDATE_W = Write(2, "def", 3, A, "update", "PATCH", segment_id="s1", before=BEFORE, after=WRITTEN, start_ms=1000,
                 end_ms=5000, outcome="applied")
LEGACY_W = Write(3, f"v02-{A}-3", 3, A, "update", "PUT", segment_id="s1", start_ms=1000, end_ms=5000,
                 before={"segment_type": "GENERIC", "time_start_milliseconds": 9000, "time_end_milliseconds": 9000,
                         "metadata": {"Editor": ["kim"]}, "segment_text": "by hand"}, outcome="applied")


@pytest.mark.parametrize("write, segment, action, reason", [
    (UPDATE_W, WRITTEN, "restore", None),
    (UPDATE_W, dict(WRITTEN, date_modified="later", user_id="someone"), "restore", None),  # stamps aside
    (UPDATE_W, None, None, "undone"),                                             # gone: nothing to restore
    (UPDATE_W, dict(WRITTEN, segment_text="edited"), None, "changed_since"),
    (UPDATE_W, dict(WRITTEN, is_internal=False), None, "changed_since"),           # a field 0.2 did not know
    (UPDATE_W, dict(WRITTEN, segment_color="#f00"), None, "changed_since"),        # one the after-image lacks
    (UPDATE_W, dict(WRITTEN, subclip_id="sc"), None, "changed_since"),             # now backs a subclip
    (UPDATE_W, dict(WRITTEN, status="AWAITED"), None, "changed_since"),
    (UPDATE_W, dict(WRITTEN, time_end_milliseconds=6000), None, "changed_since"),  # a person moved it
    (UPDATE_W, dict(BEFORE, date_modified="x"), None, "undone"),                   # a restore that landed
    (UPDATE_W, dict(BEFORE, segment_text="a person's"), None, "undone"),           # ... beside a person's edit
    (dataclasses.replace(UPDATE_W, before=None), WRITTEN, None, "cannot_restore"),
    (LEGACY_W, dict(BEFORE, time_start_milliseconds=1000, time_end_milliseconds=5000), "restore", None),
    (LEGACY_W, dict(BEFORE, time_start_milliseconds=1000, time_end_milliseconds=5000, segment_text="x"), None,
     "changed_since"),
])
def test_undo_of_an_update(write, segment, action, reason):
    step = undo.update_step(write, segment, 3)
    assert (step.action, step.reason) == (action, reason), step.text
    if action:
        assert step.times == (9000, 9000)  # the times only: nothing else is put back


@pytest.mark.parametrize("write, copy, action", [
    (CREATE_W, OURS, "delete"),
    (CREATE_W, dict(OURS, id="s2", date_created="later"), "delete"),           # a copy a lost answer left
    (CREATE_W, dict(OURS, segment_text="a person's note"), None),
    (CREATE_W, dict(OURS, metadata={"Grade": ["A"]}), None),
    (CREATE_W, dict(OURS, segment_color="#00ff00"), None),
    (CREATE_W, dict(OURS, time_end_milliseconds=6000), None),
    (CREATE_W, dict(OURS, subclip_id="sc"), None),
    (dataclasses.replace(CREATE_W, after=None), dict(OURS, id="s2"), "delete"),  # no 201 logged: what was sent
    (dataclasses.replace(CREATE_W, after=None), dict(OURS, is_internal=True), None),
    (dataclasses.replace(CREATE_W, after=None), dict(OURS, external_id="reversesync:other"), None),
])
def test_undo_of_a_create_deletes_only_an_untouched_copy(write, copy, action):
    step = undo.create_copy_step(write, copy, 3)
    assert step.action == action, step.text
    assert action or step.reason == "changed_since"


def test_a_later_run_that_wrote_again_and_was_not_undone_blocks_the_undo():
    later = Write(9, "ghi", 5, A, "update", "PATCH", segment_id="s1", outcome="applied")
    assert undo.blocking_step([CREATE_W, later], 3).reason == "written_later"
    assert "run 5 wrote it again after run 3" in undo.blocking_step([CREATE_W, later], 3).text
    assert undo.blocking_step([CREATE_W, dataclasses.replace(later, undone_by=6)], 3) is None
    assert undo.blocking_step([CREATE_W, dataclasses.replace(later, outcome="not_applied")], 3) is None
    assert undo.blocking_step([CREATE_W, dataclasses.replace(later, outcome="not_applied", lost=True)], 3)
    assert undo.blocking_step([CREATE_W, later], 5) is None  # undoing the later run itself
    unsettled = dataclasses.replace(later, outcome="pending", run_id=2)
    assert undo.blocking_step([CREATE_W], 3, open_write=unsettled).reason == "unfinished_write"


def test_repair_keeps_the_recorded_segment_else_the_oldest():
    old = {"id": "b", "date_created": "2026-01-01"}
    new = {"id": "a", "date_created": "2026-02-01"}
    assert undo.repair_choice([new, old], "a") == (new, [old])
    assert undo.repair_choice([new, old], None) == (old, [new])
    assert undo.repair_choice([new, old], "gone") == (old, [new])
    assert undo.repair_choice([], None) == (None, [])


@pytest.mark.parametrize("fresh, problem", [
    (dict(OURS, id="s2", date_created="x"), None),
    (None, "gone"),
    (dict(OURS, id="s2", status="DELETED"), "gone"),
    (dict(OURS, id="s2", external_id="theirs"), "no longer"),
    (dict(OURS, id="s2", time_start_milliseconds=1), "differs from segment s1"),
    (dict(OURS, id="s2", segment_text="a person's note"), "differs from segment s1"),
    (dict(OURS, id="s2", subclip_id="sc"), "backs SUBCLIP"),
])
def test_repair_deletes_a_duplicate_only_if_it_equals_the_copy_it_keeps(fresh, problem):
    found = undo.duplicate_problem(fresh, OURS)
    assert (found is None) if problem is None else problem in found


# --- undo through the CLI --------------------------------------------------------------------------------


def test_undo_after_a_clean_run_puts_every_segment_back_as_seeded(sandbox, invoke, tmp_path, ledger_path):
    seed_three(sandbox)
    seeded = without_stamps(sandbox.catalogue.dump())
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000), (C, 1000, 5000))
    assert invoke("run", "--live", *FAST).exit_code == 0
    assert len(sandbox.generic_segments(A)) == 1
    result = invoke("undo", "1", "--live", *FAST)
    assert result.exit_code == 0, result.output
    sandbox.settle()
    assert without_stamps(sandbox.catalogue.dump()) == seeded  # ids, types, every editable field
    ledger = Ledger(ledger_path)
    for key in (A, B):
        row = ledger.asset(key)
        assert (row["state"], row["reason"], row["intent"]) == ("skipped", "undone", None)
        assert any("undo of run 1" in (e["detail"] or "") for e in ledger.asset_events(key))
    assert ledger.asset(C)["reason"] == "in_sync"
    assert [r["mode"] for r in ledger.runs()] == ["live", "undo"]
    runs = invoke("runs").output
    assert " undo " in runs and "skipped 2" in runs


def test_a_plain_run_leaves_undone_rows_alone_and_recheck_brings_them_back(sandbox, invoke, tmp_path):
    seed_three(sandbox)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000), (C, 1000, 5000))
    invoke("run", "--live", *FAST)
    assert invoke("undo", "1", "--live", *FAST).exit_code == 0
    before = len(writes(sandbox))
    assert invoke("run", "--live", *FAST).exit_code == 0
    assert len(writes(sandbox)) == before
    assert invoke("run", "--live", "--recheck", "undone", *FAST).exit_code == 0
    assert [(s["time_start_milliseconds"], s["time_end_milliseconds"]) for s in sandbox.generic_segments(A)] == [
        (1000, 5000)]
    assert [s["time_end_milliseconds"] for s in sandbox.generic_segments(B)] == [5000]


def test_a_load_that_changes_an_undone_row_brings_it_back(sandbox, invoke, tmp_path, ledger_path):
    seed_three(sandbox)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    invoke("run", "--live", *FAST)
    invoke("undo", "1", "--live", *FAST)
    load_rows(invoke, tmp_path, (A, 1000, 6000))
    assert Ledger(ledger_path).asset(A)["state"] == "pending"
    assert invoke("run", "--live", *FAST).exit_code == 0
    assert [s["time_end_milliseconds"] for s in sandbox.generic_segments(A)] == [6000]


def test_a_dry_undo_writes_nothing_and_changes_no_row(sandbox, invoke, tmp_path, ledger_path):
    seed_three(sandbox)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    invoke("run", "--live", *FAST)
    rows = Ledger(ledger_path).query("select * from assets order by asset_key")
    before = len(writes(sandbox))
    result = invoke("undo", "1", *FAST)
    assert result.exit_code == 0, result.output
    assert len(writes(sandbox)) == before
    assert Ledger(ledger_path).query("select * from assets order by asset_key") == rows
    assert "would delete" in result.output and "would restore" in result.output
    assert f"To act: reversesync --ledger {ledger_path} undo 1 --live" in result.output


def test_undo_leaves_alone_a_segment_a_person_edited_and_one_that_backs_a_subclip(
        sandbox, invoke, tmp_path, ledger_path):
    seed_three(sandbox)
    sandbox.catalogue.add_asset(D)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000), (D, 1000, 5000))
    invoke("run", "--live", *FAST)
    [edited] = sandbox.generic_segments(B)
    sandbox.catalogue.edit_segment(next(s for s in sandbox.catalogue.segments[B] if s["id"] == edited["id"]),
                                   {"segment_text": "a person's note"})
    [linked] = sandbox.generic_segments(D)
    sandbox.catalogue.add_asset(SUBCLIP, type="SUBCLIP", start=1000, end=5000, original_asset_id=D)
    next(s for s in sandbox.catalogue.segments[D] if s["id"] == linked["id"])["subclip_id"] = SUBCLIP
    kept = {key: sandbox.generic_segments(key) for key in (B, D)}
    result = invoke("undo", "1", "--live", *FAST)
    assert result.exit_code == 0, result.output
    assert {key: sandbox.generic_segments(key) for key in (B, D)} == kept
    assert sandbox.generic_segments(A) == []
    ledger = Ledger(ledger_path)
    assert (ledger.asset(B)["state"], ledger.asset(B)["reason"]) == ("skipped", "changed_since")
    assert "segment_text" in ledger.asset(B)["reason_text"] and "a person's note" in ledger.asset(B)["reason_text"]
    assert ledger.asset(D)["reason"] == "changed_since" and SUBCLIP in ledger.asset(D)["reason_text"]
    assert "changed_since" in result.output


def test_undo_leaves_alone_a_row_a_later_run_wrote_again(sandbox, invoke, tmp_path, ledger_path):
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    invoke("run", "--live", *FAST)
    load_rows(invoke, tmp_path, (A, 1000, 6000))
    invoke("run", "--live", *FAST)  # run 2 updates what run 1 created
    result = invoke("undo", "1", "--live", *FAST)
    assert result.exit_code == 0, result.output
    assert "run 2 wrote it again after run 1; undo that run first" in result.output
    assert [s["time_end_milliseconds"] for s in sandbox.generic_segments(A)] == [6000]
    assert Ledger(ledger_path).asset(A)["state"] == "updated"


def test_a_row_without_a_before_image_cannot_be_restored(sandbox, invoke, tmp_path, ledger_path):
    seed_three(sandbox)
    load_rows(invoke, tmp_path, (B, 1000, 5000))
    invoke("run", "--live", *FAST)
    ledger = Ledger(ledger_path)
    ledger.db.execute("update writes set before = null")  # as a row 0.1 updated: it kept no before-image
    ledger.db.conn.commit()
    assert invoke("undo", "1", "--live", *FAST).exit_code == 0
    row = Ledger(ledger_path).asset(B)
    assert (row["state"], row["reason"]) == ("skipped", "cannot_restore")
    assert "cannot be restored" in row["reason_text"]
    assert [s["time_end_milliseconds"] for s in sandbox.generic_segments(B)] == [5000]


def test_undo_of_a_dry_or_unknown_run_is_refused(sandbox, invoke, tmp_path):
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    invoke("run", *FAST)
    assert "is a dry run" in invoke("undo", "1").output
    assert invoke("undo", "7").exit_code == 2


def test_undo_asset_limits_it_to_those_rows(sandbox, invoke, tmp_path):
    seed_three(sandbox)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    invoke("run", "--live", *FAST)
    assert invoke("undo", "1", "--live", "--asset", A, *FAST).exit_code == 0
    assert sandbox.generic_segments(A) == []
    assert [s["time_end_milliseconds"] for s in sandbox.generic_segments(B)] == [5000]


def test_a_live_undo_needs_the_delete_and_write_roles(sandbox, invoke, tmp_path):
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    invoke("run", "--live", *FAST)
    sandbox.roles = [r for r in sandbox.roles if r != "can_delete_segments"]
    result = invoke("undo", "1", "--live", *FAST)
    assert result.exit_code == 2 and "can_delete_segments" in result.output
    assert len(sandbox.generic_segments(A)) == 1


def test_a_delete_whose_answer_is_lost_is_settled_not_resent(sandbox, invoke, tmp_path, ledger_path):
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    invoke("run", "--live", *FAST)
    sandbox.force("DELETE", f"/assets/{A}/segments/", action="apply_late", delay_ms=1000)
    result = invoke("undo", "1", "--live", *FAST)
    assert result.exit_code == 0, result.output
    assert len(sandbox.requests("DELETE")) == 1
    assert sandbox.generic_segments(A) == []
    assert Ledger(ledger_path).asset(A)["reason"] == "undone"


# --- killed and resumed ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_undo_resumes_after_a_kill_with_no_half_restored_segment(tmp_path, ledger_path):
    keys = [f"6f1b2c00-0000-4000-8000-0000000001{n:02d}" for n in range(10)]
    catalogue = Catalogue()
    for n, key in enumerate(keys):
        catalogue.add_asset(key)
        if n % 2:
            catalogue.add_segment(key, "GENERIC", 9000, 9000, metadata={"Editor": ["kim"]}, segment_text="hand")
    seeded = without_stamps(catalogue.dump())
    with Sandbox(catalogue, index_lag=LAG, latency_ms=100) as sandbox:
        sheet = write_sheet(tmp_path / "s.csv", [(key, "t", 1000, 5000) for key in keys])
        assert cli_process(ledger_path, sandbox, "load", "--csv", sheet).wait(30) == 0
        assert cli_process(ledger_path, sandbox, "run", "--live", *FAST).wait(60) == 0
        arrived = []

        def slow_write(method, path):  # the write is applied, but only after the undo is dead
            if method in ("DELETE", "PATCH"):
                arrived.append(path)
                time.sleep(1.0)

        sandbox.hooks.append(slow_write)
        process = cli_process(ledger_path, sandbox, "undo", "1", "--live", "--workers", 2, *FAST)
        wait_for(lambda: len(arrived) >= 3)
        process.kill()
        process.communicate()
        sandbox.hooks.clear()
        held = Ledger(ledger_path).keys_holding_intent(UNDO_ACTIONS)
        assert held, "the kill did not land with a write in flight"
        refused = cli_process(ledger_path, sandbox, "run", "--live", *FAST)
        out, err = refused.communicate(timeout=60)
        assert refused.returncode == 2 and "undo run 2 did not finish; continue it first with:" in err
        resumed = cli_process(ledger_path, sandbox, "resume")
        out, err = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, err
        assert err.startswith("Resuming run 2 (undo")  # human lines: stderr (issue #17)
        sandbox.settle()
        assert without_stamps(sandbox.catalogue.dump()) == seeded
        ledger = Ledger(ledger_path)
        assert {r["reason"] for r in ledger.query("select reason from assets")} == {"undone"}
        assert not ledger.keys_holding_intent(UNDO_ACTIONS + SYNC_ACTIONS)


UNDO_CHAOS_SEEDS = [int(seed) for seed in os.environ.get("UNDO_CHAOS_SEEDS", "12,5").split(",")]


def without_stamps_of(fields):
    return {k: v for k, v in fields.items() if not k.startswith(("date_", "user_"))}


def with_edits(segments, edits):
    """A dump's segments of one asset with a person's edits on top."""
    return [dict(segment, **edits.get(segment["id"], {})) for segment in segments]


@pytest.mark.slow
@pytest.mark.parametrize("seed", UNDO_CHAOS_SEEDS)
def test_undo_under_chaos_deletes_only_its_own_and_leaves_each_segment_as_seeded_or_as_written(
        ledger_path, tmp_path, seed):
    """Kills, late applies, index lag, and a person editing the segments the undo puts back: in the end every
    segment is either as seeded (undone) or as the run wrote it (left alone, changed since, or failed), with the
    person's edits kept either way, none half-restored, and nothing reversesync did not create is gone."""
    rng = random.Random(seed)
    keys = [f"6f1b2c00-0000-4000-8000-0000000002{n:02d}" for n in range(40)]
    catalogue = Catalogue()
    for n, key in enumerate(keys):
        catalogue.add_asset(key)
        catalogue.add_segment(key, "COMMENT", 10, 10, segment_text="keep me")
        if n % 3 == 0:
            catalogue.add_segment(key, "GENERIC", 9000, 9000, metadata={"Editor": ["kim"]}, segment_color="#00ff00")
    seeded = without_stamps(catalogue.dump())
    with Sandbox(catalogue, index_lag=LAG, latency_ms=15, seed=rng.randrange(10**6)) as sandbox:
        sheet = write_sheet(tmp_path / "s.csv", [(key, "t", 1000, 5000) for key in keys])
        assert cli_process(ledger_path, sandbox, "load", "--csv", sheet).wait(30) == 0
        assert cli_process(ledger_path, sandbox, "run", "--live", *FAST).wait(60) == 0
        written = without_stamps(sandbox.catalogue.dump())
        sandbox.faults = Faults(apply_late=0.15, late_min_ms=600, late_max_ms=1200, drop_after=0.05,
                                server_error=0.03, conflict=0.03)
        person = PersonAtWork(sandbox, sorted(s["id"] for key in keys for s in written["segments"][key]
                                              if s["segment_type"] == "GENERIC" and not s.get("external_id")),
                              random.Random(seed + 1))
        process = cli_process(ledger_path, sandbox, "undo", "1", "--live", "--workers", 4, "--rate", 60, *FAST)
        # A kill before the undo is recorded would leave nothing to resume: the kills start once it is.
        wait_for(lambda: [r for r in Ledger(ledger_path).runs() if r["mode"] == "undo"], timeout=30)
        kills = 0
        while True:
            try:
                process.wait(timeout=rng.uniform(0.4, 1.2) if kills < 3 else 60)
                break
            except Exception:
                process.kill()
                process.communicate()
                kills += 1
                process = cli_process(ledger_path, sandbox, "resume")
        out, err = process.communicate()
        for _ in range(3):
            if process.returncode in (0, 1):
                break
            process = cli_process(ledger_path, sandbox, "resume")
            out, err = process.communicate(timeout=60)
        person.stop()
        assert process.returncode in (0, 1), err
        sandbox.faults = Faults()
        if process.returncode == 1:  # rows whose undo failed on injected faults: the same command again
            again = cli_process(ledger_path, sandbox, "undo", "1", "--live", *FAST)
            assert again.wait(60) == 0
        sandbox.settle()
        after = without_stamps(sandbox.catalogue.dump())
    assert kills >= 1
    ledger = Ledger(ledger_path)
    lost = ledger.query("select count(*) as n from events where run_id = 2 and detail like 'outcome unknown%'")
    assert lost[0]["n"] > 0, "no write's answer was lost: the settle path went untested"
    assert not ledger.keys_holding_intent(UNDO_ACTIONS + SYNC_ACTIONS)
    edits = {segment_id: without_stamps_of(fields) for segment_id, fields in person.edits.items()}
    assert edits, "the person edited nothing"
    left = []
    for key in keys:
        row = ledger.asset(key)
        now = after["segments"][key]
        assert now[0] == seeded["segments"][key][0]  # the COMMENT is never touched
        if row["reason"] == "undone":
            assert now == with_edits(seeded["segments"][key], edits), key
        else:
            assert now == with_edits(written["segments"][key], edits), (key, row["state"], row["reason"])
            left.append((key, row["reason"]))
        ids = {s["id"] for s in now}
        assert {s["id"] for s in seeded["segments"][key]} <= ids  # nothing reversesync did not create is gone
    # Only a segment the person edited before the undo read it may be left, as changed since its write.
    edited_assets = {s["asset_id"] for key in keys for s in written["segments"][key] if s["id"] in edits}
    assert all(reason == "changed_since" and key in edited_assets for key, reason in left), left


# --- verify --repair ---------------------------------------------------------------------------------------


def plant_duplicate(sandbox, key, recorded):
    """A second segment with the recorded one's marker, made earlier than it (so 'oldest' would pick it)."""
    twin = sandbox.catalogue.add_segment(key, "GENERIC", 1000, 5000, external_id=recorded["external_id"],
                                         date_created="2000-01-01T00:00:00.000+00:00")
    return twin


def test_verify_names_the_repair_and_repair_keeps_the_recorded_segment(sandbox, invoke, tmp_path, ledger_path):
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_asset(B)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    invoke("run", "--live", *FAST)
    [recorded] = sandbox.generic_segments(A)
    twin = plant_duplicate(sandbox, A, recorded)
    unmarked = sandbox.catalogue.add_segment(B, "GENERIC", 1000, 5000, external_id="someone-else")
    time.sleep(LAG)
    found = invoke("verify", "--settle", "0")
    assert found.exit_code == 1
    assert f"Remove the duplicates with: reversesync --ledger {ledger_path} verify --repair --live" in found.output
    plan = invoke("verify", "--repair", *FAST)
    assert plan.exit_code == 0, plan.output
    assert "would delete" in plan.output and twin["id"] in plan.output
    assert len(sandbox.generic_segments(A)) == 2
    result = invoke("verify", "--repair", "--live", *FAST)
    assert result.exit_code == 0, result.output
    assert [s["id"] for s in sandbox.generic_segments(A)] == [recorded["id"]]
    assert unmarked["id"] in [s["id"] for s in sandbox.generic_segments(B)]
    assert len(sandbox.requests("DELETE")) == 1
    assert "repair" in [r["mode"] for r in Ledger(ledger_path).runs()]
    time.sleep(LAG)
    assert invoke("verify", "--settle", "0").exit_code == 1  # B's unmarked extra is a person's to remove


def test_repair_turns_a_failed_duplicated_row_into_created(sandbox, invoke, tmp_path, ledger_path):
    """A write whose answer was lost landed twice: the settled re-check fails the row as duplicated (issue #10);
    the repair keeps the oldest (the ledger records none) and the row ends created."""
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    strand_intent(ledger_path, A)
    first = sandbox.catalogue.add_segment(A, "GENERIC", 1000, 5000, external_id=f"{MARKER}:0ddba11",
                                          date_created="2000-01-01T00:00:00.000+00:00")
    sandbox.catalogue.add_segment(A, "GENERIC", 1000, 5000, external_id=f"{MARKER}:0ddba11")
    time.sleep(LAG)
    assert invoke("run", "--live", "--settle", "1", "--read-timeout", "0.5").exit_code == 1
    assert (Ledger(ledger_path).asset(A)["state"], Ledger(ledger_path).asset(A)["reason"]) == ("failed", "duplicated")
    result = invoke("verify", "--repair", "--live", *FAST)
    assert result.exit_code == 0, result.output
    assert [s["id"] for s in sandbox.generic_segments(A)] == [first["id"]]
    row = Ledger(ledger_path).asset(A)
    # the run that recorded the write owns it, not the one that found it landed twice (issue #15)
    assert (row["state"], row["segment_id"], row["done_action"], row["done_run_id"]) == ("created", first["id"],
                                                                                         "create", 1)
    time.sleep(LAG)
    assert invoke("verify", "--settle", "0").exit_code == 0


def test_repair_never_touches_an_unmarked_segment(sandbox, invoke, tmp_path):
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    invoke("run", "--live", *FAST)
    sandbox.catalogue.add_segment(A, "GENERIC", 1000, 5000, external_id=None, date_created="2000-01-01")
    sandbox.catalogue.add_segment(A, "GENERIC", 1000, 5000, external_id="other-tool")
    time.sleep(LAG)
    assert invoke("verify", "--repair", "--live", *FAST).exit_code == 0
    assert len(sandbox.generic_segments(A)) == 3
    assert sandbox.requests("DELETE") == []


def test_repair_leaves_a_duplicate_changed_since_it_was_listed(sandbox, invoke, tmp_path):
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    invoke("run", "--live", *FAST)
    [recorded] = sandbox.generic_segments(A)
    twin = plant_duplicate(sandbox, A, recorded)
    time.sleep(LAG)

    def edit_twin(method, path):  # a person edits it between the list and the GET by id
        if method == "GET" and path.endswith(f"/segments/{twin['id']}/"):
            twin["time_end_milliseconds"] = 7000

    sandbox.hooks.append(edit_twin)
    result = invoke("verify", "--repair", "--live", *FAST)
    assert result.exit_code == 0, result.output
    assert f"differs from segment {recorded['id']}, which is kept (time_end_milliseconds 7000)" in result.output
    assert sandbox.requests("DELETE") == []


# --- what an adversarial review of the write log found (issue #15) -----------------------------------------


def _killed_with_a_post_in_flight(tmp_path, ledger_path, sandbox, key):
    """Run 1 SIGKILLed while its POST for key is in flight; the POST lands once the client is dead."""
    arrived = []

    def slow_post(method, path):
        if method == "POST" and "/segments/" in path:
            arrived.append(path)
            time.sleep(1.0)

    sandbox.hooks.append(slow_post)
    sheet = write_sheet(tmp_path / "s.csv", [(key, "t", 1000, 5000)])
    assert cli_process(ledger_path, sandbox, "load", "--csv", sheet).wait(30) == 0
    run = cli_process(ledger_path, sandbox, "run", "--live", *FAST)
    wait_for(lambda: arrived)
    run.kill()
    run.communicate()
    sandbox.hooks.clear()
    wait_for(lambda: None not in [status for _, _, status in sandbox.requests()])
    sandbox.settle()
    [landed] = sandbox.generic_segments(key)
    return landed


@pytest.mark.slow
@pytest.mark.parametrize("live", [True, False], ids=["live", "dry"])
def test_an_undo_that_cannot_read_keeps_a_killed_runs_unsettled_write_for_the_next_undo(tmp_path, ledger_path, live):
    with Sandbox(Catalogue(), index_lag=LAG) as sandbox:
        sandbox.catalogue.add_asset(A)
        _killed_with_a_post_in_flight(tmp_path, ledger_path, sandbox, A)
        sandbox.force("GET", f"/assets/{A}/segments/$", 503, {"errors": ["unavailable"]}, times=4)
        failed = cli_process(ledger_path, sandbox, "undo", "1", *(("--live",) if live else ()), *FAST)
        failed.communicate(timeout=60)
        [write] = Ledger(ledger_path).writes_of_run(1)
        assert write.outcome == "pending" and Ledger(ledger_path).asset(A)["intent"] == write.intent_id
        if not live:  # a dry command changes no row
            assert Ledger(ledger_path).asset(A)["state"] == "checked"
        again = cli_process(ledger_path, sandbox, "undo", "1", "--live", *FAST)
        out, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        assert sandbox.generic_segments(A) == []


def test_a_dry_undo_that_cannot_read_changes_no_row(sandbox, invoke, tmp_path, ledger_path):
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    assert invoke("run", "--live", *FAST).exit_code == 0
    before = Ledger(ledger_path).asset(A)
    [ours] = sandbox.generic_segments(A)
    sandbox.force("GET", f"/segments/{ours['id']}/", 503, {"errors": ["down"]}, times=10)
    result = invoke("undo", "1", *FAST)
    assert "failed" in result.output
    assert Ledger(ledger_path).asset(A) == before


@pytest.mark.slow
@pytest.mark.parametrize("settled_by", ["undo", "resume"])
def test_undo_never_deletes_a_segment_a_person_annotated_after_its_answer_was_lost(tmp_path, ledger_path, settled_by):
    with Sandbox(Catalogue(), index_lag=LAG) as sandbox:
        sandbox.catalogue.add_asset(A)
        ours = _killed_with_a_post_in_flight(tmp_path, ledger_path, sandbox, A)
        sandbox.person_edits(ours["id"], segment_text="a person's note", metadata={"Grade": ["A"]})
        sandbox.settle()
        if settled_by == "resume":
            assert cli_process(ledger_path, sandbox, "resume").wait(60) == 0
        assert cli_process(ledger_path, sandbox, "undo", "1", "--live", *FAST).wait(60) == 0
        assert sandbox.stored_segment(ours["id"])["segment_text"] == "a person's note"  # still there, not deleted
        assert Ledger(ledger_path).asset(A)["reason"] == "changed_since"


def test_a_lost_update_that_never_landed_does_not_stop_runs_undone_newest_first(
        sandbox, invoke, tmp_path, ledger_path):
    sandbox.catalogue.add_asset(A)
    segment = sandbox.catalogue.add_segment(A, "GENERIC", 9000, 9000, segment_text="by hand")
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    assert invoke("run", "--live", *FAST).exit_code == 0
    load_rows(invoke, tmp_path, (A, 2000, 6000), name="changed.csv")
    sandbox.force("PATCH", f"/assets/{A}/segments/", 503, {"errors": ["gateway"]})  # not applied, answer 5xx
    assert invoke("run", "--live", *FAST).exit_code == 0
    for run_id in (2, 1):
        assert invoke("undo", str(run_id), "--live", *FAST).exit_code == 0
    restored = sandbox.stored_segment(segment["id"])
    assert (restored["time_start_milliseconds"], restored["time_end_milliseconds"]) == (9000, 9000)


def test_verify_still_reads_the_segment_of_an_in_sync_row(sandbox, invoke, tmp_path):
    sandbox.catalogue.add_asset(A)
    segment = sandbox.catalogue.add_segment(A, "GENERIC", 1000, 5000)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    assert invoke("run", "--live", *FAST).exit_code == 0
    sandbox.person_edits(segment["id"], time_start_milliseconds=7000, time_end_milliseconds=9000)
    result = invoke("verify", "--settle", "0")
    assert result.exit_code == 1
    assert f"MISMATCH {A} (row 2, skipped, different)" in result.output


def test_a_patch_that_replaced_holds_every_write_until_a_person_clears_it(monkeypatch, invoke, tmp_path, ledger_path):
    with sandbox_for_cli(monkeypatch, index_lag=0, patch="replace") as sandbox:
        segments = {}
        for key in (A, B):
            sandbox.catalogue.add_asset(key)
            segments[key] = sandbox.catalogue.add_segment(key, "GENERIC", 9000, 9000, segment_text="by hand")
        load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
        assert invoke("run", "--live", "--workers", "1", "--no-search", *FAST).exit_code == 2
        assert Ledger(ledger_path).runs()[-1]["status"] == "failed"  # closed: nothing to resume
        assert invoke("resume").output.startswith("Nothing to resume")
        for command in (("run", "--live"), ("undo", "1", "--live"), ("verify", "--repair", "--live")):
            held = invoke(*command, *FAST)
            assert held.exit_code == 2 and "run the command again with --patch-checked" in held.output, command
        assert len(sandbox.requests("PATCH")) == 1  # one segment was replaced, and no other since
        sandbox.patch = "merge"  # Iconik is fixed; a person checked it
        assert invoke("run", "--live", "--patch-checked", *FAST).exit_code == 0
        assert sandbox.stored_segment(segments[B]["id"])["segment_text"] == "by hand"


def test_a_repair_delete_answered_404_is_not_logged_as_applied(sandbox, invoke, tmp_path, ledger_path):
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    assert invoke("run", "--live", *FAST).exit_code == 0
    [ours] = sandbox.generic_segments(A)
    copy = sandbox.catalogue.add_segment(A, "GENERIC", 1000, 5000, **{k: v for k, v in ours.items() if k not in (
        "id", "asset_id", "segment_type", "time_start_milliseconds", "time_end_milliseconds", "date_created",
        "date_modified")})
    sandbox.settle()
    sandbox.force("DELETE", f"/segments/{copy['id']}/", 404, {"errors": ["Segment not found"]})
    assert invoke("verify", "--repair", "--live", *FAST).exit_code == 0
    [deleted] = [w for w in Ledger(ledger_path).writes_of_asset(A) if w.action == "repair_delete"]
    assert deleted.outcome == "not_applied"


def test_the_writes_of_every_02_run_are_logged_so_runs_undo_newest_first(sandbox, invoke, tmp_path, ledger_path):
    """0.2 kept one before-image per row: run 1's create of A and update of B were only in the event log once
    run 2 updated them again. Undo 2 then undo 1 deletes A's segment, and says B cannot be restored."""
    cat = sandbox.catalogue
    cat.add_asset(A)
    created = cat.add_segment(A, "GENERIC", 2000, 6000, external_id=f"{MARKER}:0a")  # created by 1, moved by 2
    cat.add_asset(B)
    updated = cat.add_segment(B, "GENERIC", 2000, 6000, segment_text="by hand")      # updated by 1 and by 2
    old = ledger_of_version_02(ledger_path, (A, B))
    old.executemany("insert into runs (id, mode, options, started_at, status) values (?, 'live', '{}', 'x', "
                    "'finished')", [(1,), (2,)])
    before = {"segment_type": "GENERIC", "time_start_milliseconds": 1000, "time_end_milliseconds": 5000}
    for key, segment in ((A, created), (B, updated)):
        old.execute("update assets set state = 'updated', segment_id = ?, done_action = 'update', done_segment_id = "
                    "?, done_run_id = 2, done_before = ?, done_start_ms = 2000, done_end_ms = 6000, time_start_ms = "
                    "2000, time_end_ms = 6000 where asset_key = ?",
                    [segment["id"], segment["id"], json.dumps(dict(before, segment_text=segment["segment_text"])),
                     key])
    old.executemany("insert into events (asset_key, run_id, from_state, to_state, at, detail) values "
                    "(?, ?, 'checked', ?, 'x', ?)",
                    [(A, 1, "created", f"created segment {created['id']}"),
                     (B, 1, "updated", f"updated segment {updated['id']}"),
                     (A, 2, "updated", f"updated segment {created['id']}"),
                     (B, 2, "updated", f"updated segment {updated['id']}")])
    old.commit()
    old.close()
    load_rows(invoke, tmp_path, (A, 2000, 6000), (B, 2000, 6000))  # the upgrade
    for run_id in (2, 1):
        assert invoke("undo", str(run_id), "--live", *FAST).exit_code == 0
    assert sandbox.generic_segments(A) == []
    assert Ledger(ledger_path).asset(B)["reason"] == "cannot_restore"
    [b] = sandbox.generic_segments(B)
    assert (b["time_start_milliseconds"], b["time_end_milliseconds"]) == (1000, 5000)  # run 2's update undone
