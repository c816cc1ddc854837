"""The `labels-edit` area: paint a stroke into a huge, sparse label image and save it.

The input is a (z, y, x) uint32 label image written by our writer's own plan (default chunks
(1, 512, 512), its pyramid, blosc-zstd), created without a data pass: only the arrays and the
metadata are written, then 40 round objects are painted and saved in place, so the store holds
a few dozen chunk files however large it is. Each case runs in a fresh process and paints the
same stroke: 60 round dabs of radius 12 along a line in one plane, as a brush drag does.

- `ours-api`: `open_labels`, the stroke, `save()` (only what changed, pyramid recomputed).
- `ours-napari`: a shown napari viewer (Xvfb): open the store with our reader, pick the paint
  tool (the layer switches to the full-resolution level), drag the brush over the canvas with
  real Qt mouse events, then the *Save labels* action; the time to switch includes napari
  reading and colouring the displayed full-resolution plane.
- `zarr-ceiling`: plain zarr writes of the stroke's bounding box into level 0 only (no
  pyramid, no journal): the least any save of this edit can cost.
- `ours-full-rewrite` (`--full-rewrite`, minutes at full size): `write_labels` of the whole
  edited array, what saving without in-place updates costs.

Every case records wall times, the process's peak RSS and which files changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

SHAPE = (256, 8192, 8192)
QUICK_SHAPE = (32, 2048, 2048)
CASES = ("ours-api", "ours-napari", "zarr-ceiling")
FULL_REWRITE = "ours-full-rewrite"
OBJECTS = 40
DABS, RADIUS = 60, 12
LABEL = 41


def store_path(workdir: Path, shape: tuple[int, ...]) -> Path:
    return workdir / f"labels-edit-{'x'.join(map(str, shape))}.ome.zarr"


def ensure_store(workdir: Path, shape: tuple[int, ...]) -> str:
    """The sparse input store, made once: empty arrays plus objects saved in place."""
    path = store_path(workdir, shape)
    if (path / "zarr.json").exists():
        return str(path)
    import dask.array as da
    import zarr

    from napari_omezarr_x.write import open_labels
    from napari_omezarr_x.write.plan import create_arrays, make_plan

    staged = path.with_name(path.name + ".partial")
    shutil.rmtree(staged, ignore_errors=True)
    empty = da.zeros(shape, dtype=np.uint32, chunks=(1, *shape[1:]))
    plan = make_plan(
        "",
        empty,
        version="0.5",
        axes="zyx",
        name="cells",
        downsample="mode",
        label={"properties": [], "source": None},
        colors={},
    )
    create_arrays(staged, [plan])  # arrays only: every chunk reads as background
    zarr.open_group(str(staged), mode="a").attrs.update(plan.attrs(None))
    labels = open_labels(staged)
    rng = np.random.default_rng(5)
    for value in range(1, OBJECTS + 1):
        z = int(rng.integers(0, shape[0]))
        cy, cx = (int(v) for v in rng.integers(64, np.asarray(shape[1:]) - 64))
        yy, xx = np.mgrid[-40:41, -40:41]
        disk = yy**2 + xx**2 <= 40**2
        region = labels[z, cy - 40 : cy + 41, cx - 40 : cx + 41]
        region[disk] = value
        labels[z, cy - 40 : cy + 41, cx - 40 : cx + 41] = region
    labels.save()
    labels.close()
    os.rename(staged, path)
    return str(path)


def stroke(shape: tuple[int, ...]) -> tuple[int, list[tuple[int, int]]]:
    """The plane and the dab centres of the benchmark stroke."""
    z = shape[0] // 2
    y0, x0 = shape[1] // 3, shape[2] // 3
    return z, [(y0 + 2 * i, x0 + 5 * i) for i in range(DABS)]


def _dab(array, z: int, cy: int, cx: int) -> None:
    """One round brush dab written the way napari's brush does: read box, mask, write box."""
    box = (
        slice(z, z + 1),
        slice(cy - RADIUS, cy + RADIUS + 1),
        slice(cx - RADIUS, cx + RADIUS + 1),
    )
    region = np.asarray(array[box])
    yy, xx = np.mgrid[-RADIUS : RADIUS + 1, -RADIUS : RADIUS + 1]
    region[0][yy**2 + xx**2 <= RADIUS**2] = LABEL
    array[box] = region


