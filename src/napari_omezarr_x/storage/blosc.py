"""Part of a blosc-compressed chunk file, read and decoded without the rest of it.

A blosc frame (the v1 format that numcodecs' Blosc, zarr's BloscCodec and zarrs
write) is a 16-byte header, the offsets of its blocks, and the blocks, each
compressed on its own (256 KiB each for zstd at level 5 and 2-byte items).
Bytes `[start, stop)` of the decoded chunk lie in a run of blocks, so they can
be had by reading the header, the offsets and those blocks and decoding only
them: a plane of a (64, 256, 256) uint16 chunk costs a 32nd of decoding it
whole, in bytes read as well as in time.

Decoding goes through `blosc_getitem` of the c-blosc library that numcodecs
ships (the library zarr's own pipeline decodes blosc with), on a frame rebuilt
from the blocks read. Where that library does not export it, `available()` is
False and callers read chunks whole. Anything unexpected (another format
version, sizes that do not add up, offsets outside the frame, a file shorter or
longer than its header says, a failed decode) raises `NotPartial`: the caller
then reads the chunk through zarr, which reports a broken chunk as it always does.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

HEADER_BYTES = 16
#: The format version byte of a blosc v1 frame (c-blosc 1.x).
FORMAT_VERSION = 2
#: Header flag: the frame holds the items uncompressed, after the header.
_MEMCPYED = 0x02
#: Smallest block size guessed when reading the header: block offsets for
#: blocks of at least this size come with the header in one read.
_GUESSED_BLOCK = 16 * 1024


class NotPartial(Exception):
    """The stored bytes are not a frame this module reads in part: read the chunk whole."""


@functools.cache
def _getitem() -> Callable[..., int] | None:
    """c-blosc's `blosc_getitem` from numcodecs' extension module, if it is exported."""
    try:
        from numcodecs import blosc as extension

        function = ctypes.CDLL(extension.__file__).blosc_getitem
    except (ImportError, OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


def available() -> bool:
    """Whether blosc frames can be decoded in part on this machine."""
    return _getitem() is not None


def stored_as_blosc_frames(array: Any) -> bool:
    """Whether every stored chunk of zarr `array` is one blosc frame of its items
    in C order and native byte order, and nothing else.

    zarr v3: the codecs are exactly `bytes` (native order, or one-byte items)
    then `blosc`: no transpose, checksum or sharding. zarr v2: a blosc
    compressor, no filters, C order. Items must be plain numbers or booleans.
    """
    from zarr.codecs import BloscCodec, BytesCodec
    from zarr.core.metadata import ArrayV2Metadata, ArrayV3Metadata

    dtype = np.dtype(array.dtype)
    if dtype.kind not in "biufc" or not dtype.isnative:
        return False
    metadata = array.metadata
    if isinstance(metadata, ArrayV3Metadata):
        codecs = list(metadata.codecs)
        if len(codecs) != 2 or not isinstance(codecs[1], BloscCodec):
            return False
        first = codecs[0]
        if not isinstance(first, BytesCodec):
            return False
        endian = getattr(first.endian, "value", first.endian)
        return dtype.itemsize == 1 or endian == sys.byteorder
    if isinstance(metadata, ArrayV2Metadata):
        compressor = metadata.compressor
        return (
            not metadata.filters
            and metadata.order == "C"
            and getattr(compressor, "codec_id", None) == "blosc"
        )
    return False


@dataclass(frozen=True)
class _Header:
    flags: int
    typesize: int
    nbytes: int
    blocksize: int
    cbytes: int

    @property
    def nblocks(self) -> int:
        return math.ceil(self.nbytes / self.blocksize)

    @property
    def offsets_end(self) -> int:
        return HEADER_BYTES + 4 * self.nblocks


def _header(data: bytes, nbytes: int, stored: int) -> _Header:
    """The header of a frame of `stored` bytes that decodes to `nbytes`, checked."""
    if len(data) < HEADER_BYTES or data[0] != FORMAT_VERSION:
        raise NotPartial("not a blosc v1 frame")
    flags, typesize = data[2], data[3]
    size, blocksize, cbytes = struct.unpack_from("<iii", data, 4)
    if size != nbytes or typesize < 1 or not 0 < blocksize <= nbytes:
        raise NotPartial(f"header sizes {size}, {blocksize}, {typesize} do not fit {nbytes} bytes")
    if cbytes != stored:
        raise NotPartial(f"the header says {cbytes} bytes, the file holds {stored}")
    header = _Header(flags, typesize, size, blocksize, cbytes)
    end = HEADER_BYTES + nbytes if flags & _MEMCPYED else header.offsets_end
    if cbytes < end:
        raise NotPartial(f"frame of {cbytes} bytes too short for its header")
    return header


def _read(f: IO[bytes], start: int, stop: int) -> bytes:
    """Bytes `[start, stop)` of an open file, all of them (every read of a chunk file
    goes through here; the benchmarks count them)."""
    f.seek(start)
    data = f.read(stop - start)
    if len(data) != stop - start:
        raise NotPartial("the file ended early")
    return data


def _open(path: str | os.PathLike[str]) -> IO[bytes] | None:
    """Chunk file `path` open for reading; None if there is none (the chunk is not stored)."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NotPartial(str(exc)) from exc


