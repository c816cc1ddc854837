"""Saving through napari: viewer.layers.save with this plugin, read back by us,
ome-zarr-models, ome-zarr-py and napari-ome-zarr."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import ome_zarr_models
import pytest

from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.write import write_image

PLUGIN = "napari-omezarr-x"


def digest(path: Path, skip: str) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if not rel.startswith(skip):
            h.update(rel.encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (6, 48, 64), dtype=np.uint8)


def _rgba(colormap, value: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(colormap.map(np.array([value])))[0])


def test_save_images_and_labels_selection(make_napari_viewer, tmp_path, volume):
    viewer = make_napari_viewer()
    geometry = {"scale": (2, 0.5, 0.5), "units": "micrometer", "axis_labels": ("z", "y", "x")}
    viewer.add_image(volume, name="dna", colormap="blue", contrast_limits=(5, 200), **geometry)
    viewer.add_image(volume // 2, name="actin", colormap="green", visible=False, **geometry)
    viewer.add_image(volume[0, :20, :30], name="thumb")
    seg = (volume > 200).astype(np.int32) * 3
    labels = viewer.add_labels(
        seg, name="cells", features={"index": [3], "area": [12.5]}, **geometry
    )
    target = tmp_path / "saved"

    written = viewer.layers.save(str(target), plugin=PLUGIN)

    store = tmp_path / "saved.ome.zarr"
    assert written == [str(store), str(store / "thumb"), str(store / "labels" / "cells")]
    ome_zarr_models.open_ome_zarr(str(store))
    ome_zarr_models.open_ome_zarr(str(store / "thumb"))
    root, thumb = read_ome_zarr(str(store))[:2]
    assert [a.name for a in root.axes] == ["c", "z", "y", "x"]
    assert root.scale == pytest.approx((1, 2, 0.5, 0.5))
    assert [a.unit for a in root.axes] == [None, "micrometer", "micrometer", "micrometer"]
    np.testing.assert_array_equal(np.asarray(root.levels[0])[1], volume // 2)
    assert [c.label for c in root.channels] == ["dna", "actin"]
    assert [c.color.upper().lstrip("#") for c in root.channels] == ["0000FF", "00FF00"]
    assert (root.channels[0].start, root.channels[0].end) == (5, 200)
    assert [c.active for c in root.channels] == [True, False]
    assert thumb.path == "thumb"
    np.testing.assert_array_equal(np.asarray(thumb.levels[0]), volume[0, :20, :30])

    (label,) = root.labels
    np.testing.assert_array_equal(np.asarray(label.levels[0]), seg)
    assert label.label.colors[3] == pytest.approx(_rgba(labels.colormap, 3), abs=1 / 255)
    by_value = {p["label-value"]: p for p in label.label.properties}
    assert by_value[3] == {"label-value": 3, "area": 12.5}

    # Other tools open it with the same shapes, scales, names and label colours.
    from napari_ome_zarr._reader import napari_get_reader
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    nodes = list(Reader(parse_url(str(store)))())
    assert nodes[0].metadata["channel_names"] == ["dna", "actin"]
    assert [d.shape for d in nodes[0].data] == [tuple(lv.shape) for lv in root.levels]
    layers = napari_get_reader(str(store))(str(store))
    image_meta = next(m for _, m, t in layers if t == "image")
    assert list(image_meta["scale"]) == pytest.approx([2, 0.5, 0.5])
    assert image_meta["contrast_limits"][0] == [5, 200]
    label_meta = next(m for _, m, t in layers if t == "labels")
    assert label_meta["colormap"][3] == pytest.approx(_rgba(labels.colormap, 3), abs=1 / 255)


def test_save_labels_alone_is_a_label_image(make_napari_viewer, tmp_path, volume):
    viewer = make_napari_viewer()
    viewer.add_labels((volume > 100).astype(np.uint16), name="mask")
    written = viewer.layers.save(str(tmp_path / "mask.zarr"), plugin=PLUGIN)
    assert written == [str(tmp_path / "mask.zarr")]
    model = ome_zarr_models.open_ome_zarr(str(tmp_path / "mask.zarr"))
    assert type(model).__name__ == "ImageLabel"
    (image,) = read_ome_zarr(str(tmp_path / "mask.zarr"))
    np.testing.assert_array_equal(np.asarray(image.levels[0]), volume > 100)
    # Saving it again replaces that label image (it is no image to add labels to).
    viewer.layers["mask"].data = (volume > 10).astype(np.uint16)
    viewer.layers.save(str(tmp_path / "mask.zarr"), plugin=PLUGIN)
    (image,) = read_ome_zarr(str(tmp_path / "mask.zarr"))
    np.testing.assert_array_equal(np.asarray(image.levels[0]), volume > 10)
    assert not (tmp_path / "mask.zarr" / "labels").exists()


def test_save_labels_onto_existing_image_adds_them(make_napari_viewer, tmp_path, volume):
    store = tmp_path / "img.ome.zarr"
    write_image(store, volume, scale=(3, 1, 1), chunks=(1, 32, 32))
    write_before = digest(store, skip="labels")
    viewer = make_napari_viewer()
    viewer.add_labels((volume > 50).astype(np.uint8), name="a")
    viewer.add_labels((volume > 150).astype(np.uint8), name="b")
    viewer.layers.save(str(store), plugin=PLUGIN)
    b_before = digest(store / "labels" / "b", skip="-")

    viewer.layers.selection = {viewer.layers["a"]}
    viewer.layers["a"].data = (volume > 80).astype(np.uint8)
    written = viewer.layers.save(str(store), selected=True, plugin=PLUGIN)

    assert written == [str(store / "labels" / "a")]
    assert digest(store, skip="labels") == write_before
    assert digest(store / "labels" / "b", skip="-") == b_before
    (image,) = read_ome_zarr(str(store))
    assert sorted(lab.name for lab in image.labels) == ["a", "b"]
    a = next(lab for lab in image.labels if lab.name == "a")
    np.testing.assert_array_equal(np.asarray(a.levels[0]), volume > 80)
    assert a.scale == pytest.approx((3, 1, 1))
    ome_zarr_models.open_ome_zarr(str(store))


def test_multiscale_layer_keeps_its_levels(make_napari_viewer, tmp_path):
    level0 = np.random.default_rng(1).integers(0, 9, (128, 128), dtype=np.uint16)
    level1 = np.full((64, 64), 5, np.uint16)
    viewer = make_napari_viewer()
    viewer.add_image([level0, level1], multiscale=True, name="pyr", contrast_limits=(0, 9))
    written = viewer.layers.save(str(tmp_path / "pyr"), plugin=PLUGIN)
    assert written == [str(tmp_path / "pyr.ome.zarr")]
    (image,) = read_ome_zarr(written[0])
    assert len(image.levels) == 2
    np.testing.assert_array_equal(np.asarray(image.levels[1]), level1)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_open_then_save_keeps_metadata(make_napari_viewer, tmp_path, version):
    from napari_omezarr_x.model import Channel
    from napari_omezarr_x.write import add_labels

    rng = np.random.default_rng(3)
    data = rng.integers(0, 4000, (2, 4, 96, 64), dtype=np.uint16)
    source = tmp_path / "src.ome.zarr"
    channels = [
        Channel(label="a", color="FF0000", start=10, end=1000, min=0, max=4000),
        Channel(label="b", color="00FF00", start=5, end=3000, min=0, max=4000, active=False,
                raw={"family": "linear", "coefficient": 1.0}),
    ]  # fmt: skip
    write_image(
        source, data, axes="czyx", units=(None, "micrometer", "micrometer", "micrometer"),
        scale=(1, 2, 0.5, 0.5), translate=(0, 1, 2, 3), name="cells", channels=channels,
        version=version, chunks=(1, 1, 32, 32),
    )  # fmt: skip
    add_labels(source, (data[0] > 3500).astype(np.uint8) * 7, "mask", colors={7: (1, 0, 1, 1)},
               properties=[{"label-value": 7, "kind": "x"}])  # fmt: skip
    viewer = make_napari_viewer()
    viewer.open(str(source), plugin=PLUGIN)
    written = viewer.layers.save(str(tmp_path / "copy"), plugin=PLUGIN)

    assert written == [str(tmp_path / "copy.ome.zarr"), str(tmp_path / "copy.ome.zarr/labels/mask")]
    before, after = read_ome_zarr(str(source))[0], read_ome_zarr(written[0])[0]
    assert after.version == version
    for field in ("name", "scale", "translate", "axes"):
        assert getattr(after, field) == getattr(before, field)
    assert [c.raw for c in after.channels] == [c.raw for c in before.channels]
    assert [lv.shape for lv in after.levels] == [lv.shape for lv in before.levels]
    np.testing.assert_array_equal(np.asarray(after.levels[1]), np.asarray(before.levels[1]))
    (lab_before,), (lab_after,) = before.labels, after.labels
    assert lab_after.label.colors == lab_before.label.colors
    assert lab_after.label.properties == lab_before.label.properties


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_greyscale_rendering_opens_grey_and_is_kept(make_napari_viewer, tmp_path, version):
    import json

    from napari_omezarr_x.model import Channel

    source = tmp_path / "grey.ome.zarr"
    channels = [Channel(label="a", color="FF0000", start=0, end=200),
                Channel(label="b", color="00FF00", start=0, end=100)]  # fmt: skip
    data = np.random.default_rng(4).integers(0, 255, (2, 32, 32), dtype=np.uint8)
    write_image(source, data, axes="cyx", channels=channels, version=version)
    doc = source / ("zarr.json" if version == "0.5" else ".zattrs")
    attrs = json.loads(doc.read_text())
    omero = (attrs["attributes"]["ome"] if version == "0.5" else attrs)["omero"]
    omero["rdefs"] = {"model": "greyscale", "defaultZ": 0}
    doc.write_text(json.dumps(attrs))

    viewer = make_napari_viewer()
    layers = viewer.open(str(source), plugin=PLUGIN)
    assert [layer.colormap.colors[-1].tolist() for layer in layers] == [[1, 1, 1, 1]] * 2
    written = viewer.layers.save(str(tmp_path / "copy.ome.zarr"), plugin=PLUGIN)
    (copy,) = read_ome_zarr(written[0])
    assert copy.attrs["omero"]["rdefs"] == {"model": "greyscale", "defaultZ": 0}
    assert [c.color for c in copy.channels] == ["FF0000", "00FF00"]

    layers[1].colormap = "magenta"  # recoloured: no longer a greyscale rendering
    written = viewer.layers.save(str(tmp_path / "colour.ome.zarr"), plugin=PLUGIN)
    (colour,) = read_ome_zarr(written[0])
    assert colour.attrs["omero"]["rdefs"]["model"] == "color"
    assert [c.color for c in colour.channels] == ["FF0000", "FF00FF"]


@pytest.mark.parametrize("ndim", [2, 3])
def test_rgb_layer_axes_are_named_like_grey_images(make_napari_viewer, tmp_path, ndim):
    """napari's default axis labels ('-2', '-1') were written as axis names."""
    shape = (4,) * (ndim - 2) + (16, 24, 3)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros(shape, np.uint8), rgb=True, name="photo")
    (path,) = viewer.layers.save(str(tmp_path / "photo.ome.zarr"), plugin=PLUGIN)
    (image,) = read_ome_zarr(path)
    assert [a.name for a in image.axes] == ["c", *"zyx"[3 - ndim :]]
    assert [a.type for a in image.axes] == ["channel", *["space"] * ndim]


