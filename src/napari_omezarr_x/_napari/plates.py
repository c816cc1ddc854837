"""Plates in a napari viewer: where the cursor is, well names that follow the zoom.

Layers read from a plate (or a well) carry its layout in
`metadata["omezarr"]["plate"]` (`model.Plate.to_json`): the first data axis is
the field, and well (r, c) occupies tile (r, c) of the last two axes. From that:

- the status bar names the well and field under the cursor ("B03, field 2");
- the points layer naming the wells scales its text with the zoom and hides it
  when wells are too small on screen to be read;
- `plate_of` tells the writer that a selection of layers is one plate.

`watch(viewer)` installs both viewer hooks once per viewer.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import napari
import napari.layers
import numpy as np

from napari_omezarr_x.model import Plate, Well

logger = logging.getLogger(__name__)

#: Well names are hidden when a well is narrower than this on screen (pixels).
MIN_WELL_PIXELS = 24
#: Text size (screen pixels) of well names: this share of a well's width, within bounds.
TEXT_SHARE, TEXT_MIN, TEXT_MAX = 0.18, 8.0, 16.0

_plates: weakref.WeakKeyDictionary[Any, tuple[int, Plate]] = weakref.WeakKeyDictionary()


def omezarr_block(layer: Any) -> dict[str, Any]:
    """The layer's `metadata["omezarr"]` dict (empty when it has none)."""
    meta = getattr(layer, "metadata", None)
    block = meta.get("omezarr") if isinstance(meta, dict) else None
    return block if isinstance(block, dict) else {}


def layer_plate(layer: Any) -> Plate | None:
    """The plate (or well) layout a layer was read with, or None."""
    raw = omezarr_block(layer).get("plate")
    if not isinstance(raw, dict):
        return None
    cached = _plates.get(layer)
    if cached is not None and cached[0] == id(raw):
        return cached[1]
    plate = Plate.from_json(raw)
    _plates[layer] = (id(raw), plate)
    return plate


def plate_key(plate: Plate) -> tuple[str, str]:
    """What identifies a plate across its layers: its store and its path in it."""
    return (plate.store, plate.path)


def tile_size(layer: Any, plate: Plate) -> tuple[int, int]:
    """Level-0 height and width of one well's tile in `layer`'s data."""
    shape = layer.level_shapes[0] if getattr(layer, "multiscale", False) else layer.data.shape
    return int(shape[-2]) // len(plate.rows), int(shape[-1]) // len(plate.columns)


def cell_at(layer: Any, plate: Plate, world: Sequence[float]) -> tuple[int, int, int] | None:
    """(field, row, column) under the world position, or None off the plate."""
    data = layer.world_to_data(np.asarray(world, dtype=float))
    ty, tx = tile_size(layer, plate)
    row = math.floor((data[-2] + 0.5) / ty)
    col = math.floor((data[-1] + 0.5) / tx)
    if not (0 <= row < len(plate.rows) and 0 <= col < len(plate.columns)):
        return None
    return round(float(data[0])), row, col


def describe(plate: Plate, field: int, row: int, col: int) -> str:
    """'B03, field 2' (with the field's path when it is not its number)."""
    name = f"{plate.rows[row]}{plate.columns[col]}"
    well = plate.well_at(row, col)
    if well is None:
        return f"{name} (no well)"
    if not 0 <= field < len(well.fields):
        return f"{name}, field {field} (none)"
    path = well.fields[field]
    return f"{name}, field {field}" + ("" if path == str(field) else f" ({path})")


def where(viewer: Any) -> str | None:
    """Well and field under the cursor, from the topmost visible plate layer there."""
    position = viewer.cursor.position
    for layer in reversed(list(viewer.layers)):
        if not layer.visible or isinstance(layer, napari.layers.Points):
            continue
        plate = layer_plate(layer)
        if plate is None:
            continue
        cell = cell_at(layer, plate, position)
        if cell is not None:
            return describe(plate, *cell)
    return None


def tile_world_box(layer: Any, plate: Plate, well: Well) -> tuple[np.ndarray, np.ndarray]:
    """World (y, x) corners of a well's tile in a plate layer (top-left, bottom-right)."""
    ty, tx = tile_size(layer, plate)
    lead = [0.0] * (layer.ndim - 2)
    top = layer.data_to_world([*lead, well.row * ty - 0.5, well.column * tx - 0.5])
    bottom = layer.data_to_world([*lead, (well.row + 1) * ty - 0.5, (well.column + 1) * tx - 0.5])
    return np.asarray(top)[-2:], np.asarray(bottom)[-2:]


def plate_of(layer_data: Sequence[tuple[Any, dict, str]]) -> Plate | None:
    """The plate when every layer of a save was read from one and the same plate."""
    keys, plate = set(), None
    for _, meta, _ in layer_data:
        raw = ((meta.get("metadata") or {}).get("omezarr") or {}).get("plate")
        if not isinstance(raw, dict):
            return None
        plate = Plate.from_json(raw)
        keys.add(plate_key(plate))
    return plate if len(keys) == 1 else None


def is_well_names(meta: dict[str, Any]) -> bool:
    """Whether a layer's metadata marks it as a plate's well names (never saved)."""
    return ((meta.get("metadata") or {}).get("omezarr") or {}).get("kind") == "plate-wells"


