"""napari-omezarr-x: OME-Zarr reading, writing and rendering metadata for napari.

The package itself never imports napari: the napari adapters live in
`napari_omezarr_x._napari` and are loaded by napari through `napari.yaml`.
"""

from __future__ import annotations

__version__ = "0.1.0"
