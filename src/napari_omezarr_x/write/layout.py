"""Where each layer of a multi-layer save goes in one OME-Zarr store.

Rules (also in the README):

- Image layers of the same shape and dtype become the channels of one image (a `c`
  axis, placed after `t` if there is one); the first such group is the root
  image, any image of another shape or dtype gets a child group named after
  its first layer.
- A labels layer goes to `labels/<layer name>` of the image whose layers have
  its shape; the root image if none does, or a child group of its own when
  it cannot fit the root image either (other dimensions).
- Without image layers, the first labels layer is the root image.

Nothing here imports napari: layers arrive as `LayerInput`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from napari_omezarr_x.model import Channel
from napari_omezarr_x.spec.metadata import safe_name

from .documents import DEFAULT_NAMES
from .plan import Colors, is_multiscale
from .stores import ImageSpec, LabelsSpec


@dataclass
class LayerInput:
    """What the writer needs from one napari layer (plain Python values)."""

    data: Any
    kind: str
    name: str
    axis_labels: Sequence[str] | None = None
    units: Sequence[str | None] | None = None
    scale: Sequence[float] | None = None
    translate: Sequence[float] | None = None
    channel: Channel | None = None
    colors: Colors | None = None
    properties: list[dict[str, Any]] = field(default_factory=list)
    rgb: bool = False
    image_name: str | None = None
    channel_index: int | None = None
    rdefs: dict[str, Any] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        first = self.data[0] if is_multiscale(self.data) else self.data
        return tuple(int(n) for n in first.shape)

    @property
    def dtype(self) -> Any:
        first = self.data[0] if is_multiscale(self.data) else self.data
        return first.dtype


def group_name(name: str, taken: set[str]) -> str:
    """A zarr-safe, unused group name from a layer name."""
    base = safe_name(name)
    out, n = base, 1
    while out in taken:
        n += 1
        out = f"{base}_{n}"
    taken.add(out)
    return out


def plan_layout(layers: Sequence[LayerInput]) -> tuple[list[ImageSpec], list[LabelsSpec]]:
    """Image and label specs for `write_store` from a selection of layers."""
    images = [layer for layer in layers if layer.kind == "image"]
    labels = [layer for layer in layers if layer.kind == "labels"]
    others = [layer.kind for layer in layers if layer.kind not in ("image", "labels")]
    if others:
        raise ValueError(f"OME-Zarr holds image and labels layers, not {sorted(set(others))}")

    groups: dict[tuple[Any, ...], list[LayerInput]] = {}
    for layer in images:
        # Channels of one image share shape and dtype (stacking would cast).
        key = (layer.shape, str(layer.dtype), layer.rgb)
        groups.setdefault(key, []).append(layer)
    taken: set[str] = set()
    specs: list[ImageSpec] = []
    group_of_shape: dict[tuple[int, ...], str] = {}
    for i, members in enumerate(groups.values()):
        gname = "" if i == 0 else group_name(members[0].name, taken)
        specs.append(_image_spec(members, gname))
        spatial = members[0].shape[:-1] if members[0].rgb else members[0].shape
        group_of_shape.setdefault(spatial, gname)

    label_specs = []
    label_names: dict[str, set[str]] = {}
    for layer in labels:
        image_group: str | None = group_of_shape.get(layer.shape, "")
        if layer.shape not in group_of_shape and specs and not _fits(specs[0], layer.shape):
            # Fits no image, not even the root: a label image of its own in a child group.
            image_group = None
        key = "/" if image_group is None else image_group
        name = group_name(layer.name, label_names.setdefault(key, set(taken)))
        if image_group is None:
            taken.add(name)
        label_specs.append(
            LabelsSpec(
                data=layer.data,
                name=name,
                image_group=image_group,
                axes=_names(layer.axis_labels),
                units=layer.units,
                scale=layer.scale,
                translate=layer.translate,
                colors=layer.colors,
                properties=layer.properties,
                title=layer.name,
            )
        )
    return specs, label_specs


def _fits(image: ImageSpec, shape: tuple[int, ...]) -> bool:
    """Whether labels of `shape` can sit under `image` (same dims, channel aside)."""
    first = image.data[0] if is_multiscale(image.data) else image.data
    ndim = len(first.shape) - (1 if image.channels and len(first.shape) > len(shape) else 0)
    return ndim == len(shape)


def _names(labels: Sequence[str] | None) -> list[str] | None:
    return None if labels is None else [str(n) for n in labels]


def _image_spec(members: list[LayerInput], group: str) -> ImageSpec:
    first = members[0]
    if first.rgb:
        return _rgb_spec(first, group)
    # One layer is an image of its own, unless the reader split it off a channel axis.
    single = len(members) == 1 and first.channel_index is None
    if single:
        names = _names(first.axis_labels)
        return ImageSpec(
            data=first.data,
            group=group,
            axes=names,
            units=first.units,
            scale=first.scale,
            translate=first.translate,
            name=first.name,
            channels=_layer_channels(first, _channel_axis(names)),
            rdefs=first.rdefs,
        )
    ndim = len(first.shape)
    names = _default_names(_names(first.axis_labels), ndim)
    cpos = 1 if names and names[0].lower() in ("t", "time") else 0
    if names is not None:
        names = [*names[:cpos], "c", *names[cpos:]]
    return ImageSpec(
        data=_stack([m.data for m in members], cpos),
        group=group,
        axes=names,
        units=_insert(first.units, cpos, None),
        scale=_insert(first.scale, cpos, 1.0),
        translate=_insert(first.translate, cpos, 0.0),
        name=_common_name(members),
        channels=[_channel(m) for m in members],
        rdefs=_rdefs(members),
    )


def _default_names(names: list[str] | None, ndim: int) -> list[str] | None:
    """t, c, z, y, x style names for napari's default axis labels ('-2', '-1')."""
    if names is None or all(re.fullmatch(r"-?\d+", n) for n in names):
        return list(DEFAULT_NAMES.get(ndim, "")) or None
    return names


