"""Plates and wells: every field of every well on a `field` axis, lazily."""

from __future__ import annotations

import shutil
import tracemalloc
import warnings

import numpy as np
import pytest
import zarr

from http_helpers import serve
from napari_omezarr_x.errors import MetadataError, NgffComplianceWarning, StoreAccessError
from napari_omezarr_x.read import looks_like_ome_zarr, read_ome_zarr
from napari_omezarr_x.read.mosaic import FieldSource, MosaicLevel
from napari_omezarr_x.read.nodes import NodeReader
from napari_omezarr_x.storage import open_location
from ngff_fixtures import write_plate


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def plate_path(request, tmp_path_factory):
    """Read-only plate shared by the module's tests (written once per version)."""
    folder = tmp_path_factory.mktemp(f"plate-{request.param}")
    return write_plate(folder / "plate.ome.zarr", request.param, labels=True)


def test_plate_has_every_field_of_every_well(plate_path):
    assert looks_like_ome_zarr(str(plate_path))
    (plate,) = read_ome_zarr(str(plate_path))
    assert plate.kind == "plate"
    assert plate.name == "test plate"
    assert plate.path == ""
    assert [a.name for a in plate.axes] == ["field", "c", "y", "x"]
    assert plate.channel_axis == 1
    assert plate.scale == (1.0, 1.0, 0.5, 0.5)
    assert [lvl.shape for lvl in plate.levels] == [(2, 2, 16, 24), (2, 2, 8, 12)]
    data = plate.levels[0].compute()
    for f in range(2):
        assert (data[f, :, :8, :8] == 10 + f).all()  # A/1, field f
        assert (data[f, :, 8:, 16:] == 20 + f).all()  # B/3, field f
        assert not data[f, :, :8, 8:].any()  # A/2 and A/3 are not in the plate
        assert not data[f, :, 8:, :16].any()
    assert (plate.levels[1][1].compute()[:, 4:, 8:] == 21).all()
    layout = plate.plate
    assert (layout.rows, layout.columns, layout.field_count) == (["A", "B"], ["1", "2", "3"], 2)
    assert [(w.path, w.row, w.column, w.fields) for w in layout.wells] == [
        ("A/1", 0, 0, ["0", "1"]),
        ("B/3", 1, 2, ["0", "1"]),
    ]
    assert layout.tile == (2, 8, 8)
    assert [layout.well_name(w) for w in layout.wells] == ["A1", "B3"]


def test_plate_labels_follow_the_field_layout(plate_path):
    (plate,) = read_ome_zarr(str(plate_path))
    (cells,) = plate.labels
    assert cells.kind == "labels"
    assert cells.name == "cells"
    assert [a.name for a in cells.axes] == ["field", "y", "x"]
    assert cells.levels[0].shape == (2, 16, 24)
    labels = cells.levels[0].compute()
    # Field f of the i-th well is labelled 1 + f + 10 * i wherever its pattern is not 0.
    assert set(np.unique(labels[1, :8, :8])) == {0, 2}
    assert set(np.unique(labels[0, 8:, 16:])) == {0, 11}
    assert not labels[:, :8, 8:].any()


def test_mosaic_indexing_matches_numpy(plate_path):
    """Slices with steps, negative steps, integers and integer arrays, as dask passes them."""
    (plate,) = read_ome_zarr(str(plate_path))
    whole = plate.levels[0].compute()
    for key in [
        (1, 0, slice(3, 14, 3), slice(None, None, 5)),
        (slice(None), 1, slice(None, None, -2), 7),
        (slice(None), slice(None), np.array([0, 9, 15]), slice(2, 22)),
        (Ellipsis, np.array([23, 1])),
    ]:
        assert np.array_equal(plate.levels[0][key].compute(), whole[key])


def test_mosaic_level_reads_directly(plate_path):
    """The array-like behind each level answers numpy indexing itself."""
    reader = NodeReader(open_location(str(plate_path)))
    reader.group("")  # learns the store's zarr format
    sources = {(f, 0, 0): FieldSource(reader, f"A/1/{f}", ["0", "1"]) for f in range(2)}
    level = MosaicLevel(sources, 0, (2, 8, 8), (1, 2), 2, "uint8", "A/1 beside an empty well")
    expected = np.zeros((2, 2, 8, 16), dtype="uint8")
    expected[0, :, :, :8], expected[1, :, :, :8] = 10, 11
    assert level.shape == expected.shape
    for key in [(1, slice(None), slice(None, None, -3), 4), (Ellipsis, np.array([15, 0, 7]))]:
        assert np.array_equal(level[key], expected[key])
    with pytest.raises(IndexError):
        level[2]
    with pytest.raises(TypeError):
        level[0, 0, 1.5]


