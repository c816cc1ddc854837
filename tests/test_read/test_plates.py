"""Plates and wells as lazy mosaics."""

from __future__ import annotations

import shutil
import tracemalloc
import warnings

import pytest
import zarr

from napari_omezarr_x.errors import NgffComplianceWarning
from napari_omezarr_x.read import looks_like_ome_zarr, read_ome_zarr
from ngff_fixtures import write_plate


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def plate_path(request, tmp_path_factory):
    """Read-only plate shared by the module's tests (written once per version)."""
    folder = tmp_path_factory.mktemp(f"plate-{request.param}")
    return write_plate(folder / "plate.ome.zarr", request.param, labels=True)


def test_plate_mosaic_places_first_fields_on_grid(plate_path):
    assert looks_like_ome_zarr(str(plate_path))
    (plate,) = read_ome_zarr(str(plate_path))
    assert plate.kind == "plate"
    assert plate.name == "test plate"
    assert plate.path == ""
    assert [a.name for a in plate.axes] == ["c", "y", "x"]
    assert plate.scale == (1.0, 0.5, 0.5)
    assert [lvl.shape for lvl in plate.levels] == [(2, 16, 24), (2, 8, 12)]
    data = plate.levels[0].compute()
    assert (data[:, :8, :8] == 10).all()  # A/1, field 0
    assert (data[:, 8:, 16:] == 20).all()  # B/3, field 0
    assert not data[:, :8, 8:].any()  # A/2 and A/3 are not in the plate
    assert not data[:, 8:, :16].any()
    assert (plate.levels[1].compute()[:, 4:, 8:] == 20).all()


def test_plate_label_mosaic(plate_path):
    (plate,) = read_ome_zarr(str(plate_path))
    (cells,) = plate.labels
    assert cells.kind == "labels"
    assert cells.name == "cells"
    assert cells.levels[0].shape == (16, 24)
    labels = cells.levels[0].compute()
    assert labels[:8, :8].any()
    assert not labels[:8, 8:].any()


def test_well_opens_fields_as_grid(plate_path):
    assert looks_like_ome_zarr(str(plate_path / "B" / "3"))
    assert looks_like_ome_zarr(str(plate_path / "B" / "3" / "0"))
    assert not looks_like_ome_zarr(str(plate_path / "B"))  # a row group is plain zarr
    (well,) = read_ome_zarr(str(plate_path / "B" / "3"))
    assert well.kind == "well"
    assert well.path == "B/3"
    assert well.levels[0].shape == (2, 8, 16)  # 2 fields on a 1 x 2 grid
    data = well.levels[0].compute()
    assert (data[:, :, :8] == 20).all()
    assert (data[:, :, 8:] == 21).all()


def test_field_opens_as_image(plate_path):
    (field,) = read_ome_zarr(str(plate_path / "A" / "1" / "1"))
    assert field.kind == "image"
    assert field.path == "A/1/1"
    assert field.store == str(plate_path.resolve())
    assert (field.levels[0].compute() == 11).all()
    assert [lab.name for lab in field.labels] == ["cells"]


def test_well_grid_is_near_square(tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.4", wells=("A/1",), fields=5, shape=(4, 4))
    (well,) = read_ome_zarr(str(path / "A" / "1"))
    assert well.levels[0].shape == (8, 12)  # 5 fields: 2 rows x 3 columns
    data = well.levels[0].compute()
    assert (data[4:, 4:8] == 14).all()
    assert not data[4:, 8:].any()


def test_missing_well_group_warns_and_plate_opens(tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.4")
    shutil.rmtree(path / "B" / "3")
    with pytest.warns(NgffComplianceWarning, match="B/3"):
        (plate,) = read_ome_zarr(str(path))
    assert plate.levels[0].shape == (2, 16, 24)
    assert not plate.levels[0][:, 8:, 16:].compute().any()


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
    (plate,) = read_ome_zarr(str(path))
    level = plate.levels[0]
    assert level.shape == (16 * 2048, 24 * 2048)
    tracemalloc.start()
    try:
        corner = level[-600:, -600:].compute()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert corner.shape == (600, 600)
    assert not corner.any()
    assert peak < 50 * 2**20


def test_fields_of_different_sizes_are_padded(tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.4", fields=1, shape=(8, 8))
    small = zarr.open_group(path / "B" / "3" / "0", mode="a")
    small.create_array(
        "0", shape=(6, 5), dtype="uint8", chunks=(6, 5), fill_value=7, overwrite=True
    )
    (plate,) = read_ome_zarr(str(path))
    assert plate.levels[0].shape == (16, 24)
    data = plate.levels[0].compute()
    assert (data[8:14, 16:21] == 7).all()
    assert not data[14:, 16:].any()
    assert not data[8:, 21:].any()


def test_field_warnings_are_summarised(tmp_path):
    path = write_plate(tmp_path / "p.zarr", "0.4", fields=1, shape=(4, 4))
    for well in ("A/1", "B/3"):
        attrs_file = path / well / "0" / ".zattrs"
        attrs_file.write_text(attrs_file.read_text().replace('"micrometer"', '"pixel"'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_ome_zarr(str(path))
    messages = [str(w.message) for w in caught if issubclass(w.category, NgffComplianceWarning)]
    assert len(messages) == 1
    assert messages[0].startswith("2 fields of 2: <field>: units that are not OME-NGFF")
