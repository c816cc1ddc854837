"""Turn the reader's `model.Image` objects into napari layer data tuples.

Pure functions (no viewer needed): one image layer per channel, coloured and
windowed from the `omero` block, one RGB layer for bioformats2raw-style RGB,
and one labels layer per label image. Every layer carries
`metadata["omezarr"]` so that the writer and the widget know where it came from.

Pixels are read only when the file lacks what napari needs: contrast limits of
a channel without a window come from the smallest pyramid level, and labels
listed in `image-label.colors` make us look up the label values present in
the smallest level so that unlisted labels keep distinct colours.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import PurePosixPath
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
from napari.utils.colormaps import Colormap, label_colormap

from napari_omezarr_x._napari.guard import guard
from napari_omezarr_x.errors import NgffComplianceWarning, StoreAccessError
from napari_omezarr_x.model import Channel, Image
from napari_omezarr_x.read.lazy import to_dask
from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.storage import is_remote

logger = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]

#: napari's own choice for multichannel images without colours (channel_axis).
DEFAULT_COLORS_2 = ("magenta", "green")
DEFAULT_COLORS = ("cyan", "yellow", "magenta", "red", "green", "blue")
RGB_COLORS = ("FF0000", "00FF00", "0000FF")
#: omero channel key keeping a napari colormap that is not one colour (magma, twilight):
#: omero itself only knows a colour, which would turn it into a black-to-colour ramp.
COLORMAP_KEY = "napari-omezarr-x:colormap"
#: Largest smallest-level we read whole to find contrast limits or label values.
MAX_SAMPLE = 1 << 22
_STORE_SUFFIXES = (".ome.zarr", ".zarr", ".ozx", ".zip")


def layers_for_images(images: list[Image]) -> list[LayerData]:
    """All layers for what `read_ome_zarr` returned: each image, then its labels.

    A plate's well names come first: napari centres the sliders of the first
    layer added to an empty viewer, which for a plate image would read the
    middle field before field 0; the names have no field axis (the napari
    adapter then moves them on top).
    """
    layers: list[LayerData] = []
    for image in images:
        if is_labels(image):
            layers.append(labels_layer(image))
            continue
        if image.kind == "plate" and image.plate is not None:
            layers.append(well_names_layer(image))
        layers.extend(image_layers(image))
        layers.extend(labels_layer(label) for label in image.labels)
    return layers


def is_labels(image: Image) -> bool:
    """A label image (opened directly or as a child) with integer or boolean pixels."""
    if image.kind != "labels" and image.label is None:
        return False
    dtype = np.dtype(image.levels[0].dtype)
    if np.issubdtype(dtype, np.integer) or dtype.kind == "b":
        return True
    warnings.warn(
        f"{image.store} {image.path}: label image has {dtype} pixels; shown as an image",
        NgffComplianceWarning,
        stacklevel=2,
    )
    return False


def display_name(image: Image) -> str | None:
    """The image's own name when it says something ('' and '/' do not)."""
    name = (image.name or "").strip()
    return name if name and name != "/" else None


def fallback_name(image: Image) -> str:
    """A name from the store and group path, for images that have none."""
    base = image.store.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in _STORE_SUFFIXES:
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    return f"{base}/{image.path}" if image.path else base


def omezarr_metadata(
    image: Image, kind: str, channel_index: int | None = None, channel: Channel | None = None
) -> dict[str, Any]:
    """The `metadata["omezarr"]` block shared with the writer and the widgets.

    Plates and wells add their layout (`plate`), images of a collection its
    listing (`collection`), both as plain dicts (`model.Plate.from_json`).
    """
    block: dict[str, Any] = {
        "store": image.store,
        "path": image.path,
        "version": image.version,
        "channel_index": channel_index,
        "channel": dict(channel.raw) if channel is not None else None,
        "image_name": image.name,
        "kind": kind,
        "rdefs": _rdefs(image),
    }
    if image.plate is not None:
        block["plate"] = image.plate.to_json()
    if image.collection is not None:
        block["collection"] = image.collection.to_json()
    return block


def _rdefs(image: Image) -> dict[str, Any] | None:
    """The image's `omero.rdefs` (rendering model and defaults), kept for saving."""
    omero = image.attrs.get("omero") if isinstance(image.attrs, dict) else None
    rdefs = omero.get("rdefs") if isinstance(omero, dict) else None
    return dict(rdefs) if isinstance(rdefs, dict) else None


