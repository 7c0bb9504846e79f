"""Where a ledger may live (issue #18): one ledger, in one place, on a local disk.

- The default ledger (`./reversesync.db`, no --ledger, no REVERSESYNC_LEDGER) is refused in a system folder: a
  scheduled task starts in C:\\Windows\\System32 (a service on POSIX in /), and a ledger made there would be a second
  one, whose lock the hand runs never see.
- A ledger on a network share, a remote drive or under OneDrive is refused unless the user allows it: SQLite's WAL
  journal keeps its index in shared memory (the -shm file), which works on one machine only, and a sync client
  uploads the ledger and its -wal separately. Allowed, the ledger is kept without WAL (journal_mode=DELETE).
- SQLite URIs are built by quoting the absolute path, never with Path.as_uri() (`file://nas01/...` is refused by
  SQLite as an authority; `\\\\?\\` long paths fail the same way).

The machine is described by a Host, so that the Windows rules run on Linux in the tests: a fake one says it is
Windows, with its own environment, drive types and mounts. Only THIS_HOST asks the real machine.
"""

from __future__ import annotations

import dataclasses
import ntpath
import os
import posixpath
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from ..errors import LedgerPlace

DRIVE_REMOTE = 4  # GetDriveTypeW: a network drive (a mapped letter)
# Mounts that are another machine's disk (psutil's fstype, from /proc/self/mounts on Linux, getfsstat on macOS).
REMOTE_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "afpfs", "webdav"})
ONEDRIVE_VARIABLES = ("OneDrive", "OneDriveCommercial", "OneDriveConsumer")
WINDOWS_EXAMPLE = r"C:\reversesync\reversesync.db"
POSIX_EXAMPLE = "/var/lib/reversesync/reversesync.db"


class Host(Protocol):
    """What the place rules ask of the machine."""

    @property
    def windows(self) -> bool: ...

    @property
    def env(self) -> Mapping[str, str]: ...

    def drive_type(self, root: str) -> int:
        """GetDriveTypeW of a drive root such as 'Z:\\' (Windows only)."""

    def mounts(self) -> Sequence[tuple[str, str]]:
        """(mount point, filesystem type) of every mount (POSIX only)."""


def _windows_drive_type(root: str) -> int:
    import ctypes

    return int(ctypes.windll.kernel32.GetDriveTypeW(ctypes.c_wchar_p(root)))  # type: ignore[attr-defined]


def _mounts() -> list[tuple[str, str]]:
    import psutil

    return [(part.mountpoint, part.fstype) for part in psutil.disk_partitions(all=True)]


@dataclasses.dataclass(frozen=True)
class _ThisHost:
    windows: bool = os.name == "nt"
    env: Mapping[str, str] = dataclasses.field(default_factory=lambda: os.environ)
    drive_type: Callable[[str], int] = _windows_drive_type
    mounts: Callable[[], Sequence[tuple[str, str]]] = _mounts


THIS_HOST: Host = _ThisHost()


# --- SQLite URIs ---------------------------------------------------------------------------------------------


def plain_windows_path(path: str) -> str:
    r"""A Windows path without its `\\?\` or `\\.\` prefix: `\\?\C:\x` is `C:\x`, `\\?\UNC\srv\sh` is `\\srv\sh`."""
    for prefix in ("\\\\?\\", "//?/", "\\\\.\\", "//./"):  # long paths, the device namespace
        if path.startswith(prefix):
            rest = path[len(prefix):]
            return "\\\\" + rest[4:] if rest[:4].upper() in ("UNC\\", "UNC/") else rest
    return path


def sqlite_uri(path: str, windows: bool) -> str:
    """The SQLite URI of an absolute path, with an empty authority and the path percent-encoded (UTF-8), so that
    spaces, `#`, `%`, `?` and Hangul survive: `C:\\a b\\제작.db` is `file:///C:/a%20b/%EC%A0%9C%EC%9E%91.db`, the
    UNC path `\\\\nas01\\share\\r.db` is `file:////nas01/share/r.db` (SQLite passes `//nas01/...` to Windows)."""
    if windows:
        slashed = plain_windows_path(path).replace("\\", "/")
        if slashed.startswith("//"):
            return "file://" + urllib.parse.quote(slashed, safe="/")
        return "file:///" + urllib.parse.quote(slashed.lstrip("/"), safe="/:")
    # POSIX names are bytes: one that is not UTF-8 (surrogate-escaped by Python) goes as its own bytes.
    return "file://" + urllib.parse.quote(path.encode("utf-8", "surrogateescape"), safe="/")


# --- the default ledger's folder -----------------------------------------------------------------------------


