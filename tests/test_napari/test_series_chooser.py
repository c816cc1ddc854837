"""Collections in a real viewer: the first series opens, the Series dock lists them all."""

from __future__ import annotations

import numpy as np
import pytest

from http_helpers import serve
from napari_omezarr_x._napari.series import SHOWN, SeriesChooser, human_size
from ngff_fixtures import write_collection

PLUGIN = "napari-omezarr-x"


def _chooser(viewer) -> SeriesChooser:
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Series")
    return widget


@pytest.mark.parametrize("where", ["folder", "http"])
def test_twenty_series_open_one_and_list_all(make_napari_viewer, tmp_path, where):
    path = write_collection(tmp_path / "twenty.zarr", "0.5", 20)
    viewer = make_napari_viewer()
    if where == "http":
        with serve(tmp_path, listable=False) as url:
            _check(viewer, f"{url}/twenty.zarr")
    else:
        _check(viewer, str(path))


def _check(viewer, source: str) -> None:
    layers = viewer.open(source, plugin=PLUGIN)
    # One series of two channels, not 20 x 2 layers on top of each other.
    assert [layer.name for layer in layers] == ["series 0: channel 0", "series 0: channel 1"]
    chooser = _chooser(viewer)
    table = chooser.table
    assert table.rowCount() == 20
    assert [table.item(r, 2).text() for r in range(20)] == [f"series {i}" for i in range(20)]
    assert table.item(0, 0).text() == SHOWN
    assert table.item(5, 0).text() == ""
    assert table.item(5, 3).text() == "1 x 2 x 1 x 16 x 16"
    assert table.item(5, 4).text() == "uint8"
    assert table.item(5, 5).text() == "512 B"
    added = chooser.add([5, 0])  # series 0 is shown already
    assert [layer.name for layer in added] == ["series 5: channel 0", "series 5: channel 1"]
    assert (np.asarray(added[0].data) == 6).all()
    assert table.item(5, 0).text() == SHOWN
    assert chooser.add([5]) == []  # not twice
    table.selectRow(7)
    chooser.add_button.click()
    assert viewer.layers[-1].name == "series 7: channel 1"


def test_chooser_without_collection_says_so(make_napari_viewer):
    viewer = make_napari_viewer()
    chooser = _chooser(viewer)
    assert chooser.table.rowCount() == 0
    assert "Open a collection" in chooser.message.text()
    assert human_size(3 * 2**30) == "3.0 GiB"
    assert human_size(None) == ""
