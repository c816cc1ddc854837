"""OME-NGFF metadata the writer produces: axes, multiscales, omero, image-label.

Pure functions from plain Python values to the JSON of NGFF 0.4 or 0.5, so the
writer and its tests share one definition of what goes into a store.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from napari_omezarr_x.model import Axis, Channel

VERSIONS = ("0.4", "0.5")

SPACE_UNITS = {
    "angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer", "foot",
    "gigameter", "hectometer", "inch", "kilometer", "megameter", "meter", "micrometer", "mile",
    "millimeter", "nanometer", "parsec", "petameter", "picometer", "terameter", "yard",
    "yoctometer", "yottameter", "zeptometer", "zettameter",
}  # fmt: skip
TIME_UNITS = {
    "attosecond", "centisecond", "day", "decisecond", "exasecond", "femtosecond", "gigasecond",
    "hectosecond", "hour", "kilosecond", "megasecond", "microsecond", "millisecond", "minute",
    "nanosecond", "petasecond", "picosecond", "second", "terasecond", "yoctosecond",
    "yottasecond", "zeptosecond", "zettasecond",
}  # fmt: skip
DEFAULT_NAMES = {1: "x", 2: "yx", 3: "zyx", 4: "tzyx", 5: "tczyx"}
_TYPE_BY_NAME = {
    "t": "time", "time": "time", "c": "channel", "ch": "channel", "channel": "channel",
    "x": "space", "y": "space", "z": "space",
}  # fmt: skip


def make_axes(
    ndim: int,
    names: Sequence[str] | None = None,
    units: Sequence[str | None] | None = None,
    types: Sequence[str | None] | None = None,
) -> tuple[Axis, ...]:
    """Axes for an `ndim` array from optional names, units and types.

    Missing or napari-default names ('-3', '0', ...) become t, c, z, y, x
    style names; types are inferred from the name, then from the unit; the
    unit 'pixel' (napari's default) means no unit.
    """
    if not 2 <= ndim <= 5:
        raise ValueError(f"OME-NGFF images have 2 to 5 axes, got an array with {ndim}")
    if names is None or all(re.fullmatch(r"-?\d+", str(n)) for n in names):
        names = list(DEFAULT_NAMES[ndim])
    names = [str(n) for n in names]
    if len(names) != ndim or len(set(names)) != ndim:
        raise ValueError(f"expected {ndim} distinct axis names, got {names}")
    units = [None] * ndim if units is None else [_unit(u) for u in units]
    types = [None] * ndim if types is None else list(types)
    axes = []
    for name, unit, typ in zip(names, units, types, strict=True):
        if typ is None:
            typ = _TYPE_BY_NAME.get(name.lower())
        if typ is None and unit in SPACE_UNITS:
            typ = "space"
        if typ is None and unit in TIME_UNITS:
            typ = "time"
        axes.append(Axis(name=name, type=typ, unit=unit))
    # Names we cannot place (napari axis labels are free text): the last untyped
    # axes are the image plane/volume, as in napari.
    for i in reversed(range(ndim)):
        if sum(a.type == "space" for a in axes) >= 3 or axes[i].type is not None:
            break
        axes[i] = Axis(name=axes[i].name, type="space", unit=axes[i].unit)
    axes = _custom_axis(axes)
    check_axes(axes)
    return tuple(axes)


def _custom_axis(axes: list[Axis]) -> list[Axis]:
    """Type the axes still untyped: OME-NGFF allows one axis of a custom type (typed
    here by its own name, e.g. `angle`); an axis without a type would count as a
    fourth space axis for the schemas. Two or more are refused."""
    free = [i for i, a in enumerate(axes) if a.type is None]
    if len(free) > 1:
        names = ", ".join(a.name for a in axes)
        odd = " and ".join(repr(axes[i].name) for i in free)
        raise ValueError(
            f"axes ({names}): OME-NGFF allows at most one axis that is not space, time or "
            f"channel, and {odd} are none of these. Name the axes t, c, z, y or x (in napari: "
            "the layer's axis_labels), or save fewer dimensions"
        )
    for i in free:
        a = axes[i]
        axes[i] = Axis(name=a.name, type=a.name.lower(), unit=a.unit)
    return axes


def _unit(unit: object) -> str | None:
    text = None if unit is None else str(unit).strip()
    if not text or text in ("pixel", "px", "dimensionless"):
        return None
    return text


def check_axes(axes: Sequence[Axis]) -> None:
    """Raise ValueError unless the axes follow NGFF 0.4/0.5 ordering rules."""
    kinds = [a.type for a in axes]
    space = [i for i, k in enumerate(kinds) if k == "space"]
    desc = ", ".join(f"{a.name}:{a.type}" for a in axes)
    if not 2 <= len(space) <= 3 or space != list(range(len(axes) - len(space), len(axes))):
        raise ValueError(f"OME-NGFF needs 2 or 3 space axes last, got axes ({desc})")
    if kinds.count("time") > 1 or kinds.count("channel") > 1:
        raise ValueError(f"OME-NGFF allows one time and one channel axis, got ({desc})")
    if "time" in kinds and kinds.index("time") != 0:
        raise ValueError(f"OME-NGFF needs the time axis first, got ({desc})")
    for a in axes:
        if a.type == "space" and a.unit is not None and a.unit not in SPACE_UNITS:
            raise ValueError(f"axis {a.name!r}: {a.unit!r} is not an OME-NGFF space unit")
        if a.type == "time" and a.unit is not None and a.unit not in TIME_UNITS:
            raise ValueError(f"axis {a.name!r}: {a.unit!r} is not an OME-NGFF time unit")


def axes_json(axes: Sequence[Axis]) -> list[dict[str, Any]]:
    """The `axes` list of a multiscale."""
    out = []
    for a in axes:
        entry: dict[str, Any] = {"name": a.name}
        if a.type is not None:
            entry["type"] = a.type
        if a.unit is not None:
            entry["unit"] = a.unit
        out.append(entry)
    return out


def level_transforms(
    scale: Sequence[float], translate: Sequence[float], factors: Sequence[int]
) -> tuple[list[float], list[float]]:
    """Scale and translation of a level with cumulative `factors`.

    Level pixel i covers level-0 pixels [i*f, (i+1)*f), so its centre sits at
    level-0 index i*f + (f-1)/2: translation = t0 + s0*(f-1)/2, scale = s0*f.
    """
    lscale = [float(s) * f for s, f in zip(scale, factors, strict=True)]
    ltrans = [
        float(t) + float(s) * (f - 1) / 2 for t, s, f in zip(translate, scale, factors, strict=True)
    ]
    return lscale, ltrans


def multiscale_json(
    axes: Sequence[Axis],
    scale: Sequence[float],
    translate: Sequence[float],
    factors: Sequence[Sequence[int]],
    name: str | None,
    version: str,
    paths: Sequence[str] | None = None,
    downsample: str | None = None,
) -> dict[str, Any]:
    """One `multiscales` entry with a dataset per level (paths "0", "1", ... unless given).

    `downsample` ("mean", "mode", "nearest", or None for levels given as they are)
    fills `type` and `metadata`, which the spec recommends (and `validate --strict`
    requires) next to `name`.
    """
    datasets = []
    for k, fac in enumerate(factors):
        lscale, ltrans = level_transforms(scale, translate, fac)
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": lscale}]
        if any(t != 0 for t in ltrans):
            transforms.append({"type": "translation", "translation": ltrans})
        path = paths[k] if paths is not None else str(k)
        datasets.append({"path": path, "coordinateTransformations": transforms})
    ms: dict[str, Any] = {"axes": axes_json(axes), "datasets": datasets}
    if name:
        ms["name"] = name
    if version == "0.4":
        ms["version"] = "0.4"
    ms["type"] = downsample or "unknown"
    ms["metadata"] = _downsample_metadata(downsample)
    return ms


_DOWNSAMPLE_DESCRIPTIONS = {
    "mean": "2x block mean per level, rounded to nearest in the input dtype",
    "mode": "2x block mode per level (ties: the top-left pixel)",
    "nearest": "2x subsampling per level (the top-left pixel of each block)",
}


def _downsample_metadata(downsample: str | None) -> dict[str, Any]:
    from napari_omezarr_x import __version__

    if downsample is None:
        return {"description": "levels written as given", "version": __version__}
    return {
        "description": _DOWNSAMPLE_DESCRIPTIONS.get(downsample, downsample),
        "method": f"napari_omezarr_x.write.pyramid.downsample_block ({downsample})",
        "version": __version__,
    }


def _hex(color: object) -> str:
    if isinstance(color, str):
        text = color.lstrip("#")
        if re.fullmatch(r"[0-9a-fA-F]{6}", text):
            return text.upper()
        if re.fullmatch(r"[0-9a-fA-F]{8}", text):
            return text[:6].upper()
        raise ValueError(f"colour {color!r} is not an RGB hex string")
    rgb = [float(v) for v in list(color)[:3]]  # type: ignore[call-overload]
    if max(rgb) <= 1.0:
        rgb = [v * 255 for v in rgb]
    return "".join(f"{round(v):02X}" for v in rgb)


def _finite(value: float | None, default: float) -> float:
    if value is None or not math.isfinite(float(value)):
        return default
    return float(value)


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """The natural display range of a dtype (0-1 for floats)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if dtype.kind == "b":
        return 0.0, 1.0
    return 0.0, 1.0


def omero_json(
    channels: Sequence[Channel],
    dtype: np.dtype,
    version: str,
    rdefs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `omero` block; keys of each channel's `raw` dict we do not set are kept.

    `rdefs` (the opened file's rendering defaults, e.g. `"model": "greyscale"`) is
    kept; without one the model is "color".
    """
    lo, hi = dtype_range(dtype)
    out = []
    for i, ch in enumerate(channels):
        entry = dict(ch.raw)
        vmin = _finite(ch.min, lo)
        vmax = _finite(ch.max, hi)
        window = dict(entry.get("window") or {})
        window.update(start=_finite(ch.start, vmin), end=_finite(ch.end, vmax), min=vmin, max=vmax)
        entry.update(
            label=ch.label if ch.label is not None else f"Channel {i}",
            color=_hex(ch.color) if ch.color else "FFFFFF",
            window=window,
            active=bool(ch.active),
            inverted=bool(ch.inverted),
        )
        out.append(entry)
    block: dict[str, Any] = {"channels": out, "rdefs": {"model": "color", **(rdefs or {})}}
    if version == "0.4":
        block["version"] = "0.4"
    return block


def image_label_json(
    colors: Mapping[int, Sequence[float]],
    properties: Sequence[Mapping[str, Any]],
    version: str,
    source: str | None = "../../",
) -> dict[str, Any]:
    """The `image-label` block. `colors` maps values to RGBA in 0-1 or 0-255;
    every value with a colour or a property is listed in both lists, as NGFF
    asks for matching label values. Without any colour, the background (0) is
    listed as transparent: the spec recommends a `colors` list of at least one entry."""
    by_value: dict[int, dict[str, Any]] = {}
    for prop in properties:
        value = int(prop["label-value"])
        by_value.setdefault(value, {}).update(_json_safe(prop))
        by_value[value]["label-value"] = value
    values = sorted(set(int(v) for v in colors) | set(by_value))
    block: dict[str, Any] = {}
    if colors:
        block["colors"] = [
            {"label-value": v, "rgba": _rgba255(colors.get(v, (0, 0, 0, 0)))} for v in values
        ]
    else:
        block["colors"] = [{"label-value": 0, "rgba": [0, 0, 0, 0]}]
    if by_value:
        block["properties"] = [by_value.get(v, {"label-value": v}) for v in values]
    if source is not None:
        block["source"] = {"image": source}
    block["version"] = version
    return block


def default_label_colors(values: np.ndarray) -> np.ndarray:
    """Distinct opaque RGBA colours (0-1) for label values, transparent for 0.

    Hues step by the golden ratio from the value, so neighbouring labels differ and
    a value has the same colour in every store.
    """
    values = np.asarray(values).astype(np.float64)
    hue = (values * 0.618033988749895) % 1.0
    sat, val = 0.65, 0.95
    sector = np.floor(hue * 6) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    table = np.stack(
        [
            np.choose(sector.astype(int), [val, q, p, p, t, val]),
            np.choose(sector.astype(int), [t, val, val, q, p, p]),
            np.choose(sector.astype(int), [p, p, t, val, val, q]),
            np.ones_like(hue),
        ],
        axis=-1,
    )
    table[values == 0] = 0.0
    return table.reshape(*np.shape(values), 4)


def plate_json(
    name: str | None,
    rows: Sequence[str],
    columns: Sequence[str],
    wells: Sequence[tuple[str, int, int]],
    field_count: int,
    acquisitions: Sequence[Mapping[str, Any]],
    version: str,
) -> dict[str, Any]:
    """The `plate` block: grid names, wells as (path, row index, column index),
    the largest number of fields per well and the acquisitions (each with an `id`)."""
    block: dict[str, Any] = {
        "columns": [{"name": c} for c in columns],
        "rows": [{"name": r} for r in rows],
        "wells": [{"path": p, "rowIndex": r, "columnIndex": c} for p, r, c in wells],
        "field_count": int(field_count),
    }
    if name:
        block["name"] = name
    if acquisitions:
        block["acquisitions"] = [_json_safe(a) for a in acquisitions]
    if version == "0.4":
        block["version"] = "0.4"
    return block


def well_json(images: Sequence[tuple[str, int | None]], version: str) -> dict[str, Any]:
    """The `well` block: its field images as (path, acquisition id or None)."""
    entries = [
        {"path": path, **({"acquisition": int(acq)} if acq is not None else {})}
        for path, acq in images
    ]
    block: dict[str, Any] = {"images": entries}
    if version == "0.4":
        block["version"] = "0.4"
    return block


def _rgba255(rgba: Sequence[float]) -> list[int]:
    vals = [float(v) for v in rgba]
    if len(vals) == 3:
        vals.append(1.0 if max(vals) <= 1.0 else 255.0)
    if max(vals) <= 1.0:
        vals = [v * 255 for v in vals]
    return [min(255, max(0, round(v))) for v in vals[:4]]


def _json_safe(mapping: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in mapping.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if value is None or isinstance(value, str | int | float | bool | list | dict):
            out[str(key)] = value
        else:
            out[str(key)] = str(value)
    return out


def group_attrs(version: str, content: dict[str, Any]) -> dict[str, Any]:
    """Wrap NGFF `content` as group attributes of `version` (0.5: under `ome`)."""
    if version not in VERSIONS:
        raise ValueError(f"cannot write OME-NGFF {version!r}: choose one of {VERSIONS}")
    if version == "0.5":
        return {"ome": {"version": "0.5", **content}}
    return dict(content)
