"""The data check of `validate`: read and decode every stored chunk of the named arrays.

The metadata can be perfect while a chunk is truncated, overwritten or compressed with
a codec that does not match: only decoding every chunk finds that. Arrays are read one
write unit at a time (a chunk, or a whole shard of a sharded array) on a thread pool,
so zarr's I/O runs side by side; a failed shard is read again chunk by chunk to name
the inner chunk that broke it. A missing chunk is not an error: zarr defines it as the
fill value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from threading import Lock
from typing import Any

from napari_omezarr_x.storage import StoreLike, is_remote, open_location

#: Chunk (or shard) reads in flight at once.
WORKERS = 8

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BadChunk:
    """A chunk that cannot be read or decoded: its store key and what went wrong."""

    key: str
    message: str


def zarr_store(
    path: StoreLike, mapper: Any, storage_options: dict[str, Any] | None = None
) -> tuple[Any, str]:
    """A read-only zarr store showing what `mapper` (validate's key view of `path`)
    shows, and the prefix of that view inside it."""
    import fsspec
    import zarr.storage

    if isinstance(mapper, fsspec.FSMap) and not is_remote(path):
        # Folders and zips (also a zip's single top folder, bioformats2raw layout 1).
        return zarr.storage.FsspecStore.from_mapper(mapper, read_only=True), ""
    location = open_location(path, storage_options)  # http and object stores: zarr's own
    return location.store, location.path


def check_chunks(
    store: Any, arrays: Sequence[str], progress: Progress | None = None, prefix: str = ""
) -> list[BadChunk]:
    """Every chunk of the arrays at `arrays` (paths below `prefix` in the zarr `store`)
    that does not read and decode, in key order. `progress(done, total)` counts write
    units."""
    import zarr

    opened = []
    bad: list[BadChunk] = []
    for path in arrays:
        try:
            full = "/".join(p for p in (prefix.strip("/"), path) if p)
            opened.append((path, zarr.open_array(store=store, path=full, mode="r")))
        except Exception as exc:  # reported by the metadata checks already, if at all
            bad.append(BadChunk(path, f"cannot open the array: {type(exc).__name__}: {exc}"))
    units = [(path, array, index) for path, array in opened for index in _units(array)]
    total, done, lock = len(units), 0, Lock()

    def check(unit: tuple[str, Any, tuple[int, ...]]) -> list[BadChunk]:
        nonlocal done
        found = _check_unit(*unit)
        with lock:
            done += 1
            if progress is not None:
                progress(done, total)
        return found

    if progress is not None:
        progress(0, total)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for found in pool.map(check, units):
            bad.extend(found)
    return sorted(bad, key=lambda b: b.key)


def _units(array: Any) -> Iterator[tuple[int, ...]]:
    """Grid indices of the array's write units (shards when sharded, else chunks)."""
    unit = array.shards or array.chunks
    grid = [math.ceil(s / c) for s, c in zip(array.shape, unit, strict=True)]
    return itertools.product(*(range(n) for n in grid))


def _region(index: Sequence[int], unit: Sequence[int], shape: Sequence[int]) -> tuple:
    return tuple(
        slice(i * u, min((i + 1) * u, s)) for i, u, s in zip(index, unit, shape, strict=True)
    )


def _key(path: str, array: Any, index: Sequence[int]) -> str:
    return f"{path}/{array.metadata.encode_chunk_key(tuple(index))}".lstrip("/")


def _check_unit(path: str, array: Any, index: tuple[int, ...]) -> list[BadChunk]:
    """Read one chunk or shard; for a shard that fails, find the inner chunks that do."""
    unit = array.shards or array.chunks
    try:
        array[_region(index, unit, array.shape)]
        return []
    except Exception as exc:
        error = exc
    key = _key(path, array, index)
    if not array.shards:
        return [BadChunk(key, _describe(error))]
    per_shard = [s // c for s, c in zip(array.shards, array.chunks, strict=True)]
    inner = []
    for offset in itertools.product(*(range(n) for n in per_shard)):
        chunk = [i * n + o for i, n, o in zip(index, per_shard, offset, strict=True)]
        if any(c * size >= s for c, size, s in zip(chunk, array.chunks, array.shape, strict=True)):
            continue
        try:
            array[_region(chunk, array.chunks, array.shape)]
        except Exception as exc:
            inner.append(BadChunk(f"{key} (inner chunk {tuple(offset)})", _describe(exc)))
    return inner or [BadChunk(key, _describe(error))]


def _describe(exc: Exception) -> str:
    return f"chunk cannot be read or decoded: {type(exc).__name__}: {exc}"