def system_folder(folder: str, host: Host = THIS_HOST) -> bool:
    """True for %SystemRoot% and every folder below it (C:\\Windows\\System32, where Task Scheduler starts a task),
    and for / on POSIX (where a service starts)."""
    if not host.windows:
        return posixpath.normpath(folder) == "/"
    root = host.env.get("SystemRoot") or host.env.get("windir") or "C:\\Windows"
    return _under(folder, root, windows=True)


def check_default_place(path: str, host: Host = THIS_HOST) -> None:
    """Refuse a ledger the user did not place (no --ledger, or a relative one) in a system folder."""
    folder = (ntpath if host.windows else posixpath).dirname(path)
    if not system_folder(folder, host):
        return
    example = WINDOWS_EXAMPLE if host.windows else POSIX_EXAMPLE
    raise LedgerPlace(
        f"will not keep the ledger in the system folder {folder}: a scheduled task starts there, and a ledger made "
        "there would be a second one, which does not see the lock of your hand runs. Give the ledger one absolute "
        f"path, the same for the hand runs and the task: --ledger {example}, or set REVERSESYNC_LEDGER to it.")


# --- network, remote and synced folders ----------------------------------------------------------------------


def remote_place(path: str, host: Host = THIS_HOST) -> str | None:
    """Why path is not on a local disk ("on the network share \\\\nas01\\share", "under OneDrive (C:\\...)"), or None.
    On POSIX only a mount whose filesystem is a network one counts (and OneDrive folders)."""
    onedrive = _under_onedrive(path, host)
    if host.windows:
        plain = plain_windows_path(path)
        drive = ntpath.splitdrive(plain)[0]
        if drive.startswith(("\\\\", "//")):
            return f"on the network share {drive}"
        if drive and _drive_type(drive + "\\", host) == DRIVE_REMOTE:
            return f"on the network drive {drive}"
    else:
        mount = _mount_of(path, host)
        if mount and mount[1] in REMOTE_FILESYSTEMS:
            return f"on a network file system ({mount[1]} at {mount[0]})"
    return onedrive


def check_local_place(path: str, allowed: bool, host: Host = THIS_HOST) -> str | None:
    """Refuse a ledger that is not on a local disk unless allowed; returns why it is not (None when it is local)."""
    where = remote_place(path, host)
    if where is None or allowed:
        return where
    example = WINDOWS_EXAMPLE if host.windows else POSIX_EXAMPLE
    raise LedgerPlace(
        f"will not use the ledger {path} {where}: SQLite's WAL journal works on one machine only, and another PC "
        "or a sync client (uploading the ledger, its -wal and -shm files apart, making conflict copies) can lose "
        f"what was committed. Keep it on a local disk (--ledger {example}), or, if only one machine ever uses it, "
        "give --allow-network-ledger (or set REVERSESYNC_ALLOW_NETWORK_LEDGER=1): it is then kept without WAL.")


def _under_onedrive(path: str, host: Host) -> str | None:
    for name in ONEDRIVE_VARIABLES:
        root = host.env.get(name)
        if root and _under(path, root, host.windows):
            return f"under OneDrive ({root})"
    module = ntpath if host.windows else posixpath
    parts = module.normpath(plain_windows_path(path) if host.windows else path).replace("\\", "/").split("/")
    folder = next((part for part in parts[:-1] if part.lower().startswith("onedrive")), None)
    return f"under OneDrive (a folder named {folder})" if folder else None


def _under(path: str, root: str, windows: bool) -> bool:
    """path is root or below it (case-insensitive on Windows, where `\\\\?\\` prefixes do not count)."""
    if windows:
        path, root = (ntpath.normcase(ntpath.normpath(plain_windows_path(p))) for p in (path, root))
        return path == root or path.startswith(root.rstrip("\\") + "\\")
    path, root = posixpath.normpath(path), posixpath.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _drive_type(root: str, host: Host) -> int:
    try:
        return host.drive_type(root)
    except (ImportError, AttributeError, OSError, ValueError):
        return 0  # DRIVE_UNKNOWN: no way to ask, so no refusal on a guess


def _mount_of(path: str, host: Host) -> tuple[str, str] | None:
    """The mount holding path: the longest mount point it is under (its folder's real path, symlinks followed)."""
    try:
        mounts = list(host.mounts())
    except Exception:  # psutil could not read the mount table: leave the place alone
        return None
    real = os.path.realpath(os.path.dirname(path))
    under = [mount for mount in mounts if _under(real, mount[0], windows=False)]
    return max(under, key=lambda mount: len(mount[0])) if under else None
