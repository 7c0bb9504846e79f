"""The row state machine: this table, and nothing else, says which moves a row may make."""

from __future__ import annotations

from ..errors import IllegalTransition
from ..types import CHECKED, CREATED, FAILED, PENDING, SKIPPED, UPDATED

# A self-transition records a change of a row's details (new plan, new reason, source edited) without moving
# it. None is "not yet in the ledger". A row holding an intent (a write that may have landed) can sit in
# pending, checked, skipped or failed; from each of them it can go back to checked to be re-checked (issue #10).
# Any row can fail, so that a bug on one row fails that row and never the run.
TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({PENDING, SKIPPED}),
    PENDING: frozenset({PENDING, CHECKED, SKIPPED, FAILED}),
    CHECKED: frozenset({CHECKED, PENDING, CREATED, UPDATED, SKIPPED, FAILED}),
    CREATED: frozenset({CREATED, PENDING, SKIPPED, FAILED}),
    UPDATED: frozenset({UPDATED, PENDING, SKIPPED, FAILED}),
    SKIPPED: frozenset({SKIPPED, PENDING, CHECKED, FAILED}),
    FAILED: frozenset({FAILED, PENDING, CHECKED, SKIPPED}),
}


def check_transition(from_state: str | None, to_state: str) -> None:
    """Raise IllegalTransition unless the table allows from_state -> to_state."""
    if to_state not in TRANSITIONS.get(from_state, frozenset()):
        raise IllegalTransition(f"a row cannot move from {from_state or 'nothing'} to {to_state}")
