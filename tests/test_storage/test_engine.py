"""The codec engine: zarrs where it supports the array and store, zarr-python's pipeline
elsewhere, with the same pixels either way; the switch and the user's own zarr config."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec

from conftest import CORPUS_DATASETS
from http_helpers import serve
from napari_omezarr_x.storage import engine, open_location, open_store
from napari_omezarr_x.storage.engine import pipeline_name

ZARRS = "GuardedZarrsPipeline"
PYTHON = "BatchedCodecPipeline"


@pytest.fixture
def restore_engine() -> Iterator[None]:
    """Put zarr's pipeline setting and the module's state back as the suite had them."""
    path = zarr.config.get("codec_pipeline.path")
    applied = engine._applied
    yield
    zarr.config.set({"codec_pipeline.path": path})
    engine._applied = applied


@pytest.fixture(params=engine.ENGINES)
def use(request, restore_engine) -> str:
    """Each test runs once per engine."""
    engine.set_engine(request.param)
    return request.param


def test_zarrs_is_installed_where_it_has_wheels() -> None:
    """The dependency's platform markers install zarrs on Linux x86_64 (CI) and others."""
    wheels = platform.system() in ("Linux", "Darwin") and platform.machine() in (
        "x86_64",
        "aarch64",
        "arm64",
    )
    if wheels:
        assert engine.zarrs_available()


# (what, zarr.create_array options, data, pipeline zarrs mode gives)
def _cases() -> list[tuple[str, dict, np.ndarray, str]]:
    rng = np.random.default_rng(7)
    u16 = rng.integers(0, 60000, (5, 37, 41)).astype("uint16")
    return [
        ("v3 blosc odd grid", {"chunks": (2, 16, 16)}, u16, ZARRS),
        (
            "v3 sharded",
            {"chunks": (1, 8, 8), "shards": (1, 16, 16), "compressors": [BloscCodec()]},
            u16,
            ZARRS,
        ),
        (
            "v3 big-endian bytes",
            {"chunks": (2, 16, 16), "serializer": BytesCodec(endian="big")},
            u16,
            ZARRS,
        ),
        (
            "v3 gzip float64",
            {"chunks": (3, 20, 7), "compressors": [GzipCodec(level=5)]},
            rng.random((5, 37, 41)),
            ZARRS,
        ),
        ("v3 bool", {"chunks": (2, 16, 16)}, rng.random((5, 37, 41)) > 0.5, ZARRS),
        (
            "v2 nested float32",
            {
                "chunks": (2, 16, 16),
                "zarr_format": 2,
                "chunk_key_encoding": {"name": "v2", "separator": "/"},
            },
            rng.random((5, 37, 41)).astype("float32"),
            ZARRS,
        ),
        ("v2 big-endian", {"chunks": (2, 16, 16), "zarr_format": 2}, u16.astype(">u2"), PYTHON),
        # zarrs 0.2.3 failed reads of one chunk's region of these (not C contiguous).
        ("v2 fortran order", {"chunks": (2, 16, 16), "zarr_format": 2, "order": "F"}, u16, PYTHON),
    ]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_both_engines_write_and_read_the_same_pixels(tmp_path, use, case) -> None:
    _, options, data, native = case
    path = tmp_path / "a.zarr"
    arr = zarr.create_array(path, shape=data.shape, dtype=data.dtype, fill_value=0, **options)
    arr[:] = data
    arr[1, 3:5] = 0  # rewrite part of a chunk
    data = data.copy()
    data[1, 3:5] = 0
    expected = native if use == "zarrs" else PYTHON
    assert pipeline_name(arr) == expected
    for reader in engine.ENGINES:
        engine.set_engine(reader)
        back = zarr.open_array(open_store(path), mode="r")
        np.testing.assert_array_equal(back[...], data)
        np.testing.assert_array_equal(back[2, 5:30, 1:40], data[2, 5:30, 1:40])
        np.testing.assert_array_equal(back.oindex[[0, 4], 3, :], data[[0, 4], 3, :])
        np.testing.assert_array_equal(back[0, 0:16, 0:16], data[0, 0:16, 0:16])


