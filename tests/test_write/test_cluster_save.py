"""Saves and conversions on a dask.distributed LocalCluster with 2 worker processes:
straight into a local S3 bucket, with progress reported from the futures, and a worker
killed in the middle of a save."""

from __future__ import annotations

import os
import signal
import threading

import dask.array as da
import numpy as np
import pytest

from napari_omezarr_x import cli
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.write import write_image
from s3_helpers import PRIVATE

SHAPE = (2, 16, 1024, 1024)


def _pattern(block: np.ndarray, block_info=None) -> np.ndarray:
    """Pixels computed on the workers from their coordinates (nothing shipped)."""
    loc = block_info[None]["array-location"]
    c, z, y, x = np.ogrid[tuple(slice(a, b) for a, b in loc)]
    return ((c * 7919 + z * 104729 + y * 31 + x * 17) % 65521).astype(np.uint16)


def _volume() -> da.Array:
    return da.zeros(SHAPE, dtype=np.uint16, chunks=(1, 1, 1024, 1024)).map_blocks(
        _pattern, dtype=np.uint16
    )


def _expected_plane(c: int, z: int) -> np.ndarray:
    location = [(c, c + 1), (z, z + 1), (0, SHAPE[2]), (0, SHAPE[3])]
    block = np.empty((1, 1, *SHAPE[2:]), dtype=np.uint16)
    return _pattern(block, {None: {"array-location": location}})[0, 0]


def _check(url: str) -> None:
    """Planes of level 0 and the whole smallest level hold the expected pixels."""
    (image,) = read_ome_zarr(url)
    assert image.levels[0].shape == SHAPE
    for c, z in ((0, 0), (1, 7), (1, 15)):
        np.testing.assert_array_equal(image.levels[0][c, z].compute(), _expected_plane(c, z))
    smallest = image.levels[-1].compute()
    assert smallest.shape[0] == SHAPE[0]
    assert smallest.any()


def test_save_on_cluster_reports_progress(s3_env, dask_client):
    url = f"s3://{PRIVATE}/cluster/progress.ome.zarr"
    calls: list[tuple[int, int]] = []
    write_image(url, _volume(), axes="czyx", progress=lambda d, t: calls.append((d, t)))
    totals = {t for _, t in calls}
    assert len(totals) == 1
    total = totals.pop()
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert done[0] == 0
    assert done[-1] == total >= SHAPE[0] * SHAPE[1]  # one report per write task
    assert len(set(done)) > 10
    _check(url)


def test_worker_killed_mid_save_is_recovered(s3_env, dask_client):
    url = f"s3://{PRIVATE}/cluster/killed.ome.zarr"
    pids = list(dask_client.run(os.getpid).values())
    killed: list[int] = []
    halfway = threading.Event()

    def progress(done: int, total: int) -> None:
        if total and done >= total // 4 and not halfway.is_set():
            halfway.set()
            os.kill(pids[0], signal.SIGKILL)
            killed.append(done)

    write_image(url, _volume(), axes="czyx", progress=progress)
    assert killed  # the worker died in the middle of the save
    dask_client.wait_for_workers(2, timeout=60)
    assert pids[0] not in dask_client.run(os.getpid).values()
    _check(url)


def test_cli_convert_on_scheduler(s3_env, dask_cluster, tmp_path, capsys):
    source = tmp_path / "src.ome.zarr"
    write_image(source, _volume()[:, :4, :256, :256].compute(), axes="czyx")
    url = f"s3://{PRIVATE}/cluster/converted.ome.zarr"
    code = cli.main(["convert", str(source), url, "--scheduler", dask_cluster.scheduler_address])
    assert code == 0, capsys.readouterr().err
    assert "100.0%" in capsys.readouterr().err
    (image,) = read_ome_zarr(url)
    (original,) = read_ome_zarr(source)
    np.testing.assert_array_equal(image.levels[0].compute(), original.levels[0].compute())
    code = cli.main(["convert", str(source), f"{url}-2", "--scheduler", "tcp://127.0.0.1:1"])
    assert code == 2
    assert "cannot reach the dask scheduler" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [2])
def test_cli_convert_on_local_workers(workers, tmp_path, capsys):
    source = tmp_path / "src.ome.zarr"
    write_image(source, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), axes="yx")
    out = tmp_path / "out.ome.zarr"
    assert cli.main(["convert", str(source), str(out), "--workers", str(workers)]) == 0
    (image,) = read_ome_zarr(out)
    np.testing.assert_array_equal(
        image.levels[0].compute(), np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    )
