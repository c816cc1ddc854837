"""Whole chunks of new arrays in local folders, encoded and written by the calling thread.

A save's dask pass already runs one task per core. Handing each chunk to zarr
sends it through zarr's event loop and an executor thread (zarrs's or
zarr-python's codec pipeline) while the task waits for it, and that hand-off
leaves the cores idle a fifth of the time. For the layouts our writer makes -- a
folder on a local disk, no sharding, chunks encoded by `bytes` (v3) and then
blosc or nothing, or a blosc compressor and no filters (v2) -- the task encodes
each chunk itself with numcodecs' Blosc, the codec zarr-python's own blosc
codec calls with the same settings (so the files hold the same bytes), and
writes the file as zarr's LocalStore does: a temporary file renamed into place.

Any other array, and any block that is not made of whole chunks, goes to zarr.
The writer is off where zarr-python's pipeline was chosen (`storage.set_engine`
or `NAPARI_OMEZARR_X_ENGINE=zarr-python`) or zarr's pipeline was configured by
the user.
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from . import blosc, engine


class ChunkFiles:
    """A `dask.array.store` target writing whole chunks of one zarr array as files.

    `skip_fill`: chunks holding only the fill value are not written (the array
    is new, so they read as the fill value); labels use it.
    """

    def __init__(self, array: Any, encode: Any, skip_fill: bool = False) -> None:
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.chunks = tuple(array.chunks)
        self._encode = encode
        self._skip_fill = skip_fill
        self._fill = array.fill_value
        self._root = Path(array.store_path.store.root)
        self._prefix = array.store_path.path
        self._metadata = array.metadata
        self._made: set[Path] = set()
        self._order = "<" if self.dtype.itemsize > 1 else "|"

    def __setitem__(self, key: tuple[slice, ...], block: np.ndarray) -> None:
        starts = [k.start or 0 for k in key]
        dims = list(zip(starts, np.shape(block), self.chunks, self.shape, strict=True))
        if any(s % c or ((s + n) % c and s + n != total) for s, n, c, total in dims):
            self.array[key] = block  # not whole chunks: zarr merges them with what is stored
            return
        block = np.asarray(block)
        grid = [range(0, n, c) for n, c in zip(block.shape, self.chunks, strict=True)]
        for corner in itertools.product(*grid):
            piece = block[tuple(slice(i, i + c) for i, c in zip(corner, self.chunks, strict=True))]
            if self._skip_fill and not self._holds_data(piece):
                continue
            where = zip(starts, corner, self.chunks, strict=True)
            coords = tuple((s + i) // c for s, i, c in where)
            self._write(coords, self._whole(piece))

    def _holds_data(self, piece: np.ndarray) -> bool:
        if self._fill == 0:
            return bool(piece.any())
        return bool(np.any(piece != self._fill))

    def _whole(self, piece: np.ndarray) -> np.ndarray:
        """`piece` as a full chunk in C order and little-endian; edge chunks padded with the
        fill value, as zarr stores them."""
        dtype = self.dtype.newbyteorder(self._order)
        if piece.shape == self.chunks:
            return np.ascontiguousarray(piece, dtype=dtype)
        whole = np.full(self.chunks, self._fill, dtype=dtype)
        whole[tuple(slice(0, n) for n in piece.shape)] = piece
        return whole

    def _write(self, coords: tuple[int, ...], chunk: np.ndarray) -> None:
        data = self._encode(chunk)
        key = self._metadata.encode_chunk_key(coords)
        path = self._root / self._prefix / key if self._prefix else self._root / key
        parent = path.parent
        if parent not in self._made:
            parent.mkdir(parents=True, exist_ok=True)
            self._made.add(parent)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def chunk_files(array: Any, skip_fill: bool = False) -> ChunkFiles | None:
    """A `ChunkFiles` target for `array`, or None when zarr must write it.

    Only arrays in a writable local folder, unsharded, in C order, of a plain
    numeric data type, whose chunks are blosc frames or uncompressed items, on a
    little-endian machine, and only while the engine allows it.
    """
    import zarr.storage

    if not engine.direct_writes() or sys.byteorder != "little":
        return None
    store = array.store_path.store
    if type(store) is not zarr.storage.LocalStore or store.read_only:
        return None
    if array.dtype.kind not in "biuf" or array.dtype.byteorder == ">":
        return None
    if getattr(array.metadata, "order", "C") != "C":
        return None
    encode = _encoder(array)
    if encode is None:
        return None
    return ChunkFiles(array, encode, skip_fill)


def _encoder(array: Any) -> Any:
    """The function turning a full little-endian chunk into the bytes zarr would store:
    blosc for chunks stored as blosc frames (`blosc.stored_as_blosc_frames`), the items
    themselves for uncompressed ones."""
    import numcodecs

    metadata = array.metadata
    if blosc.stored_as_blosc_frames(array):
        if metadata.zarr_format == 2:
            # zarr v2 hands numcodecs the chunk itself: items of the array's size.
            compressor = metadata.compressor
            return None if "typesize" in compressor.get_config() else compressor.encode
        codec = metadata.codecs[1]
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[codec.shuffle.value]
        try:
            # zarr's BloscCodec hands numcodecs bytes with the codec's typesize.
            compress = numcodecs.Blosc(
                cname=codec.cname.value,
                clevel=codec.clevel,
                shuffle=shuffle,
                blocksize=codec.blocksize,
                typesize=codec.typesize,
            )
        except TypeError:  # numcodecs before 0.16 has no typesize: zarr then writes it
            return None

        def encode(chunk: np.ndarray) -> bytes:
            return compress.encode(chunk.view(np.uint8).reshape(-1))

        return encode
    return _raw if _uncompressed(metadata) else None


def _uncompressed(metadata: Any) -> bool:
    """Whether chunks are stored as their little-endian items and nothing else."""
    from zarr.codecs import BytesCodec

    if metadata.zarr_format == 2:
        little = getattr(metadata.dtype, "endianness", "little") != "big"
        return metadata.compressor is None and not metadata.filters and little
    codecs = list(metadata.codecs)
    if len(codecs) != 1 or not isinstance(codecs[0], BytesCodec):
        return False
    endian = codecs[0].endian
    return endian is None or endian.value == "little"


def _raw(chunk: np.ndarray) -> bytes:
    return chunk.tobytes()