def test_layer_with_a_channel_axis_saves_one_omero_channel_per_channel(
    make_napari_viewer, tmp_path
):
    import dask.array as da

    from napari_omezarr_x.spec.validate import validate_store

    data = da.random.randint(0, 500, (2, 2, 3, 32, 32), chunks=(1, 1, 1, 32, 32)).astype("u2")
    viewer = make_napari_viewer()
    viewer.add_image(data, name="big5d", axis_labels=("t", "c", "z", "y", "x"),
                     colormap="green", contrast_limits=(0, 400))  # fmt: skip
    (path,) = viewer.layers.save(str(tmp_path / "big5d.ome.zarr"), plugin=PLUGIN)
    report = validate_store(path, strict=True)
    assert report.valid, [str(e) for e in report.errors]
    (image,) = read_ome_zarr(path)
    assert [(c.label, c.color, c.start, c.end) for c in image.channels] == [
        ("channel 0", "00FF00", 0, 400), ("channel 1", "00FF00", 0, 400)
    ]  # fmt: skip
    reopened = viewer.open(path, plugin=PLUGIN)
    assert [layer.name for layer in reopened] == ["big5d: channel 0", "big5d: channel 1"]


@pytest.mark.parametrize("labels", [("angle", "phase", "y", "x"), ("foo", "bar", "y", "x")])
def test_axes_of_no_known_type_are_refused(make_napari_viewer, tmp_path, labels):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 3, 8, 8), np.uint8), name="odd", axis_labels=labels)
    with pytest.raises(Exception, match="at most one axis that is not space, time or channel"):
        viewer.layers.save(str(tmp_path / "odd.ome.zarr"), plugin=PLUGIN)
    assert not (tmp_path / "odd.ome.zarr").exists()
    with pytest.raises(ValueError, match=f"'{labels[0]}' and '{labels[1]}' are none of these"):
        write_image(tmp_path / "odd.ome.zarr", np.zeros((2, 3, 8, 8), np.uint8), axes=labels)


