"""Labels layers: one (multiscale) layer per label image, with the `image-label`
colours and properties.

Labels listed in `image-label.colors` make us look up the label values present
in the smallest level, so that unlisted labels keep distinct colours.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from napari.utils.colormaps import label_colormap

from napari_omezarr_x._napari.layer_parts import (
    MAX_SAMPLE,
    LayerData,
    display_levels,
    display_name,
    fallback_name,
    levels_data,
    omezarr_metadata,
    read_pixels,
    smallest_sample,
    spatial_kwargs,
)
from napari_omezarr_x.errors import StoreAccessError
from napari_omezarr_x.model import Image
from napari_omezarr_x.spec import metadata as md

logger = logging.getLogger(__name__)


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
    meta = spatial_kwargs(label, keep)
    meta["name"] = label_name(label)
    if label.plate is not None:  # "plate: cells", "B/03: cells"
        meta["name"] = (
            f"{label.plate.name or label.plate.path or fallback_name(label)}: {meta['name']}"
        )
    levels = levels_data(display_levels(label), label, meta["name"])
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
        return [int(v) for v in np.unique(read_pixels(smallest, label))]
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
