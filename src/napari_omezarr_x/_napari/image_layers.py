"""Image layers of one image: one per channel, coloured and windowed from `omero`,
or one RGB layer for bioformats2raw-style photographs.

Pixels are read only when the file lacks what napari needs: contrast limits of
a channel without a window come from the smallest pyramid level.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import dask.array as da
import numpy as np
from napari.utils.colormaps import Colormap

from napari_omezarr_x._napari.layer_parts import (
    MAX_SAMPLE,
    LayerData,
    channel_levels,
    display_levels,
    display_name,
    fallback_name,
    is_greyscale,
    levels_data,
    omezarr_metadata,
    read_pixels,
    smallest_sample,
    spatial_kwargs,
)
from napari_omezarr_x.errors import NgffComplianceWarning
from napari_omezarr_x.model import Channel, Image

logger = logging.getLogger(__name__)

#: napari's own choice for multichannel images without colours (channel_axis).
DEFAULT_COLORS_2 = ("magenta", "green")
DEFAULT_COLORS = ("cyan", "yellow", "magenta", "red", "green", "blue")
RGB_COLORS = ("FF0000", "00FF00", "0000FF")
#: omero channel key keeping a napari colormap that is not one colour (magma, twilight):
#: omero itself only knows a colour, which would turn it into a black-to-colour ramp.
COLORMAP_KEY = "napari-omezarr-x:colormap"


def image_layers(image: Image) -> list[LayerData]:
    """Image layers for one multiscale image: one per channel, or one RGB layer."""
    c = image.channel_axis
    if c is None:
        return [_single_layer(image)]
    if is_rgb(image):
        return [_rgb_layer(image, c)]
    return _channel_layers(image, c)


def _single_layer(image: Image) -> LayerData:
    keep = list(range(image.ndim))
    channel = image.channels[0] if len(image.channels) == 1 else None
    meta = spatial_kwargs(image, keep)
    meta["name"] = display_name(image) or fallback_name(image)
    levels = levels_data(display_levels(image), image, meta["name"])
    meta["multiscale"] = levels["multiscale"]
    limits = _limits_from_data(image, None, 1, [] if _window(channel) else [0])
    meta.update(_channel_style(channel, 0, 1, limits[0], grey=is_greyscale(image)))
    index = None if channel is None else 0
    meta["metadata"] = {"omezarr": omezarr_metadata(image, image.kind, index, channel)}
    return (levels["data"], meta, "image")


def _channel_layers(image: Image, c: int) -> list[LayerData]:
    n = int(image.levels[0].shape[c])
    if image.channels and len(image.channels) != n:
        warnings.warn(
            f"{image.store} {image.path}: omero lists {len(image.channels)} channels for "
            f"{n} in the data; extra entries ignored, missing ones get defaults",
            NgffComplianceWarning,
            stacklevel=3,
        )
    channels = [image.channels[i] if i < len(image.channels) else None for i in range(n)]
    need = [i for i, ch in enumerate(channels) if _window(ch) is None]
    limits = _limits_from_data(image, c, n, need)
    keep = [i for i in range(image.ndim) if i != c]
    geometry = spatial_kwargs(image, keep)
    title = display_name(image)
    grey = is_greyscale(image)
    layers = []
    for i, channel in enumerate(channels):
        meta = dict(geometry)
        meta["name"] = _channel_name(image, title, channel, i)
        levels = levels_data(channel_levels(image, c, i), image, meta["name"])
        meta["multiscale"] = levels["multiscale"]
        meta.update(_channel_style(channel, i, n, limits[i], grey=grey))
        meta["metadata"] = {"omezarr": omezarr_metadata(image, image.kind, i, channel)}
        layers.append((levels["data"], meta, "image"))
    return layers


def _channel_name(image: Image, title: str | None, channel: Channel | None, i: int) -> str:
    label = channel.label.strip() if channel is not None and channel.label else ""
    if title:
        return f"{title}: {label or f'channel {i}'}"
    return label or f"{fallback_name(image)}: channel {i}"


def _window(channel: Channel | None) -> tuple[float, float] | None:
    if channel is None or channel.start is None or channel.end is None:
        return None
    lo, hi = sorted((channel.start, channel.end))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    return (lo, hi if hi > lo else lo + 1)


def contrast_range(channel: Channel | None) -> tuple[float, float] | None:
    """The slider range a channel's window asks for (window min/max), if any."""
    window = _window(channel)
    if window is None or channel is None or channel.min is None or channel.max is None:
        return None
    lo, hi = min(channel.min, window[0]), max(channel.max, window[1])
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None


