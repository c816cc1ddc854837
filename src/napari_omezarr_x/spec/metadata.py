"""Lenient parsing of OME-NGFF group attributes, version 0.1 to 0.6-dev.

Pure functions from JSON dictionaries to small descriptions; no I/O. They
accept what real writers produce (string axes of 0.3, spatialdata's
"-dev-spatialdata" versions, 0.6-dev coordinate systems) and raise
MetadataError naming `where` for what cannot be understood.
"""

from __future__ import annotations

import math
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_omezarr_x.errors import MetadataError, NgffComplianceWarning
from napari_omezarr_x.model import Axis, Channel, LabelMeta

from .transforms import sequence_matrix

KNOWN_VERSIONS = ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6")
WINDOW_KEYS = ("start", "end", "min", "max")

SPACE_UNITS = frozenset(
    [
        "angstrom",
        "attometer",
        "centimeter",
        "decimeter",
        "exameter",
        "femtometer",
        "foot",
        "gigameter",
        "hectometer",
        "inch",
        "kilometer",
        "megameter",
        "meter",
        "micrometer",
        "mile",
        "millimeter",
        "nanometer",
        "parsec",
        "petameter",
        "picometer",
        "terameter",
        "yard",
        "yoctometer",
        "yottameter",
        "zeptometer",
        "zettameter",
    ]
)
TIME_UNITS = frozenset(
    [
        "attosecond",
        "centisecond",
        "day",
        "decisecond",
        "exasecond",
        "femtosecond",
        "gigasecond",
        "hectosecond",
        "hour",
        "kilosecond",
        "megasecond",
        "microsecond",
        "millisecond",
        "minute",
        "nanosecond",
        "petasecond",
        "picosecond",
        "second",
        "terasecond",
        "yoctosecond",
        "yottasecond",
        "zeptosecond",
        "zettasecond",
    ]
)
UNIT_ALIASES = {
    "µm": "micrometer",
    "μm": "micrometer",
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "ms": "millisecond",
    "s": "second",
    "sec": "second",
    "min": "minute",
    "h": "hour",
}
# Keys whose presence makes a group an OME-Zarr node.
OME_KEYS = ("multiscales", "plate", "well", "labels", "image-label", "bioformats2raw.layout")
_IMPLIED_AXES = ("t", "c", "z", "y", "x")
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


@dataclass
class Multiscale:
    """One `multiscales` entry, reduced to what reading needs."""

    version: str
    name: str | None
    axes: tuple[Axis, ...] | None
    paths: list[str]
    dataset_transforms: list[list[dict[str, Any]]]
    transforms: list[dict[str, Any]]
    raw: dict[str, Any] = field(default_factory=dict)
    axes_options: list[tuple[Axis, ...]] = field(default_factory=list)

    def axes_for(self, ndim: int) -> tuple[Axis, ...]:
        """The axes for arrays of `ndim` dimensions (implied t,c,z,y,x before 0.3)."""
        for option in self.axes_options:
            if len(option) == ndim:
                return option
        return self.axes or implied_axes(ndim)

    def matrices(self, level: int, ndim: int, where: str) -> tuple[np.ndarray, np.ndarray]:
        """Homogeneous matrices of dataset `level` and of the whole multiscale."""
        return (
            sequence_matrix(self.dataset_transforms[level], ndim, where),
            sequence_matrix(self.transforms, ndim, where),
        )


def ome_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    """The OME metadata of a group: zarr v3's `ome` object, else the v2 attributes."""
    ome = attrs.get("ome")
    if isinstance(ome, dict):
        return ome
    return attrs


def is_ome_node(attrs: dict[str, Any]) -> bool:
    """Whether the attributes carry any OME-NGFF key."""
    ome = ome_attributes(attrs)
    return any(key in ome for key in OME_KEYS)


def normalize_version(version: Any, where: str) -> str:
    """Map a version string to one of KNOWN_VERSIONS ("0.5-dev-spatialdata" -> "0.5")."""
    match = re.match(r"^\s*(\d+)\.(\d+)", str(version)) if version is not None else None
    family = f"{match.group(1)}.{match.group(2)}" if match else None
    if family not in KNOWN_VERSIONS:
        raise MetadataError(
            f"{where}: unknown OME-NGFF version {version!r}; "
            f"this reader understands {', '.join(KNOWN_VERSIONS)}"
        )
    return family


