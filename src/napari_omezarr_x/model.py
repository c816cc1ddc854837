"""The in-memory model of an OME-Zarr image that reading produces.

The reader turns every NGFF version (0.1 to 0.6-dev) into these classes, so the
napari adapter, the widget and the writer deal with one shape of data only.
Nothing here imports napari.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dask.array as da
    import numpy as np


@dataclass(frozen=True)
class Axis:
    """One array dimension: its name, NGFF type and unit (None when unknown)."""

    name: str
    type: str | None = None
    unit: str | None = None


@dataclass
class Channel:
    """Rendering settings of one channel, from the `omero` block.

    `raw` keeps the channel's original dictionary so that keys we do not model
    (`family`, `coefficient`, ...) survive an edit and a save.
    """

    label: str | None = None
    color: str | None = None
    start: float | None = None
    end: float | None = None
    min: float | None = None
    max: float | None = None
    active: bool = True
    inverted: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelMeta:
    """What `image-label` says about a label image."""

    colors: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    properties: list[dict[str, Any]] = field(default_factory=list)
    source: str | None = None


@dataclass
class Image:
    """One multiscale image (or label image) ready to be shown.

    `levels` are lazy dask arrays, largest first, chunked as stored. `scale`
    and `translate` give level 0's physical pixel size and offset per axis;
    `affine` is an extra homogeneous matrix when the metadata holds rotations
    or shears (0.6-dev), else None: it covers every axis except the channel
    axis (shape (k+1, k+1), k = ndim minus one if there is a channel axis),
    applied after scale and translate, as napari does with `channel_axis`.
    `attrs` holds the group's OME attributes (zarr v3's `ome` object, or the
    v2 attributes). `level_paths` are the array paths of `levels` relative to
    `path` (empty for mosaics). `kind` is "image", "labels", "plate" or "well".
    `sources` are the readable arrays behind `levels` (`read.lazy.ChunkSource`,
    same order; empty for mosaics), so that an adapter can choose dask blocks
    of its own (`read.lazy.to_dask`); `remote` says whether reads cross a network.
    """

    store: str
    path: str
    version: str
    name: str | None
    axes: tuple[Axis, ...]
    levels: list[da.Array]
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    affine: np.ndarray | None = None
    channels: list[Channel] = field(default_factory=list)
    label: LabelMeta | None = None
    labels: list[Image] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    kind: str = "image"
    level_paths: list[str] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)
    remote: bool = False

    @property
    def channel_axis(self) -> int | None:
        """Index of the axis of type `channel`, or None."""
        for i, axis in enumerate(self.axes):
            if axis.type == "channel":
                return i
        return None

    @property
    def ndim(self) -> int:
        return len(self.axes)
