"""Small reads of blosc chunks decode only the blocks holding them, and reads of one whole
chunk decode its file without zarr: always zarr's pixels.

Every read is compared with zarr reading the same array: written stores (zarr v2
and v3, several dtypes, blosc compressors, shuffles and block sizes, chunk grids
with odd edges, missing chunks), every array of the shared corpus, layouts the
partial reader must leave to zarr, and broken chunk files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, TransposeCodec, ZstdCodec

from napari_omezarr_x.read.partial import PartialReads, WholeChunkReads
from napari_omezarr_x.storage import blosc

SHAPE = (2, 21, 37, 45)
CHUNKS = (1, 8, 16, 20)

# dtype, cname, shuffle, blocksize (0: blosc chooses).
CODECS = [
    ("uint16", "zstd", "shuffle", 0),
    ("float64", "lz4", "bitshuffle", 1024),
    ("uint8", "blosclz", "noshuffle", 512),
    ("int32", "zlib", "shuffle", 4096),
    ("bool", "zstd", "noshuffle", 0),
    ("complex64", "lz4hc", "shuffle", 2048),
]
_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


@pytest.fixture
def whole_reads(monkeypatch) -> list[str]:
    """Paths of the chunk files decoded whole without zarr from now on."""
    paths: list[str] = []
    original = blosc.read_whole

    def read_whole(path, out):
        paths.append(str(path))
        return original(path, out)

    monkeypatch.setattr(blosc, "read_whole", read_whole)
    return paths


def _chunk_keys(shape: tuple[int, ...], chunks: tuple[int, ...]) -> list[tuple]:
    """The region of every chunk, cut at the array's end (as dask blocks of one chunk ask
    for it), with an integer index where the chunk is one item deep."""
    keys = []
    for corner in np.ndindex(*[-(-n // c) for n, c in zip(shape, chunks, strict=True)]):
        key = tuple(
            i * c if c == 1 else slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(corner, chunks, shape, strict=True)
        )
        keys.append(key)
    return keys


@pytest.fixture
def partial_reads(monkeypatch) -> list[str]:
    """Paths of the chunk files read in part from now on."""
    paths: list[str] = []
    original = blosc.read_part

    def read_part(path, *args):
        paths.append(str(path))
        return original(path, *args)

    monkeypatch.setattr(blosc, "read_part", read_part)
    return paths


def _data(dtype: str, shape=SHAPE) -> np.ndarray:
    rng = np.random.default_rng(7)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    # Smooth values with noise, so blosc has something to compress.
    base = np.add.outer(np.arange(shape[-2]), np.arange(shape[-1])) % 97
    values = base + rng.integers(0, 5, shape)
    if np.dtype(dtype).kind == "c":
        return (values + 1j * values[..., ::-1]).astype(dtype)
    return values.astype(dtype)


def _write(path: Path, data: np.ndarray, zarr_format: int, codec: tuple, **kwargs) -> zarr.Array:
    _, cname, shuffle, blocksize = codec
    if zarr_format == 3:
        kwargs.setdefault(
            "compressors",
            BloscCodec(
                cname=cname,
                clevel=5,
                shuffle=shuffle,
                typesize=data.dtype.itemsize,
                blocksize=blocksize,
            ),
        )
    else:
        kwargs.setdefault(
            "compressors",
            numcodecs.Blosc(cname=cname, clevel=5, shuffle=_SHUFFLE[shuffle], blocksize=blocksize),
        )
    kwargs.setdefault("chunks", CHUNKS)
    array = zarr.create_array(
        str(path),
        shape=data.shape,
        dtype=data.dtype,
        zarr_format=zarr_format,
        fill_value=kwargs.pop("fill_value", 0),
        **kwargs,
    )
    array[...] = data
    return zarr.open_array(str(path), mode="r")


def _plane_keys(shape: tuple[int, ...]) -> list[tuple]:
    """Reads napari and users make: planes (ints or 1-long slices), crops, rows, thin slabs."""
    c, z = shape[:2]
    keys: list[tuple] = []
    for zi in range(z):
        keys.append((zi % c, zi, slice(None), slice(None)))
    keys += [
        (1, slice(3, 4), slice(5, 30), slice(3, 44)),
        (0, -1, slice(17, 37), slice(40, 45)),
        (slice(0, 2), 9, 7, slice(None)),
        (1, slice(7, 10), slice(None), slice(None)),
        (0, 15, slice(15, 17), slice(19, 21)),
        (np.int64(1), np.int64(20)),
        (1, 4, 36, 44),
    ]
    return keys


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("codec", CODECS, ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[3]}" for c in CODECS])
def test_reads_are_zarrs_pixels(tmp_path, zarr_format, codec, partial_reads) -> None:
    data = _data(codec[0])
    array = _write(tmp_path / "a.zarr", data, zarr_format, codec)
    reads = PartialReads(array)
    for key in _plane_keys(SHAPE):
        got = reads[key]
        expected = array[key]
        assert got.shape == expected.shape, key
        assert got.dtype == expected.dtype, key
        np.testing.assert_array_equal(got, expected, err_msg=str(key))
        np.testing.assert_array_equal(got, data[key], err_msg=str(key))
    assert partial_reads  # the planes were read in part
    # A read of whole chunks (a save, a conversion) is zarr's own.
    before = len(partial_reads)
    np.testing.assert_array_equal(reads[...], data)
    np.testing.assert_array_equal(reads[0, 0:8], data[0, 0:8])
    assert len(partial_reads) == before


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("codec", CODECS, ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[3]}" for c in CODECS])
def test_whole_chunk_reads_are_zarrs_pixels(tmp_path, zarr_format, codec, whole_reads) -> None:
    data = _data(codec[0])
    array = _write(tmp_path / "a.zarr", data, zarr_format, codec)
    reads = WholeChunkReads(array)
    keys = _chunk_keys(SHAPE, CHUNKS)
    for key in keys:
        got = reads[key]
        expected = array[key]
        assert got.shape == expected.shape, key
        assert got.dtype == expected.dtype, key
        np.testing.assert_array_equal(got, expected, err_msg=str(key))
    assert len(whole_reads) == len(keys)
    # Anything but one whole chunk is zarr's own.
    for key in [(0, slice(0, 8), slice(0, 16), slice(0, 19)), (slice(0, 2), 3), (1, 9)]:
        np.testing.assert_array_equal(reads[key], data[key], err_msg=str(key))
    np.testing.assert_array_equal(reads[...], data)
    assert len(whole_reads) == len(keys)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_missing_whole_chunks_get_the_fill_value(tmp_path, zarr_format, whole_reads) -> None:
    data = _data("uint16")
    data[1, 8:16] = 5
    array = _write(tmp_path / "a.zarr", data, zarr_format, CODECS[0], fill_value=5)
    stored = {p.relative_to(tmp_path / "a.zarr") for p in (tmp_path / "a.zarr").rglob("*")}
    reads = WholeChunkReads(array)
    for key in _chunk_keys(SHAPE, CHUNKS):
        np.testing.assert_array_equal(reads[key], data[key], err_msg=str(key))
    assert len(whole_reads) == len(_chunk_keys(SHAPE, CHUNKS))
    assert stored  # zarr left the chunks of only 5 out; they were read as the fill value


def test_whole_chunks_of_other_layouts_are_left_to_zarr(tmp_path, whole_reads) -> None:
    data = _data("uint16")
    for name, array in _layouts(tmp_path, data).items():
        reads = WholeChunkReads(array)
        for key in _chunk_keys(SHAPE, CHUNKS)[::5]:
            np.testing.assert_array_equal(reads[key], data[key], err_msg=f"{name} {key}")
    assert whole_reads == []


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_missing_chunks_get_the_fill_value(tmp_path, zarr_format, partial_reads) -> None:
    data = np.full(SHAPE, 7, dtype="uint16")
    data[1, 8:16, :16, :20] = np.arange(8 * 16 * 20).reshape(8, 16, 20)
    array = _write(
        tmp_path / "sparse.zarr",
        data,
        zarr_format,
        CODECS[0],
        fill_value=7,
        config={"write_empty_chunks": False},
    )
    stored = [p for p in (tmp_path / "sparse.zarr").rglob("*") if p.is_file()]
    assert len([p for p in stored if not p.name.startswith((".", "zarr.json"))]) == 1
    for z in (0, 9, 20):
        np.testing.assert_array_equal(PartialReads(array)[1, z], data[1, z])
    assert partial_reads


def _layouts(tmp_path: Path, data: np.ndarray) -> dict[str, zarr.Array]:
    """Stores whose chunks are not plain blosc frames of native C-order items, or are
    not files of a folder store: all left to zarr."""
    blosc3 = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=2)
    blosc2 = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=1)
    v2 = {"zarr_format": 2, "compressors": blosc2}
    settings = {
        "v3-sharded": {"shards": (1, 16, 32, 40), "compressors": blosc3},
        "v3-crc32c": {"serializer": BytesCodec(), "compressors": [blosc3, Crc32cCodec()]},
        "v3-transpose": {"filters": [TransposeCodec(order=(3, 2, 1, 0))], "compressors": blosc3},
        "v3-big-endian": {"serializer": BytesCodec(endian="big"), "compressors": blosc3},
        "v3-zstd": {"compressors": ZstdCodec()},
        "v2-delta": {**v2, "filters": [numcodecs.Delta(dtype="<u2")]},
        "v2-fortran": {**v2, "order": "F"},
        "v2-big-endian": {**v2, "dtype": ">u2"},
    }
    out = {}
    for name, kwargs in settings.items():
        kwargs = {"dtype": data.dtype, **kwargs}
        array = zarr.create_array(str(tmp_path / name), shape=data.shape, chunks=CHUNKS, **kwargs)
        array[...] = data
        out[name] = zarr.open_array(str(tmp_path / name), mode="r")
    zipped = zarr.storage.ZipStore(tmp_path / "a.zip", mode="w")
    zarr.create_array(zipped, shape=data.shape, dtype=data.dtype, chunks=CHUNKS)[...] = data
    zipped.close()
    out["zip"] = zarr.open_array(zarr.storage.ZipStore(tmp_path / "a.zip", mode="r"), mode="r")
    return out


def test_other_layouts_are_left_to_zarr(tmp_path, partial_reads) -> None:
    data = _data("uint16")
    for name, array in _layouts(tmp_path, data).items():
        reads = PartialReads(array)
        for key in _plane_keys(SHAPE)[::4]:
            np.testing.assert_array_equal(reads[key], data[key], err_msg=f"{name} {key}")
    assert partial_reads == []


def test_without_blosc_getitem_every_read_is_zarrs(tmp_path, monkeypatch, partial_reads) -> None:
    """Where numcodecs' c-blosc does not export blosc_getitem, chunks are read whole."""
    data = _data("uint16")
    array = _write(tmp_path / "a.zarr", data, 3, CODECS[0])
    monkeypatch.setattr(blosc, "_getitem", lambda: None)
    assert not blosc.available()
    np.testing.assert_array_equal(PartialReads(array)[1, 9], data[1, 9])
    assert partial_reads == []


