"""OME-Zarr fixtures for every NGFF version, written with zarr directly.

Deliberately independent of the project's writer, so reader tests do not
depend on it. Each function writes real files and returns the group path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import zarr

# Versions a fixture can be written in; "0.4-flat" uses '.' chunk keys,
# "0.5-sharded" puts 2x2 inner chunks into shards.
VERSIONS = ("0.1", "0.2", "0.3", "0.4", "0.4-flat", "0.5", "0.5-sharded", "0.6")

AXES_5D = [
    {"name": "t", "type": "time", "unit": "second"},
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space", "unit": "micrometer"},
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]


def zarr_format(version: str) -> int:
    """zarr format a fixture version uses."""
    return 3 if version.startswith(("0.5", "0.6")) else 2


def write_array(
    group: zarr.Group, name: str, data: np.ndarray, version: str, chunks: tuple[int, ...]
) -> zarr.Array:
    """One array in the layout of `version` (chunk key style, sharding)."""
    kwargs: dict[str, Any] = {"chunks": chunks}
    if version == "0.4-flat":
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "."}
    elif zarr_format(version) == 2:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    if version == "0.5-sharded":
        kwargs["shards"] = tuple(c * 2 for c in chunks)
    arr = group.create_array(name, shape=data.shape, dtype=data.dtype, fill_value=0, **kwargs)
    arr[...] = data
    return arr


def set_ome(group: zarr.Group, version: str, ome: dict[str, Any]) -> None:
    """Store OME attributes as `version` does (v3 `ome` object, or v2 top-level keys)."""
    if zarr_format(version) == 3:
        group.attrs["ome"] = {
            "version": version.split("-")[0] if version != "0.6" else "0.6.dev2",
            **ome,
        }
    else:
        group.attrs.update(ome)


def multiscale(
    version: str,
    axes: list[dict[str, Any]],
    paths: list[str],
    scales: list[list[float]],
    translation: list[float] | None = None,
    name: str | None = "image",
) -> dict[str, Any]:
    """A `multiscales` entry in the dialect of `version`."""
    base = version.split("-")[0]
    entry: dict[str, Any] = {"name": name} if name else {}
    if base in ("0.1", "0.2"):
        entry.update(version=base, datasets=[{"path": p} for p in paths])
        return entry
    if base == "0.3":
        entry.update(
            version=base, axes=[a["name"] for a in axes], datasets=[{"path": p} for p in paths]
        )
        return entry
    datasets = []
    for path, scale in zip(paths, scales, strict=True):
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": scale}]
        if translation is not None:
            transforms.append({"type": "translation", "translation": translation})
        if base == "0.6":
            transforms = [
                {
                    "type": "sequence",
                    "input": path,
                    "output": "physical",
                    "transformations": transforms,
                }
            ]
        datasets.append({"path": path, "coordinateTransformations": transforms})
    entry["datasets"] = datasets
    if base == "0.6":
        entry["coordinateSystems"] = [{"name": "physical", "axes": axes}]
    else:
        entry["axes"] = axes
    if base == "0.4":
        entry["version"] = "0.4"
    return entry


def write_image(
    path: Path,
    version: str,
    *,
    shape: tuple[int, ...] = (1, 2, 3, 8, 8),
    levels: int = 2,
    dtype: str = "uint16",
    pixel: float = 0.5,
    channels: list[dict[str, Any]] | None = None,
    labels: dict[str, dict[str, Any]] | None = None,
    name: str | None = "image",
) -> Path:
    """A 5-D (tczyx) image with `levels` levels halving y and x, optional omero and labels.

    `labels` maps a label name to its `image-label` dict (or `{}` for none).
    Level i holds values `i * 1000 + arange` so tests can tell levels apart.
    """
    fmt = zarr_format(version)
    root = zarr.open_group(path, mode="w", zarr_format=fmt)
    axes = AXES_5D[-len(shape) :]
    paths = _write_levels(root, version, shape, levels, dtype)
    scale0 = [1.0] * (len(shape) - 2) + [pixel, pixel]
    scales = [
        [s * (2**i if k >= len(shape) - 2 else 1) for k, s in enumerate(scale0)]
        for i in range(levels)
    ]
    ome: dict[str, Any] = {"multiscales": [multiscale(version, axes, paths, scales, name=name)]}
    if channels is not None:
        ome["omero"] = {"channels": channels}
    set_ome(root, version, ome)
    for label_name, image_label in (labels or {}).items():
        _write_label(root, version, label_name, image_label, shape, axes, scales)
    if labels:
        set_ome(root.require_group("labels"), version, {"labels": list(labels)})
    return path


def _write_levels(
    group: zarr.Group, version: str, shape: tuple[int, ...], levels: int, dtype: str
) -> list[str]:
    paths = []
    for i in range(levels):
        level_shape = tuple(shape[:-2]) + tuple(max(1, s // 2**i) for s in shape[-2:])
        data = (np.arange(np.prod(level_shape)) % 200 + i * 1000).astype(dtype)
        write_array(
            group, str(i), data.reshape(level_shape), version, tuple(min(4, s) for s in level_shape)
        )
        paths.append(str(i))
    return paths


def _write_label(
    root: zarr.Group,
    version: str,
    name: str,
    image_label: dict[str, Any],
    shape: tuple[int, ...],
    axes: list[dict[str, Any]],
    scales: list[list[float]],
) -> None:
    keep = [i for i, a in enumerate(axes) if a.get("type") != "channel"]
    label_shape = tuple(shape[i] for i in keep)
    label_axes = [axes[i] for i in keep]
    group = root.require_group("labels").create_group(name)
    data = (np.arange(np.prod(label_shape)) % 5).astype("uint32").reshape(label_shape)
    write_array(group, "0", data, version, tuple(min(4, s) for s in label_shape))
    ome: dict[str, Any] = {
        "multiscales": [
            multiscale(version, label_axes, ["0"], [[scales[0][i] for i in keep]], name=name)
        ]
    }
    if image_label:
        ome["image-label"] = image_label
    set_ome(group, version, ome)


def write_json(path: Path, doc: Any) -> None:
    """Write a JSON metadata document (used to corrupt or hand-craft metadata)."""
    path.write_text(json.dumps(doc))


def write_plate(
    path: Path,
    version: str,
    *,
    rows: tuple[str, ...] = ("A", "B"),
    columns: tuple[str, ...] = ("1", "2", "3"),
    wells: tuple[str, ...] = ("A/1", "B/3"),
    fields: int = 2,
    shape: tuple[int, ...] = (2, 8, 8),
    labels: bool = False,
    acquisitions: tuple[int, ...] | None = None,
) -> Path:
    """A plate whose wells each hold `fields` images (cyx by default).

    Field f of the i-th listed well is filled with (10 * (i + 1) + f) % 256,
    so tests can tell tiles apart; its labels with 1 + f + 10 * i where the
    label image is not 0 (a 0..4 pattern). `acquisitions` (one id per field)
    puts field f into acquisition `acquisitions[f]`, listed by the plate.
    """
    fmt = zarr_format(version)
    root = zarr.open_group(path, mode="w", zarr_format=fmt)
    plate_wells = []
    for well in wells:
        row, col = well.split("/")
        plate_wells.append(
            {"path": well, "rowIndex": rows.index(row), "columnIndex": columns.index(col)}
        )
    plate = {
        "name": "test plate",
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in columns],
        "wells": plate_wells,
        "field_count": fields,
    }
    if acquisitions is not None:
        plate["acquisitions"] = [{"id": a, "name": f"run {a}"} for a in sorted(set(acquisitions))]
    if fmt == 2:
        plate["version"] = "0.4"
    set_ome(root, version, {"plate": plate})
    axes = [a for a in AXES_5D if a["name"] in "cyx"][-len(shape) :]
    for index, well in enumerate(wells):
        well_group = root.require_group(well)
        well_meta: dict[str, Any] = {"images": [{"path": str(f)} for f in range(fields)]}
        if acquisitions is not None:
            for f, image in enumerate(well_meta["images"]):
                image["acquisition"] = acquisitions[f]
        if fmt == 2:
            well_meta["version"] = "0.4"
        set_ome(well_group, version, {"well": well_meta})
        for f in range(fields):
            field = well_group.create_group(str(f))
            data = np.full(shape, (10 * (index + 1) + f) % 256, dtype="uint8")
            write_array(field, "0", data, version, shape)
            half = data[..., ::2, ::2]
            write_array(field, "1", np.ascontiguousarray(half), version, half.shape)
            scales = [[1.0] * (len(shape) - 2) + [0.5 * 2**i] * 2 for i in range(2)]
            set_ome(
                field, version, {"multiscales": [multiscale(version, axes, ["0", "1"], scales)]}
            )
            if labels:
                _write_label(field, version, "cells", {}, shape, axes, scales)
                cells = field["labels/cells/0"]
                pattern = cells[...]
                cells[...] = np.where(pattern > 0, 1 + f + 10 * index, 0).astype(pattern.dtype)
                set_ome(field.require_group("labels"), version, {"labels": ["cells"]})
    return path


def write_collection(
    path: Path,
    version: str,
    n_series: int,
    *,
    shape: tuple[int, ...] = (2, 16, 16),
    xml: bool = True,
) -> Path:
    """A bioformats2raw (layout 3) collection of `n_series` images named "series <i>"
    in its OME-XML (with their sizes), each `shape` (cyx) filled with its index + 1."""
    fmt = zarr_format(version)
    root = zarr.open_group(path, mode="w", zarr_format=fmt)
    set_ome(root, version, {"bioformats2raw.layout": 3})
    axes = [a for a in AXES_5D if a["name"] in "cyx"][-len(shape) :]
    images = []
    for i in range(n_series):
        group = root.create_group(str(i))
        write_array(group, "0", np.full(shape, i + 1, dtype="uint8"), version, shape)
        set_ome(
            group,
            version,
            {"multiscales": [multiscale(version, axes, ["0"], [[1.0] * len(shape)], name=None)]},
        )
        c, y, x = (1, *shape)[-3:]
        images.append(
            f'<Image ID="Image:{i}" Name="series {i}"><Pixels ID="Pixels:{i}" '
            f'DimensionOrder="XYZCT" SizeT="1" SizeC="{c}" SizeZ="1" SizeY="{y}" SizeX="{x}" '
            'Type="uint8"/></Image>'
        )
    ome = root.create_group("OME")
    set_ome(ome, version, {"series": [str(i) for i in range(n_series)]})
    if xml:
        (path / "OME" / "METADATA.ome.xml").write_text(
            '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
            + "".join(images)
            + "</OME>"
        )
    return path


def record_reads(monkeypatch: Any) -> list[str]:
    """Keys of the local store read from now on, whichever codec engine reads them.

    zarr-python's pipeline reads through `LocalStore.get`; zarrs reads chunk files
    itself, so its pipeline's `read` is recorded too (the chunk keys it is handed), and
    so are the chunk files our reader reads in part or whole (`storage.blosc.read_part`,
    `read_whole`; their paths, which end with the key).
    """
    keys: list[str] = []
    original_get = zarr.storage.LocalStore.get

    async def get(self, key, *args, **kwargs):
        keys.append(key)
        return await original_get(self, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", get)
    from napari_omezarr_x.storage import blosc

    original_part = blosc.read_part

    def read_part(path, *args):
        keys.append(str(path))
        return original_part(path, *args)

    monkeypatch.setattr(blosc, "read_part", read_part)
    original_whole = blosc.read_whole

    def read_whole(path, *args):
        keys.append(str(path))
        return original_whole(path, *args)

    monkeypatch.setattr(blosc, "read_whole", read_whole)
    try:
        from napari_omezarr_x.storage.native import GuardedZarrsPipeline
    except ImportError:  # zarrs not installed: every read goes through LocalStore.get
        return keys
    original_read = GuardedZarrsPipeline.read

    async def read(self, batch_info, out, drop_axes=()):
        batch = list(batch_info)
        keys.extend(item[0].path for item in batch)
        return await original_read(self, batch, out, drop_axes)

    monkeypatch.setattr(GuardedZarrsPipeline, "read", read)
    return keys
