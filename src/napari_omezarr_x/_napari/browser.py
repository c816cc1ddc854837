"""The "Plate browser" dock widget: a plate's wells as a grid, its fields, its acquisitions.

It shows the wells of a plate opened in the viewer (any plate layer's
`metadata["omezarr"]["plate"]`). Selecting a well zooms the plate view to it;
*Open well* reads that well on its own, at full resolution with all its fields
and labels, and shows it in place of the plate (whose layers are hidden until
*Whole plate*); while a well is open, choosing another well opens that one.
The field box moves the viewer's `field` axis. Alt+Right / Alt+Left go to the
next / previous well (in row order, within the row and column filters) and
Page Down / Page Up to the next / previous field, from the canvas too.
Reading goes through `read_ome_zarr(store, within=...)`, so it works the same
for folders, zip files, URLs and any store `storage` can open.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable
from typing import Any

import napari
import napari.layers
import numpy as np
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_omezarr_x._napari.layers import layers_for_images
from napari_omezarr_x._napari.plates import (
    layer_plate,
    omezarr_block,
    plate_key,
    tile_size,
    tile_world_box,
)
from napari_omezarr_x.errors import OmeZarrXError
from napari_omezarr_x.model import Plate, Well
from napari_omezarr_x.read import read_ome_zarr

logger = logging.getLogger(__name__)

#: Keys (napari spelling) bound on the viewer while the browser lives.
KEYS = {
    "Alt-Right": "next_well",
    "Alt-Left": "previous_well",
    "PageDown": "next_field",
    "PageUp": "previous_field",
}
_OPENED = "opened_by_browser"
_PRESENT, _EMPTY = QColor(70, 110, 160), QColor(60, 60, 60)


def parse_filter(text: str, names: list[str]) -> set[int] | None:
    """Indices of `names` that a filter such as "A-C, F" or "1-6 12" keeps (None: all).

    Raises ValueError naming a token that is not one of `names`.
    """
    tokens = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    if not tokens:
        return None
    lower = [n.lower() for n in names]

    def index(name: str) -> int:
        key = name.lower()
        if key in lower:
            return lower.index(key)
        if key.isdigit():  # "3" finds column "03"
            for i, n in enumerate(lower):
                if n.isdigit() and int(n) == int(key):
                    return i
        raise ValueError(f"{name!r} is not one of {', '.join(names[:6])}...")

    kept: set[int] = set()
    for token in tokens:
        first, sep, last = token.partition("-")
        lo = index(first)
        hi = index(last) if sep else lo
        kept.update(range(min(lo, hi), max(lo, hi) + 1))
    return kept


class PlateBrowser(QWidget):
    """Browse the wells and fields of the plates open in a viewer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.plate: Plate | None = None
        self.well: Well | None = None
        self._opened: list[Any] = []
        self._hidden: list[Any] = []
        self._building = False

        self.plates = QComboBox()
        self.plate_name = QLabel()
        self.acquisitions = QComboBox()
        self.rows_filter = QLineEdit()
        self.rows_filter.setPlaceholderText("rows, e.g. A-C, F")
        self.columns_filter = QLineEdit()
        self.columns_filter.setPlaceholderText("columns, e.g. 1-6, 12")
        self.grid = QTableWidget()
        self.grid.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.grid.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.field = QSpinBox()
        self.field.setMinimum(0)
        self.field_count = QLabel()
        self.zoom_button = QPushButton("Zoom to well")
        self.open_button = QPushButton("Open well")
        self.open_button.setToolTip(
            "Read this well on its own, at full resolution with all its fields and labels"
        )
        self.plate_button = QPushButton("Whole plate")
        self.message = QLabel()
        self.message.setWordWrap(True)

        form = QGridLayout()
        form.addWidget(QLabel("Plate"), 0, 0)
        form.addWidget(self.plates, 0, 1)
        form.addWidget(self.plate_name, 0, 1)
        form.addWidget(QLabel("Acquisition"), 1, 0)
        form.addWidget(self.acquisitions, 1, 1)
        form.addWidget(QLabel("Rows"), 2, 0)
        form.addWidget(self.rows_filter, 2, 1)
        form.addWidget(QLabel("Columns"), 3, 0)
        form.addWidget(self.columns_filter, 3, 1)
        fields = QHBoxLayout()
        fields.addWidget(QLabel("Field"))
        fields.addWidget(self.field)
        fields.addWidget(self.field_count)
        fields.addStretch()
        buttons = QHBoxLayout()
        for button in (self.zoom_button, self.open_button, self.plate_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.grid, 1)
        layout.addLayout(fields)
        layout.addLayout(buttons)
        layout.addWidget(self.message)

        self.plates.currentIndexChanged.connect(self._on_plate_chosen)
        self.acquisitions.activated.connect(self._on_acquisition)
        self.rows_filter.editingFinished.connect(self.apply_filters)
        self.columns_filter.editingFinished.connect(self.apply_filters)
        self.grid.currentCellChanged.connect(self._on_cell)
        self.grid.cellDoubleClicked.connect(lambda r, c: self.open_well())
        self.field.valueChanged.connect(self.set_field)
        self.zoom_button.clicked.connect(lambda: self.zoom_to_well())
        self.open_button.clicked.connect(lambda: self.open_well())
        self.plate_button.clicked.connect(self.show_plate)
        self.viewer.layers.events.inserted.connect(self.refresh)
        self.viewer.layers.events.removed.connect(self._on_removed)
        self.viewer.dims.events.current_step.connect(self._on_dims)
        self._bind_keys()
        self.refresh()

    def _bind_keys(self) -> None:
        for key, action in KEYS.items():
            self.viewer.bind_key(key, _bound(self, action), overwrite=True)

    # --- plates in the viewer -------------------------------------------------------

    def _plate_layers(self, plate: Plate | None = None) -> list[Any]:
        """Layers showing `plate` (default: the current one), the browser's wells aside."""
        plate = plate or self.plate
        if plate is None:
            return []
        key = plate_key(plate)
        out = []
        for layer in self.viewer.layers:
            other = layer_plate(layer)
            if other is not None and plate_key(other) == key and layer not in self._opened:
                out.append(layer)
        return out

    def _image_layer(self) -> Any | None:
        """A layer of the current plate with its grid (image first, then labels)."""
        layers = [
            layer for layer in self._plate_layers() if not isinstance(layer, napari.layers.Points)
        ]
        layers.sort(key=lambda layer: not isinstance(layer, napari.layers.Image))
        return layers[0] if layers else None

    def refresh(self, event: Any = None) -> None:
        """List the plates open in the viewer; keep the current one if still there."""
        found = self._plates_in_viewer()
        keys = list(found)
        current = plate_key(self.plate) if self.plate is not None else None
        self._building = True
        try:
            self.plates.clear()
            for key, plate in found.items():
                self.plates.addItem(plate.name or key[0].rsplit("/", 1)[-1] or "plate")
        finally:
            self._building = False
        self.plates.setVisible(len(found) > 1)
        self.plate_name.setVisible(len(found) == 1)
        if not found:
            self.plate = None
            self._show_plate_grid()
            self.message.setText("Open an OME-Zarr plate to browse its wells.")
            return
        index = keys.index(current) if current in keys else 0
        self.plates.setCurrentIndex(index)
        if current != keys[index] or self.plate is None:
            self.set_plate(found[keys[index]])
        else:
            self.plate = found[keys[index]]

    def _on_removed(self, event: Any) -> None:
        if event.value in self._opened:
            self._opened.remove(event.value)
        self.refresh()

    def _plates_in_viewer(self) -> dict[tuple[str, str], Plate]:
        """Plates (and wells opened on their own) shown in the viewer, in layer order."""
        found: dict[tuple[str, str], Plate] = {}
        for layer in self.viewer.layers:
            block = omezarr_block(layer)
            plate = layer_plate(layer)
            if plate is None or block.get(_OPENED) or block.get("kind") not in ("plate", "well"):
                continue
            found.setdefault(plate_key(plate), plate)
        return found

    def _on_plate_chosen(self, index: int) -> None:
        if self._building or index < 0:
            return
        plates = list(self._plates_in_viewer().values())
        if index < len(plates):
            self.set_plate(plates[index])

    def set_plate(self, plate: Plate) -> None:
        """Show `plate`'s grid, acquisitions and field count."""
        self.plate = plate
        self.well = None
        self.plate_name.setText(plate.name or plate.path or plate.store.rsplit("/", 1)[-1])
        self._building = True
        try:
            self.acquisitions.clear()
            self.acquisitions.addItem("All fields", "all")
            for acq in plate.acquisitions:
                label = f"{acq['id']}: {acq['name']}" if acq.get("name") else str(acq["id"])
                self.acquisitions.addItem(label, acq["id"])
            chosen = self.acquisitions.findData(
                plate.acquisition if plate.acquisition is not None else "all"
            )
            self.acquisitions.setCurrentIndex(max(chosen, 0))
        finally:
            self._building = False
        self.acquisitions.setEnabled(len(plate.acquisitions) > 1)
        self.field.setMaximum(max(plate.field_count - 1, 0))
        self.field_count.setText(f"of {plate.field_count}")
        self._show_plate_grid()
        self.apply_filters()
        self.message.setText(
            f"{plate.name or 'plate'}: {len([w for w in plate.wells if w.fields])} wells, "
            f"up to {plate.field_count} fields each"
        )

    def _show_plate_grid(self) -> None:
        plate = self.plate
        self._building = True
        try:
            self.grid.clear()
            if plate is None:
                self.grid.setRowCount(0)
                self.grid.setColumnCount(0)
                return
            self.grid.setRowCount(len(plate.rows))
            self.grid.setColumnCount(len(plate.columns))
            self.grid.setVerticalHeaderLabels(plate.rows)
            self.grid.setHorizontalHeaderLabels(plate.columns)
            for r in range(len(plate.rows)):
                for c in range(len(plate.columns)):
                    self.grid.setItem(r, c, self._cell_item(plate, r, c))
            self.grid.resizeColumnsToContents()
            self.grid.resizeRowsToContents()
        finally:
            self._building = False

    def _cell_item(self, plate: Plate, r: int, c: int) -> QTableWidgetItem:
        well = plate.well_at(r, c)
        name = f"{plate.rows[r]}{plate.columns[c]}"
        item = QTableWidgetItem(str(len(well.fields)) if well and well.fields else "")
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        if well is None or not well.fields:
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            item.setBackground(QBrush(_EMPTY))
            item.setToolTip(f"{name}: no well" if well is None else f"{name}: no field")
        else:
            item.setBackground(QBrush(_PRESENT))
            item.setToolTip(f"{name}: {len(well.fields)} field(s)")
        return item

    # --- filters and navigation -------------------------------------------------------

    def apply_filters(self) -> None:
        """Hide the rows and columns the filters leave out."""
        plate = self.plate
        if plate is None:
            return
        try:
            rows = parse_filter(self.rows_filter.text(), plate.rows)
            cols = parse_filter(self.columns_filter.text(), plate.columns)
        except ValueError as exc:
            self.message.setText(f"Filter: {exc}")
            return
        for r in range(len(plate.rows)):
            self.grid.setRowHidden(r, rows is not None and r not in rows)
        for c in range(len(plate.columns)):
            self.grid.setColumnHidden(c, cols is not None and c not in cols)

    def wells(self) -> list[Well]:
        """Wells with fields that the filters keep, in row order."""
        plate = self.plate
        if plate is None:
            return []
        return [
            w
            for w in plate.wells
            if w.fields
            and not self.grid.isRowHidden(w.row)
            and not self.grid.isColumnHidden(w.column)
        ]

    def _step_well(self, step: int) -> None:
        wells = self.wells()
        if not wells:
            return
        if self.well in wells:
            index = (wells.index(self.well) + step) % len(wells)
        else:
            index = 0 if step > 0 else len(wells) - 1
        self.select_well(wells[index])

    def next_well(self) -> None:
        """Go to the next well (opening it when a well is open)."""
        self._step_well(1)

    def previous_well(self) -> None:
        """Go to the previous well (opening it when a well is open)."""
        self._step_well(-1)

    def next_field(self) -> None:
        """Show the next field."""
        self.field.setValue(min(self.field.value() + 1, self.field.maximum()))

    def previous_field(self) -> None:
        """Show the previous field."""
        self.field.setValue(max(self.field.value() - 1, 0))

    def select_well(self, well: Well) -> None:
        """Make `well` current in the grid (which zooms to it or opens it)."""
        self.grid.setCurrentCell(well.row, well.column)
        if self.well is not well:  # the same cell again: act anyway
            self._go_to(well)

    def _on_cell(self, row: int, col: int, *_: int) -> None:
        if self._building or self.plate is None or row < 0 or col < 0:
            return
        well = self.plate.well_at(row, col)
        if well is not None and well.fields:
            self._go_to(well)

    def _go_to(self, well: Well) -> None:
        self.well = well
        if self._opened:
            self.open_well(well)
        else:
            self.zoom_to_well(well)

    # --- fields -------------------------------------------------------------------------

    def _field_axis(self) -> int | None:
        layers = self._opened or self._plate_layers()
        layers = [layer for layer in layers if not isinstance(layer, napari.layers.Points)]
        if not layers:
            return None
        return self.viewer.dims.ndim - layers[0].ndim

    def set_field(self, field: int) -> None:
        """Show field `field` of every well (the viewer's `field` axis)."""
        axis = self._field_axis()
        if axis is None or self._building:
            return
        if round(float(self.viewer.dims.point[axis])) != field:
            self.viewer.dims.set_point(axis, field)
        self._describe()

    def _on_dims(self, event: Any = None) -> None:
        axis = self._field_axis()
        if axis is None:
            return
        value = round(float(self.viewer.dims.point[axis]))
        if value != self.field.value():
            self._building = True
            try:
                self.field.setValue(value)
            finally:
                self._building = False
            self._describe()

    def _describe(self) -> None:
        plate, well = self.plate, self.well
        if plate is None or well is None:
            return
        field = self.field.value()
        name = plate.well_name(well)
        shown = "open at full resolution" if self._opened else "in the plate"
        if field < len(well.fields):
            path = well.fields[field]
            label = f"field {field}" + ("" if path == str(field) else f" ({path})")
            self.message.setText(f"{name}, {label}: {shown}")
        else:
            self.message.setText(f"{name} has no field {field} ({len(well.fields)} fields)")

    # --- views --------------------------------------------------------------------------

    def zoom_to_well(self, well: Well | None = None) -> None:
        """Centre the plate view on `well` (default: the current one) and fit it."""
        well = well or self.well
        layer = self._image_layer()
        if well is None or layer is None or self.plate is None:
            return
        self.well = well
        top, bottom = tile_world_box(layer, self.plate, well)
        self._fit(top, bottom)
        self._describe()

    def _fit(self, top: np.ndarray, bottom: np.ndarray) -> None:
        size = np.abs(bottom - top)
        size[size == 0] = 1
        self.viewer.camera.center = tuple(float(v) for v in (top + bottom) / 2)
        try:
            canvas = np.asarray(self.viewer.canvas.viewbox_size(self.viewer.layers), dtype=float)
        except Exception:  # older napari: keep the zoom, the centre still moves
            logger.debug("no canvas size", exc_info=True)
            return
        self.viewer.camera.zoom = float(0.9 * np.min(canvas[-2:] / size))

    def open_well(self, well: Well | None = None) -> list[Any]:
        """Read `well` (default: the current one) with all its fields and labels at full
        resolution and show it where it sits on the plate, the plate layers hidden."""
        well = well or self.well
        plate, reference = self.plate, self._image_layer()
        if well is None or plate is None or reference is None:
            return []
        self.well = well
        acquisition = plate.acquisition if plate.acquisition is not None else "all"
        try:
            within = "/".join(p for p in (plate.path, well.path) if p)
            images = read_ome_zarr(plate.store, within=within, acquisition=acquisition)
        except OmeZarrXError as exc:
            show_error(f"Cannot open well {plate.well_name(well)}: {exc}")
            return []
        ty, tx = tile_size(reference, plate)
        offset = np.array([well.row * ty, well.column * tx]) * np.abs(reference.scale[-2:])
        self._close_well()
        added = []
        for data, meta, kind in layers_for_images(images):
            meta = dict(meta)
            translate = list(meta.get("translate") or [0.0] * len(meta.get("scale") or ()))
            if len(translate) >= 2:
                translate[-2] += float(offset[0])
                translate[-1] += float(offset[1])
                meta["translate"] = tuple(translate)
            meta["metadata"] = {"omezarr": {**meta["metadata"]["omezarr"], _OPENED: True}}
            layer = napari.layers.Layer.create(data, meta, kind)
            self._opened.append(layer)
            added.append(layer)
        for layer in self._plate_layers(plate):
            if layer.visible:
                layer.visible = False
                self._hidden.append(layer)
        for layer in added:
            self.viewer.add_layer(layer)
        field = self.field.value()
        self.set_field(min(field, max(len(well.fields) - 1, 0)))
        self.viewer.fit_to_view(layers=added)
        self._describe()
        return added

    def _close_well(self) -> None:
        opened, self._opened = self._opened, []
        for layer in opened:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)

    def show_plate(self) -> None:
        """Close the open well and show the whole plate again."""
        self._close_well()
        for layer in self._hidden:
            if layer in self.viewer.layers:
                layer.visible = True
        self._hidden = []
        layers = self._plate_layers()
        if layers:
            self.viewer.fit_to_view(layers=layers)

    # --- acquisitions -------------------------------------------------------------------

    def _on_acquisition(self, index: int) -> None:
        if self._building or self.plate is None:
            return
        self.set_acquisition(self.acquisitions.itemData(index))

    def set_acquisition(self, acquisition: int | str) -> None:
        """Show the fields of another acquisition in the plate's layers."""
        plate = self.plate
        if plate is None:
            return
        try:
            images = read_ome_zarr(plate.store, within=plate.path, acquisition=acquisition)
        except OmeZarrXError as exc:
            show_error(f"Cannot show acquisition {acquisition}: {exc}")
            return
        self.show_plate()
        fresh = {
            _role(meta["metadata"]["omezarr"]): (data, meta)
            for data, meta, _ in layers_for_images(images)
        }
        for layer in self._plate_layers(plate):
            new = fresh.get(_role(omezarr_block(layer)))
            if new is None:
                continue
            layer.metadata = new[1]["metadata"]
            if not isinstance(layer, napari.layers.Points):
                layer.data = new[0]
        self.set_plate(layer_plate(self._plate_layers(plate)[0]) or plate)


def _role(block: dict[str, Any]) -> tuple[Any, ...]:
    """What a layer is within its plate: kind, channel and image (or label) name."""
    return (block.get("kind"), block.get("channel_index"), block.get("image_name"))


def _bound(widget: PlateBrowser, action: str) -> Callable[[Any], None]:
    """A viewer key binding calling `widget.<action>()` while the widget lives."""
    ref = weakref.ref(widget)

    def run(viewer: Any) -> None:
        owner = ref()
        if owner is not None:
            try:
                getattr(owner, action)()
            except RuntimeError:  # the dock was closed and its Qt object deleted
                logger.debug("plate browser gone", exc_info=True)

    return run