def test_missing_chunks_read_as_fill_and_read_only_stores_refuse(tmp_path, use) -> None:
    path = tmp_path / "a.zarr"
    arr = zarr.create_array(path, shape=(4, 32), chunks=(1, 32), dtype="int16", fill_value=-3)
    arr[1] = 5
    back = zarr.open_array(open_store(path), mode="r")
    assert back[0].tolist() == [-3] * 32
    assert back[1].tolist() == [5] * 32
    with pytest.raises(ValueError, match="read-only"):
        back[2] = 1
    assert not (path / "c" / "2").exists()


def test_corrupt_chunk_is_an_error_not_a_picture(tmp_path, use) -> None:
    path = tmp_path / "a.zarr"
    arr = zarr.create_array(
        path, shape=(2, 64), chunks=(1, 64), dtype="uint16", compressors=[BloscCodec()]
    )
    arr[:] = 9
    (path / "c" / "1" / "0").write_bytes(b"not blosc")
    back = zarr.open_array(open_store(path), mode="r")
    assert back[0].tolist() == [9] * 64
    with pytest.raises(Exception):  # noqa: B017, PT011 - each engine raises its own type
        back[1]


def _image(folder: Path) -> Path:
    path = folder / "a.zarr"
    arr = zarr.create_array(path, shape=(3, 40, 50), chunks=(1, 16, 16), dtype="uint16")
    arr[:] = np.arange(6000, dtype="uint16").reshape(3, 40, 50)
    return path


def test_other_stores_keep_zarrs_pipeline_quietly(tmp_path, use, s3_env, recwarn, caplog) -> None:
    """Zip files, our HTTP stores (timeouts given as options) and object stores (zarrs's
    requests to the S3 server timed out) get zarr-python's pipeline, with the same pixels."""
    path = _image(tmp_path)
    url = s3_env.upload(path, "private", f"engine-{use}/a.zarr")
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                out.write(file, file.relative_to(path).as_posix())
    expected = np.arange(6000, dtype="uint16").reshape(3, 40, 50)
    caplog.set_level(logging.WARNING, logger=engine.__name__)
    bucket_url = url
    with serve(tmp_path) as url:
        stores = {
            "local": open_location(path).store,
            "zip": open_location(archive).store,
            "http": open_location(f"{url}/a.zarr").store,
            "s3": open_location(bucket_url).store,
        }
        for kind, store in stores.items():
            arr = zarr.open_array(store, mode="r")
            np.testing.assert_array_equal(arr[...], expected)
            native = use == "zarrs" and kind == "local"
            assert pipeline_name(arr) == (ZARRS if native else PYTHON), kind
    assert not [w for w in recwarn if "zarrs" in str(w.message).lower()]
    assert not [r for r in caplog.records if r.name.startswith("napari_omezarr_x")]


def test_user_configuration_is_kept(restore_engine, monkeypatch) -> None:
    monkeypatch.setattr(engine, "_applied", False)
    monkeypatch.delenv(engine.ENV, raising=False)
    zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})
    engine.apply()
    assert zarr.config.get("codec_pipeline.path") == "zarrs.ZarrsCodecPipeline"
    assert engine.current_engine() == "user"
    # An explicit choice through our API replaces it.
    engine.set_engine("zarr-python")
    assert engine.current_engine() == "zarr-python"


