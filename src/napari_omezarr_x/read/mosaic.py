"""Plates as lazy mosaics: one array per level whose reads fetch field tiles on demand.

A 384-well plate with 9 fields per well holds 3456 field images. Opening each
(a metadata request per array) would take minutes over HTTP, and concatenating
3456 dask arrays makes a graph that is slow to build and to slice. Instead each
mosaic level is a `MosaicLevel`, an array-like object of shape
(field, *tile axes) with y and x tiled on the plate's grid, wrapped once by
`dask.array.from_array`. Reading a region opens only the fields it touches (one
metadata request each, the first time), reads their tiles side by side, and
leaves absent wells and fields as zeros (no memory, no request).
"""

from __future__ import annotations

import itertools
import threading
import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from napari_omezarr_x.errors import NgffComplianceWarning, StoreAccessError
from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.storage import parallel

from .nodes import NodeReader, access_error, is_missing

#: Largest block (pixels along y and along x) that groups small tiles into one read.
BLOCK = 1024
#: Tiles of one block read at once (each waits on a round trip over a network).
TILE_WORKERS = 32

TileKey = tuple[int, int, int]  # (field index, grid row, grid column)


class FieldSource:
    """The level arrays of one field (or label) image, opened on first use and kept.

    Levels are looked up at the paths of the plate's first field; a field that
    names its levels differently is asked for its own `multiscales`. A missing
    field (or level) is remembered as None: shown empty, never asked again.
    """

    def __init__(self, reader: NodeReader, path: str, level_paths: Sequence[str]) -> None:
        self.reader = reader
        self.path = path
        self.level_paths = list(level_paths)
        self._arrays: dict[int, Any] = {}
        self._lock = threading.Lock()

    def level(self, k: int) -> Any | None:
        """The zarr array of level `k`, or None when the field has none."""
        with self._lock:
            if k not in self._arrays:
                self._arrays[k] = self._open(k)
            return self._arrays[k]

    def opened(self, k: int) -> bool:
        return k in self._arrays

    def level_path(self, k: int) -> str:
        return self.reader.loc.join(self.path, self.level_paths[k])

    def prime(self, k: int, document: Any) -> None:
        """Level `k` from its metadata document fetched in a batch with other fields';
        anything else than a readable document is left to `level` to find out."""
        if not isinstance(document, bytes):
            return
        with self._lock:
            if k in self._arrays:
                return
            try:
                self._arrays[k] = self.reader.array_from_document(self.level_path(k), document)
            except Exception:  # `level` opens it through zarr and reports what is wrong
                return

    def _open(self, k: int) -> Any | None:
        loc = self.reader.loc
        array = self._array(loc.join(self.path, self.level_paths[k]))
        if array is not None:
            return array
        try:
            attrs = self.reader.group(self.path).attrs
            own = md.parse_multiscale(attrs, loc.describe(self.path)).paths
        except Exception as exc:  # an absent or odd field is shown empty
            if not is_missing(exc):
                raise access_error(loc.describe(self.path), exc) from exc
            return None
        if k < len(own) and own[k] != self.level_paths[k]:
            return self._array(loc.join(self.path, own[k]))
        return None

    def _array(self, path: str) -> Any | None:
        try:
            return self.reader.array(path, self.reader.zarr_format)
        except Exception as exc:
            if is_missing(exc):
                return None
            raise access_error(self.reader.loc.describe(path), exc) from exc


