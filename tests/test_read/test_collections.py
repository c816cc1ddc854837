"""Collections: what opens of a bioformats2raw file or a group of images, and the listing."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_omezarr_x.errors import MetadataError, NgffComplianceWarning
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.read.collections import FEW, wanted
from ngff_fixtures import write_collection, write_image


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_twenty_series_open_the_first_and_list_all(tmp_path, version):
    path = write_collection(tmp_path / "c.zarr", version, 20)
    (image,) = read_ome_zarr(str(path))
    assert (image.path, image.name) == ("0", "series 0")
    assert (image.levels[0].compute() == 1).all()
    listing = image.collection
    assert listing.kind == "bioformats2raw"
    assert listing.opened == [0]
    assert [s.name for s in listing.series] == [f"series {i}" for i in range(20)]
    assert [s.path for s in listing.series[:3]] == ["0", "1", "2"]
    assert listing.series[7].shape == (1, 2, 1, 16, 16)  # TCZYX from the OME-XML
    assert listing.series[7].dtype == "uint8"
    assert listing.series[7].nbytes == 512


def test_a_few_series_all_open(tmp_path):
    path = write_collection(tmp_path / "c.zarr", "0.5", FEW)
    images = read_ome_zarr(str(path))
    assert [i.name for i in images] == ["series 0", "series 1", "series 2"]
    assert all(i.collection.opened == [0, 1, 2] for i in images)


def test_series_are_chosen(tmp_path):
    path = write_collection(tmp_path / "c.zarr", "0.4", 6)
    assert len(read_ome_zarr(str(path), series="all")) == 6
    images = read_ome_zarr(str(path), series=[4, 1])
    assert [i.name for i in images] == ["series 4", "series 1"]
    assert (images[0].levels[0].compute() == 5).all()
    (one,) = read_ome_zarr(str(path), series=3)
    assert one.collection.opened == [3]
    with pytest.raises(MetadataError, match=r"no series \[9\]"):
        read_ome_zarr(str(path), series=9)
    (within,) = read_ome_zarr(one.store, within=one.collection.series[5].path)
    assert within.name == "series 5"  # named from the collection's OME-XML
    assert within.collection is None


def test_without_xml_shapes_come_from_the_arrays(tmp_path):
    path = write_collection(tmp_path / "c.zarr", "0.5", 5, xml=False)
    (image,) = read_ome_zarr(str(path))
    assert [s.name for s in image.collection.series] == [None] * 5
    assert image.collection.series[4].shape == (2, 16, 16)
    assert image.collection.series[4].dtype == "uint8"


def test_a_broken_first_series_gives_way_to_the_next(tmp_path):
    path = write_collection(tmp_path / "c.zarr", "0.5", 8)
    shutil.rmtree(path / "0")
    with pytest.warns(NgffComplianceWarning, match="series skipped"):
        (image,) = read_ome_zarr(str(path))
    assert image.name == "series 1"
    assert image.collection.opened == [1]


def test_group_of_many_images_opens_the_first(tmp_path):
    root = tmp_path / "group.zarr"
    import zarr

    zarr.open_group(root, mode="w", zarr_format=3)
    for i in range(5):
        write_image(root / f"img{i}", "0.5", shape=(4, 4), levels=1, name=f"image {i}")
    (image,) = read_ome_zarr(str(root))
    assert image.path == "img0"
    listing = image.collection
    assert listing.kind == "group"
    assert [s.name for s in listing.series] == [f"image {i}" for i in range(5)]
    assert listing.series[3].shape == (4, 4)
    images = read_ome_zarr(str(root), series=[2, 3])
    assert [i.path for i in images] == ["img2", "img3"]
    np.testing.assert_array_equal(images[0].levels[0].compute(), images[1].levels[0].compute())


def test_wanted_rule():
    assert wanted(1, None, "x") == [0]
    assert wanted(FEW, None, "x") == list(range(FEW))
    assert wanted(FEW + 1, None, "x") == [0]
    assert wanted(4, "all", "x") == [0, 1, 2, 3]
    assert wanted(4, [3], "x") == [3]
