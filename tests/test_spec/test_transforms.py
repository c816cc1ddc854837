"""Coordinate transformations (0.4 scale/translation, 0.6-dev affine, rotation, sequence)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_omezarr_x.errors import MetadataError, NgffComplianceWarning
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.spec.transforms import placement, sequence_matrix, transform_matrix

ROT90 = [[0.0, -1.0], [1.0, 0.0]]
ROT3 = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]


@pytest.mark.parametrize(
    ("transform", "point"),
    [
        ({"type": "identity"}, [3.0, 4.0]),
        ({"type": "scale", "scale": [2, 0.5]}, [6.0, 2.0]),
        ({"type": "translation", "translation": [1, -1]}, [4.0, 3.0]),
        ({"type": "rotation", "rotation": ROT90}, [-4.0, 3.0]),
        ({"type": "affine", "affine": [[0, 1, 10], [1, 0, 20]]}, [14.0, 23.0]),
        ({"type": "affine", "affine": [[2, 0, 1], [0, 2, 1], [0, 0, 1]]}, [7.0, 9.0]),
        ({"type": "mapAxis", "mapAxis": [1, 0]}, [4.0, 3.0]),
        (
            {
                "type": "sequence",
                "transformations": [
                    {"type": "scale", "scale": [2, 2]},
                    {"type": "translation", "translation": [1, 1]},
                ],
            },
            [7.0, 9.0],
        ),
        ({"type": "bijection", "forward": {"type": "scale", "scale": [3, 3]}}, [9.0, 12.0]),
    ],
    ids=lambda v: v["type"] if isinstance(v, dict) else None,
)
def test_transform_types(transform, point):
    mat = transform_matrix(transform, 2, "t")
    np.testing.assert_allclose((mat @ [3.0, 4.0, 1.0])[:2], point)


def test_sequence_applies_first_transform_first():
    mat = sequence_matrix(
        [{"type": "translation", "translation": [1, 1]}, {"type": "scale", "scale": [2, 2]}], 2, "t"
    )
    np.testing.assert_allclose(mat @ [0.0, 0.0, 1.0], [2.0, 2.0, 1.0])


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        ({"type": "scale", "scale": [1, 2, 3]}, "3 values, expected 2"),
        ({"type": "translation", "translation": "x"}, "not a list of numbers"),
        ({"type": "affine", "affine": [[1, 0], [0, 1]]}, "expected"),
        ({"type": "rotation", "rotation": [[1, 0, 0]]}, "expected 2x2"),
        ({"type": "mapAxis", "mapAxis": [0, 0]}, "not a permutation"),
        ("scale", "not an object"),
    ],
)
def test_bad_transforms_name_where(transform, message):
    with pytest.raises(MetadataError, match=rf"^here: .*{message}"):
        transform_matrix(transform, 2, "here")


def test_unsupported_transforms_warn_and_are_ignored():
    with pytest.warns(NgffComplianceWarning, match="displacements"):
        mat = transform_matrix({"type": "displacements", "path": "field"}, 2, "t")
    np.testing.assert_array_equal(mat, np.eye(3))
    with pytest.warns(NgffComplianceWarning, match="stored in the array"):
        transform_matrix({"type": "scale", "path": "s"}, 2, "t")


def test_placement_diagonal_gives_scale_and_translate():
    dataset = sequence_matrix(
        [
            {"type": "scale", "scale": [1, 0.5, 0.5]},
            {"type": "translation", "translation": [0, 2, 3]},
        ],
        3,
        "t",
    )
    multiscale = transform_matrix({"type": "scale", "scale": [1, 2, 2]}, 3, "t")
    place = placement(dataset, multiscale, channel_axis=0)
    assert place.scale == (1.0, 1.0, 1.0)
    assert place.translate == (0.0, 4.0, 6.0)
    assert place.affine is None


def test_placement_rotation_keeps_pixel_size_and_drops_channel_axis():
    dataset = transform_matrix({"type": "scale", "scale": [1, 2, 3]}, 3, "t")
    rotation = np.eye(4)
    rotation[1:3, 1:3] = ROT90
    place = placement(dataset, rotation, channel_axis=0)
    assert place.scale == (1.0, 2.0, 3.0)
    np.testing.assert_allclose(place.affine, [[0, -1, 0], [1, 0, 0], [0, 0, 1]])


def test_placement_non_diagonal_dataset_goes_to_affine():
    dataset = transform_matrix({"type": "affine", "affine": [[1, 1, 0], [0, 1, 0]]}, 2, "t")
    place = placement(dataset, np.eye(3))
    assert place.scale == (1.0, 1.0)
    np.testing.assert_allclose(place.affine, dataset)


def test_corpus_06_rotation(corpus_dir):
    (image,) = read_ome_zarr(str(corpus_dir / "neuroglancer_0.6dev1_anisotropic_rotation.zarr"))
    assert image.version == "0.6.dev1"
    assert [a.name for a in image.axes] == ["z", "y", "x"]
    assert image.axes[0].unit == "micrometer"
    assert image.scale == (2.0, 0.5, 0.25)
    assert image.translate == (0.0, 0.0, 0.0)
    expected = np.eye(4)
    expected[:2, :2] = [[-0.7071, -0.7071], [0.7071, -0.7071]]
    np.testing.assert_allclose(image.affine, expected)
    assert image.levels[0].dtype == np.uint8


def test_06_image_with_affine_and_channel_axis(tmp_path):
    group = zarr.open_group(tmp_path / "rot.zarr", mode="w", zarr_format=3)
    group.create_array("s0", shape=(2, 4, 6), dtype="uint8", chunks=(1, 4, 6))
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    group.attrs["ome"] = {
        "version": "0.6",
        "multiscales": [
            {
                "coordinateSystems": [{"name": "world", "axes": axes}],
                "datasets": [
                    {
                        "path": "s0",
                        "coordinateTransformations": [
                            {
                                "type": "sequence",
                                "input": "s0",
                                "output": "world",
                                "transformations": [
                                    {"type": "scale", "scale": [1, 0.5, 0.5]},
                                    {
                                        "type": "rotation",
                                        "rotation": [[1, 0, 0], [0, 0, -1], [0, 1, 0]],
                                    },
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (image,) = read_ome_zarr(str(tmp_path / "rot.zarr"))
    assert image.channel_axis == 0
    # Level 0's own transform rotates: everything goes to the affine, over y and x only.
    assert image.scale == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(image.affine, [[0, -0.5, 0], [0.5, 0, 0], [0, 0, 1]])


def test_06_axes_follow_the_system_matching_the_arrays(tmp_path):
    """A 2-D image placed in a 3-D world: the 2-D intrinsic system names the axes."""
    group = zarr.open_group(tmp_path / "placed.zarr", mode="w", zarr_format=3)
    group.create_array("0", shape=(4, 6), dtype="uint8", chunks=(4, 6))
    space = [{"name": n, "type": "space", "unit": "micrometer"} for n in ("z", "y", "x")]
    group.attrs["ome"] = {
        "version": "0.6.dev2",
        "multiscales": [
            {
                "coordinateSystems": [
                    {"name": "world", "axes": space},
                    {"name": "plane", "axes": space[1:]},
                ],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [2, 3], "input": "0", "output": "plane"}
                        ],
                    }
                ],
                "coordinateTransformations": [
                    {
                        "type": "affine",
                        "affine": [[0, 0, 5], [1, 0, 0], [0, 1, 0]],
                        "input": "plane",
                        "output": "world",
                    }
                ],
            }
        ],
    }
    with pytest.warns(NgffComplianceWarning, match="pixel grid"):
        (image,) = read_ome_zarr(str(tmp_path / "placed.zarr"))
    assert [a.name for a in image.axes] == ["y", "x"]
    assert image.levels[0].shape == (4, 6)