class MosaicLevel:
    """One mosaic level as a read-only numpy-style array.

    Shape (n_fields, *tile[:-2], rows * tile[-2], columns * tile[-1]): field f
    of the well at grid (r, c) fills index f of the first axis and the tile at
    (r, c) of the last two. Any basic index (ints, slices with steps) and
    integer arrays are accepted, as dask passes them.
    """

    def __init__(
        self,
        sources: Mapping[TileKey, FieldSource],
        level: int,
        tile: Sequence[int],
        grid: tuple[int, int],
        n_fields: int,
        dtype: Any,
        where: str,
    ) -> None:
        self.sources = dict(sources)
        self.level = level
        self.tile = tuple(int(n) for n in tile)
        self.grid = grid
        self.dtype = np.dtype(dtype)
        self.where = where
        self.shape = (
            int(n_fields),
            *self.tile[:-2],
            grid[0] * self.tile[-2],
            grid[1] * self.tile[-1],
        )
        self.ndim = len(self.shape)
        self._warned: set[str] = set()

    def __getitem__(self, key: Any) -> np.ndarray:
        ranges, post = _selection(key, self.shape)
        out = np.zeros([len(r) for r in ranges], dtype=self.dtype)
        jobs = list(self._jobs(ranges))
        self._prime([job[0] for job in jobs])
        errors: list[tuple[str, Exception]] = []

        def run(job: tuple[Any, ...]) -> None:
            source, f_out, inner, y_part, x_part = job
            try:
                self._read_tile(out, source, f_out, inner, y_part, x_part)
            except Exception as exc:  # one broken field must not blank the plate
                errors.append((source.path, exc))

        if len(jobs) == 1:
            run(jobs[0])
        else:
            parallel([lambda job=job: run(job) for job in jobs], TILE_WORKERS)
        self._report(errors, len(jobs))
        return out[post] if post else out

    def _prime(self, sources: list[FieldSource]) -> None:
        """Fetch the metadata of the fields this read opens for the first time in one
        batch, instead of one zarr open (one round trip) per field."""
        new = [s for s in dict.fromkeys(sources) if not s.opened(self.level)]
        if len(new) < 2:
            return
        documents = new[0].reader.array_documents([s.level_path(self.level) for s in new])
        for source, document in zip(new, documents or [], strict=False):
            source.prime(self.level, document)

    def _jobs(self, ranges: list[range]) -> Any:
        """(source, output field index, inner ranges, y part, x part) of every tile touched."""
        rows = _tile_parts(ranges[-2], self.tile[-2], self.grid[0])
        cols = _tile_parts(ranges[-1], self.tile[-1], self.grid[1])
        for f_out, f in enumerate(ranges[0]):
            for (r, y_part), (c, x_part) in itertools.product(rows, cols):
                source = self.sources.get((f, r, c))
                if source is not None:
                    yield source, f_out, ranges[1:-2], y_part, x_part

    def _read_tile(
        self,
        out: np.ndarray,
        source: FieldSource,
        f_out: int,
        inner: list[range],
        y_part: tuple[range, slice],
        x_part: tuple[range, slice],
    ) -> None:
        array = source.level(self.level)
        if array is None:
            return
        wanted = [*inner, y_part[0], x_part[0]]
        if len(array.shape) != len(wanted):
            raise StoreAccessError(
                f"{source.reader.loc.describe(source.path)}: has {len(array.shape)} dimensions, "
                f"the plate's first field {len(wanted)}"
            )
        index, counts = [], []
        for want, n in zip(wanted, array.shape, strict=True):
            kept = len(range(want.start, min(want.stop, n), want.step))
            if kept == 0:
                return  # the field is smaller than the tile: this part stays empty
            index.append(slice(want.start, want.start + (kept - 1) * want.step + 1, want.step))
            counts.append(kept)
        data = np.asarray(array[tuple(index)])
        y0, x0 = y_part[1].start, x_part[1].start
        target = (
            f_out,
            *(slice(0, k) for k in counts[:-2]),
            slice(y0, y0 + counts[-2]),
            slice(x0, x0 + counts[-1]),
        )
        out[target] = data.astype(self.dtype, copy=False)

    def _report(self, errors: list[tuple[str, Exception]], n_jobs: int) -> None:
        if not errors:
            return
        if len(errors) == n_jobs and n_jobs > 0:
            exc = errors[0][1]
            raise StoreAccessError(
                f"{self.where}: no field of this view can be read: {exc}"
            ) from exc
        new = [(p, e) for p, e in errors if p not in self._warned]
        self._warned.update(p for p, _ in new)
        if new:
            warnings.warn(
                f"{self.where}: {len(new)} field(s) cannot be read and are shown empty; "
                f"first: {new[0][1]}",
                NgffComplianceWarning,
                stacklevel=3,
            )


