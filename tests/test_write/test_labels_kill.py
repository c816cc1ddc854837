"""A save of label edits killed (SIGKILL) at random moments never leaves a broken store."""

from __future__ import annotations

import multiprocessing
import signal

import numpy as np
import pytest

from label_edit_helpers import assert_consistent, blobs, levels, save_one_edit
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.spec.validate import validate_store
from napari_omezarr_x.storage import journal
from napari_omezarr_x.write import write_labels

#: Random kill moments per store format (the issue asks for 20).
KILLS = {"0.5": 20, "0.4": 10}
SHAPE = (4, 384, 384)


@pytest.fixture(scope="module")
def forkserver():
    """Children forked from a server that has already imported zarr and the writer."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["zarr", "numpy", "pytest", "napari_omezarr_x.write", "label_edit_helpers"]
    )
    return context


def _run(context, path, edit, kill_after: str | None, delay: float) -> tuple[str, float | None]:
    """Run one save; kill it `delay` seconds after the message `kill_after` (None: never)."""
    parent, child = context.Pipe()
    process = context.Process(target=save_one_edit, args=(str(path), edit, child))
    process.start()
    child.close()
    seen, took = "started", None
    try:
        while True:
            if not parent.poll(60):
                raise AssertionError(f"the save child said nothing for 60 s after {seen!r}")
            message = parent.recv()
            seen = message[0]
            if seen == "saved":
                took = message[1]
                break
            if seen == kill_after:
                if not parent.poll(delay):
                    process.kill()
                    break
                message = parent.recv()
                seen = message[0]
                if seen == "saved":
                    took = message[1]
                    break
                if seen == "commit" and kill_after == "save":
                    process.kill()
                    break
    except EOFError:
        pass
    process.join(30)
    # Saved to the end, or killed by us: anything else is a crash of the save itself.
    assert process.exitcode in (0, -signal.SIGKILL), f"save child exited {process.exitcode}"
    return seen, took


@pytest.mark.parametrize(("version", "shards"), [("0.4", None), ("0.5", True)])
def test_killed_saves_leave_old_or_new_labels_and_a_consistent_pyramid(
    tmp_path, forkserver, version, shards
):
    path = tmp_path / "labels.ome.zarr"
    state = blobs(SHAPE, 30, seed=7, dtype=np.uint32)
    write_labels(path, state, version=version, chunks=(1, 32, 32), shards=shards)
    rng = np.random.default_rng(11)

    def random_edit() -> tuple[int, ...]:
        z0 = int(rng.integers(0, SHAPE[0]))
        y0, x0 = (int(v) for v in rng.integers(0, 200, 2))
        return (z0, z0 + 1, y0, y0 + 180, x0, x0 + 180, int(rng.integers(0, 40)))

    # One save to the end: how long the whole save and its commit take here.
    edit = random_edit()
    _, took = _run(forkserver, path, edit, None, 0.0)
    assert took is not None
    z0, z1, y0, y1, x0, x1, value = edit
    state[z0:z1, y0:y1, x0:x1] = value

    outcomes = {"old": 0, "new": 0, "completed on open": 0}
    for i in range(KILLS[version]):
        edit = random_edit()
        new = state.copy()
        z0, z1, y0, y1, x0, x1, value = edit
        new[z0:z1, y0:y1, x0:x1] = value
        # Half the kills anywhere in the save, half inside its commit (the renames).
        after = "save" if i % 2 == 0 else "commit"
        window = took if after == "save" else took / 4
        _run(forkserver, path, edit, after, float(rng.uniform(0, window)))
        pending = bool(journal.pending(path))
        if pending:
            assert not validate_store(str(path)).valid
        (image,) = read_ome_zarr(str(path))  # the next open completes any pending save
        assert image.levels[0].shape == SHAPE
        assert not journal.unfinished(path)
        level0 = levels(path)[0]
        if np.array_equal(level0, new):
            outcomes["completed on open" if pending else "new"] += 1
            state = new
        else:
            np.testing.assert_array_equal(level0, state, err_msg=f"kill {i}: neither old nor new")
            assert not pending
            outcomes["old"] += 1
        assert_consistent(path)
    final = validate_store(str(path))
    assert final.valid, [e.message[-300:] for e in final.errors]
    assert sum(outcomes.values()) == KILLS[version]
    assert outcomes["old"] > 0  # kills early in a save left the previous labels
