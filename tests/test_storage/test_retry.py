"""Remote reads against a fault-injecting server: retries, deadlines, clear errors.

The server (tests/http_helpers.py) serves a folder over HTTP; as the S3 endpoint
of an anonymous, path-style `s3://` URL it answers the object GETs that reading
needs (the S3 protocol itself is tested against moto in test_objects.py), so
the same faults hit the HTTP and the object-store client.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from http_helpers import remote_options, serve_faults
from napari_omezarr_x.errors import RemoteReadError, StoreAccessError
from napari_omezarr_x.model import Image
from napari_omezarr_x.read import lazy, read_ome_zarr
from napari_omezarr_x.storage import RemoteSettings, configure_remote, remote_settings
from napari_omezarr_x.storage.locations import _http_get
from napari_omezarr_x.storage.network import settings_from_env
from napari_omezarr_x.storage.retry import classify
from napari_omezarr_x.write import write_image
from s3_helpers import AWS_VARIABLES

BUCKET = "bkt"
SHAPE = (2, 3, 128, 128)
CHUNKS = (1, 1, 32, 32)  # a plane is 16 chunks
FAST = {
    "connect_timeout": 1.0,
    "read_timeout": 0.4,
    "deadline": 1.5,
    "attempts": 3,
    "backoff": 0.01,
    "max_backoff": 0.05,
}


def expected() -> np.ndarray:
    """Pixels that tell channel, z, y and x apart."""
    c, z, y, x = np.indices(SHAPE)
    return (1000 * c + 100 * z + (y * 7 + x) % 97).astype("uint16")


@pytest.fixture(scope="module", params=["0.5", "0.4"])
def store(request, tmp_path_factory) -> Path:
    """The served folder: bucket `bkt` holding `img.ome.zarr`."""
    folder = tmp_path_factory.mktemp(f"remote-{request.param}")
    write_image(
        folder / BUCKET / "img.ome.zarr", expected(), axes="czyx", chunks=CHUNKS, levels=2,
        version=request.param,
    )  # fmt: skip
    return folder


@pytest.fixture(params=["http", "s3"])
def kind(request, monkeypatch, tmp_path) -> str:
    """How the store is reached: an http URL, or an s3:// URL of the same server."""
    if request.param == "s3":
        for name in AWS_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        (tmp_path / "aws").write_text("")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws"))
    return request.param


def open_image(base: str, kind: str = "http") -> Image:
    """The image of the served store, through an http or an s3:// URL."""
    if kind == "http":
        (image,) = read_ome_zarr(f"{base}/{BUCKET}/img.ome.zarr")
    else:
        options = {"endpoint": base, "anon": True, "region": "us-east-1"}
        (image,) = read_ome_zarr(f"s3://{BUCKET}/img.ome.zarr", storage_options=options)
    return image


@pytest.fixture(autouse=True)
def fast_settings():
    with remote_options(**FAST):
        yield


@pytest.fixture
def plane_blocks(monkeypatch):
    """Dask blocks of one plane, as a 2048 x 2048 image of 512 x 512 chunks gets them."""
    monkeypatch.setattr(lazy, "REMOTE_BLOCK_BYTES", SHAPE[2] * SHAPE[3] * 2)
    monkeypatch.setattr(lazy, "WHOLE_BYTES", SHAPE[2] * SHAPE[3] * 2)


def test_every_chunk_failing_once_with_503_reads_correctly(store, kind, plane_blocks):
    with serve_faults(store) as (base, plan):
        plan.add("*/0/*", 503)  # every level-0 document and chunk, once
        plan.add("*zarr.json", 503)
        plan.add("*.zattrs", 500)
        image = open_image(base, kind)
        np.testing.assert_array_equal(image.levels[0][1, 2].compute(), expected()[1, 2])
        chunks = plan.requests("*/0/c/1/2/*") or plan.requests("*/0/1/2/*")
    # 16 chunks, each asked twice: the 503, then the data.
    assert len(chunks) == 32
    assert len(set(chunks)) == 16


@pytest.mark.parametrize("fault", ["truncate", "reset", 429, 502, 504])
def test_transient_faults_are_retried(store, fault):
    with serve_faults(store) as (base, plan):
        plan.add("*/1/c/*", fault)
        plan.add("*/1/0/*", fault)  # zarr v2 chunk keys
        image = open_image(base)
        got = image.levels[1].compute()
    level1 = read_ome_zarr(str(store / BUCKET / "img.ome.zarr"))[0].levels[1].compute()
    np.testing.assert_array_equal(got, level1)


