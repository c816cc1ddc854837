"""Reads of blosc chunk files in local folders that skip zarr: small parts, and whole chunks.

Parts (`PartialReads`, in front of the decoded-chunk cache of `blocks`):

A plane of a (1, 64, 256, 256) chunk is 1/64 of it, and zarr decodes the whole
chunk to return it. Where the chunks are files of blosc frames of C-order items
(`storage.blosc.stored_as_blosc_frames`: the codec most OME-Zarr writers use),
a read whose part of every chunk it touches is at most `PART` of the chunk reads
and decodes, per chunk, only the blosc blocks holding that part: the items from
the part's first row to its last (a plane is one contiguous run of items).

Everything else goes to the array below as before (zarr, through the
decoded-chunk cache of `blocks`): other reads, other codecs, sharded arrays,
stores other than local folders (a ranged read of a remote chunk costs a round
trip more, and the cache keeps whole chunks for the next planes), and any chunk
whose stored bytes are not what this module expects. So the pixels are zarr's
either way, and a broken chunk fails the way zarr reports it.

Whole chunks (`WholeChunkReads`, below the cache): a read of exactly one chunk
(napari's dask blocks of a local array are one chunk each) reads the file and
decodes it with numcodecs' c-blosc in the calling thread, instead of sending
it through zarr's event loop and an executor thread while the task waits: a
2048 x 2048 uint16 plane of (1, 512, 512) chunks took 18 ms through zarr and
zarrs, 16 dask tasks of about one millisecond each mostly spent handing over.
The same checks apply; anything unexpected, a missing chunk, and every read of
more or less than one chunk go to zarr.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from napari_omezarr_x.storage import blosc

from .blocks import basic_bounds

#: Largest share of a chunk read in part; a read wanting more of any chunk is
#: left to zarr, which decodes whole chunks on all cores.
PART = 0.25


@dataclass(frozen=True)
class _Part:
    """What one chunk gives to a read."""

    coords: tuple[int, ...]
    region: tuple[slice, ...]  # the chunk's part of the read, in array coordinates
    out: tuple[slice, ...]  # where it goes in the read's result
    start: int  # decoded bytes of the chunk to read: [start, stop)
    stop: int
    rows: tuple[int, ...]  # those bytes as an array of this shape (C order) ...
    inner: tuple[slice, ...]  # ... of which this is the part


def _local_folder(array: Any) -> Path | None:
    """The folder of a zarr array's chunk files, if it is in a local folder store."""
    from zarr.storage import LocalStore

    store_path = getattr(array, "store_path", None)
    if store_path is None or not isinstance(store_path.store, LocalStore):
        return None
    return Path(store_path.store.root) / store_path.path


class _BloscFiles:
    """A zarr array (or a wrapper of one) with the folder of its chunk files, where they
    are blosc frames of C-ordered items, unsharded, in a local folder (else None).

    Everything but indexing is the array's own (shape, chunks, metadata, ...).
    """

    def __init__(self, array: Any) -> None:
        self.array = array
        self._grid = tuple(int(c) for c in array.chunks)
        self._dtype = np.dtype(array.dtype)
        folder = _local_folder(array)
        self._folder = (
            folder
            if folder is not None
            and array.ndim > 0
            and getattr(array, "shards", None) is None
            and blosc.stored_as_blosc_frames(array)
            else None
        )

    def __getattr__(self, name: str) -> Any:
        # Only once built: unpickling looks attributes up before `array` exists.
        if name.startswith("__") or "array" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.array, name)

    def _bounds(self, key: Any) -> tuple[list[tuple[int, int]], tuple[int, ...]] | None:
        """The region `key` reads and the axes it drops, for a basic index of an array
        whose chunk files are read here; None otherwise (zarr reads it)."""
        if self._folder is None:
            return None
        return basic_bounds(key, self.array.shape)