def _plane_chunk(path: Path, zarr_format: int) -> Path:
    """The chunk file holding plane (1, 9) and rows 0-15, columns 0-19."""
    return path / ("1.1.0.0" if zarr_format == 2 else "c/1/1/0/0")


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


# Damage done to a stored chunk: name, bytes -> bytes.
DAMAGE = {
    "truncated-half": lambda b: b[: len(b) // 2],
    "truncated-header": lambda b: b[:10],
    "empty": lambda b: b"",
    "trailing-bytes": lambda b: b + b"\0" * 100,
    "garbage": lambda b: bytes(np.random.default_rng(1).integers(0, 256, len(b), np.uint8)),
    "wrong-version": lambda b: bytes([9]) + b[1:],
    "wrong-size": lambda b: b[:4] + (123).to_bytes(4, "little") + b[8:],
    "wrong-blocksize": lambda b: b[:8] + (0).to_bytes(4, "little") + b[12:],
    "offset-outside": lambda b: b[:16] + (len(b) + 50).to_bytes(4, "little") + b[20:],
    "offset-into-header": lambda b: b[:16] + (3).to_bytes(4, "little") + b[20:],
    "flipped-block-byte": lambda b: _flip(b, len(b) // 3),
    "flipped-last-byte": lambda b: _flip(b, len(b) - 1),
}


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_broken_chunk_never_gives_other_pixels_than_zarr(tmp_path, zarr_format, damage) -> None:
    """Where zarr gives pixels of a damaged chunk, the partial reader gives the same; where
    zarr fails, it fails the same way, or (damage outside the blocks of the plane, which
    it never decodes) gives the plane as written. Never other pixels."""
    data = _data("uint16")
    path = tmp_path / "broken.zarr"
    array = _write(path, data, zarr_format, ("uint16", "zstd", "shuffle", 4096))
    chunk = _plane_chunk(path, zarr_format)
    chunk.write_bytes(DAMAGE[damage](chunk.read_bytes()))
    for key in [(1, z, slice(None), slice(None)) for z in range(8, 16)]:
        try:
            expected = array[key]
        except Exception as exc:  # whatever zarr raises
            try:
                got = PartialReads(array)[key]
            except type(exc):
                continue
            np.testing.assert_array_equal(got, data[key], err_msg=str(key))
        else:
            np.testing.assert_array_equal(PartialReads(array)[key], expected, err_msg=str(key))


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_broken_whole_chunk_fails_as_zarr_fails(tmp_path, zarr_format, damage) -> None:
    """A damaged chunk read whole gives zarr's pixels where zarr gives any, and zarr's
    error where zarr fails: it is handed to zarr whenever blosc or the checks object."""
    data = _data("uint16")
    path = tmp_path / "broken.zarr"
    array = _write(path, data, zarr_format, ("uint16", "zstd", "shuffle", 4096))
    chunk = _plane_chunk(path, zarr_format)
    chunk.write_bytes(DAMAGE[damage](chunk.read_bytes()))
    key = (1, slice(8, 16), slice(0, 16), slice(0, 20))
    try:
        expected = array[key]
    except Exception as exc:  # whatever zarr raises
        with pytest.raises(type(exc)):
            WholeChunkReads(array)[key]
    else:
        np.testing.assert_array_equal(WholeChunkReads(array)[key], expected)


def test_a_chunk_file_that_cannot_be_opened_reads_as_zarr_reads_it(tmp_path) -> None:
    """A folder where a chunk file should be: the partial reader cannot open it and
    leaves it to zarr (which takes it for a missing chunk: the fill value)."""
    data = _data("uint16")
    path = tmp_path / "folder.zarr"
    array = _write(path, data, 3, CODECS[0], fill_value=3)
    chunk = _plane_chunk(path, 3)
    chunk.unlink()
    (chunk / "inside").mkdir(parents=True)
    expected = array[1, 9]
    assert (expected[:16, :20] == 3).all()
    np.testing.assert_array_equal(PartialReads(array)[1, 9], expected)
    whole = (1, slice(8, 16), slice(0, 16), slice(0, 20))
    try:
        expected = array[whole]
    except Exception as exc:  # zarrs cannot size a folder read whole; zarr-python fills it
        with pytest.raises(type(exc)):
            WholeChunkReads(array)[whole]
    else:
        np.testing.assert_array_equal(WholeChunkReads(array)[whole], expected)


def _corpus_arrays(corpus: Path) -> list[Path]:
    found = []
    for meta in sorted(corpus.rglob("*")):
        v3 = meta.name == "zarr.json" and json.loads(meta.read_text()).get("node_type") == "array"
        if v3 or meta.name == ".zarray":
            found.append(meta.parent)
    return found


def test_every_corpus_array_reads_as_zarr_does(corpus_dir, partial_reads, whole_reads) -> None:
    arrays = _corpus_arrays(corpus_dir)
    assert len(arrays) > 50
    partial = 0
    for folder in arrays:
        array = zarr.open_array(str(folder), mode="r")
        if array.ndim < 3:
            continue
        reads = PartialReads(array)
        partial += reads._folder is not None
        whole = WholeChunkReads(array)
        for k in _chunk_keys(array.shape, array.chunks)[:: max(1, array.nchunks // 6)]:
            np.testing.assert_array_equal(whole[k], array[k], err_msg=f"{folder} {k}")
        lead = array.shape[:-2]
        keys = {tuple(n - 1 if n > 1 else 0 for n in lead), tuple(n // 2 for n in lead)}
        keys.add(tuple(0 for _ in lead))
        for key in sorted(keys):
            window = (*key, slice(1, None), slice(0, max(1, array.shape[-1] - 1)))
            for k in (key, window):
                np.testing.assert_array_equal(reads[k], array[k], err_msg=f"{folder} {k}")
    assert partial > 10
    assert partial_reads
    assert whole_reads
