"""The decision rules, pure and tested as tables: a sync's (sync.py), an undo's and a repair's (undo.py), and the
reasons a row can end with (reasons.py)."""

from .reasons import (
                      FINISHED_REASONS,
                      LOAD_REJECTIONS,
                      RETRYABLE_REASONS,
                      SEARCH_FINAL_REASONS,
                      UNDO_REASONS,
                      failure_text,
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

__all__ = ["ACTIVE", "DELETED", "FINISHED_REASONS", "KNOWN_ASSET_STATUSES", "LIVE_SEGMENT_STATUSES",
           "LOAD_REJECTIONS", "MARKER", "RETRYABLE_REASONS", "SEARCH_FINAL_REASONS", "SUBCLIP", "UNDO_REASONS",
           "WRITABLE_TYPE", "Decision", "canonical_uuid", "created_answer_problem", "decide", "failure_text",
           "field_differences", "generic_only", "index_document_trusted", "is_absent", "is_ours", "marker",
           "missing_asset_fields", "ms", "not_live", "patch_replaced", "span", "update_target_problem"]