def _hex_color(color: str | None) -> str | None:
    if not color or len(color) != 6:
        return None
    return None if color.upper() == "000000" else f"#{color.lower()}"


def _default_color(i: int, n: int) -> str:
    if n == 1:
        return "gray"
    cycle = DEFAULT_COLORS_2 if n == 2 else DEFAULT_COLORS
    return cycle[i % len(cycle)]


def _channel_style(
    channel: Channel | None,
    i: int,
    n: int,
    data_limits: tuple[float, float] | None,
    *,
    grey: bool = False,
) -> dict[str, Any]:
    """colormap, contrast limits, visibility and blending of channel i of n.

    `grey` (`rdefs.model` "greyscale") shows every channel in grey, as OMERO does.
    """
    color = _hex_color(channel.color if channel else None) or _default_color(i, n)
    named = _named_colormap(channel)
    if grey:
        color = "gray"
    elif named is not None:
        color = named
    style: dict[str, Any] = {
        "colormap": _colormap(color, channel is not None and channel.inverted),
        "visible": channel.active if channel is not None else True,
        "blending": "additive" if n > 1 else "translucent",
    }
    limits = _window(channel) or data_limits
    if limits is not None:
        style["contrast_limits"] = limits
    return style


def _named_colormap(channel: Channel | None) -> str | None:
    """The napari colormap a channel was saved with (COLORMAP_KEY), if napari knows it."""
    from napari.utils.colormaps import AVAILABLE_COLORMAPS

    name = channel.raw.get(COLORMAP_KEY) if channel is not None else None
    return name if isinstance(name, str) and name in AVAILABLE_COLORMAPS else None


def with_colormap_name(raw: dict[str, Any], colormap: Any) -> dict[str, Any]:
    """`raw` with COLORMAP_KEY set to the napari name of `colormap` when it is more than
    one colour on black (magma), and without the key otherwise (a colour says it all)."""
    from napari.utils.colormaps import AVAILABLE_COLORMAPS, ensure_colormap

    out = {k: v for k, v in raw.items() if k != COLORMAP_KEY}
    cmap = ensure_colormap(colormap)
    colors = np.asarray(cmap.colors)[:, :3]
    ramp = len(colors) == 2 and (not colors[0].any() or not colors[-1].any())
    if not ramp and cmap.name in AVAILABLE_COLORMAPS:
        out[COLORMAP_KEY] = cmap.name
    return out


def _colormap(color: str, inverted: bool) -> str | Colormap:
    """A napari colormap from black to `color`, reversed when `inverted`."""
    if not inverted:
        return color
    from napari.utils.colormaps import ensure_colormap

    forward = ensure_colormap(color)
    return Colormap(
        colors=np.asarray(forward.colors)[::-1],
        name=f"{forward.name}_inverted",
        display_name=f"{forward.name} (inverted)",
    )


