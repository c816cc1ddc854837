"""Many small documents of one store fetched at once.

A plate lists hundreds of wells, each with its own metadata document. Going
through zarr costs a group open (one or two requests and some CPU) per well;
fetching the documents' bytes side by side (files, zip members, one batch of
concurrent HTTP requests, object-store gets in threads) is several times
faster, which is what makes a 384-well plate open in well under a second over
a slow link.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .concurrency import parallel
from .locations import ZIP_SUFFIXES, Location, _http_options

Document = bytes | None | Exception


def read_many(location: Location, keys: Sequence[str]) -> list[Document] | None:
    """The bytes of each key of `location`'s store (None where absent, the exception
    where reading failed), or None when this kind of location has no batch read
    (callers then go through zarr)."""
    if location.keys is not None:  # an object store: its client in threads side by side
        return parallel([lambda k=k: location.keys.get(k) for k in keys], 32)
    if location.kind == "local":
        return [_read_file(Path(location.root) / key) for key in keys]
    if location.kind == "zip":
        try:
            with zipfile.ZipFile(location.root) as archive:
                names = set(archive.namelist())
                return [archive.read(key) if key in names else None for key in keys]
        except (OSError, zipfile.BadZipFile) as exc:
            return [exc] * len(keys)
    if location.kind == "http" and not urlsplit(location.root).path.lower().endswith(ZIP_SUFFIXES):
        urls = [f"{location.root}/{key}" for key in keys]
        found = _http_fs().cat(urls, on_error="return")
        return [_document(found.get(url)) for url in urls]
    return None


def _read_file(path: Path) -> Document:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError as exc:
        return exc


def _document(value: Any) -> Document:
    if isinstance(value, bytes):
        return value
    if value is None or isinstance(value, FileNotFoundError):
        return None
    return value if isinstance(value, Exception) else Exception(repr(value))


@functools.cache
def _http_fs() -> Any:
    """One fsspec HTTP file system (its own event loop thread, aiohttp sessions)."""
    import fsspec

    return fsspec.filesystem("http", **_http_options())
