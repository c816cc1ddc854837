"""The npe2 reader in napari: what it declines, what it opens, and how it opens it."""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from npe2 import PluginManager

from http_helpers import serve
from napari_omezarr_x._napari import reader
from napari_omezarr_x._napari.reader import get_reader, read_layers, register_default_reader
from napari_omezarr_x.errors import NgffComplianceWarning
from ngff_fixtures import record_reads, write_image

PLUGIN = "napari-omezarr-x"
CHANNELS = [
    {"label": "DAPI", "color": "0000FF", "window": {"start": 1, "end": 90, "min": 0, "max": 500}},
    {"label": "GFP", "color": "00FF00", "active": False},
]
LABELS = {
    "cells": {"colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}], "version": "0.4"},
}


def cells(tmp_path: Path, version: str, name: str = "cells.ome.zarr") -> Path:
    """A 2-channel tczyx image with a label image, written with zarr directly."""
    return write_image(tmp_path / name, version, channels=CHANNELS, labels=LABELS)


@pytest.fixture
def not_ours(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    kind = request.param
    if kind == "tif":
        path = tmp_path / "image.tif"
        tifffile.imwrite(path, np.zeros((4, 4), np.uint8))
    elif kind == "empty dir":
        path = tmp_path / "empty.zarr"
        path.mkdir()
    elif kind.startswith("plain zarr"):
        path = tmp_path / "plain.zarr"
        group = zarr.open_group(path, mode="w", zarr_format=int(kind[-1]))
        group.create_array("a", shape=(4, 4), dtype="uint8")
        group.attrs["something"] = "else"
    elif kind == "text":
        path = tmp_path / "notes.zarr"
        path.write_text("not a store")
    else:
        path = tmp_path / "missing.ome.zarr"
    return str(path)


@pytest.mark.parametrize(
    "not_ours",
    ["tif", "empty dir", "plain zarr v2", "plain zarr v3", "text", "missing"],
    indirect=True,
)
def test_declines_quietly(not_ours, recwarn, capsys):
    assert get_reader(not_ours) is None
    assert get_reader([not_ours]) is None
    assert not recwarn.list
    assert capsys.readouterr() == ("", "")


def _candidates(path: str) -> set[str]:
    """Plugins napari would consider for `path` (by manifest patterns; folders: all)."""
    manager = PluginManager.instance()
    manager.discover()
    return {r.plugin_name for r in manager.iter_compatible_readers([path])}


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("http://host/data/image.ome.zarr", True),
        ("https://host/data/image.zarr/", True),
        ("https://host/plate.zarr/A/1/0", True),
        ("https://host/image.ozx", True),
        ("https://host/image.tif", False),
        ("store.zip", True),
        ("store.ozx", True),
        ("image.tif", False),
    ],
)
def test_filename_patterns_reach_reader(tmp_path, name, ours):
    path = name if "://" in name else str(tmp_path / name)
    if "://" not in name:
        Path(path).write_bytes(b"")
    assert (PLUGIN in _candidates(path)) == ours


