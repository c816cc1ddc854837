"""Lazy dask views of zarr arrays, whose read errors name the array and region."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from napari_omezarr_x.errors import StoreAccessError


class ChunkSource:
    """A zarr array whose read errors name the array and the region.

    An undecodable chunk or a dropped connection surfaces when napari draws,
    far from the open call; this makes that message say which array failed.
    """

    def __init__(self, array: Any, where: str) -> None:
        self.array = array
        self.where = where
        self.shape = tuple(array.shape)
        self.dtype = array.dtype
        self.ndim = array.ndim

    def __getitem__(self, key: Any) -> Any:
        try:
            return self.array[key]
        except Exception as exc:
            raise StoreAccessError(
                f"{self.where}: cannot read chunk data at {key}: {type(exc).__name__}: {exc}"
            ) from exc


def to_dask(arr: Any, where: str) -> Any:
    """A lazy dask view of a zarr array, chunked as stored (inner chunks when sharded).

    `meta` is given so dask does not read from the array to learn its type.
    """
    import dask.array as da

    return da.from_array(
        ChunkSource(arr, where),
        chunks=arr.chunks,
        name=f"omezarrx-{uuid.uuid4().hex}",
        meta=np.empty((0,) * arr.ndim, dtype=arr.dtype),
        inline_array=True,
        asarray=False,
    )
