import re

import pytest

from reversesync.sheets.records import AssetRecord, check_row, merge_duplicates, records_from_table

ID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def row(**cells):
    base = {"id": ID, "title": "t", "time_start_ms": "1000", "time_end_ms": "2000"}
    base.update(cells)
    return check_row(7, base)


@pytest.mark.parametrize("cells, start, end", [
    ({}, 1000, 2000),
    ({"time_start_ms": "1234.0"}, 1234, 2000),
    ({"time_start_ms": "1,234", "time_end_ms": "1,234,567"}, 1234, 1234567),
    ({"time_start_ms": "  1000 ", "time_end_ms": " 2000"}, 1000, 2000),
    ({"time_start_ms": 1000, "time_end_ms": 2000.0}, 1000, 2000),
    ({"time_start_ms": "0"}, 0, 2000),
    ({"id": ID.upper()}, 1000, 2000),
    ({"id": f"  {ID} "}, 1000, 2000),
    ({"time_start_S": "1.0", "time_end_S": "2.9"}, 1000, 2000),
    ({"time_start_S": 1.5, "time_end_S": ""}, 1000, 2000),
])
def test_accepted_cells(cells, start, end):
    record = row(**cells)
    assert (record.reason, record.time_start_ms, record.time_end_ms) == (None, start, end)
    assert record.key == ID


@pytest.mark.parametrize("cells, reason, text", [
    ({"id": "../x"}, "invalid", "Row 7: id '../x' is not an Iconik asset id"),
    ({"id": f"{ID}/../x"}, "invalid", "is not an Iconik asset id"),
    ({"id": f"{ID}?a=1"}, "invalid", "is not an Iconik asset id"),
    ({"id": f"{ID[:8]} {ID[9:]}"}, "invalid", "is not an Iconik asset id"),
    ({"id": ID.replace("-", "%")}, "invalid", "is not an Iconik asset id"),
    ({"id": f"{ID}#"}, "invalid", "is not an Iconik asset id"),
    ({"id": ""}, "invalid", "Row 7: the id cell is empty"),
    ({"time_start_ms": "1234.5"}, "invalid", "Row 7: time_start_ms is '1234.5', not a whole number"),
    ({"time_start_ms": "abc"}, "invalid", "time_start_ms is 'abc', not a whole number"),
    ({"time_start_ms": "-5"}, "invalid", "time_start_ms is '-5', not a whole number"),
    ({"time_start_ms": -5}, "invalid", "time_start_ms is -5, not a whole number"),
    ({"time_end_ms": 2000.5}, "invalid", "time_end_ms is 2000.5, not a whole number"),
    ({"time_start_ms": True}, "invalid", "time_start_ms is True, not a whole number"),
    ({"time_start_ms": "1,23"}, "invalid", "not a whole number"),
    ({"time_end_ms": "1000"}, "invalid", "time_end_ms (1000) is not after time_start_ms (1000)"),
    ({"time_end_ms": "500"}, "invalid", "time_end_ms (500) is not after time_start_ms (1000)"),
    ({"time_end_ms": ""}, "invalid", "Row 7: time_end_ms is empty but time_start_ms is not"),
    ({"time_start_ms": None}, "invalid", "time_start_ms is empty but time_end_ms is not"),
    ({"time_start_ms": "", "time_end_ms": " "}, "no_timecode", "Row 7: time_start_ms and time_end_ms are both empty"),
    ({"time_end_S": "3.5"}, "invalid", "time_end_S ('3.5' s) and time_end_ms (2000 ms) disagree"),
    ({"time_start_S": "x"}, "invalid", "time_start_S is 'x', not a number of seconds"),
])
def test_rejected_cells(cells, reason, text):
    record = row(**cells)
    assert record.reason == reason
    assert text in record.reason_text
    assert record.time_start_ms is None and record.time_end_ms is None


def test_same_asset_same_times_is_one_asset_with_both_rows():
    a = check_row(2, {"id": ID, "time_start_ms": "1000", "time_end_ms": "2000"})
    b = check_row(9, {"id": ID.upper(), "time_start_ms": "1,000", "time_end_ms": "2000.0"})
    [merged] = merge_duplicates([a, b])
    assert merged.reason is None and merged.row_numbers == [2, 9]


def test_same_asset_different_times_rejects_every_row_without_guessing():
    a = check_row(2, {"id": ID, "time_start_ms": "1000", "time_end_ms": "2000"})
    b = check_row(9, {"id": ID, "time_start_ms": "1000", "time_end_ms": "2500"})
    [merged] = merge_duplicates([a, b])
    assert merged.reason == "duplicate_conflict"
    assert merged.row_numbers == [2, 9]
    assert (merged.time_start_ms, merged.time_end_ms) == (None, None)
    assert merged.reason_text.startswith(f"Rows 2, 9: asset {ID} appears on several rows with different times")


