"""read_ome_zarr / looks_like_ome_zarr on fixtures of every NGFF version."""

from __future__ import annotations

import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import CORPUS, CORPUS_DATASETS
from napari_omezarr_x.errors import (
    MetadataError,
    NgffComplianceWarning,
    NotOmeZarrError,
    StoreAccessError,
)
from napari_omezarr_x.read import looks_like_ome_zarr, read_ome_zarr
from ngff_fixtures import VERSIONS, set_ome, write_image, write_json, zarr_format

CHANNELS = [
    {"label": "DAPI", "color": "0000FF", "window": {"start": 0, "end": 100, "min": 0, "max": 255}},
    {"label": "GFP", "color": "00ff00", "active": False, "inverted": True},
]
# Labels arrived in NGFF 0.3.
LABEL_VERSIONS = [v for v in VERSIONS if v not in ("0.1", "0.2")]
IMAGE_LABEL = {
    "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}],
    "properties": [{"label-value": 1, "class": "cell"}],
    "source": {"image": "../../"},
}


@pytest.fixture(scope="module", params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def image_path(tmp_path_factory, version):
    """A read-only image (with labels from 0.3 on) shared by the module's tests."""
    labels = None if version in ("0.1", "0.2") else {"cells": IMAGE_LABEL, "plain": {}}
    folder = tmp_path_factory.mktemp(f"image-{version}")
    return write_image(folder / "img.ome.zarr", version, channels=CHANNELS, labels=labels)


def test_reads_every_version(image_path, version):
    (image,) = read_ome_zarr(str(image_path))
    assert [a.name for a in image.axes] == ["t", "c", "z", "y", "x"]
    assert image.channel_axis == 1
    assert [lvl.shape for lvl in image.levels] == [(1, 2, 3, 8, 8), (1, 2, 3, 4, 4)]
    assert image.levels[0].dtype == np.uint16
    # Level contents come back as written (level i holds i*1000 + arange % 200).
    expected = (np.arange(2 * 3 * 4 * 4) % 200 + 1000).reshape(1, 2, 3, 4, 4)
    np.testing.assert_array_equal(image.levels[1].compute(), expected)
    assert image.kind == "image"
    assert image.store == str(image_path.resolve())
    assert image.path == ""
    assert [c.label for c in image.channels] == ["DAPI", "GFP"]
    assert image.channels[1].color == "00FF00"
    assert image.channels[1].active is False
    assert image.channels[1].inverted is True
    assert (image.channels[0].start, image.channels[0].end) == (0.0, 100.0)
    assert image.channels[0].raw["window"]["max"] == 255
    if version in ("0.1", "0.2", "0.3"):
        assert image.scale == (1.0,) * 5
    else:
        assert image.scale == (1.0, 1.0, 1.0, 0.5, 0.5)
        assert image.axes[4].unit == "micrometer"
        assert image.name == "image"


def test_level_chunks_follow_storage(image_path, version):
    (image,) = read_ome_zarr(str(image_path))
    assert image.levels[0].chunksize == (1, 2, 3, 4, 4)


@pytest.mark.parametrize("version", LABEL_VERSIONS, indirect=True)
def test_labels_are_attached(image_path, version):
    (image,) = read_ome_zarr(str(image_path))
    assert [lab.name for lab in image.labels] == ["cells", "plain"]
    cells, plain = image.labels
    assert cells.kind == "labels"
    assert cells.path == "labels/cells"
    assert cells.levels[0].shape == (1, 3, 8, 8)
    assert cells.label.colors == {1: (1.0, 0.0, 0.0, 1.0)}
    assert cells.label.properties == [{"label-value": 1, "class": "cell"}]
    assert cells.label.source == "../../"
    # No image-label but integer data: still a label.
    assert plain.label is not None
    assert plain.label.colors == {}


@pytest.mark.parametrize("version", LABEL_VERSIONS, indirect=True)
def test_open_label_paths_directly(image_path, version):
    assert looks_like_ome_zarr(str(image_path / "labels"))
    assert looks_like_ome_zarr(str(image_path / "labels" / "cells"))
    all_labels = read_ome_zarr(str(image_path / "labels"))
    assert [lab.name for lab in all_labels] == ["cells", "plain"]
    (one,) = read_ome_zarr(str(image_path / "labels" / "cells"))
    assert one.kind == "labels"
    assert one.name == "cells"
    assert one.store == str(image_path.resolve())
    assert one.path == "labels/cells"


def test_looks_like_ome_zarr(image_path, tmp_path):
    assert looks_like_ome_zarr(str(image_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    assert not looks_like_ome_zarr(str(plain))
    assert not looks_like_ome_zarr(str(tmp_path / "missing.zarr"))
    assert not looks_like_ome_zarr(str(tmp_path / "x.tif"))
    zarr.open_group(tmp_path / "just-zarr.zarr", mode="w")
    assert not looks_like_ome_zarr(str(tmp_path / "just-zarr.zarr"))
    assert looks_like_ome_zarr("https://example.org/data/image.ome.zarr/")
    assert not looks_like_ome_zarr("https://example.org/picture.png")


def test_looks_like_is_quiet_on_garbage(tmp_path, capsys):
    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    (bad / ".zattrs").write_text("{not json")
    (tmp_path / "fake.zip").write_text("not a zip")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Claimed, quietly: reading it then names the malformed document.
        assert looks_like_ome_zarr(str(bad))
        assert not looks_like_ome_zarr(str(tmp_path / "fake.zip"))
        assert not looks_like_ome_zarr(None)  # type: ignore[arg-type]
    assert capsys.readouterr() == ("", "")


def test_not_ome_zarr(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    with pytest.raises(NotOmeZarrError, match="plain"):
        read_ome_zarr(str(folder))
    zarr.open_group(tmp_path / "bare.zarr", mode="w")
    with pytest.raises(NotOmeZarrError, match=r"bare\.zarr"):
        read_ome_zarr(str(tmp_path / "bare.zarr"))
    with pytest.raises(StoreAccessError, match=r"missing\.zarr"):
        read_ome_zarr(str(tmp_path / "missing.zarr"))


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_malformed_json_is_claimed_and_names_path(tmp_path, version):
    path = write_image(tmp_path / "img.zarr", version)
    document = ".zattrs" if version == "0.4" else "zarr.json"
    (path / document).write_text('{"multiscales": [')
    # Claimed (not left to napari's "no reader"), so the user learns what is wrong.
    assert looks_like_ome_zarr(str(path))
    with pytest.raises(MetadataError, match=r"img\.zarr.*JSON"):
        read_ome_zarr(str(path))


def test_missing_array_names_path(tmp_path):
    path = write_image(tmp_path / "img.zarr", "0.5")
    doc = zarr.open_group(path, mode="r").attrs.asdict()
    doc["ome"]["multiscales"][0]["datasets"][1]["path"] = "nope"
    write_json(path / "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": doc})
    with pytest.raises(MetadataError, match=r"img\.zarr/nope"):
        read_ome_zarr(str(path))


def test_ndim_mismatch_names_path(tmp_path):
    path = write_image(tmp_path / "img.zarr", "0.4")
    attrs = zarr.open_group(path, mode="r").attrs.asdict()
    ms = attrs["multiscales"][0]
    ms["axes"] = ms["axes"][1:]
    for ds in ms["datasets"]:
        scale = ds["coordinateTransformations"][0]
        scale["scale"] = scale["scale"][1:]
    write_json(path / ".zattrs", attrs)
    with pytest.raises(MetadataError, match=r"img\.zarr/0: array has 5 dimensions.*4 axes"):
        read_ome_zarr(str(path))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ms: ms["datasets"].reverse(), r"img\.zarr/0: level shape .* larger"),
        (lambda ms: ms.update(version="7.3"), r"img\.zarr.*unknown OME-NGFF version '7\.3'"),
        (lambda ms: ms.pop("datasets"), r"img\.zarr: multiscale has no 'datasets'"),
        (lambda ms: ms["axes"][0].pop("name"), r"img\.zarr: axis .* has no 'name'"),
    ],
    ids=["growing-levels", "unknown-version", "no-datasets", "unnamed-axis"],
)
def test_bad_multiscale_names_path(tmp_path, edit, message):
    path = write_image(tmp_path / "img.zarr", "0.4")
    attrs = zarr.open_group(path, mode="r").attrs.asdict()
    edit(attrs["multiscales"][0])
    write_json(path / ".zattrs", attrs)
    with pytest.raises(MetadataError, match=message):
        read_ome_zarr(str(path))


