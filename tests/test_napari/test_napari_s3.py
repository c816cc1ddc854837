"""napari with object stores (a real S3 server on localhost): `viewer.open` with and
without `plugin=`, the command line's path (`napari s3://...`), File > IO Utilities >
Open OME-Zarr URL, saving layers to a bucket, and the Channel settings widget saving
to an S3 store (and refusing a read-only public one)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QInputDialog

from napari_omezarr_x import omero
from napari_omezarr_x._napari import open_url
from napari_omezarr_x._napari.reader import register_default_reader
from napari_omezarr_x.model import Channel
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.write import write_image
from s3_helpers import PRIVATE, PUBLIC

PLUGIN = "napari-omezarr-x"


def _data(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, size=(2, 64, 48), dtype=np.uint16)


@pytest.fixture
def s3_image(s3_env) -> str:
    url = f"s3://{PRIVATE}/napari/cells.ome.zarr"
    write_image(
        url,
        _data(),
        axes="cyx",
        name="cells",
        channels=[Channel(label="DNA", color="0000FF"), Channel(label="actin", color="00FF00")],
        overwrite=True,
    )
    return url


@pytest.fixture
def own_preferences(monkeypatch, tmp_path):
    """napari settings of the test's own (no reader chosen yet, no marker file)."""
    from napari.settings import get_settings

    from napari_omezarr_x._napari import reader

    plugins = get_settings().plugins
    monkeypatch.setattr(plugins, "extension2reader", {})
    monkeypatch.setattr(reader, "_marker_path", lambda: tmp_path / "marker.json")
    return plugins


def test_viewer_open_s3(make_napari_viewer, s3_image):
    viewer = make_napari_viewer()
    layers = viewer.open(s3_image, plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["cells: DNA", "cells: actin"]
    np.testing.assert_array_equal(np.asarray(layers[1].data), _data()[1])
    assert layers[0].metadata["omezarr"]["store"] == s3_image


def test_command_line_and_no_plugin_argument(make_napari_viewer, s3_image, own_preferences):
    """`napari URL` runs the viewer's `_qt_open`: with several zarr readers installed
    napari asks once; after our first use `.zarr` URLs are ours without asking."""
    viewer = make_napari_viewer()
    register_default_reader()
    viewer.window._qt_viewer._qt_open([s3_image], stack=False)
    assert [layer.name for layer in viewer.layers] == ["cells: DNA", "cells: actin"]
    # a URL no other reader's pattern matches opens with this plugin alone
    viewer.layers.clear()
    bare = s3_image.removesuffix(".ome.zarr")
    write_image(bare, _data(1), axes="cyx", overwrite=True)
    viewer.open(bare, plugin=None)
    assert len(viewer.layers) == 2


def test_open_url_menu(make_napari_viewer, s3_image, qtbot):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    app = get_app_model()
    assert "napari-omezarr-x.open_url" in app.commands
    items = app.menus.get_menu("napari/file/io_utilities")
    assert any(
        getattr(i, "command", None) and i.command.id == "napari-omezarr-x.open_url" for i in items
    )

    def answer() -> None:
        dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QInputDialog))
        dialog.setTextValue(s3_image)
        dialog.accept()

    QTimer.singleShot(200, answer)
    layers = open_url.open_url_dialog(viewer)
    assert [layer.name for layer in layers] == ["cells: DNA", "cells: actin"]
    assert open_url.open_url(viewer, f"s3://{PRIVATE}/napari/missing.zarr") == []


def test_save_layers_to_s3(make_napari_viewer, s3_env):
    import npe2

    viewer = make_napari_viewer()
    viewer.add_image(_data(2)[0], name="raw")
    viewer.add_labels((_data(3)[0] % 4).astype(np.uint8), name="cells")
    url = f"s3://{PRIVATE}/napari/saved"
    written = npe2.write(
        url, [lay.as_layer_data_tuple() for lay in viewer.layers], plugin_name=PLUGIN
    )
    assert written[0] == f"{url}.ome.zarr"
    (image,) = read_ome_zarr(f"{url}.ome.zarr")
    np.testing.assert_array_equal(image.levels[0].compute(), _data(2)[0])
    assert [lab.name for lab in image.labels] == ["cells"]


def test_widget_saves_channel_settings_to_s3(make_napari_viewer, s3_image):
    viewer = make_napari_viewer()
    viewer.open(s3_image, plugin=PLUGIN)
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Channel settings")
    assert widget.save_button.isEnabled()
    widget.rows[0].set_color("#ff00ff")
    widget.rows[1].set_label("membrane")
    assert widget.save() is True
    assert "Saved to zarr.json" in widget.status.text()
    channels = omero.read_channels(s3_image)
    assert [c.label for c in channels] == ["DNA", "membrane"]
    assert channels[0].color == "FF00FF"


def test_widget_on_read_only_public_store(make_napari_viewer, s3_server, s3_anon_env, tmp_path):
    folder = tmp_path / "pub.ome.zarr"
    write_image(folder, _data(), axes="cyx", channels=[Channel(label="a"), Channel(label="b")])
    url = s3_server.upload(folder, PUBLIC, "napari/pub.ome.zarr")
    s3_server.protect("napari/pub.ome.zarr")
    viewer = make_napari_viewer()
    viewer.open(url, plugin=PLUGIN)
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Channel settings")
    assert not widget.save_button.isEnabled()
    assert "cannot be written" in widget.status.text()
