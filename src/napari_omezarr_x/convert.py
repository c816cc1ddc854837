"""Convert images (TIFF, PNG, JPEG, ...) or another OME-Zarr into OME-Zarr.

TIFF files are streamed: tifffile exposes them as a zarr store and dask reads one
chunk at a time, so a file larger than memory converts. OME-TIFF and ImageJ axes and
pixel sizes are kept. Other formats go through imageio (whole image in memory, as
napari's builtin reader does). An OME-Zarr source may be any StoreLike (an object-store
URL too). Writing goes through `write.write_image`, so the output is the same as
napari's "Save as OME-Zarr", to a folder or an object store, on a dask cluster when one
is active or given. An HCS plate is copied as a plate, field by field, with
`write.write_plate`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MetadataError, StoreAccessError
from .model import Axis, Channel, Plate
from .storage import StoreLike, is_remote

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
# tifffile axis codes -> NGFF axis; I and Q are unnamed page sequences (taken as z).
_TIFF_AXES = {
    "T": ("t", "time"),
    "C": ("c", "channel"),
    "S": ("c", "channel"),
    "Z": ("z", "space"),
    "I": ("z", "space"),
    "Q": ("z", "space"),
    "Y": ("y", "space"),
    "X": ("x", "space"),
}
_ORDER = {"t": 0, "c": 1, "z": 2, "y": 3, "x": 4}
_UNITS = {
    "µm": "micrometer",
    "\\u00B5m": "micrometer",
    "um": "micrometer",
    "micron": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "min": "minute",
    "h": "hour",
}


@dataclass
class Source:
    """An image to convert: level-0 data (lazy where possible) and what is known about it."""

    data: Any
    axes: list[Axis]
    scale: list[float]
    translate: list[float] | None = None
    name: str | None = None
    channels: list[Channel] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)  # model.Image label images
    levels: int | None = None


def convert(
    source: StoreLike,
    output: StoreLike,
    *,
    version: str = "0.5",
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    levels: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    storage_options: dict[str, Any] | None = None,
    scheduler: Any = None,
) -> str:
    """Convert `source` (image file or OME-Zarr) to an OME-Zarr at `output`; return its path.

    `source` may be any StoreLike OME-Zarr (an object-store URL included) and
    `output` a folder or an object-store URL; `storage_options` configure the
    object stores of both. The save runs on `scheduler` (a dask.distributed
    Client or scheduler address), or an active Client, as `write_image` does.
    An HCS plate stays a plate: every field of every well (all acquisitions)
    with its labels, written by `write.write_plate`.
    """
    from .write import add_labels, write_image

    options = {"storage_options": storage_options, "scheduler": scheduler}
    plate = _plate_of(source, storage_options)
    if plate is not None:
        return _convert_plate(
            plate,
            output,
            version=version,
            chunks=chunks,
            shards=shards,
            levels=levels,
            overwrite=overwrite,
            progress=progress,
            **options,
        )
    with open_source(source, storage_options) as image:
        out = write_image(
            output,
            image.data,
            axes=image.axes,
            scale=image.scale,
            translate=image.translate,
            name=image.name,
            channels=image.channels or None,
            version=version,
            chunks=chunks,
            shards=shards,
            levels=levels if levels is not None else image.levels,
            progress=progress,
            overwrite=overwrite,
            **options,
        )
        for label in image.labels:
            _add_label(out, label, image, functools.partial(add_labels, **options))
    return str(out)


def _plate_of(path: StoreLike, storage_options: dict[str, Any] | None) -> Plate | None:
    """The layout of the plate at `path` (every acquisition), or None for anything else."""
    from .read import looks_like_ome_zarr, read_ome_zarr

    if not (looks_like_ome_zarr(path, storage_options) or is_remote(path)):
        return None
    images = read_ome_zarr(path, storage_options=storage_options, acquisition="all")
    return images[0].plate if images and images[0].kind == "plate" else None


def _convert_plate(plate: Plate, output: StoreLike, **options: Any) -> str:
    """Copy a plate field by field; fields that cannot be read are reported and left out."""
    from .read import read_plate_fields
    from .write import FieldSpec, LabelsSpec, WellSpec
    from .write.plates import write_plate_like

    wells = []
    levels = options.pop("levels")
    fields_of = read_plate_fields(plate, options["storage_options"])
    for well, images in zip(plate.wells, fields_of, strict=True):
        fields = []
        for field_path, acquisition, image in zip(
            well.fields, well.acquisitions, images, strict=True
        ):
            if image is None:
                logger.warning("%s/%s: field not converted (unreadable)", well.path, field_path)
                continue
            source = _source_of(image)
            labels = [
                LabelsSpec(
                    data=_fit_label(label.levels[0], label.axes, source),
                    name=label.name or label.path.rsplit("/", 1)[-1],
                    colors=(label.label.colors or None) if label.label else None,
                    properties=(label.label.properties or ()) if label.label else (),
                )
                for label in image.labels
            ]
            fields.append(
                FieldSpec(
                    data=source.data,
                    group=field_path,
                    axes=source.axes,
                    scale=source.scale,
                    translate=source.translate,
                    name=source.name,
                    channels=source.channels or None,
                    acquisition=acquisition,
                    labels=labels,
                )
            )
            levels = levels if levels is not None else source.levels
        if fields:
            wells.append(WellSpec(plate.rows[well.row], plate.columns[well.column], fields))
    if not wells:
        raise MetadataError(f"{plate.store}: no field of the plate can be read")
    return write_plate_like(plate, output, wells, levels=levels, **options)


def _source_of(image: Any) -> Source:
    """What converting needs of a model image: level 0 and its metadata."""
    return Source(
        data=image.levels[0],
        axes=list(image.axes),
        scale=list(image.scale),
        translate=list(image.translate),
        name=image.name,
        channels=list(image.channels),
        labels=list(image.labels),
        levels=len(image.levels),
    )


def _add_label(out: str, label: Any, image: Source, add_labels: Callable[..., str]) -> None:
    """Copy one label image; one that does not fit the image is reported, not fatal."""
    meta = label.label
    name = label.name or label.path.rsplit("/", 1)[-1]
    try:
        add_labels(
            out,
            _fit_label(label.levels[0], label.axes, image),
            name,
            colors=(meta.colors or None) if meta is not None else None,
            properties=(meta.properties or ()) if meta is not None else (),
        )
    except ValueError as exc:
        logger.warning("labels %r not converted: %s", name, exc)


def _fit_label(data: Any, label_axes: Sequence[Axis], image: Source) -> Any:
    """Give a label image the image's length-1 axes it leaves out (zyx labels of a
    tczyx image with one time point), so it lines up with the image's axes."""
    names = [a.name for a in label_axes]
    image_names = [a.name for a in image.axes]
    target = [n for n in image_names if n != "c"]
    if names == target or [n for n in target if n in names] != names:
        return data
    missing = [n for n in target if n not in names]
    if any(image.data.shape[image_names.index(n)] != 1 for n in missing):
        return data
    return data[tuple(slice(None) if n in names else None for n in target)]


