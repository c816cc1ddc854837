"""Describe what an OME-Zarr store holds: its tree of groups and arrays, and its images.

`describe_store` walks the store read-only (local folder, zip, http(s) or object-store
URL, or a store object) and returns plain
data; `format_tree` renders it the way the `info` command prints it. Over HTTP, where a
store cannot be listed, the walk follows what the OME metadata names (levels, labels,
wells, fields, bioformats2raw series).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import zarr

from .errors import StoreAccessError
from .storage import StoreLike, open_location

logger = logging.getLogger(__name__)

_MAX_NODES = 2000


@dataclass
class NodeInfo:
    """One group or array of the tree."""

    path: str
    kind: str  # "group" or "array"
    zarr_format: int
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    chunks: tuple[int, ...] | None = None
    shards: tuple[int, ...] | None = None
    codecs: list[str] = field(default_factory=list)
    nbytes: int | None = None
    stored_bytes: int | None = None
    ome: list[str] = field(default_factory=list)  # OME keys of a group
    implicit: bool = False  # a folder on the way to a group, without zarr metadata


@dataclass
class ImageInfo:
    """What the multiscales metadata of one image group says."""

    path: str
    name: str | None
    version: str | None
    axes: list[dict[str, Any]]
    levels: list[dict[str, Any]]  # path, shape, scale, translation
    channels: list[dict[str, Any]]
    labels: list[str]
    is_label: bool


@dataclass
class StoreInfo:
    """Everything `info` reports about a store."""

    path: str
    version: str | None
    nodes: list[NodeInfo]
    images: list[ImageInfo]
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return asdict(self)


def describe_store(path: StoreLike, *, storage_options: dict[str, Any] | None = None) -> StoreInfo:
    """Walk the store at `path` (any StoreLike); raise StoreAccessError when it cannot be opened."""
    location = open_location(path, storage_options)
    path = path if isinstance(path, str) else location.describe(location.path)
    try:
        root = zarr.open_group(store=location.store, path=location.path, mode="r")
    except (FileNotFoundError, ValueError, OSError, KeyError) as exc:
        raise StoreAccessError(f"{path}: no zarr group found ({exc})") from exc
    walker = _Walker(listable=location.listable)
    walker.visit(root, "")
    version = next((i.version for i in walker.images if i.version), walker.first_version)
    return StoreInfo(path, version, walker.nodes, walker.images, truncated=walker.truncated)


class _Walker:
    def __init__(self, *, listable: bool) -> None:
        self.listable = listable
        self.nodes: list[NodeInfo] = []
        self.images: list[ImageInfo] = []
        self.first_version: str | None = None
        self.truncated = False
        self._seen: set[str] = set()

    def visit(self, node: Any, path: str) -> None:
        if path in self._seen:
            return
        if len(self.nodes) >= _MAX_NODES:
            self.truncated = True
            return
        self._seen.add(path)
        if isinstance(node, zarr.Array):
            self.nodes.append(_array_info(node, path))
            return
        attrs = dict(node.attrs)
        ome = attrs.get("ome") if isinstance(attrs.get("ome"), dict) else attrs
        keys = [k for k in ("multiscales", "image-label", "labels", "plate", "well") if k in ome]
        keys += [k for k in ("bioformats2raw.layout", "series") if k in ome]
        info = NodeInfo(path or "/", "group", node.metadata.zarr_format, ome=keys)
        self.nodes.append(info)
        if self.first_version is None:
            self.first_version = _version(ome)
        if "multiscales" in ome:
            self.images.append(_image_info(node, path, ome))
        for name, child in self._children(node, ome):
            parts = name.split("/")
            for i in range(1, len(parts)):
                folder = "/".join([path, *parts[:i]]).strip("/")
                if folder not in self._seen:
                    self._seen.add(folder)
                    self.nodes.append(NodeInfo(folder, "group", info.zarr_format, implicit=True))
            self.visit(child, f"{path}/{name}".strip("/"))

    def _children(self, group: zarr.Group, ome: dict[str, Any]) -> list[tuple[str, Any]]:
        """Listed members, plus what the metadata names below groups without metadata
        (`A/1` of a plate whose row folder `A` has none) or where listing is impossible."""
        children: list[tuple[str, Any]] = []
        if self.listable:
            try:
                with warnings.catch_warnings():
                    # Non-zarr files (METADATA.ome.xml) in a group are expected here.
                    warnings.simplefilter("ignore", UserWarning)
                    children = sorted(group.members(), key=lambda m: _natural(m[0]))
            except (OSError, ValueError, KeyError) as exc:
                logger.debug("cannot list %s: %s", group.path, exc)
        listed = {name for name, _ in children}
        for name in _named_children(ome):
            if name.split("/", 1)[0] in listed:
                continue
            try:
                children.append((name, group[name]))
            except (KeyError, OSError, ValueError):
                logger.debug("%s names %s, which cannot be opened", group.path, name)
        if "bioformats2raw.layout" in ome and not listed:
            children += _numbered_series(group)
        return children


def _named_children(ome: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for ms in ome.get("multiscales") or []:
        names += [d["path"] for d in ms.get("datasets", []) if isinstance(d.get("path"), str)]
    if ome.get("multiscales"):
        names.append("labels")
    # the `labels` key lives in the labels group and names its children
    names += [n for n in ome.get("labels") or [] if isinstance(n, str)]
    plate = ome.get("plate") or {}
    names += [w["path"] for w in plate.get("wells", []) if isinstance(w.get("path"), str)]
    well = ome.get("well") or {}
    names += [i["path"] for i in well.get("images", []) if isinstance(i.get("path"), str)]
    return names


def _numbered_series(group: zarr.Group) -> list[tuple[str, Any]]:
    """bioformats2raw series 0, 1, 2, ... up to the first missing one."""
    series = []
    while True:
        name = str(len(series))
        try:
            series.append((name, group[name]))
        except (KeyError, OSError, ValueError):
            return series


def _natural(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdigit() else (1, name)


def _version(ome: dict[str, Any]) -> str | None:
    if ome.get("version"):
        return str(ome["version"])
    for key in ("multiscales", "plate", "well", "image-label"):
        block = ome.get(key)
        block = block[0] if isinstance(block, list) and block else block
        if isinstance(block, dict) and block.get("version"):
            return str(block["version"])
    return None


def _array_info(arr: zarr.Array, path: str) -> NodeInfo:
    info = NodeInfo(
        path=path,
        kind="array",
        zarr_format=arr.metadata.zarr_format,
        shape=tuple(arr.shape),
        dtype=str(arr.dtype),
        chunks=tuple(arr.chunks),
        shards=tuple(arr.shards) if arr.shards else None,
        codecs=_codecs(arr),
        nbytes=int(arr.nbytes),
    )
    try:
        info.stored_bytes = int(arr.nbytes_stored())
    # Stores that cannot list (HTTP) refuse with a RuntimeError subclass.
    except (OSError, ValueError, RuntimeError, TypeError):
        logger.debug("stored size of %s unknown (store not listable)", path)
    return info


def _codecs(arr: zarr.Array) -> list[str]:
    """Codec names with their main setting: ['bytes', 'zstd(level=0)']."""
    parts = [*arr.filters, arr.serializer, *arr.compressors]
    names = []
    for codec in parts:
        if codec is None:
            continue
        config = codec.get_config() if hasattr(codec, "get_config") else codec.to_dict()
        name = config.get("id") or config.get("name") or type(codec).__name__
        inner = config.get("configuration", config)
        detail = [f"{k}={inner[k]}" for k in ("cname", "level", "clevel") if k in inner]
        names.append(f"{name}({', '.join(detail)})" if detail else str(name))
    return names


def _image_info(group: zarr.Group, path: str, ome: dict[str, Any]) -> ImageInfo:
    ms = ome["multiscales"][0] if ome.get("multiscales") else {}
    version = _version(ome)
    axes = _axes(ms, version)
    levels = []
    for ds in ms.get("datasets", []):
        level: dict[str, Any] = {"path": ds.get("path")}
        scale, translation = _transform_vectors(ds.get("coordinateTransformations"))
        level.update(scale=scale, translation=translation)
        try:
            level["shape"] = list(group[ds["path"]].shape)
        except (KeyError, OSError, ValueError, TypeError):
            level["shape"] = None
        levels.append(level)
    omero = ome.get("omero") if isinstance(ome.get("omero"), dict) else {}
    channels = [
        {k: c.get(k) for k in ("label", "color", "active", "window") if k in c}
        for c in omero.get("channels", [])
        if isinstance(c, dict)
    ]
    labels: list[str] = []
    try:
        labels_group = group["labels"]
        attrs = dict(labels_group.attrs)
        labels = list((attrs.get("ome") or attrs).get("labels") or [])
    except (KeyError, OSError, ValueError, TypeError):
        labels = []
    name = ms.get("name") if isinstance(ms.get("name"), str) else None
    return ImageInfo(
        path or "/", name, version, axes, levels, channels, labels, is_label="image-label" in ome
    )


def _axes(ms: dict[str, Any], version: str | None) -> list[dict[str, Any]]:
    axes = ms.get("axes")
    if axes is None and isinstance(ms.get("coordinateSystems"), list) and ms["coordinateSystems"]:
        axes = ms["coordinateSystems"][0].get("axes")
    if axes is None and version in ("0.1", "0.2"):
        axes = ["t", "c", "z", "y", "x"]
    out = []
    for a in axes or []:
        out.append(a if isinstance(a, dict) else {"name": str(a)})
    return out


def _transform_vectors(transforms: Any) -> tuple[list[float] | None, list[float] | None]:
    scale = translation = None
    for t in transforms if isinstance(transforms, list) else []:
        steps = t.get("transformations", []) if t.get("type") == "sequence" else [t]
        for step in steps:
            if step.get("type") == "scale" and isinstance(step.get("scale"), list):
                scale = step["scale"]
            if step.get("type") == "translation" and isinstance(step.get("translation"), list):
                translation = step["translation"]
    return scale, translation


def format_size(n: int | None) -> str:
    """'1.5 GiB' style size ('?' when unknown)."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def format_tree(info: StoreInfo) -> str:
    """The text `info` prints: the tree first, then one block per image."""
    lines = [f"{info.path}  (OME-NGFF {info.version or 'version unknown'})"]
    for node in info.nodes:
        depth = 0 if node.path == "/" else node.path.count("/") + 1
        name = "/" if node.path == "/" else node.path.rsplit("/", 1)[-1]
        indent = "    " * depth
        if node.implicit:
            lines.append(f"{indent}{name}  folder (no zarr metadata)")
            continue
        if node.kind == "group":
            tags = f"  [{', '.join(node.ome)}]" if node.ome else ""
            lines.append(f"{indent}{name}  group (zarr v{node.zarr_format}){tags}")
            continue
        shards = f" shards={node.shards}" if node.shards else ""
        lines.append(
            f"{indent}{name}  array {node.shape} {node.dtype} chunks={node.chunks}{shards} "
            f"codecs=[{', '.join(node.codecs)}] {format_size(node.nbytes)}"
            f" (stored {format_size(node.stored_bytes)})"
        )
    if info.truncated:
        lines.append(f"... (stopped after {_MAX_NODES} nodes)")
    for image in info.images:
        kind = "label image" if image.is_label else "image"
        lines.append("")
        lines.append(f"{kind} {image.path}" + (f" '{image.name}'" if image.name else ""))
        axes = ", ".join(_axis_text(a) for a in image.axes) or "not given"
        lines.append(f"  axes: {axes}")
        for level in image.levels:
            lines.append(
                f"  level {level['path']}: shape {level.get('shape')} scale {level['scale']}"
                + (f" translation {level['translation']}" if level["translation"] else "")
            )
        for i, channel in enumerate(image.channels):
            lines.append(
                f"  channel {i}: {channel.get('label', '')!s} color {channel.get('color', '-')}"
            )
        if image.labels:
            lines.append(f"  labels: {', '.join(map(str, image.labels))}")
    return "\n".join(lines)


def _axis_text(axis: dict[str, Any]) -> str:
    extra = [str(axis[k]) for k in ("type", "unit") if axis.get(k)]
    return f"{axis.get('name')}({', '.join(extra)})" if extra else str(axis.get("name"))
