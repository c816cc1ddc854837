"""The writer API: round trips through our reader, spec validity, labels, safety."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import ome_zarr_models
import pytest
import zarr

from napari_omezarr_x.errors import ReadOnlyStoreError, StoreAccessError, StoreExistsError
from napari_omezarr_x.model import Channel
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.write import (
    ImageSpec,
    LabelsSpec,
    add_labels,
    pyramid,
    write_image,
    write_labels,
    write_store,
)

VERSIONS = ["0.4", "0.5"]
AXES = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}


def tree_digest(path: Path, skip: str | None = None) -> str:
    """A hash of every file (name and bytes) under `path`, optionally skipping a subtree."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if skip and rel.startswith(skip):
            continue
        h.update(rel.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def level_factors(path: Path) -> list[tuple[int, ...]]:
    """Cumulative downsampling factors of every level, from the written scales."""
    datasets = _attrs(path)["multiscales"][0]["datasets"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in datasets]
    return [tuple(round(s / s0) for s, s0 in zip(sc, scales[0], strict=True)) for sc in scales]


def expected_levels(data: np.ndarray, factors, method: str) -> list[np.ndarray]:
    out = [data]
    for k in range(1, len(factors)):
        step = tuple(f // p for f, p in zip(factors[k], factors[k - 1], strict=True))
        out.append(pyramid.downsample_block(out[-1], step, method))
    return out


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("ndim", "dtype"), [(2, "uint8"), (3, "uint16"), (4, "int32"), (5, "float32")]
)
def test_image_round_trip(tmp_path, version, ndim, dtype):
    rng = np.random.default_rng(ndim)
    shape = {2: (70, 90), 3: (6, 70, 90), 4: (2, 6, 70, 90), 5: (2, 2, 5, 40, 50)}[ndim]
    data = (rng.random(shape) * 200).astype(dtype)
    axes = AXES[ndim]
    space_unit = "micrometer"
    units = [("second" if a == "t" else None if a == "c" else space_unit) for a in axes]
    scale = [0.5 + i for i in range(ndim)]
    translate = [float(i) - 1 for i in range(ndim)]
    channels = None
    if "c" in axes:
        channels = [
            Channel(label="dna", color="0000FF", start=1, end=150, min=0, max=200),
            Channel(label="actin", color="00FF00", active=False, raw={"family": "linear"}),
        ]
    path = tmp_path / "img.ome.zarr"
    out = write_image(
        path, data, axes=axes, units=units, scale=scale, translate=translate, name="demo",
        channels=channels, version=version, chunks=[1] * (ndim - 2) + [32, 32],
    )  # fmt: skip
    assert out == str(path)
    ome_zarr_models.open_ome_zarr(str(path))

    image = read_ome_zarr(str(path))[0]
    assert image.version == version
    assert image.name == "demo"
    assert [a.name for a in image.axes] == list(axes)
    assert [a.unit for a in image.axes] == units
    assert image.scale == pytest.approx(scale)
    assert image.translate == pytest.approx(translate)
    factors = level_factors(path)
    assert len(factors) == len(image.levels) > 1
    for got, want in zip(image.levels, expected_levels(data, factors, "mean"), strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)
    if channels:
        assert [c.label for c in image.channels] == ["dna", "actin"]
        assert next(c.color for c in image.channels).upper().lstrip("#") == "0000FF"
        assert (image.channels[0].start, image.channels[0].end) == (1, 150)
        assert [c.active for c in image.channels] == [True, False]
        assert image.channels[1].raw.get("family") == "linear"


@pytest.mark.parametrize("version", VERSIONS)
def test_level_transforms_keep_pixel_centres_aligned(tmp_path, version):
    data = np.zeros((8, 64, 64), np.uint8)
    path = tmp_path / "a.ome.zarr"
    write_image(path, data, scale=(2, 0.5, 0.5), translate=(10, 1, 1), version=version, levels=3)
    meta = _attrs(path)
    datasets = meta["multiscales"][0]["datasets"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in datasets]
    trans = [d["coordinateTransformations"][1]["translation"] for d in datasets]
    assert scales == [[2, 0.5, 0.5], [2, 1, 1], [2, 2, 2]]
    # Level k pixel 0 is centred on level-0 pixels 0..f-1: t0 + s0 * (f - 1) / 2.
    assert trans == [[10, 1, 1], [10, 1.25, 1.25], [10, 1.75, 1.75]]


def _attrs(path: Path) -> dict:
    if (path / "zarr.json").exists():
        return json.loads((path / "zarr.json").read_text())["attributes"]["ome"]
    return json.loads((path / ".zattrs").read_text())


@pytest.mark.parametrize("version", VERSIONS)
def test_labels_round_trip_and_add_labels_keeps_image(tmp_path, version):
    rng = np.random.default_rng(7)
    image = rng.integers(0, 1000, (2, 5, 60, 70), dtype=np.uint16)
    labels = rng.choice(np.array([0, 2, 5], np.uint32), size=(5, 60, 70))
    path = tmp_path / "cells.ome.zarr"
    write_image(
        path, image, axes="czyx", scale=(1, 3, 1, 1), version=version, chunks=(1, 1, 32, 32)
    )
    add_labels(path, labels[::-1].copy(), "other")
    before = tree_digest(path, skip="labels")
    other_before = tree_digest(path / "labels" / "other")

    colors = {0: (0, 0, 0, 0), 1: (1.0, 0.0, 0.0, 1.0), 3: (0.0, 0.0, 1.0, 1.0)}
    props = [{"label-value": 2, "area": 10.5, "class": "a"}, {"label-value": 5, "area": 3.0}]
    for attempt in range(2):  # the second save replaces the first
        out = add_labels(
            path,
            labels + attempt,
            "cells",
            colors=lambda v: [colors.get(int(x), (0, 1, 0, 1)) for x in v],
            properties=props,
        )
        assert out == str(path / "labels" / "cells")
    assert tree_digest(path, skip="labels") == before
    assert tree_digest(path / "labels" / "other") == other_before
    ome_zarr_models.open_ome_zarr(str(path))
    ome_zarr_models.open_ome_zarr(str(path / "labels" / "cells"))

    img = read_ome_zarr(str(path))[0]
    assert sorted(lab.name for lab in img.labels) == ["cells", "other"]
    lab = next(lab for lab in img.labels if lab.name == "cells")
    assert len(lab.levels) == len(img.levels)
    assert lab.scale == pytest.approx((3, 1, 1))
    np.testing.assert_array_equal(np.asarray(lab.levels[0]), labels + 1)
    factors = level_factors(path / "labels" / "cells")
    for got, want in zip(lab.levels, expected_levels(labels + 1, factors, "mode"), strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)
    # Colours of the values present (1, 3, 6), and of values with properties (2, 5).
    assert set(lab.label.colors) == {1, 3, 6} | {2, 5}
    assert lab.label.colors[1] == pytest.approx((1.0, 0.0, 0.0, 1.0))
    assert lab.label.colors[3] == pytest.approx((0.0, 0.0, 1.0, 1.0))
    assert lab.label.colors[6] == pytest.approx((0.0, 1.0, 0.0, 1.0))
    props_by_value = {p["label-value"]: p for p in lab.label.properties}
    assert props_by_value[2]["class"] == "a"
    assert props_by_value[5]["area"] == 3.0


@pytest.mark.parametrize("version", VERSIONS)
def test_labels_only_store_is_a_label_image(tmp_path, version):
    labels = np.zeros((40, 50), np.uint16)
    labels[5:20, 5:30] = 4
    path = tmp_path / "seg.ome.zarr"
    write_labels(path, labels, name="seg", colors={4: (0, 1, 0, 1)}, version=version)
    model = ome_zarr_models.open_ome_zarr(str(path))
    assert type(model).__name__ == "ImageLabel"
    image = read_ome_zarr(str(path))[0]
    assert image.label.colors == {4: pytest.approx((0.0, 1.0, 0.0, 1.0))}
    np.testing.assert_array_equal(np.asarray(image.levels[0]), labels)


def test_store_with_child_images_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (2, 40, 60), dtype=np.uint8)
    b = rng.integers(0, 255, (30, 30), dtype=np.uint8)
    lab = (a[0] > 128).astype(np.uint8)
    path = tmp_path / "multi.ome.zarr"
    written = write_store(
        path,
        [ImageSpec(a, axes="cyx"), ImageSpec(b, group="more/small", name="small")],
        [LabelsSpec(lab, "mask"), LabelsSpec(b > 3, "thr", image_group="more/small")],
    )
    assert written == [
        str(path),
        str(path / "more/small"),
        str(path / "labels/mask"),
        str(path / "more/small/labels/thr"),
    ]
    root, small = read_ome_zarr(str(path))[:2]
    assert [lab.name for lab in root.labels] == ["mask"]
    assert small.path == "more/small"
    np.testing.assert_array_equal(np.asarray(small.labels[0].levels[0]), b > 3)
    ome_zarr_models.open_ome_zarr(str(path / "more/small"))