@contextlib.contextmanager
def open_source(path: StoreLike, storage_options: dict[str, Any] | None = None) -> Iterator[Source]:
    """Open `path` for reading; TIFF files stay open until the context ends."""
    from .read import looks_like_ome_zarr

    if looks_like_ome_zarr(path, storage_options) or is_remote(path):
        yield _from_ome_zarr(path, storage_options)
        return
    local = Path(path)
    if not local.exists():
        raise StoreAccessError(f"{path}: no such file or directory")
    if local.is_dir():
        raise StoreAccessError(f"{path}: a folder that is not an OME-Zarr store")
    if local.name.lower().endswith(TIFF_SUFFIXES):
        with _open_tiff(local) as image:
            yield image
        return
    yield _from_imageio(local)


def _from_ome_zarr(path: StoreLike, storage_options: dict[str, Any] | None) -> Source:
    from .read import read_ome_zarr

    images = read_ome_zarr(path, storage_options=storage_options)
    if not images:
        raise MetadataError(f"{path}: no image found to convert")
    if len(images) > 1:
        logger.warning(
            "%s holds %d images; converting the first (%s)",
            path,
            len(images),
            images[0].path or "/",
        )
    return _source_of(images[0])


@contextlib.contextmanager
def _open_tiff(path: Path) -> Iterator[Source]:
    import dask.array as da
    import tifffile
    import zarr

    try:
        tif = tifffile.TiffFile(path)
    except (OSError, tifffile.TiffFileError) as exc:
        raise StoreAccessError(f"{path}: cannot read TIFF ({exc})") from exc
    with tif:
        series = tif.series[0]
        store = series.aszarr(level=0)
        data = da.from_zarr(zarr.open_array(store, mode="r"))
        sizes = _ome_sizes(tif.ome_metadata) if tif.is_ome else _imagej_sizes(tif)
        data, axes = _ngff_axes(data, series.axes, sizes, path)
        scale = [sizes.get(a.name, (1.0, None))[0] for a in axes]
        channels = _ome_channels(tif.ome_metadata) if tif.is_ome else []
        if len(channels) != (data.shape[_index(axes, "c")] if _index(axes, "c") >= 0 else 0):
            channels = []
        name = series.name or path.name.split(".")[0]
        yield Source(data=data, axes=axes, scale=scale, name=name, channels=channels)


def _index(axes: Sequence[Axis], name: str) -> int:
    return next((i for i, a in enumerate(axes) if a.name == name), -1)


