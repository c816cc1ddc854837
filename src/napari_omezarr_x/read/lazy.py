"""Lazy dask views of zarr arrays: blocks of several chunks, errors that name the chunk.

How dask blocks map to zarr chunks (`to_dask`, by `block_shape`):

- local folders and zip files: one block per stored chunk (the inner chunk of
  a sharded array), as before; reading there is bound by decompression,
  which dask already spreads over the cores;
- remote stores, as `read_ome_zarr` returns them: an array of at most
  `WHOLE_BYTES` is one block (the smallest pyramid levels: the read that
  finds contrast limits also serves napari's thumbnail of every plane, from
  napari's cache); otherwise the axes before the last two keep the stored
  chunk length (one z plane of 2D-chunked data per block, the chunk's depth
  for deep-z chunks) and the last two axes (y, x) grow in whole chunks,
  shorter side first, while the block stays within `REMOTE_BLOCK_BYTES`: a
  plane tile. The unit grown is the shard when a sharded array's shard fits
  the budget (one index read per shard), else the (inner) chunk;
- remote stores as napari shows them (`display=True`, built by the napari
  adapter from `Image.sources`): one block per chunk, the small levels still
  one block. napari widens each view to whole blocks and caches the blocks it
  read, so tiles would make it fetch and draw up to 4x the view; instead it
  reads the chunk blocks of a view with many threads (`_napari.guard`).

Each block is read with one zarr call, and zarr fetches the chunks of one call
concurrently (up to its `async.concurrency`, raised for remote stores by
`storage.network`), so the requests in flight do not depend on how many
threads dask has: a 2048 x 2048 uint16 plane of 512 x 512 chunks is 4 tiles
of 4 chunks, 8 requests at once on 2 dask threads.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from itertools import product
from typing import Any

import numpy as np

from napari_omezarr_x.errors import RemoteReadError, StoreAccessError

#: Largest dask block of a remote array, in bytes: a 1024 x 1024 uint16 tile.
REMOTE_BLOCK_BYTES = 2 << 20
#: Remote arrays up to this size are one block. napari reads the smallest level
#: for its thumbnail at every step, and a level this small is read whole for
#: contrast limits anyway (`_napari.layer_parts.MAX_SAMPLE` elements of uint16).
WHOLE_BYTES = 8 << 20
#: Chunks re-read one by one to find the one that broke a block read.
_LOCATE_LIMIT = 64


def block_shape(
    shape: Sequence[int],
    chunks: Sequence[int],
    itemsize: int,
    shards: Sequence[int] | None = None,
    budget: int = REMOTE_BLOCK_BYTES,
    whole: int | None = None,
) -> tuple[int, ...]:
    """The dask block shape for an array (see the module docstring for the rule).

    Arrays of at most `whole` bytes (default: `budget`) are one block.
    """
    shape = tuple(int(s) for s in shape)
    if not shape:
        return ()
    if 0 < math.prod(shape) * itemsize <= (budget if whole is None else whole):
        return tuple(max(s, 1) for s in shape)
    unit = tuple(chunks)
    if shards is not None and math.prod(shards) * itemsize <= budget:
        unit = tuple(shards)
    block = [max(1, min(u, s)) for u, s in zip(unit, shape, strict=True)]
    plane = list(range(max(0, len(shape) - 2), len(shape)))
    growing = [a for a in plane if block[a] < shape[a]]
    while growing:
        # Grow the shorter side first so tiles stay square-ish.
        axis = min(growing, key=lambda a: block[a])
        wider = min(shape[axis], block[axis] * 2)
        trial = [*block]
        trial[axis] = wider
        if math.prod(trial) * itemsize > budget:
            growing.remove(axis)
            continue
        block = trial
        if block[axis] >= shape[axis]:
            growing.remove(axis)
    return tuple(block)


class ChunkSource:
    """A zarr array whose read errors name the array, the region and the chunk.

    An undecodable chunk or a dropped connection surfaces when napari draws,
    far from the open call; this makes that message say which array and which
    chunk failed (a remote failure already names its URL, status and
    attempts; for others the block is re-read chunk by chunk to find it).
    """

    def __init__(self, array: Any, where: str, taken: tuple[int, int] | None = None) -> None:
        self.array = array
        self.where = where
        self.taken = taken
        keep = [a for a in range(array.ndim) if taken is None or a != taken[0]]
        self.shape = tuple(int(array.shape[a]) for a in keep)
        self.chunks = tuple(int(array.chunks[a]) for a in keep)
        shards = getattr(array, "shards", None)
        self.shards = None if shards is None else tuple(int(shards[a]) for a in keep)
        self.dtype = array.dtype
        self.ndim = len(keep)

    def take(self, axis: int, index: int) -> ChunkSource:
        """The array with `axis` fixed at `index` (one channel), reading the same chunks.

        A dask view made from this reads a plane with one getitem of the store
        array, where slicing the channel out of the whole array's dask view would
        read whole chunks: dask fuses only one slice into a read.
        """
        if self.taken is not None:
            raise ValueError("an axis is already fixed")
        return ChunkSource(self.array, self.where, (axis, index))

    def _full(self, key: Any) -> Any:
        """`key` of this view as a key of the whole array."""
        if self.taken is None:
            return key
        axis, index = self.taken
        items = key if isinstance(key, tuple) else (key,)
        if any(item is Ellipsis for item in items):
            at = items.index(Ellipsis)
            fill = (slice(None),) * (self.ndim - len(items) + 1)
            items = (*items[:at], *fill, *items[at + 1 :])
        items = (*items, *(slice(None),) * (self.ndim - len(items)))
        return (*items[:axis], index, *items[axis:])

    def __getitem__(self, key: Any) -> Any:
        key = self._full(key)
        try:
            return self.array[key]
        except Exception as exc:
            raise self._error(key, exc) from exc

    def _error(self, key: Any, exc: Exception) -> StoreAccessError:
        region = _describe(key)
        if isinstance(exc, RemoteReadError):
            return StoreAccessError(f"{self.where}: cannot read {region}: {exc}")
        culprit = self._locate(key)
        chunk = f" (chunk {culprit})" if culprit else ""
        return StoreAccessError(
            f"{self.where}: cannot read {region}{chunk}: {type(exc).__name__}: {exc}"
        )

    def _locate(self, key: Any) -> str | None:
        """The storage key of the first chunk of `key` that fails on its own, if found."""
        shape = tuple(self.array.shape)
        bounds = _bounds(key, shape)
        if bounds is None:
            return None
        grid = tuple(self.array.shards or self.array.chunks)
        ranges = [
            range(lo // g, (hi - 1) // g + 1) if hi > lo else range(0)
            for (lo, hi), g in zip(bounds, grid, strict=True)
        ]
        for count, coords in enumerate(product(*ranges)):
            if count >= _LOCATE_LIMIT:
                return None
            piece = tuple(
                slice(c * g, min((c + 1) * g, s))
                for c, g, s in zip(coords, grid, shape, strict=True)
            )
            try:
                self.array[piece]
            except Exception:
                return str(self.array.metadata.encode_chunk_key(coords))
        return None


def _bounds(key: Any, shape: tuple[int, ...]) -> list[tuple[int, int]] | None:
    """(start, stop) per axis of a key made of ints and unit-step slices, else None."""
    items = key if isinstance(key, tuple) else (key,)
    if len(items) > len(shape):
        return None
    out = []
    padded = (*items, *(slice(None),) * (len(shape) - len(items)))
    for item, size in zip(padded, shape, strict=True):
        if isinstance(item, int | np.integer):
            index = int(item) % size if size else 0
            out.append((index, index + 1))
        elif isinstance(item, slice) and item.step in (None, 1):
            start, stop, _ = item.indices(size)
            out.append((start, max(start, stop)))
        else:
            return None
    return out


def _describe(key: Any) -> str:
    items = key if isinstance(key, tuple) else (key,)
    parts = []
    for item in items:
        if isinstance(item, slice) and item.step in (None, 1):
            start = "" if item.start is None else item.start
            stop = "" if item.stop is None else item.stop
            parts.append(f"{start}:{stop}")
        else:
            parts.append(str(item))
    return f"region [{', '.join(parts)}]"


def to_dask(
    source: ChunkSource | Any,
    where: str = "",
    *,
    remote: bool = False,
    display: bool = False,
) -> Any:
    """A lazy dask view of a zarr array, in blocks of whole chunks (see the module docstring).

    `source` is a ChunkSource, or a zarr array whose errors then name `where`.
    `remote` arrays get plane tiles of up to REMOTE_BLOCK_BYTES, or with
    `display` one block per chunk; local ones a block per chunk. Remote arrays
    up to WHOLE_BYTES are one block either way. `meta` is given so dask does
    not read from the array to learn its type.
    """
    import dask.array as da

    if not isinstance(source, ChunkSource):
        source = ChunkSource(source, where)
    budget = REMOTE_BLOCK_BYTES if remote and not display else 0
    whole = WHOLE_BYTES if remote else 0
    itemsize = np.dtype(source.dtype).itemsize
    blocks = block_shape(source.shape, source.chunks, itemsize, source.shards, budget, whole)
    return da.from_array(
        source,
        chunks=blocks,
        name=f"omezarrx-{uuid.uuid4().hex}",
        meta=np.empty((0,) * source.ndim, dtype=source.dtype),
        inline_array=True,
        asarray=False,
    )
