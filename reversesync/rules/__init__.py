"""The decision rules, pure and tested as tables: a sync's (sync.py), an undo's and a repair's (undo.py), and the
reasons a row can end with (reasons.py)."""

from .drift import Drift, drift
from .reasons import (
                      DRIFT_REASONS,
                      FINISHED_REASONS,
                      LOAD_REJECTIONS,
                      NEEDS_PERSON_REASONS,
                      REPAIRABLE_DRIFT,
                      RETRYABLE_REASONS,
                      SEARCH_FINAL_REASONS,
                      SYNC_RETRY_REASONS,
                      UNDO_REASONS,
                      failure_text,
                      needs_person,
)
from .sync import (
                      ACTIVE,
                      DELETED,
                      KNOWN_ASSET_STATUSES,
                      LIVE_SEGMENT_STATUSES,
                      MARKER,
                      SUBCLIP,
                      WRITABLE_TYPE,
                      Decision,
                      canonical_uuid,
                      created_answer_problem,
                      decide,
                      field_differences,
                      generic_only,
                      index_can_decide,
                      index_document_trusted,
                      is_absent,
                      is_ours,
                      marker,
                      missing_asset_fields,
                      ms,
                      not_live,
                      patch_replaced,
                      span,
                      update_target_problem,
)

__all__ = ["ACTIVE", "DELETED", "DRIFT_REASONS", "FINISHED_REASONS", "NEEDS_PERSON_REASONS", "REPAIRABLE_DRIFT",
           "SYNC_RETRY_REASONS",
           "Drift", "drift", "needs_person", "KNOWN_ASSET_STATUSES", "LIVE_SEGMENT_STATUSES",
           "LOAD_REJECTIONS", "MARKER", "RETRYABLE_REASONS", "SEARCH_FINAL_REASONS", "SUBCLIP", "UNDO_REASONS",
           "WRITABLE_TYPE", "Decision", "canonical_uuid", "created_answer_problem", "decide", "failure_text",
           "field_differences", "generic_only", "index_can_decide", "index_document_trusted", "is_absent",
           "is_ours", "marker",
           "missing_asset_fields", "ms", "not_live", "patch_replaced", "span", "update_target_problem"]