def test_broken_label_warns_image_opens(tmp_path):
    path = write_image(tmp_path / "img.zarr", "0.4", labels={"good": {}, "bad": {}})
    (path / "labels" / "bad" / ".zattrs").write_text("{broken")
    with pytest.warns(NgffComplianceWarning, match=r"labels/bad"):
        (image,) = read_ome_zarr(str(path))
    assert [lab.name for lab in image.labels] == ["good"]


def test_float_label_is_refused_with_warning(tmp_path):
    path = write_image(tmp_path / "img.zarr", "0.4", labels={"f": {}})
    arr = zarr.open_array(path / "labels" / "f" / "0", mode="r")
    zarr.create_array(
        path / "labels" / "f" / "0", shape=arr.shape, dtype="float32", zarr_format=2, overwrite=True
    )
    with pytest.warns(NgffComplianceWarning, match="integers"):
        (image,) = read_ome_zarr(str(path))
    assert image.labels == []


def test_unknown_unit_dropped_with_warning(tmp_path):
    path = write_image(tmp_path / "img.zarr", "0.4")
    attrs = zarr.open_group(path, mode="r").attrs.asdict()
    attrs["multiscales"][0]["axes"][4]["unit"] = "parsnip"
    write_json(path / ".zattrs", attrs)
    with pytest.warns(NgffComplianceWarning, match="parsnip"):
        (image,) = read_ome_zarr(str(path))
    assert image.axes[4].unit is None
    assert image.axes[3].unit == "micrometer"


