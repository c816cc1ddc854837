"""Writing HCS plates: metadata, fields, labels, and what other tools make of them."""

from __future__ import annotations

import warnings

import ngff_zarr
import numpy as np
import ome_zarr_models
import pytest
import zarr

from napari_omezarr_x.errors import StoreExistsError
from napari_omezarr_x.model import Channel
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.spec.validate import validate_store
from napari_omezarr_x.write import FieldSpec, LabelsSpec, WellSpec, write_plate

VERSIONS = ["0.4", "0.5"]
CUBE = np.ones((3, 3, 3, 3), dtype=np.uint8)  # labels with more axes than a cyx field


def field(value: int, shape: tuple[int, ...] = (2, 40, 48)) -> np.ndarray:
    """A field whose pixels say which it is: value, plus a small ramp along x."""
    return np.full(shape, value, dtype=np.uint16) + np.arange(shape[-1], dtype=np.uint16)


def nuclei(value: int, shape: tuple[int, int] = (40, 48)) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.uint32)
    labels[5:15, 10:30] = value
    return labels


def plate_wells() -> list[WellSpec]:
    return [
        WellSpec(
            "A",
            "1",
            [
                FieldSpec(field(100), acquisition=0, labels=[LabelsSpec(nuclei(1), "nuclei")]),
                FieldSpec(field(110), acquisition=1, labels=[LabelsSpec(nuclei(2), "nuclei")]),
            ],
        ),
        WellSpec("B", "3", [FieldSpec(field(200), acquisition=0), field(210)]),
    ]


def write(path, version, **extra):
    return write_plate(
        path,
        plate_wells(),
        rows=["A", "B"],
        columns=["1", "2", "3"],
        name="written plate",
        acquisitions=[{"id": 0, "name": "first"}, {"id": 1}],
        axes="cyx",
        units=[None, "micrometer", "micrometer"],
        scale=[1.0, 0.5, 0.5],
        channels=[Channel(label="DNA", color="0000FF"), Channel(label="actin")],
        version=version,
        **extra,
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_plate_round_trip(tmp_path, version):
    path = write(tmp_path / "plate.ome.zarr", version)
    (plate,) = read_ome_zarr(path, acquisition="all")
    layout = plate.plate
    assert (layout.name, layout.rows, layout.columns) == (
        "written plate",
        ["A", "B"],
        ["1", "2", "3"],
    )
    assert [(w.path, w.fields, w.acquisitions) for w in layout.wells] == [
        ("A/1", ["0", "1"], [0, 1]),
        ("B/3", ["0", "1"], [0, None]),
    ]
    assert layout.acquisitions == [{"id": 0, "name": "first"}, {"id": 1}]
    assert [c.label for c in plate.channels] == ["DNA", "actin"]
    assert plate.scale[-2:] == (0.5, 0.5)
    data = plate.levels[0].compute()
    np.testing.assert_array_equal(data[1, :, :40, :48], field(110))
    np.testing.assert_array_equal(data[1, :, 40:, 96:], field(210))
    (cells,) = plate.labels
    assert cells.scale[-2:] == (0.5, 0.5)  # labels take the field's geometry
    np.testing.assert_array_equal(cells.levels[0][1, :40, :48].compute(), nuclei(2))
    assert not cells.levels[0][:, 40:, 96:].compute().any()  # B/3 has no labels
    (well,) = read_ome_zarr(path + "/B/3")
    np.testing.assert_array_equal(well.levels[0][0].compute(), field(200))


@pytest.mark.parametrize("version", VERSIONS)
def test_written_plate_validates_and_opens_elsewhere_as_a_plate(tmp_path, version):
    from napari_ome_zarr import napari_get_reader
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Plate as OmeZarrPlate
    from ome_zarr.reader import Reader

    path = write(tmp_path / "plate.ome.zarr", version)
    report = validate_store(path)
    assert report.valid, report.errors
    group = zarr.open_group(path, mode="r")
    model = ome_zarr_models.open_ome_zarr(group)
    assert type(model).__name__ == "HCS"
    assert type(model).__module__.endswith(f"v0{version[-1]}.hcs")
    attrs = group.attrs.asdict()
    ngff_zarr.validate(attrs, version=version, model="plate")
    well_attrs = zarr.open_group(path, path="A/1", mode="r").attrs.asdict()
    ngff_zarr.validate(well_attrs, version=version, model="well")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodes = list(Reader(parse_url(path))())
        assert any(isinstance(spec, OmeZarrPlate) for spec in nodes[0].specs)
        assert nodes[0].data[0].shape == (2, 80, 144)
        layers = napari_get_reader(path)(path)
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "labels"]
    assert layers[0][0][0].shape == (2, 80, 144)  # their mosaic of first fields


