"""Run one benchmark case in this (fresh) process and write its record as JSON.

Usage: ``python worker.py SPEC.json RESULT.json``. Running each case in its own process
makes the peak RSS (``getrusage``) that of one tool alone.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

# Our engine is chosen by the environment at first use: set it before anything opens a store.
ENGINE_ENV = "NAPARI_OMEZARR_X_ENGINE"

import zarr  # noqa: E402
from iostats import peak_rss_mb, rss_mb, tree_stats  # noqa: E402

# Imported before the baseline RSS is taken, so "peak - baseline" is the work, not the imports.
PRELOAD = {
    "ours": ["napari_omezarr_x.write"],
    "ome-zarr-py": ["ome_zarr.writer"],
    "ngff-zarr": ["ngff_zarr"],
    "zarr-ceiling": [],
    "blosc-limit": ["numcodecs"],
}


def run_save(spec: dict) -> dict:
    """Write the pyramid with one tool and measure time, memory and output."""
    import save

    for module in PRELOAD[spec["tool"]]:
        importlib.import_module(module)
    src = zarr.open_array(spec["src"], mode="r")
    baseline = rss_mb()
    cpu = time.process_time()
    start = time.perf_counter()
    extra = save.TOOLS[spec["tool"]](spec["kind"], spec["src"], spec["out"], spec["params"])
    wall = time.perf_counter() - start
    # The limit times its blosc calls only (loading the chunks is not part of it).
    wall = extra.pop("wall_s", wall)
    cpu = extra.pop("cpu_s", time.process_time() - cpu)
    peak = peak_rss_mb()
    if Path(spec["out"]).exists():
        written = tree_stats(spec["out"])
    else:  # the blosc limit writes nothing: what it encoded stands for the output
        written = {"bytes_written": extra.get("encoded_bytes", 0), "files_written": 0}
    return {
        "levels": None,
        **written,
        **extra,
        "wall_s": wall,
        # CPU seconds of all threads: steadier than wall time when other processes compete.
        "cpu_s": cpu,
        "input_shape": list(src.shape),
        "input_dtype": str(src.dtype),
        "input_bytes": src.nbytes,
        "mb_per_s": src.nbytes / wall / 1e6,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "peak_delta_mb": peak - baseline,
    }


def run_open(spec: dict) -> dict:
    """Open a store with one reader plugin (directly, or in a shown viewer)."""
    import opening

    function = opening.viewer if spec["area"] == "viewer" else opening.reader
    return function(spec["tool"], spec["store"], spec["params"])


def run_read(spec: dict) -> dict:
    """Planes, a scrub and the lowest level with one reader (or blosc's limit for them)."""
    import reading

    if spec["tool"] == "blosc-limit":
        function = reading.limit
    elif spec["area"] == "read-viewer":
        function = reading.viewer
    else:
        function = reading.reader
    record = function(spec["tool"], spec["store"], spec["params"])
    record["chunking"] = spec["params"].get("chunking")
    return record


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    record = {key: spec[key] for key in ("case", "area", "tool", "kind") if key in spec}
    record["params"] = spec.get("params", {})
    engine = record["params"].get("engine")
    if engine:
        os.environ[ENGINE_ENV] = engine
    try:
        if spec["area"] == "labels-edit":
            import labels_edit

            runner = labels_edit.run_case
        elif "src" in spec:
            runner = run_save
        elif spec["area"].startswith("read"):
            runner = run_read
        else:
            runner = run_open
        record.update(runner(spec))
        record["ok"] = True
    except Exception as exc:
        record.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    record["peak_rss_mb"] = record.get("peak_rss_mb", peak_rss_mb())
    Path(sys.argv[2]).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