def test_any_folder_reaches_reader(tmp_path):
    assert PLUGIN in _candidates(str(cells(tmp_path, "0.5", "no-suffix-folder")))


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_list_of_paths(tmp_path, version):
    a = cells(tmp_path, version, "a.ome.zarr")
    b = cells(tmp_path, version, "b.zarr")
    tif = tmp_path / "x.tif"
    tifffile.imwrite(tif, np.zeros((2, 2), np.uint8))
    assert get_reader([str(a), str(tif)]) is None
    func = get_reader([str(a), str(b)])
    assert func is not None
    stores = {meta["metadata"]["omezarr"]["store"] for _, meta, _ in func([str(a), str(b)])}
    assert stores == {str(a), str(b)}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_open_in_viewer(make_napari_viewer, tmp_path, version):
    path = cells(tmp_path, version)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert [(type(lay).__name__, lay.name) for lay in layers] == [
        ("Image", "image: DAPI"),
        ("Image", "image: GFP"),
        ("Labels", "cells"),
    ]
    dapi, gfp, labels = layers
    assert dapi.multiscale
    assert dapi.data[0].shape == (1, 3, 8, 8)
    assert dapi.colormap.colors[-1].tolist() == [0, 0, 1, 1]
    assert dapi.contrast_limits == [1, 90]
    assert dapi.contrast_limits_range == [0, 500]  # window min/max, applied on insertion
    assert not gfp.visible
    assert tuple(dapi.scale) == (1.0, 1.0, 0.5, 0.5)
    assert dapi.axis_labels == ("t", "z", "y", "x")
    assert [str(u) for u in dapi.units] == ["second", "micrometer", "micrometer", "micrometer"]
    assert labels.colormap.map(1).tolist() == [1, 0, 0, 1]
    assert labels.colormap.map(2)[3] == 1  # unlisted labels stay visible
    assert labels.metadata["omezarr"]["kind"] == "labels"
    assert dapi.metadata["omezarr"] == {
        "store": str(path),
        "path": "",
        "version": version,
        "channel_index": 0,
        "channel": CHANNELS[0],
        "image_name": "image",
        "kind": "image",
        "rdefs": None,
    }


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("windows", [True, False], ids=["windows", "no-windows"])
def test_chunk_reads_at_open(tmp_path, monkeypatch, version, windows):
    """With windows no pixel is read; without, only the smallest level is."""
    channels = [{"label": "a", "window": {"start": 0, "end": 9}}] * 2 if windows else None
    path = write_image(
        tmp_path / "c.zarr", version, shape=(1, 2, 2, 32, 32), levels=3, channels=channels
    )
    keys = record_reads(monkeypatch)
    layers = read_layers(str(path))
    assert len(layers) == 2
    metadata = ("zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata")
    # Chunk files read without zarr are recorded by their paths: keep the key.
    chunks = {k.split(f"{path}/")[-1] for k in keys if not k.endswith(metadata)}
    if windows:
        assert chunks == set()
    else:
        assert chunks
        assert {k.split("/")[0] for k in chunks} == {"2"}


@pytest.fixture
def http_url(corpus_dir):
    with serve(corpus_dir) as url:
        yield url


def test_open_url(make_napari_viewer, http_url, corpus_dir):
    name = "zarr-java_ome_v0.5.zarr"
    local = read_layers(str(corpus_dir / name))
    viewer = make_napari_viewer()
    for url in (f"{http_url}/{name}", f"{http_url}/{name}/"):
        viewer.layers.clear()
        assert get_reader(url) is not None
        remote = viewer.open(url, plugin=PLUGIN)
        assert [lay.name for lay in remote] == [meta["name"] for _, meta, _ in local]
        for layer, (data, _, kind) in zip(remote, local, strict=True):
            assert layer._type_string == kind
            smallest = layer.data[-1] if layer.multiscale else layer.data
            expected = data[-1] if isinstance(data, list) else data
            np.testing.assert_array_equal(np.asarray(smallest), np.asarray(expected))
            assert layer.metadata["omezarr"]["store"].rstrip("/") == url.rstrip("/")


def test_open_zip(make_napari_viewer, tmp_path, corpus_dir):
    folder = cells(tmp_path, "0.5")
    archive = shutil.make_archive(str(tmp_path / "cells"), "zip", root_dir=folder)
    ozx = Path(archive).rename(tmp_path / "cells.ozx")
    viewer = make_napari_viewer()
    for path in (ozx, corpus_dir / "neuroglancer_ngff-zarr_simple_0.5.zip"):
        assert get_reader(str(path)) is not None
        layers = viewer.open(str(path), plugin=PLUGIN)
        assert layers
        assert all(lay.metadata["omezarr"]["store"] == str(path) for lay in layers)
    assert [lay.name for lay in viewer.layers][:3] == ["image: DAPI", "image: GFP", "cells"]


def test_malformed_store_error_names_path(make_napari_viewer, tmp_path):
    path = cells(tmp_path, "0.4", "broken.ome.zarr")
    shutil.rmtree(path / "0")
    func = get_reader(str(path))
    assert func is not None
    with pytest.raises(Exception, match=r"broken\.ome\.zarr") as info:
        func(str(path))
    assert "missing" in str(info.value)
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match=r"broken\.ome\.zarr"):
        viewer.open(str(path), plugin=PLUGIN)
    assert len(viewer.layers) == 0


def test_broken_label_warns_image_still_opens(make_napari_viewer, tmp_path):
    path = cells(tmp_path, "0.5")
    shutil.rmtree(path / "labels" / "cells" / "0")
    viewer = make_napari_viewer()
    with pytest.warns(NgffComplianceWarning, match="cells"):
        layers = viewer.open(str(path), plugin=PLUGIN)
    assert [lay.name for lay in layers] == ["image: DAPI", "image: GFP"]


# --- drag and drop --------------------------------------------------------------


