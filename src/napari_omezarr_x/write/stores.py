"""Write images and labels as OME-Zarr (NGFF 0.5 by default, or 0.4).

Public API used by scripts, the napari writer, the CLI and the sample:

- `write_image(path, data, ...)`: one multiscale image, with a pyramid.
- `write_labels(path, data, ...)`: a label image as a store of its own.
- `add_labels(image_path, data, name, ...)`: a label image under `labels/<name>`
  of an existing image, leaving the image and its other labels untouched.
- `write_store(path, images, labels)`: several images (root and child groups)
  and labels in one store, as the napari writer does for a layer selection.

Every write is crash-safe: in a folder a store is built next to its target and
moved into place when complete (see `storage.atomic`); in an object store (S3,
GCS, Azure) new arrays go to fresh paths and the root document is written last
(see `targets`). A folder or store that is not an OME-Zarr is never replaced.
Targets are paths, `file://` URLs or object-store URLs (with `storage_options`);
`scheduler` runs the save on a dask.distributed cluster (see `execute`). See the
README section "Saving" for chunks, compression, downsampling and the translation
of pyramid levels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from napari_omezarr_x.errors import NotOmeZarrError, StoreExistsError
from napari_omezarr_x.model import Axis, Channel
from napari_omezarr_x.read import looks_like_ome_zarr
from napari_omezarr_x.storage import Documents, StoreLike, atomic

from . import pyramid
from .documents import VERSIONS
from .existing import (
    image_factors,
    image_info,
    label_axes,
    level0_geometry,
    update_labels_list,
)
from .plan import CLEVEL, Colors, Plan, Progress, make_plan
from .targets import Target, resolve_target, write_plans

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
    rdefs: dict[str, Any] | None = None


@dataclass
class LabelsSpec:
    """One label image, written to `labels/<name>` of the image at `image_group`
    (with `image_group=None`: a label image of its own in the child group `name`).

    `colors` maps label values to RGBA (0-1 floats, or 0-255 integers), or is
    a function from an array of values to RGBA rows: it is then called with
    the values present in the data. `properties` are dicts with `label-value`.
    `title` is the multiscale's `name` when it differs from the path `name` (a
    napari layer name such as "nuclei edited", kept as typed).
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
    title: str | None = None


def _check_version(version: str) -> str:
    version = str(version)
    if version not in VERSIONS:
        raise ValueError(f"cannot write OME-NGFF {version!r}: choose one of {', '.join(VERSIONS)}")
    return version


def write_image(
    path: StoreLike,
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
    storage_options: dict[str, Any] | None = None,
    scheduler: Any = None,
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
    replaced only with `overwrite=True`. `path` is a folder, a `file://` URL or an
    object-store URL (`s3://`, `gs://`, `az://`, `abfs://`; `storage_options`
    configure it); `scheduler` is a dask.distributed Client or scheduler address
    to run the save on (an active Client is used by default).
    """
    version = _check_version(version)
    target = resolve_target(path, storage_options)
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
    write_plans(target, [plan], progress, overwrite, scheduler)
    return target.text


def write_labels(
    path: StoreLike,
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
    storage_options: dict[str, Any] | None = None,
    scheduler: Any = None,
) -> str:
    """Write a label image as an OME-Zarr of its own: the root image carries
    `image-label` metadata (no source image). Arguments as in write_image;
    `colors`/`properties` as in LabelsSpec; levels use `downsample` 'mode'
    (default) or 'nearest'."""
    version = _check_version(version)
    target = resolve_target(path, storage_options)
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
    write_plans(target, [plan], progress, overwrite, scheduler)
    return target.text


def _label_method(method: str) -> pyramid.Method:
    if method not in ("mode", "nearest"):
        raise ValueError(f"labels are downsampled with 'mode' or 'nearest', not {method!r}")
    return method  # type: ignore[return-value]


def write_store(
    path: StoreLike,
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
    storage_options: dict[str, Any] | None = None,
    scheduler: Any = None,
) -> list[str]:
    """Write several images (root first, then child groups) with their labels
    into one store, in one pass; return the path of every image and label
    image written. Without images, the first label image becomes the root.
    `path`, `storage_options` and `scheduler` as in write_image."""
    version = _check_version(version)
    target = resolve_target(path, storage_options)
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
                rdefs=spec.rdefs,
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
                name=spec.title or spec.name,
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
        raise ValueError(f"{target.text}: nothing to write")
    write_plans(target, plans, progress, overwrite, scheduler)
    return [target.join(p.rel) for p in plans]


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


def _image_documents(target: Target) -> Documents:
    if target.folder is not None:
        return Documents(str(target.folder), folder=target.folder)
    return Documents(target.text, keys=target.keys())


def is_image(path: StoreLike, storage_options: dict[str, Any] | None = None) -> bool:
    """True when `path` is an OME-Zarr image (0.4 or 0.5, not itself a label
    image; a folder or an object-store URL) that labels can be added to."""
    try:
        _, _, is_label = image_info(_image_documents(resolve_target(path, storage_options)))
    except (OSError, ValueError):
        return False
    return not is_label


def add_labels(
    image_path: StoreLike,
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
    storage_options: dict[str, Any] | None = None,
    scheduler: Any = None,
    title: str | None = None,
) -> str:
    """Add (or replace) the label image `labels/<name>` of the OME-Zarr image
    at `image_path` (a folder or an object-store URL); return its path. `title` is
    its multiscale `name` when that differs from the path `name`.

    `data` has the image's shape, or that shape without the channel axis;
    axes, scale, translation and pyramid levels are taken from the image. The
    label image is written completely first (in a folder: built in a hidden
    folder and renamed into `labels/`; in an object store: fresh arrays, then
    its group document), and only then listed in the `labels` metadata
    (replaced atomically), so the image and its other labels are intact at
    every moment.
    """
    where = resolve_target(image_path, storage_options)
    image = where.folder
    if image is not None and not image.is_dir():
        raise NotOmeZarrError(f"{image}: no OME-Zarr image folder there")
    if not name or "/" in name or name.startswith(".") or name in ("labels",):
        raise ValueError(f"{name!r} is not a usable label name")
    docs = _image_documents(where)
    version, ms, _ = image_info(docs)
    axes, scale, trans, shape = level0_geometry(docs, ms)
    img_factors = image_factors(ms, scale)
    dshape = tuple(data[0].shape if isinstance(data, Sequence) else data.shape)
    keep = label_axes(axes, shape, dshape)
    if keep is None or tuple(shape[i] for i in keep) != dshape:
        raise ValueError(
            f"{where.text}: labels {name!r} of shape {dshape} do not fit the image of shape "
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
        name=title or name,
        chunks=chunks,
        shards=shards,
        compression=compression,
        clevel=clevel,
        downsample=_label_method(downsample),
        label={"properties": list(properties), "source": "../../"},
        colors=colors,
        factors=[tuple(f[i] for i in keep) for f in img_factors],
    )
    if image is not None:
        labels_dir = image / "labels"
        atomic.ensure_writable(labels_dir, f"cannot add labels to {image}")
        labels_dir.mkdir(exist_ok=True)
        folder = labels_dir / name
        if folder.exists() and not looks_like_ome_zarr(str(folder)) and any(folder.iterdir()):
            raise StoreExistsError(f"{folder}: exists and is not an OME-Zarr label image")
        target = Target(str(folder), folder=folder)
    else:
        url = f"{where.url}/labels/{name}"
        target = Target(url, url=url, storage_options=storage_options)
    write_plans(target, [plan], progress, True, scheduler)
    update_labels_list(docs, version, name)
    return target.text
