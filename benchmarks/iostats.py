"""What a tool wrote (bytes, files, levels) and what a reader read (store keys and bytes)."""

from __future__ import annotations

import contextvars
import json
import os
import resource
import threading
from pathlib import Path

import psutil

# Store reads made inside zarrs's pipeline read (its fallback to zarr's pipeline).
_ZARRS_GETS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "zarrs_gets", default=None
)
METADATA_NAMES = ("zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata")


def rss_mb() -> float:
    """Current resident set size of this process in MB."""
    return psutil.Process().memory_info().rss / 1e6


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def tree_stats(path: str) -> dict:
    """Bytes and files under a folder, and the levels of the first multiscale image in it."""
    total = files = 0
    levels = None
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in names:
            files += 1
            total += os.path.getsize(os.path.join(root, name))
        if levels is None:
            levels = _levels_in(Path(root), names)
    return {"bytes_written": total, "files_written": files, "levels": levels}


def _levels_in(folder: Path, names: list[str]) -> int | None:
    for name in ("zarr.json", ".zattrs"):
        if name not in names:
            continue
        attrs = json.loads((folder / name).read_text())
        attrs = attrs.get("attributes", attrs)
        multiscales = attrs.get("ome", attrs).get("multiscales")
        if multiscales:
            return len(multiscales[0]["datasets"])
    return None


class StoreReadCounter:
    """Counts keys and bytes fetched through zarr's local and fsspec stores while active.

    Every reader ends up in these store classes, so patching their ``get`` methods
    measures chunk and metadata reads the same way for each. zarrs's codec pipeline
    reads chunk files itself: its ``read`` is wrapped too, counting the chunk keys it
    is handed and their file sizes (local stores; whole files, so a partial read of a
    shard counts the shard). Our reader reads blosc chunk files itself, in part or
    whole (`storage.blosc`): each chunk file it opens counts as one read, with the
    bytes it reads of it; `root` (the store's folder) makes those paths keys.
    """

    def __init__(self, level0_prefixes: tuple[str, ...] = (), root: str | None = None) -> None:
        # Key prefixes ("0/", "s0/") of full-resolution arrays, relative to the store root.
        self.level0_prefixes = tuple(level0_prefixes)
        self.root = None if root is None else Path(root).resolve()
        self.lock = threading.Lock()
        self.reset()
        self._saved: list[tuple[type, str, object]] = []

    def reset(self) -> None:
        """Start counting from zero."""
        self.metadata_reads = self.chunk_reads = self.level0_chunk_reads = 0
        self.bytes_read = 0

    def snapshot(self) -> dict:
        """The counts so far as a plain dict."""
        return {
            "metadata_reads": self.metadata_reads,
            "chunk_reads": self.chunk_reads,
            "level0_chunk_reads": self.level0_chunk_reads,
            "bytes_read": self.bytes_read,
        }

    def _count(self, key: str, nbytes: int) -> None:
        with self.lock:
            self.bytes_read += nbytes
            if key.rsplit("/", 1)[-1] in METADATA_NAMES:
                self.metadata_reads += 1
                return
            self.chunk_reads += 1
            if key.startswith(self.level0_prefixes):
                self.level0_chunk_reads += 1

    def __enter__(self) -> StoreReadCounter:
        from zarr.storage import FsspecStore, LocalStore, ZipStore

        for cls in (LocalStore, FsspecStore, ZipStore):
            original = cls.get
            self._saved.append((cls, "get", original))
            cls.get = self._wrap(original)
        self._wrap_blosc()
        try:
            from zarrs import ZarrsCodecPipeline
        except ImportError:
            return self
        original = ZarrsCodecPipeline.read
        self._saved.append((ZarrsCodecPipeline, "read", original))
        ZarrsCodecPipeline.read = self._wrap_pipeline(original)
        return self

    def _wrap_pipeline(self, original):
        counter = self

        async def read(pipeline, batch_info, out, drop_axes=()):
            batch = list(batch_info)
            # zarrs hands selections it cannot index to zarr's pipeline, whose store
            # reads are counted already: count the batch here only if none happened.
            token = _ZARRS_GETS.set([0])
            try:
                result = await original(pipeline, batch, out, drop_axes)
                fell_back = _ZARRS_GETS.get()[0] > 0
            finally:
                _ZARRS_GETS.reset(token)
            if not fell_back:
                for item in batch:
                    getter = item[0]
                    root = getattr(getter.store, "root", None)
                    file = Path(str(root)) / getter.path if root is not None else None
                    size = file.stat().st_size if file is not None and file.exists() else 0
                    counter._count(getter.path, size)
            return result

        return read

    def _wrap_blosc(self) -> None:
        try:
            from napari_omezarr_x.storage import blosc
        except ImportError:
            return
        original = blosc._read
        self._saved.append((blosc, "_read", original))
        counter = self

        def read(f, start, stop):
            data = original(f, start, stop)
            path = Path(f.name).resolve()
            root = counter.root
            key = path.relative_to(root).as_posix() if root and path.is_relative_to(root) else ""
            with counter.lock:
                counter.bytes_read += len(data)
            if start == 0:  # the header: the first read of a chunk file
                counter._count(key, 0)
            return data

        blosc._read = read

    def _wrap(self, original):
        counter = self

        async def get(store, key, prototype=None, byte_range=None):
            inside = _ZARRS_GETS.get()
            if inside is not None:
                inside[0] += 1
            buf = await original(store, key, prototype, byte_range)
            if buf is not None:
                counter._count(key, len(buf))
            return buf

        return get

    def __exit__(self, *exc) -> None:
        for cls, name, original in self._saved:
            setattr(cls, name, original)
        self._saved.clear()
