"""The limit rows: blosc alone encoding or decoding the same bytes on all cores, no zarr.

Chunks are loaded into memory untimed, a batch at a time (so memory stays a few
batches), then encoded (saves) or decoded (reads) with numcodecs' Blosc from one
thread per core; only those calls are timed. A tool's share of the limit is the
limit's time over the tool's: 100% would be a tool doing nothing but blosc.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path

import numpy as np
import zarr

BATCH_BYTES = 256 * 2**20


def cores() -> int:
    return len(os.sched_getaffinity(0))


def _codec(clevel: int = 5):
    from numcodecs import Blosc, blosc

    # One blosc thread per call: the parallelism is one call per core, as zarr's.
    blosc.use_threads = False
    return Blosc(cname="zstd", clevel=clevel, shuffle=Blosc.SHUFFLE)


def chunk_slices(shape: tuple[int, ...], chunks: tuple[int, ...]) -> Iterator[tuple[slice, ...]]:
    """The region of every chunk of an array, in C order."""
    counts = [math.ceil(s / c) for s, c in zip(shape, chunks, strict=True)]
    for index in product(*(range(n) for n in counts)):
        yield tuple(
            slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, chunks, shape, strict=True)
        )


def _batches(arrays: Iterable[zarr.Array]) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    size = 0
    for arr in arrays:
        for region in chunk_slices(arr.shape, arr.chunks):
            block = np.ascontiguousarray(arr[region])
            batch.append(block)
            size += block.nbytes
            if size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def encode_limit(arrays: list[zarr.Array], clevel: int = 5) -> dict:
    """Seconds blosc-zstd needs to encode (and then decode) every chunk of `arrays`."""
    codec = _codec(clevel)
    encode_s = decode_s = cpu_s = 0.0
    raw = packed = 0
    with ThreadPoolExecutor(cores()) as pool:
        for batch in _batches(arrays):
            cpu = time.process_time()
            start = time.perf_counter()
            encoded = list(pool.map(codec.encode, batch))
            encode_s += time.perf_counter() - start
            cpu_s += time.process_time() - cpu
            start = time.perf_counter()
            list(pool.map(codec.decode, encoded))
            decode_s += time.perf_counter() - start
            raw += sum(b.nbytes for b in batch)
            packed += sum(len(e) for e in encoded)
    return {
        "wall_s": encode_s,
        "cpu_s": cpu_s,
        "decode_s": decode_s,
        "raw_bytes": raw,
        "encoded_bytes": packed,
        "threads": cores(),
    }


def save_limit(kind: str, src: str, out: str, params: dict) -> dict:
    """The save limit: level 0 (the input) alone, or every level of a written pyramid."""
    pyramid = params.get("pyramid_of")
    if pyramid and Path(pyramid).exists():
        group = zarr.open_group(pyramid, mode="r")
        arrays = _image_arrays(group)
    else:
        arrays = [zarr.open_array(src, mode="r")]
    record = encode_limit(arrays, params.get("clevel", 5))
    record["levels"] = len(arrays)
    record["source"] = pyramid if pyramid else src
    return record


def _image_arrays(group: zarr.Group) -> list[zarr.Array]:
    """The level arrays of the first multiscale image in a group (or its labels)."""
    attrs = group.attrs.asdict()
    ome = attrs.get("ome", attrs)
    if "multiscales" not in ome and "labels" in ome:
        return _image_arrays(group[f"labels/{ome['labels'][0]}"])
    datasets = ome["multiscales"][0]["datasets"]
    return [group[d["path"]] for d in datasets]


def decode_limit(arr: zarr.Array, regions: list[tuple[slice, ...]]) -> dict:
    """Seconds blosc needs to decode, once each, the chunks that `regions` of `arr` touch.

    Reads the compressed chunk files of a local, unsharded blosc array untimed.
    """
    root = Path(str(arr.store_path.store.root)) / arr.path
    keys = sorted({key for region in regions for key in touched_keys(arr, region)})
    payloads = [(root / key).read_bytes() for key in keys if (root / key).exists()]
    codec = _codec()
    with ThreadPoolExecutor(cores()) as pool:
        start = time.perf_counter()
        decoded = list(pool.map(codec.decode, payloads))
        wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "chunks": len(payloads),
        "compressed_bytes": sum(map(len, payloads)),
        "decoded_bytes": sum(len(memoryview(d).cast("B")) for d in decoded),
    }


def touched_keys(arr: zarr.Array, region: tuple[slice | int, ...]) -> list[str]:
    """Store keys (relative to the array) of the chunks a region of `arr` overlaps."""
    ranges = []
    for sel, size, chunk in zip(region, arr.shape, arr.chunks, strict=True):
        if isinstance(sel, int):
            ranges.append(range(sel // chunk, sel // chunk + 1))
            continue
        start, stop, _ = sel.indices(size)
        ranges.append(range(start // chunk, (max(stop, start + 1) - 1) // chunk + 1))
    return [arr.metadata.encode_chunk_key(index) for index in product(*ranges)]
