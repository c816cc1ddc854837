"""Plates in a real viewer: field axis, well names, status bar, Plate browser, saving."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt

from http_helpers import serve
from napari_omezarr_x._napari.browser import PlateBrowser, parse_filter
from napari_omezarr_x._napari.plates import fit_names, tile_world_box
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.spec.validate import validate_store
from ngff_fixtures import write_plate
from s3_helpers import PRIVATE

PLUGIN = "napari-omezarr-x"


def value(well_index: int, field: int) -> int:
    """What the fixture fills field `field` of the i-th listed well with."""
    return (10 * (well_index + 1) + field) % 256


@pytest.fixture
def plate(tmp_path: Path) -> Path:
    return write_plate(tmp_path / "plate.ome.zarr", "0.5", labels=True, shape=(2, 16, 16))


def _zip(folder: Path) -> Path:
    target = folder.parent / "plate.ozx"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder).as_posix())
    return target


def _browser(viewer) -> PlateBrowser:
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Plate browser")
    return widget


def _plate_images(viewer):
    return [
        layer
        for layer in viewer.layers
        if layer._type_string == "image" and layer.metadata["omezarr"]["kind"] == "plate"
    ]


@pytest.mark.parametrize("where", ["folder", "zip", "http", "s3"])
def test_plate_opens_with_every_field_names_status_and_browser(
    make_napari_viewer, qtbot, plate, where, request
):
    viewer = make_napari_viewer(show=True)
    if where == "s3":
        server = request.getfixturevalue("s3_env")
        url = server.upload(plate, PRIVATE, "plates/plate.ome.zarr")
        layers = viewer.open(url, plugin=PLUGIN)
    elif where == "folder":
        layers = viewer.open(str(plate), plugin=PLUGIN)
    elif where == "zip":
        layers = viewer.open(str(_zip(plate)), plugin=PLUGIN)
    else:
        with serve(plate.parent, listable=False) as url:
            layers = viewer.open(f"{url}/{plate.name}", plugin=PLUGIN)
            _check_plate_session(viewer, qtbot, layers)
        return
    _check_plate_session(viewer, qtbot, layers)


def _check_plate_session(viewer, qtbot, layers) -> None:
    kinds = [(layer._type_string, layer.name) for layer in layers]
    assert kinds == [
        ("points", "test plate: wells"),
        ("image", "test plate: channel 0"),
        ("image", "test plate: channel 1"),
        ("labels", "test plate: cells"),
    ]
    names = layers[0]
    assert list(names.features["well"]) == ["A1", "B3"]
    assert names.text.visible
    first = layers[1]
    qtbot.waitUntil(lambda: viewer.layers.selection.active is first, timeout=3000)
    assert viewer.layers[-1] is names  # moved on top once the open is over
    assert viewer.dims.axis_labels[0] == "field"
    assert viewer.dims.point[0] == 0
    # Every field of every well through the layer data, tile by tile.
    level0 = first.data[0]
    assert level0.shape == (2, 32, 48)
    for i, (row, col) in enumerate([(0, 0), (1, 2)]):
        for f in range(2):
            tile = np.asarray(level0[f, row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16])
            assert (tile == value(i, f)).all()
    # The status bar names the well and field under the cursor.
    viewer.dims.set_point(0, 1)
    viewer.mouse_over_canvas = True
    centre = np.mean(tile_world_box(first, first_plate(first), well_at(first, 1, 2)), axis=0)
    viewer.cursor.position = (1, *centre)
    viewer.update_status_from_cursor()
    assert str(viewer.status["coordinates"]).startswith("B3, field 1 · ")
    viewer.cursor.position = (1, centre[0], centre[1] - 16 * 0.5)
    viewer.update_status_from_cursor()
    assert str(viewer.status["coordinates"]).startswith("B2 (no well) · ")
    # The Plate browser is docked and shows the grid.
    browser = _browser(viewer)
    assert browser.plate.name == "test plate"
    assert (browser.grid.rowCount(), browser.grid.columnCount()) == (2, 3)
    assert browser.grid.item(1, 2).text() == "2"
    assert not browser.grid.item(0, 1).flags() & Qt.ItemFlag.ItemIsEnabled
    # Selecting a well zooms the plate view to it; the field box moves the field axis.
    browser.select_well(well_at(first, 1, 2))
    assert np.allclose(viewer.camera.center[-2:], centre)
    browser.field.setValue(0)
    assert viewer.dims.point[0] == 0
    # Opening it reads the well on its own, at full resolution, where it sits.
    browser.field.setValue(1)
    opened = browser.open_well()
    assert [layer.name for layer in opened] == ["B/3: channel 0", "B/3: channel 1", "B/3: cells"]
    assert not any(layer.visible for layer in _plate_images(viewer))
    full = opened[0].data[0] if opened[0].multiscale else opened[0].data
    assert full.shape == (2, 16, 16)
    assert (np.asarray(full[1]) == value(1, 1)).all()
    assert viewer.dims.point[0] == 1
    assert np.allclose(opened[0].translate[-2:], (16 * 0.5, 2 * 16 * 0.5))
    viewer.cursor.position = (1, *centre)
    viewer.update_status_from_cursor()
    assert str(viewer.status["coordinates"]).startswith("B3, field 1 · ")
    browser.show_plate()
    assert not [layer for layer in viewer.layers if layer.name.startswith("B/3")]
    assert all(layer.visible for layer in _plate_images(viewer))


def first_plate(layer):
    from napari_omezarr_x._napari.plates import layer_plate

    return layer_plate(layer)


def well_at(layer, row: int, col: int):
    return first_plate(layer).well_at(row, col)


def test_keys_move_between_wells_and_fields(make_napari_viewer, qtbot, plate):
    viewer = make_napari_viewer(show=True)
    viewer.open(str(plate), plugin=PLUGIN)
    browser = _browser(viewer)
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    assert browser.plate.well_name(browser.well) == "A1"
    qtbot.keyClick(canvas, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    assert browser.plate.well_name(browser.well) == "B3"
    qtbot.keyClick(canvas, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    assert browser.plate.well_name(browser.well) == "A1"  # wraps around
    qtbot.keyClick(canvas, Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)
    assert browser.plate.well_name(browser.well) == "B3"
    qtbot.keyClick(canvas, Qt.Key.Key_PageDown)
    assert (browser.field.value(), viewer.dims.point[0]) == (1, 1)
    qtbot.keyClick(canvas, Qt.Key.Key_PageDown)
    assert browser.field.value() == 1  # the last field
    qtbot.keyClick(canvas, Qt.Key.Key_PageUp)
    assert viewer.dims.point[0] == 0
    # With a well open, the next well opens too.
    browser.open_well()
    browser.next_well()
    assert browser._opened[0].name.startswith("A/1")


def test_filters_limit_the_wells(make_napari_viewer, tmp_path):
    path = write_plate(
        tmp_path / "p.zarr",
        "0.4",
        rows=("A", "B", "C"),
        columns=("01", "02", "03"),
        wells=("A/01", "B/02", "C/03", "C/01"),
        fields=1,
        shape=(4, 4),
    )
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    browser = _browser(viewer)
    browser.rows_filter.setText("b-c")
    browser.columns_filter.setText("1, 3")
    browser.apply_filters()
    assert [browser.plate.well_name(w) for w in browser.wells()] == ["C01", "C03"]
    assert browser.grid.isRowHidden(0)
    assert browser.grid.isColumnHidden(1)
    browser.rows_filter.setText("Z")
    browser.apply_filters()
    assert "Filter: 'Z'" in browser.message.text()
    assert parse_filter("", ["A"]) is None
    assert parse_filter("2-1", ["01", "02", "03"]) == {0, 1}


def test_acquisitions_switch_in_place(make_napari_viewer, tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.5", fields=4, acquisitions=(7, 3, 7, 3))
    viewer = make_napari_viewer()
    (_, first, *_) = viewer.open(str(path), plugin=PLUGIN)
    browser = _browser(viewer)
    choices = [browser.acquisitions.itemText(i) for i in range(browser.acquisitions.count())]
    assert choices == ["All fields", "3: run 3", "7: run 7"]
    assert browser.acquisitions.currentText() == "3: run 3"
    assert np.asarray(first.data[0][0, :8, :8]).max() == value(0, 1)
    browser.set_acquisition(7)
    assert first in viewer.layers
    assert (np.asarray(first.data[0][1, :8, :8]) == value(0, 2)).all()
    assert browser.plate.acquisition == 7
    browser.set_acquisition("all")
    assert first.data[0].shape[0] == 4
    assert browser.field.maximum() == 3


def test_well_names_follow_the_zoom_and_show_on_the_canvas(make_napari_viewer, qtbot, plate):
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(plate), plugin=PLUGIN)
    names = layers[0]
    qtbot.wait(50)
    viewer.reset_view()
    shown = viewer.screenshot(canvas_only=True, flash=False)
    names.visible = False
    hidden = viewer.screenshot(canvas_only=True, flash=False)
    names.visible = True
    white = lambda img: int((img[..., :3].min(axis=-1) > 200).sum())  # noqa: E731
    assert white(shown) > white(hidden) + 30  # the well names are drawn in white
    fit_names(names, zoom=0.5)  # a 16-pixel well of 0.5 um is 4 screen pixels wide
    assert not names.text.visible
    fit_names(names, zoom=20)
    assert names.text.visible
    assert names.text.size == 16.0


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plate_layers_are_saved_as_a_plate(make_napari_viewer, tmp_path, version):
    import ome_zarr_models
    import zarr

    plate = write_plate(tmp_path / "plate.ome.zarr", version, labels=True, shape=(2, 16, 16))
    viewer = make_napari_viewer()
    layers = viewer.open(str(plate), plugin=PLUGIN)
    (labels,) = [layer for layer in layers if layer._type_string == "labels"]
    edited = np.asarray(labels.data[0]).copy() if labels.multiscale else labels.data.copy()
    edited[1, 16:20, 32:36] = 99  # B/3, field 1
    labels.data = edited
    out = tmp_path / "saved.ome.zarr"
    viewer.layers.save(str(out), plugin=PLUGIN)  # every layer, the well names too
    assert validate_store(str(out)).valid
    model = ome_zarr_models.open_ome_zarr(zarr.open_group(out, mode="r"))
    assert type(model).__name__ == "HCS"
    assert type(model).__module__.endswith(f"v0{version[-1]}.hcs")  # saved as it was read
    (saved,) = read_ome_zarr(str(out))
    assert saved.plate.name == "test plate"
    assert [(w.path, w.fields) for w in saved.plate.wells] == [
        ("A/1", ["0", "1"]),
        ("B/3", ["0", "1"]),
    ]
    data = saved.levels[0].compute()
    assert (data[1, :, 16:, 32:] == value(1, 1)).all()
    (cells,) = saved.labels
    assert (cells.levels[0][1, 16:20, 32:36].compute() == 99).all()
    original = zarr.open_array(plate / "A" / "1" / "0" / "labels" / "cells" / "0")
    np.testing.assert_array_equal(cells.levels[0][0, :16, :16].compute(), original[...])


def test_a_plate_layer_with_other_layers_is_saved_as_images(make_napari_viewer, tmp_path, plate):
    viewer = make_napari_viewer()
    layers = viewer.open(str(plate), plugin=PLUGIN)
    viewer.add_image(np.zeros((4, 4), dtype=np.uint8), name="other")
    out = tmp_path / "mixed.ome.zarr"
    viewer.layers.save(str(out), selected=False, plugin=PLUGIN)
    images = read_ome_zarr(str(out), series="all")
    assert all(image.kind != "plate" for image in images)
    assert images[0].levels[0].shape[-2:] == layers[1].data[0].shape[-2:]


def test_broken_well_is_reported_not_crashed(make_napari_viewer, plate):
    from napari_omezarr_x.errors import OmeZarrXError

    viewer = make_napari_viewer()
    viewer.open(str(plate), plugin=PLUGIN)
    browser = _browser(viewer)
    shutil.rmtree(plate / "B" / "3")
    browser.well = browser.plate.well_at(1, 2)
    assert browser.open_well() == []
    assert not browser._opened
    with pytest.raises(OmeZarrXError):
        read_ome_zarr(str(plate), within="B/3")
