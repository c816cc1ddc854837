"""Time z steps in a shown napari viewer: from a step until every layer shows the new plane.

    xvfb-run -a -s "-screen 0 1400x1000x24" .venv/bin/python benchmarks/viewer_steps.py \\
        STORE [--delay 0.1] [--async] [--steps 6] [--plugin napari-ome-zarr]

STORE is a local store; with --delay it is served by latency_server.py (in this process's
thread) adding that many seconds per request. The window is 1200 x 900; steps are timed
zoomed out (napari picks a level showing the whole plane) and zoomed in 4x (full
resolution, the middle of the plane), each on planes not visited before (z advances by the
shown level's z factor, since neighbouring planes of a halved level are the same plane).
Prints one JSON record: median seconds per step, the level napari used, the region it
read (napari widens it to whole dask blocks) and the dask blocks of one plane at that
level. Run it with PYTHONPATH pointing at another checkout's src to compare versions on
the same store.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--delay", type=float, default=None, help="serve over HTTP with it")
    parser.add_argument("--async", dest="async_", action="store_true", help="async slicing")
    parser.add_argument("--steps", type=int, default=6, help="z steps timed per zoom")
    parser.add_argument("--plugin", default="napari-omezarr-x", help="reader plugin to open with")
    args = parser.parse_args()

    from napari.settings import get_settings

    get_settings().experimental.async_ = args.async_
    import napari
    from qtpy.QtWidgets import QApplication

    target = str(args.store)
    if args.delay is not None:
        from latency_server import make_server

        server = make_server(str(args.store.parent), args.delay)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        target = f"http://127.0.0.1:{server.server_address[1]}/{args.store.name}"
    view = napari.Viewer(show=True)
    app = QApplication.instance()
    view.window._qt_window.resize(1200, 900)

    def settle(timeout: float = 60) -> None:
        ends = time.perf_counter() + timeout
        while time.perf_counter() < ends:
            app.processEvents()
            if all(layer.loaded for layer in view.layers):
                return
            time.sleep(0.002)

    def steps(first: int) -> float:
        # Step by the displayed level's z factor, so that every step needs a plane not read yet.
        layer = view.layers[0]
        stride = max(1, round(float(layer.downsample_factors[layer.data_level][0])))
        times = []
        for z in range(first, first + stride * args.steps, stride):
            began = time.perf_counter()
            view.dims.set_current_step(0, z)
            settle()
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    def where() -> dict:
        layer = view.layers[0]
        level = layer.data[layer.data_level]
        corners = layer.corner_pixels
        return {
            "level": int(layer.data_level),
            "region": [int(v) for v in corners[1, -2:] - corners[0, -2:] + 1],
            "blocks_per_plane": int(level[(0,) * (level.ndim - 2)].npartitions),
        }

    began = time.perf_counter()
    view.open(target, plugin=args.plugin)
    settle()
    record: dict = {"open_s": time.perf_counter() - began, "layers": len(view.layers)}
    view.dims.set_current_step(0, 0)
    view.reset_view()
    settle()
    out = steps(1)
    record["out"] = {"step_s": out, **where()}
    view.camera.zoom *= 4
    settle()
    record["in"] = {"step_s": steps(view.dims.current_step[0] + 1), **where()}
    print(json.dumps(record))
    view.close()


if __name__ == "__main__":
    main()