def test_well_opens_its_fields_on_the_field_axis(plate_path):
    assert looks_like_ome_zarr(str(plate_path / "B" / "3"))
    assert looks_like_ome_zarr(str(plate_path / "B" / "3" / "0"))
    assert not looks_like_ome_zarr(str(plate_path / "B"))  # a row group is plain zarr
    (well,) = read_ome_zarr(str(plate_path / "B" / "3"))
    assert well.kind == "well"
    assert well.path == "B/3"
    assert [a.name for a in well.axes] == ["field", "c", "y", "x"]
    assert well.levels[0].shape == (2, 2, 8, 8)
    data = well.levels[0].compute()
    assert (data[0] == 20).all()
    assert (data[1] == 21).all()
    assert (well.plate.rows, well.plate.columns) == (["B"], ["3"])
    (cells,) = well.labels
    assert cells.levels[0].shape == (2, 8, 8)
    assert set(np.unique(cells.levels[0][1].compute())) == {0, 12}


def test_field_opens_as_image(plate_path):
    (field,) = read_ome_zarr(str(plate_path / "A" / "1" / "1"))
    assert field.kind == "image"
    assert field.path == "A/1/1"
    assert field.store == str(plate_path.resolve())
    assert (field.levels[0].compute() == 11).all()
    assert [lab.name for lab in field.labels] == ["cells"]


def test_read_within_a_store(plate_path):
    """`within` reads a group of a store by the path Image.path gives it."""
    (plate,) = read_ome_zarr(str(plate_path))
    (well,) = read_ome_zarr(plate.store, within=plate.plate.wells[1].path)
    assert well.kind == "well"
    assert (well.levels[0][1].compute() == 21).all()


