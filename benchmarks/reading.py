"""Reading planes the way napari does, with each reader: one plane, a z scrub, the lowest level.

Every case opens the store in a fresh process and then, in order: one full-resolution
plane (channel 0, the middle z), a scrub through 10 consecutive z planes further up
(each plane computed on its own, as napari asks for one plane per step; the first
scrub plane lies in another chunk block than the middle plane), and channel 0's whole
lowest level. ``ours`` and ``napari-ome-zarr`` go through their napari reader's layer data;
``ome-zarr-py`` through ``ome_zarr.reader.Reader``; ``zarr-python`` indexes the level
arrays directly (no dask), with zarr's default pipeline or, for ``zarrs``, zarrs's.
``viewer`` shows the same planes in a napari viewer and times until each is drawn.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from pathlib import Path

import numpy as np
from iostats import StoreReadCounter

SCRUB = 10


def _levels_of(store: str) -> list[str]:
    attrs = json.loads((Path(store) / "zarr.json").read_text())["attributes"]
    return [d["path"] for d in attrs["ome"]["multiscales"][0]["datasets"]]


def open_levels(tool: str, store: str) -> tuple[list, str]:
    """The full-resolution to lowest level arrays of channel 0's layer, and the version."""
    if tool in ("ours", "napari-ome-zarr"):
        from opening import PLUGINS, get_reader_function

        layer_data = get_reader_function(tool)(store)(store)
        data = layer_data[0][0]
        levels = list(data) if isinstance(data, list | tuple) else [data]
        return levels, importlib.metadata.version(PLUGINS[tool])
    if tool == "ome-zarr-py":
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Reader

        nodes = list(Reader(parse_url(store))())
        return list(nodes[0].data), importlib.metadata.version("ome-zarr")
    import zarr

    if tool == "zarrs":
        zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})
        version = importlib.metadata.version("zarrs")
    else:
        version = importlib.metadata.version("zarr")
    return [zarr.open_array(f"{store}/{p}", mode="r") for p in _levels_of(store)], version


def plane_index(arr, z: int) -> tuple[int, ...]:
    """Channel 0 (when the layer keeps the channel axis), plane z."""
    return (0, z) if arr.ndim == 4 else (z,)


def channel0(arr) -> tuple:
    """Channel 0's whole volume (every reader's layer holds it; ours split channels)."""
    return (0,) if arr.ndim == 4 else (Ellipsis,)


def z_planes(shape: tuple[int, ...]) -> tuple[int, list[int]]:
    """The middle plane, and the scrub's planes (a quarter of the way up)."""
    depth = shape[-3]
    first = depth // 4
    return depth // 2, list(range(first, min(first + SCRUB, depth)))


def _timed(counter: StoreReadCounter, work) -> dict:
    counter.reset()
    cpu = time.process_time()
    start = time.perf_counter()
    work()
    return {
        "s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu,
        "reads": counter.snapshot(),
    }


def reader(tool: str, store: str, params: dict) -> dict:
    """Open, then time the plane, the scrub and the lowest level through one reader.

    A tiny store is opened and read first, so one-off imports are not timed.
    """
    from opening import tiny_store

    tiny = str(tiny_store(Path(params["warmup_dir"])))
    warm, _ = open_levels(tool, tiny)
    np.asarray(warm[-1][...])
    counter = StoreReadCounter((_levels_of(store)[0] + "/",), root=store)
    with counter:
        start = time.perf_counter()
        levels, version = open_levels(tool, store)
        open_s = time.perf_counter() - start
        level0, lowest = levels[0], levels[-1]
        middle, scrub = z_planes(level0.shape)
        plane = _timed(counter, lambda: np.asarray(level0[plane_index(level0, middle)]))
        walk = _timed(counter, lambda: [np.asarray(level0[plane_index(level0, z)]) for z in scrub])
        low = _timed(counter, lambda: np.asarray(lowest[channel0(lowest)]))
    return {
        "version": version,
        "open_s": open_s,
        "plane": plane,
        "scrub": walk,
        "lowest": low,
        "plane_shape": list(level0.shape[-2:]),
        "level0_chunks": list(getattr(level0, "chunksize", None) or level0.chunks),
    }


def limit(tool: str, store: str, params: dict) -> dict:
    """blosc alone decoding, once each, the chunks the three reads touch (all cores)."""
    import zarr
    from limits import decode_limit

    paths = _levels_of(store)
    level0 = zarr.open_array(f"{store}/{paths[0]}", mode="r")
    lowest = zarr.open_array(f"{store}/{paths[-1]}", mode="r")
    middle, scrub = z_planes(level0.shape)

    def region(z: int) -> tuple:
        return (0, z, slice(None), slice(None))

    record = {"version": importlib.metadata.version("numcodecs")}
    record["plane"] = decode_limit(level0, [region(middle)])
    record["scrub"] = decode_limit(level0, [region(z) for z in scrub])
    record["lowest"] = decode_limit(lowest, [(0,) + (slice(None),) * (lowest.ndim - 1)])
    for op in ("plane", "scrub", "lowest"):
        record[op]["s"] = record[op].pop("wall_s")
    return record


def viewer(tool: str, store: str, params: dict) -> dict:
    """Open in a shown viewer, then step z through the scrub planes; time until each is drawn."""
    import napari
    from opening import PLUGINS, _spin, _warm_up
    from qtpy.QtWidgets import QApplication

    view = napari.Viewer(show=True)
    app = QApplication.instance()
    _warm_up(view, tool, Path(params["warmup_dir"]))
    _spin(app, 1.0)
    draws: list[float] = []
    canvas = view.window._qt_viewer.canvas._scene_canvas
    canvas.events.draw.connect(lambda event: draws.append(time.perf_counter()))
    counter = StoreReadCounter((_levels_of(store)[0] + "/",), root=store)
    with counter:
        start = time.perf_counter()
        layers = view.open(store, plugin=PLUGINS[tool])
        first = _drawn(app, draws, start)
        _settle(app, draws)
        z_axis = view.dims.ndim - 3
        _, scrub = z_planes(layers[0].data[0].shape)
        steps = []
        counter.reset()
        scrub_start = time.perf_counter()
        for z in scrub:
            step_start = time.perf_counter()
            view.dims.set_current_step(z_axis, z)
            steps.append(_drawn(app, draws, step_start) - step_start)
        scrub_s = time.perf_counter() - scrub_start
        reads = counter.snapshot()
    level = layers[0].data_level
    view.close()
    return {
        "version": importlib.metadata.version(PLUGINS[tool]),
        "first_frame_s": first - start,
        "scrub": {"s": scrub_s, "reads": reads, "steps_s": steps},
        "data_level": level,
    }


def _drawn(app, draws: list[float], since: float, timeout: float = 30.0) -> float:
    """The time of the first canvas draw after `since` (events processed until then)."""
    deadline = since + timeout
    while time.perf_counter() < deadline:
        app.processEvents()
        later = [t for t in draws if t > since]
        if later:
            return later[0]
        time.sleep(0.001)
    raise RuntimeError(f"nothing drawn within {timeout} s")


def _settle(app, draws: list[float], quiet: float = 0.5, timeout: float = 10.0) -> None:
    """Wait until no draw happened for `quiet` seconds (napari redraws at its chosen level)."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if time.perf_counter() - max(draws[-1] if draws else 0.0, 0.0) > quiet:
            return
        time.sleep(0.005)
