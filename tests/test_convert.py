"""`convert`: TIFF (ImageJ, OME, plain) and OME-Zarr inputs round-trip pixels exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_omezarr_x.convert import convert
from napari_omezarr_x.errors import StoreAccessError
from napari_omezarr_x.spec.validate import validate_store

STACK = (np.arange(4 * 3 * 24 * 20) % 251).astype("uint16").reshape(4, 3, 24, 20)


def _multiscale(out: str) -> tuple[dict, zarr.Group]:
    group = zarr.open_group(out, mode="r")
    attrs = dict(group.attrs)
    return (attrs.get("ome") or attrs)["multiscales"][0], group


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_imagej_tiff_round_trips_with_pixel_sizes(tmp_path: Path, version: str) -> None:
    src = tmp_path / "stack.tif"
    tifffile.imwrite(
        src,
        STACK,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.5),
        metadata={"axes": "ZCYX", "spacing": 2.0, "unit": "um"},
    )
    calls: list[tuple[int, int]] = []
    out = convert(
        str(src),
        str(tmp_path / "out.ome.zarr"),
        version=version,
        progress=lambda done, total: calls.append((done, total)),
    )
    ms, group = _multiscale(out)
    # ZCYX in the file becomes c, z, y, x in OME-NGFF order
    np.testing.assert_array_equal(
        np.asarray(group[ms["datasets"][0]["path"]]), STACK.transpose(1, 0, 2, 3)
    )
    assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"]
    assert ms["axes"][2]["unit"] == "micrometer"
    scale = next(t for t in ms["datasets"][0]["coordinateTransformations"] if t["type"] == "scale")
    assert scale["scale"] == pytest.approx([1.0, 2.0, 0.5, 0.5])
    dones = [done for done, _ in calls]
    assert dones == sorted(dones)
    assert all(0 <= done <= total for done, total in calls)
    assert dones[-1] > 0
    assert validate_store(out).valid


def test_plain_multipage_tiff_and_ome_tiff(tmp_path: Path) -> None:
    plain = tmp_path / "pages.tif"
    tifffile.imwrite(plain, STACK[:, 0])
    out = convert(str(plain), str(tmp_path / "plain.zarr"), chunks=(2, 12, 10), levels=2)
    ms, group = _multiscale(out)
    np.testing.assert_array_equal(np.asarray(group[ms["datasets"][0]["path"]]), STACK[:, 0])
    assert len(ms["datasets"]) == 2
    assert group[ms["datasets"][0]["path"]].chunks == (2, 12, 10)

    ome = tmp_path / "img.ome.tif"
    tifffile.imwrite(
        ome,
        STACK,
        metadata={
            "axes": "ZCYX",
            "PhysicalSizeX": 0.25,
            "PhysicalSizeY": 0.25,
            "PhysicalSizeZ": 1.5,
            "Channel": {"Name": ["a", "b", "c"]},
        },
    )
    out = convert(str(ome), str(tmp_path / "ome.zarr"), version="0.4")
    ms, group = _multiscale(out)
    np.testing.assert_array_equal(
        np.asarray(group[ms["datasets"][0]["path"]]), STACK.transpose(1, 0, 2, 3)
    )
    scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == pytest.approx([1.0, 1.5, 0.25, 0.25])
    labels = [c["label"] for c in dict(group.attrs)["omero"]["channels"]]
    assert labels == ["a", "b", "c"]


def test_png_converts(tmp_path: Path) -> None:
    import imageio.v3 as iio

    rgb = (np.arange(16 * 12 * 3) % 256).astype("uint8").reshape(16, 12, 3)
    iio.imwrite(tmp_path / "rgb.png", rgb)
    out = convert(str(tmp_path / "rgb.png"), str(tmp_path / "rgb.zarr"))
    ms, group = _multiscale(out)
    np.testing.assert_array_equal(
        np.asarray(group[ms["datasets"][0]["path"]]), np.moveaxis(rgb, -1, 0)
    )


@pytest.mark.parametrize(
    "name",
    ["fiji-java_5d_dataset_v4.ome.zarr", "ngio_test_image_tczyx.zarr", "zarr-java_ome_v0.4.zarr"],
)
def test_corpus_ome_zarr_round_trips(corpus_dir: Path, tmp_path: Path, name: str) -> None:
    source = corpus_dir / name
    src_ms, src_group = _multiscale(str(source))
    out = convert(str(source), str(tmp_path / "copy.zarr"), version="0.5")
    ms, group = _multiscale(out)
    original = np.asarray(src_group[src_ms["datasets"][0]["path"]])
    np.testing.assert_array_equal(np.asarray(group[ms["datasets"][0]["path"]]), original)
    assert [a["name"] for a in ms["axes"]] == [a["name"] for a in src_ms["axes"]]
    assert validate_store(out).valid
    if (source / "labels").is_dir():
        names = dict(zarr.open_group(source / "labels", mode="r").attrs)["labels"]
        listed = json.loads((Path(out) / "labels" / "zarr.json").read_text())
        assert listed["attributes"]["ome"]["labels"] == names
        for label in names:
            src_ms, src_label = _multiscale(str(source / "labels" / label))
            ms, copied = _multiscale(str(Path(out) / "labels" / label))
            expected = np.asarray(src_label[src_ms["datasets"][0]["path"]])
            got = np.asarray(copied[ms["datasets"][0]["path"]])
            # a zyx label of a tczyx image gains the image's length-1 t axis
            np.testing.assert_array_equal(got.reshape(expected.shape), expected)


def test_unreadable_input(tmp_path: Path) -> None:
    with pytest.raises(StoreAccessError, match="no such file"):
        convert(str(tmp_path / "missing.tif"), str(tmp_path / "out.zarr"))
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(StoreAccessError, match="cannot read TIFF"):
        convert(str(bad), str(tmp_path / "out.zarr"))


def _ome_zarr_py_plate(path: Path) -> dict[tuple[str, int], np.ndarray]:
    """A 2 x 3 plate with 3 wells of 2 fields and labels, written by ome-zarr-py;
    returns each (well, field)'s pixels."""
    from ome_zarr.writer import (
        write_image,
        write_labels,
        write_plate_metadata,
        write_well_metadata,
    )

    root = zarr.open_group(path, mode="w")
    wells = ["A/1", "A/3", "B/2"]
    write_plate_metadata(root, ["A", "B"], ["1", "2", "3"], wells, name="their plate")
    pixels = {}
    for i, well in enumerate(wells):
        group = root.require_group(well)
        write_well_metadata(group, [{"path": "0"}, {"path": "1"}])
        for f in range(2):
            data = (np.arange(2 * 32 * 40) % 200 + 10 * i + f).astype("uint16").reshape(2, 32, 40)
            fg = group.require_group(str(f))
            write_image(data, fg, axes="cyx")
            labels = np.zeros((32, 40), dtype="uint8")
            labels[4:9, 3 + f : 20] = i + 1
            write_labels(labels, fg, name="cells", axes="yx")
            pixels[(well, f)] = data
    return pixels


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plate_stays_a_plate(tmp_path: Path, version: str) -> None:
    import warnings

    from napari_ome_zarr import napari_get_reader
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Plate, Reader

    from napari_omezarr_x.read import read_ome_zarr

    source = tmp_path / "theirs.ome.zarr"
    pixels = _ome_zarr_py_plate(source)
    out = convert(str(source), str(tmp_path / "ours.ome.zarr"), version=version)
    report = validate_store(out)
    assert report.valid, report.errors
    (plate,) = read_ome_zarr(out)
    assert plate.kind == "plate"
    assert plate.name == "their plate"
    assert [w.path for w in plate.plate.wells] == ["A/1", "A/3", "B/2"]
    for well in plate.plate.wells:
        for f in range(2):
            tile = plate.levels[0][f, :, well.row * 32 : (well.row + 1) * 32]
            tile = tile[..., well.column * 40 : (well.column + 1) * 40]
            np.testing.assert_array_equal(tile.compute(), pixels[(well.path, f)])
    (cells,) = plate.labels
    assert cells.levels[0][1, 4, 4:20].compute().tolist() == [1] * 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodes = list(Reader(parse_url(out))())
        assert any(isinstance(spec, Plate) for spec in nodes[0].specs)
        layers = napari_get_reader(out)(out)
    assert [kind for *_, kind in layers] == ["image", "labels"]
    assert layers[0][0][0].shape == (2, 64, 120)
