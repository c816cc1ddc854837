"""The Channel settings dock widget in a real viewer: two-way sync with the
layers, save to the source store, revert, and refusal on read-only stores."""

from __future__ import annotations

import errno
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from qtpy.QtCore import Qt

from http_helpers import serve
from napari_omezarr_x import omero
from napari_omezarr_x._napari.widget import ChannelSettingsWidget
from omero_helpers import (
    VERSIONS,
    array_hashes,
    attributes,
    make_image,
    metadata_doc,
    stored_omero,
    zip_store,
)

PLUGIN = "napari-omezarr-x"


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def image(tmp_path: Path, version: str) -> Path:
    return make_image(tmp_path / "cells.ome.zarr", version, n_channels=3)


@pytest.fixture
def image05(tmp_path: Path) -> Path:
    """For layer-sync behaviour, which does not depend on the file's version."""
    return make_image(tmp_path / "cells.ome.zarr", "0.5", n_channels=3)


def _open(viewer, source: str | Path) -> ChannelSettingsWidget:
    viewer.open(str(source), plugin=PLUGIN)
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Channel settings")
    return widget


def _end_color(layer, at: float = 1.0) -> np.ndarray:
    return np.asarray(layer.colormap.map(np.array([at])))[0, :3]


def _add_by_hand(viewer, image: Path, version: str, order: list[int]) -> list:
    """Channel layers as the reader makes them, added in `order`."""
    data = zarr.open_array(image / "0")[:]
    channels = omero.read_channels(image)
    for i in order:
        ch = channels[i]
        viewer.add_image(
            data[i],
            name=f"cells: {ch.label}",
            colormap=f"#{ch.color}",
            contrast_limits=(ch.start, ch.end),
            blending="additive",
            metadata={
                "omezarr": {
                    "store": str(image),
                    "path": "",
                    "version": version,
                    "channel_index": i,
                    "channel": ch.raw,
                    "image_name": "cells",
                    "kind": "image",
                }
            },
        )
    return [viewer.layers[f"cells: {channels[i].label}"] for i in range(len(channels))]


def test_shows_the_selected_images_channels_in_order(make_napari_viewer, image, version):
    viewer = make_napari_viewer()
    layers = _add_by_hand(viewer, image, version, order=[2, 0, 1])
    viewer.add_image(np.zeros((4, 4), "uint8"), name="other")
    widget = ChannelSettingsWidget(viewer)
    assert len(widget.rows) == 1  # "other" is selected: a single plain layer
    assert widget.save_button.isEnabled() is False
    assert "File > IO Utilities > Save as OME-Zarr..." in widget.status.text()

    viewer.layers.selection.active = layers[1]
    assert [row.layer for row in widget.rows] == layers
    assert [row.label.text() for row in widget.rows] == ["DAPI", "GFP", "mCherry"]
    assert widget.title.text().startswith("cells")
    assert widget.save_button.isEnabled()
    # The slider range is the file's window min/max, not napari's narrowed one.
    assert widget.rows[0].window.minimum() == 0
    assert widget.rows[0].window.maximum() == 255
    assert widget.rows[0].window.value() == (10, 200)

    viewer.layers.remove(layers[0])
    assert [row.layer for row in widget.rows] == layers[1:]
    viewer.add_labels(np.zeros((4, 4), "uint8"))
    assert widget.rows == []
    assert "Select an image layer" in widget.status.text()
    viewer.add_image(np.zeros((4, 4, 3), "uint8"), rgb=True)
    assert widget.rows == []
    assert "RGB layers" in widget.status.text()


def test_widget_edits_change_the_layers(make_napari_viewer, qtbot, image05):
    viewer = make_napari_viewer()
    widget = _open(viewer, image05)
    row = widget.rows[0]
    layer = row.layer
    assert layer.name == "cells: DAPI"

    row.set_color("#ff00ff")
    np.testing.assert_allclose(_end_color(layer, 1.0), [1, 0, 1])
    np.testing.assert_allclose(_end_color(layer, 0.0), [0, 0, 0])
    assert layer.metadata["omezarr"]["channel"]["color"] == "FF00FF"

    row.inverted.click()
    np.testing.assert_allclose(_end_color(layer, 0.0), [1, 0, 1])
    np.testing.assert_allclose(_end_color(layer, 1.0), [0, 0, 0])
    assert layer.metadata["omezarr"]["channel"]["inverted"] is True

    row.active.setChecked(False)
    assert layer.visible is False

    row.label.setFocus()
    row.label.selectAll()
    qtbot.keyClicks(row.label, "Hoechst")
    qtbot.keyClick(row.label, Qt.Key.Key_Return)
    assert layer.name == "cells: Hoechst"

    seen = []
    layer.events.contrast_limits.connect(lambda e: seen.append(tuple(layer.contrast_limits)))
    row.window.setValue((15.0, 120.0))
    assert tuple(layer.contrast_limits) == (15.0, 120.0)
    assert seen == [(15.0, 120.0)]  # one event, no feedback loop
    row.window.setRange(0.0, 4095.0)
    assert list(layer.contrast_limits_range) == [0.0, 4095.0]
    channel = layer.metadata["omezarr"]["channel"]
    assert channel["window"] == {"start": 15, "end": 120, "min": 0.0, "max": 4095}
    assert channel["label"] == "Hoechst"
    assert channel["family"] == "linear"
    assert channel["x-vendor"] == {"gain": 0}


