"""The synthetic Cells 3D sample: generation, segmentation and its cached OME-Zarr store."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from napari_omezarr_x import sample

SMALL = (20, 80, 96)


@pytest.fixture(scope="module")
def cells() -> sample.SyntheticCells:
    return sample.make_cells()


@pytest.fixture(scope="module")
def nuclei_labels(cells: sample.SyntheticCells) -> np.ndarray:
    return sample.segment_nuclei(cells.image[1], cells.voxel_size)


def test_default_sample_shape_dtype_and_scale(cells: sample.SyntheticCells) -> None:
    assert cells.image.shape == (2, *sample.SHAPE)
    assert cells.image.dtype == np.uint16
    assert cells.nuclei_truth.shape == sample.SHAPE
    assert cells.voxel_size == sample.VOXEL_SIZE_UM


def test_generation_is_deterministic_per_seed() -> None:
    first = sample.make_cells(SMALL, seed=3)
    again = sample.make_cells(SMALL, seed=3)
    other = sample.make_cells(SMALL, seed=4)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.nuclei_truth, again.nuclei_truth)
    assert not np.array_equal(first.image, other.image)


@pytest.mark.parametrize("shape", [(3, 64, 64), (10, 64)])
def test_bad_shape_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="3D shape"):
        sample.make_cells(shape)  # type: ignore[arg-type]


def test_nuclei_channel_is_bright_in_nuclei_and_membranes_dark(
    cells: sample.SyntheticCells,
) -> None:
    membranes, nuclei = cells.image.astype(np.float64)
    inside = cells.nuclei_truth > 0
    assert 0.03 < inside.mean() < 0.3
    assert nuclei[inside].mean() > 4 * nuclei[~inside].mean()
    assert membranes[inside].mean() < 0.6 * membranes[~inside].mean()
    # Camera-like: an offset floor, values far from the uint16 limit.
    assert 80 < np.percentile(nuclei[~inside], 5) < 400
    assert cells.image.max() < 30000


def test_membranes_outline_every_nucleus(cells: sample.SyntheticCells) -> None:
    """Along any line from a nucleus outwards the membrane signal rises (cells are closed)."""
    membranes = cells.image[0].astype(np.float64)
    truth = cells.nuclei_truth
    z = sample.SHAPE[0] // 2
    checked = 0
    for value in np.unique(truth[z])[1:]:
        ys, xs = np.nonzero(truth[z] == value)
        cy, cx = int(ys.mean()), int(xs.mean())
        if not (40 < cy < 216 and 40 < cx < 216):
            continue
        ray = membranes[z, cy, cx : cx + 40]
        assert ray.max() > 2.5 * ray[:3].mean()
        checked += 1
    assert checked >= 3


def test_image_is_blurred_and_noisy(cells: sample.SyntheticCells) -> None:
    nuclei = cells.image[1].astype(np.float64)
    # Blur: neighbouring voxels are strongly correlated.
    neighbours = np.corrcoef(nuclei[:, :, :-1].ravel(), nuclei[:, :, 1:].ravel())[0, 1]
    assert neighbours > 0.8
    # Noise: the same voxel's flat neighbourhood is not constant.
    background = nuclei[cells.nuclei_truth == 0]
    assert background.std() > 5
    assert len(np.unique(cells.image[1, 30, :32, :32])) > 50


def test_segmentation_finds_the_nuclei(
    cells: sample.SyntheticCells, nuclei_labels: np.ndarray
) -> None:
    truth = cells.nuclei_truth
    assert nuclei_labels.shape == sample.SHAPE
    assert nuclei_labels.dtype == np.uint32
    found = np.unique(nuclei_labels)[1:]
    assert found.tolist() == list(range(1, len(found) + 1))
    # Nuclei big enough to be seen (at least 200 voxels inside the stack).
    sizes = np.bincount(truth.ravel())
    visible = int((sizes[1:] >= 200).sum())
    assert visible >= 20
    assert 0.8 * visible <= len(found) <= 1.2 * visible
    # Labels sit on the bright nuclei: most labelled voxels are true nucleus voxels.
    labelled = nuclei_labels > 0
    assert (truth[labelled] > 0).mean() > 0.85
    assert (labelled[truth > 0]).mean() > 0.6
    nuclei = cells.image[1].astype(np.float64)
    assert nuclei[labelled].mean() > 4 * nuclei[~labelled].mean()


def test_segmentation_gives_each_nucleus_one_label(
    cells: sample.SyntheticCells, nuclei_labels: np.ndarray
) -> None:
    truth = cells.nuclei_truth
    sizes = np.bincount(truth.ravel())
    merged = split = 0
    for value in np.flatnonzero(sizes[1:] >= 500) + 1:
        hits = np.bincount(nuclei_labels[truth == value])
        hits[0] = 0
        if (hits > 0.15 * sizes[value]).sum() > 1:
            split += 1
    for value in np.unique(nuclei_labels)[1:]:
        owners = np.bincount(truth[nuclei_labels == value])
        owners[0] = 0
        if (owners > 100).sum() > 1:
            merged += 1
    assert split <= 3
    assert merged <= 1


def test_segment_refuses_2d() -> None:
    with pytest.raises(ValueError, match="3D"):
        sample.segment_nuclei(np.zeros((32, 32), np.uint16))


def test_label_colors_are_distinct_and_skip_background(nuclei_labels: np.ndarray) -> None:
    colors = sample.label_colors(nuclei_labels)
    assert set(colors) == set(np.unique(nuclei_labels)[1:].tolist())
    assert len(set(colors.values())) == len(colors)
    assert all(
        len(c) == 4 and c[3] == 255 and all(0 <= v <= 255 for v in c) for c in colors.values()
    )


def test_channel_settings_window_the_data(cells: sample.SyntheticCells) -> None:
    settings = sample.channel_settings(cells.image)
    assert [c.label for c in settings] == list(sample.CHANNEL_NAMES)
    for channel, data in zip(settings, cells.image, strict=True):
        assert channel.min <= np.median(data) < channel.start + 200
        assert channel.start < channel.end <= channel.max == data.max()
        assert (data > channel.end).mean() < 0.01


def test_cache_dir_honours_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(sample.CACHE_ENV, str(tmp_path / "cache"))
    assert sample.cache_dir() == tmp_path / "cache"
    assert sample.sample_path().parent == tmp_path / "cache"
    assert f"v{sample.SAMPLE_VERSION}" in sample.sample_path().name
    monkeypatch.delenv(sample.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sample.cache_dir() == tmp_path / "xdg" / "napari-omezarr-x"


@pytest.fixture
def small_sample(monkeypatch) -> None:
    """Make the cached sample small, so store tests write in a blink."""
    make = sample.make_cells
    monkeypatch.setattr(sample, "make_cells", lambda seed=0: make(SMALL, seed))


@pytest.mark.usefixtures("small_sample")
def test_ensure_sample_writes_once_then_reuses(tmp_path, monkeypatch) -> None:
    path = sample.ensure_sample(tmp_path)
    assert path == sample.sample_path(tmp_path)
    assert (path / "zarr.json").is_file()

    def fail(*args, **kwargs):
        raise AssertionError("the cached sample was regenerated")

    monkeypatch.setattr(sample, "write_sample", fail)
    assert sample.ensure_sample(tmp_path) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.usefixtures("small_sample")
def test_ensure_sample_survives_a_concurrent_writer(tmp_path, monkeypatch) -> None:
    """Another process finishing first wins; ours is discarded, nothing is left behind."""
    write = sample.write_sample
    winner = {}

    def racing_write(path, **kwargs):
        written = write(path, **kwargs)
        monkeypatch.setattr(sample, "write_sample", write)
        winner["path"] = sample.ensure_sample(tmp_path)  # the other process, done first
        (winner["path"] / "marker").write_text("first")
        return written

    monkeypatch.setattr(sample, "write_sample", racing_write)
    path = sample.ensure_sample(tmp_path)
    assert path == winner["path"]
    assert (path / "marker").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch) -> None:
    def broken(path, **kwargs):
        (Path(path) / "zarr.json").parent.mkdir(parents=True)
        (Path(path) / "zarr.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(sample, "write_sample", broken)
    with pytest.raises(OSError, match="disk full"):
        sample.ensure_sample(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("small_sample")
def test_stale_samples_are_replaced(tmp_path) -> None:
    old = tmp_path / "cells3d-v0-0.0.1.ome.zarr"
    old.mkdir()
    (old / "zarr.json").write_text("{}")
    unrelated = tmp_path / "keep-me"
    unrelated.mkdir()
    path = sample.ensure_sample(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "keep-me"])


@pytest.mark.usefixtures("small_sample")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_written_sample_reads_back(tmp_path, version: str) -> None:
    from napari_omezarr_x.read import read_ome_zarr

    cells = sample.make_cells()
    expected_labels = sample.segment_nuclei(cells.image[1], cells.voxel_size)
    path = sample.write_sample(tmp_path / "cells.ome.zarr", version=version)
    (image,) = read_ome_zarr(path)
    assert image.version == version
    assert [(a.name, a.unit) for a in image.axes] == [
        ("c", None),
        ("z", "micrometer"),
        ("y", "micrometer"),
        ("x", "micrometer"),
    ]
    assert image.scale[1:] == pytest.approx(sample.VOXEL_SIZE_UM)
    assert len(image.levels) == sample.PYRAMID_LEVELS
    assert image.levels[-1].shape[-2:] == (SMALL[1] // 4, SMALL[2] // 4)
    np.testing.assert_array_equal(image.levels[0].compute(), cells.image)
    assert [(c.label, c.color) for c in image.channels] == list(
        zip(sample.CHANNEL_NAMES, sample.CHANNEL_COLORS, strict=True)
    )
    assert all(c.start < c.end for c in image.channels)

    (labels,) = image.labels
    assert labels.path.endswith(f"labels/{sample.LABELS_NAME}")
    np.testing.assert_array_equal(labels.levels[0].compute(), expected_labels)
    colors = sample.label_colors(expected_labels)
    assert set(labels.label.colors) == set(colors)
    value = next(iter(colors))
    assert np.allclose(np.asarray(labels.label.colors[value]) * 255, colors[value], atol=1)
    volumes = {p["label-value"]: p["volume_um3"] for p in labels.label.properties}
    voxel = float(np.prod(sample.VOXEL_SIZE_UM))
    assert volumes[value] == pytest.approx((expected_labels == value).sum() * voxel, rel=1e-3)


@pytest.mark.usefixtures("small_sample")
def test_sample_command_and_viewer(tmp_path, monkeypatch, make_napari_viewer) -> None:
    from napari_omezarr_x._napari.sample import cells3d, open_sample

    monkeypatch.setenv(sample.CACHE_ENV, str(tmp_path))
    cells = sample.make_cells()
    tuples = cells3d()
    assert [kind for _, _, kind in tuples] == ["image", "image", "labels"]
    names = [meta["name"] for _, meta, _ in tuples]
    assert all(sample.IMAGE_NAME in name for name in names[:2])
    assert names[0].endswith(sample.CHANNEL_NAMES[0])
    assert names[1].endswith(sample.CHANNEL_NAMES[1])
    assert sample.LABELS_NAME in names[2]

    viewer = make_napari_viewer()
    added = open_sample(viewer)
    assert list(viewer.layers) == added
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Image", "Labels"]
    assert viewer.layers[-1].contour == 2
    membranes, nuclei, labels = viewer.layers
    np.testing.assert_array_equal(np.asarray(nuclei.data[0]), cells.image[1])
    assert tuple(nuclei.scale) == pytest.approx(sample.VOXEL_SIZE_UM)
    assert tuple(labels.scale) == pytest.approx(sample.VOXEL_SIZE_UM)
    assert np.allclose(nuclei.colormap.colors[-1], [1, 0, 1, 1])
    assert np.allclose(membranes.colormap.colors[-1], [0, 1, 0, 1])
    assert labels.metadata["omezarr"]["kind"] == "labels"
    assert labels.metadata["omezarr"]["store"] == str(sample.sample_path(tmp_path))


@pytest.mark.usefixtures("small_sample")
def test_show_sample_opens_a_window_with_the_sample(tmp_path, monkeypatch, qtbot) -> None:
    import napari

    from napari_omezarr_x._napari.sample import show_sample

    monkeypatch.setenv(sample.CACHE_ENV, str(tmp_path))
    ran = []
    monkeypatch.setattr(napari, "run", lambda: ran.append(True))
    show_sample()
    viewer = napari.current_viewer()
    try:
        assert ran == [True]
        assert viewer.window._qt_window.isVisible()
        assert [layer.metadata["omezarr"]["kind"] for layer in viewer.layers] == [
            "image",
            "image",
            "labels",
        ]
    finally:
        viewer.close()


@pytest.mark.usefixtures("small_sample")
def test_unusable_cache_falls_back_to_temporary_folder(tmp_path, monkeypatch, caplog) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(sample.CACHE_ENV, str(blocker / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    path = sample.ensure_sample()
    assert path == tmp_path / "tmp" / "napari-omezarr-x" / sample.sample_path().name
    assert (path / "zarr.json").is_file()
    assert "Cannot write" in caplog.text
