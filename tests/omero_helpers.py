"""Small OME-Zarr images (NGFF 0.4 and 0.5) with an omero block, built with zarr
directly, plus helpers to fingerprint a store's files. Shared by the omero and
channel-settings widget tests."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import zarr

VERSIONS = ("0.4", "0.5")
COLORS = ("FF0000", "00FF00", "0000FF")
LABELS = ("DAPI", "GFP", "mCherry")


def omero_block(n_channels: int) -> dict[str, Any]:
    """An omero block as OMERO/bioformats2raw write it, with vendor keys."""
    return {
        "id": 7,
        "name": "cells",
        "version": "0.4",
        "rdefs": {"defaultT": 0, "defaultZ": 0, "model": "color"},
        "channels": [
            {
                "active": True,
                "coefficient": 1.0,
                "color": COLORS[i],
                "family": "linear",
                "inverted": False,
                "label": LABELS[i],
                "window": {"start": 10.0 * (i + 1), "end": 200.0 + i, "min": 0.0, "max": 255.0},
                "x-vendor": {"gain": i},
            }
            for i in range(n_channels)
        ],
    }


def make_image(
    folder: Path,
    version: str,
    n_channels: int = 2,
    *,
    omero: bool = True,
) -> Path:
    """Write a (c, y, x) uint8 OME-Zarr image of `version` at `folder`; return its path."""
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    scale = [{"type": "scale", "scale": [1, 0.5, 0.5]}]
    multiscales = [
        {
            "version": "0.4",
            "name": "cells",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": scale}],
        }
    ]
    ome: dict[str, Any] = {"multiscales": multiscales}
    if omero:
        ome["omero"] = omero_block(n_channels)
    if version == "0.4":
        attrs: dict[str, Any] = {**ome, "x-custom": {"keep": [1, 2, 3]}}
        zarr_format = 2
    else:
        del multiscales[0]["version"]
        attrs = {"ome": {"version": "0.5", **ome}, "x-custom": {"keep": [1, 2, 3]}}
        zarr_format = 3
    group = zarr.open_group(folder, mode="w", zarr_format=zarr_format)
    group.attrs.update(attrs)
    data = (np.arange(n_channels * 16 * 16) % 251).astype("uint8").reshape(n_channels, 16, 16)
    array = group.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, 8, 8))
    array[...] = data
    return folder


def metadata_doc(folder: Path, version: str) -> Path:
    """The group's metadata document for `version`."""
    return folder / (".zattrs" if version == "0.4" else "zarr.json")


def attributes(folder: Path, version: str) -> dict[str, Any]:
    """The group's attributes as stored on disk."""
    doc = json.loads(metadata_doc(folder, version).read_text())
    return doc if version == "0.4" else doc["attributes"]


def stored_omero(folder: Path, version: str) -> dict[str, Any]:
    """The omero block where the spec puts it for `version`."""
    attrs = attributes(folder, version)
    return attrs["omero"] if version == "0.4" else attrs["ome"]["omero"]


def array_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under the array folder `0` (chunks and array metadata)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((folder / "0").rglob("*"))
        if p.is_file()
    }


def zip_store(folder: Path, target: Path) -> Path:
    """Zip the store at `folder` as a zip store (its root at the archive's root)."""
    with zipfile.ZipFile(target, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    return target
