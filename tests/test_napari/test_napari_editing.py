"""Proofreading labels in a real napari viewer: paint with napari's tools, save in place."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from napari.layers import Labels
from qtpy.QtCore import Qt

from label_edit_helpers import (
    CHUNKS,
    VERSIONS,
    assert_consistent,
    colors_of,
    digests,
    drag,
    image_with_labels,
    levels,
)
from napari_omezarr_x import sample
from napari_omezarr_x._napari import close_guard, editing
from napari_omezarr_x._napari.labels_widget import LabelsEditWidget
from napari_omezarr_x.write import add_labels, write_labels

PLUGIN = "napari-omezarr-x"


def layer_named(viewer, name: str) -> Labels:
    (layer,) = [
        lyr for lyr in viewer.layers if isinstance(lyr, Labels) and editing.base_name(lyr) == name
    ]
    return layer


def pick_tool(qtbot, viewer, name: str, mode: str = "paint") -> Labels:
    """Pick a tool on a labels layer, as its button does; the editing layer is returned."""
    layer = layer_named(viewer, name)
    viewer.layers.selection.active = layer
    layer.mode = mode
    qtbot.waitUntil(lambda: editing.edits_of(layer_named(viewer, name)) is not None)
    return layer_named(viewer, name)


def changed_files(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "image.ome.zarr"
    cells, _ = image_with_labels(path, "0.5", None)
    return path, cells


@pytest.mark.parametrize("version", VERSIONS)
def test_napari_tools_paint_and_save_equals_a_full_rewrite(
    make_napari_viewer, qtbot, tmp_path, version
):
    path = tmp_path / "image.ome.zarr"
    cells, _ = image_with_labels(path, version, None)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    overview = layer_named(viewer, "cells")
    index = viewer.layers.index(overview)
    assert overview.multiscale
    assert overview.editable  # the paint tools are offered: picking one switches
    features = overview.features.copy()

    layer = pick_tool(qtbot, viewer, "cells")
    assert layer is not overview
    assert not layer.multiscale
    assert layer.mode == "paint"
    assert viewer.layers.index(layer) == index
    assert viewer.layers.selection.active is layer
    assert (
        layer.colormap.map(np.array([3])).tolist() == overview.colormap.map(np.array([3])).tolist()
    )
    assert layer.features.equals(features)
    assert tuple(layer.scale) == tuple(overview.scale)

    # The same operations on a numpy-backed layer give what napari itself does.
    expected = Labels(np.array(cells))
    for target in (layer, expected):
        target.brush_size = 7
        target.paint((2, 40, 50), 99)
        target.fill((1, 75, 90), 55)
        target.paint_polygon([[3, 10, 10], [3, 10, 60], [3, 50, 35]], 77)
        target.undo()  # the polygon goes again
        target.paint_polygon([[4, 100, 20], [4, 140, 30], [4, 120, 90]], 66)
        target.paint((4, 100, 100), 0)  # the eraser
        target.n_edit_dimensions = 3
        target.paint((3, 70, 70), 5)  # a 3D ball
    edited = np.asarray(expected.data)
    assert not np.array_equal(edited, cells)
    np.testing.assert_array_equal(np.asarray(layer.data), edited)
    assert layer.name == "cells *"

    before = digests(path)
    viewer.layers.selection = {layer}
    written = viewer.layers.save(str(path), selected=True, plugin=PLUGIN)
    assert written == [str(path / "labels" / "cells")]
    assert layer.name == "cells"
    changed = changed_files(before, digests(path))
    assert changed
    assert all(k.startswith("labels/cells/") for k in changed)

    reference = tmp_path / "reference.ome.zarr"
    image_with_labels(reference, version, None)
    add_labels(reference, edited, "cells", chunks=CHUNKS, colors=colors_of([1]))
    for ours, theirs in zip(
        levels(path / "labels" / "cells"), levels(reference / "labels" / "cells"), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    assert_consistent(path / "labels" / "cells")

    viewer.open(str(path), plugin=PLUGIN)  # reopened: the saved labels
    reopened = next(lyr for lyr in viewer.layers if lyr.name.startswith("cells ["))
    np.testing.assert_array_equal(np.asarray(reopened.data[0]), edited)


def test_mouse_drag_ctrl_z_and_ctrl_shift_s(make_napari_viewer, qtbot, store):
    path, cells = store
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin=PLUGIN)
    overview = layer_named(viewer, "cells")
    viewer.layers.selection.active = overview
    controls = viewer.window._qt_viewer.controls.widgets[overview]
    controls.paint_button.click()  # napari's own brush button
    qtbot.waitUntil(lambda: editing.edits_of(layer_named(viewer, "cells")) is not None)
    layer = layer_named(viewer, "cells")
    layer.selected_label = 123
    layer.brush_size = 3
    viewer.dims.set_current_step(0, 2)
    viewer.scene.camera.center = (75, 85)
    viewer.scene.camera.zoom = 3
    qtbot.wait(50)
    drag(viewer, [(60, 40 + 2 * i) for i in range(40)])
    plane = np.asarray(layer.data[2])
    painted = np.nonzero(plane == 123)
    assert painted[0].size > 100
    assert painted[0].min() >= 58
    assert painted[0].max() <= 62
    assert 38 <= painted[1].min() <= 40
    assert 117 <= painted[1].max() <= 120
    assert layer.name == "cells *"

    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo
    np.testing.assert_array_equal(np.asarray(layer.data[2]), cells[2])

    drag(viewer, [(100 + i, 30) for i in range(20)])
    expected = np.asarray(layer.data)
    before = digests(path)
    qtbot.keyClick(
        canvas,
        Qt.Key.Key_S,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    qtbot.waitUntil(lambda: layer.name == "cells")
    assert changed_files(before, digests(path))
    np.testing.assert_array_equal(levels(path / "labels" / "cells")[0], expected)
    assert_consistent(path / "labels" / "cells")


@pytest.fixture
def small_sample(tmp_path, monkeypatch):
    make = sample.make_cells
    monkeypatch.setattr(sample, "make_cells", lambda seed=0: make((16, 96, 96), seed))
    monkeypatch.setenv(sample.CACHE_ENV, str(tmp_path / "cache"))


@pytest.mark.usefixtures("small_sample")
def test_the_sample_labels_are_painted_and_saved_back(make_napari_viewer, qtbot):
    from napari_omezarr_x._napari.sample import open_sample

    viewer = make_napari_viewer(show=True)
    open_sample(viewer)
    store = Path(layer_named(viewer, "nuclei").metadata["omezarr"]["store"])
    before = digests(store)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Labels editing")
    viewer.layers.selection.active = layer_named(viewer, "nuclei")
    widget.edit_box.click()  # "Edit at full resolution"
    layer = layer_named(viewer, "nuclei")
    assert editing.edits_of(layer) is not None
    assert layer.contour == 2  # the sample's outline look is kept
    layer.mode = "paint"
    layer.selected_label = 200
    layer.brush_size = 4
    z = viewer.dims.current_step[0]
    drag(viewer, [(layer.scale[1] * (30 + i), layer.scale[2] * 30) for i in range(25)])
    assert "not saved" in widget.status.text()
    assert widget.save_button.isEnabled()
    widget.save_button.click()
    assert layer.name == "nuclei"
    changed = changed_files(before, digests(store))
    assert changed
    assert all(k.startswith("labels/nuclei/") for k in changed)
    saved = levels(store / "labels" / "nuclei")
    assert (saved[0][z] == 200).sum() > 20
    assert_consistent(store / "labels" / "nuclei")
    viewer.screenshot(str(store.parent / "sample-edited.png"), canvas_only=False)


def test_widget_edit_toggle_discard_and_back_to_the_overview(
    make_napari_viewer, qtbot, store, monkeypatch
):
    path, cells = store
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Labels editing")
    assert isinstance(widget, LabelsEditWidget)
    viewer.layers.selection.active = layer_named(viewer, "cells")
    assert "Overview" in widget.state.text()
    assert not widget.edit_box.isChecked()
    layer = pick_tool(qtbot, viewer, "cells")  # the widget follows the switch
    assert widget.edit_box.isChecked()
    assert "Editing the full resolution" in widget.state.text()
    layer.paint((0, 10, 10), 42)
    assert "1 edited chunk(s) not saved yet" in widget.status.text()
    assert widget.discard_button.isEnabled()
    widget.discard_button.click()
    np.testing.assert_array_equal(np.asarray(layer.data), cells)
    assert layer.name == "cells"

    layer.paint((0, 10, 10), 42)
    answers = iter([close_guard.QMessageBox.StandardButton.Cancel])
    monkeypatch.setattr("napari_omezarr_x._napari.labels_widget.ask", lambda *a: next(answers))
    widget.edit_box.setChecked(False)  # unsaved edits: the user cancels
    assert editing.edits_of(layer_named(viewer, "cells")) is not None
    answers = iter([close_guard.QMessageBox.StandardButton.Save])
    widget.edit_box.setChecked(False)  # saved, then back to the pyramid
    overview = layer_named(viewer, "cells")
    assert overview.multiscale
    assert overview.editable
    assert np.asarray(overview.data[0])[0, 10, 10] == 42  # fresh levels, not napari's cache
    assert levels(path / "labels" / "cells")[0][0, 10, 10] == 42


def test_read_only_stores_say_so_and_save_elsewhere(make_napari_viewer, qtbot, store, monkeypatch):
    path, cells = store
    zipped = path.with_suffix(".ozx")
    with zipfile.ZipFile(zipped, "w") as archive:
        for f in path.rglob("*"):
            archive.write(f, f.relative_to(path).as_posix())
    warnings: list[str] = []
    monkeypatch.setattr(editing, "show_warning", warnings.append)
    viewer = make_napari_viewer()
    viewer.open(str(zipped), plugin=PLUGIN)
    layer = pick_tool(qtbot, viewer, "cells")
    assert any("zipped stores are read-only" in w for w in warnings)
    layer.paint((1, 50, 50), 88)
    editing.save_labels_action(layer)
    assert any("Labels not saved" in w and "read-only" in w for w in warnings)

    copy = path.parent / "copy.ome.zarr"
    viewer.layers.selection = {layer}
    viewer.layers.save(str(copy), selected=True, plugin=PLUGIN)
    saved = levels(copy)[0]
    assert saved[1, 50, 50] == 88
    assert (saved != cells).sum() > 0
    assert layer.name == "cells *"  # the zipped store still lacks the edits


def test_closing_the_window_asks_about_unsaved_edits(make_napari_viewer, qtbot, store, monkeypatch):
    path, _ = store
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin=PLUGIN)
    layer = pick_tool(qtbot, viewer, "cells")
    layer.paint((0, 20, 20), 31)
    answers = [close_guard.QMessageBox.StandardButton.Cancel]
    asked = []

    def ask(title: str, text: str):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(close_guard, "ask", ask)
    window = viewer.window._qt_window
    window.close()  # as File > Close Window does
    assert window.isVisible()
    assert "cells has unsaved edits" in asked[0]
    answers.append(close_guard.QMessageBox.StandardButton.Save)
    assert editing.confirm_close(viewer)  # "Save": saved, may close
    assert levels(path / "labels" / "cells")[0][0, 20, 20] == 31
    assert layer.name == "cells"

    layer.paint((0, 21, 21), 32)

    def must_not_ask(title: str, text: str):
        raise AssertionError("a close made from code must not ask")

    monkeypatch.setattr(close_guard, "ask", must_not_ask)
    viewer.close()  # scripts and tests close without a dialog


@pytest.mark.parametrize("answer", ["Cancel", "Save", "Discard"])
def test_removing_a_layer_with_unsaved_edits_asks(
    make_napari_viewer, qtbot, store, monkeypatch, answer
):
    path, cells = store
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin=PLUGIN)
    layer = pick_tool(qtbot, viewer, "cells")
    layer.paint((0, 20, 20), 31)
    asked = []

    def ask(title: str, text: str):
        asked.append(text)
        return getattr(close_guard.QMessageBox.StandardButton, answer)

    monkeypatch.setattr(close_guard, "ask", ask)
    viewer.layers.remove(layer)  # as the layer list's delete button does
    qtbot.waitUntil(lambda: bool(asked))
    assert "cells was removed with unsaved edits" in asked[0]
    stored = levels(path / "labels" / "cells")[0]
    if answer == "Cancel":
        qtbot.waitUntil(lambda: layer in viewer.layers)
        assert editing.edits_of(layer).has_edits
        assert np.asarray(layer.data)[0, 20, 20] == 31
        assert stored[0, 20, 20] == cells[0, 20, 20]
        monkeypatch.setattr(
            close_guard, "ask", lambda *a: close_guard.QMessageBox.StandardButton.Discard
        )
        viewer.layers.remove(layer)
        qtbot.waitUntil(lambda: not editing.edits_of(layer).has_edits)
    else:
        qtbot.wait(50)
        assert layer not in viewer.layers
        assert stored[0, 20, 20] == (31 if answer == "Save" else cells[0, 20, 20])


def test_3d_switches_big_volumes_back_to_the_overview(
    make_napari_viewer, qtbot, store, monkeypatch
):
    path, _ = store
    monkeypatch.setattr(editing, "MAX_3D_BYTES", 1000)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    pick_tool(qtbot, viewer, "cells")
    viewer.dims.ndisplay = 3  # no edits: back to the pyramid, which napari shows in 3D
    assert layer_named(viewer, "cells").multiscale
    viewer.dims.ndisplay = 2
    layer = pick_tool(qtbot, viewer, "cells")
    layer.paint((0, 5, 5), 9)
    viewer.dims.ndisplay = 3  # unsaved edits: kept, hidden
    assert editing.edits_of(layer_named(viewer, "cells")) is layer.data
    assert not layer.visible
    with pytest.raises(editing.OmeZarrXError, match="switch to 2D"):
        editing.start_editing(viewer, layer_named(viewer, "other"))

    monkeypatch.setattr(editing, "MAX_3D_BYTES", 1 << 30)  # small volumes are edited in 3D
    viewer.dims.ndisplay = 2
    editing.discard_edits(layer)
    layer.visible = True
    viewer.dims.ndisplay = 3
    assert editing.edits_of(layer_named(viewer, "cells")) is layer.data
    layer.n_edit_dimensions = 3
    layer.paint((2, 30, 30), 17)
    editing.save_layer(layer)
    assert levels(path / "labels" / "cells")[0][2, 30, 30] == 17
    assert_consistent(path / "labels" / "cells")


def test_a_large_sparse_label_image_in_the_viewer(make_napari_viewer, qtbot, tmp_path):
    path = tmp_path / "big.ome.zarr"
    write_labels(path, da.zeros((16, 2048, 2048), dtype=np.uint32, chunks=(1, 2048, 2048)))
    before = digests(path)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    (name,) = [editing.base_name(lyr) for lyr in viewer.layers]
    viewer.dims.set_current_step(0, 7)
    layer = pick_tool(qtbot, viewer, name)
    layer.brush_size = 15
    for i in range(30):
        layer.paint((7, 1000 + i, 900 + 4 * i), 3, refresh=False)
    report = editing.save_layer(layer)
    assert report.written[0] <= 2
    changed = changed_files(before, digests(path))
    assert len(changed) == report.files <= 2 * len(report.written)
    assert_consistent(path)
    shutil.rmtree(path)


def test_a_label_image_without_pyramid_is_edited_in_place(make_napari_viewer, qtbot, tmp_path):
    path = tmp_path / "flat.ome.zarr"
    data = np.zeros((3, 64, 64), dtype=np.uint8)
    data[1, 10:20, 10:20] = 4
    write_labels(path, data, levels=1)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    (overview,) = viewer.layers
    assert not overview.multiscale
    layer = pick_tool(qtbot, viewer, editing.base_name(overview))
    assert layer is overview  # no pyramid: the same layer gets the editable data
    assert layer.mode == "paint"
    layer.paint((1, 40, 40), 9)
    from napari._app_model import get_app_model

    # The menu entry (Layers > Annotate, File > IO Utilities), run as napari runs it.
    get_app_model().commands.execute_command("napari-omezarr-x.save_labels").result()
    assert levels(path)[0][1, 40, 40] == 9
    back = editing.stop_editing(viewer, layer)
    assert back is layer
    assert editing.edits_of(back) is None
    assert np.asarray(back.data)[1, 40, 40] == 9
