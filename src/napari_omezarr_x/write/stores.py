"""Write images and labels as OME-Zarr (NGFF 0.5 by default, or 0.4).

Public API used by scripts, the napari writer, the CLI and the sample:

- `write_image(path, data, ...)`: one multiscale image, with a pyramid.
- `write_labels(path, data, ...)`: a label image as a store of its own.
- `add_labels(image_path, data, name, ...)`: a label image under `labels/<name>`
  of an existing image, leaving the image and its other labels untouched.
- `write_store(path, images, labels)`: several images (root and child groups)
  and labels in one store, as the napari writer does for a layer selection.

Every write is crash-safe: a store is built next to its target and moved into
place when complete (see `storage.atomic`), and a folder that is not an OME-Zarr is
never replaced. See the README section "Saving" for chunks, compression,
downsampling and the translation of pyramid levels.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_omezarr_x.errors import NotOmeZarrError, StoreExistsError
from napari_omezarr_x.model import Axis, Channel
from napari_omezarr_x.read import looks_like_ome_zarr
from napari_omezarr_x.storage import atomic

from . import pyramid
from .documents import VERSIONS
from .execute import store_plans
from .existing import (
    image_factors,
    image_info,
    label_axes,
    level0_geometry,
    update_labels_list,
)
from .plan import CLEVEL, Colors, Plan, Progress, create_arrays, make_plan

log = logging.getLogger(__name__)

@dataclass
class ImageSpec:
    """One image of a multi-image store: `group` "" is the root image.

    `data` is an array (numpy, dask, zarr) or a list of existing levels.
    """

    data: Any
    group: str = ""
    axes: Sequence[str | Axis] | str | None = None
    units: Sequence[str | None] | None = None
    scale: Sequence[float] | None = None
    translate: Sequence[float] | None = None
    name: str | None = None
    channels: Sequence[Channel] | None = None


@dataclass
class LabelsSpec:
    """One label image, written to `labels/<name>` of the image at `image_group`
    (with `image_group=None`: a label image of its own in the child group `name`).

    `colors` maps label values to RGBA (0-1 floats, or 0-255 integers), or is
    a function from an array of values to RGBA rows: it is then called with
    the values present in the data. `properties` are dicts with `label-value`.
    """

    data: Any
    name: str
    image_group: str | None = ""
    axes: Sequence[str | Axis] | str | None = None
    units: Sequence[str | None] | None = None
    scale: Sequence[float] | None = None
    translate: Sequence[float] | None = None
    colors: Colors | None = None
    properties: Sequence[dict[str, Any]] = field(default_factory=list)


def _check_version(version: str) -> str:
    version = str(version)
    if version not in VERSIONS:
        raise ValueError(f"cannot write OME-NGFF {version!r}: choose one of {', '.join(VERSIONS)}")
    return version


def _write_plans(
    target: Path, plans: Sequence[Plan], progress: Progress | None, overwrite: bool
) -> None:
    """Build `plans` in a staging folder and move it to `target` when complete."""
    if target.exists() and not overwrite:
        raise StoreExistsError(f"{target}: already exists (pass overwrite=True to replace it)")
    atomic.check_replaceable(target, looks_like_ome_zarr)
    atomic.ensure_writable(target.parent, f"cannot write {target}")
    if target.exists():
        atomic.ensure_writable(target, f"refusing to replace {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = atomic.staging_dir(target)
    try:
        arrays = create_arrays(staged, plans)
        present = store_plans(plans, arrays, progress)
        _write_group_attrs(staged, plans, present)
        atomic.move_into_place(staged, target)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    log.info("wrote %s", target)


def _write_group_attrs(root: Path, plans: Sequence[Plan], present) -> None:
    import zarr

    labels_of: dict[str, list[str]] = {}
    for plan in plans:
        parts = plan.rel.split("/")
        if len(parts) >= 2 and parts[-2] == "labels":
            labels_of.setdefault("/".join(parts[:-1]), []).append(parts[-1])
    for plan, values in zip(plans, present, strict=True):
        zfmt = 3 if plan.version == "0.5" else 2
        group = zarr.open_group(str(root / plan.rel), mode="a", zarr_format=zfmt)
        group.attrs.update(plan.attrs(values))
    for rel, names in labels_of.items():
        version = plans[0].version
        zfmt = 3 if version == "0.5" else 2
        group = zarr.open_group(str(root / rel), mode="a", zarr_format=zfmt)
        content = {"labels": names}
        group.attrs.update({"ome": {"version": "0.5", **content}} if zfmt == 3 else content)


def write_image(
    path: str | Path,
    data: Any,
    *,
    axes: Sequence[str | Axis] | str | None = None,
    units: Sequence[str | None] | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    name: str | None = None,
    channels: Sequence[Channel] | None = None,
    version: str = "0.5",
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | bool | None = None,
    compression: str | None = "zstd",
    clevel: int = CLEVEL,
    levels: int | None = None,
    downsample: pyramid.Method = "mean",
    progress: Progress | None = None,
    overwrite: bool = False,
) -> str:
    """Write `data` as a multiscale OME-Zarr image at `path`; return the path.

    `data` is a numpy, dask or zarr array (never loaded whole) or a list of
    existing pyramid levels (written as they are). `axes` are names (or Axis
    objects; default t, c, z, y, x style), `units` per axis ('pixel' = none),
    `scale`/`translate` the level-0 pixel size and offset. `channels` (one per
    entry of the channel axis) become `omero` rendering settings. `levels`
    fixes the pyramid depth; by default levels are added until a plane fits in
    one chunk. `shards=True` picks a shard shape (0.5 only). `progress(done,
    total)` is called as blocks are written. An existing OME-Zarr at `path` is
    replaced only with `overwrite=True`.
    """
    version = _check_version(version)
    target = Path(path)
    plan = make_plan(
        "",
        data,
        version=version,
        axes=axes,
        units=units,
        scale=scale,
        translate=translate,
        name=name,
        channels=channels,
        chunks=chunks,
        shards=shards,
        compression=compression,
        clevel=clevel,
        levels=levels,
        downsample=downsample,
    )
    _write_plans(target, [plan], progress, overwrite)
    return str(target)


def write_labels(
    path: str | Path,
    data: Any,
    *,
    name: str | None = None,
    axes: Sequence[str | Axis] | str | None = None,
    units: Sequence[str | None] | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    colors: Colors | None = None,
    properties: Sequence[dict[str, Any]] = (),
    version: str = "0.5",
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | bool | None = None,
    compression: str | None = "zstd",
    clevel: int = CLEVEL,
    levels: int | None = None,
    downsample: pyramid.Method = "mode",
    progress: Progress | None = None,
    overwrite: bool = False,
) -> str:
    """Write a label image as an OME-Zarr of its own: the root image carries
    `image-label` metadata (no source image). Arguments as in write_image;
    `colors`/`properties` as in LabelsSpec; levels use `downsample` 'mode'
    (default) or 'nearest'."""
    version = _check_version(version)
    plan = make_plan(
        "",
        data,
        version=version,
        axes=axes,
        units=units,
        scale=scale,
        translate=translate,
        name=name,
        chunks=chunks,
        shards=shards,
        compression=compression,
        clevel=clevel,
        levels=levels,
        downsample=_label_method(downsample),
        label={"properties": list(properties), "source": None},
        colors=colors,
    )
    _write_plans(Path(path), [plan], progress, overwrite)
    return str(path)


def _label_method(method: str) -> pyramid.Method:
    if method not in ("mode", "nearest"):
        raise ValueError(f"labels are downsampled with 'mode' or 'nearest', not {method!r}")
    return method  # type: ignore[return-value]


def write_store(
    path: str | Path,
    images: Sequence[ImageSpec],
    labels: Sequence[LabelsSpec] = (),
    *,
    version: str = "0.5",
    shards: bool | None = None,
    compression: str | None = "zstd",
    clevel: int = CLEVEL,
    label_downsample: pyramid.Method = "mode",
    progress: Progress | None = None,
    overwrite: bool = False,
) -> list[str]:
    """Write several images (root first, then child groups) with their labels
    into one store, in one pass; return the path of every image and label
    image written. Without images, the first label image becomes the root."""
    version = _check_version(version)
    target = Path(path)
    common = {
        "version": version,
        "shards": shards,
        "compression": compression,
        "clevel": clevel,
    }
    plans: list[Plan] = []
    groups = {spec.group for spec in images}
    if len(groups) != len(images):
        raise ValueError("two images of one store cannot share a group")
    for spec in images:
        plans.append(
            make_plan(
                spec.group,
                spec.data,
                axes=spec.axes,
                units=spec.units,
                scale=spec.scale,
                translate=spec.translate,
                name=spec.name,
                channels=spec.channels,
                **common,
            )
        )
    by_group = {plan.rel: plan for plan in plans}
    seen: set[str] = set()
    for spec in labels:
        image_plan = None
        if not plans:
            # A labels-only store: the first label image is the root image.
            rel, source = "", None
            groups.add("")
        elif spec.image_group is None:
            rel, source = spec.name, None
        else:
            if spec.image_group not in groups:
                raise ValueError(f"labels {spec.name!r}: no image at group {spec.image_group!r}")
            rel = "/".join(p for p in (spec.image_group, "labels", spec.name) if p)
            source = "../../"
            image_plan = by_group[spec.image_group]
        if rel in seen:
            raise ValueError(f"two labels would be written to {rel!r}: rename one")
        seen.add(rel)
        plans.append(
            make_plan(
                rel,
                spec.data,
                axes=spec.axes,
                units=spec.units,
                scale=spec.scale,
                translate=spec.translate,
                name=spec.name,
                downsample=_label_method(label_downsample),
                label={"properties": list(spec.properties), "source": source},
                colors=spec.colors,
                factors=_label_factors(image_plan.axes, image_plan.factors, spec.data)
                if image_plan is not None
                else None,
                **common,
            )
        )
        by_group.setdefault(rel, plans[-1])
    if not plans:
        raise ValueError(f"{target}: nothing to write")
    _write_plans(target, plans, progress, overwrite)
    return [str(target / p.rel) if p.rel else str(target) for p in plans]


def _label_factors(
    axes: Sequence[Axis], factors: Sequence[Sequence[int]], data: Any
) -> list[tuple[int, ...]]:
    """The image's level factors for its labels (which may lack the channel axis):
    NGFF wants a label image to have as many levels as its image."""
    first = data[0] if isinstance(data, Sequence) else data
    if len(first.shape) == len(axes):
        return [tuple(f) for f in factors]
    keep = [i for i, a in enumerate(axes) if a.type != "channel"]
    if len(keep) != len(first.shape):
        raise ValueError(
            f"labels of shape {tuple(first.shape)} do not fit an image with axes "
            f"{[a.name for a in axes]}"
        )
    return [tuple(f[i] for i in keep) for f in factors]


def is_image(path: str | Path) -> bool:
    """True when `path` is a local OME-Zarr image (0.4 or 0.5, not itself a label
    image) that labels can be added to."""
    try:
        _, _, is_label = image_info(Path(path))
    except (OSError, ValueError):
        return False
    return not is_label


def add_labels(
    image_path: str | Path,
    data: Any,
    name: str,
    *,
    colors: Colors | None = None,
    properties: Sequence[dict[str, Any]] = (),
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | bool | None = None,
    compression: str | None = "zstd",
    clevel: int = CLEVEL,
    downsample: pyramid.Method = "mode",
    progress: Progress | None = None,
) -> str:
    """Add (or replace) the label image `labels/<name>` of the OME-Zarr image
    at `image_path`; return its path.

    `data` has the image's shape, or that shape without the channel axis;
    axes, scale, translation and pyramid levels are taken from the image. The label image is
    built in a hidden folder, renamed into `labels/`, and only then listed in
    the `labels` metadata (replaced atomically), so the image and its other
    labels are intact at every moment.
    """
    image = Path(image_path)
    if not image.is_dir():
        raise NotOmeZarrError(f"{image}: no OME-Zarr image folder there")
    if not name or "/" in name or name.startswith(".") or name in ("labels",):
        raise ValueError(f"{name!r} is not a usable label name")
    version, ms, _ = image_info(image)
    axes, scale, trans, shape = level0_geometry(image, ms)
    img_factors = image_factors(ms, scale)
    dshape = tuple(data[0].shape if isinstance(data, Sequence) else data.shape)
    keep = label_axes(axes, shape, dshape)
    if keep is None or tuple(shape[i] for i in keep) != dshape:
        raise ValueError(
            f"{image}: labels {name!r} of shape {dshape} do not fit the image of shape "
            f"{shape} (axes {''.join(a.name for a in axes)}): give the image's shape, "
            "leaving out only its channel axis and length-1 axes"
        )
    plan = make_plan(
        "",
        data,
        version=version,
        axes=[axes[i] for i in keep],
        scale=[scale[i] for i in keep],
        translate=[trans[i] for i in keep],
        name=name,
        chunks=chunks,
        shards=shards,
        compression=compression,
        clevel=clevel,
        downsample=_label_method(downsample),
        label={"properties": list(properties), "source": "../../"},
        colors=colors,
        factors=[tuple(f[i] for i in keep) for f in img_factors],
    )
    labels_dir = image / "labels"
    atomic.ensure_writable(labels_dir, f"cannot add labels to {image}")
    labels_dir.mkdir(exist_ok=True)
    target = labels_dir / name
    if target.exists() and not looks_like_ome_zarr(str(target)) and any(target.iterdir()):
        raise StoreExistsError(f"{target}: exists and is not an OME-Zarr label image")
    _write_plans(target, [plan], progress, overwrite=True)
    update_labels_list(labels_dir, version, name)
    return str(target)
