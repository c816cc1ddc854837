"""storage.journal: crash-safe updates of many files of one folder."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from napari_omezarr_x.errors import StoreAccessError
from napari_omezarr_x.storage import journal


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "0" / "c").mkdir(parents=True)
    (tmp_path / "0" / "c" / "1").write_bytes(b"old one")
    (tmp_path / "0" / "c" / "2").write_bytes(b"old two")
    (tmp_path / "zarr.json").write_text("{}")
    return tmp_path


def files(folder) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_committed_update_puts_and_deletes_and_leaves_no_trace(folder):
    with journal.FolderUpdate(folder, {"why": "test"}) as update:
        update.put("0/c/1", b"new one")
        update.put("0/c/3/4", b"a new file in a new folder")
        update.delete("0/c/2")
        update.delete("0/c/never-existed")
        assert update.size == 4
        assert update.commit() == 3
    assert files(folder) == {
        "0/c/1": b"new one",
        "0/c/3/4": b"a new file in a new folder",
        "zarr.json": b"{}",
    }


def test_leaving_without_commit_changes_nothing(folder):
    before = files(folder)

    def failing_save() -> None:
        with journal.FolderUpdate(folder) as update:
            update.put("0/c/1", b"new one")
            raise RuntimeError("the save failed")

    with pytest.raises(RuntimeError):
        failing_save()
    assert files(folder) == before
    assert not list(folder.glob(f"{journal.PREFIX}*"))


def test_replay_is_idempotent_after_a_crash_in_the_renames(folder):
    """A journal whose renames stopped half way is finished by `recover`, once."""
    staging = folder / f"{journal.PREFIX}1-dead"
    staging.mkdir()
    (staging / "000001").write_bytes(b"new two")  # 000000 was moved before the crash
    (folder / "0" / "c" / "1").write_bytes(b"new one")
    doc = {"version": 1, "put": [["000000", "0/c/1"], ["000001", "0/c/2"]], "delete": []}
    (staging / journal.JOURNAL).write_text(json.dumps(doc))
    assert [p["staging"] for p in journal.pending(folder)] == [staging.name]
    assert journal.unfinished(folder) == [(staging.name, True)]
    assert journal.recover(folder) == 1
    assert journal.recover(folder) == 0
    assert files(folder)["0/c/1"] == b"new one"
    assert files(folder)["0/c/2"] == b"new two"
    assert not staging.exists()


def test_uncommitted_staging_of_a_live_process_is_kept(folder):
    mine = folder / f"{journal.PREFIX}{os.getppid()}-live"
    mine.mkdir()
    journal.recover(folder)
    assert mine.exists()  # another live process may still be writing into it
    dead = folder / f"{journal.PREFIX}999999999-dead"
    dead.mkdir()
    journal.recover(folder)
    assert not dead.exists()


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", "", f"{journal.PREFIX}x/y"])
def test_keys_cannot_leave_the_folder(folder, key):
    with journal.FolderUpdate(folder) as update, pytest.raises(ValueError, match=r"key|staging"):
        update.put(key, b"x")


def test_a_damaged_journal_is_an_error_not_a_guess(folder):
    staging = folder / f"{journal.PREFIX}1-dead"
    staging.mkdir()
    (staging / journal.JOURNAL).write_text('{"put": "not a list"}')
    with pytest.raises(StoreAccessError, match="not an update journal"):
        journal.recover(folder)


def _hold_lock(folder, ready, release) -> None:
    with journal.folder_lock(folder):
        ready.set()
        release.wait(30)


def test_updates_of_one_folder_wait_for_each_other(folder):
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(folder, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with journal.folder_lock(folder, wait=False) as locked:
            assert not locked
    finally:
        release.set()
        holder.join(30)
    with journal.folder_lock(folder, wait=False) as locked:
        assert locked
