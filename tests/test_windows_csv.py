"""Issue #18: a CSV export Windows will not hand over — open in Excel, kept online only by OneDrive, failing
half-way — is a clear error (exit 2) saying what to do, and the ledger stays as it was."""

import builtins

import pytest

from tests.conftest import write_sheet

A, B = "8c0d9a10-0000-4000-8000-000000000001", "8c0d9a10-0000-4000-8000-000000000002"


def windows_error(errno, strerror, winerror, kind=OSError):
    error = kind(errno, strerror)
    error.winerror = winerror  # what CPython sets on Windows
    return error


def refusing(path, error):
    """open() as Windows answers it for `path`; every other file opens as usual."""

    def fake_open(name, *args, **kwargs):
        if str(name) == str(path):
            raise error
        return builtins.open(name, *args, **kwargs)

    return fake_open


@pytest.fixture
def sheet(tmp_path):
    return write_sheet(tmp_path / "제작 시트.csv", [(A, "clip 1", 1000, 5000), (B, "clip 2", 2000, 6000)])


def test_a_csv_open_in_excel_says_close_it_there(invoke, sheet, monkeypatch):
    monkeypatch.setattr("reversesync.sheets.reading.open", refusing(
        sheet, windows_error(13, "The process cannot access the file because it is being used by another process",
                             32, PermissionError)), raising=False)
    result = invoke("load", "--csv", sheet)
    assert result.exit_code == 2
    assert result.output == (
        f"Error: cannot read {sheet}: another program holds it or it is not yours to read (The process cannot "
        "access the file because it is being used by another process). If it is open in Excel, close it there (or "
        "save a copy and load that), then load again.\n")


def test_a_csv_onedrive_keeps_online_only_says_keep_it_on_this_device(invoke, sheet, monkeypatch):
    monkeypatch.setattr("reversesync.sheets.reading.open", refusing(
        sheet, windows_error(22, "The cloud file provider is not running", 362)), raising=False)
    result = invoke("load", "--csv", sheet)
    assert result.exit_code == 2
    assert result.output == (
        f"Error: cannot read {sheet}: OneDrive keeps it online only and could not fetch it now (The cloud file "
        "provider is not running). In Explorer, right-click it and choose \"Always keep on this device\" (or open "
        "it once while online), then load again.\n")


class FailsAfterTheHeader:
    """A text handle whose reads fail after its first line, as a file OneDrive stops fetching half-way does."""

    def __init__(self, handle):
        self.handle = handle

    def readline(self):
        return self.handle.readline()

    def __iter__(self):
        return self

    def __next__(self):
        raise windows_error(5, "Input/output error", 395)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def close(self):
        self.handle.close()


def test_a_csv_that_fails_half_way_leaves_the_ledger_as_it_was(invoke, sheet, tmp_path, monkeypatch, ledger_path):
    assert invoke("load", "--csv", sheet).exit_code == 0
    before = invoke("report", "--csv", "-").output
    changed = write_sheet(tmp_path / "changed.csv", [(A, "clip 1", 1500, 5000)])

    def half_way(name, *args, **kwargs):
        handle = builtins.open(name, *args, **kwargs)
        is_text = "b" not in (args[0] if args else kwargs.get("mode", "r"))
        return FailsAfterTheHeader(handle) if str(name) == str(changed) and is_text else handle

    monkeypatch.setattr("reversesync.sheets.reading.open", half_way, raising=False)
    result = invoke("load", "--csv", changed)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: cannot read {changed}: OneDrive keeps it online only and could not fetch it now (Input/output "
        "error). In Explorer, right-click it and choose \"Always keep on this device\" (or open it once while "
        "online), then load again.")
    monkeypatch.undo()
    assert invoke("report", "--csv", "-").output == before
