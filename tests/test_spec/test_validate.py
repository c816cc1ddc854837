"""`validate`: the NGFF spec's own conformance cases, and hierarchy checks on real stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import CONFORMANCE, CORPUS_DATASETS
from napari_omezarr_x.errors import StoreAccessError
from napari_omezarr_x.spec.validate import validate_store

CASES = sorted(
    p.relative_to(CONFORMANCE).as_posix() for p in CONFORMANCE.glob("*/*/*/*/*.ome.zarr")
)


@pytest.mark.parametrize("case", CASES)
def test_conformance_case_verdict(conformance_dir: Path, case: str) -> None:
    """Each case is judged as its folder says (strict/ cases with --strict)."""
    _version, mode, verdict, _kind, _name = case.split("/")
    report = validate_store(
        str(conformance_dir / case), strict=mode == "strict", metadata_only=True
    )
    assert report.valid is (verdict == "valid"), [str(e) for e in report.errors]
    for issue in report.errors:
        assert issue.location
        assert issue.message


def test_all_conformance_cases_are_collected(conformance_dir: Path) -> None:
    assert len(CASES) == 263


def _write_image(
    root: Path,
    version: str,
    shapes: list[tuple[int, ...]],
    *,
    dtype: str = "uint8",
    axes: str = "yx",
    image_label: bool = False,
) -> zarr.Group:
    """A small OME-Zarr image written with zarr directly (no code of ours)."""
    zarr_format = 3 if version == "0.5" else 2
    group = zarr.open_group(root, mode="w", zarr_format=zarr_format)
    for i, shape in enumerate(shapes):
        arr = group.create_array(str(i), shape=shape, dtype=dtype, chunks=shape)
        arr[...] = np.ones(shape, dtype=dtype)
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    multiscale = {
        "axes": [{"name": a, "type": kinds[a]} for a in axes],
        "datasets": [
            {
                "path": str(i),
                "coordinateTransformations": [{"type": "scale", "scale": [2.0**i] * len(axes)}],
            }
            for i in range(len(shapes))
        ],
    }
    content: dict = {"multiscales": [multiscale]}
    if image_label:
        content["image-label"] = {"colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}]}
    if version == "0.5":
        group.attrs["ome"] = {"version": "0.5", **content}
    else:
        multiscale["version"] = "0.4"
        if image_label:
            content["image-label"]["version"] = "0.4"
        group.attrs.update(content)
    return group


def _messages(report) -> str:
    return "\n".join(str(e) for e in report.errors)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_hierarchy_valid_image_with_labels(tmp_path: Path, version: str) -> None:
    root = tmp_path / "img.zarr"
    _write_image(root, version, [(32, 32), (16, 16)])
    labels = zarr.open_group(root / "labels", mode="w", zarr_format=3 if version == "0.5" else 2)
    labels.attrs.update(
        {"ome": {"version": "0.5", "labels": ["cells"]}}
        if version == "0.5"
        else {"labels": ["cells"]}
    )
    _write_image(
        root / "labels" / "cells", version, [(32, 32), (16, 16)], dtype="uint16", image_label=True
    )
    report = validate_store(str(root))
    assert report.valid, _messages(report)
    assert report.version == version


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_hierarchy_errors_name_the_array(tmp_path: Path, version: str) -> None:
    root = tmp_path / "img.zarr"
    # level 1 is larger than level 0, and level 2 is named but missing
    group = _write_image(root, version, [(16, 16), (32, 32)])
    attrs = dict(group.attrs)
    ms = (attrs["ome"] if version == "0.5" else attrs)["multiscales"][0]
    ms["datasets"].append(
        {"path": "2", "coordinateTransformations": [{"type": "scale", "scale": [4.0, 4.0]}]}
    )
    group.attrs.update(attrs)
    report = validate_store(str(root))
    text = _messages(report)
    assert not report.valid
    assert "larger than the level before it" in text
    assert "2: array named by" in text
    assert "does not exist" in text
    assert validate_store(str(root), metadata_only=True).valid


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_hierarchy_ndim_and_label_dtype(tmp_path: Path, version: str) -> None:
    root = tmp_path / "img.zarr"
    _write_image(root, version, [(4, 32, 32)], axes="yx")
    report = validate_store(str(root))
    assert "array has 3 dimensions but the axes name 2" in _messages(report)

    labels = tmp_path / "lab.zarr"
    _write_image(labels, version, [(32, 32)], dtype="float32", image_label=True)
    report = validate_store(str(labels))
    assert "labels must be integers" in _messages(report)


def test_plate_wells_must_exist(tmp_path: Path) -> None:
    root = tmp_path / "plate.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=3)
    group.attrs["ome"] = {
        "version": "0.5",
        "plate": {
            "rows": [{"name": "A"}],
            "columns": [{"name": "1"}, {"name": "2"}],
            "wells": [
                {"path": "A/1", "rowIndex": 0, "columnIndex": 0},
                {"path": "A/2", "rowIndex": 0, "columnIndex": 1},
            ],
        },
    }
    well = zarr.open_group(root / "A" / "1", mode="w", zarr_format=3)
    well.attrs["ome"] = {"version": "0.5", "well": {"images": [{"path": "0"}]}}
    _write_image(root / "A" / "1" / "0", "0.5", [(8, 8)])
    report = validate_store(str(root))
    assert [e.location for e in report.errors] == ["A/2"]
    assert validate_store(str(root), metadata_only=True).valid


def test_broken_json_is_invalid_with_location(tmp_path: Path) -> None:
    root = tmp_path / "broken.zarr"
    root.mkdir()
    (root / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", ')
    report = validate_store(str(root))
    assert not report.valid
    assert report.errors[0].location == "zarr.json"
    assert "not valid JSON" in report.errors[0].message


def test_unreadable_paths_raise(tmp_path: Path) -> None:
    with pytest.raises(StoreAccessError, match="no such file"):
        validate_store(str(tmp_path / "missing.zarr"))
    with pytest.raises(StoreAccessError, match="no zarr metadata"):
        validate_store(str(tmp_path))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(StoreAccessError, match="not a folder"):
        validate_store(str(text))


@pytest.mark.parametrize("dataset", CORPUS_DATASETS, ids=lambda d: d["id"])
def test_corpus_gives_a_verdict(corpus_dir: Path, dataset: dict) -> None:
    """Every third-party store gets a verdict and the version it declares."""
    path = corpus_dir.parent.parent / dataset["open_path"]
    report = validate_store(str(path))
    assert report.version is not None
    assert report.version.startswith(tuple(str(v)[:3] for v in dataset["ngff_versions"]))
    if not report.valid:
        assert all(e.location and e.message for e in report.errors)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_writer_output_is_valid(tmp_path: Path, version: str) -> None:
    write = pytest.importorskip("napari_omezarr_x.write")
    data = np.arange(2 * 3 * 40 * 48, dtype="uint16").reshape(2, 3, 40, 48)
    out = write.write_image(
        str(tmp_path / "w.ome.zarr"),
        data,
        axes="czyx",
        version=version,
        scale=(1.0, 0.5, 0.25, 0.25),
        levels=3,
    )
    write.add_labels(out, (data[0] % 7).astype("uint8"), "cells")
    report = validate_store(str(out))
    assert report.valid, _messages(report)
    assert report.version == version


def _v06_image(root: Path, shape: tuple[int, int]) -> None:
    group = zarr.open_group(root, mode="w", zarr_format=3)
    group.create_array("0", shape=shape, dtype="uint8", chunks=shape)[...] = 1
    space = [{"name": n, "type": "space", "unit": "micrometer"} for n in ("y", "x")]
    group.attrs["ome"] = {
        "version": "0.6",
        "multiscales": [
            {
                "coordinateSystems": [{"name": "physical", "axes": space}],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {
                                "type": "scale",
                                "scale": [0.5, 0.5],
                                "input": {"path": "0"},
                                "output": {"name": "physical"},
                            }
                        ],
                    }
                ],
            }
        ],
    }


def test_scene_images_must_exist(tmp_path: Path) -> None:
    """A 0.6 scene: the images its transformations reference by path are checked too."""
    root = tmp_path / "scene.zarr"
    scene = zarr.open_group(root, mode="w", zarr_format=3)
    scene.attrs["ome"] = {
        "version": "0.6",
        "scene": {
            "coordinateTransformations": [
                {
                    "type": "translation",
                    "translation": [10.0, 0.0],
                    "input": {"name": "physical", "path": "a"},
                    "output": {"name": "physical", "path": "b"},
                }
            ]
        },
    }
    _v06_image(root / "a", (8, 8))
    report = validate_store(str(root))
    assert [e.location for e in report.errors] == ["b"]
    _v06_image(root / "b", (4, 4))
    report = validate_store(str(root))
    assert report.valid, _messages(report)
    assert report.version == "0.6"


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("ome-zarr-py_ngff-0.1.zarr", True),
        ("ome-zarr-py_ngff-0.2.zarr", True),
        ("tables-prototype_test_image_ngff-0.3.zarr", True),
        ("fiji-java_5d_dataset_v4.ome.zarr", True),
        ("zarr-java_ome_v0.5_hcs.zarr", True),
        ("neuroglancer_ngff-zarr_simple_0.5.zip", True),
        # empty multiscale coordinateTransformations list
        ("mobie-io_blobs.ome.zarr", False),
        # omero window values written as strings
        ("fractal_plate_ones.zarr", False),
    ],
)
def test_corpus_verdicts(corpus_dir: Path, name: str, valid: bool) -> None:
    report = validate_store(str(corpus_dir / name))
    assert report.valid is valid, _messages(report)


def test_strict_requires_image_label_on_04_labels(tmp_path: Path) -> None:
    """0.4 says a label image SHOULD have image-label: a warning, an error with --strict."""
    root = tmp_path / "img.zarr"
    _write_image(root, "0.4", [(16, 16)])
    zarr.open_group(root / "labels", mode="w", zarr_format=2).attrs["labels"] = ["cells"]
    _write_image(root / "labels" / "cells", "0.4", [(16, 16)], dtype="uint16")
    report = validate_store(str(root))
    assert report.valid
    assert any("image-label" in w.message for w in report.warnings)
    strict = validate_store(str(root), strict=True)
    assert any("image-label" in e.message for e in strict.errors)


def test_zarr_format_must_match_the_version(tmp_path: Path) -> None:
    """0.5 metadata in a zarr v2 store is an error; 0.4 metadata in zarr v3 a warning."""
    multiscale = {
        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}
        ],
    }
    v2 = zarr.open_group(tmp_path / "v2.zarr", mode="w", zarr_format=2)
    v2.create_array("0", shape=(8, 8), dtype="uint8")[...] = 1
    v2.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    assert "requires zarr v3" in _messages(validate_store(str(tmp_path / "v2.zarr")))

    v3 = zarr.open_group(tmp_path / "v3.zarr", mode="w", zarr_format=3)
    v3.create_array("0", shape=(8, 8), dtype="uint8")[...] = 1
    v3.attrs["multiscales"] = [{**multiscale, "version": "0.4"}]
    report = validate_store(str(tmp_path / "v3.zarr"))
    assert report.valid, _messages(report)
    assert any("defined for zarr v2" in w.message for w in report.warnings)


@pytest.mark.parametrize("dev", ["0.6.dev1", "0.6.dev2", "0.6-dev", "0.6rc0"])
def test_development_versions_are_checked_with_their_release_schemas(
    tmp_path, corpus_dir, dev, capsys
):
    """0.6.dev1 stores open fine; they were reported invalid for not being '0.6'."""
    import json
    import shutil

    from napari_omezarr_x.cli import main

    path = tmp_path / "dev.ome.zarr"
    shutil.copytree(corpus_dir / "neuroglancer_0.6dev1_anisotropic_rotation.zarr", path)
    doc = json.loads((path / "zarr.json").read_text())
    doc["attributes"]["ome"]["version"] = dev
    (path / "zarr.json").write_text(json.dumps(doc))
    report = validate_store(str(path))
    assert report.valid, [str(e) for e in report.errors]
    assert (report.version, report.schema) == (dev, "0.6")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"valid OME-NGFF {dev}" in out
    assert "checked against the OME-NGFF 0.6 JSON schemas (ngff-zarr " in out


def test_corpus_0_6_dev1_store_is_valid(corpus_dir: Path) -> None:
    report = validate_store(str(corpus_dir / "neuroglancer_0.6dev1_anisotropic_rotation.zarr"))
    assert report.valid, [str(e) for e in report.errors]
    assert report.schema == "0.6"
    assert validate_store(str(corpus_dir / "fiji-java_2d_dataset_v4.ome.zarr")).schema == "0.4"


@pytest.mark.parametrize("strict", [False, True])
def test_omero_channel_count_must_match_the_channel_axis(tmp_path, strict):
    from napari_omezarr_x.model import Channel
    from napari_omezarr_x.write import write_image

    path = tmp_path / "img.ome.zarr"
    write_image(path, np.zeros((2, 8, 8), np.uint8), axes="cyx",
                channels=[Channel(label="a"), Channel(label="b")])  # fmt: skip
    assert validate_store(str(path), strict=True).valid
    import json

    doc = path / "zarr.json"
    meta = json.loads(doc.read_text())
    meta["attributes"]["ome"]["omero"]["channels"].pop()
    doc.write_text(json.dumps(meta))
    report = validate_store(str(path), strict=strict)
    found = report.errors if strict else report.warnings
    assert [str(i) for i in found] == [
        "zarr.json#$.attributes.ome.omero.channels: lists 1 channels but the channel axis "
        "'c' has length 2"
    ]


@pytest.mark.parametrize(
    ("version", "shards"), [("0.4", None), ("0.5", None), ("0.5", (1, 32, 32))]
)
def test_data_check_reports_each_corrupt_chunk_by_key(tmp_path, version, shards, capsys):
    """A store with a corrupt chunk was called valid: the metadata was fine."""
    from napari_omezarr_x.cli import main
    from napari_omezarr_x.write import add_labels, write_image

    path = tmp_path / "img.ome.zarr"
    data = np.random.default_rng(1).integers(0, 999, (2, 64, 64), dtype=np.uint16)
    write_image(path, data, axes="zyx", chunks=(1, 16, 16), shards=shards, version=version)
    add_labels(path, (data > 500).astype(np.uint8), "cells")
    if version == "0.4":
        bad = ["0/1/0/2", "labels/cells/0/1/0/0"]
    elif shards is None:
        bad = ["0/c/1/0/2", "labels/cells/0/c/1/0/0"]
    else:
        bad = ["0/c/1/0/0"]
    for key in bad:
        chunk = path / key
        chunk.write_bytes(b"\x01" * chunk.stat().st_size)
    progress: list[tuple[int, int]] = []
    report = validate_store(str(path), progress=lambda d, t: progress.append((d, t)))
    assert not report.valid
    keys = [e.location for e in report.errors]
    if shards is None:
        assert keys == bad
    else:  # the shard's inner chunks that fail are named
        assert keys == [f"0/c/1/0/0 (inner chunk (0, {i}, {j}))" for i in (0, 1) for j in (0, 1)]
    assert all("chunk cannot be read or decoded" in e.message for e in report.errors)
    assert progress[-1][0] == progress[-1][1] > 0
    assert validate_store(str(path), data=False).valid
    assert validate_store(str(path), metadata_only=True).valid
    assert main(["validate", str(path), "--no-data"]) == 0
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert f"error: {bad[0]}" in captured.out
    assert "reading chunks [" in captured.err


def test_data_check_is_off_by_default_for_urls(tmp_path):
    from http_helpers import serve
    from napari_omezarr_x.write import write_image

    path = tmp_path / "img.ome.zarr"
    write_image(path, np.ones((32, 32), np.uint8), chunks=(16, 16))
    (path / "0" / "c" / "0" / "0").write_bytes(b"junk")
    with serve(tmp_path) as url:
        assert validate_store(f"{url}/img.ome.zarr").valid
        report = validate_store(f"{url}/img.ome.zarr", data=True)
    assert [e.location for e in report.errors] == ["0/c/0/0"]
