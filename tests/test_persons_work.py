"""A person's work is never ours to change (issue #15): updates and undos write only the times, every re-send is
decided from a fresh read, and undo works from the write log. Through the real CLI against the sandbox with
its real-Iconik behaviour on (ICONIK-FACTS 7 and 8): a PUT replaces the whole segment, a PATCH merges, deletes
are soft, the index lags, and people edit segments between runs and during 429 pauses."""

import json

import pytest

from reversesync.ledger import Ledger
from reversesync.rules import MARKER
from reversesync.sandbox import Catalogue, Faults, Sandbox
from reversesync.types import Intent
from tests.conftest import cli_process, ledger_of_version_02, load_rows, sandbox_for_cli, wait_for, write_sheet

IDS = [f"4a5e6f00-0000-4000-8000-0000000000{n:02d}" for n in range(40)]
A, B, C, D, E, F, G, H = IDS[:8]
SUBCLIP = "4a5e6f00-0000-4000-8000-0000000000ff"
LAG = 0.2
READ_TIMEOUT = 0.5
FAST = ("--settle", "2", "--read-timeout", READ_TIMEOUT)
HUMAN = {"metadata": {"Editor": ["kim"]}, "segment_text": "logged by hand", "segment_color": "#ff9900",
         "is_internal": True, "shot": {"shot_type": "CLOSE_UP", "confidence": 0.9}, "ai_labels": ["all-in"]}


def catalogue():
    """A catalogue whose live schema has a field reversesync has never heard of (ai_labels)."""
    return Catalogue(extra_fields={"ai_labels": None})


@pytest.fixture
def sandbox(monkeypatch):
    with sandbox_for_cli(monkeypatch, catalogue=catalogue(), index_lag=LAG) as running:
        yield running


def live_segments(dump):
    """A catalogue dump as people see it: soft-deleted segments (in Iconik's bin) and date_modified aside."""
    dump = json.loads(json.dumps(dump))
    for asset in dump["assets"].values():
        asset.pop("date_modified", None)
    dump["segments"] = {key: [{k: v for k, v in s.items() if k != "date_modified"} for s in found
                              if s.get("status") != "DELETED"] for key, found in dump["segments"].items()}
    return dump


def times(segment):
    return segment["time_start_milliseconds"], segment["time_end_milliseconds"]


def markers_on_two_live_segments(sandbox):
    seen = {}
    for found in sandbox.catalogue.dump()["segments"].values():
        for segment in found:
            if segment.get("status") != "DELETED" and str(segment.get("external_id")).startswith(f"{MARKER}:"):
                seen[segment["external_id"]] = seen.get(segment["external_id"], 0) + 1
    return [marker for marker, n in seen.items() if n > 1]


def test_a_live_run_and_its_undo_change_nothing_but_the_times_even_fields_reversesync_never_heard_of(
        sandbox, invoke, tmp_path):
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_segment(A, "GENERIC", 9000, 9000, **HUMAN)
    sandbox.catalogue.add_segment(A, "COMMENT", 100, 100, segment_text="nice hand")
    sandbox.catalogue.add_asset(B)
    seeded = live_segments(sandbox.catalogue.dump())
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    assert invoke("run", "--live", *FAST).exit_code == 0
    [updated] = sandbox.generic_segments(A)
    assert times(updated) == (1000, 5000)
    assert {k: v for k, v in updated.items() if k in HUMAN} == HUMAN  # is_internal, shot, ai_labels kept
    assert sandbox.requests("PUT") == []
    result = invoke("undo", "1", "--live", *FAST)
    assert result.exit_code == 0, result.output
    sandbox.settle()
    assert live_segments(sandbox.catalogue.dump()) == seeded
    assert [s["status"] for s in sandbox.catalogue.segments[B]] == ["DELETED"]  # soft: a person can restore it