def _infer_version(multiscale: dict[str, Any]) -> str:
    if "coordinateSystems" in multiscale:
        return "0.6"
    axes = multiscale.get("axes")
    if not axes:
        return "0.2"
    if all(isinstance(a, str) for a in axes):
        return "0.3"
    return "0.4"


def _unit(unit: Any) -> tuple[str | None, str | None]:
    """(spec unit name or None, what was wrong with `unit` or None)."""
    if unit is None or unit == "":
        return None, None
    text = str(unit)
    if text in SPACE_UNITS or text in TIME_UNITS:
        return text, None
    if text in UNIT_ALIASES:
        return UNIT_ALIASES[text], f"{text!r} read as {UNIT_ALIASES[text]!r}"
    return None, f"unknown {text!r} dropped"


def check_unit(unit: Any, axis: str, where: str) -> str | None:
    """A spec unit name for `unit`, or None (with a warning) when it is unknown."""
    name, problem = _unit(unit)
    if problem:
        warnings.warn(
            f"{where}: unit of axis {axis!r} is not an OME-NGFF unit name: {problem}",
            NgffComplianceWarning,
            stacklevel=2,
        )
    return name


def parse_axes(raw_axes: Any, where: str, *, quiet: bool = False) -> tuple[Axis, ...]:
    """Axes from 0.3 strings or 0.4+ objects; types of 0.3 names are implied.

    Units that are not spec names are reported in one warning per axes list
    (unless `quiet`).
    """
    if not isinstance(raw_axes, list) or not raw_axes:
        raise MetadataError(f"{where}: 'axes' must be a non-empty list, got {raw_axes!r}")
    axes = []
    problems = []
    for entry in raw_axes:
        if isinstance(entry, str):
            axes.append(Axis(entry, _AXIS_TYPES.get(entry.lower())))
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise MetadataError(f"{where}: axis {entry!r} has no 'name'")
        name = entry["name"]
        kind = entry.get("type")
        unit, problem = _unit(entry.get("unit"))
        if problem:
            problems.append(f"{name}: {problem}")
        axes.append(Axis(name, kind if isinstance(kind, str) else None, unit))
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise MetadataError(f"{where}: duplicate axis names {names}")
    if problems and not quiet:
        warnings.warn(
            f"{where}: units that are not OME-NGFF unit names ({'; '.join(problems)})",
            NgffComplianceWarning,
            stacklevel=2,
        )
    return tuple(axes)


def implied_axes(ndim: int) -> tuple[Axis, ...]:
    """Axes of 0.1/0.2 images, which are implicitly the last `ndim` of t, c, z, y, x."""
    names = _IMPLIED_AXES[-ndim:] if 0 < ndim <= 5 else tuple(f"dim_{i}" for i in range(ndim))
    return tuple(Axis(n, _AXIS_TYPES.get(n)) for n in names)


def _transform_io(transform: dict[str, Any], key: str) -> str | None:
    value = transform.get(key)
    if isinstance(value, dict):
        value = value.get("name")
    return value if isinstance(value, str) else None


def _coordinate_system_axes(ms: dict[str, Any], datasets: list[dict], where: str) -> list:
    """Candidate axes of a 0.6 multiscale, best first.

    The system the multiscale-level transforms lead to (the "world") comes
    first, then the one level 0's transforms lead to, then the rest; the
    reader keeps the first whose length matches the arrays.
    """
    systems = {s.get("name"): s for s in ms.get("coordinateSystems") or [] if isinstance(s, dict)}
    if not systems:
        raise MetadataError(f"{where}: 0.6 multiscale has no 'coordinateSystems'")
    level0 = datasets[0].get("coordinateTransformations") or []
    order = [_transform_io(t, "output") for t in ms.get("coordinateTransformations") or []]
    order += [_transform_io(t, "output") for t in level0]
    order += list(systems)
    names = [n for i, n in enumerate(order) if n in systems and n not in order[:i]]
    options = [parse_axes(systems[names[0]].get("axes"), where)]
    for name in names[1:]:
        # Fallbacks only: their problems matter only if one is used, and then
        # they are the same axes the arrays show.
        try:
            options.append(parse_axes(systems[name].get("axes"), where, quiet=True))
        except MetadataError:
            continue
    return options


