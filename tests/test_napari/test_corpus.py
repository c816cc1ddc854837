"""Every dataset of the shared corpus opens in napari with the layers its manifest implies.

Expected layer types, shapes and names are derived from each dataset's
manifest entry (images, axes, level shapes, omero channels, label names,
plate grid), written by tools other than ours.
"""

from __future__ import annotations

import re

import pytest
from napari.components import ViewerModel
from npe2 import PluginManager

from conftest import CORPUS_DATASETS
from napari_omezarr_x._napari import reader
from napari_omezarr_x.errors import NgffComplianceWarning

PLUGIN = "napari-omezarr-x"
RGB = ["FF0000", "00FF00", "0000FF"]


@pytest.fixture(scope="module")
def viewer() -> ViewerModel:
    """napari's viewer model (what `napari.Viewer` adds Qt to), shared by the module.

    `ViewerModel.open` is the very method `napari.Viewer.open` runs; without
    the Qt canvas each dataset costs a fraction of a second, so the whole
    corpus stays fast. test_napari_reader.py opens data in full Qt viewers.
    """
    PluginManager.instance().discover()
    return ViewerModel()


def _axis_names(image: dict) -> list[str]:
    axes = image["axes"]
    if isinstance(axes, dict):  # 0.6-dev coordinate systems: any system lists the axes
        axes = next(iter(axes.values()))
    if axes is None:  # NGFF 0.1/0.2: 5-D tczyx implied
        return ["t:time", "c:channel", "z:space", "y:space", "x:space"]
    return list(axes)


def _channel_axis(image: dict) -> int | None:
    for i, axis in enumerate(_axis_names(image)):
        name, _, kind = axis.partition(":")
        if kind.startswith("channel") or (not kind and name.lower() == "c"):
            return i
    return None


def _omero(ds: dict, group: str) -> list[dict]:
    for block in ds["channels_omero"]:
        if block["group"] == group:
            return block["channels"]
    return []


def _is_rgb(level: dict, c: int | None, channels: list[dict]) -> bool:
    """bioformats2raw RGB as the README documents it."""
    n = level["shape"][c] if c is not None else 0
    return (
        level["dtype"] == "|u1"
        and n in (3, 4)
        and len(channels) == n
        and [str(ch.get("color", "")).upper() for ch in channels[:3]] == RGB
        and all(ch.get("active", True) and not ch.get("inverted", False) for ch in channels)
        and all(ch.get("window") in (None, [0.0, 255.0]) for ch in channels)
    )


def _is_label_group(group: str) -> bool:
    parts = group.split("/")
    return len(parts) >= 2 and parts[-2] == "labels"


def expected_layers(ds: dict) -> list[tuple[str, tuple[int, ...], int | None, str | None]]:
    """(layer type, level-0 shape, level count, channel label or label name) per layer.

    The level count of a plate mosaic is the reader's choice (None here). A plate
    opens as a mosaic of its wells with every field on a leading `field` axis,
    plus a points layer naming the wells.
    """
    images = [im for im in ds["images"] if not _is_label_group(im["group"])]
    out = []
    grid = None
    if ds["plates"]:
        plate = ds["plates"][0]
        grid = (plate["n_rows"], plate["n_columns"])
        images = images[:1]
        out.append(("points", (len(plate["wells"]), 2), None, None))
    for image in images:
        level = image["levels"][0]
        shape = list(level["shape"])
        n_levels = None if grid else len(image["levels"])
        lead: tuple[int, ...] = ()
        if grid:
            shape[-2] *= grid[0]
            shape[-1] *= grid[1]
            lead = (max(len(well["images"]) for well in ds["wells"]),)
        c = _channel_axis(image)
        channels = _omero(ds, image["group"]) if not grid else []
        if c is None:
            out.append(("image", (*lead, *shape), n_levels, None))
        elif _is_rgb(level, c, channels):
            out.append(("image", (*lead, *shape[:c], *shape[c + 1 :], shape[c]), n_levels, None))
        else:
            rest = (*lead, *shape[:c], *shape[c + 1 :])
            for i in range(shape[c]):
                label = channels[i].get("label") if i < len(channels) else None
                out.append(("image", rest, n_levels, None if label is None else str(label)))
    for image in ds["images"]:
        if _is_label_group(image["group"]) and not grid:
            name = image["group"].split("/")[-1]
            shape = tuple(image["levels"][0]["shape"])
            out.append(("labels", shape, len(image["levels"]), name))
    return out