def test_two_runs_undone_newest_first_put_back_every_untouched_asset_and_keep_every_persons_edit(
        sandbox, invoke, tmp_path, ledger_path):
    """Run 1, a sheet change, people editing between the runs and during 429 pauses, run 2, then undo 2 and
    undo 1: the assets nobody touched are back exactly as seeded; every segment a person edited is still there,
    with the edit; no marker is on two live segments."""
    cat = sandbox.catalogue
    for key in (A, B, C, D, E, F, G):
        cat.add_asset(key)
    cat.add_segment(B, "GENERIC", 9000, 9000, **HUMAN)             # updated by run 1, again by run 2
    d = cat.add_segment(D, "GENERIC", 8000, 8000, **HUMAN)         # updated by run 1; a person writes a note
    e = cat.add_segment(E, "GENERIC", 7000, 7000, **HUMAN)         # run 1's PATCH is answered 429; a note meanwhile
    f = cat.add_segment(F, "GENERIC", 6000, 6000)                  # run 2's PATCH 429; it backs a subclip meanwhile
    seeded = live_segments(cat.dump())
    # A: created by run 1, updated by run 2. C: created by run 1, then a person annotates it. G: created by run
    # 1, deleted by a person, created again by run 2.
    sandbox.force("PATCH", f"/assets/{E}/segments/", 429, {"errors": ["Too many requests"]},
                  headers={"Retry-After": "1"}, on_answer=lambda: sandbox.person_edits(e["id"], segment_text="mine"))
    load_rows(invoke, tmp_path, *[(key, 1000, 5000) for key in (A, B, C, D, E, F, G)])
    first = invoke("run", "--live", *FAST)
    assert first.exit_code == 0, first.output
    assert sandbox.stored_segment(e["id"])["segment_text"] == "mine"  # read again after the pause: kept
    [c] = sandbox.generic_segments(C)
    sandbox.person_edits(c["id"], segment_text="a person's note on our segment")
    sandbox.person_edits(d["id"], segment_text="a person's note")
    [g] = sandbox.generic_segments(G)
    sandbox.person_deletes(g["id"])

    def link_subclip():
        cat.add_asset(SUBCLIP, type="SUBCLIP", start=1000, end=5000, original_asset_id=F)
        sandbox.person_edits(f["id"], subclip_id=SUBCLIP)

    sandbox.force("PATCH", f"/assets/{F}/segments/", 429, {"errors": ["Too many requests"]},
                  headers={"Retry-After": "1"}, on_answer=link_subclip)
    load_rows(invoke, tmp_path, *[(key, 2000, 6000) for key in (A, B, C, D, E, F, G)], name="changed.csv")
    second = invoke("run", "--live", *FAST)
    assert second.exit_code == 0, second.output
    ledger = Ledger(ledger_path)
    assert (ledger.asset(F)["state"], ledger.asset(F)["reason"]) == ("skipped", "subclip_linked")
    assert cat.assets[SUBCLIP]["time_start_milliseconds"] == 1000  # the subclip was not moved
    assert [s for s in sandbox.requests("PATCH") if F in s[1]][-1][2] == 429  # nothing went out after the link
    sandbox.settle()
    for run_id in (2, 1):
        undone = invoke("undo", str(run_id), "--live", *FAST)
        assert undone.exit_code == 0, undone.output
    sandbox.settle()
    now = live_segments(cat.dump())
    for key in (A, B, G):  # nobody touched what reversesync wrote there (G's was deleted: it stays deleted)
        assert now["segments"][key] == seeded["segments"][key], key
    assert [s["segment_text"] for s in sandbox.generic_segments(C)] == ["a person's note on our segment"]
    assert sandbox.stored_segment(d["id"])["segment_text"] == "a person's note"
    assert sandbox.stored_segment(e["id"])["segment_text"] == "mine"
    assert sandbox.stored_segment(f["id"])["subclip_id"] == SUBCLIP
    assert markers_on_two_live_segments(sandbox) == []
    reasons = {key: Ledger(ledger_path).asset(key)["reason"] for key in (A, B, C, D, G)}
    assert reasons == {A: "undone", B: "undone", C: "changed_since", D: "changed_since", G: "undone"}