def test_sharding_and_compression_options(tmp_path):
    data = np.arange(4 * 128 * 128, dtype=np.uint16).reshape(4, 128, 128)
    sharded = tmp_path / "sharded.ome.zarr"
    write_image(sharded, data, chunks=(1, 32, 32), shards=True)
    meta = json.loads((sharded / "0" / "zarr.json").read_text())
    assert meta["codecs"][0]["name"] == "sharding_indexed"
    assert meta["codecs"][0]["configuration"]["chunk_shape"] == [1, 32, 32]
    assert len(list((sharded / "0" / "c").rglob("*"))) < 4 * 16
    np.testing.assert_array_equal(np.asarray(read_ome_zarr(str(sharded))[0].levels[0]), data)
    for compression in ("gzip", None, "lz4"):
        path = tmp_path / f"{compression}.ome.zarr"
        write_image(path, data, compression=compression, version="0.4")
        np.testing.assert_array_equal(np.asarray(read_ome_zarr(str(path))[0].levels[0]), data)
    with pytest.raises(ValueError, match="zarr v3"):
        write_image(tmp_path / "x.ome.zarr", data, shards=True, version="0.4")


def test_multiscale_input_is_written_as_given(tmp_path):
    level0 = np.random.default_rng(2).integers(0, 255, (64, 64), dtype=np.uint8)
    level1 = np.full((32, 32), 7, np.uint8)  # deliberately not the mean of level 0
    path = tmp_path / "ms.ome.zarr"
    write_image(path, [level0, level1], scale=(0.5, 0.5))
    image = read_ome_zarr(str(path))[0]
    np.testing.assert_array_equal(np.asarray(image.levels[1]), level1)
    assert _attrs(path)["multiscales"][0]["datasets"][1]["coordinateTransformations"][0][
        "scale"
    ] == [1.0, 1.0]