@pytest.fixture
def fresh_preferences(monkeypatch, tmp_path):
    """No reader preference yet, and only napari's builtins and this plugin as readers."""
    from napari.plugins import _npe2
    from napari.settings import get_settings

    plugins = get_settings().plugins
    monkeypatch.setattr(plugins, "extension2reader", {})
    monkeypatch.setattr(reader, "_marker_path", lambda: tmp_path / "marker.json")
    get_readers = _npe2.get_readers

    def napari_and_us(path=None):
        return {k: v for k, v in get_readers(path).items() if k in ("napari", PLUGIN)}

    monkeypatch.setattr(_npe2, "get_readers", napari_and_us)
    return plugins


def test_drop_zarr_folder(make_napari_viewer, fresh_preferences, corpus_dir, tmp_path, monkeypatch):
    from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog

    offered: list[list[str]] = []

    def choose(dialog):
        options = sorted(b.text() for b in dialog.reader_btn_group.buttons())
        offered.append(options)
        return ("OME-Zarr X" if "OME-Zarr X" in options else options[0]), False

    monkeypatch.setattr(QtReaderDialog, "get_user_choices", choose)
    viewer = make_napari_viewer()
    drop = viewer.window._qt_viewer._qt_open  # what napari's dropEvent calls

    # first drop ever: napari asks which of the two readers to use
    drop([str(corpus_dir / "fiji-java_2d_dataset_v4.ome.zarr")], stack=False)
    assert offered == [["OME-Zarr X", "napari builtins"]]
    assert [lay.name for lay in viewer.layers] == ["image"]
    assert fresh_preferences.extension2reader["*.zarr/"] == PLUGIN

    # from then on any .zarr folder opens directly with our layers
    drop([str(corpus_dir / "zarr-java_ome_v0.5.zarr")], stack=False)
    assert len(offered) == 1
    assert [type(lay).__name__ for lay in viewer.layers[1:]] == ["Image", "Image", "Labels"]
    assert viewer.layers[-1].metadata["omezarr"]["kind"] == "labels"

    # a .zarr folder that is not OME-Zarr: we decline and napari offers the other readers
    plain = zarr.open_array(tmp_path / "plain.zarr", mode="w", shape=(4, 4), dtype="uint8")
    plain[:] = 7
    drop([str(tmp_path / "plain.zarr")], stack=False)
    assert offered[1:] == [["napari builtins"]]
    assert viewer.layers[-1].data.shape == (4, 4)


def test_preference_respects_user_choice(fresh_preferences):
    fresh_preferences.extension2reader = {"*.zarr/": "napari"}
    assert register_default_reader() == []
    assert fresh_preferences.extension2reader == {"*.zarr/": "napari"}


def test_removed_preference_is_not_set_again(fresh_preferences):
    assert register_default_reader() == list(reader.DEFAULT_PREFERENCES)
    fresh_preferences.extension2reader = {}
    assert register_default_reader() == []
    assert fresh_preferences.extension2reader == {}


def test_preference_registered_on_activation(fresh_preferences):
    manifest = PluginManager.instance().get_manifest(PLUGIN)
    assert manifest.on_activate == "napari_omezarr_x._napari.reader:activate"
    reader.activate()
    assert fresh_preferences.extension2reader == dict.fromkeys(reader.DEFAULT_PREFERENCES, PLUGIN)


def _corrupt(chunk: Path) -> None:
    chunk.write_bytes(np.random.default_rng(9).bytes(chunk.stat().st_size))


@pytest.fixture
def broken_stores(tmp_path: Path) -> dict[str, Path]:
    """A pyramid whose smallest level (read first) has a corrupt chunk, and a single-level
    two-channel image whose first channel's displayed plane has one."""
    from napari_omezarr_x.model import Channel
    from napari_omezarr_x.write import write_image as write

    rng = np.random.default_rng(2)
    pyramid = tmp_path / "pyramid.ome.zarr"
    write(pyramid, rng.integers(0, 999, (4, 256, 256), dtype=np.uint16), axes="zyx",
          chunks=(1, 64, 64), levels=3)  # fmt: skip
    _corrupt(next(p for p in sorted((pyramid / "2" / "c").rglob("*")) if p.is_file()))
    plane = tmp_path / "plane.ome.zarr"
    channels = [Channel(label="dna", start=0, end=999), Channel(label="actin", start=0, end=999)]
    write(plane, rng.integers(0, 999, (2, 128, 128), dtype=np.uint16), axes="cyx",
          chunks=(1, 64, 64), levels=1, channels=channels)  # fmt: skip
    _corrupt(plane / "0" / "c" / "0" / "0" / "0")
    return {"pyramid": pyramid, "plane": plane}