@pytest.mark.slow
def test_late_copies_a_kill_mid_run_and_a_killed_undo_still_end_exactly_as_seeded(tmp_path, ledger_path):
    """Writes applied after the settle time but before the undo reads, a SIGKILL mid-run, then undo of that run
    without a resume; then an undo killed half-way, a dry run, and resume: Iconik ends exactly as seeded."""
    keys = IDS[8:24]
    cat = catalogue()
    for n, key in enumerate(keys):
        cat.add_asset(key)
        if n % 2:
            cat.add_segment(key, "GENERIC", 9000 + n, 9000 + n, **HUMAN)
    seeded = live_segments(cat.dump())
    lost = keys[0:6:2]  # creates whose answers are lost, each applied 2.6 s later: after the 2 s settle time
    with Sandbox(cat, index_lag=LAG, latency_ms=20) as sandbox:
        for key in lost:
            sandbox.force("POST", f"/assets/{key}/segments/$", action="apply_late", delay_ms=2600)
        sheet = write_sheet(tmp_path / "s.csv", [(key, "t", 1000, 5000) for key in keys])
        assert cli_process(ledger_path, sandbox, "load", "--csv", sheet).wait(30) == 0
        arrived = []

        def slow_after_some(method, path):  # the later writes are slow, so the kill finds some in flight
            if method in ("POST", "PATCH") and "/segments/" in path:
                arrived.append(path)
                if len(arrived) > 8:
                    __import__("time").sleep(1.0)

        sandbox.hooks.append(slow_after_some)
        run = cli_process(ledger_path, sandbox, "run", "--live", "--workers", 2, *FAST)
        # Killed once two of the lost writes were re-sent after their settle time: their first send lands later.
        wait_for(lambda: sum(1 for path in arrived if any(key in path for key in lost)) >= 5, timeout=60)
        run.kill()
        run.communicate()
        sandbox.hooks.clear()
        wait_for(lambda: None not in [status for _, _, status in sandbox.requests()])  # in flight when killed
        sandbox.settle()  # every late copy has landed, and the index shows them
        assert markers_on_two_live_segments(sandbox), "no late copy landed: the test proves nothing"
        undo_writes = []

        def slow_undo(method, path):
            if method in ("DELETE", "PATCH"):
                undo_writes.append(path)
                __import__("time").sleep(0.5)

        sandbox.hooks.append(slow_undo)
        undo = cli_process(ledger_path, sandbox, "undo", "1", "--live", "--workers", 2, *FAST)
        wait_for(lambda: len(undo_writes) >= 4, timeout=60)
        undo.kill()
        undo.communicate()
        sandbox.hooks.clear()
        dry = cli_process(ledger_path, sandbox, "run", *FAST)
        assert dry.wait(60) in (0, 1)
        runs = {run["id"]: run["status"] for run in Ledger(ledger_path).runs()}
        assert runs[1] == "undone" and runs[2] == "running"  # the dry run changed no other run's status
        refused = cli_process(ledger_path, sandbox, "run", "--live", *FAST)
        out, err = refused.communicate(timeout=60)
        assert refused.returncode == 2 and "undo run 2 did not finish; continue it first with:" in err
        resumed = cli_process(ledger_path, sandbox, "resume")
        out, err = resumed.communicate(timeout=90)
        assert resumed.returncode == 0, err
        assert err.startswith("Resuming run 2 (undo")  # human lines: stderr (issue #17)
        sandbox.settle()
        assert live_segments(sandbox.catalogue.dump()) == seeded
        again = cli_process(ledger_path, sandbox, "resume")
        _, err = again.communicate(timeout=60)
        assert "Nothing to resume" in err  # run 1 was closed by its undo: nothing redoes what it removed


def test_a_patch_that_replaces_like_a_put_stops_every_further_write(monkeypatch, invoke, tmp_path, ledger_path):
    with sandbox_for_cli(monkeypatch, catalogue=catalogue(), index_lag=0, patch="replace") as sandbox:
        for key in (A, B, C):
            sandbox.catalogue.add_asset(key)
            sandbox.catalogue.add_segment(key, "GENERIC", 9000, 9000, **HUMAN)
        load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000), (C, 1000, 5000))
        result = invoke("run", "--live", "--workers", "1", "--no-search", *FAST)
        assert result.exit_code == 2
        [patched] = sandbox.requests("PATCH")
        segment_id = patched[1].rstrip("/").rsplit("/", 1)[1]
        assert f"segment {segment_id} of asset {A}" in result.output
        assert "Its PATCH seems to replace the whole segment, so reversesync stopped writing" in result.output
        ledger = Ledger(ledger_path)
        assert ledger.asset(A)["state"] == "updated"  # recorded: it did land
        assert [ledger.asset(key)["state"] for key in (B, C)] == ["pending", "pending"]


