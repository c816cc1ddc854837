"""Metadata parsing against the OME-NGFF specification's own conformance cases."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from conftest import CONFORMANCE
from napari_omezarr_x.errors import MetadataError, NgffComplianceWarning
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.read.plates import parse_plate
from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.spec.transforms import placement


def _cases(kind: str, validity: str) -> list[Path]:
    return sorted(CONFORMANCE.glob(f"*/*/{validity}/{kind}/*.ome.zarr"))


def _attrs(case: Path) -> dict:
    if (case / "zarr.json").is_file():
        doc = json.loads((case / "zarr.json").read_text(), strict=False)
        return doc.get("attributes", {})
    return json.loads((case / ".zattrs").read_text(), strict=False)


def _case_id(case: Path) -> str:
    return "/".join(case.parts[-5:])


# Invalid cases whose structure leaves nothing to read: these must be refused.
UNREADABLE_IMAGES = {
    "duplicate_axes",
    "missing_axes_name",
    "missing_datasets",
    "missing_path",
    "no_datasets",
    "no_multiscales",
}


def _parse_image(attrs: dict, where: str) -> md.Multiscale:
    ms = md.parse_multiscale(attrs, where)
    ndim = len(ms.axes) if ms.axes else 5
    for level in range(len(ms.paths)):
        dataset, multiscale = ms.matrices(level, ndim, where)
        placement(dataset, multiscale)
    md.parse_channels(attrs, where)
    return ms


def _scale_lengths_mismatch(attrs: dict) -> bool:
    ms = md.ome_attributes(attrs)["multiscales"][0]
    n_axes = len(ms.get("axes") or ms["coordinateSystems"][0]["axes"])
    scales = [
        t["scale"]
        for ds in ms["datasets"]
        for t in ds.get("coordinateTransformations", [])
        if t.get("type") == "scale"
    ]
    return any(len(s) != n_axes for s in scales)


@pytest.mark.parametrize("case", _cases("image", "valid"), ids=_case_id)
def test_valid_image_metadata_parses(conformance_dir, case):
    attrs = _attrs(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NgffComplianceWarning)
        if _scale_lengths_mismatch(attrs):
            # Schema-valid yet e.g. 3 axes with a 2-value scale: refused with the reason.
            with pytest.raises(MetadataError, match=r"values, expected \d"):
                _parse_image(attrs, "case")
            return
        ms = _parse_image(attrs, "case")
    assert ms.paths
    assert md.normalize_version(ms.version, "case") in md.KNOWN_VERSIONS


@pytest.mark.parametrize(
    "case",
    [c for c in _cases("image", "invalid") if c.name.split(".")[0] in UNREADABLE_IMAGES],
    ids=_case_id,
)
def test_unreadable_image_metadata_is_refused(conformance_dir, case):
    with pytest.raises(MetadataError, match=r"^the-case: "):
        _parse_image(_attrs(case), "the-case")


def test_invalid_axis_units_warn(conformance_dir):
    for case in CONFORMANCE.glob("*/spec/valid/image/invalid_axis_units.ome.zarr"):
        with pytest.warns(NgffComplianceWarning, match="micron"):
            ms = md.parse_multiscale(_attrs(case), "case")
        assert {a.unit for a in ms.axes} == {"micrometer"}


@pytest.mark.parametrize("case", _cases("label", "valid"), ids=_case_id)
def test_valid_image_label(conformance_dir, case):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NgffComplianceWarning)
        meta = md.parse_image_label(_attrs(case), "case")
    for value, rgba in meta.colors.items():
        assert isinstance(value, int)
        assert all(0.0 <= c <= 1.0 for c in rgba)


@pytest.mark.parametrize(
    "name", ["colors_no_label_value", "colors_rgba_length", "colors_rgba_type"]
)
def test_malformed_label_colours_are_skipped_with_warning(conformance_dir, name):
    cases = list(CONFORMANCE.glob(f"*/spec/invalid/label/{name}.ome.zarr"))
    assert cases
    for case in cases:
        try:
            _attrs(case)
        except json.JSONDecodeError:
            # One case file is itself broken JSON: reading it must say so.
            with pytest.raises(MetadataError, match=rf"{case.name}: malformed JSON"):
                read_ome_zarr(str(case))
            continue
        with pytest.warns(NgffComplianceWarning, match="malformed"):
            meta = md.parse_image_label(_attrs(case), "case")
        assert len(meta.colors) < len(_attrs_colors(case))


def _attrs_colors(case: Path) -> list:
    return md.ome_attributes(_attrs(case))["image-label"]["colors"]


@pytest.mark.parametrize("case", _cases("plate", "valid"), ids=_case_id)
def test_valid_plates_parse(conformance_dir, case):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NgffComplianceWarning)
        layout = parse_plate(_attrs(case), "case")
    assert layout.wells
    for row, col in layout.wells.values():
        assert 0 <= row < len(layout.rows)
        assert 0 <= col < len(layout.columns)


@pytest.mark.parametrize(
    "name", ["missing_rows", "missing_columns", "missing_wells", "empty_wells", "empty_rows"]
)
def test_plates_without_grid_are_refused(conformance_dir, name):
    for case in CONFORMANCE.glob(f"*/spec/invalid/plate/{name}.ome.zarr"):
        with pytest.raises(MetadataError, match=r"^case: plate needs"):
            parse_plate(_attrs(case), "case")


def test_plate_well_positions():
    plate = {
        "rows": [{"name": "A"}, {"name": "B"}],
        "columns": [{"name": "1"}, {"name": "2"}],
        "wells": [
            {"path": "A/2", "rowIndex": 0, "columnIndex": 1},
            {"path": "B/1"},  # pre-0.4: position from the path
            {"path": "C/9"},  # nowhere on the grid
            {"path": "B/2", "rowIndex": 5, "columnIndex": 0},
        ],
    }
    with pytest.warns(NgffComplianceWarning, match="no valid row/column"):
        layout = parse_plate({"plate": plate}, "w")
    assert layout.wells == {"A/2": (0, 1), "B/1": (1, 0)}


@pytest.mark.parametrize(
    ("version", "family"),
    [
        ("0.1", "0.1"),
        ("0.3", "0.3"),
        ("0.4", "0.4"),
        ("0.4-dev-spatialdata", "0.4"),
        ("0.5-dev-spatialdata", "0.5"),
        ("0.5-dev", "0.5"),
        ("0.6.dev1", "0.6"),
        ("0.6rc0", "0.6"),
    ],
)
def test_versions(version, family):
    assert md.normalize_version(version, "w") == family


@pytest.mark.parametrize("version", ["foo", "1.0", "0.9", None, "0.16.1"])
def test_unknown_versions(version):
    with pytest.raises(MetadataError, match=r"^w: unknown OME-NGFF version"):
        md.normalize_version(version, "w")


def test_string_axes_get_types():
    axes = md.parse_axes(["t", "c", "z", "y", "x", "angle"], "w")
    assert [a.type for a in axes] == ["time", "channel", "space", "space", "space", None]


def test_implied_axes():
    assert [a.name for a in md.implied_axes(3)] == ["z", "y", "x"]
    assert md.implied_axes(5)[1].type == "channel"


def test_unit_problems_are_reported_once_per_axes_list():
    raw = [{"name": n, "type": "space", "unit": "mm"} for n in "zyx"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        axes = md.parse_axes(raw, "w")
    assert [str(w.message) for w in caught] == [
        "w: units that are not OME-NGFF unit names (z: 'mm' read as 'millimeter'; "
        "y: 'mm' read as 'millimeter'; x: 'mm' read as 'millimeter')"
    ]
    assert {a.unit for a in axes} == {"millimeter"}


def test_units():
    assert md.check_unit("nanometer", "x", "w") == "nanometer"
    assert md.check_unit(None, "x", "w") is None
    with pytest.warns(NgffComplianceWarning, match="read as 'micrometer'"):
        assert md.check_unit("µm", "x", "w") == "micrometer"
    with pytest.warns(NgffComplianceWarning, match="unknown 'pixel' dropped"):
        assert md.check_unit("pixel", "x", "w") is None


def test_channels_tolerate_partial_entries():
    attrs = {
        "omero": {
            "channels": [
                {"label": "a", "color": "ff0000", "window": {"start": 1, "end": 9}},
                "not a dict",
                {"color": "red", "window": {"start": "low"}},
            ]
        }
    }
    with pytest.warns(NgffComplianceWarning, match="'red'"):
        channels = md.parse_channels(attrs, "w")
    assert [c.label for c in channels] == ["a", None, None]
    assert channels[0].color == "FF0000"
    assert (channels[0].start, channels[0].end, channels[0].min) == (1.0, 9.0, None)
    assert channels[1].active
    assert channels[2].color is None
    assert channels[2].start is None


def test_window_numbers_written_as_strings_are_read_with_a_warning():
    """fractal-tasks-core wrote `"start": "0", "end": "10"`; "low" is still no number."""
    window = {"start": "0", "end": "10", "min": "0", "max": "1e3"}
    attrs = {"omero": {"channels": [{"window": window}, {"window": {"start": "low", "end": 5}}]}}
    with pytest.warns(NgffComplianceWarning, match="must be numbers, got strings") as record:
        first, second = md.parse_channels(attrs, "w")
    assert len(record) == 1
    assert (first.start, first.end, first.min, first.max) == (0.0, 10.0, 0.0, 1000.0)
    assert (second.start, second.end) == (None, 5.0)


def test_rendering_model():
    assert md.rendering_model({"omero": {"rdefs": {"model": "greyscale"}}}) == "greyscale"
    assert md.rendering_model({"ome": {"omero": {"rdefs": {"model": "Color"}}}}) == "color"
    assert md.rendering_model({"omero": {"channels": []}}) is None


def test_v3_ome_wrapper_and_labels_outside_it():
    assert md.ome_attributes({"ome": {"version": "0.5", "labels": ["a"]}}) == {
        "version": "0.5",
        "labels": ["a"],
    }
    assert md.label_names({"labels": ["a/", "b"]}) == ["a", "b"]
    assert md.is_ome_node({"ome": {"plate": {}}})
    assert not md.is_ome_node({"something": 1})