def test_napari_controls_show_up_in_the_widget(make_napari_viewer, image05):
    viewer = make_napari_viewer()
    widget = _open(viewer, image05)
    row = widget.rows[1]
    layer = row.layer

    layer.contrast_limits = (30, 100)
    assert row.window.value() == (30, 100)
    layer.contrast_limits_range = (0, 1000)
    assert (row.window.minimum(), row.window.maximum()) == (0, 1000)
    layer.visible = False
    assert row.active.isChecked() is False
    layer.name = "cells: Tubulin"
    assert row.label.text() == "Tubulin"
    layer.colormap = "yellow"
    assert "#FFFF00" in row.color_button.styleSheet()
    layer.colormap = "gray_r"
    assert row.inverted.isChecked() is True
    assert row.channel()["color"] == "FFFFFF"


def test_save_then_reopen(make_napari_viewer, image, version):
    before_attrs = attributes(image, version)
    before_arrays = array_hashes(image)
    viewer = make_napari_viewer()
    widget = _open(viewer, image)
    widget.rows[0].set_color("#ffff00")
    widget.rows[1].layer.contrast_limits = (50, 60)
    widget.rows[2].set_label("Actin")
    widget.rows[2].layer.visible = False

    assert widget.save() is True
    assert "Saved" in widget.status.text()
    assert array_hashes(image) == before_arrays
    after = attributes(image, version)
    block = stored_omero(image, version)
    assert [c["label"] for c in block["channels"]] == ["DAPI", "GFP", "Actin"]
    assert block["channels"][0]["color"] == "FFFF00"
    assert block["channels"][1]["window"]["start"] == 50
    assert block["channels"][1]["window"]["end"] == 60
    assert block["channels"][2]["active"] is False
    assert block["rdefs"] == {"defaultT": 0, "defaultZ": 0, "model": "color"}
    assert all(c["family"] == "linear" and "x-vendor" in c for c in block["channels"])
    holder = before_attrs if version == "0.4" else before_attrs["ome"]
    holder["omero"] = block
    assert after == before_attrs

    viewer.layers.clear()
    widget = _open(viewer, image)
    assert [row.label.text() for row in widget.rows] == ["DAPI", "GFP", "Actin"]
    assert widget.rows[1].window.value() == (50, 60)
    np.testing.assert_allclose(_end_color(widget.rows[0].layer), [1, 1, 0])
    assert widget.rows[2].active.isChecked() is False


def test_revert_restores_the_file_settings(make_napari_viewer, image, version):
    before = metadata_doc(image, version).read_bytes()
    viewer = make_napari_viewer()
    widget = _open(viewer, image)
    row = widget.rows[0]
    row.set_color("#00ffff")
    row.layer.contrast_limits = (1, 2)
    row.layer.contrast_limits_range = (0, 10)
    row.set_label("changed")

    assert widget.revert() is True
    assert row.layer.name == "cells: DAPI"
    assert row.label.text() == "DAPI"
    np.testing.assert_allclose(_end_color(row.layer), [1, 0, 0])
    assert tuple(row.layer.contrast_limits) == (10, 200)
    assert list(row.layer.contrast_limits_range) == [0, 255]
    assert row.window.value() == (10, 200)
    assert metadata_doc(image, version).read_bytes() == before