def test_rows_and_columns_default_to_the_wells(tmp_path):
    wells = [WellSpec("B", "10", [field(1)]), WellSpec("AA", "2", [field(2)])]
    path = write_plate(tmp_path / "p.zarr", wells, axes="cyx")
    (plate,) = read_ome_zarr(path)
    assert plate.plate.rows == ["B", "AA"]
    assert plate.plate.columns == ["2", "10"]


@pytest.mark.parametrize(
    ("wells", "options", "message"),
    [
        ([WellSpec("A-1", "1", [field(1)])], {}, "letters and digits"),
        ([WellSpec("A", "1", [field(1)]), WellSpec("A", "1", [field(2)])], {}, "twice"),
        ([WellSpec("A", "1", [])], {}, "no field"),
        ([WellSpec("C", "1", [field(1)])], {"rows": ["A", "B"]}, "not on the plate's grid"),
        ([WellSpec("A", "1", [FieldSpec(field(1), acquisition=3)])], {}, "acquisition 3"),
        (
            [WellSpec("A", "1", [FieldSpec(field(1), group="f"), FieldSpec(field(2), group="f")])],
            {},
            "two fields named",
        ),
        (
            [
                WellSpec(
                    "A",
                    "1",
                    [FieldSpec(field(1), labels=[LabelsSpec(np.ones((3, 3, 3, 3), "u1"), "x")])],
                )
            ],
            {},
            "do not fit the field",
        ),
        ([], {}, "at least one well"),
    ],
)
def test_bad_plates_are_refused(tmp_path, wells, options, message):
    with pytest.raises(ValueError, match=message):
        write_plate(tmp_path / "p.zarr", wells, axes="cyx", **options)
    assert not (tmp_path / "p.zarr").exists()


def test_failed_write_leaves_the_previous_plate(tmp_path):
    import dask.array as da

    path = write(tmp_path / "plate.ome.zarr", "0.5")

    def explode(block):
        raise OSError("disk on fire")

    broken = da.from_array(field(1), chunks=(1, 20, 48)).map_blocks(explode, dtype=np.uint16)
    with pytest.raises(OSError, match="disk on fire"):
        write_plate(path, [WellSpec("A", "1", [broken])], axes="cyx", overwrite=True)
    (plate,) = read_ome_zarr(path, acquisition="all")
    assert plate.plate.name == "written plate"
    with pytest.raises(StoreExistsError):
        write_plate(path, [WellSpec("A", "1", [field(1)])], axes="cyx")
    assert not list(tmp_path.glob(".plate.ome.zarr.partial-*"))


def test_plate_written_to_an_object_store(s3_env):
    """Into a bucket (local S3 server): the plate appears whole, then opens as written."""
    from s3_helpers import PRIVATE

    url = write(f"s3://{PRIVATE}/plates/written.ome.zarr", "0.5")
    assert url == f"s3://{PRIVATE}/plates/written.ome.zarr"
    (plate,) = read_ome_zarr(url, acquisition="all")
    assert [w.path for w in plate.plate.wells] == ["A/1", "B/3"]
    np.testing.assert_array_equal(plate.levels[0][1, :, 40:, 96:].compute(), field(210))
    (cells,) = plate.labels
    np.testing.assert_array_equal(cells.levels[0][0, :40, :48].compute(), nuclei(1))
