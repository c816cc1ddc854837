"""Raw key -> bytes views of a store, for tools that read documents one by one.

The validator reads every metadata document itself, so that a malformed one is
reported where it is instead of stopping the whole check.
"""

from __future__ import annotations

import re
from pathlib import Path

import fsspec

from napari_omezarr_x.errors import StoreAccessError

from .locations import (
    HTTP_CONNECT_TIMEOUT,
    HTTP_READ_TIMEOUT,
    METADATA_FILES,
    ZIP_SUFFIXES,
    layout1_data_dir,
)


def open_mapper(path: str) -> fsspec.FSMap:
    """A read-only key -> bytes view of a local folder, a .zip file or an http(s) URL."""
    if re.match(r"^https?://", path):
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=None, connect=HTTP_CONNECT_TIMEOUT, sock_read=HTTP_READ_TIMEOUT
        )
        return fsspec.get_mapper(path.rstrip("/"), client_kwargs={"timeout": timeout})
    local = Path(path)
    if not local.exists():
        raise StoreAccessError(f"{path}: no such file or directory")
    if local.is_file():
        if local.suffix.lower() not in ZIP_SUFFIXES:
            raise StoreAccessError(f"{path}: not a folder, a .zip file or an http(s) URL")
        try:
            zipped = fsspec.filesystem("zip", fo=str(local))
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
