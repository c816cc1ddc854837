"""How one multiscale image becomes zarr arrays: levels, chunks, codecs, attrs.

A `Plan` is everything needed to write one image (or label image) into a
group of a store being built: level graphs, chunks, shards, codecs and group
attributes. `create_arrays` makes their empty arrays; `execute.store_plans`
fills them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_omezarr_x.model import Axis, Channel
from napari_omezarr_x.storage import apply_engine, serial_store

from . import pyramid
from .documents import (
    default_label_colors,
    group_attrs,
    image_label_json,
    make_axes,
    multiscale_json,
    omero_json,
)

if TYPE_CHECKING:
    import dask.array as da

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Colors = Mapping[int, Sequence[float]] | Callable[[np.ndarray], Any]

#: Default Blosc compression level: zstd level 3 compresses several times
#: faster than level 5 for a few percent larger files.
CLEVEL = 3
#: Largest automatic shard (uncompressed bytes).
SHARD_BYTES = 16 * 2**20


@dataclass
class Plan:
    """One multiscale image to write at group `rel` of the store."""

    rel: str
    version: str
    axes: tuple[Axis, ...]
    levels: list[da.Array]
    factors: list[tuple[int, ...]]
    chunks: list[tuple[int, ...]]
    shards: list[tuple[int, ...] | None]
    compression: Any
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    name: str | None = None
    channels: list[Channel] = field(default_factory=list)
    label: dict[str, Any] | None = None
    colors: Colors | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Array path of each level inside the group ("0", "1", ... unless a save
    #: onto an object store needs fresh names beside the arrays it replaces).
    level_paths: list[str] = field(default_factory=list)
    rdefs: dict[str, Any] | None = None
    downsample: str | None = None  # None: levels given as they are

    def paths(self) -> list[str]:
        """The array path of every level."""
        return self.level_paths or [str(k) for k in range(len(self.levels))]

    def attrs(self, present: np.ndarray | None) -> dict[str, Any]:
        """The group attributes, once the values present in a label image are known."""
        content: dict[str, Any] = {
            "multiscales": [
                multiscale_json(
                    self.axes,
                    self.scale,
                    self.translate,
                    self.factors,
                    self.name,
                    self.version,
                    self.paths(),
                    self.downsample,
                )
            ]
        }
        if self.channels:
            content["omero"] = omero_json(
                self.channels, self.levels[0].dtype, self.version, self.rdefs
            )
        if self.label is not None:
            colors = self.colors
            if callable(colors):
                values = present if present is not None else np.zeros(0, dtype=np.int64)
                rgba = np.asarray(colors(values), dtype=float).reshape(len(values), -1)
                # The transparent background napari gives 0 is not a label colour.
                colors = {
                    int(v): tuple(c)
                    for v, c in zip(values, rgba, strict=True)
                    if v != 0 or c[-1] > 0
                }
            content["image-label"] = image_label_json(
                colors or {},
                self.label.get("properties") or [],
                self.version,
                self.label.get("source"),
            )
        content.update(self.extra)
        return group_attrs(self.version, content)


def is_multiscale(data: object) -> bool:
    """True for a list of levels (or napari's MultiScaleData), not a single array."""
    return isinstance(data, Sequence) and not isinstance(data, str | bytes)


def make_plan(
    rel: str,
    data: Any,
    *,
    version: str,
    axes: Sequence[str | Axis] | str | None = None,
    units: Sequence[str | None] | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    name: str | None = None,
    channels: Sequence[Channel] | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | bool | None = None,
    compression: str | None = "zstd",
    clevel: int = CLEVEL,
    levels: int | None = None,
    downsample: pyramid.Method = "mean",
    label: dict[str, Any] | None = None,
    colors: Colors | None = None,
    factors: Sequence[Sequence[int]] | None = None,
    rdefs: dict[str, Any] | None = None,
) -> Plan:
    """Check the inputs and lay out the levels of one image (nothing is computed).

    `factors` imposes cumulative per-level downsampling factors, as labels
    must mirror the levels of their image; `rdefs` are the omero rendering defaults.
    """
    import dask.array as da

    given = list(data) if is_multiscale(data) else [data]
    if not given:
        raise ValueError(f"{rel or 'image'}: no data to write")
    first = given[0]
    shape = tuple(int(n) for n in first.shape)
    dtype = np.dtype(first.dtype)
    ndim = len(shape)
    if label is not None and dtype.kind not in "iub":
        raise ValueError(f"labels {name or rel!r} must hold integers, got dtype {dtype}")
    if label is not None and dtype.kind == "b":
        # NGFF label images are integers: a boolean mask is stored as 0/1 uint8.
        given = [da.asarray(lv).astype(np.uint8) for lv in given]
        first, dtype = given[0], np.dtype(np.uint8)
    if label is not None and colors is None:
        # Colours for the values present: other readers show unlisted labels transparent,
        # and the spec recommends listing colours.
        colors = default_label_colors
    if downsample not in ("mean", "mode", "nearest"):
        raise ValueError(f"unknown downsampling {downsample!r}: use 'mean', 'mode' or 'nearest'")
    axis_objs = _axes(ndim, axes, units)
    types = [a.type for a in axis_objs]
    scale = _per_axis(scale, ndim, 1.0, "scale")
    translate = _per_axis(translate, ndim, 0.0, "translate")
    if any(s == 0 or not math.isfinite(s) for s in scale):
        raise ValueError(f"scale must be finite and non-zero, got {scale}")
    chunk0 = (
        pyramid.default_chunks(shape, dtype, types)
        if chunks is None
        else tuple(
            min(max(1, int(c)), n)
            for c, n in zip(_per_axis(chunks, ndim, 1, "chunks"), shape, strict=True)
        )
    )
    shard0 = _shards(shards, chunk0, shape, version, dtype.itemsize)

    if len(given) > 1:
        factors = [_factor(shape, tuple(lv.shape)) for lv in given]
        shapes = [tuple(int(n) for n in lv.shape) for lv in given]
    else:
        if factors is None:
            factors = pyramid.plan_factors(shape, types, scale, chunk0, levels)
        factors = [tuple(int(f) for f in fac) for fac in factors]
        if any(len(fac) != ndim or min(fac) < 1 for fac in factors):
            raise ValueError(f"factors {factors} do not fit an array of {ndim} dimensions")
        shapes = pyramid.level_shapes(shape, factors)
    lchunks = [tuple(min(c, n) for c, n in zip(chunk0, s, strict=True)) for s in shapes]
    lshards = [
        None
        if shard0 is None
        else tuple(min(sh, -(-n // c) * c) for sh, n, c in zip(shard0, s, ch, strict=True))
        for s, ch in zip(shapes, lchunks, strict=True)
    ]
    units_ = [sh or ch for sh, ch in zip(lshards, lchunks, strict=True)]

    if len(given) > 1:
        arrays = [
            _as_dask(lv, _unit_blocks(tuple(lv.shape), lv.dtype, u), u, [False] * ndim, da)
            for lv, u in zip(given, units_, strict=True)
        ]
    else:
        blocks = pyramid.level0_blocks(shape, dtype, units_[0], factors)
        even = [f > 1 for f in (factors[1] if len(factors) > 1 else factors[0])]
        level0 = _as_dask(first, blocks, units_[0], even, da)
        arrays = pyramid.build_levels(level0, factors, downsample, units_)
    return Plan(
        rel=rel,
        version=version,
        axes=axis_objs,
        levels=arrays,
        factors=factors,
        chunks=lchunks,
        shards=lshards,
        compression=_codecs(compression, clevel, version, dtype),
        scale=tuple(scale),
        translate=tuple(translate),
        name=name,
        channels=list(channels or []),
        label=label,
        colors=colors,
        rdefs=dict(rdefs) if rdefs else None,
        downsample=None if len(given) > 1 else downsample,
    )


def _axes(ndim: int, axes: Sequence[str | Axis] | str | None, units) -> tuple[Axis, ...]:
    if axes is not None and all(isinstance(a, Axis) for a in axes):
        objs = tuple(axes)  # type: ignore[arg-type]
        if len(objs) != ndim:
            raise ValueError(f"expected {ndim} axes, got {len(objs)}")
        return make_axes(
            ndim,
            [a.name for a in objs],
            units if units is not None else [a.unit for a in objs],
            [a.type for a in objs],
        )
    names = list(axes) if axes is not None else None
    return make_axes(ndim, names, units)  # type: ignore[arg-type]


def _per_axis(values, ndim: int, default, what: str) -> list:
    if values is None:
        return [default] * ndim
    values = [type(default)(v) for v in values]
    if len(values) != ndim:
        raise ValueError(f"expected {ndim} {what} values, got {len(values)}")
    return values


def _factor(shape0: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) != len(shape0):
        raise ValueError(f"pyramid levels differ in dimensions: {shape0} and {shape}")
    return tuple(max(1, round(a / b)) for a, b in zip(shape0, shape, strict=True))


def _shards(shards, chunks: tuple[int, ...], shape: tuple[int, ...], version: str, itemsize: int):
    if shards is None or shards is False:
        return None
    if version != "0.5":
        raise ValueError("sharding needs zarr v3: write OME-NGFF 0.5 or drop shards")
    if shards is True:
        # Grow the last two chunked axes in turn, up to 16 chunks and SHARD_BYTES per
        # shard: files are cut 4-16x while a shard (the unit each dask task writes)
        # stays small enough for streaming.
        out = list(chunks)
        axes = [i for i in range(len(shape)) if chunks[i] < shape[i]][-2:]
        grown = True
        while grown:
            grown = False
            for i in reversed(axes):
                bigger = out[i] * 2
                if (
                    out[i] < shape[i]
                    and math.prod(out) * 2 * itemsize <= SHARD_BYTES
                    and math.prod(out) * 2 <= 16 * math.prod(chunks)
                ):
                    out[i] = min(bigger, -(-shape[i] // chunks[i]) * chunks[i])
                    grown = True
        return tuple(out)
    out = tuple(int(s) for s in shards)
    if len(out) != len(chunks) or any(s % c for s, c in zip(out, chunks, strict=True)):
        raise ValueError(f"shards {out} must be whole multiples of chunks {chunks}")
    return out


def _unit_blocks(shape: tuple[int, ...], dtype, unit: tuple[int, ...]) -> tuple[int, ...]:
    return pyramid.level0_blocks(shape, dtype, unit, [(1,) * len(shape)])


def _as_dask(
    arr: Any, blocks: tuple[int, ...], unit: tuple[int, ...], even: list[bool], da_mod
) -> da.Array:
    """`arr` as a dask array in whole write units; a dask input already chunked
    that way (and not in huge chunks) is kept as is, saving a rechunk."""
    if isinstance(arr, da_mod.Array):
        limit = 4 * pyramid.BLOCK_BYTES
        biggest = math.prod(max(axis) for axis in arr.chunks) * arr.dtype.itemsize
        if pyramid.aligned_chunks(arr.chunks, unit, even) is None and biggest <= limit:
            return arr
        # Blocks that are whole input chunks and whole write units at once make the
        # rechunk a pure merge: no input chunk is read twice or held for long.
        merged = tuple(
            min(math.lcm(axis[0], u * (2 if ev and u % 2 else 1)), n)
            for axis, u, ev, n in zip(arr.chunks, unit, even, arr.shape, strict=True)
        )
        if math.prod(merged) * arr.dtype.itemsize <= limit:
            return arr.rechunk(merged)
        return arr.rechunk(blocks)
    return da_mod.from_array(arr, chunks=blocks, asarray=True, lock=False)


def _codecs(compression: Any, clevel: int, version: str, dtype: np.dtype) -> Any:
    """Compressor(s) for zarr.create_array: 'zstd'/'lz4' (Blosc with byte
    shuffle), 'gzip', None/'none', or a codec object passed through."""
    if compression is None or compression == "none":
        return None
    if not isinstance(compression, str):
        return compression
    name = compression.lower().removeprefix("blosc-")
    if version == "0.5":
        from zarr.codecs import BloscCodec, GzipCodec

        if name in ("zstd", "lz4", "lz4hc", "zlib", "blosclz"):
            shuffle = "bitshuffle" if dtype.itemsize == 1 else "shuffle"
            return BloscCodec(cname=name, clevel=clevel, shuffle=shuffle, typesize=dtype.itemsize)
        if name == "gzip":
            return GzipCodec(level=clevel)
    else:
        import numcodecs

        if name in ("zstd", "lz4", "lz4hc", "zlib", "blosclz"):
            shuffle = numcodecs.Blosc.BITSHUFFLE if dtype.itemsize == 1 else numcodecs.Blosc.SHUFFLE
            return numcodecs.Blosc(cname=name, clevel=clevel, shuffle=shuffle)
        if name == "gzip":
            return numcodecs.GZip(level=clevel)
    raise ValueError(f"unknown compression {compression!r}: use 'zstd', 'lz4', 'gzip' or None")


def create_arrays(root: Path, plans: Sequence[Plan]) -> list[list[Any]]:
    """Create the groups and (empty) level arrays of every plan under `root`."""
    import zarr

    apply_engine()
    # One dask task per core writes: zarrs (where it encodes) adds no threads of its own.
    store = serial_store(root)
    out = []
    for plan in plans:
        zfmt = 3 if plan.version == "0.5" else 2
        # Every intermediate folder must be a zarr group for readers to walk down.
        group = zarr.open_group(store, mode="a", zarr_format=zfmt)
        for part in [p for p in plan.rel.split("/") if p]:
            group = group.require_group(part)
        out.append(
            [
                group.create_array(**array_kwargs(plan, k, name))
                for k, name in enumerate(plan.paths())
            ]
        )
    return out


def array_kwargs(plan: Plan, k: int, name: str) -> dict[str, Any]:
    """Arguments of `create_array` for level `k` of `plan`, named `name`."""
    lv = plan.levels[k]
    kwargs: dict[str, Any] = {
        "name": name,
        "shape": lv.shape,
        "chunks": plan.chunks[k],
        "dtype": lv.dtype,
        "compressors": plan.compression,
        "fill_value": 0,
        # zarr's per-chunk emptiness check costs about a sixth of the write time
        # (30x a numpy `any`): off. Label blocks that are all background are
        # skipped before zarr instead (see `_SkipBackground`), which keeps painted
        # labels, mostly background, to few files.
        "config": {"write_empty_chunks": True},
    }
    if plan.version == "0.5":
        kwargs["dimension_names"] = [a.name for a in plan.axes]
        kwargs["shards"] = plan.shards[k]
    else:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    return kwargs
