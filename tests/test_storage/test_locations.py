"""Opening stores: local paths inside a store, zip files, http(s) URLs."""

from __future__ import annotations

import io
import re
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr.storage

from conftest import CORPUS
from http_helpers import QuietHandler, remote_options, serve
from napari_omezarr_x.errors import StoreAccessError
from napari_omezarr_x.read import looks_like_ome_zarr, read_ome_zarr
from napari_omezarr_x.storage import open_location
from ngff_fixtures import record_reads, write_image, write_plate

METADATA_NAMES = ("zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata")


class _Handler(QuietHandler):
    """Static files with a small delay per request, recording paths and concurrency."""

    delay = 0.02
    log: list[str]
    state: dict[str, int]
    lock: threading.Lock

    def send_head(self) -> object:
        """Static files, answering `Range: bytes=a-b` requests with 206 like real servers."""
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        file = Path(self.translate_path(self.path))
        if not match or not file.is_file() or self.state.get("no_range"):
            return super().send_head()
        data = file.read_bytes()
        start = int(match.group(1))
        end = min(int(match.group(2) or len(data) - 1), len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return io.BytesIO(data[start : end + 1])

    def do_GET(self) -> None:
        with self.lock:
            self.log.append(self.path)
            self.state["inflight"] += 1
            self.state["max"] = max(self.state["max"], self.state["inflight"])
        try:
            time.sleep(self.state.get("delay", self.delay))
            super().do_GET()
        finally:
            with self.lock:
                self.state["inflight"] -= 1


@pytest.fixture
def http_root(corpus_dir) -> Iterator[tuple[str, list[str], dict[str, int]]]:
    """A ThreadingHTTPServer on a free port serving the corpus folder."""
    handler = type(
        "Handler",
        (_Handler,),
        {"log": [], "state": {"inflight": 0, "max": 0}, "lock": threading.Lock()},
    )
    with serve(corpus_dir, handler=handler) as url:
        yield url, handler.log, handler.state


@pytest.mark.parametrize("slash", ["", "/"])
def test_http_reads_corpus_image_with_labels(http_root, slash):
    base, log, state = http_root
    state["delay"] = 0.1
    (image,) = read_ome_zarr(f"{base}/zarr-java_ome_v0.4.zarr{slash}")
    assert image.store == f"{base}/zarr-java_ome_v0.4.zarr"
    assert image.name == "test_image"
    assert [lvl.shape for lvl in image.levels] == [(1, 2, 8, 16, 16), (1, 2, 4, 8, 8)]
    assert [lab.name for lab in image.labels] == ["nuclei"]
    # Opening fetched metadata documents only, several at once.
    assert log
    assert all(p.rsplit("/", 1)[-1] in METADATA_NAMES for p in log), log
    assert state["max"] >= 2  # the two level arrays at least
    local = zarr.open_array(CORPUS / "zarr-java_ome_v0.4.zarr/1", mode="r")
    np.testing.assert_array_equal(image.levels[1].compute(), local[...])


def test_http_v3_levels_fetched_concurrently(http_root):
    base, log, state = http_root
    # Slow replies, so that requests sent together surely overlap on a loaded machine.
    state["delay"] = 0.3
    (image,) = read_ome_zarr(f"{base}/galaxy_input9_bool_zyx.zarr")
    assert len(image.levels) == 5
    assert image.levels[0].dtype == bool
    assert state["max"] >= 5
    assert all(p.rsplit("/", 1)[-1] in METADATA_NAMES for p in log), log


def test_http_unreachable_raises_quickly():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreAccessError, match=rf"127\.0\.0\.1:{port}/x\.zarr"):
        read_ome_zarr(f"http://127.0.0.1:{port}/x.zarr")


def test_http_silent_server_times_out():
    with remote_options(read_timeout=0.5, deadline=1.0), socket.socket() as sock:
        # Listening but never answering: the connection succeeds, the reply never comes.
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        with pytest.raises(StoreAccessError, match=rf"127\.0\.0\.1:{port}/x\.zarr"):
            read_ome_zarr(f"http://127.0.0.1:{port}/x.zarr")


def test_http_missing_dataset(http_root):
    base, _, _ = http_root
    with pytest.raises(StoreAccessError, match="no zarr metadata"):
        read_ome_zarr(f"{base}/does-not-exist.zarr")


def test_corpus_zip(corpus_dir):
    path = corpus_dir / "neuroglancer_ngff-zarr_simple_0.5.zip"
    assert looks_like_ome_zarr(str(path))
    (image,) = read_ome_zarr(str(path))
    assert image.store == str(path)
    assert [lvl.shape for lvl in image.levels] == [(10, 10), (5, 5), (2, 2)]
    assert image.level_paths == ["scale0/image", "scale1/image", "scale2/image"]
    assert image.levels[2].compute().dtype == np.uint16


