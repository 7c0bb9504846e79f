"""The runs: one row machinery (machinery.py) under a sync (sync.py, with its search pre-pass in search.py), an undo
(undo.py) and a repair (repair.py); and verify (verify.py), which only reads. Each decides through rules/."""

from .machinery import (
    CONNECTION_STREAK_STOP,
    SILENCE_STOP,
    DecideAgain,
    Machinery,
    Park,
    Schedule,
    StaleDecision,
    Stopping,
    check_roles,
)
from .repair import REPAIR_ROLES, Repair
from .search import FRESH_FOR, SEARCH_BATCH
from .sync import FORBIDDEN_PROBE, MAX_CONFLICTS, MAX_DECISIONS, MAX_THROTTLED_WRITES, Sync
from .undo import UNDO_ROLES, Outcome, Reverting, Undo
from .verify import Mismatch, drift_check, settle_wait, verify, verify_row

__all__ = ["CONNECTION_STREAK_STOP", "FORBIDDEN_PROBE", "FRESH_FOR", "StaleDecision",
           "MAX_CONFLICTS", "MAX_DECISIONS", "MAX_THROTTLED_WRITES",
           "REPAIR_ROLES", "SEARCH_BATCH", "SILENCE_STOP", "UNDO_ROLES", "DecideAgain", "Machinery", "Mismatch",
           "Outcome", "Park", "Repair", "Reverting", "Schedule", "Stopping", "Sync", "Undo", "check_roles",
           "drift_check", "settle_wait", "verify", "verify_row"]
