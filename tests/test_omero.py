"""Reading and saving the omero block: placement per version, preservation of
everything else, atomic rewrite, and refusal on read-only stores."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zarr

from http_helpers import serve
from napari_omezarr_x import omero
from napari_omezarr_x.errors import MetadataError, ReadOnlyStoreError
from napari_omezarr_x.model import Channel
from omero_helpers import (
    VERSIONS,
    array_hashes,
    attributes,
    make_image,
    metadata_doc,
    omero_block,
    stored_omero,
    zip_store,
)


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def image(tmp_path: Path, version: str) -> Path:
    return make_image(tmp_path / f"img{version}.ome.zarr", version, n_channels=3)


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[str]:
    with serve(tmp_path) as url:
        yield url


def test_read_omero_and_channels(image: Path) -> None:
    block = omero.read_omero(image)
    assert block == omero_block(3)
    channels = omero.read_channels(str(image), "")
    assert [c.label for c in channels] == ["DAPI", "GFP", "mCherry"]
    assert [c.color for c in channels] == ["FF0000", "00FF00", "0000FF"]
    assert (channels[1].start, channels[1].end, channels[1].min, channels[1].max) == (
        20.0,
        201.0,
        0.0,
        255.0,
    )
    assert channels[2].raw["x-vendor"] == {"gain": 2}


def test_read_omero_absent(tmp_path: Path, version: str) -> None:
    image = make_image(tmp_path / "plain.zarr", version, omero=False)
    assert omero.read_omero(image) is None
    assert omero.read_channels(image) == []


def test_save_places_block_and_keeps_everything_else(image: Path, version: str) -> None:
    before_attrs = attributes(image, version)
    before_arrays = array_hashes(image)
    channels = omero.read_channels(image)
    channels[0].color = "#ff00ff"
    channels[0].start, channels[0].end = 5, 99.5
    channels[1].label = "Tubulin"
    channels[1].active = False
    channels[2].inverted = True

    doc = omero.save_omero(image, "", channels)

    assert doc == metadata_doc(image, version)
    after = attributes(image, version)
    if version == "0.4":
        assert "ome" not in after
    else:
        assert "omero" not in after  # 0.5 keeps it under "ome" only
        assert after["ome"]["version"] == "0.5"
    block = stored_omero(image, version)
    assert block["channels"][0]["color"] == "FF00FF"
    assert block["channels"][0]["window"] == {"start": 5, "end": 99.5, "min": 0.0, "max": 255.0}
    assert block["channels"][1]["label"] == "Tubulin"
    assert block["channels"][1]["active"] is False
    assert block["channels"][2]["inverted"] is True
    for raw in block["channels"]:
        assert raw["family"] == "linear"
        assert raw["coefficient"] == 1.0
        assert "x-vendor" in raw
    # Everything but the edited channels is as before.
    expected = json.loads(json.dumps(before_attrs))
    holder = expected if version == "0.4" else expected["ome"]
    holder["omero"]["channels"] = block["channels"]
    assert after == expected
    assert array_hashes(image) == before_arrays
    assert not [p for p in image.iterdir() if p.name.endswith(".tmp")]
    # zarr itself reads the saved group, arrays included.
    group = zarr.open_group(image, mode="r")
    assert group["0"][0, 0, 1] == 1


def test_save_accepts_raw_dicts_and_normalises(image: Path, version: str) -> None:
    raw = omero_block(3)["channels"]
    raw[0]["color"] = "0f0"
    raw[0]["window"]["end"] = 150
    omero.save_omero(str(image), "", raw)
    saved = stored_omero(image, version)["channels"]
    assert saved[0]["color"] == "00FF00"
    assert saved[0]["window"]["end"] == 150
    # Untouched numbers keep their original spelling.
    assert saved[1]["window"]["start"] == 20.0
    assert isinstance(saved[1]["window"]["start"], float)


def test_save_creates_block_when_missing(tmp_path: Path, version: str) -> None:
    image = make_image(tmp_path / "plain.zarr", version, n_channels=2, omero=False)
    omero.save_omero(image, "", [Channel(label="a", color="112233"), Channel(label="b")])
    block = stored_omero(image, version)
    assert block == {
        "channels": [
            {"label": "a", "color": "112233", "active": True, "inverted": False},
            {"label": "b", "active": True, "inverted": False},
        ]
    }


def test_save_in_subgroup(tmp_path: Path, version: str) -> None:
    root = zarr.open_group(tmp_path / "bf.zarr", mode="w", zarr_format=2 if version == "0.4" else 3)
    root.attrs["bioformats2raw.layout"] = 3
    make_image(tmp_path / "bf.zarr" / "0", version, n_channels=2)
    channels = omero.read_channels(tmp_path / "bf.zarr", "0")
    channels[0].label = "renamed"
    omero.save_omero(tmp_path / "bf.zarr", "0", channels)
    assert stored_omero(tmp_path / "bf.zarr" / "0", version)["channels"][0]["label"] == "renamed"
    assert omero.read_omero(tmp_path / "bf.zarr", "0")["channels"][0]["label"] == "renamed"


def test_channel_count_mismatch_changes_nothing(image: Path, version: str) -> None:
    before = metadata_doc(image, version).read_bytes()
    with pytest.raises(MetadataError, match="3 channel"):
        omero.save_omero(image, "", omero.read_channels(image)[:2])
    assert metadata_doc(image, version).read_bytes() == before


def test_bad_values_are_refused(image: Path, version: str) -> None:
    before = metadata_doc(image, version).read_bytes()
    channels = omero.read_channels(image)
    channels[0].end = float("nan")
    with pytest.raises(MetadataError, match="finite"):
        omero.save_omero(image, "", channels)
    channels[0].end = 3
    channels[0].color = "not-a-colour"
    with pytest.raises(MetadataError, match="hex"):
        omero.save_omero(image, "", channels)
    assert metadata_doc(image, version).read_bytes() == before


def test_consolidated_metadata_follows(tmp_path: Path, version: str) -> None:
    root = tmp_path / "cons.zarr"
    zarr.open_group(root, mode="w", zarr_format=2 if version == "0.4" else 3)
    make_image(root / "img", version, n_channels=2)
    zarr.consolidate_metadata(root, zarr_format=2 if version == "0.4" else 3)
    channels = omero.read_channels(root, "img")
    channels[1].color = "ABCDEF"
    omero.save_omero(root, "img", channels)
    group = zarr.open_group(root, mode="r", use_consolidated=True)["img"]
    block = group.attrs["omero"] if version == "0.4" else group.attrs["ome"]["omero"]
    assert block["channels"][1]["color"] == "ABCDEF"


def test_failed_replace_leaves_document_intact(
    image: Path, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = metadata_doc(image, version).read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(errno.EIO, "disk error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk error"):
        omero.save_omero(image, "", omero.read_channels(image))
    assert metadata_doc(image, version).read_bytes() == before
    assert sorted(p.name for p in image.iterdir()) == sorted(
        [".zattrs", ".zgroup", "0"] if version == "0.4" else ["zarr.json", "0"]
    )


def test_http_store_reads_but_refuses_save(image: Path, http_root: str) -> None:
    url = f"{http_root}/{image.name}"
    assert omero.read_omero(url) == omero_block(3)
    with pytest.raises(ReadOnlyStoreError, match="remote"):
        omero.save_omero(url, "", omero.read_channels(url))


def test_zip_store_reads_but_refuses_save(image: Path, tmp_path: Path) -> None:
    zipped = zip_store(image, tmp_path / "img.ome.zarr.zip")
    before = zipped.read_bytes()
    assert omero.read_omero(zipped) == omero_block(3)
    with pytest.raises(ReadOnlyStoreError, match="zipped"):
        omero.save_omero(zipped, "", omero.read_channels(zipped))
    assert zipped.read_bytes() == before


def test_unwritable_folder_refused(
    image: Path, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores permission bits, so simulate the two ways a folder can be
    # read-only: access() saying no, and a read-only mount failing the probe.
    before = metadata_doc(image, version).read_bytes()
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        omero.save_omero(image, "", omero.read_channels(image))
    monkeypatch.undo()

    def read_only_mount(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only_mount)
    with pytest.raises(ReadOnlyStoreError, match="Read-only file system"):
        omero.check_writable(image)
    with pytest.raises(ReadOnlyStoreError):
        omero.save_omero(image, "", omero.read_channels(image))
    monkeypatch.undo()
    assert metadata_doc(image, version).read_bytes() == before
    assert omero.check_writable(image) == metadata_doc(image, version)


def test_permission_bits_are_respected_even_for_root(image: Path, version: str) -> None:
    doc = metadata_doc(image, version)
    before = doc.read_bytes()
    # The document marked read-only, then the folder holding it.
    for entry, locked, unlocked in ((doc, 0o444, 0o644), (image, 0o555, 0o755)):
        entry.chmod(locked)
        try:
            with pytest.raises(ReadOnlyStoreError, match="read-only"):
                omero.save_omero(image, "", omero.read_channels(image))
        finally:
            entry.chmod(unlocked)
    assert doc.read_bytes() == before


def test_real_world_file_round_trip(corpus_dir: Path, tmp_path: Path) -> None:
    source = corpus_dir / "fiji-java_5d_dataset_v5.ome.zarr"
    if not source.is_dir():
        pytest.skip("corpus dataset missing")
    image = shutil.copytree(source, tmp_path / source.name)
    # The corpus is read-only and copytree keeps that; a copy of one's own is writable.
    for entry in [image, *image.rglob("*")]:
        entry.chmod(0o755 if entry.is_dir() else 0o644)
    before = array_hashes(image)
    channels = omero.read_channels(image)
    assert [c.label for c in channels] == ["lynEGFP", "NLStdTomato", "lynEGFP"]
    channels[2].color = "FFFF00"
    omero.save_omero(image, "", channels)
    block = stored_omero(image, "0.5")
    assert block["rdefs"] == {"defaultT": 1, "defaultZ": 71, "model": "color"}
    assert block["channels"][2]["color"] == "FFFF00"
    assert (
        block["channels"][0]
        == json.loads((source / "zarr.json").read_text())["attributes"]["ome"]["omero"]["channels"][
            0
        ]
    )
    assert array_hashes(image) == before


def test_window_min_max_widen_to_cover_start_end(image: Path, version: str) -> None:
    channels = omero.read_channels(image)
    channels[0].start, channels[0].end = -5, 300
    omero.save_omero(image, "", channels)
    window = stored_omero(image, version)["channels"][0]["window"]
    assert window == {"start": -5, "end": 300, "min": -5, "max": 300}
    assert channels[0].min == 0.0  # the caller's object is left alone