def test_one_axis_of_no_known_type_gets_a_custom_type(tmp_path):
    """One custom axis is allowed (instead of a channel axis); untyped it would count as a
    fourth space axis for the schemas."""
    import ngff_zarr

    from napari_omezarr_x.spec.validate import validate_store

    path = tmp_path / "angle.ome.zarr"
    write_image(path, np.zeros((2, 3, 8, 8), np.uint8), axes=("angle", "z", "y", "x"))
    (image,) = read_ome_zarr(str(path))
    assert (image.axes[0].name, image.axes[0].type) == ("angle", "angle")
    assert validate_store(str(path), strict=True).valid
    ome_zarr_models.open_ome_zarr(str(path))
    ngff_zarr.from_ngff_zarr(str(path), validate=True)


def test_writer_errors_reach_the_user(make_napari_viewer, tmp_path, volume):
    """napari took the writer's ValueError for "no writer" and said only "'napari-omezarr-x'
    is not a valid writer"; the reason must be the error."""
    from napari_omezarr_x.errors import SaveError

    store = tmp_path / "img.ome.zarr"
    write_image(store, volume)
    before = digest(store, skip="-")
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((30, 30), np.uint8), name="x")
    with pytest.raises(SaveError, match=r"labels 'x' of shape \(30, 30\) do not fit the image"):
        viewer.layers.save(str(store), plugin=PLUGIN)
    assert digest(store, skip="-") == before


