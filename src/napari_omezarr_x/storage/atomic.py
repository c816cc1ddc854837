"""Crash-safe replacement of folders and small files.

A store is built in a hidden sibling folder (`.<name>.partial-<pid>-<token>`)
and moved over the target only when complete. On Linux the move is one atomic
`renameat2(RENAME_EXCHANGE)`, so the target is never missing; elsewhere the old
folder is first renamed aside. A killed save leaves only a hidden partial
folder, removed by the next save to the same target.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from napari_omezarr_x.errors import ReadOnlyStoreError, StoreAccessError, StoreExistsError

log = logging.getLogger(__name__)

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def ensure_writable(path: Path, purpose: str) -> None:
    """Raise ReadOnlyStoreError unless entries can be created in `path`.

    `path` may not exist yet: its nearest existing ancestor is checked. A
    folder without any write permission bit counts as read-only even for root
    (who could write it, but whose user marked it so); a probe file catches
    read-only mounts and special file systems. `purpose` ends the message.
    """
    folder = path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise StoreAccessError(f"{path}: {folder} is a file, not a folder; {purpose}")
    mode = folder.stat().st_mode
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(folder, os.W_OK):
        raise ReadOnlyStoreError(f"{folder} is read-only: {purpose}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
    except OSError as exc:
        raise ReadOnlyStoreError(
            f"{folder} is not writable ({exc.strerror or exc}): {purpose}"
        ) from exc
    os.close(fd)
    os.unlink(probe)


def check_replaceable(target: Path, is_ome_zarr: Callable[[str], bool]) -> None:
    """Raise StoreExistsError unless `target` is absent, an empty folder or an OME-Zarr."""
    if not target.exists():
        return
    if not target.is_dir():
        raise StoreExistsError(f"{target}: exists and is not a folder; refusing to replace it")
    if any(target.iterdir()) and not is_ome_zarr(str(target)):
        raise StoreExistsError(
            f"{target}: exists and is not an OME-Zarr store; refusing to replace it"
        )


def staging_dir(target: Path) -> Path:
    """A new, empty hidden folder next to `target` to build its replacement in."""
    _remove_stale(target)
    staged = target.parent / f".{target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    staged.mkdir(parents=True)
    return staged


def _remove_stale(target: Path) -> None:
    """Delete partial folders left by killed saves to `target` (dead pids only)."""
    if not target.parent.is_dir():
        return
    for entry in target.parent.glob(f".{target.name}.partial-*"):
        pid = entry.name.rsplit(".partial-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            log.info("removing %s left by an interrupted save", entry)
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False when unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    res = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return res == 0


def move_into_place(staged: Path, target: Path) -> None:
    """Put the complete folder `staged` at `target`, replacing what was there."""
    if not target.exists():
        os.rename(staged, target)
        return
    if _exchange(staged, target):
        shutil.rmtree(staged, ignore_errors=True)
        return
    aside = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(target, aside)
    try:
        os.rename(staged, target)
    except OSError:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_file(path: Path, content: bytes, mode: int = 0o644) -> None:
    """Replace the file at `path` with `content` atomically (temp file + os.replace)."""
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
