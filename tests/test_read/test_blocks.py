"""The decoded-chunk cache: bounded, least recently used first, each region loaded once."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_omezarr_x.read import blocks
from napari_omezarr_x.read.blocks import BlockCache, aligned, read_through


def test_bounded_and_least_recently_used_first() -> None:
    cache = BlockCache(budget=4 * 400)
    loads: list[int] = []

    def load(i: int):
        return lambda: (loads.append(i), np.full(100, i, dtype=np.int32))[1]  # 400 bytes

    for i in range(4):
        cache.get(i, load(i))
    cache.get(0, load(0))  # 0 is now the most recent
    cache.get(4, load(4))  # evicts 1, the least recently used
    assert cache.used == 4 * 400
    cache.get(0, load(0))
    cache.get(1, load(1))
    assert loads == [0, 1, 2, 3, 4, 1]
    assert (cache.hits, cache.misses) == (2, 6)
    with pytest.raises(ValueError, match="read-only"):
        cache.get(0, load(0))[0] = 7
    cache.resize(400)
    assert cache.used <= 400
    cache.resize(0)
    assert cache.used == 0
    assert not cache.fits(1)


def test_a_region_too_big_for_the_budget_is_not_kept() -> None:
    cache = BlockCache(budget=1000)
    calls = []
    for _ in range(2):
        cache.get("big", lambda: (calls.append(1), np.zeros(100, np.int32))[1])
    assert len(calls) == 2
    assert cache.used == 0


def test_threads_asking_for_one_region_load_it_once() -> None:
    cache = BlockCache(budget=1 << 20)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.1)
        return np.arange(10)

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("k", slow))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert all(np.array_equal(r, np.arange(10)) for r in results)


def test_aligned_grows_to_whole_chunks_and_stops_at_the_edge() -> None:
    assert aligned([(5, 6), (0, 10)], (4, 8), (10, 10)) == ((4, 8), (0, 10))
    assert aligned([(9, 10), (3, 4)], (4, 8), (10, 10)) == ((8, 10), (0, 8))


def test_read_through_serves_planes_of_a_deep_chunk_from_one_read(monkeypatch) -> None:
    monkeypatch.setattr(blocks, "CACHE", BlockCache(budget=1 << 20))
    data = np.arange(8 * 6 * 6, dtype=np.uint16).reshape(8, 6, 6)
    reads: list[tuple[slice, ...]] = []

    def read(region):
        reads.append(region)
        return data[region]

    for z in range(3, 7):
        plane = read_through("a", read, [(z, z + 1), (0, 6), (0, 6)], (4, 6, 6), data.shape, 2)
        np.testing.assert_array_equal(plane, data[z : z + 1])
        plane[...] = 0  # the caller's copy, not the cache
    assert reads == [
        (slice(0, 4), slice(0, 6), slice(0, 6)),
        (slice(4, 8), slice(0, 6), slice(0, 6)),
    ]
    squeezed = read_through("a", read, [(5, 6), (0, 6), (2, 3)], (4, 6, 6), data.shape, 2, (0,))
    np.testing.assert_array_equal(squeezed, data[5, :, 2:3])
    # A whole chunk already kept is the cached array itself, read-only.
    whole = read_through("a", read, [(0, 4), (0, 6), (0, 6)], (4, 6, 6), data.shape, 2)
    assert not whole.flags.writeable
    np.testing.assert_array_equal(whole, data[0:4])
    # A whole chunk read for the first time is read directly, the second time kept.
    assert read_through("b", read, [(0, 4), (0, 6), (0, 6)], (4, 6, 6), data.shape, 2) is None
    again = read_through("b", read, [(0, 4), (0, 6), (0, 6)], (4, 6, 6), data.shape, 2)
    np.testing.assert_array_equal(again, data[0:4])
    assert len(reads) == 3


@pytest.fixture
def deep_store(tmp_path, monkeypatch):
    """A 2-channel image in (1, 8, 16, 16) chunks (deep in z), read with a fresh cache.

    Stored uncompressed: planes of blosc chunks are read in part instead
    (test_partial_reads.py); the cache serves every other codec.
    """
    from napari_omezarr_x.write import write_image

    monkeypatch.setattr(blocks, "CACHE", BlockCache(budget=64 << 20))
    data = np.random.default_rng(3).integers(0, 4000, (2, 16, 32, 32)).astype("uint16")
    path = tmp_path / "deep.ome.zarr"
    write_image(path, data, axes="czyx", chunks=(1, 8, 16, 16), levels=1, compression=None)
    return path, data


def _chunk_reads(keys: list[str]) -> int:
    return len([k for k in keys if not k.endswith(("zarr.json", ".zattrs", ".zarray"))])


def test_a_z_scrub_through_split_channels_decodes_each_chunk_twice(deep_store, monkeypatch):
    """Through a channel's layer data (dask asks for whole chunks and slices them): the
    first plane is read, the second fills the cache, the rest come from memory."""
    from napari_omezarr_x.read import read_ome_zarr
    from ngff_fixtures import record_reads

    path, data = deep_store
    (image,) = read_ome_zarr(str(path))
    channel = image.levels[0][1]  # as layers.py splits channels
    keys = record_reads(monkeypatch)
    reads = []
    for z in range(2, 7):
        before = _chunk_reads(keys)
        plane = np.asarray(channel[z])
        reads.append(_chunk_reads(keys) - before)
        np.testing.assert_array_equal(plane, data[1, z])
        plane[0, 0] = 1  # joined from blocks: the caller's own array
    assert reads == [4, 4, 0, 0, 0]
    assert blocks.CACHE.used == 4 * 8 * 16 * 16 * 2


def test_a_partial_read_is_kept_at_once_and_a_full_read_keeps_nothing(deep_store, monkeypatch):
    from napari_omezarr_x.read import read_ome_zarr
    from ngff_fixtures import record_reads

    path, data = deep_store
    (image,) = read_ome_zarr(str(path))
    keys = record_reads(monkeypatch)
    np.testing.assert_array_equal(image.levels[0].compute(), data)
    assert blocks.CACHE.used == 0  # a save or conversion reads every chunk once
    before = _chunk_reads(keys)
    for z in range(9, 13):
        np.testing.assert_array_equal(np.asarray(image.levels[0][0, z]), data[0, z])
    assert _chunk_reads(keys) - before == 4  # fused into one read per chunk, then memory


def test_budget_zero_reads_every_plane(deep_store, monkeypatch):
    from napari_omezarr_x.read import read_ome_zarr
    from ngff_fixtures import record_reads

    path, data = deep_store
    blocks.set_budget(0)
    (image,) = read_ome_zarr(str(path))
    keys = record_reads(monkeypatch)
    for z in range(3):
        np.testing.assert_array_equal(np.asarray(image.levels[0][0][z]), data[0, z])
    assert _chunk_reads(keys) == 12
    assert blocks.CACHE.used == 0


def test_environment_sets_the_budget(monkeypatch):
    monkeypatch.setenv(blocks.ENV, "256")
    assert blocks._initial_budget() == 256 * 2**20
    monkeypatch.setenv(blocks.ENV, "lots")
    assert blocks._initial_budget() <= blocks.DEFAULT_BYTES


def test_a_save_from_cached_planes_is_exact(deep_store, tmp_path):
    """Read-only cached chunks feed the writer like any other input."""
    from napari_omezarr_x.read import read_ome_zarr
    from napari_omezarr_x.write import write_image

    path, data = deep_store
    (image,) = read_ome_zarr(str(path))
    for z in range(3):
        np.asarray(image.levels[0][0][z])
    write_image(tmp_path / "copy.ome.zarr", image.levels[0], axes="czyx", levels=2)
    (copy,) = read_ome_zarr(str(tmp_path / "copy.ome.zarr"))
    np.testing.assert_array_equal(copy.levels[0].compute(), data)


def test_cached_reads_pickle_for_dask_workers(deep_store) -> None:
    """Level arrays travel to distributed workers (cluster saves) and still read."""
    import pickle

    from napari_omezarr_x.read import read_ome_zarr

    path, data = deep_store
    (image,) = read_ome_zarr(str(path))
    level = pickle.loads(pickle.dumps(image.levels[0]))
    np.testing.assert_array_equal(np.asarray(level[1][5]), data[1, 5])
