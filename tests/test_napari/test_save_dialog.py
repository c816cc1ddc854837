"""File > IO Utilities > Save as OME-Zarr...: the menu entry, the store path dialog that
accepts existing stores, the replace question and the writer options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QDialog, QMessageBox

from napari_omezarr_x._napari import save_dialog as sd
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.write import write_image


@pytest.fixture
def viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), name="dna")
    return viewer


@pytest.fixture
def existing(tmp_path: Path) -> Path:
    path = tmp_path / "old.ome.zarr"
    write_image(path, np.ones((32, 32), np.uint8))
    return path


def _answer(button: QMessageBox.StandardButton, seen: list[str]) -> None:
    """Answer the next message box the way a user clicks it (it is modal)."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        seen.append(box.text())
        box.button(button).click()

    QTimer.singleShot(20, click)


def test_menu_entry_opens_the_dialog(viewer, qtbot):
    menus = {a.text(): a.menu() for a in viewer.window.file_menu.actions() if a.menu()}
    (action,) = [a for a in menus["IO Utilities"].actions() if "Save as OME-Zarr" in a.text()]
    assert action.text() == "Save as OME-Zarr... (OME-Zarr X)"
    opened: list[str] = []

    def close() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, sd.SaveAsDialog):
            QTimer.singleShot(20, close)
            return
        opened.append(dialog.windowTitle())
        dialog.reject()

    QTimer.singleShot(20, close)
    action.trigger()
    qtbot.waitUntil(lambda: opened == ["Save as OME-Zarr"], timeout=5000)


def test_store_path_dialog_accepts_an_existing_store(qtbot, existing):
    """Qt's save dialog opens a folder chosen with Save; a store folder is the choice."""
    dialog = sd.StorePathDialog(None, str(existing.parent))
    qtbot.addWidget(dialog)
    dialog.selectFile(str(existing))
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.chosen() == str(existing)
    assert sd.is_store_folder(existing)
    assert not sd.is_store_folder(existing.parent)


@pytest.mark.parametrize("answer", ["yes", "no"])
def test_replacing_an_existing_store_is_asked_first(viewer, qtbot, existing, answer):
    dialog = sd.SaveAsDialog(viewer)
    qtbot.addWidget(dialog)
    dialog.path.setText(str(existing))
    dialog.version.setCurrentIndex(sd.VERSIONS.index("0.4"))
    dialog.compression.setCurrentText("gzip")
    assert not dialog.shards.isEnabled()  # sharding needs NGFF 0.5
    seen: list[str] = []
    button = QMessageBox.StandardButton.Yes if answer == "yes" else QMessageBox.StandardButton.No
    _answer(button, seen)
    dialog.accept()
    assert seen == [f"{existing} exists. Replace it?"]
    if answer == "no":
        assert dialog.result() != QDialog.DialogCode.Accepted
        assert (existing / "zarr.json").exists()  # untouched 0.5 store
        return
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert sd.save_layers(dialog) == [str(existing)]
    (image,) = read_ome_zarr(str(existing))
    assert image.version == "0.4"
    assert np.asarray(image.levels[0]).shape == (64, 64)
    meta = json.loads((existing / "0" / ".zarray").read_text())
    assert meta["compressor"]["id"] == "gzip"


def test_sharded_save_and_errors_become_notifications(viewer, qtbot, tmp_path):
    from napari.utils.notifications import notification_manager

    dialog = sd.SaveAsDialog(viewer)
    qtbot.addWidget(dialog)
    dialog.path.setText(str(tmp_path / "new"))
    dialog.shards.setChecked(True)
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    (path,) = sd.save_layers(dialog)
    assert path == str(tmp_path / "new.ome.zarr")
    codecs = json.loads((tmp_path / "new.ome.zarr" / "0" / "zarr.json").read_text())["codecs"]
    assert codecs[0]["name"] == "sharding_indexed"

    (tmp_path / "notes.zarr").mkdir()  # a folder of the user's, not an OME-Zarr
    (tmp_path / "notes.zarr" / "keep.txt").write_text("mine")
    dialog.path.setText(str(tmp_path / "notes.zarr"))
    _answer(QMessageBox.StandardButton.Yes, [])
    dialog.accept()
    before = len(notification_manager.records)
    assert sd.save_layers(dialog) == []
    (message,) = [n.message for n in notification_manager.records[before:]]
    assert message.startswith(f"Cannot save {tmp_path / 'notes.zarr'}")
    assert (tmp_path / "notes.zarr" / "keep.txt").read_text() == "mine"
