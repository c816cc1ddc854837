"""File > IO Utilities > Save as OME-Zarr...: a save dialog made for zarr folders.

napari's own Save dialogs cannot replace an existing store: an OME-Zarr is a folder,
and picking a folder in a file dialog opens it instead of choosing it. This dialog
takes the store's path (typed, or picked with a file dialog that accepts existing
`.zarr` folders as they are), asks before replacing an existing store, and offers the
writer's options: NGFF version, compression and sharding. Saving goes through the same
writer as File > Save Layers, so layouts, names and channel settings are the same.
"""

from pathlib import Path
from typing import Any

import napari
import napari.viewer
from napari.qt import get_current_stylesheet
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_omezarr_x._napari.writer import SUFFIX, target_path, write_with_options
from napari_omezarr_x.errors import OmeZarrXError
from napari_omezarr_x.read import looks_like_ome_zarr
from napari_omezarr_x.storage import url_scheme
from napari_omezarr_x.write import is_image

VERSIONS = ("0.5", "0.4")
COMPRESSIONS = {"Blosc zstd": "zstd", "Blosc lz4": "lz4", "gzip": "gzip", "none": None}
_STORE_SUFFIXES = (".zarr", ".ozx")


def is_store_folder(path: str | Path) -> bool:
    """A folder to choose as a whole rather than open: `*.zarr`, or any OME-Zarr."""
    folder = Path(path)
    if not folder.is_dir():
        return False
    return folder.name.lower().endswith(_STORE_SUFFIXES) or looks_like_ome_zarr(str(folder))


class StorePathDialog(QFileDialog):
    """A save file dialog that accepts an existing store folder instead of entering it."""

    def __init__(self, parent: QWidget | None = None, directory: str = "") -> None:
        super().__init__(parent, "Save as OME-Zarr", directory)
        self.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        self.setFileMode(QFileDialog.FileMode.AnyFile)
        # Qt's own dialog: the platform's native ones cannot be told to stop at a folder.
        self.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        self.setOption(QFileDialog.Option.DontConfirmOverwrite, True)
        self.setNameFilter("OME-Zarr (*.ome.zarr *.zarr)")

    def chosen(self) -> str:
        """The path typed or selected (a store folder stays a choice, not a place)."""
        typed = self.findChild(QLineEdit)
        name = typed.text().strip() if typed is not None else ""
        if name:
            return str(Path(self.directory().absolutePath()) / name)
        files = self.selectedFiles()
        return files[0] if files else ""

    def accept(self) -> None:
        """Choose an existing store folder; Qt would open it and wait for a name."""
        path = self.chosen()
        if path and is_store_folder(path):
            self.selectFile(path)
            QDialog.accept(self)
            return
        super().accept()


class SaveAsDialog(QDialog):
    """Where and how to save the layers: path, NGFF version, compression, sharding."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.setWindowTitle("Save as OME-Zarr")
        self.setObjectName("omezarrSaveAsDialog")
        self.setStyleSheet(get_current_stylesheet())  # napari's theme, parent or not
        self.path = QLineEdit()
        self.path.setPlaceholderText(f"folder to write, e.g. image{SUFFIX}")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self.browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.version = QComboBox()
        self.version.addItems([f"OME-NGFF {v}" for v in VERSIONS])
        self.version.setToolTip("0.5: zarr v3 (sharding possible); 0.4: zarr v2, widely read")
        self.compression = QComboBox()
        self.compression.addItems(list(COMPRESSIONS))
        self.shards = QCheckBox("Shard (fewer, bigger files; NGFF 0.5 only)")
        self.selected_only = QCheckBox("Selected layers only")
        self.selected_only.setChecked(bool(viewer.layers.selection))
        self.selected_only.setEnabled(bool(viewer.layers.selection))
        self.version.currentIndexChanged.connect(self._on_version)
        self.version.setCurrentIndex(VERSIONS.index(_opened_version(list(viewer.layers))))

        form = QFormLayout()
        form.addRow("Store", row)
        form.addRow("Format", self.version)
        form.addRow("Compression", self.compression)
        form.addRow("", self.shards)
        form.addRow("Layers", self.selected_only)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addLayout(form)
        box.addWidget(buttons)
        self.resize(560, self.sizeHint().height())

    def _on_version(self) -> None:
        sharding = self.options()["version"] == "0.5"
        self.shards.setEnabled(sharding)
        if not sharding:
            self.shards.setChecked(False)

    def browse(self) -> None:
        """Pick the store with a file dialog that accepts existing store folders."""
        current = self.path.text().strip()
        start = str(Path(current).parent) if current else str(Path.cwd())
        dialog = StorePathDialog(self, start)
        if current:
            dialog.selectFile(current)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.path.setText(dialog.chosen() or dialog.selectedFiles()[0])

    def layers(self) -> list[Any]:
        """The layers to save: the selection when asked for, else all of them."""
        if self.selected_only.isChecked():
            return [layer for layer in self.viewer.layers if layer in self.viewer.layers.selection]
        return list(self.viewer.layers)

    def options(self) -> dict[str, Any]:
        """The writer options the dialog shows."""
        return {
            "version": VERSIONS[self.version.currentIndex()],
            "compression": COMPRESSIONS[self.compression.currentText()],
            "shards": self.shards.isChecked() or None,
        }

    def target(self) -> str | None:
        """The store to write (a folder, or an object-store URL), `.ome.zarr` added."""
        text = self.path.text().strip()
        return target_path(text) if text else None

    def accept(self) -> None:
        """Save unless the path is missing or the user declines to replace a store."""
        target = self.target()
        if target is None:
            QMessageBox.warning(self, "Save as OME-Zarr", "Type or browse to a store path.")
            return
        if _exists(target) and not self._confirm(target):
            return
        super().accept()

    def _confirm(self, target: str) -> bool:
        kinds = {layer._type_string for layer in self.layers()}
        if kinds == {"labels"} and is_image(target):
            name = target.rstrip("/").rsplit("/", 1)[-1]
            question = f"Add the labels to the image {name}? Its image is kept."
        else:
            question = f"{target} exists. Replace it?"
        answer = QMessageBox.question(
            self,
            "Save as OME-Zarr",
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes


def _exists(target: str) -> bool:
    """Whether something is at `target` already: a folder, or a store at a URL."""
    if url_scheme(target) is None:
        return Path(target).exists()
    return looks_like_ome_zarr(target)


def _opened_version(layers: list[Any]) -> str:
    """0.4 when every layer came from a 0.4 store (as File > Save does), else 0.5."""
    versions = {
        str(((layer.metadata or {}).get("omezarr") or {}).get("version")) for layer in layers
    }
    return "0.4" if versions == {"0.4"} else "0.5"


def save_layers(dialog: SaveAsDialog) -> list[str]:
    """Save what an accepted dialog asks for; the paths written (errors as notifications)."""
    target, layers = dialog.target(), dialog.layers()
    if target is None or not layers:
        show_error("Save as OME-Zarr: no layers to save")
        return []
    data = [layer.as_layer_data_tuple() for layer in layers]
    try:
        written = write_with_options(target, data, **dialog.options())
    except OmeZarrXError as exc:
        show_error(str(exc))
        return []
    show_info(f"Saved {len(layers)} layer(s) to {target}")
    return written


def save_as_ome_zarr(viewer: napari.viewer.Viewer) -> list[str]:
    """File > IO Utilities > Save as OME-Zarr...: ask where and how, then save."""
    # napari hands plugins a proxy of the viewer: parent the dialog to the active window.
    dialog = SaveAsDialog(viewer, QApplication.activeWindow())
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return []
    return save_layers(dialog)
