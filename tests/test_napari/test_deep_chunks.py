"""Deep chunks through channel layers: exact planes, each chunk read once per z block.

Channel layers are built from the level arrays with the channel fixed
(`ChunkSource.take`), so a plane read from the layer data reaches the store as a
read of part of each chunk: blosc chunks are read in part (only the blocks
holding the plane), other codecs are decoded once into the decoded-chunk cache
and the next planes come from memory. napari's own slicing (sync or async)
turns dask's task fusion off and reads whole dask blocks, which it keeps in its
own cache: each chunk is read once there too.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_omezarr_x._napari.layer_parts import channel_levels
from napari_omezarr_x.model import Channel
from napari_omezarr_x.read import blocks, read_ome_zarr
from napari_omezarr_x.read.blocks import BlockCache
from napari_omezarr_x.write import write_image
from ngff_fixtures import record_reads

PLUGIN = "napari-omezarr-x"
SHAPE = (2, 24, 64, 64)
CHUNKS = (1, 16, 32, 32)


def _chunk_reads(keys: list[str], start: int = 0) -> int:
    return len([k for k in keys[start:] if "/c/" in k])


@pytest.fixture(params=["zstd", None], ids=["blosc", "uncompressed"])
def deep_store(request, tmp_path, monkeypatch):
    monkeypatch.setattr(blocks, "CACHE", BlockCache(budget=64 << 20))
    data = np.random.default_rng(5).integers(0, 60000, SHAPE).astype("uint16")
    path = tmp_path / "deep.ome.zarr"
    # Windows given, so opening reads no pixel (napari's own dask cache would keep it).
    channels = [Channel(label=f"c{i}", start=0, end=60000, min=0, max=65535) for i in range(2)]
    write_image(
        path, data, axes="czyx", chunks=CHUNKS, levels=1, compression=request.param,
        channels=channels,
    )  # fmt: skip
    return path, data, request.param


def test_channel_levels_read_planes_as_the_whole_level_does(deep_store) -> None:
    path, data, _ = deep_store
    (image,) = read_ome_zarr(str(path))
    for c in range(2):
        (level,) = channel_levels(image, 0, c)
        assert level.shape == SHAPE[1:]
        assert level.chunksize == CHUNKS[1:]
        np.testing.assert_array_equal(np.asarray(level[5]), data[c, 5])
        np.testing.assert_array_equal(np.asarray(level[17, 31:40, -3:]), data[c, 17, 31:40, -3:])
        np.testing.assert_array_equal(level[:, 7].compute(), data[c, :, 7])
        np.testing.assert_array_equal(level.compute(), data[c])


def test_a_scrub_through_layer_data_reads_each_chunk_once(deep_store, monkeypatch) -> None:
    path, data, compression = deep_store
    (image,) = read_ome_zarr(str(path))
    keys = record_reads(monkeypatch)
    reads = []
    for z in range(3, 9):
        start = len(keys)
        for c in range(2):
            (level,) = channel_levels(image, 0, c)
            np.testing.assert_array_equal(np.asarray(level[z]), data[c, z])
        reads.append(_chunk_reads(keys, start))
    if compression:  # 4 chunks a plane, 2 channels: part of each chunk file, every plane
        assert reads == [8] * 6
        assert blocks.CACHE.used == 0
    else:  # each chunk decoded once into the cache, then memory
        assert reads == [8, 0, 0, 0, 0, 0]
        assert blocks.CACHE.used == 8 * 16 * 32 * 32 * 2


def test_a_scrub_in_a_shown_viewer(make_napari_viewer, qtbot, deep_store, slicing, monkeypatch):
    path, data, _ = deep_store
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert len(layers) == 2
    viewer._layer_slicer.wait_until_idle(timeout=10)
    keys = record_reads(monkeypatch)
    start = len(keys)
    for z in range(16, 22):  # the second z block of chunks (napari opened at z 12)
        viewer.dims.set_current_step(0, z)

        def drawn(z=z) -> None:
            for c, layer in enumerate(layers):
                np.testing.assert_array_equal(layer._slice.image.raw, data[c, z])

        qtbot.waitUntil(drawn, timeout=10000)
        viewer._layer_slicer.wait_until_idle(timeout=10)
    # Whole blocks (fusion off), kept by napari: 4 chunks a plane, 2 channels, once.
    assert _chunk_reads(keys, start) == 8
    viewer.dims.set_current_step(0, 2)
    qtbot.waitUntil(lambda: np.array_equal(layers[1]._slice.image.raw, data[1, 2]), timeout=10000)
