"""What every layer we make shares: names, the `metadata["omezarr"]` block, its place
in space (scale, translate, affine, units, axis labels), and its pixel levels as
napari reads them (guarded so that a failed read draws blank, remote levels read
side by side)."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import dask.array as da
import numpy as np

from napari_omezarr_x._napari.guard import guard
from napari_omezarr_x.errors import NgffComplianceWarning
from napari_omezarr_x.model import Channel, Image
from napari_omezarr_x.read.lazy import to_dask
from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.storage import is_remote

logger = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]

#: Largest smallest-level we read whole to find contrast limits or label values.
MAX_SAMPLE = 1 << 22
_STORE_SUFFIXES = (".ome.zarr", ".zarr", ".ozx", ".zip")


def display_name(image: Image) -> str | None:
    """The image's own name when it says something ('' and '/' do not)."""
    name = (image.name or "").strip()
    return name if name and name != "/" else None


def fallback_name(image: Image) -> str:
    """A name from the store and group path, for images that have none."""
    base = image.store.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in _STORE_SUFFIXES:
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    return f"{base}/{image.path}" if image.path else base


def omezarr_metadata(
    image: Image, kind: str, channel_index: int | None = None, channel: Channel | None = None
) -> dict[str, Any]:
    """The `metadata["omezarr"]` block shared with the writer and the widgets.

    Plates and wells add their layout (`plate`), images of a collection its
    listing (`collection`), both as plain dicts (`model.Plate.from_json`).
    """
    block: dict[str, Any] = {
        "store": image.store,
        "path": image.path,
        "version": image.version,
        "channel_index": channel_index,
        "channel": dict(channel.raw) if channel is not None else None,
        "image_name": image.name,
        "kind": kind,
        "rdefs": _rdefs(image),
    }
    if image.plate is not None:
        block["plate"] = image.plate.to_json()
    if image.collection is not None:
        block["collection"] = image.collection.to_json()
    return block


def _rdefs(image: Image) -> dict[str, Any] | None:
    """The image's `omero.rdefs` (rendering model and defaults), kept for saving."""
    omero = image.attrs.get("omero") if isinstance(image.attrs, dict) else None
    rdefs = omero.get("rdefs") if isinstance(omero, dict) else None
    return dict(rdefs) if isinstance(rdefs, dict) else None


def is_greyscale(image: Image) -> bool:
    """Whether `omero.rdefs.model` asks for greyscale rendering (OMERO's "greyscale")."""
    return md.rendering_model(image.attrs) == "greyscale"


def spatial_kwargs(image: Image, keep: list[int]) -> dict[str, Any]:
    """scale, translate, affine, axis_labels and units for the kept axes."""
    kwargs: dict[str, Any] = {
        "scale": tuple(float(image.scale[i]) for i in keep),
        "translate": tuple(float(image.translate[i]) for i in keep),
        "axis_labels": tuple(image.axes[i].name for i in keep),
    }
    units = [napari_unit(image.axes[i].unit, image) for i in keep]
    if any(u is not None for u in units):
        kwargs["units"] = tuple(u or "pixel" for u in units)
    affine = _affine(image, keep)
    if affine is not None:
        kwargs["affine"] = affine
        _warn_out_of_plane(image, [image.axes[i].name for i in keep], affine)
    return kwargs


def _warn_out_of_plane(image: Image, names: list[str], affine: np.ndarray) -> None:
    """Say once, on opening, why napari's 2D view of this image is not rotated.

    napari's 2D view cuts the stored array along its own axes and applies only
    the part of the affine within the displayed plane (by default the last two
    axes); a rotation that turns a sliced axis (z) into a displayed one (y) would
    need an oblique cut, which napari does not make ("Non-orthogonal slicing ...
    not fully supported"). The 3D view applies the whole affine.
    """
    linear = np.asarray(affine, dtype=float)[:-1, :-1]
    n = len(names)
    if n < 3:
        return
    shown, sliced = list(range(n - 2, n)), list(range(n - 2))
    coupled = np.abs(linear[np.ix_(shown, sliced)]) + np.abs(linear[np.ix_(sliced, shown)]).T
    if not (coupled > 1e-9).any():
        return
    pairs = np.argwhere(coupled > 1e-9)
    involved = sorted({sliced[j] for _, j in pairs} | {shown[i] for i, _ in pairs})
    plane = [names[i] for i in involved]
    name = display_name(image) or fallback_name(image)
    hint = ""
    if len(plane) == 2:
        hint = (
            f" In 2D it shows rotated when the plane it turns in ({', '.join(plane)}) is the "
            "one displayed (roll or transpose the axes so that these two are shown)."
        )
    warnings.warn(
        f"{name}: its transformation rotates {' and '.join(plane)} into each other, out of "
        f"the 2D view's ({names[-2]}, {names[-1]}) plane. napari's 2D view cuts the stored "
        "planes along their own axes and cannot apply that rotation, so it shows them "
        "unrotated; the 3D view shows the image rotated as the file says." + hint,
        UserWarning,
        stacklevel=3,
    )


