"""Raw key -> bytes views of a store, for tools that read documents one by one.

The validator reads every metadata document itself, so that a malformed one is
reported where it is instead of stopping the whole check.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import fsspec

from napari_omezarr_x.errors import StoreAccessError

from .archives import zip_filesystem
from .locations import (
    HTTP_SCHEMES,
    LOCAL_SCHEMES,
    METADATA_FILES,
    ZIP_SUFFIXES,
    StoreLike,
    check_scheme,
    layout1_data_dir,
    local_path,
    open_location,
)
from .network import remote_settings
from .objects import OBJECT_SCHEMES, ObjectKeys, object_store


class KeyMapping(Mapping[str, bytes]):
    """Read-only key -> bytes of an object store (or a zarr store), KeyError when absent."""

    def __init__(self, get: Any, prefix: str = "") -> None:
        self._get = get
        self._prefix = prefix.strip("/")

    def __getitem__(self, key: str) -> bytes:
        value = self._get(f"{self._prefix}/{key}" if self._prefix else key)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _zarr_getter(store: Any) -> Any:
    """A blocking `get(key) -> bytes | None` over a zarr store's async API."""
    from zarr.buffer import default_buffer_prototype

    def get(key: str) -> bytes | None:
        buffer = asyncio.run(store.get(key, prototype=default_buffer_prototype()))
        return None if buffer is None else buffer.to_bytes()

    return get


def open_mapper(
    path: StoreLike, storage_options: dict[str, Any] | None = None
) -> Mapping[str, bytes]:
    """A read-only key -> bytes view of any StoreLike (folder, zip, URL, store object)."""
    if not isinstance(path, str | os.PathLike):
        if isinstance(path, fsspec.FSMap):
            return path
        location = open_location(path, storage_options)
        if location.kind in ("local", "zip"):
            return open_mapper(location.describe(location.path))
        if location.keys is not None:
            return KeyMapping(location.keys.get, location.path)
        return KeyMapping(_zarr_getter(location.store), location.path)
    path = os.fspath(path)
    scheme = check_scheme(path)
    if scheme in OBJECT_SCHEMES and not path.rstrip("/").lower().endswith(ZIP_SUFFIXES):
        return KeyMapping(ObjectKeys(path, object_store(path, storage_options)).get)
    if scheme in OBJECT_SCHEMES:
        location = open_location(path, storage_options)
        return KeyMapping(_zarr_getter(location.store), location.path)
    if scheme in LOCAL_SCHEMES:
        path = str(local_path(path))
    if scheme in HTTP_SCHEMES:
        import aiohttp

        settings = remote_settings()
        timeout = aiohttp.ClientTimeout(
            total=None, connect=settings.connect_timeout, sock_read=settings.read_timeout
        )
        return fsspec.get_mapper(path.rstrip("/"), client_kwargs={"timeout": timeout})
    local = Path(path)
    if not local.exists():
        raise StoreAccessError(f"{path}: no such file or directory")
    if local.is_file():
        if local.suffix.lower() not in ZIP_SUFFIXES:
            raise StoreAccessError(f"{path}: not a folder, a .zip file or an http(s) URL")
        try:
            zipped = zip_filesystem(str(local))
            names = zipped.ls("", detail=False)
        except Exception as exc:
            raise StoreAccessError(f"{path}: cannot open zip file ({exc})") from exc
        tops = [n.strip("/") for n in names]
        # A zip holding one top-level folder (`image.zarr/...`) has its store in there.
        if not set(tops) & set(METADATA_FILES) and len(tops) == 1:
            return zipped.get_mapper(tops[0])
        return zipped.get_mapper("")
    data = layout1_data_dir(local)
    return fsspec.get_mapper(str(data if data is not None else local))