def _limits_from_data(
    image: Image, c: int | None, n: int, need: list[int]
) -> list[tuple[float, float] | None]:
    """Per-channel (min, max) of the smallest pyramid level, for the channels in `need`.

    Reads nothing when no channel needs it. The smallest level (level 0 of a
    single-level image) is read whole when it is small, else its central plane
    along the non-YX axes, cropped to its centre when that plane is large. napari's
    own guess without limits is the dtype's range for 8-bit data, which shows a
    narrow range (2..21 of 0..255) as black. When the level cannot be read, the
    dtype's range is used so that napari does not read it again to guess.
    """
    out: list[tuple[float, float] | None] = [None] * n
    smallest = smallest_sample(image)
    if not need:
        return out
    dtype = np.dtype(smallest.dtype)
    if dtype.kind == "b":
        return [(0.0, 1.0) if i in need else None for i in range(n)]
    try:
        return _min_max(image, c, need, out)
    except Exception as exc:  # a broken chunk or a failing server must not stop the open
        warnings.warn(
            f"{image.store} {image.path}: cannot read the smallest level for contrast "
            f"limits: {type(exc).__name__}: {exc}",
            NgffComplianceWarning,
            stacklevel=3,
        )
        fallback = dtype_limits(dtype)
        return [fallback if i in need else None for i in range(n)]


def dtype_limits(dtype: np.dtype) -> tuple[float, float]:
    """The full range of an integer dtype, else 0..1."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return (float(info.min), float(info.max))
    return (0.0, 1.0)


def _min_max(
    image: Image, c: int | None, need: list[int], out: list[tuple[float, float] | None]
) -> list[tuple[float, float] | None]:
    # One read of the (small) sample, then numpy: cheaper than dask reduction graphs.
    sample = read_pixels(_sample(smallest_sample(image), c), image)
    reduce_axes = tuple(a for a in range(sample.ndim) if a != c)
    for i in need:
        part = sample if c is None else sample[(slice(None),) * c + (slice(i, i + 1),)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = (
                float(np.nanmin(part, axis=reduce_axes).ravel()[0]),
                float(np.nanmax(part, axis=reduce_axes).ravel()[0]),
            )
        if not (np.isfinite(lo) and np.isfinite(hi)):
            lo, hi = 0.0, 1.0
        out[i] = (lo, hi if hi > lo else lo + 1)
    return out


def _sample(level: da.Array, c: int | None) -> da.Array:
    """The whole level when small, else the middle plane of every non-YX, non-channel
    axis, cropped to its central MAX_SAMPLE pixels when the plane alone is larger."""
    if level.size <= MAX_SAMPLE:
        return level
    side = int(MAX_SAMPLE**0.5)
    index = []
    for a, s in enumerate(level.shape):
        if a == c:
            index.append(slice(None))
        elif a >= level.ndim - 2:
            start = max(0, s // 2 - side // 2)
            index.append(slice(start, start + side))
        else:
            index.append(slice(s // 2, s // 2 + 1))
    return level[tuple(index)]


def is_rgb(image: Image) -> bool:
    """True for 8-bit images stored as bioformats2raw writes RGB(A) photographs.

    The rule: uint8 pixels, a channel axis of 3 or 4 entries, omero colours
    exactly red, green, blue for the first three channels, every channel active
    and not inverted, and every window either absent or the full 0..255 range.
    Anything else (a user changed the rendering) keeps one layer per channel.
    """
    c = image.channel_axis
    if c is None or np.dtype(image.levels[0].dtype) != np.uint8:
        return False
    n = int(image.levels[0].shape[c])
    if n not in (3, 4) or len(image.channels) != n:
        return False
    if tuple((ch.color or "").upper() for ch in image.channels[:3]) != RGB_COLORS:
        return False
    for ch in image.channels:
        if not ch.active or ch.inverted:
            return False
        if _window(ch) not in (None, (0.0, 255.0)):
            return False
    return True


def _rgb_layer(image: Image, c: int) -> LayerData:
    keep = [i for i in range(image.ndim) if i != c]
    meta = spatial_kwargs(image, keep)
    meta["name"] = display_name(image) or fallback_name(image)
    moved = [da.moveaxis(level, c, -1) for level in display_levels(image)]
    levels = levels_data(moved, image, meta["name"])
    meta.update(rgb=True, multiscale=levels["multiscale"], contrast_limits=(0, 255))
    block = omezarr_metadata(image, image.kind)
    block["rgb"] = True
    block["channels"] = [dict(ch.raw) for ch in image.channels]
    meta["metadata"] = {"omezarr": block}
    return (levels["data"], meta, "image")
