"""Turn the reader's `model.Image` objects into napari layer data tuples.

Pure functions (no viewer needed). This module picks the layers of each image
(image layers from `image_layers`, labels layers from `label_layers`, the well
names of a plate here); `layer_parts` holds what they share. Every layer
carries `metadata["omezarr"]` so that the writer and the widgets know where it
came from.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from napari_omezarr_x._napari.image_layers import image_layers
from napari_omezarr_x._napari.label_layers import labels_layer
from napari_omezarr_x._napari.layer_parts import (
    LayerData,
    display_name,
    fallback_name,
    omezarr_metadata,
    spatial_kwargs,
)
from napari_omezarr_x.errors import NgffComplianceWarning
from napari_omezarr_x.model import Image

logger = logging.getLogger(__name__)

__all__ = ["LayerData", "is_labels", "layers_for_images", "well_names_layer"]

#: Text size (screen pixels) of the well names shown on a plate.
WELL_TEXT_SIZE = 12


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


def well_names_layer(image: Image) -> LayerData:
    """A points layer naming each well of a plate at its tile's top-left corner.

    The points are invisible; their text stays anchored to the wells as the
    view zooms (the napari adapter scales or hides it with the zoom level).
    """
    plate = image.plate
    assert plate is not None
    ndim = image.ndim
    meta = spatial_kwargs(image, [ndim - 2, ndim - 1])
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
