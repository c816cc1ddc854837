"""What raw NGFF metadata declares, read without a schema: its version and OME
namespace, which schemas judge it, axis names and types (implied ones of 0.1 to
0.3, 0.6's coordinate systems), transformation vector lengths, array data types.

The validator reads documents as they are, broken or not; these small readers
never raise on odd shapes, they return None or nothing instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Metadata key -> the schema that judges it.
SCHEMA_OF_KEY = {
    "multiscales": "image",
    "image-label": "label",
    "plate": "plate",
    "well": "well",
    "bioformats2raw.layout": "bf2raw",
    "series": "ome",
    "scene": "scene",
}


def declared(attrs: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The version a group's attributes declare and the namespace holding its OME keys."""
    ome = attrs.get("ome")
    if isinstance(ome, dict):
        version = ome.get("version")
        return (str(version) if version is not None else None), ome
    for key in ("multiscales", "plate", "well", "image-label"):
        block = attrs.get(key)
        if key == "multiscales" and isinstance(block, list) and block:
            block = block[0]
        if isinstance(block, dict) and block.get("version") is not None:
            return str(block["version"]), attrs
    return None, attrs


def schema_models(namespace: dict[str, Any]) -> list[str]:
    """Which schemas (image, label, plate, ...) apply to a group's metadata."""
    return [model for key, model in SCHEMA_OF_KEY.items() if key in namespace]


def axis_names(ms: dict[str, Any], version: str) -> list[str] | None:
    """Names of a multiscale's axes; 0.1/0.2 imply t, c, z, y, x; 0.6 uses coordinateSystems."""
    axes = ms.get("axes")
    if axes is None and version.startswith("0.6"):
        systems = ms.get("coordinateSystems")
        if isinstance(systems, list) and systems and isinstance(systems[0], dict):
            axes = systems[0].get("axes")
    if axes is None:
        return ["t", "c", "z", "y", "x"] if version in ("0.1", "0.2") else None
    if not isinstance(axes, list):
        return None
    return [str(a.get("name") if isinstance(a, dict) else a) for a in axes]


def axis_types(ms: dict[str, Any], version: str) -> list[tuple[str, str | None]] | None:
    """(name, type) of each axis; 0.1-0.3 names imply types (c is the channel axis)."""
    names = axis_names(ms, version)
    if names is None:
        return None
    axes = ms.get("axes")
    if axes is None and version.startswith("0.6"):
        systems = ms.get("coordinateSystems")
        first = systems[0] if isinstance(systems, list) and systems else None
        axes = first.get("axes") if isinstance(first, dict) else None
    implied = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    out = []
    for i, name in enumerate(names):
        entry = axes[i] if isinstance(axes, list) and i < len(axes) else None
        kind = entry.get("type") if isinstance(entry, dict) else implied.get(name.lower())
        out.append((name, kind if isinstance(kind, str) else None))
    return out


def vector_lengths(ds: dict[str, Any]) -> list[tuple[int, str]]:
    """Lengths of the scale / translation vectors of a dataset's transformations."""
    found = []
    transforms = ds.get("coordinateTransformations")
    if not isinstance(transforms, list):
        return found
    for t in transforms:
        if not isinstance(t, dict):
            continue
        nested = t.get("transformations") if t.get("type") == "sequence" else [t]
        for step in nested if isinstance(nested, list) else []:
            for key in ("scale", "translation"):
                if isinstance(step, dict) and isinstance(step.get(key), list):
                    found.append((len(step[key]), key))
    return found


def dtype_name(zarr_format: int, meta: dict[str, Any]) -> str:
    """An array's data type as a zarr v3 name (uint8, float32, ...) from its metadata."""
    if zarr_format == 3:
        return str(meta.get("data_type"))
    try:
        return np.dtype(meta.get("dtype")).name
    except TypeError:
        return str(meta.get("dtype"))