def is_greyscale(image: Image) -> bool:
    """Whether `omero.rdefs.model` asks for greyscale rendering (OMERO's "greyscale")."""
    return md.rendering_model(image.attrs) == "greyscale"


# --- geometry -----------------------------------------------------------------


def _spatial_kwargs(image: Image, keep: list[int]) -> dict[str, Any]:
    """scale, translate, affine, axis_labels and units for the kept axes."""
    kwargs: dict[str, Any] = {
        "scale": tuple(float(image.scale[i]) for i in keep),
        "translate": tuple(float(image.translate[i]) for i in keep),
        "axis_labels": tuple(image.axes[i].name for i in keep),
    }
    units = [napari_unit(image.axes[i].unit, image) for i in keep]
    if any(u is not None for u in units):
        kwargs["units"] = tuple(u or "pixel" for u in units)
    affine = _affine(image, keep)
    if affine is not None:
        kwargs["affine"] = affine
        _warn_out_of_plane(image, [image.axes[i].name for i in keep], affine)
    return kwargs


def _warn_out_of_plane(image: Image, names: list[str], affine: np.ndarray) -> None:
    """Say once, on opening, why napari's 2D view of this image is not rotated.

    napari's 2D view cuts the stored array along its own axes and applies only
    the part of the affine within the displayed plane (by default the last two
    axes); a rotation that turns a sliced axis (z) into a displayed one (y) would
    need an oblique cut, which napari does not make ("Non-orthogonal slicing ...
    not fully supported"). The 3D view applies the whole affine.
    """
    linear = np.asarray(affine, dtype=float)[:-1, :-1]
    n = len(names)
    if n < 3:
        return
    shown, sliced = list(range(n - 2, n)), list(range(n - 2))
    coupled = np.abs(linear[np.ix_(shown, sliced)]) + np.abs(linear[np.ix_(sliced, shown)]).T
    if not (coupled > 1e-9).any():
        return
    pairs = np.argwhere(coupled > 1e-9)
    involved = sorted({sliced[j] for _, j in pairs} | {shown[i] for i, _ in pairs})
    plane = [names[i] for i in involved]
    name = display_name(image) or fallback_name(image)
    hint = ""
    if len(plane) == 2:
        hint = (
            f" In 2D it shows rotated when the plane it turns in ({', '.join(plane)}) is the "
            "one displayed (roll or transpose the axes so that these two are shown)."
        )
    warnings.warn(
        f"{name}: its transformation rotates {' and '.join(plane)} into each other, out of "
        f"the 2D view's ({names[-2]}, {names[-1]}) plane. napari's 2D view cuts the stored "
        "planes along their own axes and cannot apply that rotation, so it shows them "
        "unrotated; the 3D view shows the image rotated as the file says." + hint,
        UserWarning,
        stacklevel=3,
    )


def _affine(image: Image, keep: list[int]) -> np.ndarray | None:
    """The model's extra affine as a matrix over the layer's axes (None if identity)."""
    if image.affine is None:
        return None
    mat = np.asarray(image.affine, dtype=float)
    n = len(keep)
    if mat.shape == (n + 1, n + 1):
        full = mat
    else:
        spatial = [k for k, i in enumerate(keep) if image.axes[i].type == "space"]
        if mat.shape != (len(spatial) + 1, len(spatial) + 1):
            warnings.warn(
                f"{image.store} {image.path}: affine of shape {mat.shape} does not fit "
                f"{n} axes; ignored",
                NgffComplianceWarning,
                stacklevel=3,
            )
            return None
        full = np.eye(n + 1)
        idx = [*spatial, n]
        full[np.ix_(idx, idx)] = mat
    return None if np.allclose(full, np.eye(n + 1)) else full


def napari_unit(unit: str | None, image: Image | None = None) -> str | None:
    """An NGFF unit name as napari (pint) accepts it, or None when unknown."""
    if not unit:
        return None
    from napari.utils.transforms._units import get_units_from_name

    try:
        return str(get_units_from_name(str(unit)))
    except Exception:
        where = f"{image.store} {image.path}: " if image is not None else ""
        warnings.warn(
            f"{where}unit {unit!r} is not known to napari; dropped",
            NgffComplianceWarning,
            stacklevel=3,
        )
        return None


