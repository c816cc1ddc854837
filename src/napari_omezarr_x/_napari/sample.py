"""napari side of the built-in sample: the sample-data command and a one-call viewer.

The layers come from the cached OME-Zarr store through the plugin's own reader, so the
sample shows exactly what opening that store from disk shows.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from napari_omezarr_x._napari.layers import layers_for_images
from napari_omezarr_x._napari.reader import watch_current_viewer
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.sample import ensure_sample

if TYPE_CHECKING:
    import napari
    from napari.types import LayerDataTuple

logger = logging.getLogger(__name__)

PLUGIN = "napari-omezarr-x"
SAMPLE_KEY = "cells3d"


def cells3d() -> list[LayerDataTuple]:
    """The 'Cells 3D (OME-Zarr)' sample: two channels and the nuclei labels.

    Generates the sample into the cache on first use (a few seconds), then reads it.
    """
    path = ensure_sample()
    watch_current_viewer()  # its labels switch to editing when a paint tool is picked
    return layers_for_images(read_ome_zarr(str(path)))


def open_sample(viewer: napari.Viewer) -> list[napari.layers.Layer]:
    """Add the sample to `viewer`, nuclei labels drawn as outlines so the stain shows."""
    from napari.layers import Labels

    layers = viewer.open_sample(PLUGIN, SAMPLE_KEY)
    for layer in layers:
        if isinstance(layer, Labels):
            layer.contour = 2
    viewer.reset_view()
    return layers


def show_sample() -> None:
    """Open a napari window with the sample and run napari until it is closed."""
    import napari

    viewer = napari.Viewer(title="napari-omezarr-x: Cells 3D sample")
    open_sample(viewer)
    napari.run()