class _Recorder:
    """An array-like that records the largest read and the reading threads."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.largest = 0
        self.threads: set[int] = set()

    def __getitem__(self, key):
        out = self.data[key]
        self.largest = max(self.largest, out.size)
        self.threads.add(threading.get_ident())
        return out


def test_dask_input_is_streamed_in_blocks(tmp_path):
    source = _Recorder(np.random.default_rng(5).integers(0, 9, (16, 256, 256), np.uint16))
    lazy = da.from_array(source, chunks=(2, 64, 64), asarray=True)
    calls = []
    write_image(
        tmp_path / "s.ome.zarr",
        lazy,
        chunks=(1, 64, 64),
        progress=lambda d, t: calls.append((d, t)),
    )
    assert 0 < source.largest <= 2 * 64 * 64
    assert calls[-1][0] == calls[-1][1]
    assert all(d <= t for d, t in calls)


def test_synchronous_scheduler_is_honoured(tmp_path):
    source = _Recorder(np.arange(8 * 64 * 64, dtype=np.uint16).reshape(8, 64, 64))
    with dask.config.set(scheduler="sync"):
        write_image(tmp_path / "s.ome.zarr", da.from_array(source, chunks=(1, 32, 32)))
    assert source.threads == {threading.get_ident()}
    np.testing.assert_array_equal(
        read_ome_zarr(str(tmp_path / "s.ome.zarr"))[0].levels[0], source.data
    )


def test_failed_save_leaves_previous_store_unchanged(tmp_path):
    path = tmp_path / "keep.ome.zarr"
    write_image(path, np.ones((64, 64), np.uint8))
    before = tree_digest(path)

    def boom(block):
        if block.flags and block.max() > 0:
            raise RuntimeError("disk on fire")
        return block

    bad = da.from_array(np.ones((128, 128), np.uint8), chunks=32).map_blocks(boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_image(path, bad, overwrite=True)
    assert tree_digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.ome.zarr"]
    with pytest.raises(StoreExistsError):
        write_image(path, np.ones((8, 8), np.uint8))


def test_refuses_to_replace_a_folder_that_is_not_ome_zarr(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(StoreExistsError, match="not an OME-Zarr"):
        write_image(folder, np.zeros((8, 8), np.uint8), overwrite=True)
    assert (folder / "holiday.jpg").read_bytes() == b"x"


@pytest.mark.parametrize("version", VERSIONS)
def test_background_label_blocks_write_no_files(tmp_path, version):
    labels = np.zeros((4, 1024, 1024), np.uint16)
    labels[1, 10:40, 20:50] = 7  # one painted cell in a corner
    path = write_labels(
        tmp_path / "cells.ome.zarr", labels, axes="zyx", chunks=(1, 128, 128), version=version
    )
    level0 = Path(path) / "0"
    chunk_files = [
        f for f in level0.rglob("*") if f.is_file() and f.name not in ("zarr.json", ".zarray")
    ]
    assert 1 <= len(chunk_files) < 4 * 8 * 8 // 4
    (image,) = read_ome_zarr(path)
    np.testing.assert_array_equal(image.levels[0].compute(), labels)


@pytest.fixture
def read_only(tmp_path):
    """chmod a-w on folders (root still could write them: the writer must refuse itself)."""
    folders: list[Path] = []

    def make(folder: Path) -> Path:
        for f in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
            f.chmod(0o555)
            folders.append(f)
        return folder

    yield make
    for f in folders:
        f.chmod(0o755)


@pytest.mark.parametrize("version", VERSIONS)
def test_read_only_targets_are_refused_and_left_unchanged(tmp_path, read_only, version):
    image = tmp_path / "image.ome.zarr"
    write_image(image, np.arange(256, dtype=np.uint8).reshape(16, 16), version=version)
    before = tree_digest(image)
    read_only(image)
    with pytest.raises(ReadOnlyStoreError, match=r"image\.ome\.zarr.* read-only"):
        add_labels(image, np.ones((16, 16), np.uint8), "cells")
    with pytest.raises(ReadOnlyStoreError, match="refusing to replace"):
        write_image(image, np.zeros((16, 16), np.uint8), version=version, overwrite=True)
    assert tree_digest(image) == before
    assert not (image / "labels").exists()

    (tmp_path / "shelf").mkdir()
    shelf = read_only(tmp_path / "shelf")  # a folder nobody may write to
    with pytest.raises(ReadOnlyStoreError, match=r"shelf is read-only"):
        write_image(shelf / "new.ome.zarr", np.zeros((4, 4), np.uint8), version=version)
    assert list(shelf.iterdir()) == []


def test_target_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(StoreAccessError, match=r"notes\.txt is a file"):
        write_image(tmp_path / "notes.txt" / "x.ome.zarr", np.zeros((4, 4), np.uint8))
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_killed_save_leaves_target_unchanged(tmp_path):
    path = tmp_path / "target.ome.zarr"
    write_image(path, np.full((32, 32), 3, np.uint8))
    before = tree_digest(path)
    script = textwrap.dedent(
        f"""
        import os, signal, dask.array as da, numpy as np
        from napari_omezarr_x.write import write_image
        count = 0
        def slow(block):
            global count
            count += 1
            if count == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return block
        data = da.ones((256, 256), dtype=np.uint8, chunks=32).map_blocks(slow)
        write_image({str(path)!r}, data, chunks=(32, 32), overwrite=True)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=120, check=False)
    assert proc.returncode == -9
    assert tree_digest(path) == before
    np.testing.assert_array_equal(np.asarray(read_ome_zarr(str(path))[0].levels[0]), 3)
    # The next save to that target sweeps the partial folder the killed one left.
    assert any(p.name.startswith(".target.ome.zarr.partial") for p in tmp_path.iterdir())
    write_image(path, np.full((32, 32), 4, np.uint8), overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["target.ome.zarr"]


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="2 to 5 axes"):
        write_image(tmp_path / "a.ome.zarr", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="integers"):
        write_labels(tmp_path / "b.ome.zarr", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="space axes last"):
        write_image(tmp_path / "c.ome.zarr", np.zeros((4, 4, 3), np.uint8), axes="yxc")
    write_image(tmp_path / "d.ome.zarr", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"of shape \(4, 8, 9\) do not fit the image"):
        add_labels(tmp_path / "d.ome.zarr", np.zeros((4, 8, 9), np.uint8), "x")