def test_permanent_error_is_not_retried_and_named(store, kind):
    with serve_faults(store) as (base, plan):
        plan.add("*/0/c/0/1/0/0", 403, times=None)
        plan.add("*/0/0/1/0/0", 403, times=None)
        image = open_image(base, kind)
        with pytest.raises(StoreAccessError) as info:
            image.levels[0][0, 1, :32, :32].compute()
        failed = [p for p in plan.requests() if p.endswith(("/0/1/0/0",))]
    remote = info.value.__cause__
    assert isinstance(remote, RemoteReadError)
    assert remote.status == 403
    assert remote.attempts == 1
    assert remote.url.startswith(f"{'s3:/' if kind == 's3' else base}/{BUCKET}/img.ome.zarr/0/")
    message = str(info.value)
    assert "img.ome.zarr/0: cannot read region [0, 1, 0:32, 0:32]" in message
    assert "HTTP 403" in message
    assert "permanent, not retried" in message
    assert len(failed) == 1


def test_persistent_503_gives_up_after_the_attempts(store):
    with serve_faults(store) as (base, plan):
        plan.add("*/1/c/*", 503, times=None)
        plan.add("*/1/0/*", 503, times=None)
        image = open_image(base)
        with pytest.raises(StoreAccessError, match=r"HTTP 503 .*\(3 attempts in [\d.]+ s\)"):
            image.levels[1][0, 0].compute()


def copy_with_first_chunk(store: Path, tmp_path: Path, level: str) -> tuple[Path, Path]:
    """A copy of the served folder, and the first chunk file of `level` in it."""
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    files = (copy / BUCKET / "img.ome.zarr" / level).rglob("*")
    metadata = ("zarr.json", ".zarray", ".zattrs")
    return copy, sorted(p for p in files if p.is_file() and p.name not in metadata)[0]


def test_missing_chunk_reads_as_fill_value(store, tmp_path, kind):
    copy, chunk = copy_with_first_chunk(store, tmp_path, "0")
    chunk.unlink()
    with serve_faults(copy) as (base, plan):
        image = open_image(base, kind)
        data = image.levels[0].compute()
        missing = [p for p in plan.requests() if p.endswith(chunk.relative_to(copy).as_posix())]
    assert (data == 0).sum() >= 32 * 32
    assert len(missing) == 1  # a 404 is an answer, not a failure


def test_hung_chunk_fails_within_the_deadline_and_holds_nothing_up(store, kind, plane_blocks):
    with serve_faults(store) as (base, plan):
        plan.add("*/0/c/0/0/0/0", "hang", times=None)
        plan.add("*/0/0/0/0/0", "hang", times=None)
        image = open_image(base, kind)
        other: dict[str, float] = {}

        def read_other_plane() -> None:
            began = time.monotonic()
            np.testing.assert_array_equal(image.levels[0][1, 1].compute(), expected()[1, 1])
            other["seconds"] = time.monotonic() - began

        started = time.monotonic()
        thread = threading.Thread(target=read_other_plane)
        thread.start()
        with pytest.raises(StoreAccessError) as info:
            image.levels[0][0, 0].compute()
        elapsed = time.monotonic() - started
        thread.join(5)
    assert 1.2 < elapsed < 3.5
    assert other["seconds"] < 1.0  # the other plane did not wait for the hung chunk
    remote = info.value.__cause__
    assert isinstance(remote, RemoteReadError)
    if kind == "http":  # no data for read_timeout: tried again, until attempts or deadline ran out
        assert remote.attempts >= 2
        assert re.search(r"(read timeout of 0\.4 s|deadline of 1\.5 s passed)", str(remote))
    else:  # obstore has no per-read timeout: the deadline ends the one attempt
        assert "deadline of 1.5 s passed; 1 attempt in" in str(remote)
    assert remote.url.endswith(("/0/c/0/0/0/0", "/0/0/0/0/0"))


def test_trickling_body_ends_at_the_deadline(store):
    with serve_faults(store) as (base, plan):
        plan.add("*/1/c/0/0/0/0", "trickle", times=None)
        plan.add("*/1/0/0/0/0", "trickle", times=None)
        image = open_image(base)
        started = time.monotonic()
        with pytest.raises(StoreAccessError, match=r"deadline of 1\.5 s passed"):
            image.levels[1][0, 0].compute()
    assert time.monotonic() - started < 3.5


def test_hung_metadata_fails_within_the_deadline(store):
    with serve_faults(store) as (base, plan):
        plan.add("*/img.ome.zarr/zarr.json", "hang", times=None)
        plan.add("*/img.ome.zarr/.zattrs", "hang", times=None)
        started = time.monotonic()
        with pytest.raises(StoreAccessError, match=r"img\.ome\.zarr"):
            open_image(base)
    assert time.monotonic() - started < 3.5


def test_corrupt_chunk_is_not_retried_and_named(store, tmp_path):
    copy, chunk = copy_with_first_chunk(store, tmp_path, "1")
    chunk.write_bytes(b"\x00 not a blosc frame")
    key = chunk.relative_to(copy / BUCKET / "img.ome.zarr" / "1").as_posix()
    with serve_faults(copy) as (base, plan):
        image = open_image(base)
        with pytest.raises(StoreAccessError, match=rf"img.ome.zarr/1: .*\(chunk {key}\)"):
            image.levels[1].compute()
        asked = [p for p in plan.requests() if p.endswith("/1/" + key)]
    assert len(asked) == 2  # the block read, then the search for the broken chunk


