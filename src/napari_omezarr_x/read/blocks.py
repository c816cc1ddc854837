"""A bounded cache of decoded chunks, for reads that want only part of each chunk.

A plane read from chunks deeper than one plane, (1, 64, 256, 256) say, decodes
64 planes to keep one: stepping through z re-decodes the same chunks at every
step. When a read covers only part of its chunks, the chunk-aligned region
around it is read instead (zarr decodes whole chunks anyway, so this costs the
same), kept here, and the next planes of those chunks are copies from memory.
Reads of whole chunks (napari's own slicing, which caches whole dask blocks
itself) pass by untouched, so nothing is cached twice.

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
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import numpy as np

log = logging.getLogger(__name__)

ENV = "NAPARI_OMEZARR_X_BLOCK_CACHE_MB"
#: Default bound: 1 GiB (two z-blocks of a 2048 x 2048 uint16 plane in 64-deep chunks).
DEFAULT_BYTES = 1 << 30
#: A region is cached only if it leaves room for this many like it.
_FIT = 4


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
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}

    def fits(self, nbytes: int) -> bool:
        """Whether a region of `nbytes` is worth caching under the current budget."""
        return 0 < nbytes * _FIT <= self.budget

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
        """Drop every cached region."""
        with self._lock:
            self._items.clear()
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
    """The region `bounds` from the cache when it covers part of its chunks, else None.

    `read` reads a region of the array (a tuple of slices); `squeeze` names the
    axes the caller indexed with an integer, dropped from the result.
    """
    whole = aligned(bounds, grid, shape)
    if tuple(bounds) == whole:
        return None
    nbytes = math.prod(hi - lo for lo, hi in whole) * itemsize
    if not CACHE.fits(nbytes):
        return None
    region = CACHE.get((array_id, whole), lambda: read(tuple(slice(lo, hi) for lo, hi in whole)))
    inner = tuple(
        slice(lo - wlo, hi - wlo) for (lo, hi), (wlo, _) in zip(bounds, whole, strict=True)
    )
    out = np.array(region[inner])
    return out.squeeze(axis=squeeze) if squeeze else out
