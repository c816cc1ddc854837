"""What the writer needs to know about an existing OME-Zarr image to add labels:
its NGFF version, level-0 geometry and pyramid factors (read from the JSON
files directly, local folders only), and the atomic update of `labels/`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_omezarr_x.errors import MetadataError, NotOmeZarrError
from napari_omezarr_x.model import Axis
from napari_omezarr_x.storage import read_json, write_file, write_json

from .documents import VERSIONS


def image_info(image: Path) -> tuple[str, dict[str, Any], bool]:
    """NGFF version, first multiscale of the image group at `image`, and whether
    it is itself a label image."""
    if (image / "zarr.json").is_file():
        attrs = read_json(image / "zarr.json").get("attributes", {})
        attrs = attrs.get("ome", {})
        version = str(attrs.get("version", "0.5"))
        multiscales = attrs.get("multiscales")
    elif (image / ".zattrs").is_file():
        attrs = read_json(image / ".zattrs")
        multiscales = attrs.get("multiscales")
        version = str((multiscales or [{}])[0].get("version", "0.4"))
    else:
        raise NotOmeZarrError(f"{image}: not an OME-Zarr image (no zarr.json or .zattrs)")
    if not multiscales:
        raise NotOmeZarrError(f"{image}: not an OME-Zarr image (no multiscales metadata)")
    if version not in VERSIONS:
        raise MetadataError(
            f"{image}: labels can be added to OME-NGFF 0.4 or 0.5 images, this is {version}"
        )
    return version, multiscales[0], "image-label" in attrs


def level0_geometry(image: Path, ms: dict[str, Any]) -> tuple[list[Axis], list, list, tuple]:
    axes = [Axis(a["name"], a.get("type"), a.get("unit")) for a in ms["axes"]]
    ds0 = ms["datasets"][0]
    scale = [1.0] * len(axes)
    trans = [0.0] * len(axes)
    for tr in ds0.get("coordinateTransformations", []):
        if tr.get("type") == "scale" and "scale" in tr:
            scale = [float(v) for v in tr["scale"]]
        elif tr.get("type") == "translation" and "translation" in tr:
            trans = [float(v) for v in tr["translation"]]
    arr = image / ds0["path"]
    meta = arr / "zarr.json" if (arr / "zarr.json").is_file() else arr / ".zarray"
    shape = tuple(read_json(meta)["shape"])
    return axes, scale, trans, shape


def image_factors(ms: dict[str, Any], scale0: Sequence[float]) -> list[tuple[int, ...]]:
    """Per-level factors of an image from its datasets' scales."""
    out = []
    for ds in ms["datasets"]:
        scale = list(scale0)
        for tr in ds.get("coordinateTransformations", []):
            if tr.get("type") == "scale" and "scale" in tr:
                scale = [float(v) for v in tr["scale"]]
        out.append(
            tuple(max(1, round(s / s0)) if s0 else 1 for s, s0 in zip(scale, scale0, strict=True))
        )
    return out


def label_axes(
    axes: Sequence[Axis], shape: tuple[int, ...], dshape: tuple[int, ...]
) -> list[int] | None:
    """Which image axes labels of shape `dshape` have: all of them, or all but
    the channel axis and then leading length-1 non-space axes (t of one point)."""
    keep = list(range(len(axes)))
    if len(dshape) < len(keep):
        keep = [i for i in keep if axes[i].type != "channel"]
    for i in list(keep):
        if len(dshape) >= len(keep):
            break
        if axes[i].type != "space" and shape[i] == 1:
            keep.remove(i)
    return keep if len(keep) == len(dshape) else None


def update_labels_list(labels_dir: Path, version: str, name: str) -> None:
    """Add `name` to the `labels` list of `labels_dir`, atomically."""
    if version == "0.5":
        meta = labels_dir / "zarr.json"
        doc = read_json(meta) if meta.is_file() else {"zarr_format": 3, "node_type": "group"}
        attrs = doc.setdefault("attributes", {})
        ome = attrs.setdefault("ome", {})
        ome["version"] = "0.5"
        holder = ome
    else:
        zgroup = labels_dir / ".zgroup"
        if not zgroup.is_file():
            write_file(zgroup, json.dumps({"zarr_format": 2}).encode())
        meta = labels_dir / ".zattrs"
        doc = read_json(meta) if meta.is_file() else {}
        holder = doc
    names = [n for n in holder.get("labels", []) if n != name] + [name]
    holder["labels"] = names
    write_json(meta, doc)
