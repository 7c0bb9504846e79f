"""The sheet: reading its rows (reading.py) into checked records (records.py), and writing the Sync_Log and status
tabs (writing.py), through one Google client (google.py)."""

from .reading import DEFAULT_WORKSHEET, CsvExport, open_csv, read_csv, read_google_sheet
from .records import (
                      DUPLICATE_CONFLICT,
                      INVALID,
                      NO_TIMECODE,
                      OPTIONAL_COLUMNS,
                      REQUIRED_COLUMNS,
                      ROW_KEY_PREFIX,
                      AssetRecord,
                      check_row,
                      content_key,
                      records_from_table,
)
from .writing import (
                      PROTECTED_TABS,
                      STATUS_TAB,
                      SYNC_LOG_COLUMNS,
                      SYNC_LOG_TAB,
                      append_sync_log,
                      fit_cell,
                      is_protected_tab,
                      write_status_tab,
)

__all__ = ["DEFAULT_WORKSHEET", "DUPLICATE_CONFLICT", "INVALID", "NO_TIMECODE", "OPTIONAL_COLUMNS", "PROTECTED_TABS",
           "REQUIRED_COLUMNS", "ROW_KEY_PREFIX", "STATUS_TAB", "SYNC_LOG_COLUMNS", "SYNC_LOG_TAB", "AssetRecord",
           "CsvExport", "append_sync_log", "check_row", "content_key", "fit_cell", "is_protected_tab", "open_csv",
           "read_csv", "read_google_sheet", "records_from_table", "write_status_tab"]
