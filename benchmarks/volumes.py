"""Deterministic synthetic input volumes, written once as zarr and read lazily by every tool.

The image is a smooth separable pattern plus seeded noise (it compresses about as well as a
fluorescence volume); the labels are irregular boxes of constant id with background gaps.
Each chunk is generated from its own index, so the result does not depend on thread order.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec

GENERATOR_VERSION = 2
IMAGE_CHUNKS = (1, 64, 256, 256)
TILE = 256


def blosc_zstd() -> BloscCodec:
    """The codec every tool is asked to write with: blosc-zstd, level 5, byte shuffle."""
    return BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")


def clip_chunks(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks no larger than the array along any axis."""
    return tuple(min(c, s) for c, s in zip(chunks, shape, strict=True))


def pyramid_factors(spatial_shape: tuple[int, ...], tile: int = TILE) -> list[int]:
    """2x factors (isotropic, z included) until y and x fit in one tile: [2, 4, 8] for 2048."""
    factors: list[int] = []
    factor = 1
    while max(spatial_shape[-2:]) / factor > tile:
        factor *= 2
        factors.append(factor)
    return factors


def _chunk_grid(shape: tuple[int, ...], chunks: tuple[int, ...]):
    counts = [math.ceil(s / c) for s, c in zip(shape, chunks, strict=True)]
    for index in product(*(range(n) for n in counts)):
        yield (
            index,
            tuple(
                slice(i * c, min((i + 1) * c, s))
                for i, c, s in zip(index, chunks, shape, strict=True)
            ),
        )


def _image_block(index: tuple[int, ...], sel: tuple[slice, ...]) -> np.ndarray:
    c = sel[0].start
    z, y, x = (np.arange(s.start, s.stop, dtype=np.float32) for s in sel[1:])
    pz = 0.55 + 0.45 * np.sin(2 * np.pi * (z + 17 * c) / 41)
    py = 0.55 + 0.45 * np.cos(2 * np.pi * y / (131 + 20 * c))
    px = 0.55 + 0.45 * np.sin(2 * np.pi * x / 97)
    base = 300 + 2400 * (pz[:, None, None] * (py[:, None] * px[None, :])[None])
    rng = np.random.default_rng(list(index))
    noise = rng.integers(0, 48, size=base.shape, dtype=np.uint16)
    return (base.astype(np.uint16) + noise)[None]


def _label_block(index: tuple[int, ...], sel: tuple[slice, ...]) -> np.ndarray:
    z, y, x = (np.arange(s.start, s.stop, dtype=np.int64) for s in sel)
    wobble = (9 * np.sin(x / 23.0)).astype(np.int64)
    yy = (y[:, None] + wobble[None, :]) // 48
    xx = x[None, :] // 40
    zz = z // 12
    ids = 1 + zz[:, None, None] * 65536 + (yy * 256 + xx)[None] % 65536
    background = ((zz[:, None, None] + yy[None] + xx[None]) % 7) == 0
    return np.where(background, 0, ids).astype(np.uint32)


def _write(path: Path, shape, chunks, dtype, block_fn, dims) -> None:
    arr = zarr.create_array(
        store=str(path),
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        compressors=[blosc_zstd()],
        dimension_names=dims,
        overwrite=True,
    )

    def fill(item) -> None:
        index, sel = item
        arr[sel] = block_fn(index, sel)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(fill, _chunk_grid(shape, chunks)))


def ensure_inputs(workdir: Path, shape: tuple[int, int, int, int]) -> dict[str, str]:
    """Generate (once) the image (c, z, y, x) uint16 and labels (z, y, x) uint32 volumes."""
    name = "input-" + "x".join(map(str, shape))
    root = workdir / name
    marker = root / "complete.json"
    want = {"generator": GENERATOR_VERSION, "shape": list(shape)}
    paths = {"image": str(root / "image.zarr"), "labels": str(root / "labels.zarr")}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return paths
    root.mkdir(parents=True, exist_ok=True)
    _write(
        root / "image.zarr",
        shape,
        clip_chunks(shape, IMAGE_CHUNKS),
        "uint16",
        _image_block,
        ("c", "z", "y", "x"),
    )
    _write(
        root / "labels.zarr",
        shape[1:],
        clip_chunks(shape[1:], IMAGE_CHUNKS[1:]),
        "uint32",
        _label_block,
        ("z", "y", "x"),
    )
    marker.write_text(json.dumps(want))
    return paths
