"""The "Series" dock widget: every image of a collection, and a way to add more.

A bioformats2raw collection (or a plain group holding several images) opens
only some of its images (all of up to 3, else the first: see
`read.collections`); the images opened carry the collection's listing in
`metadata["omezarr"]["collection"]`. This widget lists it, with each series'
name (from the OME-XML), shape, pixel type and size, marks the ones shown,
and adds the selected ones (button, double click or Enter) as layers.
"""

from __future__ import annotations

import logging
from typing import Any

import napari
import napari.layers
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_omezarr_x._napari.layers import layers_for_images
from napari_omezarr_x._napari.plates import omezarr_block
from napari_omezarr_x.errors import OmeZarrXError
from napari_omezarr_x.info import format_size
from napari_omezarr_x.model import Collection, Series
from napari_omezarr_x.read import read_ome_zarr

logger = logging.getLogger(__name__)

COLUMNS = ("", "#", "Name", "Shape", "Type", "Size")
SHOWN = "\u2713"  # check mark in the first column of series that are shown


def human_size(nbytes: int | None) -> str:
    """'1.5 GiB' style size, '' when unknown."""
    return "" if nbytes is None else format_size(nbytes)


def collections_in(viewer: Any) -> list[Collection]:
    """Collections listed by the viewer's layers, one per (store, path), in layer order."""
    found: dict[tuple[str, str], Collection] = {}
    for layer in viewer.layers:
        raw = omezarr_block(layer).get("collection")
        if isinstance(raw, dict):
            collection = Collection.from_json(raw)
            found.setdefault((collection.store, collection.path), collection)
    return list(found.values())


class SeriesChooser(QWidget):
    """List the series of the collections open in a viewer; add the ones chosen."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.collection: Collection | None = None
        self._building = False
        self.collections = QComboBox()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.add_button = QPushButton("Add selected")
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.collections)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.add_button)
        layout.addWidget(self.message)
        self.collections.currentIndexChanged.connect(self._on_collection)
        self.add_button.clicked.connect(lambda: self.add(self.selected()))
        self.table.cellDoubleClicked.connect(lambda row, col: self.add([row]))
        self.viewer.layers.events.inserted.connect(self.refresh)
        self.viewer.layers.events.removed.connect(self.refresh)
        self.refresh()

    def keyPressEvent(self, event: Any) -> None:
        """Enter adds the selected series."""
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.add(self.selected())
            return
        super().keyPressEvent(event)

    def refresh(self, event: Any = None) -> None:
        """Follow the collections open in the viewer; keep the current one if still there."""
        found = collections_in(self.viewer)
        current = (self.collection.store, self.collection.path) if self.collection else None
        keys = [(c.store, c.path) for c in found]
        self._building = True
        try:
            self.collections.clear()
            for c in found:
                self.collections.addItem(f"{c.store.rstrip('/').rsplit('/', 1)[-1]}/{c.path}")
        finally:
            self._building = False
        self.collections.setVisible(len(found) > 1)
        if not found:
            self.collection = None
            self.table.setRowCount(0)
            self.message.setText("Open a collection (e.g. bioformats2raw) to list its series.")
            return
        index = keys.index(current) if current in keys else 0
        self.collections.setCurrentIndex(index)
        self.show_collection(found[index])

    def _on_collection(self, index: int) -> None:
        if self._building or index < 0:
            return
        found = collections_in(self.viewer)
        if index < len(found):
            self.show_collection(found[index])

    def shown(self, collection: Collection) -> set[int]:
        """Indices of the series that some layer of the viewer shows."""
        paths = {
            (omezarr_block(layer).get("store"), omezarr_block(layer).get("path"))
            for layer in self.viewer.layers
        }
        return {s.index for s in collection.series if (collection.store, s.path) in paths}

    def show_collection(self, collection: Collection) -> None:
        """Fill the table with `collection`'s series."""
        self.collection = collection
        shown = self.shown(collection)
        self.table.setRowCount(len(collection.series))
        for row, series in enumerate(collection.series):
            values = (
                SHOWN if series.index in shown else "",
                str(series.index),
                series.name or series.path.rsplit("/", 1)[-1],
                " x ".join(str(n) for n in series.shape) if series.shape else "",
                series.dtype or "",
                human_size(series.nbytes),
            )
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setToolTip(series.path)
                self.table.setItem(row, col, item)
        self.message.setText(
            f"{len(collection.series)} series, {len(shown)} shown: select and Add (or double "
            "click) to show more"
        )

    def selected(self) -> list[int]:
        """Rows selected in the table."""
        return sorted({index.row() for index in self.table.selectedIndexes()})

    def add(self, rows: list[int]) -> list[Any]:
        """Add the series at table `rows` (those not shown yet) as layers."""
        collection = self.collection
        if collection is None:
            return []
        shown = self.shown(collection)
        added: list[Any] = []
        for row in rows:
            if not 0 <= row < len(collection.series):
                continue
            series = collection.series[row]
            if series.index in shown:
                continue
            added.extend(self._add_series(collection, series))
        self.show_collection(collection)
        return added

    def _add_series(self, collection: Collection, series: Series) -> list[Any]:
        try:
            images = read_ome_zarr(collection.store, within=series.path)
        except OmeZarrXError as exc:
            show_error(f"Cannot open series {series.index} ({series.name or series.path}): {exc}")
            return []
        layers = []
        for data, meta, kind in layers_for_images(images):
            layer = napari.layers.Layer.create(data, meta, kind)
            self.viewer.add_layer(layer)
            layers.append(layer)
        return layers