class PartialReads(_BloscFiles):
    """A zarr array (or a wrapper of one) whose small reads of blosc-compressed chunks
    in local files decode only what they need."""

    def __init__(self, array: Any) -> None:
        super().__init__(array)
        self._chunk_bytes = math.prod(self._grid) * self._dtype.itemsize
        if not blosc.available():
            self._folder = None

    def __getitem__(self, key: Any) -> Any:
        parsed = self._bounds(key)
        parts = None if parsed is None else self._parts(parsed[0])
        if parts is not None:
            bounds, dropped = parsed
            try:
                out = self._read(self._folder, parts, bounds)
            except blosc.NotPartial:
                pass
            else:
                return out.squeeze(axis=dropped) if dropped else out
        return self.array[key]

    def _parts(self, bounds: Sequence[tuple[int, int]]) -> list[_Part] | None:
        """Each chunk's part of the region, or None if a chunk is better decoded whole."""
        if any(hi <= lo for lo, hi in bounds):
            return None
        grid, itemsize = self._grid, self._dtype.itemsize
        strides = [math.prod(grid[k + 1 :]) for k in range(len(grid))]
        ranges = [
            range(lo // g, (hi - 1) // g + 1) for (lo, hi), g in zip(bounds, grid, strict=True)
        ]
        parts = []
        for coords in product(*ranges):
            local = [
                (max(lo, c * g) - c * g, min(hi, (c + 1) * g) - c * g)
                for (lo, hi), c, g in zip(bounds, coords, grid, strict=True)
            ]
            # The run of items from the part's first row to its last: whole along
            # the axes after the first one the part spans more than one item of.
            axis = next((k for k, (lo, hi) in enumerate(local) if hi - lo > 1), len(grid) - 1)
            first = sum(
                lo * s for (lo, _), s in zip(local[: axis + 1], strides[: axis + 1], strict=True)
            )
            count = (local[axis][1] - local[axis][0]) * strides[axis]
            if count * itemsize > PART * self._chunk_bytes:
                return None
            parts.append(
                _Part(
                    coords=tuple(coords),
                    region=tuple(
                        slice(c * g + lo, c * g + hi)
                        for (lo, hi), c, g in zip(local, coords, grid, strict=True)
                    ),
                    out=tuple(
                        slice(c * g + lo - blo, c * g + hi - blo)
                        for (lo, hi), c, g, (blo, _) in zip(
                            local, coords, grid, bounds, strict=True
                        )
                    ),
                    start=first * itemsize,
                    stop=(first + count) * itemsize,
                    rows=(local[axis][1] - local[axis][0], *grid[axis + 1 :]),
                    inner=(slice(None), *(slice(lo, hi) for lo, hi in local[axis + 1 :])),
                )
            )
        return parts

    def _read(
        self, folder: Path, parts: list[_Part], bounds: Sequence[tuple[int, int]]
    ) -> np.ndarray:
        """Read and decode every part; a chunk not stored is read from the array below
        (zarr fills it as the array says)."""
        encode = self.array.metadata.encode_chunk_key
        out = np.empty([hi - lo for lo, hi in bounds], dtype=self._dtype)
        for part in parts:
            target = out[part.out]
            got = blosc.read_part(
                folder / encode(part.coords), self._chunk_bytes, part.start, part.stop
            )
            if got is None:
                target[...] = self.array[part.region]
            else:
                decoded = got.view(self._dtype).reshape(part.rows)
                target[...] = decoded[part.inner].reshape(target.shape)
        return out


class WholeChunkReads(_BloscFiles):
    """A zarr array whose reads of exactly one whole chunk, blosc-compressed in a local
    file, are decoded in the calling thread without zarr."""

    def __getitem__(self, key: Any) -> Any:
        parsed = self._bounds(key)
        coords = None if parsed is None else self._chunk_of(parsed[0])
        if coords is not None:
            bounds, dropped = parsed
            out = self._read(self._folder, coords, bounds)
            if out is not None:
                return out.squeeze(axis=dropped) if dropped else out
        return self.array[key]

    def _chunk_of(self, bounds: Sequence[tuple[int, int]]) -> tuple[int, ...] | None:
        """The coordinates of the chunk `bounds` covers exactly (cut at the array's end)."""
        coords = []
        for (lo, hi), g, n in zip(bounds, self._grid, self.array.shape, strict=True):
            if lo % g or hi != min(lo + g, n):
                return None
            coords.append(lo // g)
        return tuple(coords)

    def _read(
        self, folder: Path, coords: tuple[int, ...], bounds: Sequence[tuple[int, int]]
    ) -> np.ndarray | None:
        chunk = np.empty(self._grid, dtype=self._dtype)
        path = folder / self.array.metadata.encode_chunk_key(coords)
        try:
            if not blosc.read_whole(path, chunk):
                return None  # not stored: zarr gives the fill value
        except blosc.NotPartial:
            return None  # zarr reads it, or reports what is wrong with it
        if all(hi - lo == g for (lo, hi), g in zip(bounds, self._grid, strict=True)):
            return chunk
        return chunk[tuple(slice(0, hi - lo) for lo, hi in bounds)]
