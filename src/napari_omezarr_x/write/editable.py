"""A numpy-like, writable view of one zarr array whose edits stay aside until saved.

napari paints a labels layer by indexing `layer.data` like a numpy array:
basic slices for brush, fill and polygon (`data[box]` read, modified, then
`data[box] = region`), scalar reads, and tuples of index arrays for
`data_setitem` and older undo records. `EditableArray` answers all of these
over a zarr array of any size: chunks are read on demand and never held
whole, and every write goes to an overlay of edited chunks (whole chunks,
copied from the store the first time they are touched). The store is never
written here; `labels_update` saves the overlay.

Memory stays bounded: edited chunks beyond `memory_budget` bytes are
spilled, least recently used first, to `.npy` files in a private temporary
folder (removed with the array), and a small cache keeps recently read
clean chunks so that a brush stroke or the status bar's value lookups do not
decode the same chunk again and again.
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from napari_omezarr_x.errors import RegionTooLargeError, StoreAccessError

Chunk = tuple[int, ...]
Box = tuple[tuple[int, int], ...]

#: Edited chunks kept in memory before the least recently used are spilled to disk.
MEMORY_BUDGET = 512 * 2**20
#: Recently read (unedited) chunks kept decoded.
CACHE_BYTES = 64 * 2**20
#: Largest region one read may return (a full 3D view of a huge volume is refused).
MAX_READ_BYTES = 4 * 2**30


class EditableArray:
    """Numpy-style reads and writes over a zarr array, edits kept in an overlay.

    `array` is an opened zarr array (read-only is fine: nothing is written to
    it); `where` names it in messages. `listeners` are called with the array
    after every change of its content or edit state.
    """

    def __init__(
        self,
        array: Any,
        where: str,
        *,
        memory_budget: int = MEMORY_BUDGET,
        cache_bytes: int = CACHE_BYTES,
        max_read_bytes: int = MAX_READ_BYTES,
    ) -> None:
        self.array = array
        self.where = where
        self.shape: tuple[int, ...] = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.chunks: tuple[int, ...] = tuple(int(c) for c in array.chunks)
        self.memory_budget = int(memory_budget)
        self.cache_bytes = int(cache_bytes)
        self.max_read_bytes = int(max_read_bytes)
        self.listeners: list[Callable[[EditableArray], None]] = []
        self.revision = 0
        self.lock = threading.RLock()
        self._dirty: OrderedDict[Chunk, np.ndarray] = OrderedDict()
        self._dirty_bytes = 0
        self._spilled: set[Chunk] = set()
        self._spill_dir: Path | None = None
        self._cache: OrderedDict[Chunk, np.ndarray] = OrderedDict()
        self._cache_bytes_used = 0

    # -- array protocol ---------------------------------------------------------------

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.where} shape={self.shape} dtype={self.dtype} "
            f"edited_chunks={self.edited_count}>"
        )

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self[(slice(None),) * self.ndim]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> Any:
        key = _expand(key, self.ndim)
        with self.lock:
            if _is_pointwise(key, self.ndim):
                return self._get_points(_points(key, self.shape))
            box, post = _bounding_box(key, self.shape)
            return self._read_box(box)[post]

    def __setitem__(self, key: Any, value: Any) -> None:
        key = _expand(key, self.ndim)
        with self.lock:
            if _is_pointwise(key, self.ndim):
                coords = _points(key, self.shape)
                self._set_points(coords, np.broadcast_to(np.asarray(value), coords[0].shape))
            else:
                box, post = _bounding_box(key, self.shape)
                whole = all(isinstance(p, slice) and p.step in (None, 1) for p in post)
                shape = tuple(hi - lo for lo, hi in box)
                if whole and _covers(post, shape):
                    self._write_box(box, np.broadcast_to(np.asarray(value), shape))
                else:
                    region = self._read_box(box)
                    region[post] = value
                    self._write_box(box, region)
            self._changed()

    def read(self, box: Box) -> np.ndarray:
        """A new array with the current content (edits included) of `box`."""
        with self.lock:
            return self._read_box(tuple((int(lo), int(hi)) for lo, hi in box))

    def read_stored(self, box: Box) -> np.ndarray:
        """A new array with what the store holds in `box`, ignoring edits."""
        return self._read_store(tuple((int(lo), int(hi)) for lo, hi in box))

    # -- edit state -------------------------------------------------------------------

    @property
    def has_edits(self) -> bool:
        """Whether any chunk was written since opening or the last save."""
        return bool(self._dirty or self._spilled)

    @property
    def edited_count(self) -> int:
        """Number of edited chunks."""
        return len(self._dirty) + len(self._spilled)

    @property
    def edited_bytes(self) -> int:
        """Bytes of edited chunks held in memory (spilled ones excluded)."""
        return self._dirty_bytes

    def edited_chunks(self) -> list[Chunk]:
        """Grid coordinates of the edited chunks, sorted."""
        with self.lock:
            return sorted({*self._dirty, *self._spilled})

    def chunk_box(self, chunk: Chunk) -> Box:
        """The (start, stop) range of `chunk` along each axis."""
        return tuple(
            (c * s, min((c + 1) * s, n))
            for c, s, n in zip(chunk, self.chunks, self.shape, strict=True)
        )

    def edited_chunk(self, chunk: Chunk) -> np.ndarray | None:
        """The edited content of `chunk` (read-only use), or None when it is not edited."""
        with self.lock:
            if chunk in self._dirty:
                return self._dirty[chunk]
            if chunk in self._spilled:
                return np.load(self._spill_path(chunk))
            return None

    def discard(self) -> None:
        """Forget every edit: reads show the store again."""
        with self.lock:
            self._clear_overlay()
            self._changed()

    def mark_saved(self) -> None:
        """The store now holds the edits: drop the overlay and cached chunks."""
        with self.lock:
            self._clear_overlay()
            self._cache.clear()
            self._cache_bytes_used = 0
            self._changed()

    def close(self) -> None:
        """Drop everything held, including the spill folder."""
        with self.lock:
            self._clear_overlay()
            self._cache.clear()
            self._cache_bytes_used = 0

    def _clear_overlay(self) -> None:
        self._dirty.clear()
        self._dirty_bytes = 0
        self._spilled.clear()
        if self._spill_dir is not None:
            shutil.rmtree(self._spill_dir, ignore_errors=True)
            self._spill_dir = None

    def _changed(self) -> None:
        self.revision += 1
        for listener in list(self.listeners):
            listener(self)

    # -- chunks -----------------------------------------------------------------------

    def _grid_range(self, box: Box) -> list[range]:
        return [range(lo // s, -(-hi // s)) for (lo, hi), s in zip(box, self.chunks, strict=True)]

    def _chunks_in(self, box: Box) -> Iterator[Chunk]:
        if any(lo >= hi for lo, hi in box):
            return iter(())
        return itertools.product(*self._grid_range(box))

    def _read_store(self, box: Box) -> np.ndarray:
        nbytes = math.prod(hi - lo for lo, hi in box) * self.dtype.itemsize
        if nbytes > self.max_read_bytes:
            raise RegionTooLargeError(
                f"{self.where}: reading {_gib(nbytes)} at once (region "
                f"{[(lo, hi) for lo, hi in box]}) is more than the {_gib(self.max_read_bytes)} "
                "allowed; view or edit a smaller part (a 2D plane rather than the whole volume)"
            )
        index = tuple(slice(lo, hi) for lo, hi in box)
        try:
            data = np.asarray(self.array[index], dtype=self.dtype)
        except Exception as exc:
            raise StoreAccessError(
                f"{self.where}: cannot read chunk data at {index}: {type(exc).__name__}: {exc}"
            ) from exc
        # zarr hands out a new array; copy only what is not ours to change.
        return data if data.flags.writeable and data.base is None else data.copy()

    def _chunk(self, chunk: Chunk) -> np.ndarray:
        """The current content of `chunk` (edited or stored); do not modify it."""
        if chunk in self._dirty:
            self._dirty.move_to_end(chunk)
            return self._dirty[chunk]
        if chunk in self._spilled:
            return self._unspill(chunk)
        cached = self._cache.get(chunk)
        if cached is not None:
            self._cache.move_to_end(chunk)
            return cached
        data = self._read_store(self.chunk_box(chunk))
        self._cache[chunk] = data
        self._cache_bytes_used += data.nbytes
        while self._cache_bytes_used > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes_used -= old.nbytes
        return data

    def _editable_chunk(self, chunk: Chunk, fresh: np.ndarray | None = None) -> np.ndarray:
        """The overlay copy of `chunk`, created from the store (or `fresh`) if needed."""
        if chunk in self._dirty:
            self._dirty.move_to_end(chunk)
            return self._dirty[chunk]
        if chunk in self._spilled:
            return self._unspill(chunk)
        if fresh is None:
            cached = self._cache.pop(chunk, None)
            if cached is not None:
                self._cache_bytes_used -= cached.nbytes
                fresh = cached
            else:
                fresh = self._read_store(self.chunk_box(chunk))
        self._dirty[chunk] = fresh
        self._dirty_bytes += fresh.nbytes
        self._spill_over(keep=chunk)
        return fresh

    def _spill_path(self, chunk: Chunk) -> Path:
        assert self._spill_dir is not None
        return self._spill_dir / ("c" + "_".join(str(c) for c in chunk) + ".npy")

    def _spill_over(self, keep: Chunk) -> None:
        """Move least recently used edited chunks to disk while over the budget."""
        while self._dirty_bytes > self.memory_budget and len(self._dirty) > 1:
            chunk, data = next(iter(self._dirty.items()))
            if chunk == keep:
                self._dirty.move_to_end(chunk)
                continue
            if self._spill_dir is None:
                self._spill_dir = Path(tempfile.mkdtemp(prefix="omezarrx-edits-"))
                weakref.finalize(self, shutil.rmtree, self._spill_dir, True)
            np.save(self._spill_path(chunk), data, allow_pickle=False)
            del self._dirty[chunk]
            self._dirty_bytes -= data.nbytes
            self._spilled.add(chunk)

    def _unspill(self, chunk: Chunk) -> np.ndarray:
        path = self._spill_path(chunk)
        data = np.load(path)
        path.unlink()
        self._spilled.discard(chunk)
        self._dirty[chunk] = data
        self._dirty_bytes += data.nbytes
        self._spill_over(keep=chunk)
        return data

    # -- regions ----------------------------------------------------------------------

    def _read_box(self, box: Box) -> np.ndarray:
        """A new array with the current content of `box`."""
        shape = tuple(hi - lo for lo, hi in box)
        if 0 in shape:
            return np.zeros(shape, dtype=self.dtype)
        grid = self._grid_range(box)
        count = math.prod(len(r) for r in grid)
        if count == 1:
            chunk = tuple(r.start for r in grid)
            local = _local(box, self.chunk_box(chunk))
            return np.array(self._chunk(chunk)[local], copy=True)
        edited = [c for c in (*self._dirty, *self._spilled) if _in_grid(c, grid)]
        out = np.empty(shape, dtype=self.dtype) if len(edited) == count else self._read_store(box)
        for chunk in edited:
            cbox = self.chunk_box(chunk)
            part = _intersect(box, cbox)
            out[_local(part, box)] = self._chunk(chunk)[_local(part, cbox)]
        return out

    def _write_box(self, box: Box, values: np.ndarray) -> None:
        """Write `values` (shaped like `box`) into the overlay."""
        for chunk in self._chunks_in(box):
            cbox = self.chunk_box(chunk)
            part = _intersect(box, cbox)
            piece = values[_local(part, box)]
            if part == cbox and chunk not in self._dirty and chunk not in self._spilled:
                self._drop_cached(chunk)
                self._editable_chunk(chunk, np.array(piece, dtype=self.dtype, copy=True))
            else:
                self._editable_chunk(chunk)[_local(part, cbox)] = piece

    def _drop_cached(self, chunk: Chunk) -> None:
        cached = self._cache.pop(chunk, None)
        if cached is not None:
            self._cache_bytes_used -= cached.nbytes

    def _get_points(self, coords: tuple[np.ndarray, ...]) -> np.ndarray:
        out = np.empty(coords[0].shape, dtype=self.dtype)
        flat_out = out.reshape(-1)
        for chunk, where, local in self._by_chunk(coords):
            flat_out[where] = self._chunk(chunk)[local]
        return out

    def _set_points(self, coords: tuple[np.ndarray, ...], values: np.ndarray) -> None:
        flat_values = values.reshape(-1)
        for chunk, where, local in self._by_chunk(coords):
            self._editable_chunk(chunk)[local] = flat_values[where]

    def _by_chunk(
        self, coords: tuple[np.ndarray, ...]
    ) -> Iterator[tuple[Chunk, np.ndarray, tuple[np.ndarray, ...]]]:
        """Points grouped by chunk: (chunk, positions in the flat input, local indices)."""
        flat = [c.reshape(-1) for c in coords]
        if not flat or flat[0].size == 0:
            return
        grid_shape = tuple(-(-n // s) for n, s in zip(self.shape, self.chunks, strict=True))
        which = np.ravel_multi_index(
            tuple(c // s for c, s in zip(flat, self.chunks, strict=True)), grid_shape
        )
        order = np.argsort(which, kind="stable")
        ids, starts = np.unique(which[order], return_index=True)
        ends = [*starts[1:], len(order)]
        for cid, lo, hi in zip(ids, starts, ends, strict=True):
            where = order[lo:hi]
            chunk = tuple(int(c) for c in np.unravel_index(int(cid), grid_shape))
            local = tuple(
                c[where] - k * s for c, k, s in zip(flat, chunk, self.chunks, strict=True)
            )
            yield chunk, where, local


# -- index arithmetic ------------------------------------------------------------------


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB"


def _expand(key: Any, ndim: int) -> tuple[Any, ...]:
    """`key` as a tuple of one entry per axis (Ellipsis expanded, lists as arrays)."""
    if not isinstance(key, tuple):
        key = (key,)
    key = tuple(np.asarray(k) if isinstance(k, list) else k for k in key)
    if any(k is None for k in key):
        raise IndexError("new axes (None) are not supported")
    # A boolean array covers as many axes as it has dimensions.
    used = sum(k.ndim if isinstance(k, np.ndarray) and k.dtype == bool else 1 for k in key)
    used -= sum(1 for k in key if k is Ellipsis)
    if sum(1 for k in key if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if used > ndim:
        raise IndexError(f"too many indices: array has {ndim} dimensions, {used} were indexed")
    fill = (slice(None),) * (ndim - used)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + fill + key[i + 1 :]
    else:
        key = key + fill
    out: list[Any] = []
    for k in key:
        if isinstance(k, np.ndarray) and k.dtype == bool:
            out.extend(np.nonzero(k))
        else:
            out.append(k)
    return tuple(out)


def _is_int(k: Any) -> bool:
    return isinstance(k, int | np.integer) and not isinstance(k, bool)


def _is_array(k: Any) -> bool:
    return isinstance(k, np.ndarray) and k.ndim > 0


def _is_pointwise(key: tuple[Any, ...], ndim: int) -> bool:
    """Every axis indexed by an integer array or an integer, with at least one array."""
    return (
        len(key) == ndim
        and any(_is_array(k) for k in key)
        and all(_is_array(k) or _is_int(k) or isinstance(k, np.ndarray) for k in key)
    )


def _points(key: tuple[Any, ...], shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    arrays = np.broadcast_arrays(*[np.asarray(k) for k in key])
    out = []
    for axis, (a, n) in enumerate(zip(arrays, shape, strict=True)):
        if a.dtype.kind not in "iu":
            raise IndexError(f"index arrays must hold integers, got {a.dtype} on axis {axis}")
        a = np.where(a < 0, a + n, a).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() >= n):
            raise IndexError(f"index out of bounds for axis {axis} with size {n}")
        out.append(a)
    return tuple(out)


def _bounding_box(key: tuple[Any, ...], shape: tuple[int, ...]) -> tuple[Box, tuple[Any, ...]]:
    """The smallest box holding what `key` selects, and `key` relative to that box."""
    box: list[tuple[int, int]] = []
    post: list[Any] = []
    for axis, (k, n) in enumerate(zip(key, shape, strict=True)):
        if isinstance(k, slice):
            r = range(*k.indices(n))
            if not r:
                box.append((0, 0))
                post.append(slice(0, 0))
                continue
            lo, hi = min(r[0], r[-1]), max(r[0], r[-1]) + 1
            sign = 1 if r.step > 0 else -1
            stop = r[-1] - lo + sign
            box.append((lo, hi))
            post.append(slice(r[0] - lo, None if stop < 0 else stop, r.step))
        elif _is_int(k) or (isinstance(k, np.ndarray) and k.ndim == 0):
            i = int(k)
            i = i + n if i < 0 else i
            if not 0 <= i < n:
                raise IndexError(f"index {int(k)} is out of bounds for axis {axis} with size {n}")
            box.append((i, i + 1))
            post.append(0)
        elif isinstance(k, np.ndarray):
            if k.dtype.kind not in "iu":
                raise IndexError(f"index arrays must hold integers, got {k.dtype}")
            a = np.where(k < 0, k + n, k)
            if a.size and (a.min() < 0 or a.max() >= n):
                raise IndexError(f"index out of bounds for axis {axis} with size {n}")
            lo, hi = (int(a.min()), int(a.max()) + 1) if a.size else (0, 0)
            box.append((lo, hi))
            post.append(a - lo)
        else:
            raise IndexError(f"unsupported index {k!r} on axis {axis}")
    return tuple(box), tuple(post)


def _covers(post: tuple[Any, ...], shape: tuple[int, ...]) -> bool:
    return all(
        isinstance(p, slice) and range(*p.indices(n)) == range(n)
        for p, n in zip(post, shape, strict=True)
    )


def _intersect(a: Box, b: Box) -> Box:
    return tuple((max(al, bl), min(ah, bh)) for (al, ah), (bl, bh) in zip(a, b, strict=True))


def _local(part: Box, within: Box) -> tuple[slice, ...]:
    return tuple(slice(lo - wl, hi - wl) for (lo, hi), (wl, _) in zip(part, within, strict=True))


def _in_grid(chunk: Chunk, grid: list[range]) -> bool:
    return all(c in r for c, r in zip(chunk, grid, strict=True))
