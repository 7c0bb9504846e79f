"""The application layer: each command's lifecycle (open and lock the ledger, record or reopen the run, build the
client, preflight, run, close) and its outcome as a typed result. It never prints: the CLI renders."""

from .checking import Verified, reading, status_tab, sync_log, verify
from .loading import Loaded, Source, example_sheet_path, load, load_into, read_source
from .nightly import SyncOptions, SyncReport, needs_person_now, reasons_counted, sync
from .runs import PATCH_REPLACED, NothingToResume, RunReport, missing_assets, repair, resume, run, undo
from .session import Credentials, Session, quoted

__all__ = ["PATCH_REPLACED", "Credentials", "Loaded", "NothingToResume", "RunReport", "Session", "Source",
           "SyncOptions", "SyncReport", "Verified", "example_sheet_path", "load", "load_into",
           "missing_assets", "needs_person_now", "quoted", "reading", "read_source", "reasons_counted",
           "repair", "resume", "run", "status_tab", "sync", "sync_log", "undo", "verify"]
