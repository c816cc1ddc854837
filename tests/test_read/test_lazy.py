"""How dask blocks map to zarr chunks, and what a failed block read says."""

from __future__ import annotations

import math

import numpy as np
import pytest
import zarr

from napari_omezarr_x.errors import StoreAccessError
from napari_omezarr_x.read import lazy
from napari_omezarr_x.read.lazy import ChunkSource, block_shape, to_dask

MiB = 1 << 20


@pytest.mark.parametrize(
    ("shape", "chunks", "itemsize", "shards", "budget", "block"),
    [
        # Remote, our writer's default chunks: 1024 x 1024 tiles of 4 chunks.
        ((2, 64, 2048, 2048), (1, 1, 512, 512), 2, None, 2 * MiB, (1, 1, 1024, 1024)),
        # With an 8 MiB budget a whole plane (16 chunks) is one block.
        ((2, 64, 2048, 2048), (1, 1, 512, 512), 2, None, 8 * MiB, (1, 1, 2048, 2048)),
        # float32: the shorter side grows first, then the budget stops it.
        ((2, 64, 2048, 2048), (1, 1, 512, 512), 4, None, 8 * MiB, (1, 1, 2048, 1024)),
        # Deep-z chunks bigger than the budget are blocks as they are.
        ((2, 128, 2048, 2048), (1, 64, 256, 256), 2, None, 2 * MiB, (1, 64, 256, 256)),
        # A small level is a single block.
        ((2, 4, 256, 256), (1, 1, 256, 256), 2, None, 2 * MiB, (2, 4, 256, 256)),
        # Shards that fit the budget are the unit grown.
        ((4, 4096, 4096), (1, 256, 256), 2, (1, 512, 512), 2 * MiB, (1, 1024, 1024)),
        # Edges are clipped to the array.
        ((3, 3000, 5000), (1, 512, 512), 1, None, 8 * MiB, (1, 3000, 2048)),
        ((10_000_000,), (4096,), 8, None, 8 * MiB, (1 << 20,)),
        # Budget 0 (local stores): one block per stored (inner) chunk.
        ((2, 64, 2048, 2048), (1, 1, 512, 512), 2, None, 0, (1, 1, 512, 512)),
        ((4, 4096, 4096), (1, 256, 256), 2, (1, 512, 512), 0, (1, 256, 256)),
        ((2, 4, 16, 16), (1, 1, 8, 8), 2, None, 0, (1, 1, 8, 8)),
    ],
)
def test_block_shape(shape, chunks, itemsize, shards, budget, block):
    got = block_shape(shape, chunks, itemsize, shards, budget)
    assert got == block
    assert math.prod(got) * itemsize <= max(budget, math.prod(chunks) * itemsize)
    unit = shards if shards and math.prod(shards) * itemsize <= budget else chunks
    whole = math.prod(shape) * itemsize <= budget
    for b, u, s in zip(got, unit, shape, strict=True):
        assert whole or b % u == 0 or b == s  # whole chunks (or the array's edge)


def test_remote_defaults():
    # 1024 x 1024 uint16 tiles; levels up to 8 MiB (smallest levels) in one block.
    assert block_shape((1, 4096, 4096), (1, 256, 256), 2) == (1, 1024, 1024)
    assert block_shape((2, 4, 512, 512), (1, 1, 512, 512), 2, whole=8 * MiB) == (2, 4, 512, 512)
    assert block_shape((2, 16, 512, 512), (1, 1, 512, 512), 2, whole=8 * MiB) == (1, 1, 512, 512)


@pytest.mark.parametrize(
    ("remote", "display", "blocks"),
    [(True, False, (2, 1, 1)), (True, True, (2, 4, 4)), (False, False, (2, 4, 4))],
)
def test_to_dask_reads_a_block_with_one_call(tmp_path, monkeypatch, remote, display, blocks):
    data = np.arange(2 * 64 * 64, dtype="uint16").reshape(2, 64, 64)
    arr = zarr.create_array(tmp_path / "a.zarr", shape=data.shape, chunks=(1, 16, 16), dtype="u2")
    arr[...] = data
    monkeypatch.setattr(lazy, "REMOTE_BLOCK_BYTES", 64 * 64 * 2)
    monkeypatch.setattr(lazy, "WHOLE_BYTES", 64 * 64 * 2)
    source = ChunkSource(zarr.open_array(tmp_path / "a.zarr", mode="r"), "a.zarr")
    view = to_dask(source, remote=remote, display=display)
    assert view.numblocks == blocks
    calls = []
    read = ChunkSource.__getitem__
    monkeypatch.setattr(ChunkSource, "__getitem__", lambda s, k: calls.append(k) or read(s, k))
    np.testing.assert_array_equal(view.compute(), data)
    assert len(calls) == math.prod(blocks)  # one zarr call per block
    np.testing.assert_array_equal(view[1, 10:20, 30:40].compute(), data[1, 10:20, 30:40])


def test_broken_chunk_is_named(tmp_path):
    arr = zarr.create_array(tmp_path / "a.zarr", shape=(64, 64), chunks=(16, 16), dtype="uint16")
    arr[...] = 7
    (tmp_path / "a.zarr" / "c" / "2" / "1").write_bytes(b"\x00 not a chunk")
    source = ChunkSource(zarr.open_array(tmp_path / "a.zarr", mode="r"), "a.zarr")
    view = to_dask(source, remote=True)
    with pytest.raises(StoreAccessError, match=r"a\.zarr: cannot read .* \(chunk c/2/1\)"):
        view.compute()
    np.testing.assert_array_equal(view[:16].compute(), 7)