def test_names_survive_a_save(make_napari_viewer, tmp_path, volume):
    """Paths are sanitised (`labels/nuclei_edited`), names are not: NGFF allows any string
    in a multiscale `name`."""
    viewer = make_napari_viewer()
    viewer.add_image(volume, name="dna")
    viewer.add_labels((volume > 100).astype(np.uint8), name="nuclei edited")
    (root, label) = viewer.layers.save(str(tmp_path / "both.ome.zarr"), plugin=PLUGIN)
    assert label == str(tmp_path / "both.ome.zarr" / "labels" / "nuclei_edited")
    viewer.layers.clear()
    names = [layer.name for layer in viewer.open(root, plugin=PLUGIN)]
    assert names == ["dna", "nuclei edited"]

    # labels saved alone reopen with the layer's name, not the store's
    viewer.layers.clear()
    viewer.add_labels((volume > 100).astype(np.uint8), name="cells v2")
    (alone,) = viewer.layers.save(str(tmp_path / "store.ome.zarr"), plugin=PLUGIN)
    viewer.layers.clear()
    assert [layer.name for layer in viewer.open(alone, plugin=PLUGIN)] == ["cells v2"]

    # and labels added to an existing image keep theirs too
    viewer.layers.clear()
    viewer.add_labels((volume > 50).astype(np.uint8), name="my mask")
    (added,) = viewer.layers.save(root, plugin=PLUGIN)
    assert added.endswith("labels/my_mask")
    viewer.layers.clear()
    names = [layer.name for layer in viewer.open(root, plugin=PLUGIN)]
    assert sorted(names) == ["dna", "my mask", "nuclei edited"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_napari_colormaps_of_more_than_one_colour_are_kept(
    make_napari_viewer, tmp_path, volume, version
):
    from napari_omezarr_x._napari.image_layers import COLORMAP_KEY

    source = tmp_path / "src.ome.zarr"
    write_image(source, volume, version=version)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(source), plugin=PLUGIN)
    layer.colormap = "magma"
    (path,) = viewer.layers.save(str(tmp_path / "magma.ome.zarr"), plugin=PLUGIN)
    (image,) = read_ome_zarr(path)
    assert image.channels[0].raw[COLORMAP_KEY] == "magma"
    viewer.layers.clear()
    (layer,) = viewer.open(path, plugin=PLUGIN)
    assert layer.colormap.name == "magma"

    layer.colormap = "green"  # one colour again: the key goes, the colour says it all
    (path,) = viewer.layers.save(str(tmp_path / "green.ome.zarr"), plugin=PLUGIN)
    (image,) = read_ome_zarr(path)
    assert COLORMAP_KEY not in image.channels[0].raw
    assert image.channels[0].color == "00FF00"