def test_header_found_by_name_in_any_order_and_blank_rows_ignored():
    header = ["Description", "time_end_ms", "ID", "time_start_ms"]
    records = records_from_table(header, [["x", "2000", ID, "1000"], ["", "", "", ""]])
    assert [(r.key, r.row_numbers, r.time_start_ms, r.time_end_ms) for r in records] == [(ID, [2], 1000, 2000)]


def test_source_hash_ignores_title_but_not_times():
    a = AssetRecord(ID, ID, [2], "one", 1, 2)
    assert a.source_hash == AssetRecord(ID, ID, [5], "two", 1, 2).source_hash
    assert a.source_hash != AssetRecord(ID, ID, [2], "one", 1, 3).source_hash


# --- times from the seconds columns, when both ms cells are empty (issue #17) -------------------------------


def from_seconds(start, end):
    return row(time_start_ms="", time_end_ms="", time_start_S=start, time_end_S=end)


@pytest.mark.parametrize("start, end, start_ms, end_ms", [
    ("12", "13", 12000, 13000),
    ("12.5", "12.501", 12500, 12501),
    ("12.345", " 20. ", 12345, 20000),
    ("1,234.5", "1,234,567.125", 1234500, 1234567125),
    ("0", "0.001", 0, 1),
    (12, 12.345, 12000, 12345),          # the Sheets API's numbers: 12.345 is a float that is not quite 12.345
    (0.1, 0.3, 100, 300),
    ("12.3450000", "99999999999.999", 12345, 99999999999999),
])
def test_seconds_alone_give_the_times_exactly(start, end, start_ms, end_ms):
    record = from_seconds(start, end)
    assert (record.reason, record.time_start_ms, record.time_end_ms) == (None, start_ms, end_ms)
    assert record.times_from_seconds


@pytest.mark.parametrize("start, end, text", [
    ("12.3456", "13", "Row 7: time_start_S is '12.3456', a time finer than a millisecond (more than three decimals), "
                      "which a segment cannot hold; correct the cell."),
    (1.0005, 2, "time_start_S is 1.0005, a time finer than a millisecond"),
    ("12", "", "Row 7: time_end_S is empty but time_start_S is not (and time_start_ms and time_end_ms are both "
               "empty); fill in both times."),
    ("", "13", "time_start_S is empty but time_end_S is not"),
    ("x", "13", "Row 7: time_start_S is 'x', not a number of seconds (0 or more, such as 12.5); correct the cell."),
    ("-1", "13", "time_start_S is '-1', not a number of seconds"),
    (-1.0, 13, "time_start_S is -1.0, not a number of seconds"),
    ("1.234,5", "13", "time_start_S is '1.234,5', not a number of seconds"),
    ("1e3", "13", "time_start_S is '1e3', not a number of seconds"),
    (True, "13", "time_start_S is True, not a number of seconds"),
    (float("nan"), "13", "time_start_S is nan, not a number of seconds"),
    ("13", "12.5", "Row 7: time_end_S ('12.5') is not after time_start_S ('13'); correct one of them."),
    ("0", "9" * 30, "time_end_S is '999999999999999999999999999999', too large to be a time in seconds"),
])
def test_unusable_seconds_reject_the_row_saying_why(start, end, text):
    record = from_seconds(start, end)
    assert record.reason == "invalid"
    assert text in record.reason_text
    assert (record.time_start_ms, record.time_end_ms, record.times_from_seconds) == (None, None, False)


def test_no_time_in_any_column_is_no_timecode():
    record = from_seconds("", " ")
    assert (record.reason, record.reason_text) == (
        "no_timecode", "Row 7: time_start_ms and time_end_ms are both empty; fill them in to sync this asset.")


# --- rows whose id is unusable are keyed by their content (issue #17) --------------------------------------


def test_an_unusable_id_is_keyed_by_the_rows_content_not_its_number():
    cells = {"id": "../x", "title": "t", "time_start_ms": "1", "time_end_ms": "2"}
    here, there = check_row(2, cells), check_row(40, dict(cells))
    assert here.key == there.key and re.fullmatch(r"row:[g-v][0-9a-f]{11}", here.key)
    for column, value in [("id", "../y"), ("title", "u"), ("time_start_ms", "0"), ("time_end_ms", "3"),
                          ("time_start_S", "0.001"), ("time_end_S", "0.002")]:
        assert check_row(2, dict(cells, **{column: value})).key != here.key, column
    assert check_row(2, dict(cells, Description="other")).key == here.key
    assert check_row(2, dict(cells, time_start_ms=1.0)).key == here.key, "the Sheets API's 1.0 is the CSV's 1"


def test_identical_unusable_rows_are_numbered_by_order_never_merged():
    cells = {"id": "", "title": "t", "time_start_ms": "1", "time_end_ms": "2"}
    records = merge_duplicates([check_row(n, cells) for n in (3, 5, 9)])
    key = records[0].key
    assert [(r.key, r.row_numbers) for r in records] == [(key, [3]), (f"{key}#2", [5]), (f"{key}#3", [9])]