@pytest.mark.parametrize("kind", ["zip", "http"])
def test_zip_and_http_stores_are_read_only(make_napari_viewer, image, version, tmp_path, kind):
    before = metadata_doc(image, version).read_bytes()
    zipped = zip_store(image, tmp_path / "cells.ozx")
    zip_bytes = zipped.read_bytes()
    viewer = make_napari_viewer()
    with serve(tmp_path) as base:
        source = zipped if kind == "zip" else f"{base}/{image.name}"
        widget = _open(viewer, source)
        assert len(widget.rows) == 3
        assert widget.save_button.isEnabled() is False
        assert ("zipped store" if kind == "zip" else "remote store") in widget.status.text()
        widget.rows[0].set_color("#123456")
        assert widget.save() is False
        assert "Not saved" in widget.status.text()
        assert widget.revert() is True  # reading is fine
        assert widget.rows[0].channel()["color"] == "FF0000"
    assert zipped.read_bytes() == zip_bytes
    assert metadata_doc(image, version).read_bytes() == before


def test_unwritable_folder_is_read_only(make_napari_viewer, image, version, monkeypatch):
    # Root ignores chmod: fail the write probe as a read-only mount does.
    before = metadata_doc(image, version).read_bytes()

    def read_only_mount(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system")

    viewer = make_napari_viewer()
    viewer.open(str(image), plugin=PLUGIN)
    monkeypatch.setattr(tempfile, "mkstemp", read_only_mount)
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Channel settings")
    assert widget.save_button.isEnabled() is False
    assert "Read-only file system" in widget.status.text()
    widget.rows[0].set_color("#123456")
    assert widget.save() is False
    monkeypatch.undo()
    assert metadata_doc(image, version).read_bytes() == before


def test_plain_layer_keeps_settings_on_the_layer(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.linspace(0, 1, 64, dtype="float32").reshape(8, 8), name="plain")
    widget = ChannelSettingsWidget(viewer)
    row = widget.rows[0]
    assert widget.save() is False
    assert widget.revert() is False
    row.set_color("#00ff00")
    row.window.setValue((0.25, 0.75))
    channel = layer.metadata["omezarr"]["channel"]
    assert channel["color"] == "00FF00"
    assert channel["label"] == "plain"
    assert channel["window"]["start"] == 0.25
    assert channel["window"]["end"] == 0.75
    assert not list(tmp_path.iterdir())


def test_single_channel_image_without_channel_axis(make_napari_viewer, tmp_path, version):
    image = tmp_path / "yx.ome.zarr"
    group = zarr.open_group(image, mode="w", zarr_format=2 if version == "0.4" else 3)
    scale = [{"type": "scale", "scale": [1, 1]}]
    ms = {
        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": scale}],
    }
    if version == "0.4":
        group.attrs.update({"multiscales": [{**ms, "version": "0.4"}]})
    else:
        group.attrs.update({"ome": {"version": "0.5", "multiscales": [ms]}})
    group.create_array("0", data=np.arange(64, dtype="uint16").reshape(8, 8), chunks=(4, 4))
    viewer = make_napari_viewer()
    widget = _open(viewer, image)
    assert len(widget.rows) == 1
    widget.rows[0].set_color("#ff8000")
    assert widget.save() is True
    assert stored_omero(image, version)["channels"][0]["color"] == "FF8000"
    shutil.rmtree(image / "0")  # arrays are not needed to read the settings back
    assert omero.read_channels(image)[0].color == "FF8000"


def test_closing_the_dock_leaves_napari_working(make_napari_viewer, qtbot, image05):
    viewer = make_napari_viewer()
    widget = _open(viewer, image05)
    layer = widget.rows[0].layer
    viewer.window.remove_dock_widget("all")
    with qtbot.waitSignal(widget.destroyed):
        widget.deleteLater()
    layer.contrast_limits = (3, 30)  # must not call into the deleted rows
    layer.name = "cells: renamed"
    viewer.layers.selection.active = viewer.layers[1]
    viewer.add_image(np.zeros((4, 4), "uint8"))
    assert tuple(layer.contrast_limits) == (3, 30)


def test_saved_colormap_name_follows_the_layer(make_napari_viewer, image05):
    """A napari colormap of more than one colour is saved by name; picking a colour in
    the widget makes the channel one colour again and drops the name."""
    from napari_omezarr_x._napari.image_layers import COLORMAP_KEY

    widget = _open(make_napari_viewer(), image05)
    row = widget.rows[0]
    row.layer.colormap = "magma"
    assert row.channel()[COLORMAP_KEY] == "magma"
    assert widget.save()
    assert stored_omero(image05, "0.5")["channels"][0][COLORMAP_KEY] == "magma"
    row.set_color("#00ff00")
    assert COLORMAP_KEY not in row.channel()
    assert widget.save()
    assert COLORMAP_KEY not in stored_omero(image05, "0.5")["channels"][0]
