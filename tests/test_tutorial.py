"""examples/tutorial.py runs headless and every step leaves what the tutorial promises."""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

SHAPE = (24, 128, 128)  # smaller than the sample, so the test stays quick
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tutorial.py"


@pytest.fixture(scope="module")
def tutorial():
    spec = importlib.util.spec_from_file_location("omezarr_tutorial", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture
def ran(tutorial, tmp_path, make_napari_viewer):
    viewer = make_napari_viewer()
    with tutorial.serve(tmp_path) as base_url:
        yield tutorial.run(tmp_path, base_url, viewer, shape=SHAPE), viewer, base_url


def test_tutorial_steps(ran, tutorial) -> None:
    results, viewer, base_url = ran
    nuclei = results.nuclei

    # 1. Five pyramid levels, each halving some spatial axes and never growing.
    shapes = results.level_shapes
    assert len(shapes) == tutorial.LEVELS
    assert shapes[0] == nuclei.shape
    for finer, coarser in itertools.pairwise(shapes):
        assert all(c in (f, math.ceil(f / 2)) for f, c in zip(finer, coarser, strict=True))
        assert coarser[1:] == tuple(math.ceil(n / 2) for n in finer[1:])

    # 2. Plain zarr reads the full resolution back unchanged.
    np.testing.assert_array_equal(results.read_back, nuclei)

    # 3. The omero block is in the file, windowed on the data.
    channel = results.omero["channels"][0]
    assert channel["label"] == "nuclei"
    assert channel["color"].upper() == "FF00FF"
    assert channel["window"]["start"] < np.median(nuclei) < channel["window"]["end"]

    # 4. Nested groups: two images at the tutorial's paths, found by our reader.
    root = zarr.open_group(results.nested_path, mode="r")
    membranes = results.cells_image[0]
    np.testing.assert_array_equal(root["sub_array_1/0"][:], membranes)
    np.testing.assert_array_equal(root["sub_array_2/sub_sub_array_1/0"][:], nuclei[:, ::2, ::2])
    assert {image.path for image in results.nested_images} == {
        "sub_array_1",
        "sub_array_2/sub_sub_array_1",
    }

    # 5. Watershed labels stored under labels/watershed, one colour per nucleus.
    image_root = zarr.open_group(results.image_path, mode="r")
    stored = image_root["labels/watershed/0"][:]
    np.testing.assert_array_equal(stored, results.labels)
    assert 5 <= results.labels.max() <= 60
    assert nuclei[stored > 0].mean() > 4 * nuclei[stored == 0].mean()

    # 6. Our reader sees image, omero and labels, locally and over HTTP alike.
    (image,) = results.images
    assert image.channels[0].label == "nuclei"
    assert [lab.path.rsplit("/", 1)[-1] for lab in image.labels] == ["watershed"]
    label_image = image.labels[0]
    assert set(label_image.label.colors) == set(np.unique(results.labels)[1:].tolist())
    (remote,) = results.remote_images
    assert remote.store.startswith(base_url)
    assert [level.shape for level in remote.levels] == [level.shape for level in image.levels]
    np.testing.assert_array_equal(remote.levels[-1].compute(), image.levels[-1].compute())
    assert [lab.path for lab in remote.labels] == [lab.path for lab in image.labels]

    # ... and napari shows all of it.
    kinds = {(layer.metadata["omezarr"]["store"], type(layer).__name__) for layer in viewer.layers}
    url = f"{base_url}/{results.image_path.name}"
    assert (url, "Labels") in kinds
    assert (url, "Image") in kinds
    assert sum(1 for layer in viewer.layers if type(layer).__name__ == "Labels") == 2
    assert sum(1 for layer in viewer.layers if type(layer).__name__ == "Image") >= 4
