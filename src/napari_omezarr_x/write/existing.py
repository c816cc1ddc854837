"""What the writer needs to know about an existing OME-Zarr image to add labels:
its NGFF version, level-0 geometry and pyramid factors (read from the JSON
documents directly, in a local folder or an object store), and the atomic
update of `labels/`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from napari_omezarr_x.errors import MetadataError, NotOmeZarrError
from napari_omezarr_x.model import Axis
from napari_omezarr_x.storage import Documents

from .documents import VERSIONS


def image_info(image: Documents) -> tuple[str, dict[str, Any], bool]:
    """NGFF version, first multiscale of the image group whose documents are
    `image`, and whether it is itself a label image."""
    v3 = image.read("zarr.json")
    v2 = image.read(".zattrs") if v3 is None else None
    if v3 is not None:
        attrs = v3.get("attributes", {})
        attrs = attrs.get("ome", {})
        version = str(attrs.get("version", "0.5"))
        multiscales = attrs.get("multiscales")
    elif v2 is not None:
        attrs = v2
        multiscales = attrs.get("multiscales")
        version = str((multiscales or [{}])[0].get("version", "0.4"))
    else:
        raise NotOmeZarrError(f"{image.root}: not an OME-Zarr image (no zarr.json or .zattrs)")
    if not multiscales:
        raise NotOmeZarrError(f"{image.root}: not an OME-Zarr image (no multiscales metadata)")
    if version not in VERSIONS:
        raise MetadataError(
            f"{image.root}: labels can be added to OME-NGFF 0.4 or 0.5 images, this is {version}"
        )
    return version, multiscales[0], "image-label" in attrs


def level0_geometry(image: Documents, ms: dict[str, Any]) -> tuple[list[Axis], list, list, tuple]:
    axes = [Axis(a["name"], a.get("type"), a.get("unit")) for a in ms["axes"]]
    ds0 = ms["datasets"][0]
    scale = [1.0] * len(axes)
    trans = [0.0] * len(axes)
    for tr in ds0.get("coordinateTransformations", []):
        if tr.get("type") == "scale" and "scale" in tr:
            scale = [float(v) for v in tr["scale"]]
        elif tr.get("type") == "translation" and "translation" in tr:
            trans = [float(v) for v in tr["translation"]]
    meta = image.read(f"{ds0['path']}/zarr.json") or image.read(f"{ds0['path']}/.zarray")
    if meta is None:
        raise MetadataError(f"{image.describe(ds0['path'])}: level 0 array is missing")
    shape = tuple(meta["shape"])
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


def update_labels_list(image: Documents, version: str, name: str) -> None:
    """Add `name` to the `labels` list of the image's `labels` group, in one atomic write."""
    if version == "0.5":
        doc = image.read("labels/zarr.json") or {"zarr_format": 3, "node_type": "group"}
        attrs = doc.setdefault("attributes", {})
        ome = attrs.setdefault("ome", {})
        ome["version"] = "0.5"
        holder = ome
        key = "labels/zarr.json"
    else:
        if not image.exists("labels/.zgroup"):
            image.write("labels/.zgroup", {"zarr_format": 2})
        doc = image.read("labels/.zattrs") or {}
        holder = doc
        key = "labels/.zattrs"
    names = [n for n in holder.get("labels", []) if n != name] + [name]
    holder["labels"] = names
    image.write(key, doc)
