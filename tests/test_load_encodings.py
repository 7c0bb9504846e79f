"""Issue #17: `load --csv` reads the files Excel saves: Korean Excel's CSV (cp949), its Unicode Text (UTF-16, TAB
separated), UTF-8 with or without a BOM; `--encoding` forces one; only bytes that cannot be decoded are refused."""

import codecs
import os

import pytest

from reversesync.ledger import Ledger
from reversesync.sheets import reading
from tests.conftest import ID_A, ID_B, ID_C
from tests.sheetgen import write_export

TITLES = {ID_A: "WSOP 2024 메인 이벤트: 파이널 테이블", ID_B: '필 아이비의 블러프, "all in"\n두 번째 카메라',
          ID_C: "Day 3\ttable 7"}


def korean_rows():
    return [{"id": key, "title": title, "time_start_ms": "1000", "time_end_ms": "2000"}
            for key, title in TITLES.items()]


def loaded_lines(path, ledger_path, rows=3):
    return (f"Loaded {rows} row{'s' if rows != 1 else ''} from {path} into {ledger_path}\n"
            f"  assets: {rows} new, 0 changed, 0 unchanged, 0 removed from the source\n")


def titles(ledger_path):
    return {row["asset_key"]: row["title"] for row in Ledger(ledger_path).query("select * from assets")}


def test_korean_excels_csv_is_read_as_cp949_with_a_note(invoke, ledger_path, tmp_path):
    path = write_export(tmp_path / "export.csv", korean_rows(), encoding="cp949")
    result = invoke("load", "--csv", path)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # load's lines are about its work: stderr (issue #17)
    assert result.stderr == (f"note: {path} is not UTF-8; it was read as cp949 (what Korean Excel saves as CSV). If "
                             "its titles look wrong, give its encoding with --encoding NAME.\n"
                             + loaded_lines(path, ledger_path))
    assert titles(ledger_path) == TITLES


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_excels_unicode_text_is_read_as_utf16_separated_by_tabs(invoke, ledger_path, tmp_path, encoding):
    """Excel's "Unicode Text" is UTF-16 (little-endian, with a BOM) and separates cells by TABs."""
    path = tmp_path / "export.txt"
    write_export(path, korean_rows(), encoding=encoding, delimiter="\t")
    if encoding == "utf-16-be":  # this codec writes no BOM; a big-endian file from elsewhere carries one
        path.write_bytes(codecs.BOM_UTF16_BE + path.read_bytes())
    result = invoke("load", "--csv", path)
    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == ("", loaded_lines(path, ledger_path))
    assert titles(ledger_path) == TITLES


@pytest.mark.parametrize("bom", [False, True])
def test_utf8_with_or_without_a_bom_stays_the_default_and_says_nothing(invoke, ledger_path, tmp_path, bom):
    path = write_export(tmp_path / "export.csv", korean_rows(), encoding="utf-8-sig" if bom else "utf-8")
    result = invoke("load", "--csv", path)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", loaded_lines(path, ledger_path))
    assert titles(ledger_path) == TITLES


def cafe_export(tmp_path):
    """A Western Excel's CSV (cp1252): neither UTF-8 nor cp949, since 0xE9 followed by a space is neither."""
    rows = [{"id": ID_A, "title": "Café au lait", "time_start_ms": "1000", "time_end_ms": "2000"}]
    path = write_export(tmp_path / "cafe.csv", rows, encoding="cp1252")
    offset = open(path, "rb").read().index(b"\xe9")
    return path, offset


def test_bytes_neither_utf8_nor_cp949_are_refused_naming_the_offset(invoke, ledger_path, tmp_path):
    path, offset = cafe_export(tmp_path)
    result = invoke("load", "--csv", path)
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {path} is neither UTF-8 (byte {offset} cannot be decoded: invalid continuation byte) nor cp949 "
        f"(byte {offset} cannot be decoded: illegal multibyte sequence) text; export it as \"CSV UTF-8\", or give "
        "its encoding with --encoding NAME.\n")
    assert not os.path.exists(ledger_path)


def test_encoding_forces_one(invoke, ledger_path, tmp_path):
    path, _ = cafe_export(tmp_path)
    result = invoke("load", "--csv", path, "--encoding", "cp1252")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", loaded_lines(path, ledger_path, rows=1))
    assert titles(ledger_path) == {ID_A: "Café au lait"}


def test_a_forced_encoding_refuses_the_bytes_it_cannot_decode(invoke, ledger_path, tmp_path):
    path = write_export(tmp_path / "export.csv", korean_rows(), encoding="cp949")
    offset = open(path, "rb").read().index("메".encode("cp949"))
    result = invoke("load", "--csv", path, "--encoding", "utf-8")
    assert result.exit_code == 2
    assert result.output == (f"Error: {path} is not utf-8 text (byte {offset} cannot be decoded: invalid start "
                             "byte); give the file's encoding with --encoding NAME.\n")


def test_a_forced_utf8_reads_a_file_with_a_bom_too(invoke, ledger_path, tmp_path):
    path = write_export(tmp_path / "export.csv", korean_rows(), encoding="utf-8-sig")
    assert invoke("load", "--csv", path, "--encoding", "utf-8").exit_code == 0
    assert titles(ledger_path) == TITLES


def test_the_offset_counts_from_the_start_of_the_file_across_chunks(invoke, tmp_path, monkeypatch):
    """The detection pass reads the file a chunk at a time; a Korean character cut by a chunk's end still decodes,
    and the bad byte is named by its place in the file, not in its chunk."""
    monkeypatch.setattr(reading, "CHUNK_BYTES", 7)
    rows = korean_rows() + [{"id": ID_A, "title": "bad", "time_start_ms": "1000", "time_end_ms": "2000"}]
    path = write_export(tmp_path / "export.csv", rows)
    data = open(path, "rb").read()
    offset = data.rindex(b"bad")
    open(path, "wb").write(data[:offset] + b"\xff" + data[offset + 1:])
    result = invoke("load", "--csv", path, "--encoding", "utf-8")
    assert result.exit_code == 2
    assert f"(byte {offset:,} cannot be decoded: invalid start byte)" in result.output


def test_an_unknown_encoding_is_a_usage_error(invoke, tmp_path):
    path = write_export(tmp_path / "export.csv", korean_rows())
    for name in ("klingon", "base64"):
        result = invoke("load", "--csv", path, "--encoding", name)
        assert result.exit_code == 2
        assert result.output.splitlines()[-1] == (f"Error: Invalid value for '--encoding': '{name}' is not a text "
                                                  "encoding Python knows (such as cp949, utf-16, utf-8)")


@pytest.mark.parametrize("source", [["--example"], ["--sheet", "1pUMPKe"]])
def test_encoding_goes_with_csv_only(invoke, source):
    result = invoke("load", *source, "--encoding", "cp949")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == f"Error: --encoding goes with --csv; {source[0]} reads no CSV file."