def display_levels(image: Image) -> list[da.Array]:
    """The levels as napari should read them.

    Remote levels get one dask block per chunk (read.lazy's `display` views):
    napari widens each view to whole blocks, so the read tiles of the core
    API would fetch up to 4x what is shown; the guard reads the blocks of a
    view side by side instead.
    """
    if image.remote and len(image.sources) == len(image.levels):
        return [to_dask(source, remote=True, display=True) for source in image.sources]
    return list(image.levels)


def _levels(levels: list[da.Array], image: Image, name: str) -> dict[str, Any]:
    """Layer data: the levels, guarded so that napari draws a failed read blank (guard.py)."""
    remote = _is_remote(image)
    guarded = [guard(level, image.store, name, remote=remote) for level in levels]
    if len(guarded) > 1:
        return {"data": guarded, "multiscale": True}
    return {"data": guarded[0], "multiscale": False}


# --- images -------------------------------------------------------------------


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
    meta = _spatial_kwargs(image, keep)
    meta["name"] = display_name(image) or fallback_name(image)
    levels = _levels(display_levels(image), image, meta["name"])
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
    geometry = _spatial_kwargs(image, keep)
    title = display_name(image)
    grey = is_greyscale(image)
    layers = []
    shown = display_levels(image)
    for i, channel in enumerate(channels):
        index = (slice(None),) * c + (i,)
        meta = dict(geometry)
        meta["name"] = _channel_name(image, title, channel, i)
        levels = _levels([level[index] for level in shown], image, meta["name"])
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


def smallest_sample(image: Image) -> da.Array:
    """The smallest level; for a plate or well only its first field in the first well.

    One field stands for the plate, so that opening a 384-well plate reads one
    tile's chunks, not every well's.
    """
    smallest = image.levels[-1]
    plate = image.plate
    if plate is None or not plate.wells:
        return smallest
    well = next((w for w in plate.wells if w.fields), plate.wells[0])
    ty = smallest.shape[-2] // len(plate.rows)
    tx = smallest.shape[-1] // len(plate.columns)
    rows = slice(well.row * ty, (well.row + 1) * ty)
    cols = slice(well.column * tx, (well.column + 1) * tx)
    return smallest[(slice(0, 1), Ellipsis, rows, cols)]


def _min_max(
    image: Image, c: int | None, need: list[int], out: list[tuple[float, float] | None]
) -> list[tuple[float, float] | None]:
    # One read of the (small) sample, then numpy: cheaper than dask reduction graphs.
    sample = _read(_sample(smallest_sample(image), c), image)
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


def _read(array: da.Array, image: Image) -> np.ndarray:
    """Pixels of `array`, read as layer data are (remote blocks side by side; errors raise)."""
    return np.asarray(guard(array, image.store, image.path, remote=_is_remote(image)))


def _is_remote(image: Image) -> bool:
    """Whether reading the image crosses a network (mosaics know only their store's name)."""
    return image.remote or is_remote(image.store)


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


# --- RGB ------------------------------------------------------------------------


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
    meta = _spatial_kwargs(image, keep)
    meta["name"] = display_name(image) or fallback_name(image)
    moved = [da.moveaxis(level, c, -1) for level in display_levels(image)]
    levels = _levels(moved, image, meta["name"])
    meta.update(rgb=True, multiscale=levels["multiscale"], contrast_limits=(0, 255))
    block = omezarr_metadata(image, image.kind)
    block["rgb"] = True
    block["channels"] = [dict(ch.raw) for ch in image.channels]
    meta["metadata"] = {"omezarr": block}
    return (levels["data"], meta, "image")


# --- labels ---------------------------------------------------------------------


def label_name(label: Image) -> str:
    """A label image's name: as its multiscale `name` says ("nuclei edited" for
    `labels/nuclei_edited`), else its key in the `labels` group."""
    parts = PurePosixPath(label.path).parts
    if len(parts) >= 2 and parts[-2] == "labels":
        return md.label_title(label.name, parts[-1])
    return display_name(label) or (parts[-1] if parts else fallback_name(label))