def _affine(image: Image, keep: list[int]) -> np.ndarray | None:
    """The model's extra affine as a matrix over the layer's axes (None if identity)."""
    if image.affine is None:
        return None
    mat = np.asarray(image.affine, dtype=float)
    n = len(keep)
    if mat.shape == (n + 1, n + 1):
        full = mat
    else:
        spatial = [k for k, i in enumerate(keep) if image.axes[i].type == "space"]
        if mat.shape != (len(spatial) + 1, len(spatial) + 1):
            warnings.warn(
                f"{image.store} {image.path}: affine of shape {mat.shape} does not fit "
                f"{n} axes; ignored",
                NgffComplianceWarning,
                stacklevel=3,
            )
            return None
        full = np.eye(n + 1)
        idx = [*spatial, n]
        full[np.ix_(idx, idx)] = mat
    return None if np.allclose(full, np.eye(n + 1)) else full


def napari_unit(unit: str | None, image: Image | None = None) -> str | None:
    """An NGFF unit name as napari (pint) accepts it, or None when unknown."""
    if not unit:
        return None
    from napari.utils.transforms._units import get_units_from_name

    try:
        return str(get_units_from_name(str(unit)))
    except Exception:
        where = f"{image.store} {image.path}: " if image is not None else ""
        warnings.warn(
            f"{where}unit {unit!r} is not known to napari; dropped",
            NgffComplianceWarning,
            stacklevel=3,
        )
        return None


def display_levels(image: Image) -> list[da.Array]:
    """The levels as napari should read them.

    Remote levels get one dask block per chunk (read.lazy's `display` views):
    napari widens each view to whole blocks, so the read tiles of the core
    API would fetch up to 4x what is shown; the guard reads the blocks of a
    view side by side instead.
    """
    if image.remote and len(image.sources) == len(image.levels):
        return [to_dask(source, remote=True, display=True) for source in image.sources]
    return list(image.levels)


def channel_levels(image: Image, axis: int, index: int) -> list[da.Array]:
    """The levels of one channel as napari should read them (see `display_levels`).

    Made from the level arrays with the channel fixed (`ChunkSource.take`), so
    a plane of the channel reaches the store as one read of that plane; a
    channel sliced out of the whole level's dask view would read whole chunks.
    Plates (levels without arrays of their own) are sliced.
    """
    if len(image.sources) == len(image.levels):
        return [
            to_dask(source.take(axis, index), remote=image.remote, display=True)
            for source in image.sources
        ]
    where = (slice(None),) * axis + (index,)
    return [level[where] for level in display_levels(image)]


def levels_data(levels: list[da.Array], image: Image, name: str) -> dict[str, Any]:
    """Layer data: the levels, guarded so that napari draws a failed read blank (guard.py)."""
    remote = _is_remote(image)
    guarded = [guard(level, image.store, name, remote=remote) for level in levels]
    if len(guarded) > 1:
        return {"data": guarded, "multiscale": True}
    return {"data": guarded[0], "multiscale": False}


def smallest_sample(image: Image) -> da.Array:
    """The smallest level; for a plate or well only its first field in the first well.

    One field stands for the plate, so that opening a 384-well plate reads one
    tile's chunks, not every well's.
    """
    smallest = image.levels[-1]
    plate = image.plate
    if plate is None or not plate.wells:
        return smallest
    well = next((w for w in plate.wells if w.fields), plate.wells[0])
    ty = smallest.shape[-2] // len(plate.rows)
    tx = smallest.shape[-1] // len(plate.columns)
    rows = slice(well.row * ty, (well.row + 1) * ty)
    cols = slice(well.column * tx, (well.column + 1) * tx)
    return smallest[(slice(0, 1), Ellipsis, rows, cols)]


def read_pixels(array: da.Array, image: Image) -> np.ndarray:
    """Pixels of `array`, read as layer data are (remote blocks side by side; errors raise)."""
    return np.asarray(guard(array, image.store, image.path, remote=_is_remote(image)))


def _is_remote(image: Image) -> bool:
    """Whether reading the image crosses a network (mosaics know only their store's name)."""
    return image.remote or is_remote(image.store)
