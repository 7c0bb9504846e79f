"""Files reversesync writes for people (report and verify CSVs): private, whole, and never through a link.

Issue #11: a CSV holds what the 0600 ledger holds (asset ids, titles, what was done), so it is created 0600
on POSIX; it is written to a temporary file beside the target and renamed into place, so a planted symlink
is never followed and a reader never sees half a file; a target another program holds open (Excel on
Windows locks the files it shows) is a clear error, not a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

from .errors import OutputRefused

STDOUT = "-"


def check_output_path(path: str) -> None:
    """Refuse at once a path private_output() could not write, before any slow work is done."""
    if path == STDOUT:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.islink(path):
        raise OutputRefused(f"{path} is a symbolic link; reversesync does not write through links. "
                            "Give the real path, or remove the link.")
    if os.path.isdir(path):
        raise OutputRefused(f"cannot write {path}: it is a folder; give a file name.")
    if not os.path.isdir(folder):
        raise OutputRefused(f"cannot write {path}: No such file or directory.")


@contextlib.contextmanager
def private_output(path: str, bom: bool = False, stdout: IO[str] | None = None) -> Iterator[IO[str]]:
    """A text handle for writing `path` (UTF-8, newline=''), or standard output when path is '-'.

    A file is written to a temporary 0600 file in the same folder and renamed over `path` only when the
    block ends without an error; on an error the temporary file is removed and `path` is left as it was.
    bom=True starts a file with a UTF-8 byte-order mark, which Excel needs to read Korean titles; standard
    output never gets one (a pipe or a terminal wants plain UTF-8).
    """
    if path == STDOUT:
        stream = stdout or sys.stdout
        yield stream
        stream.flush()
        return
    check_output_path(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        # mkstemp creates the file with mode 0600 and O_EXCL: private from the first byte.
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as exc:
        raise OutputRefused(f"cannot write {path}: {exc.strerror}.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
            yield handle
        _replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise


def _replace(temporary: str, path: str) -> None:
    try:
        os.replace(temporary, path)  # a rename: it replaces a symlink itself, never the file it points to
    except PermissionError:
        raise OutputRefused(f"cannot replace {path}: another program has it open, or it is read-only. "
                            "Close it (in Excel, for instance) and run the command again.") from None
    except OSError as exc:
        raise OutputRefused(f"cannot write {path}: {exc.strerror}.") from None


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