def test_a_segment_a_person_deleted_just_before_the_write_is_created_again_not_a_conflict(
        sandbox, invoke, tmp_path, ledger_path):
    """The lagging list keeps offering the deleted id; the GET by id before the PATCH finds it gone, and it is
    dropped from that asset's later list answers in the run."""
    sandbox.catalogue.add_asset(A)
    segment = sandbox.catalogue.add_segment(A, "GENERIC", 9000, 9000)
    sandbox.index_lag = 30.0  # the list shows the deleted segment for the whole run
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    sandbox.person_deletes(segment["id"], soft=False)
    result = invoke("run", "--live", "--no-search", *FAST)
    assert result.exit_code == 0, result.output
    assert Ledger(ledger_path).asset(A)["state"] == "created"
    [created] = sandbox.generic_segments(A)
    assert times(created) == (1000, 5000)


def test_an_undo_delete_answered_429_reads_again_and_leaves_a_segment_annotated_in_the_pause(
        sandbox, invoke, tmp_path, ledger_path):
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    assert invoke("run", "--live", *FAST).exit_code == 0
    [ours] = sandbox.generic_segments(A)
    sandbox.force("DELETE", f"/assets/{A}/segments/", 429, {"errors": ["Too many requests"]},
                  headers={"Retry-After": "1"},
                  on_answer=lambda: sandbox.person_edits(ours["id"], metadata={"Grade": ["A"]}))
    result = invoke("undo", "1", "--live", *FAST)
    assert result.exit_code == 0, result.output
    assert len(sandbox.requests("DELETE")) == 1
    assert sandbox.stored_segment(ours["id"])["metadata"] == {"Grade": ["A"]}
    row = Ledger(ledger_path).asset(A)
    assert row["reason"] == "changed_since" and "metadata" in row["reason_text"]


def test_undo_puts_back_two_writes_of_one_run_to_one_row(sandbox, invoke, tmp_path, ledger_path):
    """Killed, the sheet corrected, resumed: the run created a segment and then updated it. One before-image per
    row (0.2) left the create behind; the write log undoes both, newest first."""
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_asset(B)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    sandbox.force("POST", f"/assets/{A}/segments/$", action="drop_after")  # A's create lands; its answer is lost
    sandbox.force("POST", f"/assets/{B}/segments/$", 401, {"errors": ["token expired"]})  # and run 1 stops
    assert invoke("run", "--live", "--workers", "1", "--no-search", *FAST).exit_code == 2  # the 401
    load_rows(invoke, tmp_path, (A, 2000, 6000), (B, 1000, 5000), name="corrected.csv")
    assert invoke("resume").exit_code == 0
    assert [(w.action, w.outcome) for w in Ledger(ledger_path).writes_of_run(1) if w.asset_key == A] == [
        ("update", "applied"), ("create", "applied")]
    result = invoke("undo", "1", "--live", *FAST)
    assert result.exit_code == 0, result.output
    assert sandbox.generic_segments(A) == [] and sandbox.generic_segments(B) == []


def test_verify_reports_a_deleted_recorded_segment_as_missing_and_copies_left_on_undone_rows(
        sandbox, invoke, tmp_path, ledger_path):
    sandbox.catalogue.add_asset(A)
    sandbox.catalogue.add_asset(B)
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    assert invoke("run", "--live", *FAST).exit_code == 0
    [a] = sandbox.generic_segments(A)
    sandbox.person_deletes(a["id"], soft=True)
    assert invoke("undo", "1", "--live", "--asset", B, *FAST).exit_code == 0
    [b_write] = Ledger(ledger_path).writes_of_run(1, assets=[B])
    sandbox.catalogue.add_segment(B, "GENERIC", 1000, 5000, external_id=b_write.marker)  # a late copy lands
    sandbox.settle()
    result = invoke("verify", "--settle", "0")
    assert result.exit_code == 1
    assert f"MISMATCH {A} (row 2, created, missing): expected exactly one GENERIC segment 1000-5000 ms; found " \
           f"segment {a['id']} is deleted (status DELETED)" in result.output
    assert f"MISMATCH {B} (row 3, skipped/undone, leftover)" in result.output
    assert "undo run 1 again to delete it" in result.output


