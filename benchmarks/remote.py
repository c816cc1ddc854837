"""Remote reads: both reader plugins on one store behind the latency server, at several delays.

The store is written once by our writer with its default chunks (1, 1, 512, 512): a
(2, Z, 2048, 2048) uint16 image whose full-resolution plane is 16 chunks, the case of
issue 12 (run.py's --size picks another shape, for a quick check). For each delay one
`latency_server.py` process serves it; each reader opens it (`get_reader(url)(url)`),
reads the middle full-resolution plane through the layer data, then the next `Z_STEPS`
planes (a z scrub), each case in a fresh process.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DELAYS = (0.0, 0.02, 0.1)
Z_STEPS = 5
PLANE = (2048, 2048)


def _write_store(path: str, shape: tuple[int, ...]) -> None:
    import dask.array as da
    import numpy as np
    import volumes

    from napari_omezarr_x.write import write_image

    chunks = volumes.clip_chunks(tuple(shape), volumes.IMAGE_CHUNKS)
    blocks = da.map_blocks(
        lambda block, block_info=None: volumes._image_block(
            tuple(block_info[None]["chunk-location"]),
            tuple(slice(*r) for r in block_info[None]["array-location"]),
        ),
        da.zeros(shape, dtype="uint16", chunks=chunks),
        dtype=np.uint16,
    )
    write_image(path, blocks, axes="czyx", name="remote", overwrite=True)


def ensure_store(workdir: Path, shape: tuple[int, ...]) -> Path:
    """Our writer's default-chunk store of `shape` (c, z, y, x), written once (in a child)."""
    store = workdir / f"remote-{'x'.join(map(str, shape))}.ome.zarr"
    marker = workdir / f"{store.name}.complete"
    if marker.exists() and (store / "zarr.json").exists():
        return store
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        pool.submit(_write_store, str(store), tuple(shape)).result()
    marker.write_text(json.dumps({"shape": list(shape)}))
    return store


def run_remote(runner, store: Path, readers: tuple[str, ...]) -> None:
    """One record per reader and delay (area "remote", case "<reader>@<ms>ms")."""
    for delay in DELAYS:
        cases = [t for t in readers if runner.wanted("remote", f"{t}@{delay * 1000:g}ms")]
        if not cases:
            continue
        command = [sys.executable, str(HERE / "latency_server.py"), str(store.parent)]
        command += ["--delay", str(delay)]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{int(server.stdout.readline())}"
            for tool in cases:
                params = {
                    "source": store.name,
                    "delay_s": delay,
                    "stats_url": f"{base}/__stats__",
                    "local_store": str(store),
                    "warmup_dir": str(store.parent),
                    "warmup_url": f"{base}/warmup.ome.zarr",
                    "z_steps": Z_STEPS,
                }
                case = f"{tool}@{delay * 1000:g}ms"
                spec = {"area": "remote", "case": case, "tool": tool}
                runner.run({**spec, "store": f"{base}/{store.name}", "params": params})
        finally:
            server.terminate()
            server.wait(10)


def _median(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def table(records: list[dict]) -> list[str]:
    """The remote table: ours next to napari-ome-zarr at each delay, with ratios."""
    by = {(r["tool"], r["params"]["delay_s"]): r for r in records if r.get("area") == "remote"}
    if not by:
        return []
    lines = [
        "### Remote store over HTTP (our default chunks, latency added per request)",
        "",
        "| latency | reader | layer data ready s | full-res plane s | z step s (median of "
        f"{Z_STEPS}) | requests to open (404) | plane requests | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for delay in sorted({d for _, d in by}):
        pair = {}
        for tool in ("ours", "napari-ome-zarr"):
            r = by.get((tool, delay))
            if r is None:
                continue
            if not r.get("ok"):
                lines.append(f"| {delay * 1000:g} ms | {tool} | {r.get('error', '')[:60]} |||||")
                continue
            step = _median(r.get("z_steps_s", []))
            pair[tool] = (r["open_s"], r["plane_s"], step)
            o, p = r["open_http"], r["plane_http"]
            lines.append(
                f"| {delay * 1000:g} ms | {tool} | {r['open_s']:.3f} | {r['plane_s']:.3f} | "
                f"{'-' if step is None else f'{step:.3f}'} | {o['requests']} "
                f"({o['not_found']}) | {p['requests']} | {r.get('load', [0])[0]:.1f} |"
            )
        if len(pair) == 2:
            ratios = [
                f"{b / a:.1f}x" if a and b else "-"
                for a, b in zip(pair["ours"], pair["napari-ome-zarr"], strict=True)
            ]
            lines.append(
                f"| {delay * 1000:g} ms | napari-ome-zarr / ours | {ratios[0]} | {ratios[1]} | "
                f"{ratios[2]} | | | |"
            )
    return lines