def labels_layer(label: Image) -> LayerData:
    """One (multiscale) labels layer with its colours and properties."""
    keep = list(range(label.ndim))
    meta = _spatial_kwargs(label, keep)
    meta["name"] = label_name(label)
    if label.plate is not None:  # "plate: cells", "B/03: cells"
        meta["name"] = (
            f"{label.plate.name or label.plate.path or fallback_name(label)}: {meta['name']}"
        )
    levels = _levels(display_levels(label), label, meta["name"])
    meta["multiscale"] = levels["multiscale"]
    meta["metadata"] = {"omezarr": omezarr_metadata(label, "labels")}
    info = label.label
    if info is not None and info.colors:
        meta["colormap"] = label_colors(info.colors, _label_values(label, info.colors))
    if info is not None and info.properties:
        features = label_features(info.properties)
        if features is not None:
            meta["features"] = features
    return (levels["data"], meta, "labels")


def label_colors(
    colors: dict[int, tuple[float, ...]], present: list[int] | None = None
) -> dict[int | None, Any]:
    """A direct colour dict: listed colours, napari's cycle for the other labels.

    Labels found in `present` but not listed get the colour napari's default
    cyclic colormap gives them; the `None` key gives any label we did not see a
    visible colour rather than leaving it transparent.
    """
    cycle = label_colormap(49, 0.5, background_value=0)
    others = sorted({int(v) for v in present or []} - set(colors) - {0})
    mapped = cycle.map(np.asarray(others, dtype=np.int64)) if others else []
    result: dict[int | None, Any] = {0: (0.0, 0.0, 0.0, 0.0)}
    for value, rgba in [*zip(others, mapped, strict=True), *colors.items()]:
        result[int(value)] = tuple(float(x) for x in rgba)
    result[None] = (0.75, 0.75, 0.75, 1.0)
    return result


def _label_values(label: Image, colors: dict[int, Any]) -> list[int]:
    """Label values present in the smallest level (none if it is too big to read)."""
    smallest = smallest_sample(label)
    if smallest.size > MAX_SAMPLE:
        logger.info("%s %s: smallest label level too big to list values", label.store, label.path)
        return list(colors)
    try:
        return [int(v) for v in np.unique(_read(smallest, label))]
    except StoreAccessError as exc:  # the layer must still open; listed colours still apply
        warnings.warn(
            f"{label.store} {label.path}: cannot read the smallest level to list label "
            f"values: {exc}",
            UserWarning,
            stacklevel=3,
        )
        return list(colors)


def label_features(properties: list[dict[str, Any]]) -> pd.DataFrame | None:
    """`image-label.properties` as a napari features table indexed by label value."""
    rows = [p for p in properties if isinstance(p.get("label-value"), int | float)]
    if not rows:
        return None
    table = pd.DataFrame(rows)
    table.insert(0, "index", table.pop("label-value").astype(int))
    return table


# --- plates -----------------------------------------------------------------------


#: Text size (screen pixels) of the well names shown on a plate.
WELL_TEXT_SIZE = 12


def well_names_layer(image: Image) -> LayerData:
    """A points layer naming each well of a plate at its tile's top-left corner.

    The points are invisible; their text stays anchored to the wells as the
    view zooms (the napari adapter scales or hides it with the zoom level).
    """
    plate = image.plate
    assert plate is not None
    ndim = image.ndim
    meta = _spatial_kwargs(image, [ndim - 2, ndim - 1])
    ty = image.levels[0].shape[-2] // len(plate.rows)
    tx = image.levels[0].shape[-1] // len(plate.columns)
    coords = np.array(
        [[w.row * ty - 0.5, w.column * tx - 0.5] for w in plate.wells], dtype=float
    ).reshape(-1, 2)
    names = [plate.well_name(w) for w in plate.wells]
    meta.update(
        name=f"{display_name(image) or fallback_name(image)}: wells",
        size=0,
        face_color="transparent",
        border_width=0,
        features=pd.DataFrame({"well": names, "path": [w.path for w in plate.wells]}),
        text={
            "string": "{well}",
            "anchor": "upper_left",
            "size": WELL_TEXT_SIZE,
            "color": "white",
        },
        metadata={"omezarr": omezarr_metadata(image, "plate-wells")},
    )
    return (coords, meta, "points")
