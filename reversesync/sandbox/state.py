"""A catalogue's state as a JSON file: what makes a dump usable (Catalogue.restore checks it too), reading one
(`reversesync sandbox --state`) and writing one readable by its owner only (`--dump`)."""

import json
import os
from typing import Any


def state_problem(state: Any) -> str | None:
    """What makes state unusable as a Catalogue dump, or None."""
    if not isinstance(state, dict) or not isinstance(state.get("assets"), dict) \
            or not isinstance(state.get("segments"), dict):
        return "it needs 'assets' and 'segments' objects, as --dump writes them"
    if not all(isinstance(a, dict) and {"id", "type", "status"} <= set(a) for a in state["assets"].values()):
        return "every asset needs id, type and status"
    if not all(isinstance(found, list) and all(isinstance(s, dict) and {"id", "asset_id", "segment_type"} <= set(s)
                                               for s in found) for found in state["segments"].values()):
        return "'segments' must map asset ids to lists of segments with id, asset_id and segment_type"
    if not isinstance(state.get("forbidden", []), list):
        return "'forbidden' must be a list of asset ids"
    if not isinstance(state.get("extra_fields", {}), dict):
        return "'extra_fields' must map field names to their defaults"
    return None


def load_state(path: str) -> dict[str, Any]:
    """The catalogue state in a file written by --dump; ValueError saying what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as handle:
            state: dict[str, Any] = json.load(handle)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:  # UnicodeDecodeError is one too
        reason = str(exc).split(":")[0] if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise ValueError(f"{path} is not a JSON state written by --dump ({reason})") from None
    problem = state_problem(state)
    if problem:
        raise ValueError(f"{path} is not a sandbox state: {problem}")
    return state


def write_state(path: str, state: dict[str, Any]) -> None:
    """Write a dump readable by its owner only (mode 0600): it may hold a copy of production titles."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that was already there
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=1)
