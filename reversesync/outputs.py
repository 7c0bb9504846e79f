"""Files reversesync writes for people (report and verify CSVs): private, whole, and never through a link.

Issue #11: a CSV holds what the 0600 ledger holds (asset ids, titles, what was done), so it is created 0600
on POSIX; it is written to a temporary file beside the target and renamed into place, so a planted symlink
is never followed and a reader never sees half a file; a target another program holds open (Excel on
Windows locks the files it shows) is a clear error, not a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, NoReturn

from .errors import OutputRefused

STDOUT = "-"

# Issue #18: antivirus, OneDrive's upload and Excel hold a file shortly after it appears or while it is shown;
# a rename over it fails with a sharing violation (PermissionError) until they let go.
RENAME_TRIES = 10
RENAME_PAUSE = 0.1


def closed_stream(exc: BaseException) -> bool:
    """A write failed because the stream's reader went away: BrokenPipeError (EPIPE) on POSIX; on Windows a closed
    pipe (`reversesync report --csv - | more`, then q) raises OSError(EINVAL) instead (issue #18)."""
    return isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.EINVAL)


def reraise_closed(exc: OSError) -> NoReturn:
    """Raise exc again, a closed stream as the BrokenPipeError every caller stops on as on Ctrl-C (exit 130)."""
    if closed_stream(exc) and not isinstance(exc, BrokenPipeError):
        raise BrokenPipeError(errno.EPIPE, f"the output stream was closed ({exc.strerror or exc})") from exc
    raise exc


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
def private_output(path: str, bom: bool = False, stdout: IO[str] | None = None,
                   sleep: Callable[[float], Any] = time.sleep) -> Iterator[IO[str]]:
    """A text handle for writing `path` (UTF-8, newline=''), or standard output when path is '-'.

    A file is written to a temporary 0600 file in the same folder and renamed over `path` only when the
    block ends without an error; on an error the temporary file is removed and `path` is left as it was.
    bom=True starts a file with a UTF-8 byte-order mark, which Excel needs to read Korean titles; standard
    output never gets one (a pipe or a terminal wants plain UTF-8), nor a \r added to each line's \r\n.
    sleep: how a rename that another program blocks for a moment waits before trying again.
    """
    if path == STDOUT:
        with _untranslated(stdout if stdout is not None else sys.stdout) as stream:
            yield stream
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
        _replace(temporary, path, sleep)
    except BaseException:
        _remove_quietly(temporary)
        raise


def _replace(temporary: str, path: str, sleep: Callable[[float], Any] = time.sleep) -> None:
    """Rename the finished temporary file over path; a target held for a moment (a sharing violation on Windows:
    antivirus, OneDrive, Excel) is tried again for about a second before the command gives up (issue #18)."""
    for tries in range(1, RENAME_TRIES + 1):
        try:
            os.replace(temporary, path)  # a rename: it replaces a symlink itself, never the file it points to
            return
        except PermissionError:
            if tries == RENAME_TRIES:
                raise OutputRefused(
                    f"cannot replace {path}: another program has it open, or it is read-only. If "
                    "Excel shows it, close it in Excel and run the command again.") from None
            sleep(RENAME_PAUSE)
        except OSError as exc:
            raise OutputRefused(f"cannot write {path}: {exc.strerror}.") from None


@contextlib.contextmanager
def _untranslated(stream: IO[str]) -> Iterator[IO[str]]:
    """The stream, written as csv writes it: CSV's \r\n must not become \r\r\n where the stream turns \n into
    \r\n (a Windows console or pipe, issue #18). Its bytes go to its binary buffer in its own encoding through a
    text layer with newline=''; a stream without a buffer (a test's StringIO, no stdout at all) is used as it is.
    A reader that went away is a BrokenPipeError, whatever the platform called it."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        yield stream
        _flush(stream)
        return
    _flush(stream)  # whatever it holds goes first
    handle = io.TextIOWrapper(_Borrowed(buffer), encoding=getattr(stream, "encoding", None) or "utf-8",
                              errors=getattr(stream, "errors", None) or "strict", newline="", write_through=True)
    try:
        yield handle
        _flush(handle)
    finally:
        with contextlib.suppress(OSError, ValueError):
            handle.close()  # closes only the borrowing layer, never the stream's own buffer


def _flush(stream: IO[str]) -> None:
    try:
        stream.flush()
    except OSError as exc:
        reraise_closed(exc)


class _Borrowed(io.RawIOBase):
    """Writes through to a buffer it does not own: closing it leaves the buffer open."""

    def __init__(self, buffer: IO[bytes]) -> None:
        super().__init__()
        self._buffer = buffer

    @property
    def name(self) -> Any:
        return getattr(self._buffer, "name", "<stdout>")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            self._buffer.write(data)
        except OSError as exc:
            reraise_closed(exc)
        return len(data)

    def flush(self) -> None:
        if self.closed:
            return
        try:
            self._buffer.flush()
        except OSError as exc:
            reraise_closed(exc)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
