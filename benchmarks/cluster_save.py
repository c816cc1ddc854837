"""Save a dask volume straight into a local S3 bucket through a 2-process LocalCluster.

The issue's acceptance case: a (2, 64, 2048, 2048) uint16 image (1 GiB) computed on the
workers, written to s3:// on a local moto server, progress counted from the futures, and
optionally one worker killed (SIGKILL) a quarter of the way through. Prints one JSON
record: wall time, progress reports, whether the kill happened, and a pixel check of
three full-resolution planes and the smallest level.

    .venv/bin/python benchmarks/cluster_save.py [--shape 2,64,2048,2048] [--kill]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def pattern(block: np.ndarray, block_info=None) -> np.ndarray:
    """Pixels from their coordinates, so the workers make the data and it can be checked."""
    loc = block_info[None]["array-location"]
    c, z, y, x = np.ogrid[tuple(slice(a, b) for a, b in loc)]
    return ((c * 7919 + z * 104729 + y * 31 + x * 17) % 65521).astype(np.uint16)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", default="2,64,2048,2048")
    parser.add_argument("--kill", action="store_true", help="SIGKILL one worker at 25%%")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    empty = Path(tempfile.mkdtemp()) / "empty"
    empty.mkdir()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "s3_server.py"), str(empty.parent), empty.name],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        sys.path.insert(0, str(HERE))
        import s3_server

        os.environ.update(s3_server.environment(server.stdout.readline().strip()))
        import dask.array as da
        from distributed import Client, LocalCluster

        from napari_omezarr_x.read import read_ome_zarr
        from napari_omezarr_x.write import write_image

        url = f"s3://{s3_server.BUCKET}/cluster.ome.zarr"
        volume = da.zeros(shape, dtype=np.uint16, chunks=(1, 1, *shape[2:])).map_blocks(
            pattern, dtype=np.uint16
        )
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            pids = list(client.run(os.getpid).values())
            reports: list[tuple[int, int]] = []

            def progress(done: int, total: int) -> None:
                reports.append((done, total))
                if args.kill and len(reports) > 1 and done == total // 4:
                    os.kill(pids[0], signal.SIGKILL)

            start = time.perf_counter()
            write_image(url, volume, axes="czyx", progress=progress)
            wall = time.perf_counter() - start
            survivors = list(client.run(os.getpid).values())
        (image,) = read_ome_zarr(url)
        checks = []
        for c, z in ((0, 0), (shape[0] - 1, shape[1] // 2), (shape[0] - 1, shape[1] - 1)):
            location = [(c, c + 1), (z, z + 1), (0, shape[2]), (0, shape[3])]
            want = pattern(np.empty(0), {None: {"array-location": location}})[0, 0]
            checks.append(bool(np.array_equal(image.levels[0][c, z].compute(), want)))
        record = {
            "shape": shape,
            "gib": float(np.prod(shape)) * 2 / 2**30,
            "wall_s": round(wall, 1),
            "progress_reports": len(reports),
            "total": reports[-1][1],
            "increasing": all(a[0] <= b[0] for a, b in itertools.pairwise(reports)),
            "killed_worker": bool(args.kill and pids[0] not in survivors),
            "levels": [list(level.shape) for level in image.levels],
            "planes_exact": checks,
            "smallest_level_nonzero": bool(image.levels[-1].compute().any()),
        }
        print(json.dumps(record))
        return 0 if all(checks) else 1
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