def _channel_axis(names: list[str] | None) -> int | None:
    """Index of the axis named as a channel axis (c, ch, channel), if any."""
    for i, name in enumerate(names or []):
        if name.lower() in ("c", "ch", "channel"):
            return i
    return None


def _layer_channels(layer: LayerInput, c: int | None) -> list[Channel]:
    """One omero channel per entry of a layer's own channel axis (all with the
    layer's rendering, as napari shows them), or the layer's one channel."""
    channel = _channel(layer)
    if c is None:
        return [channel]
    n = layer.shape[c]
    out = []
    for i in range(n):
        copy = replace(channel, raw=dict(channel.raw))
        copy.label = f"channel {i}" if n > 1 else channel.label
        out.append(copy)
    return out


def _rgb_spec(layer: LayerInput, group: str) -> ImageSpec:
    """An RGB(A) layer: its last axis becomes a channel axis before the space axes."""
    import dask.array as da

    levels = list(layer.data) if is_multiscale(layer.data) else [layer.data]
    moved = [da.moveaxis(da.asarray(lv), -1, 0) for lv in levels]
    n = moved[0].shape[0]
    colors = ["FF0000", "00FF00", "0000FF", "FFFFFF"][:n]
    hi = 255.0 if moved[0].dtype.kind in "iu" else 1.0
    spatial = len(moved[0].shape) - 1
    names = _default_names(_names(layer.axis_labels), spatial)
    return ImageSpec(
        data=moved if len(moved) > 1 else moved[0],
        group=group,
        axes=None if names is None else ["c", *names[:spatial]],
        units=_insert(layer.units, 0, None),
        scale=_insert(layer.scale, 0, 1.0),
        translate=_insert(layer.translate, 0, 0.0),
        name=layer.name,
        channels=[
            Channel(label=lab, color=c, start=0.0, end=hi, min=0.0, max=hi)
            for lab, c in zip("RGBA", colors, strict=False)
        ],
    )


def _rdefs(members: list[LayerInput]) -> dict[str, Any] | None:
    """The rendering defaults of the opened image; "color" once any channel was recoloured."""
    found = [m.rdefs for m in members if m.rdefs]
    if not found:
        return None
    rdefs = dict(found[0])
    if any(r.get("model") == "color" for r in found):
        rdefs["model"] = "color"
    return rdefs


def _channel(layer: LayerInput) -> Channel:
    ch = layer.channel or Channel()
    if ch.label is None:
        ch.label = layer.name
    return ch


def _common_name(members: list[LayerInput]) -> str | None:
    """The image name the reader split into channel layers, else the first layer's name."""
    return members[0].image_name or members[0].name


def _insert(values: Sequence[Any] | None, pos: int, value: Any) -> list[Any] | None:
    if values is None:
        return None
    out = list(values)
    out.insert(pos, value)
    return out


def _stack(datas: list[Any], axis: int) -> Any:
    """Stack same-shape layers along a new channel axis, level by level when
    every layer holds the same pyramid, else from level 0 (pyramid recomputed)."""
    import dask.array as da

    pyramids = [list(d) if is_multiscale(d) else [d] for d in datas]
    shapes = {tuple(tuple(lv.shape) for lv in p) for p in pyramids}
    nlevels = len(pyramids[0]) if len(shapes) == 1 else 1
    stacked = [da.stack([da.asarray(p[k]) for p in pyramids], axis=axis) for k in range(nlevels)]
    return stacked if nlevels > 1 else stacked[0]