def _ngff_axes(
    data: Any, codes: str, sizes: dict[str, tuple[float, str | None]], path: Path
) -> tuple[Any, list[Axis]]:
    """Drop length-1 axes NGFF has no name for, and order the rest as t, c, z, y, x."""
    keep, names = [], []
    for i, code in enumerate(codes):
        mapped = _TIFF_AXES.get(code)
        if mapped is None or mapped[0] in names:
            if data.shape[i] != 1:
                raise MetadataError(
                    f"{path}: TIFF axis {code!r} ({data.shape[i]} long) has no OME-NGFF "
                    f"equivalent (axes {codes!r})"
                )
            continue
        keep.append(i)
        names.append(mapped[0])
    squeeze = tuple(i for i in range(data.ndim) if i not in keep)
    data = data.squeeze(axis=squeeze) if squeeze else data
    order = sorted(range(len(names)), key=lambda k: _ORDER[names[k]])
    data = data.transpose(order)
    axes = []
    for k in order:
        code = codes[keep[k]]
        name, kind = _TIFF_AXES[code]
        axes.append(Axis(name=name, type=kind, unit=sizes.get(name, (1.0, None))[1]))
    return data, axes


def _unit(unit: str | None) -> str | None:
    if not unit:
        return None
    return _UNITS.get(unit.strip(), unit.strip() if unit.strip().isalpha() else None)


def _imagej_sizes(tif: Any) -> dict[str, tuple[float, str | None]]:
    """Pixel sizes of an ImageJ TIFF: XResolution / YResolution tags, `spacing` for z."""
    meta = tif.imagej_metadata or {}
    unit = _unit(meta.get("unit"))
    sizes: dict[str, tuple[float, str | None]] = {}
    page = tif.pages[0]
    for axis, tag in (("x", "XResolution"), ("y", "YResolution")):
        value = page.tags.get(tag)
        if value is not None and unit is not None:
            num, den = value.value
            if num:
                sizes[axis] = (den / num, unit)
    if meta.get("spacing"):
        sizes["z"] = (float(meta["spacing"]), unit)
    if meta.get("finterval"):
        sizes["t"] = (float(meta["finterval"]), "second")
    return sizes


def _ome_pixels(xml: str | None) -> ET.Element | None:
    if not xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        logger.warning("OME-XML of the TIFF does not parse; pixel sizes not kept")
        return None
    return next((e for e in root.iter() if e.tag.endswith("}Pixels")), None)


def _ome_sizes(xml: str | None) -> dict[str, tuple[float, str | None]]:
    """Physical pixel sizes from OME-XML (default unit: micrometer, second)."""
    pixels = _ome_pixels(xml)
    sizes: dict[str, tuple[float, str | None]] = {}
    if pixels is None:
        return sizes
    for axis in ("X", "Y", "Z"):
        value = pixels.get(f"PhysicalSize{axis}")
        if value is not None:
            unit = _unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
            sizes[axis.lower()] = (float(value), unit)
    if pixels.get("TimeIncrement") is not None:
        unit = _unit(pixels.get("TimeIncrementUnit", "s"))
        sizes["t"] = (float(pixels.get("TimeIncrement")), unit)
    return sizes


def _ome_channels(xml: str | None) -> list[Channel]:
    """Channel names and colours from OME-XML (Color is a signed 32-bit RGBA int)."""
    pixels = _ome_pixels(xml)
    if pixels is None:
        return []
    channels = []
    for element in (e for e in pixels if e.tag.endswith("}Channel")):
        color = element.get("Color")
        hex_color = None
        if color is not None:
            rgba = int(color) & 0xFFFFFFFF
            hex_color = f"{rgba >> 24:02X}{(rgba >> 16) & 0xFF:02X}{(rgba >> 8) & 0xFF:02X}"
        channels.append(Channel(label=element.get("Name"), color=hex_color))
    return channels


def _from_imageio(path: Path) -> Source:
    """A non-TIFF image file read whole with imageio (PNG, JPEG, BMP, ...)."""
    import imageio.v3 as iio

    try:
        data = np.asarray(iio.imread(path))
    except Exception as exc:
        raise StoreAccessError(f"{path}: cannot read as an image ({exc})") from exc
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        data = np.moveaxis(data, -1, 0)
        axes = [Axis("c", "channel"), Axis("y", "space"), Axis("x", "space")]
    elif data.ndim == 2:
        axes = [Axis("y", "space"), Axis("x", "space")]
    else:
        names = ["t", "c", "z", "y", "x"][-data.ndim :] if 2 <= data.ndim <= 5 else None
        if names is None:
            raise MetadataError(f"{path}: {data.ndim}-d image; OME-NGFF allows 2 to 5 axes")
        axes = [
            Axis(n, "space" if n in "zyx" else ("time" if n == "t" else "channel")) for n in names
        ]
    channels = []
    if axes[0].name == "c" and data.shape[0] in (3, 4):
        colors = ["FF0000", "00FF00", "0000FF", "FFFFFF"]
        names = ["red", "green", "blue", "alpha"]
        channels = [Channel(label=names[i], color=colors[i]) for i in range(data.shape[0])]
    return Source(data=data, axes=axes, scale=[1.0] * data.ndim, name=path.stem, channels=channels)
