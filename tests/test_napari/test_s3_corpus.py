"""Every corpus dataset, uploaded to a local S3 server, opens from s3:// with the very
layers it gives from its folder (names, shapes, scales, colours, pixels), with
credentials (private bucket) and anonymously (public bucket); `info` and `validate`
give the same answers on the URL as on the folder."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CORPUS_DATASETS
from napari_omezarr_x._napari.reader import get_reader
from napari_omezarr_x.info import describe_store
from napari_omezarr_x.spec.validate import validate_store
from s3_helpers import PRIVATE, PUBLIC


@pytest.fixture(scope="module")
def corpus_urls(s3_server, corpus_dir):
    """dataset id -> {bucket: s3:// URL of its open_path}, every dataset in both buckets."""
    urls: dict[str, dict[str, str]] = {}
    for ds in CORPUS_DATASETS:
        folder = corpus_dir.parent.parent / ds["local_path"]
        inner = ds["open_path"][len(ds["local_path"]) :]
        urls[ds["id"]] = {
            bucket: s3_server.upload(folder, bucket, f"corpus/{ds['id']}") + inner
            for bucket in (PRIVATE, PUBLIC)
        }
    return urls


def _comparable(meta: dict) -> dict:
    """Layer metadata without the place it was read from."""
    out = {k: v for k, v in meta.items() if k != "metadata"}
    block = dict(meta.get("metadata", {}).get("omezarr", {}))
    block.pop("store", None)
    for key in ("plate", "collection"):  # a plate's layout and a collection's listing
        if isinstance(block.get(key), dict):
            block[key] = {k: v for k, v in block[key].items() if k != "store"}
    out["omezarr"] = block
    return out


def _levels(data) -> list:
    return list(data) if isinstance(data, list | tuple) else [data]


#: Levels larger than this (elements) are compared on their middle plane, what napari shows.
_WHOLE_LEVEL = 2**24


def _region(level) -> tuple:
    if level.size <= _WHOLE_LEVEL:
        return ()
    return tuple(n // 2 for n in level.shape[:-2])


def _assert_same_layers(local: list, remote: list, *, every_level: bool) -> None:
    assert [(kind, meta.get("name")) for _, meta, kind in remote] == [
        (kind, meta.get("name")) for _, meta, kind in local
    ]
    for (ldata, lmeta, _), (rdata, rmeta, _) in zip(local, remote, strict=True):
        assert repr(_comparable(rmeta)) == repr(_comparable(lmeta))
        lv, rv = _levels(ldata), _levels(rdata)
        assert [a.shape for a in rv] == [a.shape for a in lv]
        pairs = list(zip(lv, rv, strict=True))
        for k, (a, b) in enumerate(pairs if every_level else pairs[-1:]):
            region = _region(a)
            # np.array_equal: assert_array_equal's NaN bookkeeping costs seconds here
            assert np.array_equal(np.asarray(b[region]), np.asarray(a[region]), equal_nan=True), (
                f"level {k}"
            )


@pytest.mark.parametrize("bucket", [PRIVATE, PUBLIC])
def test_corpus_opens_from_s3_as_from_folder(bucket, corpus_urls, corpus_dir, request):
    """Every pixel of every level with credentials (the middle plane of levels over 16
    million pixels); anonymously (the same bytes over unsigned requests) every level's
    shape and the smallest level's pixels."""
    request.getfixturevalue("s3_env" if bucket == PRIVATE else "s3_anon_env")
    failures = []
    for ds in CORPUS_DATASETS:
        local_path = str(corpus_dir.parent.parent / ds["open_path"])
        url = corpus_urls[ds["id"]][bucket]
        reader = get_reader(url)
        assert reader is not None, url
        try:
            local = get_reader(local_path)(local_path)
            _assert_same_layers(local, reader(url), every_level=bucket == PRIVATE)
        except AssertionError as exc:
            failures.append(f"{ds['id']}: {exc}")
    assert not failures, "\n".join(failures)


def test_info_and_validate_on_s3_urls(corpus_urls, corpus_dir, s3_anon_env):
    for ds in CORPUS_DATASETS:
        local_path = str(corpus_dir.parent.parent / ds["open_path"])
        url = corpus_urls[ds["id"]][PUBLIC]
        local_info, remote_info = describe_store(local_path), describe_store(url)
        assert remote_info.version == local_info.version, ds["id"]
        assert [i.path for i in remote_info.images] == [i.path for i in local_info.images]
        # Arrays: a zip in a bucket is read by ranges, so its folders are not listed.
        assert [(n.path, n.shape) for n in remote_info.nodes if n.kind == "array"] == [
            (n.path, n.shape) for n in local_info.nodes if n.kind == "array"
        ], ds["id"]
        local_report, remote_report = validate_store(local_path), validate_store(url)
        assert remote_report.valid == local_report.valid, ds["id"]
        assert [i.message for i in remote_report.errors] == [
            i.message for i in local_report.errors
        ], ds["id"]
