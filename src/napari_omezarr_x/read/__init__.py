"""Stores -> model images with lazy levels: images, labels, plates, wells, collections.

`read_ome_zarr` is the entry point, `looks_like_ome_zarr` the cheap test napari
runs first. Layers, from the bottom: `nodes` (groups and arrays of a location),
`blocks` (a bounded cache of decoded chunks, for plane after plane from deep
chunks), `partial` (planes of deep blosc chunks in local files read by decoding
only the blosc blocks holding them), `lazy` (dask views), `images` (multiscales
and labels; a label image whose save of edits was interrupted is completed
first, see `storage.journal`),
`mosaic` (lazy plate mosaics), `plates` (plates and wells with a `field` axis),
`collections` (bioformats2raw series and groups of images: what opens, what is
listed), `reader` (dispatch), `probe`. May import `storage`, `spec`, `model`
and `errors`; never `write` or napari.
"""

from __future__ import annotations

from .probe import looks_like_ome_zarr
from .reader import Reader, read_ome_zarr, read_plate_fields

__all__ = ["Reader", "looks_like_ome_zarr", "read_ome_zarr", "read_plate_fields"]
