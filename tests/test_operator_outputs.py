"""Issue #11, secrets and files: the CSVs reversesync writes are private, whole, never written through a
symlink, Excel-readable, and a file another program holds open is a clear error."""

import csv
import io
import os
import stat

import pytest

from reversesync import outputs
from tests.conftest import ID_A, ID_B, write_sheet

KOREAN = "WSOP 메인 이벤트 — 파이널 테이블"


@pytest.fixture
def loaded_korean(invoke, tmp_path):
    result = invoke("load", "--csv", write_sheet(tmp_path / "s.csv", [(ID_A, KOREAN, 1000, 2000),
                                                                      (ID_B, "b", 1000, 3000)]))
    assert result.exit_code == 0, result.output


def private(path):
    return stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_report_csv_file_is_0600_and_starts_with_a_bom_for_excel(loaded_korean, invoke, tmp_path):
    out = tmp_path / "report.csv"
    result = invoke("report", "--csv", out)
    assert result.exit_code == 0
    assert result.stderr == f"Wrote 2 assets to {out}\n"
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfasset_id,")
    assert KOREAN.encode("utf-8") in raw
    assert private(out)
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


def test_report_csv_to_stdout_is_plain_utf8_without_a_bom(loaded_korean, runner, ledger_path):
    from reversesync.cli import cli

    result = runner.invoke(cli, ["--ledger", ledger_path, "report", "--csv", "-"])
    assert result.exit_code == 0
    assert result.stdout_bytes.startswith(b"asset_id,")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["title"] == KOREAN


def test_an_existing_readable_report_is_replaced_by_a_private_one(loaded_korean, invoke, tmp_path):
    out = tmp_path / "report.csv"
    out.write_text("old")
    os.chmod(out, 0o644)
    assert invoke("report", "--csv", out).exit_code == 0
    assert private(out) and out.read_bytes().startswith(b"\xef\xbb\xbf")


def test_a_symlink_target_is_refused_and_what_it_points_to_is_untouched(loaded_korean, invoke, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("do not truncate me")
    link = tmp_path / "report.csv"
    link.symlink_to(precious)
    result = invoke("report", "--csv", link)
    assert result.exit_code == 2
    assert result.output == (f"Error: {link} is a symbolic link; reversesync does not write through links. "
                             "Give the real path, or remove the link.\n")
    assert precious.read_text() == "do not truncate me" and link.is_symlink()


def test_a_file_another_program_holds_open_is_a_clear_error(loaded_korean, invoke, tmp_path, monkeypatch):
    """On Windows, Excel keeps the files it shows open and os.replace over one fails with PermissionError;
    that cannot happen on POSIX, so the refusal is simulated where it happens."""
    out = tmp_path / "report.csv"
    out.write_text("the sheet Excel shows")

    def held_open(source, target):
        raise PermissionError(13, "The process cannot access the file because it is being used by another process")

    monkeypatch.setattr(os, "replace", held_open)
    monkeypatch.setattr(outputs, "RENAME_PAUSE", 0)  # it is tried again for about a second (issue #18)
    result = invoke("report", "--csv", out)
    assert result.exit_code == 2
    assert result.output == (f"Error: cannot replace {out}: another program has it open, or it is read-only. "
                             "If Excel shows it, close it in Excel and run the command again.\n")
    assert out.read_text() == "the sheet Excel shows"
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_a_failure_while_writing_leaves_the_target_as_it_was(tmp_path):
    out = tmp_path / "x.csv"
    out.write_text("before")
    with pytest.raises(RuntimeError):
        with outputs.private_output(str(out), bom=True) as handle:
            handle.write("half a fi")
            raise RuntimeError("disk on fire")
    assert out.read_text() == "before"
    assert os.listdir(tmp_path) == ["x.csv"]


def test_private_output_refuses_a_folder_and_a_missing_folder(tmp_path):
    with pytest.raises(outputs.OutputRefused, match="it is a folder"):
        with outputs.private_output(str(tmp_path)):
            pass
    with pytest.raises(outputs.OutputRefused, match="No such file or directory"):
        with outputs.private_output(str(tmp_path / "no" / "x.csv")):
            pass


def test_private_output_to_stdout_writes_no_bom(capsys):
    with outputs.private_output("-", bom=True) as handle:
        handle.write("a,b\n")
    assert capsys.readouterr().out == "a,b\n"
