"""Helpers for the label-editing tests: stores with labels, level checks, file digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import zarr

from napari_omezarr_x.write import add_labels, pyramid, write_image

VERSIONS = ["0.4", "0.5"]
SHAPE = (6, 150, 170)
CHUNKS = (1, 32, 32)


def blobs(shape: tuple[int, ...], count: int, seed: int, dtype=np.uint16) -> np.ndarray:
    """Labels 1..count as random boxes (overlapping ones overwrite each other)."""
    rng = np.random.default_rng(seed)
    data = np.zeros(shape, dtype=dtype)
    for value in range(1, count + 1):
        corner = [int(rng.integers(0, n)) for n in shape]
        size = [int(rng.integers(1, max(2, n // 3))) for n in shape]
        data[tuple(slice(c, c + s) for c, s in zip(corner, size, strict=True))] = value
    return data


def colors_of(values) -> dict[int, tuple[float, float, float, float]]:
    """A distinct colour per label value (0-1 RGBA)."""
    return {int(v): ((v * 37 % 255) / 255, (v * 91 % 255) / 255, 0.5, 1.0) for v in values}


def image_with_labels(
    path: Path, version: str, shards: bool | None, *, shape=SHAPE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """An image with two label images, `cells` (edited by tests) and `other`."""
    rng = np.random.default_rng(seed)
    write_image(
        path,
        rng.integers(0, 60000, shape).astype(np.uint16),
        axes="zyx",
        version=version,
        chunks=CHUNKS,
        shards=shards,
    )
    cells = blobs(shape, 25, seed)
    values = [v for v in np.unique(cells) if v]
    add_labels(
        path,
        cells,
        "cells",
        chunks=CHUNKS,
        shards=shards,
        colors=colors_of(values),
        properties=[{"label-value": int(v), "area": int((cells == v).sum())} for v in values],
    )
    other = blobs(shape, 5, seed + 1)
    add_labels(path, other, "other", chunks=CHUNKS, shards=shards)
    return cells, other


def levels(path: Path) -> list[np.ndarray]:
    """Every level of the multiscale image at `path`, read with plain zarr."""
    group = zarr.open_group(path, mode="r")
    attrs = group.attrs.asdict()
    ome = attrs.get("ome", attrs)
    return [group[d["path"]][:] for d in ome["multiscales"][0]["datasets"]]


def assert_consistent(path: Path, method: str = "mode") -> None:
    """Every level is exactly the writer's downsampling of the level before it."""
    arrays = levels(path)
    for k in range(1, len(arrays)):
        step = tuple(
            1 if m == n else 2 for n, m in zip(arrays[k - 1].shape, arrays[k].shape, strict=True)
        )
        expected = pyramid.downsample_block(arrays[k - 1], step, method)
        expected = expected[tuple(slice(0, n) for n in arrays[k].shape)]
        np.testing.assert_array_equal(arrays[k], expected, err_msg=f"level {k} of {path}")


def digests(path: Path) -> dict[str, str]:
    """sha256 of every file under `path`, by relative key."""
    return {
        f.relative_to(path).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(path.rglob("*"))
        if f.is_file()
    }


def save_one_edit(path: str, edit: tuple[int, ...], messages) -> None:
    """Child process of the kill tests: paint `edit` (z0, z1, y0, y1, x0, x1, value) and save.

    Sends ("save",) before saving, ("commit",) at the commit point and
    ("saved", seconds) at the end, so the parent can kill it at chosen moments.
    """
    import time

    from napari_omezarr_x.storage import journal
    from napari_omezarr_x.write import open_labels

    real_commit = journal.FolderUpdate.commit

    def commit(update):
        messages.send(("commit",))
        return real_commit(update)

    journal.FolderUpdate.commit = commit
    labels = open_labels(path)
    z0, z1, y0, y1, x0, x1, value = edit
    labels[z0:z1, y0:y1, x0:x1] = value
    messages.send(("save",))
    start = time.perf_counter()
    labels.save()
    messages.send(("saved", time.perf_counter() - start))


def drag(viewer, points) -> None:
    """A left-button drag over a shown viewer's canvas through world points (y, x),
    sent as real Qt mouse events (napari turns them into its own mouse callbacks)."""
    from qtpy.QtCore import QEvent, QPointF, Qt
    from qtpy.QtGui import QMouseEvent
    from qtpy.QtWidgets import QApplication

    canvas = viewer.window._qt_viewer.canvas.native
    camera = viewer.scene.camera
    cy, cx = camera.center[-2:]
    w, h = canvas.width(), canvas.height()
    pixels = [
        QPointF(w / 2 + (x - cx) * camera.zoom, h / 2 + (y - cy) * camera.zoom) for y, x in points
    ]
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton

    def send(kind, pos, button, buttons) -> None:
        event = QMouseEvent(
            kind, pos, canvas.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier
        )
        QApplication.sendEvent(canvas, event)

    send(QEvent.Type.MouseButtonPress, pixels[0], left, left)
    for pos in pixels[1:]:
        send(QEvent.Type.MouseMove, pos, none, left)
        QApplication.processEvents()
    send(QEvent.Type.MouseButtonRelease, pixels[-1], left, none)
    QApplication.processEvents()
