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
    # Whole chunks are not the cache's business (napari caches whole blocks itself).
    assert read_through("a", read, [(0, 4), (0, 6), (0, 6)], (4, 6, 6), data.shape, 2) is None
    assert len(reads) == 2