@pytest.mark.parametrize(
    ("value", "expected", "warned"),
    [("zarr-python", "zarr-python", False), ("ZARRS", "zarrs", False), ("rust", "zarrs", True)],
)
def test_environment_switch(restore_engine, monkeypatch, caplog, value, expected, warned) -> None:
    monkeypatch.setattr(engine, "_applied", False)
    monkeypatch.setenv(engine.ENV, value)
    zarr.config.set({"codec_pipeline.path": engine.ZARR_PIPELINE})
    caplog.set_level(logging.WARNING, logger=engine.__name__)
    engine.apply()
    assert engine.current_engine() == expected
    assert bool(caplog.records) == warned
    if warned:
        assert "rust" in caplog.text
        assert "zarr-python" in caplog.text


def test_unknown_engine_is_refused(restore_engine) -> None:
    with pytest.raises(ValueError, match="zarr-python"):
        engine.set_engine("fast")


def test_environment_reaches_a_fresh_process(tmp_path) -> None:
    """The CLI and other subprocesses pick the engine from the environment at first use."""
    path = _image(tmp_path)
    code = (
        "import zarr, sys\n"
        "from napari_omezarr_x.storage import open_location, current_engine\n"
        "from napari_omezarr_x.storage.engine import pipeline_name\n"
        "arr = zarr.open_array(open_location(sys.argv[1]).store, mode='r')\n"
        "print(current_engine(), pipeline_name(arr), int(arr[2, 39, 49]))\n"
    )
    for value, expected in (("zarr-python", f"zarr-python {PYTHON}"), ("zarrs", f"zarrs {ZARRS}")):
        env = {**os.environ, engine.ENV: value}
        out = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.split()
        assert out == [*expected.split(), "5999"]


def _corpus_arrays(root: Path) -> Iterator[tuple[str, Path, str]]:
    for ds in CORPUS_DATASETS:
        base = root.parent.parent / ds["local_path"]
        for image in ds["images"]:
            group = "" if image["group"] == "." else image["group"]
            for level in image["levels"]:
                yield ds["id"], base, "/".join(p for p in (group, level["path"]) if p)


def test_corpus_reads_the_same_with_both_engines(corpus_dir, restore_engine) -> None:
    """Every level of every corpus image: the same pixels from zarrs and from zarr-python
    (whole arrays up to 64 MB, one plane of larger ones)."""
    seen = native = 0
    for name, base, key in _corpus_arrays(corpus_dir):
        results = {}
        for choice in engine.ENGINES:
            engine.set_engine(choice)
            store = open_store(base)
            try:
                arr = zarr.open_array(store, path=key, mode="r")
            except Exception as exc:
                results[choice] = type(exc).__name__
                continue
            data = arr[...] if arr.nbytes <= 64 * 2**20 else arr[(0,) * (arr.ndim - 2)]
            results[choice] = (pipeline_name(arr), data)
            native += pipeline_name(arr) == ZARRS
        zarrs_result, python_result = results["zarrs"], results["zarr-python"]
        if isinstance(python_result, str):
            # Not an array at this path for either engine (a layout-1 group path).
            assert zarrs_result == python_result, (name, key)
            continue
        seen += 1
        np.testing.assert_array_equal(zarrs_result[1], python_result[1], err_msg=f"{name} {key}")
        assert zarrs_result[1].dtype == python_result[1].dtype
    assert seen >= 90
    if engine.zarrs_available():
        assert native >= 85


def test_serial_store_arrays_round_trip(tmp_path, use) -> None:
    """The writer's store (zarrs with one thread per call) writes what both engines read."""
    data = np.arange(4 * 70 * 90, dtype="uint16").reshape(4, 70, 90)
    arr = zarr.create_array(
        engine.serial_store(tmp_path / "w.zarr"),
        shape=data.shape,
        chunks=(2, 32, 32),
        dtype=data.dtype,
        compressors=[BloscCodec(cname="zstd", clevel=3)],
    )
    arr[:] = data
    assert pipeline_name(arr) == (ZARRS if use == "zarrs" else PYTHON)
    for reader in engine.ENGINES:
        engine.set_engine(reader)
        back = zarr.open_array(open_store(tmp_path / "w.zarr"), mode="r")
        np.testing.assert_array_equal(back[...], data)