def parse_multiscale(attrs: dict[str, Any], where: str) -> Multiscale:
    """The first `multiscales` entry of a group's attributes."""
    ome = ome_attributes(attrs)
    entries = ome.get("multiscales")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise MetadataError(f"{where}: 'multiscales' must be a non-empty list of objects")
    ms = entries[0]
    version_raw = ome.get("version") if "ome" in attrs else None
    version_raw = version_raw or ms.get("version") or _infer_version(ms)
    version = normalize_version(version_raw, where)
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise MetadataError(f"{where}: multiscale has no 'datasets'")
    paths: list[str] = []
    dataset_transforms = []
    for ds in datasets:
        if not isinstance(ds, dict) or not isinstance(ds.get("path"), str | int):
            raise MetadataError(f"{where}: dataset {ds!r} has no 'path'")
        paths.append(str(ds["path"]).strip("/"))
        dataset_transforms.append(list(ds.get("coordinateTransformations") or []))
    options: list[tuple[Axis, ...]] = []
    if version == "0.6" or "coordinateSystems" in ms:
        options = _coordinate_system_axes(ms, datasets, where)
    elif ms.get("axes"):
        options = [parse_axes(ms["axes"], where)]
    name = ms.get("name")
    return Multiscale(
        version=str(version_raw),
        name=name if isinstance(name, str) else None,
        axes=options[0] if options else None,
        paths=paths,
        dataset_transforms=dataset_transforms,
        transforms=list(ms.get("coordinateTransformations") or []),
        raw=ms,
        axes_options=options,
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _window_number(value: Any, key: str, quoted: list[str]) -> float | None:
    """A window value; a number written as a string ("10") is read, and noted in `quoted`."""
    number = _number(value)
    if number is not None or not isinstance(value, str):
        return number
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    quoted.append(f"{key}={value!r}")
    return number


def parse_channels(attrs: dict[str, Any], where: str) -> list[Channel]:
    """omero channels; a malformed channel gets defaults instead of breaking the others.

    Window values written as strings of numbers (some writers quote them) are read as
    numbers, with one compliance warning for the image.
    """
    omero = ome_attributes(attrs).get("omero")
    if not isinstance(omero, dict):
        return []
    raw_channels = omero.get("channels")
    if not isinstance(raw_channels, list):
        warnings.warn(
            f"{where}: 'omero.channels' is not a list", NgffComplianceWarning, stacklevel=2
        )
        return []
    channels = []
    quoted: list[str] = []
    for raw in raw_channels:
        raw = raw if isinstance(raw, dict) else {}
        window = raw.get("window") if isinstance(raw.get("window"), dict) else {}
        color = raw.get("color")
        if color is not None and not re.fullmatch(r"[0-9A-Fa-f]{6}", str(color)):
            warnings.warn(
                f"{where}: channel colour {color!r} is not RRGGBB hex; ignored",
                NgffComplianceWarning,
                stacklevel=2,
            )
            color = None
        label = raw.get("label")
        limits = {k: _window_number(window.get(k), k, quoted) for k in WINDOW_KEYS}
        channels.append(
            Channel(
                label=None if label is None else str(label),
                color=None if color is None else str(color).upper(),
                active=bool(raw.get("active", True)),
                inverted=bool(raw.get("inverted", False)),
                raw=raw,
                **limits,
            )
        )
    if quoted:
        warnings.warn(
            f"{where}: omero window values must be numbers, got strings "
            f"({', '.join(dict.fromkeys(quoted))}); read as numbers",
            NgffComplianceWarning,
            stacklevel=2,
        )
    return channels


def rendering_model(attrs: dict[str, Any]) -> str | None:
    """`omero.rdefs.model` ("color" or "greyscale"), or None when not given."""
    omero = ome_attributes(attrs).get("omero")
    rdefs = omero.get("rdefs") if isinstance(omero, dict) else None
    model = rdefs.get("model") if isinstance(rdefs, dict) else None
    return str(model).lower() if isinstance(model, str) else None


def _is_label_value(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == int(value)


def _is_rgba(rgba: Any) -> bool:
    return (
        isinstance(rgba, list)
        and len(rgba) == 4
        and all(isinstance(c, int | float) and 0 <= c <= 255 for c in rgba)
    )


def parse_image_label(attrs: dict[str, Any], where: str) -> LabelMeta:
    """`image-label`: colours as RGBA floats in 0..1 keyed by label value, properties, source."""
    block = ome_attributes(attrs).get("image-label")
    meta = LabelMeta()
    if not isinstance(block, dict):
        return meta
    for entry in block.get("colors") or []:
        value = entry.get("label-value") if isinstance(entry, dict) else None
        rgba = entry.get("rgba") if isinstance(entry, dict) else None
        if not _is_label_value(value) or not _is_rgba(rgba):
            warnings.warn(
                f"{where}: label colour {entry!r} is malformed (needs an integer 'label-value' "
                "and 'rgba' of four 0-255 integers); ignored",
                NgffComplianceWarning,
                stacklevel=2,
            )
            continue
        meta.colors[int(value)] = tuple(float(c) / 255 for c in rgba)
    properties = block.get("properties") or []
    meta.properties = (
        [p for p in properties if isinstance(p, dict)] if isinstance(properties, list) else []
    )
    source = block.get("source")
    if isinstance(source, dict) and isinstance(source.get("image"), str):
        meta.source = source["image"]
    return meta


def safe_name(name: str) -> str:
    """A zarr-safe group name from free text ("nuclei edited" -> "nuclei_edited")."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "image"
    return "labels_" if base == "labels" else base


def label_title(name: str | None, key: str) -> str:
    """The name to show for the label image at `labels/<key>`: its multiscale `name`
    when that is what `key` was made from (our writer keeps "nuclei edited" there for
    the path `nuclei_edited`), else `key` (other writers put generic names there)."""
    cleaned = name.strip() if isinstance(name, str) else ""
    return cleaned if cleaned and safe_name(cleaned) == key else key


def label_names(attrs: dict[str, Any]) -> list[str]:
    """Names listed by a `labels` group."""
    names = ome_attributes(attrs).get("labels")
    return [str(n).strip("/") for n in names] if isinstance(names, list) else []


def ome_xml_image_names(data: bytes, where: str) -> list[str]:
    """Image names, in series order, from a bioformats2raw OME-XML document."""
    return [image.name for image in ome_xml_images(data, where)]


#: OME-XML pixel types that numpy spells differently.
_OME_TYPES = {
    "float": "float32",
    "double": "float64",
    "complex": "complex64",
    "double-complex": "complex128",
    "bit": "bool",
}


@dataclass
class XmlImage:
    """What OME-XML says about one image: its name, TCZYX size and pixel type."""

    name: str
    shape: tuple[int, ...] | None
    dtype: str | None


def ome_xml_images(data: bytes, where: str) -> list[XmlImage]:
    """Images, in series order, of a bioformats2raw OME-XML document (empty if unreadable)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        warnings.warn(f"{where}: unreadable OME-XML: {exc}", NgffComplianceWarning, stacklevel=2)
        return []
    images = []
    for element in root:
        if element.tag.rsplit("}", 1)[-1] != "Image":
            continue
        pixels = next((e for e in element if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
        shape = dtype = None
        if pixels is not None:
            sizes = [pixels.get(f"Size{axis}") for axis in "TCZYX"]
            if all(s is not None and s.isdigit() for s in sizes):
                shape = tuple(int(s) for s in sizes)  # type: ignore[arg-type]
            kind = pixels.get("Type")
            dtype = _OME_TYPES.get(kind, kind) if kind else None
        images.append(XmlImage(element.get("Name") or "", shape, dtype))
    return images
