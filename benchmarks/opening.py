"""Opening a store with a napari reader plugin: time to layer data, reads, first plane, first frame.

``reader`` calls the plugin's ``get_reader`` directly (local path or http URL); ``viewer`` opens
the store in a shown napari viewer (under Xvfb) and times the canvas's draw events.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
import urllib.request
from pathlib import Path

import numpy as np
from iostats import StoreReadCounter

PLUGINS = {"ours": "napari-omezarr-x", "napari-ome-zarr": "napari-ome-zarr"}


def get_reader_function(tool: str):
    """The plugin's ``get_reader`` hook (imported here, as napari would before calling it)."""
    if tool == "ours":
        from napari_omezarr_x._napari.reader import get_reader

        return get_reader
    from napari_ome_zarr._reader import napari_get_reader

    return napari_get_reader


def level0_prefixes(store: str) -> tuple[str, ...]:
    """Key prefixes of the root image's full-resolution array(s) in a local store."""
    root = Path(store)
    for name in ("zarr.json", ".zattrs"):
        if (root / name).exists():
            attrs = json.loads((root / name).read_text())
            attrs = attrs.get("attributes", attrs)
            multiscales = attrs.get("ome", attrs).get("multiscales") or []
            return tuple(m["datasets"][0]["path"].strip("/") + "/" for m in multiscales)
    return ()


def _server_stats(url: str | None) -> dict:
    if not url:
        return {}
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read())


def _delta(after: dict, before: dict, since: float) -> dict:
    """Counts between two stats snapshots, and the requests made (ms from ``since``)."""
    out = {key: after[key] - before[key] for key in ("requests", "bytes_sent", "not_found")}
    new = after["log"][len(before["log"]) :]
    out["log"] = [
        [path, round(1000 * (t0 - since)), round(1000 * (t1 - since)), status]
        for path, t0, t1, status in new
    ]
    return out


def _full_resolution_plane(layer_data) -> tuple:
    """The first layer's level-0 array and the index of its middle full-resolution plane."""
    data = layer_data[0][0]
    level0 = data[0] if isinstance(data, list | tuple) else data
    index = tuple(s // 2 for s in level0.shape[:-2])
    return level0, index


def reader(tool: str, store: str, params: dict) -> dict:
    """Time ``get_reader(path)(path)`` and one full-resolution plane through the layer data."""
    get_reader = get_reader_function(tool)
    # A first call on a tiny store pays one-off imports, as the first open in a napari session.
    tiny = str(tiny_store(Path(params["warmup_dir"])))
    tiny = params.get("warmup_url", tiny)
    start = time.perf_counter()
    get_reader(tiny)(tiny)
    first_call_s = time.perf_counter() - start
    stats_url = params.get("stats_url")
    local = params.get("local_store", store)
    counter = StoreReadCounter(level0_prefixes(local), root=local)
    with counter:
        server0 = _server_stats(stats_url)
        wall0 = time.time()
        start = time.perf_counter()
        layer_data = get_reader(store)(store)
        open_s = time.perf_counter() - start
        opened = counter.snapshot()
        server1 = _server_stats(stats_url)
        counter.reset()
        level0, index = _full_resolution_plane(layer_data)
        wall1 = time.time()
        start = time.perf_counter()
        plane = np.asarray(level0[index])
        plane_s = time.perf_counter() - start
        server2 = _server_stats(stats_url)
        fetched = counter.snapshot()
        steps = _z_steps(level0, index, int(params.get("z_steps", 0)))
    record = {
        "version": importlib.metadata.version(PLUGINS[tool]),
        "first_call_s": first_call_s,
        "open_s": open_s,
        "layers": len(layer_data),
        "open_reads": opened,
        "plane_s": plane_s,
        "plane_shape": list(plane.shape),
        "plane_reads": fetched,
        "load": list(os.getloadavg()),
    }
    if steps:
        record["z_steps_s"] = steps
    if stats_url:
        record["open_http"] = _delta(server1, server0, wall0)
        record["plane_http"] = _delta(server2, server1, wall1)
    return record


def _z_steps(level0, index: tuple, count: int) -> list[float]:
    """Seconds to read each of the `count` full-resolution planes after `index` along z."""
    times = []
    for step in range(1, count + 1):
        following = (*index[:-1], (index[-1] + step) % level0.shape[len(index) - 1])
        start = time.perf_counter()
        np.asarray(level0[following])
        times.append(time.perf_counter() - start)
    return times


def viewer(tool: str, store: str, params: dict) -> dict:
    """Time from ``viewer.open`` to the first and the last canvas draw showing the layers.

    napari draws while ``open`` is still running, so a frame counts once a layer has been
    inserted; the run waits until no draw happened for ``quiet`` seconds.
    """
    import napari
    from qtpy.QtWidgets import QApplication

    view = napari.Viewer(show=True)
    app = QApplication.instance()
    _warm_up(view, tool, Path(params["warmup_dir"]))
    _spin(app, 1.0)
    counter = StoreReadCounter(level0_prefixes(store), root=store)
    draws: list[tuple[float, dict]] = []
    inserted: list[float] = []
    scene_canvas = view.window._qt_viewer.canvas._scene_canvas
    scene_canvas.events.draw.connect(
        lambda event: draws.append((time.perf_counter(), counter.snapshot()))
    )
    view.layers.events.inserted.connect(lambda event: inserted.append(time.perf_counter()))
    quiet = float(params.get("quiet", 1.0))
    with counter:
        start = time.perf_counter()
        layers = view.open(store, plugin=PLUGINS[tool])
        opened = time.perf_counter()
        deadline = opened + float(params.get("timeout", 20))
        while time.perf_counter() < deadline:
            shown = inserted and any(t > inserted[0] for t, _ in draws)
            last = max(draws[-1][0] if draws else 0.0, opened)
            if shown and time.perf_counter() - last > quiet:
                break
            app.processEvents()
            time.sleep(0.002)
    view.close()
    frames = [(t, reads) for t, reads in draws if inserted and t > inserted[0]]
    if not frames:
        raise RuntimeError(
            f"no frame drawn within {params.get('timeout', 20)} s of opening {store}"
        )
    return {
        "version": importlib.metadata.version(PLUGINS[tool]),
        "layers": len(layers),
        "open_call_s": opened - start,
        "layer_added_s": inserted[0] - start,
        "first_frame_s": frames[0][0] - start,
        "first_frame_reads": frames[0][1],
        "settled_frame_s": frames[-1][0] - start,
        "settled_reads": frames[-1][1],
        "frames": len(frames),
    }


def tiny_store(folder: Path) -> Path:
    """A tiny two-level OME-Zarr (written by ome-zarr-py) for warming up a reader."""
    import dask.array as da
    import zarr
    from ome_zarr.writer import write_image

    store = folder / "warmup.ome.zarr"
    if not (store / "zarr.json").exists():
        data = da.zeros((2, 8, 64, 64), dtype="uint16", chunks=(1, 8, 64, 64))
        write_image(data, zarr.open_group(store, mode="w"), scale_factors=[2], axes="czyx")
    return store


def _warm_up(view, tool: str, folder: Path) -> None:
    """Open and close a tiny store first, so plugin discovery and imports are not timed."""
    view.open(str(tiny_store(folder)), plugin=PLUGINS[tool])
    view.layers.clear()


def _spin(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)