def test_an_unfinished_undo_blocks_every_writing_command_until_resumed(sandbox, invoke, tmp_path, ledger_path):
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    assert invoke("run", "--live", *FAST).exit_code == 0
    ledger = Ledger(ledger_path)
    undo_id = ledger.start_run("undo", {"undo": 1, "live": True, "settle": 2, "read_timeout": 0.5})  # killed at once
    for command in (("run", "--live"), ("undo", "1", "--live"), ("verify", "--repair", "--live")):
        refused = invoke(*command, *FAST)
        assert refused.exit_code == 2, command
        assert refused.output.strip().endswith(f"undo run {undo_id} did not finish; continue it first with: "
                                               f"reversesync --ledger {ledger_path} resume")
    assert invoke("run", *FAST).exit_code == 0  # a dry run may go on, and changes no other run's status
    assert invoke("undo", "1", *FAST).exit_code == 0
    assert Ledger(ledger_path).run(undo_id)["status"] == "running"
    resumed = invoke("resume")
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.startswith(f"Resuming run {undo_id} (undo")
    assert sandbox.generic_segments(A) == []


def test_a_streak_of_server_errors_stops_the_run_with_its_rows_pending(monkeypatch, invoke, tmp_path, ledger_path):
    with sandbox_for_cli(monkeypatch, index_lag=0, faults=Faults(server_error=1.0)) as sandbox:
        for key in IDS[:14]:
            sandbox.catalogue.add_asset(key)
        load_rows(invoke, tmp_path, *[(key, 1000, 5000) for key in IDS[:14]])
        from reversesync import iconik
        monkeypatch.setattr(iconik.IconikClient, "_wait", lambda self, state: 0.0)  # no back-off between retries
        result = invoke("run", "--live", "--no-search", *FAST)
    assert result.exit_code == 3
    assert "failures in a row" in result.output and "Service temporarily unavailable" in result.output
    states = [row["state"] for row in Ledger(ledger_path).query("select state from assets")]
    assert "failed" not in states and states.count("pending") >= 4


def test_an_asset_status_or_a_segment_status_reversesync_does_not_know_is_left_alone(
        sandbox, invoke, tmp_path, ledger_path):
    sandbox.catalogue.add_asset(A, status="ARCHIVED", strict=False)
    sandbox.catalogue.add_asset(B)
    sandbox.catalogue.add_segment(B, "GENERIC", 9000, 9000, status="AWAITED")
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))
    for search in ("--search", "--no-search"):
        result = invoke("run", "--live", search, "--recheck", "unsupported_status", "--recheck", "segment_status",
                        *FAST)
        assert result.exit_code == 0, result.output
        ledger = Ledger(ledger_path)
        assert (ledger.asset(A)["state"], ledger.asset(A)["reason"]) == ("skipped", "unsupported_status")
        assert (ledger.asset(B)["state"], ledger.asset(B)["reason"]) == ("skipped", "segment_status")
    assert [(m, p) for m, p, _ in sandbox.requests() if m in ("PATCH", "DELETE") or "/segments/" in p and m == "POST"
            ] == []


def test_a_run_leaves_an_undos_open_write_to_the_undo(sandbox, invoke, tmp_path, ledger_path):
    """An undo that failed a row on a bug keeps its write open (it may have been sent): a later run --live must
    not settle it by a run's rules; the same undo, run again, does."""
    sandbox.catalogue.add_asset(A)
    load_rows(invoke, tmp_path, (A, 1000, 5000))
    assert invoke("run", "--live", *FAST).exit_code == 0
    [ours] = sandbox.generic_segments(A)
    ledger = Ledger(ledger_path)
    undo_id = ledger.start_run("undo", {"undo": 1, "live": True})
    [created] = ledger.writes_of_run(1)
    ledger.record_intent(A, Intent("u1", "delete", "DELETE", segment_id=ours["id"], undoes=created.id),
                         run_id=undo_id, to_state="pending", detail="about to delete", kind="other")
    ledger.finish_run(undo_id, "finished", {})
    load_rows(invoke, tmp_path, (A, 1000, 6000), name="changed.csv")
    assert invoke("run", "--live", *FAST).exit_code == 0
    assert Ledger(ledger_path).asset(A)["intent"] == "u1" and sandbox.requests("PATCH") == []
    assert invoke("undo", "1", "--live", *FAST).exit_code == 0
    assert Ledger(ledger_path).write("u1").outcome == "not_applied" and sandbox.generic_segments(A) == []


