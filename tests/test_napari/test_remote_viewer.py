"""A napari viewer on a failing HTTP server: never a stale plane, never a lost layer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from http_helpers import remote_options, serve_faults
from napari_omezarr_x._napari import guard
from napari_omezarr_x._napari.guard import GuardedArray
from napari_omezarr_x.errors import StoreAccessError
from napari_omezarr_x.read import lazy
from napari_omezarr_x.write import add_labels, write_image

PLUGIN = "napari-omezarr-x"
SHAPE = (2, 4, 128, 128)
FAST = {
    "connect_timeout": 1.0,
    "read_timeout": 0.4,
    "deadline": 1.0,
    "attempts": 2,
    "backoff": 0.01,
    "max_backoff": 0.02,
}


def plane_value(c: int, z: int) -> int:
    """Every plane holds one value, so a displayed slice says which (c, z) it is."""
    return 1000 * (c + 1) + 10 * z


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("remote-viewer")
    c, z = np.indices(SHAPE[:2])
    data = np.broadcast_to(plane_value(c, z)[..., None, None], SHAPE).astype("uint16")
    # z is not halved (z spacing 4), so every level has the same planes.
    write_image(
        folder / "img.ome.zarr", data, axes="czyx", scale=(1.0, 4.0, 1.0, 1.0),
        chunks=(1, 1, 32, 32), levels=2,
    )  # fmt: skip
    cells = np.zeros(SHAPE[1:], dtype="uint8")
    cells[:, 10:50, 10:50] = 1
    cells[:, 60:90, 70:120] = 2
    add_labels(folder / "img.ome.zarr", cells, "cells", colors={1: (1.0, 0.0, 0.0, 1.0)})
    return folder


@pytest.fixture
def notices():
    """Error notifications napari shows, as text."""
    shown: list[str] = []

    def keep(event) -> None:
        shown.append(str(event.message if hasattr(event, "message") else event))

    notification_manager.notification_ready.connect(keep)
    guard.REPORTER.__init__()  # a fresh quiet period for every test
    yield shown
    notification_manager.notification_ready.disconnect(keep)


@pytest.fixture(autouse=True)
def fast_settings(monkeypatch):
    # One plane of one channel per dask block, as for a 2048 x 2048 uint16 image;
    # with the default budget this small image would be read whole at once.
    monkeypatch.setattr(lazy, "REMOTE_BLOCK_BYTES", SHAPE[2] * SHAPE[3] * 2)
    monkeypatch.setattr(lazy, "WHOLE_BYTES", SHAPE[2] * SHAPE[3] * 2)
    with remote_options(**FAST):
        yield


def shown_values(layer) -> set[int]:
    return {int(v) for v in np.unique(layer._slice.image.raw)}


def settle(viewer, qtbot) -> None:
    """Wait until no slice is pending, so that nothing reads once the server is gone."""
    qtbot.waitUntil(lambda: all(layer.loaded for layer in viewer.layers), timeout=10000)
    viewer._layer_slicer.wait_until_idle(timeout=10)
    qtbot.wait(50)


def go_to(viewer, qtbot, z: int, expected: dict[int, set[int]]) -> None:
    """Step to plane z and wait until every layer shows what `expected` says."""
    viewer.dims.set_current_step(0, z)

    def settled() -> None:
        for index, values in expected.items():
            assert shown_values(viewer.layers[index]) == values

    qtbot.waitUntil(settled, timeout=10000)


def test_failed_chunk_blanks_its_layer_only_and_never_shows_another_z(
    make_napari_viewer, qtbot, store, slicing, notices
):
    viewer = make_napari_viewer(show=True)  # notices wait for a shown window
    with serve_faults(store) as (base, plan):
        layers = viewer.open(f"{base}/img.ome.zarr", plugin=PLUGIN)
        assert len(layers) == 3  # two channels and the labels
        go_to(viewer, qtbot, 1, {0: {plane_value(0, 1)}, 1: {plane_value(1, 1)}})
        # Channel 1, plane 2 cannot be read at any level.
        plan.add("*/c/1/2/*", 403, times=None)
        go_to(viewer, qtbot, 2, {0: {plane_value(0, 2)}, 1: {0}})
        assert len(notices) == 1
        assert "shown blank" in notices[0]
        assert "HTTP 403" in notices[0]
        go_to(viewer, qtbot, 3, {0: {plane_value(0, 3)}, 1: {plane_value(1, 3)}})
        go_to(viewer, qtbot, 2, {0: {plane_value(0, 2)}, 1: {0}})
        assert len(notices) == 1  # the same failure again: counted, not notified
        # The server recovers: the plane is read again, nothing blank was cached.
        plan.faults.clear()
        go_to(viewer, qtbot, 1, {0: {plane_value(0, 1)}, 1: {plane_value(1, 1)}})
        go_to(viewer, qtbot, 2, {0: {plane_value(0, 2)}, 1: {plane_value(1, 2)}})
        settle(viewer, qtbot)


def test_opening_with_a_failing_first_plane_adds_every_layer(
    make_napari_viewer, qtbot, store, slicing, notices
):
    viewer = make_napari_viewer(show=True)  # notices wait for a shown window
    with serve_faults(store) as (base, plan):
        plan.add("*/c/0/*", 503, times=None)  # channel 0 unreadable everywhere
        plan.add("*/labels/cells/*/c/*", 503, times=None)  # and the labels
        with pytest.warns(UserWarning, match="cannot read the smallest level") as warned:
            layers = viewer.open(f"{base}/img.ome.zarr", plugin=PLUGIN)
        messages = " ".join(str(w.message) for w in warned)
        assert "cannot read the smallest level for contrast limits" in messages
        assert "list label values" in messages
        assert [layer.name for layer in layers] == [layer.name for layer in viewer.layers]
        assert len(viewer.layers) == 3
        assert tuple(viewer.layers[0].contrast_limits) == (0, 65535)
        z = viewer.dims.current_step[0]
        qtbot.waitUntil(lambda: shown_values(viewer.layers[1]) == {plane_value(1, z)})
        qtbot.waitUntil(lambda: shown_values(viewer.layers[0]) == {0})
        qtbot.waitUntil(lambda: shown_values(viewer.layers[2]) == {0})
        # One notice per kind of failure and store, not one per layer or plane.
        assert len(notices) == 1
        assert "HTTP 503" in notices[0]
        assert "2 attempts" in notices[0]
        settle(viewer, qtbot)


def test_opening_a_hung_store_ends_at_the_deadline(make_napari_viewer, store):
    viewer = make_napari_viewer(show=True)  # notices wait for a shown window
    with serve_faults(store) as (base, plan):
        plan.add("*/img.ome.zarr/zarr.json", "hang", times=None)
        plan.add("*/img.ome.zarr/.zattrs", "hang", times=None)
        started = time.monotonic()
        with pytest.raises(Exception, match="read timeout"):
            viewer.open(f"{base}/img.ome.zarr", plugin=PLUGIN)
        assert time.monotonic() - started < 3.0
    assert len(viewer.layers) == 0


def test_reads_outside_napari_slicing_still_raise(make_napari_viewer, store):
    viewer = make_napari_viewer(show=True)  # notices wait for a shown window
    with serve_faults(store) as (base, plan):
        layers = viewer.open(f"{base}/img.ome.zarr", plugin=PLUGIN)
        data = layers[1].data[0]
        assert isinstance(data, GuardedArray)
        # napari gets one block per chunk (it widens a view to whole blocks).
        assert data.chunksize == (1, 32, 32)
        plan.add("*/c/1/3/*", 403, times=None)
        # A writer or a script must never receive a blank plane as data.
        with pytest.raises(StoreAccessError, match="HTTP 403"):
            np.asarray(data[3])
        assert data.unguarded[2].compute().max() == plane_value(1, 2)