def test_labels_may_leave_out_channel_and_single_time_point(tmp_path):
    path = tmp_path / "tc.ome.zarr"
    write_image(path, np.zeros((1, 2, 4, 16, 16), np.uint8), axes="tczyx", scale=(1, 1, 2, 1, 1))
    labels = np.arange(4 * 16 * 16, dtype=np.uint32).reshape(4, 16, 16) % 5
    add_labels(path, labels, "nuclei")
    (lab,) = read_ome_zarr(str(path))[0].labels
    assert [a.name for a in lab.axes] == ["z", "y", "x"]
    assert lab.scale == pytest.approx((2, 1, 1))
    np.testing.assert_array_equal(np.asarray(lab.levels[0]), labels)
    ome_zarr_models.open_ome_zarr(str(path))


def test_layout_of_a_layer_selection(tmp_path):
    from napari_omezarr_x.write.layout import LayerInput, plan_layout

    rng = np.random.default_rng(9)
    t_series = rng.integers(0, 99, (3, 4, 20, 30), dtype=np.uint8)
    photo = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    layers = [
        LayerInput(t_series, "image", "a", axis_labels=("t", "z", "y", "x")),
        LayerInput(t_series // 2, "image", "b", axis_labels=("t", "z", "y", "x")),
        LayerInput(photo, "image", "photo/1", rgb=True, axis_labels=("y", "x")),
        LayerInput(t_series.astype(np.float32), "image", "a", axis_labels=("t", "z", "y", "x")),
        LayerInput(np.ones((20, 30), np.uint8), "labels", "labels"),
        LayerInput(np.ones((3, 4, 20, 30), np.uint16), "labels", "cells"),
        LayerInput(np.ones((5, 5, 5), np.uint16), "labels", "odd"),
    ]
    images, labels = plan_layout(layers)
    assert [(spec.group, spec.axes) for spec in images] == [
        ("", ["t", "c", "z", "y", "x"]),
        ("photo_1", ["c", "y", "x"]),
        ("a", ["t", "z", "y", "x"]),
    ]
    assert [(lab.name, lab.image_group) for lab in labels] == [
        ("labels_", "photo_1"),
        ("cells", ""),
        ("odd", None),
    ]
    path = tmp_path / "layout.ome.zarr"
    write_store(path, images, labels)
    assert type(ome_zarr_models.open_ome_zarr(str(path / "odd"))).__name__ == "ImageLabel"
    # Four images: more than a collection opens by default, so ask for all of them.
    found = {image.path: image for image in read_ome_zarr(str(path), series="all")}
    root, photo_img = found[""], found["photo_1"]
    assert root.levels[0].shape == (3, 2, 4, 20, 30)
    np.testing.assert_array_equal(np.asarray(root.levels[0])[:, 1], t_series // 2)
    assert [c.label for c in photo_img.channels] == ["R", "G", "B"]
    np.testing.assert_array_equal(np.asarray(photo_img.levels[0]), np.moveaxis(photo, -1, 0))


@pytest.mark.parametrize("version", VERSIONS)
def test_other_readers_open_our_stores(tmp_path, version):
    from napari_ome_zarr._reader import napari_get_reader
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    rng = np.random.default_rng(11)
    image = rng.integers(0, 500, (2, 3, 600, 260), dtype=np.uint16)
    labels = (image[0] > 400).astype(np.uint16) * 9
    path = tmp_path / "interop.ome.zarr"
    channels = [Channel(label="dna", color="0000FF"), Channel(label="actin", color="FF0000")]
    write_store(
        path,
        [ImageSpec(image, axes="czyx", scale=(1, 2, 0.5, 0.5), channels=channels)],
        [LabelsSpec(labels, "cells", colors={9: (1.0, 1.0, 0.0, 1.0)})],
        version=version,
    )
    ours = read_ome_zarr(str(path))[0]
    shapes = [tuple(lv.shape) for lv in ours.levels]
    assert len(shapes) == 2

    nodes = list(Reader(parse_url(str(path)))())
    assert [tuple(d.shape) for d in nodes[0].data] == shapes
    assert nodes[0].metadata["channel_names"] == ["dna", "actin"]
    label_node = next(n for n in nodes if n.data and n.metadata.get("name") == "cells")
    assert [tuple(d.shape) for d in label_node.data] == [s[1:] for s in shapes]

    layers = napari_get_reader(str(path))(str(path))
    (img_data, img_meta, _) = next(lay for lay in layers if lay[2] == "image")
    assert [tuple(d.shape) for d in img_data] == shapes
    assert list(img_meta["scale"]) == pytest.approx([2, 0.5, 0.5])
    assert [n.split(": ")[-1] for n in img_meta["name"]] == ["dna", "actin"]
    (_, lab_meta, _) = next(lay for lay in layers if lay[2] == "labels")
    assert lab_meta["colormap"][9] == pytest.approx([1.0, 1.0, 0.0, 1.0])


def test_free_axis_names_end_as_space_axes(tmp_path):
    path = tmp_path / "free.ome.zarr"
    write_image(path, np.zeros((2, 8, 8), np.uint8), axes=("t", "row", "col"))
    axes = _attrs(path)["multiscales"][0]["axes"]
    assert axes == [
        {"name": "t", "type": "time"},
        {"name": "row", "type": "space"},
        {"name": "col", "type": "space"},
    ]


def test_replace_without_atomic_exchange(tmp_path, monkeypatch):
    from napari_omezarr_x.storage import atomic as _atomic

    path = tmp_path / "swap.ome.zarr"
    write_image(path, np.full((16, 16), 1, np.uint8))
    monkeypatch.setattr(_atomic, "_exchange", lambda a, b: False)
    write_image(path, np.full((16, 16), 2, np.uint8), overwrite=True)
    np.testing.assert_array_equal(np.asarray(read_ome_zarr(str(path))[0].levels[0]), 2)
    assert sorted(os.listdir(tmp_path)) == ["swap.ome.zarr"]


@pytest.mark.parametrize("version", VERSIONS)
def test_shuffle_per_item_size_is_what_the_readme_says(tmp_path, version):
    """Byte shuffle for multi-byte types, bit shuffle for 1-byte types, as documented."""
    shuffles = {}
    for dtype in ("uint8", "bool", "uint16", "float32"):
        path = tmp_path / f"{dtype}.ome.zarr"
        write_image(path, np.ones((16, 16), dtype=dtype), version=version)
        if version == "0.5":
            codecs = json.loads((path / "0" / "zarr.json").read_text())["codecs"]
            blosc = next(c["configuration"] for c in codecs if c["name"] == "blosc")
            shuffles[dtype] = blosc["shuffle"]
        else:
            blosc = json.loads((path / "0" / ".zarray").read_text())["compressor"]
            shuffles[dtype] = {1: "shuffle", 2: "bitshuffle"}[blosc["shuffle"]]
    assert shuffles == {
        "uint8": "bitshuffle", "bool": "bitshuffle", "uint16": "shuffle", "float32": "shuffle"
    }  # fmt: skip
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    assert "with byte shuffle, or bit shuffle for 1-byte types (`uint8`, `int8`, `bool`)" in readme


def test_existing_store_error_names_the_python_option(tmp_path):
    path = tmp_path / "img.ome.zarr"
    write_image(path, np.zeros((8, 8), np.uint8))
    with pytest.raises(StoreExistsError, match=r"already exists \(pass overwrite=True"):
        write_image(path, np.zeros((8, 8), np.uint8))


@pytest.mark.parametrize("version", VERSIONS)
def test_our_output_passes_strict_validation(tmp_path, version):
    """`validate --strict` wants multiscale name, type and metadata, and label colours."""
    from napari_omezarr_x.spec.validate import validate_store

    rng = np.random.default_rng(5)
    image = rng.integers(0, 999, (2, 8, 64, 64), dtype=np.uint16)
    seg = np.array([0, 5, 2**32 - 3], np.uint32)[rng.integers(0, 3, (8, 64, 64))]
    store = tmp_path / "all.ome.zarr"
    write_store(
        store,
        [ImageSpec(image, axes="czyx", channels=[Channel(label="a"), Channel(label="b")]),
         ImageSpec(image[0, 0], group="thumb")],
        [LabelsSpec(seg, "cells"), LabelsSpec(seg, "colored", colors={2**32 - 3: (1, 0, 0, 1)}),
         LabelsSpec(np.zeros((8, 64, 64), np.uint8), "empty")],
        version=version,
    )  # fmt: skip
    alone = write_labels(tmp_path / "alone.ome.zarr", seg[0], version=version)
    given = write_image(tmp_path / "given.ome.zarr", [image[0], image[0, :, ::2, ::2]],
                        axes="zyx", version=version)  # fmt: skip
    for path in (store, alone, given):
        report = validate_store(str(path), strict=True)
        assert report.valid, [str(e) for e in report.errors]
        assert not report.warnings, [str(w) for w in report.warnings]
    ms = _attrs(store)["multiscales"][0]
    assert (ms["name"], ms["type"]) == ("all", "mean")
    assert _attrs(Path(given))["multiscales"][0]["type"] == "unknown"
    colors = _attrs(store / "labels" / "cells")["image-label"]["colors"]
    assert [c["label-value"] for c in colors] == [5, 2**32 - 3]
    assert all(c["rgba"][3] == 255 for c in colors)
    assert _attrs(store / "labels" / "empty")["image-label"]["colors"] == [
        {"label-value": 0, "rgba": [0, 0, 0, 0]}
    ]


_HEAPS = (
    "import ctypes, os, re, sys, tempfile\n"
    "import numpy as np, dask.array as da\n"
    "from napari_omezarr_x import write\n"
    "write.write_image(sys.argv[1], da.ones((2, 64, 256, 256), 'uint16', chunks=(1, 16, 256, 256)),"
    " chunks=(1, 16, 128, 128))\n"
    "libc = ctypes.CDLL('libc.so.6')\n"
    "libc.fdopen.restype = ctypes.c_void_p\n"
    "with tempfile.TemporaryFile() as f:\n"
    "    fp = ctypes.c_void_p(libc.fdopen(os.dup(f.fileno()), b'w'))\n"
    "    libc.malloc_info(0, fp)\n"
    "    libc.fclose(fp)\n"
    "    f.seek(0)\n"
    "    print(len(re.findall(rb'<heap nr=', f.read())))\n"
)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")
@pytest.mark.parametrize("arena_max", [None, "4"])
def test_a_save_allocates_from_one_malloc_arena(tmp_path, arena_max) -> None:
    """The writer's threads (dask's, zarr's) share glibc's main arena, unless the user
    chose MALLOC_ARENA_MAX: then their arenas are glibc's as the user configured."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if arena_max is not None:
        env["MALLOC_ARENA_MAX"] = arena_max
    out = subprocess.run(
        [sys.executable, "-c", _HEAPS, str(tmp_path / "image.ome.zarr")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    heaps = int(out[-1])
    assert zarr.open_array(tmp_path / "image.ome.zarr" / "0").shape == (2, 64, 256, 256)
    if arena_max is None:
        assert heaps == 1
    else:
        assert 1 < heaps <= int(arena_max)