def test_the_writes_a_02_ledger_recorded_are_undone_and_its_put_updates_are_listed(
        sandbox, invoke, tmp_path, ledger_path):
    """0.2 kept one before-image per row; its first load upgrades the ledger and the write log holds them."""
    cat = sandbox.catalogue
    cat.add_asset(A)
    created = cat.add_segment(A, "GENERIC", 1000, 5000, external_id=f"{MARKER}:abc")
    cat.add_asset(B)
    updated = cat.add_segment(B, "GENERIC", 1000, 5000, segment_text="by hand", is_internal=True)
    old = ledger_of_version_02(ledger_path, (A, B))
    old.execute("insert into runs (id, mode, options, started_at, status) values (1, 'live', '{}', 'x', 'finished')")
    old.execute("update assets set state = 'created', segment_id = ?, done_action = 'create', done_segment_id = ?, "
                   "done_run_id = 1, done_start_ms = 1000, done_end_ms = 5000 where asset_key = ?",
                   [created["id"], created["id"], A])
    before = {"segment_type": "GENERIC", "time_start_milliseconds": 9000, "time_end_milliseconds": 9000,
              "segment_text": "by hand"}
    old.execute("update assets set state = 'updated', segment_id = ?, done_action = 'update', done_segment_id = ?, "
                   "done_run_id = 1, done_before = ?, done_start_ms = 1000, done_end_ms = 5000 where asset_key = ?",
                   [updated["id"], updated["id"], json.dumps(before), B])
    old.commit()
    old.close()
    load_rows(invoke, tmp_path, (A, 1000, 5000), (B, 1000, 5000))  # the upgrade
    checked = invoke("verify", "--settle", "0")
    assert checked.exit_code == 0, checked.output
    assert f"PUT-UPDATED {B} (row 3): segment {updated['id']}, run 1" in checked.output
    result = invoke("undo", "1", "--live", *FAST)
    assert result.exit_code == 0, result.output
    assert sandbox.generic_segments(A) == []
    [restored] = sandbox.generic_segments(B)
    assert (times(restored), restored["segment_text"], restored["is_internal"]) == ((9000, 9000), "by hand", True)


def test_a_persons_edit_landing_between_our_read_and_our_patch_is_no_replaced_patch(sandbox, loaded, invoke):  # noqa: F811
    """A person sets the text while our PATCH is on its way (the pacer or a 429 pause can hold it seconds after
    the read): the answer shows their text, not an emptied field, so nothing stops (an adversarial review found
    every writing command refused until --patch-checked)."""
    a, b = "6d1f0c30-0000-4000-8000-000000000001", "6d1f0c30-0000-4000-8000-000000000002"
    sandbox.catalogue.add_asset(a)
    sandbox.catalogue.add_asset(b)
    theirs = sandbox.catalogue.add_segment(a, "GENERIC", 1, 2, segment_text="v1")
    loaded((a, 1000, 5000), (b, 1000, 5000))
    edited = []

    def person_types_as_the_patch_arrives(method, path):
        if method == "PATCH" and not edited:
            edited.append(sandbox.person_edits(theirs["id"], segment_text="v2, by a person"))

    sandbox.hooks.append(person_types_as_the_patch_arrives)
    result = invoke("run", "--live", "--workers", "1")
    assert result.exit_code == 0, result.output
    stored = sandbox.stored_segment(theirs["id"])
    assert (stored["segment_text"], stored["time_start_milliseconds"], stored["time_end_milliseconds"]) == (
        "v2, by a person", 1000, 5000)
    assert len(sandbox.generic_segments(b)) == 1  # and the run went on writing
