"""A bounded cache of decoded chunks, for plane after plane from deep chunks.

A plane read from chunks deeper than one plane, (1, 64, 256, 256) say, decodes
64 planes to keep one: stepping through z re-decodes the same chunks at every
step. Blosc chunks in local files are read in part instead (`partial`, which
sits in front of this cache); the reads that reach here (other codecs, sharded
arrays, zip files, remote stores) are kept in two cases:

- a read that covers only part of its chunks: the chunk-aligned region around
  it is read instead (zarr decodes whole chunks anyway, so this costs the same)
  and kept, so the next planes of those chunks are copies from memory;
- a read of whole chunks that were read a moment ago (the second plane of a z
  scrub through dask, which asks for whole blocks and slices them itself).
  A read of chunks seen for the first time is not kept: a save or a conversion
  reads each chunk once and fills nothing. In napari, whose slicing keeps the
  dask blocks it read in its own cache, the second read only happens once
  napari has let the block go.

The cache is shared by every array of the process and bounded in bytes
(`DEFAULT_BYTES`, at most an eighth of the machine's memory); least recently
used regions go first. `NAPARI_OMEZARR_X_BLOCK_CACHE_MB` or `set_budget`
change the bound; 0 turns the cache off.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ENV = "NAPARI_OMEZARR_X_BLOCK_CACHE_MB"
#: Default bound: 1 GiB (two z-blocks of a 2048 x 2048 uint16 plane in 64-deep chunks).
DEFAULT_BYTES = 1 << 30
#: A region is cached only if it leaves room for this many like it.
_FIT = 4
#: How many regions read once are remembered (their keys only).
_SEEN = 8192


def _machine_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _initial_budget() -> int:
    text = os.environ.get(ENV, "").strip()
    if text:
        try:
            return max(0, int(float(text) * 2**20))
        except ValueError:
            log.warning("%s=%r is not a number of MB: using the default", ENV, text)
    total = _machine_bytes()
    return min(DEFAULT_BYTES, total // 8) if total else DEFAULT_BYTES


class BlockCache:
    """Decoded chunk-aligned regions by (array, region), least recently used evicted first."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.hits = self.misses = 0
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}

    def fits(self, nbytes: int) -> bool:
        """Whether a region of `nbytes` is worth caching under the current budget."""
        return 0 < nbytes * _FIT <= self.budget

    def read_before(self, key: Hashable) -> bool:
        """Whether `key` was read recently (cached or remembered); remembers it either way."""
        with self._lock:
            if key in self._items or key in self._seen:
                self._seen.pop(key, None)
                return True
            self._seen[key] = None
            if len(self._seen) > _SEEN:
                self._seen.popitem(last=False)
            return False

    def get(self, key: Hashable, load: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached region for `key`, loaded (once, whichever thread asks first) if absent."""
        with self._lock:
            found = self._take(key)
            if found is not None:
                return found
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                found = self._take(key)
                if found is not None:
                    return found
                self.misses += 1
            try:
                region = np.asarray(load())
                region.setflags(write=False)
                self._put(key, region)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
        return region

    def _take(self, key: Hashable) -> np.ndarray | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return found

    def _put(self, key: Hashable, region: np.ndarray) -> None:
        with self._lock:
            if not self.fits(region.nbytes):
                return
            self._items[key] = region
            self.used += region.nbytes
            self._evict()

    def _evict(self) -> None:
        while self.used > self.budget and self._items:
            _, old = self._items.popitem(last=False)
            self.used -= old.nbytes

    def resize(self, budget: int) -> None:
        """Change the bound (bytes), dropping what no longer fits."""
        with self._lock:
            self.budget = max(0, int(budget))
            self._evict()

    def clear(self) -> None:
        """Drop every cached region and forget what was read."""
        with self._lock:
            self._items.clear()
            self._seen.clear()
            self.used = 0


CACHE = BlockCache(_initial_budget())


def set_budget(nbytes: int) -> None:
    """Bound the decoded-chunk cache to `nbytes` (0 turns it off)."""
    CACHE.resize(nbytes)


def aligned(
    bounds: Sequence[tuple[int, int]], grid: Sequence[int], shape: Sequence[int]
) -> tuple[tuple[int, int], ...]:
    """The region of whole chunks (of size `grid`) that holds `bounds`."""
    return tuple(
        (lo // g * g, min(-(-hi // g) * g, s)) if hi > lo else (lo, hi)
        for (lo, hi), g, s in zip(bounds, grid, shape, strict=True)
    )


def read_through(
    array_id: Hashable,
    read: Callable[[tuple[slice, ...]], np.ndarray],
    bounds: Sequence[tuple[int, int]],
    grid: Sequence[int],
    shape: Sequence[int],
    itemsize: int,
    squeeze: tuple[int, ...] = (),
) -> np.ndarray | None:
    """The region `bounds` through the cache (see the module docstring), or None to read
    it directly.

    `read` reads a region of the array (a tuple of slices); `squeeze` names the
    axes the caller indexed with an integer, dropped from the result. A read of
    whole chunks gets the cached array itself, read-only (dask slices and joins
    blocks into new arrays; copying whole chunks would cost as much memory traffic
    as decoding them); a read of part of them gets its own copy.
    """
    whole = aligned(bounds, grid, shape)
    nbytes = math.prod(hi - lo for lo, hi in whole) * itemsize
    if not CACHE.fits(nbytes):
        return None
    key = (array_id, whole)
    if tuple(bounds) == whole and not CACHE.read_before(key):
        return None
    region = CACHE.get(key, lambda: read(tuple(slice(lo, hi) for lo, hi in whole)))
    if tuple(bounds) == whole:
        return region.squeeze(axis=squeeze) if squeeze else region
    inner = tuple(
        slice(lo - wlo, hi - wlo) for (lo, hi), (wlo, _) in zip(bounds, whole, strict=True)
    )
    out = np.array(region[inner])
    return out.squeeze(axis=squeeze) if squeeze else out


def basic_bounds(
    key: Any, shape: Sequence[int]
) -> tuple[list[tuple[int, int]], tuple[int, ...]] | None:
    """(start, stop) per axis and the integer-indexed axes of a basic key, else None."""
    items = key if isinstance(key, tuple) else (key,)
    if len(items) > len(shape) or any(item is Ellipsis for item in items):
        return None
    items = (*items, *(slice(None),) * (len(shape) - len(items)))
    bounds, dropped = [], []
    for axis, (item, size) in enumerate(zip(items, shape, strict=True)):
        if isinstance(item, int | np.integer) and -size <= int(item) < size:
            index = int(item) % size
            bounds.append((index, index + 1))
            dropped.append(axis)
        elif isinstance(item, slice) and item.step in (None, 1):
            start, stop, _ = item.indices(size)
            bounds.append((start, max(start, stop)))
        else:
            return None
    return bounds, tuple(dropped)


class CachedReads:
    """A zarr array whose reads of part of its chunks go through the decoded-chunk cache.

    Everything but indexing is the array's own (shape, chunks, metadata, ...).
    """

    def __init__(self, array: Any) -> None:
        self.array = array
        self._token = uuid.uuid4().hex
        self._grid = tuple(array.chunks)
        self._itemsize = np.dtype(array.dtype).itemsize

    def __getattr__(self, name: str) -> Any:
        # Only once built: unpickling looks attributes up before `array` exists.
        if name.startswith("__") or "array" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.array, name)

    def __getitem__(self, key: Any) -> Any:
        parsed = basic_bounds(key, self.array.shape)
        if parsed is not None and CACHE.budget:
            bounds, dropped = parsed
            out = read_through(
                self._token,
                self.array.__getitem__,
                bounds,
                self._grid,
                self.array.shape,
                self._itemsize,
                dropped,
            )
            if out is not None:
                return out
        return self.array[key]