def test_core_does_not_import_napari():
    code = (
        "import pkgutil, importlib, sys, napari_omezarr_x as p;"
        "mods = [m.name for m in pkgutil.walk_packages(p.__path__, 'napari_omezarr_x.')"
        " if '._napari' not in m.name];"
        "[importlib.import_module(m) for m in mods];"
        "bad = [m for m in ('napari', 'qtpy', 'PyQt6', 'magicgui') if m in sys.modules];"
        "sys.exit(repr(bad) if bad else 0 if len(mods) > 20 else f'only {mods}')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout


def _xml_names(folder: Path) -> list[str]:
    for xml in (folder / "OME" / "METADATA.ome.xml", folder.parent / "METADATA.ome.xml"):
        if xml.is_file():
            root = ET.parse(xml).getroot()
            return [el.get("Name", "") for el in root if el.tag.endswith("}Image")]
    return []


def _expected_images(dataset: dict) -> list[tuple[str, str | None, list, str]]:
    """(path, name, level shapes, dtype) the manifest implies for each returned Image."""
    folder = CORPUS.parent.parent / dataset["open_path"]
    images = [i for i in dataset["images"] if "labels/" not in i["group"]]
    shapes = [[tuple(lvl["shape"]) for lvl in img["levels"]] for img in images]
    dtypes = [np.dtype(img["levels"][0]["dtype"]).name for img in images]
    if dataset["plates"]:
        plate = dataset["plates"][0]
        fields = max(len(well["images"]) for well in dataset["wells"])
        grid = (plate["n_rows"], plate["n_columns"])
        mosaic = [(fields, *s[:-2], s[-2] * grid[0], s[-1] * grid[1]) for s in shapes[0]]
        return [("", plate["name"], mosaic, dtypes[0])]
    names = [(i["name"] or "").strip("/") or None for i in images]
    xml = _xml_names(folder)
    if dataset["bioformats2raw"] and xml:
        names = [
            xml[int(i["group"])] if i["group"].isdigit() else n
            for i, n in zip(images, names, strict=True)
        ]
    paths = ["" if i["group"] == "." else i["group"] for i in images]
    return list(zip(paths, names, shapes, dtypes, strict=True))


@pytest.mark.parametrize("dataset", CORPUS_DATASETS, ids=[d["id"] for d in CORPUS_DATASETS])
def test_corpus_dataset(corpus_dir, dataset):
    path = corpus_dir.parent.parent / dataset["open_path"]
    assert looks_like_ome_zarr(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NgffComplianceWarning)
        images = read_ome_zarr(str(path))
    got = [
        (img.path, img.name, [lvl.shape for lvl in img.levels], np.dtype(img.levels[0].dtype).name)
        for img in images
    ]
    assert got == _expected_images(dataset)
    assert [lab.name for lab in images[0].labels] == dataset["label_names"]
    if dataset["channels_omero"] and images[0].channel_axis is not None:
        assert len(images[0].channels) == images[0].levels[0].shape[images[0].channel_axis]
    smallest = images[0].levels[-1][..., :64, :64].compute()
    if dataset["fill_value_only"]:
        assert not smallest.any()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_nested_images_root_first(tmp_path, version):
    root = write_image(tmp_path / "nested.zarr", version, shape=(8, 8), name="root")
    write_image(root / "sub_array_1", version, shape=(4, 4), levels=1, name="one")
    group = zarr.open_group(root, mode="a")
    group.create_group("sub_array_2")
    write_image(
        root / "sub_array_2" / "sub_sub_array_1", version, shape=(2, 2), levels=1, name="two"
    )
    images = read_ome_zarr(str(root))
    assert [(i.path, i.name) for i in images] == [
        ("", "root"),
        ("sub_array_1", "one"),
        ("sub_array_2/sub_sub_array_1", "two"),
    ]
    assert images[2].levels[0].shape == (2, 2)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plain_root_group_with_nested_images_is_ours(tmp_path, version):
    # The tutorial's nested store: a plain zarr group whose children are images.
    root = tmp_path / "nested.ome.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=zarr_format(version))
    group.create_group("sub_array_2")
    write_image(root / "sub_array_1", version, shape=(4, 4), levels=1, name="one")
    write_image(
        root / "sub_array_2" / "sub_sub_array_1", version, shape=(2, 2), levels=1, name="two"
    )
    assert looks_like_ome_zarr(str(root))
    assert [i.name for i in read_ome_zarr(str(root))] == ["one", "two"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plain_zarr_group_of_arrays_is_not_ours(tmp_path, version):
    group = zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=zarr_format(version))
    group.create_group("inner").create_array("a", shape=(4, 4), dtype="uint8")
    group.create_array("b", shape=(4, 4), dtype="uint8")
    assert not looks_like_ome_zarr(str(tmp_path / "plain.zarr"))


OME_XML = (
    '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
    '<Image ID="Image:0" Name="first"/><Image ID="Image:1" Name="second"/></OME>'
)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("source", ["xml", "series-attr", "numbered"])
def test_bioformats2raw_series(tmp_path, version, source):
    root = tmp_path / "collection.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=zarr_format(version))
    set_ome(group, version, {"bioformats2raw.layout": 3})
    for series in ("0", "1"):
        write_image(root / series, version, shape=(4, 4), levels=1, name=f"ms-{series}")
    if source != "numbered":
        ome = group.create_group("OME")
        (root / "OME" / "METADATA.ome.xml").write_text(OME_XML)
        if source == "series-attr":
            set_ome(ome, version, {"series": ["1", "0"]})
    images = read_ome_zarr(str(root))
    expected = {
        "xml": [("0", "first"), ("1", "second")],
        "series-attr": [("1", "first"), ("0", "second")],
        "numbered": [("0", "ms-0"), ("1", "ms-1")],
    }[source]
    assert [(i.path, i.name) for i in images] == expected
    (single,) = read_ome_zarr(str(root / "1"))
    assert single.name == ("ms-1" if source == "numbered" else "second")


def test_spatialdata_like_store_finds_images_and_labels(tmp_path):
    root = zarr.open_group(tmp_path / "sdata.zarr", mode="w", zarr_format=3)
    root.attrs["spatialdata_attrs"] = {"version": "0.2"}
    root.create_group("images")
    root.create_group("labels")
    write_image(tmp_path / "sdata.zarr" / "images" / "blobs", "0.5", shape=(3, 8, 8), levels=1)
    seg = tmp_path / "sdata.zarr" / "labels" / "seg"
    write_image(seg, "0.5", shape=(8, 8), levels=1, dtype="int16")
    images = read_ome_zarr(str(tmp_path / "sdata.zarr"))
    assert [(i.path, i.kind, i.name) for i in images] == [
        ("images/blobs", "image", "image"),
        ("labels/seg", "labels", "seg"),
    ]


def test_float_label_opened_directly_is_an_image(tmp_path):
    path = write_image(tmp_path / "img.zarr", "0.5", labels={"f": {}})
    write_image(path / "labels" / "f", "0.5", shape=(3, 8, 8), levels=1, dtype="float32")
    with pytest.warns(NgffComplianceWarning, match="integers"):
        (image,) = read_ome_zarr(str(path / "labels" / "f"))
    assert image.kind == "image"
    assert image.label is None


def test_broken_labels_group_warns_image_opens(tmp_path):
    path = write_image(tmp_path / "img.zarr", "0.4", labels={"cells": {}})
    (path / "labels" / ".zattrs").write_text("{oops")
    with pytest.warns(NgffComplianceWarning, match=r"labels skipped: .*img\.zarr/labels"):
        (image,) = read_ome_zarr(str(path))
    assert image.labels == []
    assert image.levels[0].shape == (1, 2, 3, 8, 8)


def test_undecodable_chunk_names_array(tmp_path):
    path = write_image(tmp_path / "img.zarr", "0.5", shape=(8, 8), levels=1)
    chunk = next(p for p in (path / "0").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"\x00garbage that no codec can decode")
    (image,) = read_ome_zarr(str(path))
    with pytest.raises(StoreAccessError, match=r"img\.zarr/0: cannot read .* \(chunk c/0/0\)"):
        image.levels[0].compute()


def test_v2_group_without_zgroup(tmp_path):
    path = write_image(tmp_path / "img.zarr", "0.4", labels={"cells": {}})
    (path / ".zgroup").unlink()
    (path / "labels" / "cells" / ".zgroup").unlink()
    with pytest.warns(NgffComplianceWarning, match="no .zgroup"):
        (image,) = read_ome_zarr(str(path))
    assert image.levels[0].shape == (1, 2, 3, 8, 8)
    assert [lab.name for lab in image.labels] == ["cells"]


@pytest.mark.parametrize(
    ("target", "content", "error", "message"),
    [
        (
            "0/zarr.json",
            '{"zarr_format": 3, "node_type": "array"}',
            MetadataError,
            r"img\.zarr/0: invalid zarr metadata",
        ),
        ("zarr.json", "[]", MetadataError, r"img\.zarr: invalid zarr metadata"),
        ("zarr.json", b"\xff\xfe{}", MetadataError, r"img\.zarr: malformed JSON"),
    ],
    ids=["array-without-dtype", "json-list", "not-utf8"],
)
def test_broken_zarr_metadata_names_path(tmp_path, target, content, error, message):
    path = write_image(tmp_path / "img.zarr", "0.5", shape=(8, 8), levels=1)
    file = path / target
    file.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(error, match=message):
        read_ome_zarr(str(path))


def test_opening_an_array_says_so(tmp_path):
    path = write_image(tmp_path / "img.zarr", "0.5", shape=(8, 8), levels=1)
    with pytest.raises(NotOmeZarrError, match=r"img\.zarr/0: is a zarr array"):
        read_ome_zarr(str(path / "0"))


@pytest.mark.parametrize("version", LABEL_VERSIONS, indirect=True)
@pytest.mark.parametrize("where", ["labels", "labels/cells", "labels/plain"])
def test_labels_opened_alone_come_with_their_source_image(image_path, version, where):
    """Other readers bring the image a label image labels (`image-label.source`, by
    default `../../`); `with_source` does too."""
    (image,) = read_ome_zarr(str(image_path / where), with_source=True)
    assert (image.kind, image.path, image.name) == ("image", "", "image")
    expected = ["cells", "plain"] if where == "labels" else [where.rsplit("/", 1)[-1]]
    assert [label.name for label in image.labels] == expected
    assert [label.kind for label in read_ome_zarr(str(image_path / where))] == ["labels"] * len(
        expected
    )


def test_label_source_over_http_and_when_missing(tmp_path):
    import shutil

    from http_helpers import serve

    path = write_image(tmp_path / "img.ome.zarr", "0.5", labels={"cells": IMAGE_LABEL})
    with serve(tmp_path) as url:
        (image,) = read_ome_zarr(f"{url}/img.ome.zarr/labels/cells/", with_source=True)
    assert image.kind == "image"
    assert [label.name for label in image.labels] == ["cells"]
    shutil.rmtree(path / "0")
    with pytest.warns(NgffComplianceWarning, match="cannot be opened, so they open alone"):
        (label,) = read_ome_zarr(str(path / "labels" / "cells"), with_source=True)
    assert label.kind == "labels"