def _tile_parts(wanted: range, size: int, count: int) -> list[tuple[int, tuple[range, slice]]]:
    """For each grid cell a range touches: (cell, (range inside the cell, output slice))."""
    parts = []
    if len(wanted) == 0:
        return parts
    step = wanted.step
    first = wanted.start // size
    last = wanted[-1] // size
    for cell in range(first, min(last, count - 1) + 1):
        lo, hi = cell * size, (cell + 1) * size
        j0 = max(0, -(-(lo - wanted.start) // step))
        j1 = min(len(wanted), -(-(hi - wanted.start) // step))
        if j0 < j1:
            local = range(wanted[j0] - lo, wanted[j1 - 1] - lo + 1, step)
            parts.append((cell, (local, slice(j0, j1))))
    return parts


def _selection(key: Any, shape: tuple[int, ...]) -> tuple[list[range], tuple[Any, ...]]:
    """Increasing ranges to read per axis, and the index that turns them into the result.

    Integers become one-element ranges dropped afterwards; negative steps are
    read forwards and reversed; integer arrays read their span and pick from it.
    """
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (len(shape) - len(key) + 1)
        key = key[:at] + fill + key[at + 1 :]
    key = key + (slice(None),) * (len(shape) - len(key))
    if len(key) != len(shape):
        raise IndexError(f"too many indices for an array of {len(shape)} dimensions")
    ranges: list[range] = []
    post: list[Any] = []
    picked = False
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, int | np.integer):
            i = int(k) + n if k < 0 else int(k)
            if not 0 <= i < n:
                raise IndexError(f"index {k} is out of bounds for an axis of length {n}")
            ranges.append(range(i, i + 1))
            post.append(0)
            picked = True
        elif isinstance(k, slice):
            r = range(*k.indices(n))
            if r.step < 0:
                ranges.append(r[::-1])
                post.append(slice(None, None, -1))
                picked = True
            else:
                ranges.append(r)
                post.append(slice(None))
        else:
            values = np.asarray(k)
            if values.dtype.kind not in "iu" or values.ndim != 1:
                raise TypeError(f"unsupported index {k!r} for a plate mosaic")
            values = np.where(values < 0, values + n, values)
            lo = int(values.min()) if values.size else 0
            hi = int(values.max()) + 1 if values.size else 0
            ranges.append(range(lo, hi))
            post.append(values - lo)
            picked = True
    return ranges, _outer(post) if picked else ()


def _outer(post: list[Any]) -> tuple[Any, ...]:
    """An index that applies each axis's pick independently (numpy's outer indexing)."""
    arrays = [i for i, p in enumerate(post) if isinstance(p, np.ndarray)]
    if len(arrays) <= 1:
        return tuple(post)
    grids = np.ix_(*[post[i] for i in arrays])
    out = list(post)
    for i, grid in zip(arrays, grids, strict=True):
        out[i] = grid
    return tuple(out)


def level_chunks(
    n_fields: int, tile: Sequence[int], chunks: Sequence[int], grid: tuple[int, int]
) -> tuple[tuple[int, ...], ...]:
    """Dask chunks of a mosaic level: one field per block; the stored chunks inside
    a tile; tiles of BLOCK / 4 or less grouped so that one block reads many side by side."""
    inner = tuple(_regular(n, c) for n, c in zip(tile[:-2], chunks[:-2], strict=True))
    return (
        (1,) * n_fields,
        *inner,
        _tiled(tile[-2], chunks[-2], grid[0]),
        _tiled(tile[-1], chunks[-1], grid[1]),
    )


def _regular(n: int, chunk: int) -> tuple[int, ...]:
    chunk = max(1, min(int(chunk), n)) if n else 1
    if n == 0:
        return (0,)
    return (chunk,) * (n // chunk) + ((n % chunk,) if n % chunk else ())


def _tiled(size: int, chunk: int, count: int) -> tuple[int, ...]:
    # Only small tiles are grouped: a view of one well at full resolution must not
    # read its neighbours too.
    if size <= BLOCK // 4:
        group = max(1, BLOCK // max(size, 1))
        whole, rest = divmod(count, group)
        return (group * size,) * whole + ((rest * size,) if rest else ())
    return _regular(size, chunk) * count


def mosaic_array(level: MosaicLevel, chunks: Sequence[int]) -> Any:
    """A lazy dask view of `level`; `chunks` are the first field's stored chunks."""
    import dask.array as da

    blocks = level_chunks(level.shape[0], level.tile, chunks, level.grid)
    return da.from_array(
        level,
        chunks=blocks,
        name=f"omezarrx-mosaic-{uuid.uuid4().hex}",
        meta=np.empty((0,) * level.ndim, dtype=level.dtype),
        inline_array=True,
        asarray=False,
    )


def fit(level: Any, tile: Sequence[int]) -> Any:
    """A dask array cropped or padded with zeros to `tile` (fields of different sizes)."""
    import dask.array as da

    level = level[tuple(slice(0, t) for t in tile)]
    pad = [(0, t - s) for s, t in zip(level.shape, tile, strict=True)]
    return da.pad(level, pad, mode="constant") if any(p for _, p in pad) else level


def stack_fields(fields: Sequence[Sequence[Any] | None], dtype: Any) -> list[Any]:
    """Levels of field images stacked on a new first axis, each level padded to the
    largest field; absent fields (None) are zeros. Levels: as many as every field has."""
    import dask.array as da

    present = [levels for levels in fields if levels is not None]
    n_levels = min(len(levels) for levels in present)
    out = []
    for k in range(n_levels):
        tile = tuple(int(v) for v in np.max([levels[k].shape for levels in present], axis=0))
        chunks = present[0][k].chunksize
        empty = da.zeros(
            tile, dtype=dtype, chunks=tuple(min(c, t) for c, t in zip(chunks, tile, strict=True))
        )
        out.append(
            da.stack(
                [
                    empty if levels is None else fit(levels[k].astype(dtype), tile)
                    for levels in fields
                ]
            )
        )
    return out
