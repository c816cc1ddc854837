"""Crash-safe updates of many files of one local folder: a small redo journal.

Saving label edits replaces a few dozen chunk files across the levels of a
label image, and the levels must agree with each other. Each new file is first
written in full (and flushed to disk) into a hidden staging folder inside the
folder being updated, `.omezarrx-update-<pid>-<token>/` (as numbered files).
The list of files to put (staged name, target key) and to delete is then
written atomically as `journal.json` in that folder: that is the commit point.
Only then are the staged files renamed over their targets, one atomic rename
each, and the deletions done.

- Killed before the commit point, the folder is untouched; the staging folder
  is removed by the next update or recovery (once its process is gone).
- Killed after it, every file is either its old or its new version, and
  `recover` (run by the next update, by opening the labels for editing and by
  the reader) replays the journal, which ends exactly as the interrupted update
  would have. Replaying is idempotent: a staged file already moved is skipped.
- `pending` lists committed journals not yet applied (what `validate` reports).

Updates of one folder are serialised with an advisory lock on the folder
(`flock`), so two processes never interleave their renames.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from napari_omezarr_x.errors import StoreAccessError

from .atomic import _alive, write_file

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux or macOS
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: Name prefix of the staging folders (hidden, so zarr and NGFF readers skip them).
PREFIX = ".omezarrx-update-"
#: The commit record inside a staging folder.
JOURNAL = "journal.json"
#: How long an update waits for another process's update of the same folder.
LOCK_TIMEOUT = 120.0


def _check_key(key: str) -> str:
    """A relative key inside the folder, refusing anything that could escape it."""
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{key!r} is not a relative file key")
    if parts[0].startswith(PREFIX):
        raise ValueError(f"{key!r} lies inside a staging folder")
    return "/".join(parts)


@contextlib.contextmanager
def folder_lock(folder: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold the update lock of `folder`; yields False when `wait` is off and it is taken."""
    if fcntl is None:
        yield True
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                if time.monotonic() > deadline:
                    raise StoreAccessError(
                        f"{folder}: another save of this folder has been running for "
                        f"{LOCK_TIMEOUT:.0f} s; try again when it has finished"
                    ) from None
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _staging_folders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.name.startswith(PREFIX) and p.is_dir())
    except OSError:
        return []


def _owner(staging: Path) -> int | None:
    pid = staging.name[len(PREFIX) :].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def read_journal(staging: Path) -> dict[str, Any] | None:
    """The committed journal of a staging folder, or None when it was never committed."""
    try:
        doc = json.loads((staging / JOURNAL).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        # journal.json is written atomically, so it is whole or absent; anything
        # else is damage from outside that must not be guessed around.
        raise StoreAccessError(f"{staging / JOURNAL}: unreadable update journal ({exc})") from exc
    puts = doc.get("put") if isinstance(doc, dict) else None
    if not isinstance(puts, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in puts
    ):
        raise StoreAccessError(f"{staging / JOURNAL}: not an update journal")
    return doc


def pending(folder: Path) -> list[dict[str, Any]]:
    """Committed but not yet applied journals in `folder` (each with its `staging` name)."""
    found = []
    for staging in _staging_folders(folder):
        doc = read_journal(staging)
        if doc is not None:
            found.append({**doc, "staging": staging.name})
    return found


def unfinished(folder: Path) -> list[tuple[str, bool]]:
    """Staging folders in `folder`: (name, committed) for each, committed ones pending."""
    return [
        (staging.name, read_journal(staging) is not None) for staging in _staging_folders(folder)
    ]


def _apply(folder: Path, staging: Path, doc: Mapping[str, Any]) -> int:
    """Move every staged file of `doc` into place and do its deletions (idempotent)."""
    done = 0
    for staged, key in doc.get("put", []):
        key = _check_key(key)
        source, target = staging / _check_key(staged), folder / key
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            if not target.exists():
                raise StoreAccessError(
                    f"{folder}: journal {staging.name} lists {key} but neither the staged "
                    "nor the target file exists"
                ) from None
            continue  # moved before an interruption
        done += 1
    for key in doc.get("delete", []):
        target = folder / _check_key(str(key))
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
            done += 1
    return done


def _finish(staging: Path) -> None:
    """Drop a staging folder: the journal first, so a half-removed folder reads as uncommitted."""
    with contextlib.suppress(FileNotFoundError):
        (staging / JOURNAL).unlink()
    shutil.rmtree(staging, ignore_errors=True)


def _recover_locked(folder: Path) -> int:
    replayed = 0
    for staging in _staging_folders(folder):
        doc = read_journal(staging)
        if doc is not None:
            log.info("%s: completing the interrupted update %s", folder, staging.name)
            _apply(folder, staging, doc)
            _finish(staging)
            replayed += 1
        else:
            pid = _owner(staging)
            if pid is None or not _alive(pid) or pid == os.getpid():
                shutil.rmtree(staging, ignore_errors=True)
    return replayed


def recover(folder: Path, *, wait: bool = True) -> int:
    """Complete interrupted updates of `folder` and drop abandoned staging folders.

    Returns how many journals were replayed. With `wait` off, a folder whose
    lock is held (an update is running right now) is left alone.
    """
    if not _staging_folders(folder):
        return 0
    with folder_lock(folder, wait=wait) as locked:
        return _recover_locked(folder) if locked else 0


class FolderUpdate:
    """One crash-safe update of files of `folder` (a context manager).

    Inside the `with` block, `put` and `delete` stage changes; `commit` makes
    them real. Leaving the block without committing discards the staged files
    and leaves the folder as it was. `info` is stored in the journal for
    messages (for example which levels and regions change).
    """

    def __init__(self, folder: Path, info: Mapping[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.info = dict(info or {})
        self.staging: Path | None = None
        self._puts: list[list[str]] = []
        self._deletes: list[str] = []
        self._lock: contextlib.AbstractContextManager[bool] | None = None
        self.committed = False

    def __enter__(self) -> FolderUpdate:
        self._lock = folder_lock(self.folder)
        self._lock.__enter__()
        try:
            _recover_locked(self.folder)
            self.staging = self.folder / f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            self.staging.mkdir()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def put(self, key: str, data: bytes) -> None:
        """Stage `data` as the new content of the file `key`."""
        assert self.staging is not None, "use FolderUpdate as a context manager"
        key = _check_key(key)
        # Staged files are numbered in one flat folder: no sub-folders to make or remove.
        staged = f"{len(self._puts):06d}"
        with open(self.staging / staged, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._puts.append([staged, key])

    def delete(self, key: str) -> None:
        """Stage the removal of the file `key` (nothing happens if it does not exist)."""
        self._deletes.append(_check_key(key))

    @property
    def size(self) -> int:
        """Number of staged changes."""
        return len(self._puts) + len(self._deletes)

    def commit(self) -> int:
        """Write the journal (the commit point), apply it and clean up; files changed."""
        assert self.staging is not None, "use FolderUpdate as a context manager"
        doc = {"version": 1, "put": self._puts, "delete": self._deletes, "info": self.info}
        write_file(self.staging / JOURNAL, json.dumps(doc, indent=1).encode("utf-8"))
        _fsync_dir(self.staging)
        self.committed = True
        done = _apply(self.folder, self.staging, doc)
        _finish(self.staging)
        return done

    def __exit__(self, *exc: object) -> None:
        try:
            if self.staging is not None and not self.committed:
                shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            assert self._lock is not None
            self._lock.__exit__(None, None, None)


def _fsync_dir(path: Path) -> None:
    """Flush a folder's entries (the names of the staged files) to disk."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
