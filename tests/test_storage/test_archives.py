"""Zip archives read through storage.archives: missing members are missing files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from napari_omezarr_x.storage.archives import zip_filesystem


def _archive(tmp_path: Path) -> Path:
    path = tmp_path / "image.ome.zarr.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("image.ome.zarr/zarr.json", b'{"zarr_format": 3}')
    return path


def test_present_member_reads(tmp_path: Path) -> None:
    fs = zip_filesystem(str(_archive(tmp_path)))
    assert fs.cat("image.ome.zarr/zarr.json") == b'{"zarr_format": 3}'


def test_missing_member_is_a_missing_file(tmp_path: Path) -> None:
    fs = zip_filesystem(str(_archive(tmp_path)))
    with pytest.raises(FileNotFoundError):
        fs.open("image.ome.zarr/0/.zarray").read()
    mapper = fs.get_mapper("image.ome.zarr")
    assert "0/.zarray" not in mapper
    assert mapper.get("0/.zarray") is None
