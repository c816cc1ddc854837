"""The in-memory model of an OME-Zarr image that reading produces.

The reader turns every NGFF version (0.1 to 0.6-dev) into these classes, so the
napari adapter, the widget and the writer deal with one shape of data only.
Nothing here imports napari.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
    Plates and wells carry their `plate` layout (their first axis is `field`);
    an image read from a collection of several carries the `collection` listing.
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
    plate: Plate | None = None
    collection: Collection | None = None

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


@dataclass
class Well:
    """One well of a plate: its path, grid position and the paths of its fields.

    `fields` are the images shown along the plate's `field` axis (those of the
    chosen acquisition), relative to the well; `acquisitions` gives each one's
    acquisition id (None when the well does not say).
    """

    path: str
    row: int
    column: int
    fields: list[str] = field(default_factory=list)
    acquisitions: list[int | None] = field(default_factory=list)


@dataclass
class Plate:
    """How a plate (or a single well) is laid out in its mosaic.

    Well (r, c) occupies level-0 pixels `r * tile[-2]` .. and `c * tile[-1]` ..
    of the mosaic; field f of every well is index f of the first axis. `tile`
    is the level-0 shape of one field (the first field's; others are cropped
    or padded to it). `acquisition` is the one shown (None: every field).
    Plain values only, so it survives in napari layer metadata as `to_json()`.
    """

    store: str
    path: str
    name: str | None
    version: str
    rows: list[str]
    columns: list[str]
    wells: list[Well]
    tile: tuple[int, ...]
    field_count: int
    acquisitions: list[dict[str, Any]] = field(default_factory=list)
    acquisition: int | None = None

    def well_at(self, row: int, column: int) -> Well | None:
        """The well at grid position (row, column), or None when there is none."""
        for well in self.wells:
            if well.row == row and well.column == column:
                return well
        return None

    def well_name(self, well: Well) -> str:
        """A well's display name: row name then column name (`B03`)."""
        return f"{self.rows[well.row]}{self.columns[well.column]}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (napari layer metadata keeps it; `from_json` reads it back)."""
        return {
            "store": self.store,
            "path": self.path,
            "name": self.name,
            "version": self.version,
            "rows": list(self.rows),
            "columns": list(self.columns),
            "wells": [
                {
                    "path": w.path,
                    "row": w.row,
                    "column": w.column,
                    "fields": list(w.fields),
                    "acquisitions": list(w.acquisitions),
                }
                for w in self.wells
            ],
            "tile": list(self.tile),
            "field_count": self.field_count,
            "acquisitions": [dict(a) for a in self.acquisitions],
            "acquisition": self.acquisition,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plate:
        """The Plate a `to_json` dict describes."""
        values = dict(data)
        values["wells"] = [Well(**w) for w in values.get("wells", [])]
        values["tile"] = tuple(int(n) for n in values.get("tile", ()))
        return cls(**values)


@dataclass
class Series:
    """One image of a collection, as the series chooser lists it."""

    index: int
    path: str
    name: str | None = None
    shape: tuple[int, ...] | None = None
    dtype: str | None = None

    @property
    def nbytes(self) -> int | None:
        """Uncompressed size of the full-resolution level, when shape and dtype are known."""
        if self.shape is None or self.dtype is None:
            return None
        import numpy as np

        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class Collection:
    """Every image of a bioformats2raw collection (or plain group of images) at
    `path` in `store`, and which of them were opened (`opened`: series indices)."""

    store: str
    path: str
    kind: str
    series: list[Series]
    opened: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (for napari layer metadata)."""
        out = asdict(self)
        for entry in out["series"]:
            entry["shape"] = None if entry["shape"] is None else list(entry["shape"])
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Collection:
        """The Collection a `to_json` dict describes."""
        values = dict(data)
        values["series"] = [
            Series(**{**s, "shape": None if s.get("shape") is None else tuple(s["shape"])})
            for s in values.get("series", [])
        ]
        return cls(**values)
