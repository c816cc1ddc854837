"""Our own chunk writer: the files it writes hold the bytes zarr-python writes, it leaves
out what it must, and every array or block it does not handle goes to zarr."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import dask.array as da
import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, GzipCodec

from napari_omezarr_x import write
from napari_omezarr_x.storage import engine
from napari_omezarr_x.storage.chunk_files import ChunkFiles, chunk_files
from napari_omezarr_x.write import execute

SHAPE = (3, 37, 70)
CHUNKS = (2, 16, 32)


@pytest.fixture
def direct(monkeypatch) -> None:
    """Direct writes on, whichever engine the suite runs with."""
    engine.apply()
    monkeypatch.setattr(engine, "_direct", True)


@pytest.fixture
def restore_engine() -> Iterator[None]:
    path = zarr.config.get("codec_pipeline.path")
    state = engine._applied, engine._direct
    yield
    zarr.config.set({"codec_pipeline.path": path})
    engine._applied, engine._direct = state


def _compressor(version: int, name: str):
    if name == "none":
        return None
    if version == 2:
        return numcodecs.Blosc(cname=name, clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    return BloscCodec(cname=name, clevel=5, shuffle="shuffle")


def _create(path: Path, version: int, dtype: str, compression: str, **extra) -> zarr.Array:
    kwargs = {
        "shape": SHAPE,
        "chunks": CHUNKS,
        "dtype": dtype,
        "fill_value": 0,
        "zarr_format": version,
        "compressors": _compressor(version, compression),
        "config": {"write_empty_chunks": True},
        "overwrite": True,
        **extra,
    }
    if version == 2:
        kwargs.setdefault("chunk_key_encoding", {"name": "v2", "separator": "/"})
    return zarr.create_array(store=str(path), **kwargs)


def _data(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    values = rng.integers(0, 120, SHAPE)
    values[:, :, 40:] = 0  # whole chunks of zeros
    return values.astype(dtype)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(("zarr.json", ".z"))
    }


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32", "float64", "bool"])
@pytest.mark.parametrize("compression", ["zstd", "lz4", "none"])
def test_files_hold_the_bytes_zarr_python_writes(tmp_path, direct, version, dtype, compression):
    data = _data(dtype)
    ours = _create(tmp_path / "ours", version, dtype, compression)
    target = chunk_files(ours)
    assert isinstance(target, ChunkFiles)
    # Blocks of several chunks, with partial chunks at the far edges.
    da.store(da.from_array(data, chunks=(2, 32, 64)), target, lock=False)

    with zarr.config.set({"codec_pipeline.path": engine.ZARR_PIPELINE}):
        reference = _create(tmp_path / "zarr", version, dtype, compression)
        reference[...] = data

    assert _files(tmp_path / "ours") == _files(tmp_path / "zarr")
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "ours"))[...], data)
    assert not list((tmp_path / "ours").rglob("*.partial"))


@pytest.mark.parametrize("version", [2, 3])
def test_labels_leave_background_chunks_out(tmp_path, direct, version):
    data = _data("uint32")
    arr = _create(tmp_path / "labels", version, "uint32", "zstd")
    da.store(da.from_array(data, chunks=(2, 32, 64)), chunk_files(arr, skip_fill=True))
    written = _files(tmp_path / "labels")
    # Pixels from x = 40 on are 0: x chunk 2 (64-69) is left out everywhere, x chunks 0
    # and 1 (32-63, labels up to 39) are written: 2 z chunks x 3 y chunks x 2.
    assert len(written) == 2 * 3 * 2
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "labels"))[...], data)


def test_blocks_that_are_not_whole_chunks_go_to_zarr(tmp_path, direct):
    data = _data("uint16")
    arr = _create(tmp_path / "a", 3, "uint16", "zstd")
    target = chunk_files(arr)
    target[(slice(0, 3), slice(0, 37), slice(0, 70))] = data
    patch = np.full((1, 5, 7), 999, np.uint16)
    target[(slice(1, 2), slice(3, 8), slice(30, 37))] = patch  # straddles chunks
    expected = data.copy()
    expected[1:2, 3:8, 30:37] = patch
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"))[...], expected)


def test_a_failed_write_leaves_no_partial_file(tmp_path, direct):
    arr = _create(tmp_path / "a", 3, "uint16", "none")
    target = ChunkFiles(arr, encode=lambda chunk: "not bytes")
    with pytest.raises(TypeError):
        target[(slice(0, 2), slice(0, 16), slice(0, 32))] = np.ones((2, 16, 32), np.uint16)
    assert [p.name for p in (tmp_path / "a").rglob("*") if p.is_file()] == ["zarr.json"]


@pytest.mark.parametrize(
    "case", ["sharded", "gzip", "fortran-order", "big-endian", "zip", "read-only", "engine-off"]
)
def test_what_it_does_not_handle_goes_to_zarr(tmp_path, direct, restore_engine, case):
    path = tmp_path / "a"
    if case == "sharded":
        arr = _create(path, 3, "uint16", "zstd", shards=(2, 32, 64))
    elif case == "gzip":
        arr = _create(path, 3, "uint16", "zstd", compressors=GzipCodec())
    elif case == "fortran-order":
        arr = _create(path, 2, "uint16", "zstd", order="F")
    elif case == "big-endian":
        arr = _create(path, 2, ">u2", "zstd")
    elif case == "zip":
        store = zarr.storage.ZipStore(tmp_path / "a.zip", mode="w")
        arr = zarr.create_array(store=store, shape=SHAPE, chunks=CHUNKS, dtype="uint16")
    elif case == "read-only":
        _create(path, 3, "uint16", "zstd")
        arr = zarr.open_array(zarr.storage.LocalStore(path, read_only=True))
    else:
        arr = _create(path, 3, "uint16", "zstd")
        engine.set_engine("zarr-python")
    assert chunk_files(arr) is None
    if case == "zip":
        arr.store.close()
        assert zipfile.is_zipfile(tmp_path / "a.zip")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("kind", ["image", "labels"])
def test_a_saved_pyramid_is_the_same_as_through_zarr_python(
    tmp_path, direct, restore_engine, version, kind
):
    rng = np.random.default_rng(2)
    data = rng.integers(0, 4000, (2, 33, 96, 80)).astype(np.uint16)
    if kind == "labels":
        data = (data[0] // 1000).astype(np.uint32)
        data[:, :, 40:] = 0
    kwargs = {"version": version, "chunks": (1, 16, 32, 32)[-data.ndim :], "levels": 3}

    def save(root: Path) -> None:
        if kind == "image":
            write.write_image(root, data, axes="czyx", **kwargs)
        else:
            write.write_labels(root, data, axes="zyx", **kwargs)

    save(tmp_path / "ours")
    engine.set_engine("zarr-python")
    save(tmp_path / "zarr")
    ours, reference = _files(tmp_path / "ours"), _files(tmp_path / "zarr")
    assert ours.keys() == reference.keys()
    assert ours == reference


def test_one_thread_more_than_cores_only_when_every_write_is_ours(tmp_path, direct):
    import dask
    from dask.system import CPU_COUNT

    direct_target = chunk_files(_create(tmp_path / "a", 3, "uint16", "zstd"))
    zarr_array = _create(tmp_path / "b", 3, "uint16", "zstd", shards=(2, 32, 64))
    assert execute._threads([direct_target]) == {"num_workers": CPU_COUNT + 1}
    assert execute._threads([direct_target, zarr_array]) == {}
    with dask.config.set(num_workers=1):
        assert execute._threads([direct_target]) == {}
    with dask.config.set(scheduler="synchronous"):
        assert execute._threads([direct_target]) == {}
