"""--log FILE (REVERSESYNC_LOG): a night's timestamped account, written only by the command that holds the ledger
(issue #17); human lines on stderr, data on stdout."""

import re

from reversesync.ledger import Ledger
from tests.conftest import ID_A, ID_B

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


def logged(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert all(re.match(STAMP + " ", line) for line in lines), lines
    return [line.split(" ", 1)[1] for line in lines]


def test_a_live_run_logs_its_start_target_each_rows_change_summary_and_exit(sandbox, loaded, invoke, tmp_path,
                                                                             ledger_path):
    sandbox.catalogue.add_asset(ID_A)
    loaded((ID_A, 1000, 5000), (ID_B, 1000, 5000))
    log = tmp_path / "night.log"
    result = invoke("--log", log, "run", "--live", "--no-search")
    assert result.exit_code == 1  # B is not in Iconik
    lines = logged(log)
    assert re.fullmatch(rf"start: reversesync 0\.3\.0 run \(pid \d+\); ledger {re.escape(ledger_path)}", lines[0])
    assert lines[1] == f"target: Iconik {sandbox.url} as sync@sandbox.invalid"
    segment = Ledger(ledger_path).asset(ID_A)["segment_id"]
    assert f"row {ID_A}: checked -> created (run 1): written, created segment {segment}" in lines
    assert any(line.startswith(f"row {ID_B}: pending -> failed (run 1): failed, not_found") for line in lines)
    assert "This run (1):" in lines and lines[-2].startswith("Requests: ")
    assert lines[-1] == "exit 1"
    assert sandbox.auth_token not in log.read_text()


def test_the_log_appends_and_the_environment_names_it(sandbox, loaded, invoke, tmp_path, monkeypatch):
    sandbox.catalogue.add_asset(ID_A)
    log = tmp_path / "night.log"
    monkeypatch.setenv("REVERSESYNC_LOG", str(log))
    loaded((ID_A, 1000, 5000))
    assert invoke("run", "--live").exit_code == 0
    starts = [line for line in logged(log) if line.startswith("start: ")]
    assert [line.split()[3] for line in starts] == ["load", "run"]


def test_a_command_refused_the_lock_writes_nothing_to_the_log(loaded, invoke, tmp_path, ledger_path, credentials):
    loaded((ID_A, 1000, 5000))
    log = tmp_path / "night.log"
    holder = Ledger(ledger_path)
    holder.acquire("run")
    try:
        result = invoke("--log", log, "run", "--live")
    finally:
        holder.release()
    assert result.exit_code == 3
    assert log.read_text() == ""


def test_a_log_in_a_folder_that_does_not_exist_is_a_usage_error(invoke, tmp_path):
    missing = tmp_path / "no-such-folder" / "night.log"
    result = invoke("--log", missing, "report")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (f"Error: Invalid value for '--log': cannot append to {missing}: No such "
                                              "file or directory")


def test_human_lines_go_to_stderr_and_a_read_commands_answer_to_stdout(sandbox, loaded, invoke):
    sandbox.catalogue.add_asset(ID_A)
    loaded((ID_A, 1000, 5000))
    ran = invoke("run", "--live")
    assert ran.stdout == "" and "This run (1):" in ran.stderr
    reported = invoke("report")
    assert reported.stdout.splitlines()[0] == "state       assets" and reported.stderr == ""