def _error_messages() -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [
        n.message for n in notification_manager.records if n.severity == NotificationSeverity.ERROR
    ]


@pytest.mark.parametrize("which", ["pyramid", "plane"])
def test_corrupt_first_plane_at_start_up_keeps_the_window(
    make_napari_viewer, qtbot, broken_stores, which
):
    """`napari broken.ome.zarr` opens as napari's main does: a viewer not yet shown, then
    `_qt_open`. A corrupt chunk in the first plane read used to raise out of it (napari
    exited 1); now the layer is added, the unreadable region drawn blank (guard.py), and a
    notification names the array and the chunk once the window is up."""
    path = broken_stores[which]
    viewer = make_napari_viewer()
    before = len(_error_messages())
    with pytest.warns(NgffComplianceWarning) if which == "pyramid" else nullcontext():
        viewer.window._qt_viewer._qt_open([str(path)], stack=False, plugin=PLUGIN)
    assert not _error_messages()[before:]  # waits for the window, which napari shows next
    viewer.window.show()
    layers = list(viewer.layers)
    if which == "pyramid":
        assert [(layer.name, layer.visible) for layer in layers] == [("pyramid", True)]
        array = f"{path}/2"
    else:
        assert [(layer.name, layer.visible) for layer in layers] == [
            ("plane: dna", True), ("plane: actin", True)
        ]  # fmt: skip
        array = f"{path}/0"
        assert int(layers[1]._slice.image.raw.max()) > 0  # the readable channel shows
    qtbot.waitUntil(lambda: len(_error_messages()) > before, timeout=5000)
    (message,) = _error_messages()[before:]
    assert message.startswith(f"{layers[0].name}: shown blank, the data could not be read")
    assert f"{array}: cannot read region" in message
    assert "(chunk c/0/0/0)" in message
    assert all("reveal" not in key for key in layers[0].metadata["omezarr"])


@pytest.mark.parametrize("where", ["labels", "labels/cells"])
def test_opening_labels_brings_their_image(make_napari_viewer, tmp_path, monkeypatch, where):
    path = cells(tmp_path, "0.5")
    viewer = make_napari_viewer()
    layers = viewer.open(str(path / where), plugin=PLUGIN)
    assert [(type(layer).__name__, layer.name) for layer in layers] == [
        ("Image", "image: DAPI"), ("Image", "image: GFP"), ("Labels", "cells")
    ]  # fmt: skip
    viewer.layers.clear()
    monkeypatch.setenv(reader.LABELS_ONLY_ENV, "1")
    layers = viewer.open(str(path / where), plugin=PLUGIN)
    assert [(type(layer).__name__, layer.name) for layer in layers] == [("Labels", "cells")]


@pytest.mark.parametrize("show", [False, True], ids=["headless", "shown"])
def test_large_label_values_with_thousands_of_colours_open(make_napari_viewer, tmp_path, show):
    """uint32 labels up to 2**32 - 1 with a colour listed for each of ~3000 values: napari's
    numpy colormap path refuses keys above 65535 ("Please install numba")."""
    from napari_omezarr_x.write import write_labels

    rng = np.random.default_rng(0)
    values = np.unique(rng.integers(70_000, 2**32 - 1, 3000, dtype=np.uint64)).astype(np.uint32)
    values[-1] = 2**32 - 1
    data = values[rng.integers(0, len(values), (128, 128))]
    data[:, :16] = 0
    colors = {int(v): (1.0, 0.0, 0.0, 1.0) for v in values}  # every listed label red
    path = write_labels(tmp_path / "big.ome.zarr", data, colors=colors)
    viewer = make_napari_viewer(show=show)
    (layer,) = viewer.open(path, plugin=PLUGIN)
    assert layer.colormap.map(np.array([2**32 - 1], np.uint32)).tolist() == [[1, 0, 0, 1]]
    texture = np.asarray(layer._slice.image.view)
    assert texture.shape == (128, 128)
    assert len(np.unique(texture[:, 16:])) == 1  # one colour for every listed label
    if show:
        shot = viewer.screenshot(canvas_only=True, flash=False)
        # listed red at napari's labels opacity (0.7) over black
        red = (shot[..., 0] > 100) & (shot[..., 1] < 30) & (shot[..., 2] < 30)
        assert red.mean() > 0.3