def read_part(
    path: str | os.PathLike[str], nbytes: int, start: int, stop: int
) -> np.ndarray | None:
    """Bytes `[start, stop)` (a uint8 array) of the chunk stored as a blosc frame in file
    `path`, whose decoded size is `nbytes`; None if there is no such file.

    Reads the header with the block offsets (one read, two for very small
    blocks), then the blocks that hold the bytes, and decodes only those.
    """
    f = _open(path)
    if f is None:
        return None
    with f:
        try:
            stored = os.fstat(f.fileno()).st_size
            head = _read(f, 0, min(stored, HEADER_BYTES + 4 * math.ceil(nbytes / _GUESSED_BLOCK)))
            header = _header(head, nbytes, stored)
            if header.flags & _MEMCPYED:
                data = _read(f, HEADER_BYTES + start, HEADER_BYTES + stop)
                return np.frombuffer(data, dtype=np.uint8)
            if len(head) < header.offsets_end:
                head += _read(f, len(head), header.offsets_end)
            frame = _frame(f, head[: header.offsets_end], header, start, stop)
        except OSError as exc:
            raise NotPartial(str(exc)) from exc
    return _decode(frame, header.typesize, start, stop)


def read_whole(path: str | os.PathLike[str], out: np.ndarray) -> bool:
    """Decode the chunk stored as a blosc frame in file `path` into C-contiguous `out`
    (the chunk's full shape and type). False if there is no such file.

    The frame is checked as for a part (format, decoded size, stored size) and
    decoded by numcodecs' c-blosc, the library zarr's own pipeline uses.
    """
    from numcodecs import blosc as extension

    f = _open(path)
    if f is None:
        return False
    with f:
        try:
            data = _read(f, 0, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            raise NotPartial(str(exc)) from exc
    _header(data[:HEADER_BYTES], out.nbytes, len(data))
    try:
        extension.decompress(data, out)
    except (RuntimeError, ValueError) as exc:
        raise NotPartial(f"blosc could not decode the chunk: {exc}") from exc
    return True


def _frame(f: IO[bytes], head: bytes, header: _Header, start: int, stop: int) -> bytes:
    """A frame holding only the blocks with bytes `[start, stop)`: the others' offsets
    point at the first of them, and are never followed."""
    offsets = np.frombuffer(head, dtype="<i4", count=header.nblocks, offset=HEADER_BYTES)
    offsets = offsets.astype(np.int64)
    if offsets.min() < header.offsets_end or offsets.max() >= header.cbytes:
        raise NotPartial("block offsets point outside the frame")
    first, last = start // header.blocksize, (stop - 1) // header.blocksize
    wanted = offsets[first : last + 1]
    # A block ends where the next block in storage order starts (blocks are written
    # one after another, though not always in their own order), the last at the end.
    bounds = np.unique(np.append(offsets, header.cbytes))
    ends = bounds[np.searchsorted(bounds, wanted, side="right")]
    lo, hi = int(wanted.min()), int(ends.max())
    data = _read(f, lo, hi)
    base = header.offsets_end
    moved = np.full(header.nblocks, base, dtype="<i4")
    moved[first : last + 1] = base + (wanted - lo)
    frame = bytearray(head[:HEADER_BYTES])
    struct.pack_into("<i", frame, 12, base + len(data))
    return bytes(frame) + moved.tobytes() + data


def _decode(frame: bytes, typesize: int, start: int, stop: int) -> np.ndarray:
    """Bytes `[start, stop)` of the chunk from a frame made by `_frame`."""
    if start % typesize or stop % typesize:
        raise NotPartial("the range does not fall on the frame's items")
    getitem = _getitem()
    if getitem is None:
        raise NotPartial("blosc_getitem is not available")
    out = np.empty(stop - start, dtype=np.uint8)
    done = getitem(frame, start // typesize, (stop - start) // typesize, out.ctypes.data)
    if done != out.size:
        raise NotPartial(f"blosc_getitem gave {done} bytes of {out.size}")
    return out