def test_one_plane_fetches_its_chunks_side_by_side(store, kind, plane_blocks):
    with serve_faults(store) as (base, plan):
        image = open_image(base, kind)
        plane = image.levels[0][0, 1]
        assert plane.numblocks == (1, 1)
        plan.delay = 0.3
        plan.max_inflight = 0
        started = time.monotonic()
        np.testing.assert_array_equal(plane.compute(), expected()[0, 1])
        elapsed = time.monotonic() - started
    assert plan.max_inflight == 16
    assert elapsed < 0.9  # one round trip of 0.3 s, not 8 of them on 2 threads


def test_requests_in_flight_are_capped(store, plane_blocks):
    with remote_options(concurrency=4), serve_faults(store) as (base, plan):
        image = open_image(base)
        plan.delay = 0.1
        plan.max_inflight = 0
        np.testing.assert_array_equal(image.levels[0][0, 1].compute(), expected()[0, 1])
    assert plan.max_inflight == 4


def test_opening_probes_each_format_once_and_no_consolidated_metadata(store):
    with serve_faults(store) as (base, plan):
        image = open_image(base)
        asked = plan.requests()
    names = [p.rsplit("/", 1)[-1] for p in asked]
    assert ".zmetadata" not in names
    root = [p for p in asked if p.count("/") == 3]
    assert sorted(n.rsplit("/", 1)[-1] for n in root) == [".zattrs", ".zgroup", "zarr.json"]
    # Then one document per level (two concurrent ones for zarr v2) and the labels probe.
    per_level = 1 if image.version == "0.5" else 2
    assert len(asked) == 3 + 2 * per_level + per_level


@pytest.mark.parametrize(
    ("exc", "transient", "status"),
    [
        (TimeoutError(), True, None),
        (ConnectionResetError(104, "reset"), True, None),
        (PermissionError("denied"), False, None),
        (ValueError("bad"), False, None),
    ],
)
def test_classify_plain_errors(exc, transient, status):
    failure = classify(exc)
    assert failure.transient is transient
    assert failure.status == status


@pytest.mark.parametrize(("status", "transient"), [(503, True), (429, True), (403, False)])
def test_classify_http_status(status, transient):
    import aiohttp

    exc = aiohttp.ClientResponseError(None, (), status=status, message="x", headers={})
    assert classify(exc).transient is transient
    assert classify(OSError("wrapped")).transient is False
    wrapped = OSError("s3 said no")
    wrapped.__cause__ = exc
    assert classify(wrapped).status == status


def test_settings_from_environment():
    settings = settings_from_env(
        {"NAPARI_OMEZARR_X_DEADLINE": "60", "NAPARI_OMEZARR_X_ATTEMPTS": "6"}
    )
    assert settings.deadline == 60.0
    assert settings.attempts == 6
    assert settings.read_timeout == RemoteSettings().read_timeout
    with pytest.raises(ValueError, match="NAPARI_OMEZARR_X_ATTEMPTS='many'"):
        settings_from_env({"NAPARI_OMEZARR_X_ATTEMPTS": "many"})
    with pytest.raises(ValueError, match="deadline"):
        settings_from_env({"NAPARI_OMEZARR_X_DEADLINE": "-1"})


def test_configure_remote_applies_to_stores_opened_later(store):
    before = remote_settings()
    try:
        configure_remote(attempts=1)
        with serve_faults(store) as (base, plan):
            plan.add("*/1/c/*", 503)
            plan.add("*/1/0/*", 503)
            image = open_image(base)
            with pytest.raises(StoreAccessError, match=r"HTTP 503 .*\(1 attempt in"):
                image.levels[1].compute()
    finally:
        configure_remote(**before.__dict__)


def test_documents_outside_zarr_are_retried_too(tmp_path):
    # The OME-XML of a bioformats2raw collection is read with requests, not zarr.
    (tmp_path / "OME").mkdir()
    (tmp_path / "OME" / "METADATA.ome.xml").write_text("<OME/>")
    with serve_faults(tmp_path) as (base, plan):
        plan.add("*/METADATA.ome.xml", 503)
        plan.add("*/METADATA.ome.xml", "truncate")
        assert _http_get(f"{base}/OME/METADATA.ome.xml") == b"<OME/>"
        assert len(plan.requests("*/METADATA.ome.xml")) == 3
        assert _http_get(f"{base}/OME/missing.xml") is None
        plan.add("*/slow.xml", "trickle", times=None)
        (tmp_path / "OME" / "slow.xml").write_text("x" * 200)
        started = time.monotonic()
        assert _http_get(f"{base}/OME/slow.xml") is None  # ends at the deadline
        assert time.monotonic() - started < 3.0