def test_acquisitions_are_chosen(tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.5", fields=4, acquisitions=(7, 3, 7, 3))
    (plate,) = read_ome_zarr(str(path))  # default: the first acquisition listed (3)
    assert plate.plate.acquisition == 3
    assert plate.plate.acquisitions == [{"id": 3, "name": "run 3"}, {"id": 7, "name": "run 7"}]
    assert plate.plate.wells[0].fields == ["1", "3"]
    data = plate.levels[0].compute()
    assert plate.levels[0].shape[0] == 2
    assert (data[0, :, :8, :8] == 11).all()
    assert (data[1, :, :8, :8] == 13).all()
    (seven,) = read_ome_zarr(str(path), acquisition=7)
    assert seven.plate.wells[1].fields == ["0", "2"]
    assert (seven.levels[0][1, :, 8:, 16:].compute() == 22).all()
    (every,) = read_ome_zarr(str(path), acquisition="all")
    assert every.plate.acquisition is None
    assert every.levels[0].shape[0] == 4
    with pytest.raises(MetadataError, match="acquisition 5"):
        read_ome_zarr(str(path), acquisition=5)
    (well,) = read_ome_zarr(str(path / "A" / "1"), acquisition=7)
    assert well.plate.wells[0].fields == ["0", "2"]


def test_missing_well_group_warns_and_plate_opens(tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.4")
    shutil.rmtree(path / "B" / "3")
    with pytest.warns(NgffComplianceWarning, match="B/3"):
        (plate,) = read_ome_zarr(str(path))
    assert plate.levels[0].shape == (2, 2, 16, 24)
    assert not plate.levels[0][:, :, 8:, 16:].compute().any()
    assert (plate.levels[0][1, :, :8, :8].compute() == 11).all()


def test_missing_field_is_empty_and_a_broken_one_warns(tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.5", fields=3)
    shutil.rmtree(path / "B" / "3" / "1")  # listed by the well, absent on disk
    (path / "B" / "3" / "2" / "0" / "zarr.json").write_text("{not json")
    (plate,) = read_ome_zarr(str(path))
    assert not plate.levels[0][1, :, 8:, 16:].compute().any()
    with pytest.warns(NgffComplianceWarning, match="cannot be read and are shown empty"):
        data = plate.levels[0][2].compute()
    assert not data[:, 8:, 16:].any()
    assert (data[:, :8, :8] == 12).all()
    # A view that touches only the broken field is an error, not a blank picture.
    with pytest.raises(StoreAccessError, match="B/3/2"):
        plate.levels[0][2, :, 8:, 16:].compute()


def test_fields_with_other_level_names_are_found(tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.4", fields=1)
    field = zarr.open_group(path / "B" / "3" / "0", mode="a")
    field.create_array("s0", shape=(2, 8, 8), dtype="uint8", chunks=(2, 8, 8), fill_value=99)
    attrs = dict(field.attrs)
    attrs["multiscales"][0]["datasets"] = attrs["multiscales"][0]["datasets"][:1]
    attrs["multiscales"][0]["datasets"][0]["path"] = "s0"
    field.attrs.put(attrs)
    del field["0"]
    (plate,) = read_ome_zarr(str(path))
    assert (plate.levels[0][0, :, 8:, 16:].compute() == 99).all()


def test_missing_wells_cost_no_memory(tmp_path):
    """A 16 x 24 plate of 2048^2 fields with one well present (25 GB if materialised)."""
    rows = tuple("ABCDEFGHIJKLMNOP")
    columns = tuple(str(c) for c in range(1, 25))
    path = write_plate(
        tmp_path / "big.zarr",
        "0.5",
        rows=rows,
        columns=columns,
        wells=("A/1",),
        fields=1,
        shape=(8, 8),
    )
    # Swap the field for a large, never-written (fill-only) array.
    big = zarr.open_group(path / "A" / "1" / "0", mode="a")
    big.create_array("0", shape=(2048, 2048), dtype="uint16", chunks=(512, 512), overwrite=True)
    big.create_array("1", shape=(1024, 1024), dtype="uint16", chunks=(512, 512), overwrite=True)
    attrs = dict(big.attrs)
    for dataset in attrs["ome"]["multiscales"][0]["datasets"]:
        dataset["coordinateTransformations"][0]["scale"] = dataset["coordinateTransformations"][0][
            "scale"
        ][-2:]
    attrs["ome"]["multiscales"][0]["axes"] = attrs["ome"]["multiscales"][0]["axes"][-2:]
    big.attrs.put(attrs)
    (plate,) = read_ome_zarr(str(path))
    level = plate.levels[0]
    assert level.shape == (1, 16 * 2048, 24 * 2048)
    tracemalloc.start()
    try:
        corner = level[0, -600:, -600:].compute()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert corner.shape == (600, 600)
    assert not corner.any()
    assert peak < 50 * 2**20


def test_fields_of_other_sizes_are_padded_or_cropped(tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.4", fields=1, shape=(8, 8))
    small = zarr.open_group(path / "B" / "3" / "0", mode="a")
    small.create_array(
        "0", shape=(6, 5), dtype="uint8", chunks=(6, 5), fill_value=7, overwrite=True
    )
    (plate,) = read_ome_zarr(str(path))
    assert plate.levels[0].shape == (1, 16, 24)
    data = plate.levels[0][0].compute()
    assert (data[8:14, 16:21] == 7).all()
    assert not data[14:, 16:].any()
    assert not data[8:, 21:].any()


def test_well_warnings_are_summarised(tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.4", fields=2, shape=(4, 4))
    for field in ("0", "1"):
        attrs_file = path / "B" / "3" / field / ".zattrs"
        attrs_file.write_text(attrs_file.read_text().replace('"micrometer"', '"pixel"'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_ome_zarr(str(path / "B" / "3"))
    messages = [str(w.message) for w in caught if issubclass(w.category, NgffComplianceWarning)]
    assert len(messages) == 1
    assert messages[0].startswith("2 fields of 2: <field>: units that are not OME-NGFF")


def test_plate_without_readable_field_is_an_error(tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.5", fields=1)
    for well in ("A/1", "B/3"):
        (path / well / "0" / "zarr.json").write_text("[]")
    with pytest.raises(MetadataError, match="no readable field"):
        read_ome_zarr(str(path))


def test_opening_a_plate_over_http_reads_metadata_only(tmp_path):
    """A 4 x 6 plate of 3 fields: the wells' documents and the first field, no chunk."""
    rows, columns = tuple("ABCD"), tuple(str(c) for c in range(1, 7))
    wells = tuple(f"{r}/{c}" for r in rows for c in columns)
    path = write_plate(
        tmp_path / "p.zarr", "0.5", rows=rows, columns=columns, wells=wells, fields=3, labels=True
    )
    requests: list[str] = []
    with serve(tmp_path, listable=False, requests=requests) as url:
        (plate,) = read_ome_zarr(f"{url}/p.zarr")
        opened = list(requests)
        assert plate.levels[0].shape == (3, 2, 32, 48)
        # Metadata only: the plate, 24 wells and the first field with its labels.
        assert all(r.endswith(("zarr.json", ".zattrs", ".zgroup", ".zmetadata")) for r in opened)
        assert len(opened) < 24 + 12
        assert sum(r.count("/") == 4 and r.endswith("zarr.json") for r in opened) == 24
        # Nothing inside a well but the first field of the first one.
        inside = [r for r in opened if r.count("/") > 4]
        assert inside
        assert all(r.startswith("/p.zarr/A/1/0/") for r in inside)
        requests.clear()
        corner = plate.levels[-1][2, 1, :4, :4].compute()  # field 2 of A/1, smallest level
        assert (corner == 12).all()
        assert all(r.startswith("/p.zarr/A/1/2/") for r in requests)
    assert path.exists()