@pytest.mark.parametrize("ds", CORPUS_DATASETS, ids=lambda d: d["id"])
def test_corpus_dataset_opens(ds, viewer, corpus_dir):
    viewer.layers.clear()
    path = corpus_dir.parent.parent / ds["open_path"]  # open_path starts at shared/
    added = viewer.open(str(path), plugin=PLUGIN)
    got = [
        (
            layer._type_string,
            tuple(layer.data[0].shape if layer.multiscale else layer.data.shape),
            len(layer.data) if layer.multiscale else 1,
            re.sub(r" \[\d+\]$", "", layer.name),
        )
        for layer in added
    ]
    want = expected_layers(ds)
    assert sorted((t, s) for t, s, _, _ in got) == sorted((t, s) for t, s, _, _ in want)
    # every level of a multiscale image, largest first
    if not ds["plates"]:
        assert sorted((t, s, n) for t, s, n, _ in got) == sorted((t, s, n) for t, s, n, _ in want)
    for layer in added:
        if layer.multiscale:
            sizes = [level.size for level in layer.data]
            assert sizes == sorted(sizes, reverse=True)
    # names: a channel's label ends its layer's name; label layers carry the label name
    names = [n for *_, n in got]
    for kind, _, _, label in want:
        if label is None:
            continue
        if kind == "labels":
            assert label in names
        else:
            assert any(n == label or n.endswith(f": {label}") for n in names), (label, names)
    for layer in added:
        block = layer.metadata["omezarr"]
        assert block["store"].rstrip("/").endswith(path.name)
        assert block["kind"] in ("image", "labels", "plate", "well", "plate-wells")


def test_window_numbers_written_as_strings_set_contrast_limits(viewer, corpus_dir):
    """fractal's plate of ones quotes its windows ("0".."10"): without reading them the
    limits came from the data ([1, 2]) and the plate looked black."""
    viewer.layers.clear()
    with pytest.warns(NgffComplianceWarning, match="got strings"):
        added = viewer.open(str(corpus_dir / "fractal_plate_ones.zarr"), plugin=PLUGIN)
    added = [layer for layer in added if layer._type_string == "image"]  # not the well names
    assert [list(layer.contrast_limits) for layer in added] == [[0, 10], [0, 10]]
    reader.apply_contrast_range(added[0])
    assert list(added[0].contrast_limits_range) == [0, 10]


def test_rotation_out_of_the_2d_plane_is_explained(viewer, corpus_dir):
    """The 0.6-dev example rotates z into y: napari's 2D (y, x) view cannot show that and
    says so once on opening; the (z, y) plane, which the message points to, can."""
    viewer.layers.clear()
    viewer.dims.ndisplay = 2
    path = corpus_dir / "neuroglancer_0.6dev1_anisotropic_rotation.zarr"
    with pytest.warns(UserWarning, match="rotates z and y into each other") as record:
        (layer,) = viewer.open(str(path), plugin=PLUGIN)
    assert sum("cannot apply that rotation" in str(w.message) for w in record) == 1
    world_to_data = layer._data_to_world.inverse
    assert not layer._slice_input.is_orthogonal(world_to_data)
    viewer.dims.order = (2, 0, 1)  # show z and y, slice along x
    assert layer._slice_input.is_orthogonal(world_to_data)
    viewer.dims.order = (0, 1, 2)