def digests(path: str) -> dict[str, str]:
    out = {}
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, path)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def run_case(spec: dict) -> dict:
    """One case in this process (called by worker.py)."""
    from iostats import peak_rss_mb, rss_mb

    case = spec["case"]
    shape = tuple(spec["params"]["shape"])
    # Every case edits its own copy (a few files: the store is sparse).
    store = f"{spec['params']['out']}-{case}.ome.zarr"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(spec["store"], store)
    record: dict = {"input_shape": list(shape), "input_bytes": int(np.prod(shape)) * 4}
    before = digests(store)
    record["store_files"] = len(before)
    record["store_bytes"] = sum(
        os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(store) for f in fs
    )
    baseline = rss_mb()
    z, dabs = stroke(shape)
    timings = CASE_FUNCTIONS[case](store, spec["params"], z, dabs)
    record.update(timings)
    record["baseline_rss_mb"] = baseline
    record["peak_rss_mb"] = peak_rss_mb()
    if case != FULL_REWRITE:
        files = changed(before, digests(store))
        record["files_changed"] = len(files)
        record["changed"] = files[:40]
    shutil.rmtree(store, ignore_errors=True)
    return record


def _ours_api(store: str, params: dict, z: int, dabs: list) -> dict:
    from napari_omezarr_x.write import open_labels

    start = time.perf_counter()
    labels = open_labels(store)
    opened = time.perf_counter()
    for cy, cx in dabs:
        _dab(labels, z, cy, cx)
    painted = time.perf_counter()
    report = labels.save()
    saved = time.perf_counter()
    return {
        "open_s": opened - start,
        "stroke_s": painted - opened,
        "save_s": saved - painted,
        "written": report.written,
        "deleted": report.deleted,
    }


def _zarr_ceiling(store: str, params: dict, z: int, dabs: list) -> dict:
    import zarr

    start = time.perf_counter()
    level0 = zarr.open_array(os.path.join(store, "0"), mode="r+")
    opened = time.perf_counter()
    ys = [cy for cy, _ in dabs]
    xs = [cx for _, cx in dabs]
    box = (
        slice(z, z + 1),
        slice(min(ys) - RADIUS, max(ys) + RADIUS + 1),
        slice(min(xs) - RADIUS, max(xs) + RADIUS + 1),
    )
    region = level0[box]
    painted = time.perf_counter()
    yy, xx = np.mgrid[box[1], box[2]]
    for cy, cx in dabs:
        region[0][(yy - cy) ** 2 + (xx - cx) ** 2 <= RADIUS**2] = LABEL
    level0[box] = region
    saved = time.perf_counter()
    return {"open_s": opened - start, "stroke_s": 0.0, "save_s": saved - painted}


def _ours_napari(store: str, params: dict, z: int, dabs: list) -> dict:
    import napari
    from iostats import peak_rss_mb
    from qtpy.QtWidgets import QApplication

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from label_edit_helpers import drag  # the tests' real Qt mouse drag
    from napari_omezarr_x._napari import editing

    viewer = napari.Viewer(show=True)
    try:
        start = time.perf_counter()
        viewer.open(store, plugin="napari-omezarr-x")
        viewer.dims.set_current_step(0, z)
        QApplication.processEvents()
        opened = time.perf_counter()
        peak_open = peak_rss_mb()
        viewer.layers[-1].mode = "paint"  # the user picks the brush
        while editing.edits_of(viewer.layers[-1]) is None:
            QApplication.processEvents()
        layer = viewer.layers[-1]
        QApplication.processEvents()
        switched = time.perf_counter()
        layer.brush_size = 2 * RADIUS + 1
        layer.selected_label = LABEL
        ys = [cy for cy, _ in dabs]
        xs = [cx for _, cx in dabs]
        viewer.scene.camera.center = ((min(ys) + max(ys)) / 2, (min(xs) + max(xs)) / 2)
        viewer.scene.camera.zoom = 2.0
        QApplication.processEvents()
        zoomed = time.perf_counter()
        drag(viewer, [(float(cy), float(cx)) for cy, cx in dabs])
        painted = time.perf_counter()
        report = editing.save_layer(layer)
        saved = time.perf_counter()
    finally:
        viewer.close()
    return {
        "open_s": opened - start,
        "switch_s": switched - opened,
        "stroke_s": painted - zoomed,
        "save_s": saved - painted,
        "written": report.written,
        "deleted": report.deleted,
        "peak_rss_viewer_open_mb": peak_open,
    }


def _full_rewrite(store: str, params: dict, z: int, dabs: list) -> dict:
    from napari_omezarr_x.write import open_labels, write_labels

    labels = open_labels(store)
    for cy, cx in dabs:
        _dab(labels, z, cy, cx)
    out = f"{params['out']}-rewritten.ome.zarr"
    start = time.perf_counter()
    write_labels(out, labels, name="cells")
    saved = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    return {"open_s": 0.0, "stroke_s": 0.0, "save_s": saved - start}


CASE_FUNCTIONS = {
    "ours-api": _ours_api,
    "ours-napari": _ours_napari,
    "zarr-ceiling": _zarr_ceiling,
    FULL_REWRITE: _full_rewrite,
}