def _zip_folder(folder: Path, target: Path, prefix: str) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, f"{prefix}{file.relative_to(folder).as_posix()}")
    return target


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize(("suffix", "prefix"), [(".ozx", ""), (".zip", "img.ome.zarr/")])
def test_zip_stores_and_paths_inside(tmp_path, version, suffix, prefix):
    folder = write_image(tmp_path / "img.ome.zarr", version, labels={"cells": {}})
    archive = _zip_folder(folder, tmp_path / f"img{suffix}", prefix)
    assert looks_like_ome_zarr(str(archive))
    (image,) = read_ome_zarr(str(archive))
    np.testing.assert_array_equal(
        image.levels[0].compute(), zarr.open_array(folder / "0", mode="r")[...]
    )
    assert [lab.name for lab in image.labels] == ["cells"]
    assert looks_like_ome_zarr(str(archive / "labels" / "cells"))
    (label,) = read_ome_zarr(str(archive / "labels" / "cells"))
    assert label.kind == "labels"
    assert label.path == f"{prefix}labels/cells".strip("/")


def test_bad_zip(tmp_path):
    plain = tmp_path / "notes.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("readme.txt", "no zarr here")
    assert not looks_like_ome_zarr(str(plain))
    bad = tmp_path / "bad.ozx"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(StoreAccessError, match=r"bad\.ozx"):
        read_ome_zarr(str(bad))


def test_local_path_inside_store_finds_root(tmp_path):
    folder = write_image(tmp_path / "img.zarr", "0.5", labels={"cells": {}})
    loc = open_location(folder / "labels" / "cells")
    assert loc.root == str(folder.resolve())
    assert loc.path == "labels/cells"
    assert isinstance(loc.store, zarr.storage.LocalStore)
    assert loc.store.read_only


def test_bioformats2raw_layout1_folder(corpus_dir):
    folder = corpus_dir / "viv_bioformats-zarr-layout1"
    assert looks_like_ome_zarr(str(folder))
    for path in (folder, folder / "data.zarr"):
        (image,) = read_ome_zarr(str(path))
        assert image.name == "multi-channel.ome.tif"
        assert image.levels[0].shape == (1, 3, 1, 167, 439)
        assert image.path == "0"


@pytest.mark.parametrize(
    "make",
    [
        lambda p: write_image(p, "0.5-sharded", labels={"cells": {}}),
        lambda p: write_image(p, "0.4", labels={"cells": {}}),
        lambda p: write_plate(p, "0.5", labels=True),
    ],
    ids=["image-0.5-sharded", "image-0.4", "plate-0.5"],
)
def test_open_reads_no_chunks(tmp_path, monkeypatch, make):
    """Opening touches metadata documents only; chunks are read on compute."""
    folder = make(tmp_path / "img.zarr")
    keys = record_reads(monkeypatch)
    (image,) = read_ome_zarr(str(folder))
    assert keys
    assert [k for k in keys if k.rsplit("/", 1)[-1] not in METADATA_NAMES] == []
    image.levels[-1].compute()
    assert [k for k in keys if k.rsplit("/", 1)[-1] not in METADATA_NAMES]


def test_zip_over_http(http_root):
    base, _, _ = http_root
    url = f"{base}/neuroglancer_ngff-zarr_simple_0.5.zip"
    assert looks_like_ome_zarr(url)
    (image,) = read_ome_zarr(url)
    assert image.store == url
    assert [lvl.shape for lvl in image.levels] == [(10, 10), (5, 5), (2, 2)]
    local = zarr.open_array(
        zarr.storage.ZipStore(CORPUS / "neuroglancer_ngff-zarr_simple_0.5.zip", mode="r"),
        path="scale1/image",
        mode="r",
    )
    np.testing.assert_array_equal(image.levels[1].compute(), local[...])


def test_zip_over_http_without_range_support_says_so(http_root):
    base, _, state = http_root
    state["no_range"] = 1
    with pytest.raises(StoreAccessError, match=r"simple_0\.5\.zip: .*range requests"):
        read_ome_zarr(f"{base}/neuroglancer_ngff-zarr_simple_0.5.zip")


def test_http_label_and_well_paths(http_root):
    base, _, _ = http_root
    (label,) = read_ome_zarr(f"{base}/zarr-java_ome_v0.4.zarr/labels/nuclei/")
    assert (label.kind, label.name, label.levels[0].shape) == ("labels", "nuclei", (8, 16, 16))
    (well,) = read_ome_zarr(f"{base}/zarr-java_ome_v0.5_hcs.zarr/A/1")
    assert (well.kind, well.levels[0].shape) == ("well", (1, 1, 2, 4, 8, 8))  # field axis first