class _Hooks:
    """One viewer's plate behaviour: the status bar text and zoom-following names."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = weakref.ref(viewer)
        self._busy = False
        viewer.events.status.connect(self.on_status, position="last")
        viewer.camera.events.zoom.connect(self.on_zoom)
        viewer.layers.events.inserted.connect(self.on_zoom)

    def on_status(self, event: Any) -> None:
        viewer = self.viewer()
        if viewer is None or self._busy or not viewer.mouse_over_canvas:
            return
        text = where(viewer)
        status = event.value
        if text is None:
            return
        prefix = f"{text} · "
        # napari emits again after a handler changes the value: add the text once.
        if isinstance(status, dict):
            coordinates = str(status.get("coordinates", ""))
            if coordinates.startswith(prefix):
                return
            status = {**status, "coordinates": prefix + coordinates}
        else:
            if str(status).startswith(prefix):
                return
            status = prefix + str(status)
        self._busy = True
        try:
            viewer.status = status
        finally:
            self._busy = False

    def on_zoom(self, event: Any = None) -> None:
        viewer = self.viewer()
        if viewer is None:
            return
        for layer in viewer.layers:
            if omezarr_block(layer).get("kind") == "plate-wells":
                fit_names(layer, viewer.camera.zoom)


def fit_names(layer: Any, zoom: float) -> None:
    """Size a plate's well names to the wells on screen; hide them when unreadable."""
    plate = layer_plate(layer)
    if plate is None or not plate.tile:
        return
    width = plate.tile[-1] * abs(float(layer.scale[-1])) * float(zoom)
    visible = width >= MIN_WELL_PIXELS
    size = float(min(TEXT_MAX, max(TEXT_MIN, width * TEXT_SHARE)))
    if layer.text.visible != visible:
        layer.text.visible = visible
    if visible and not math.isclose(layer.text.size, size, rel_tol=0.05):
        layer.text.size = size


# napari holds bound-method callbacks weakly: each viewer's hooks live here as long
# as the viewer does (they only hold a weak reference back to it).
_hooks: weakref.WeakKeyDictionary[Any, _Hooks] = weakref.WeakKeyDictionary()


def watch(viewer: Any) -> None:
    """Install the plate hooks on `viewer` (once)."""
    if viewer not in _hooks:
        _hooks[viewer] = _Hooks(viewer)


#: Dock widgets (display names in napari.yaml) for plates and collections.
BROWSER, SERIES = "Plate browser", "Series"
PLUGIN = "napari-omezarr-x"


def on_inserted(viewer: Any, layer: Any) -> None:
    """A layer of ours joined `viewer`: dock the Plate browser for plates and wells,
    the Series chooser for images of a collection not all shown. A plate's well
    names come first; once the open is over they move on top, the plate's first
    image layer becomes the active one and field 0 is shown."""
    block = omezarr_block(layer)
    kind = block.get("kind")
    if block.get("plate") and kind in ("plate", "well"):
        watch(viewer)
        _dock(viewer, BROWSER)
    listing = block.get("collection")
    if isinstance(listing, dict) and len(listing["series"]) > len(listing["opened"]):
        _dock(viewer, SERIES)
    if kind == "plate-wells":
        # The plate's other layers follow within this open: arrange them afterwards.
        _later(viewer, lambda v: _arrange(v, layer))
        fit_names(layer, viewer.camera.zoom)


def _arrange(viewer: Any, names: Any) -> None:
    """Well names on top, the plate's first image layer active, field 0 shown."""
    plate = layer_plate(names)
    if names not in viewer.layers or plate is None:
        return
    viewer.layers.move(viewer.layers.index(names), len(viewer.layers))
    images = [
        other
        for other in viewer.layers
        if isinstance(other, napari.layers.Image)
        and (p := layer_plate(other)) is not None
        and plate_key(p) == plate_key(plate)
    ]
    if images:
        viewer.layers.selection.active = images[0]
        axis = viewer.dims.ndim - images[0].ndim
        if viewer.dims.point[axis] != 0:
            viewer.dims.set_point(axis, 0)


def _later(viewer: Any, action: Callable[[Any], Any]) -> None:
    """Run `action(viewer)` once the Qt event loop is back (if the viewer still lives)."""
    from qtpy.QtCore import QTimer

    ref = weakref.ref(viewer)

    def run() -> None:
        owner = ref()
        if owner is not None:
            action(owner)

    QTimer.singleShot(0, run)


_docked: weakref.WeakSet[Any] = weakref.WeakSet()


def _dock(viewer: Any, name: str) -> None:
    """Dock (or show again) one of our widgets; when it is new, refit the view, as
    the dock narrows the canvas napari has just fitted the first layers to."""
    window = getattr(viewer, "window", None)
    if window is None:
        return
    try:
        _, widget = window.add_plugin_dock_widget(PLUGIN, name)
    except Exception:  # a viewer without a Qt window or plugin manager has no docks
        logger.debug("cannot dock %s", name, exc_info=True)
        return
    if widget in _docked:
        return
    _docked.add(widget)
    _later(viewer, lambda v: v.reset_view())
