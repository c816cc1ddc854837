"""`info`: the tree and image summary of every corpus store, zips included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CORPUS_DATASETS
from http_helpers import serve
from napari_omezarr_x.errors import StoreAccessError
from napari_omezarr_x.info import describe_store, format_tree
from napari_omezarr_x.spec.validate import validate_store


@pytest.mark.parametrize("dataset", CORPUS_DATASETS, ids=lambda d: d["id"])
def test_info_on_corpus(corpus_dir: Path, dataset: dict) -> None:
    info = describe_store(str(corpus_dir.parent.parent / dataset["open_path"]))
    arrays = [n for n in info.nodes if n.kind == "array"]
    assert arrays, "no array found"
    assert all(a.shape and a.dtype and a.chunks and a.codecs is not None for a in arrays)
    assert info.version is not None
    assert info.version.startswith(tuple(str(v)[:3] for v in dataset["ngff_versions"]))
    assert info.images
    text = format_tree(info)
    assert f"OME-NGFF {info.version}" in text
    assert f"{arrays[0].dtype}" in text


def test_info_details_of_a_v05_image(corpus_dir: Path) -> None:
    info = describe_store(str(corpus_dir / "fiji-java_5d_dataset_v5.ome.zarr"))
    image = info.images[0]
    assert [a["name"] for a in image.axes] == ["t", "c", "z", "y", "x"]
    assert [level["shape"] for level in image.levels] == [[4, 3, 16, 64, 64], [4, 3, 8, 32, 32]]
    assert image.levels[1]["scale"] == [1.0, 1.0, 2.0, 2.0, 2.0]
    assert [c["label"] for c in image.channels] == ["lynEGFP", "NLStdTomato", "lynEGFP"]
    level0 = next(n for n in info.nodes if n.path == "0")
    assert level0.nbytes == 4 * 3 * 16 * 64 * 64
    assert level0.stored_bytes is not None
    assert any("zstd" in c for c in level0.codecs)


def test_info_lists_labels(corpus_dir: Path) -> None:
    info = describe_store(str(corpus_dir / "ngio_test_image_tczyx.zarr"))
    assert info.images[0].labels == ["label"]
    assert any(i.is_label and i.path == "labels/label" for i in info.images)


def test_info_unreadable(tmp_path: Path) -> None:
    with pytest.raises(StoreAccessError):
        describe_store(str(tmp_path / "missing.zarr"))
    with pytest.raises(StoreAccessError, match="no zarr group"):
        describe_store(str(tmp_path))


@pytest.fixture
def corpus_server(corpus_dir: Path) -> Iterator[str]:
    """The corpus served over a real localhost HTTP server (not listable, like object stores)."""
    with serve(corpus_dir, listable=False) as url:
        yield url


def test_info_and_validate_over_http(corpus_server: str) -> None:
    url = f"{corpus_server}/ngio_test_image_tczyx.zarr"
    info = describe_store(url)
    paths = [n.path for n in info.nodes]
    assert paths[:3] == ["/", "0", "1"]
    assert "labels/label/0" in paths
    assert info.images[0].labels == ["label"]
    report = validate_store(url)
    assert report.valid, [str(e) for e in report.errors]
    assert report.version == "0.4"

    plate = validate_store(f"{corpus_server}/zarr-java_ome_v0.5_hcs.zarr")
    assert plate.valid
    with pytest.raises(StoreAccessError, match="no zarr metadata"):
        validate_store(f"{corpus_server}/missing.zarr")
