"""The cheap "is this OME-Zarr?" test napari runs on every dropped path.

It never raises, warns, prints or reads chunks: local folders are judged by
their metadata file's OME keys, zip files by their extension and member names,
URLs by their name.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.storage import (
    METADATA_FILES,
    ZIP_SUFFIXES,
    StoreLike,
    is_object_url,
    is_url,
    layout1_data_dir,
    open_location,
    read_local_attrs,
    split_zip_path,
    url_scheme,
)

#: How deep plain groups are searched for nested images.
MAX_NESTED_DEPTH = 3
# Child folders `looks_like_ome_zarr` may look into for nested images.
_NESTED_SCAN_BUDGET = 64


def looks_like_ome_zarr(path: StoreLike, storage_options: dict[str, Any] | None = None) -> bool:
    """Cheap guess whether `path` is OME-Zarr: never raises, warns, prints or reads chunks.

    Local folders are judged by their metadata file's OME keys; zip files by
    their extension and member names; http(s) URLs by their name; object-store
    URLs and store objects by their root metadata document (one request).
    """
    try:
        if is_object_url(path) or not isinstance(path, str | os.PathLike):
            return _looks_like_store(path, storage_options)
        return _looks_like(os.fspath(path))
    except Exception:  # this check must never fail, whatever the input
        return False


def _looks_like_store(store: StoreLike, storage_options: dict[str, Any] | None) -> bool:
    """An object-store URL or a store object: its root group's OME keys (or child images)."""
    import zarr

    location = open_location(store, storage_options)
    try:
        group = zarr.open_group(location.store, path=location.path or None, mode="r")
    except ValueError:  # unparsable metadata: claim it, so the error is shown
        return True
    if md.is_ome_node(dict(group.attrs)):
        return True
    for name in location.child_names(location.path)[:_NESTED_SCAN_BUDGET]:
        try:
            child = zarr.open_group(location.store, path=location.join(location.path, name))
        except Exception:  # a broken child does not make the store ours
            continue
        if "multiscales" in md.ome_attributes(dict(child.attrs)):
            return True
    return False


def _looks_like(text: str) -> bool:
    if url_scheme(text) not in (None, "file"):
        return is_url(text) and _url_named_like_zarr(text)
    if url_scheme(text) == "file":
        text = text[len("file://") :]
    return _looks_like_local(text)


def _url_named_like_zarr(text: str) -> bool:
    parts = urlsplit(text).path.rstrip("/").lower().split("/")
    return parts[-1].endswith(ZIP_SUFFIXES) or any(p.endswith(".zarr") for p in parts)


def _looks_like_local(text: str) -> bool:
    local = Path(text).expanduser()
    zipped = split_zip_path(str(local))
    if zipped is not None:
        if zipped[0].suffix.lower() == ".ozx":
            return True
        with zipfile.ZipFile(zipped[0]) as archive:
            return any(n.rsplit("/", 1)[-1] in METADATA_FILES for n in archive.namelist())
    if not local.is_dir():
        return False
    attrs = read_local_attrs(local)
    if attrs is not None and md.is_ome_node(attrs):
        return True
    if attrs is None and _has_unparsable_metadata(local):
        # Claim it, so the user is told what is wrong instead of "no reader".
        return True
    data = layout1_data_dir(local)
    if data is not None and md.is_ome_node(read_local_attrs(data) or {}):
        return True
    return _is_zarr_group(local) and _has_nested_ome(local, [_NESTED_SCAN_BUDGET], depth=1)


def _has_unparsable_metadata(folder: Path) -> bool:
    for name in ("zarr.json", ".zattrs"):
        doc = folder / name
        if doc.is_file():
            try:
                json.loads(doc.read_bytes())
            except ValueError:
                return True
    return False


def _is_zarr_group(folder: Path) -> bool:
    return (folder / "zarr.json").is_file() or (folder / ".zgroup").is_file()


def _has_nested_ome(folder: Path, budget: list[int], depth: int) -> bool:
    """Whether a plain zarr group holds child images (the tutorial's nested store).

    Only images count: a plate's row folder holds wells and stays plain zarr.

    Bounded by a shared count of folders looked at, so a huge plain zarr store
    still answers in milliseconds.
    """
    for child in folder.iterdir():
        if budget[0] <= 0:
            return False
        if not child.is_dir() or child.name.startswith("."):
            continue
        budget[0] -= 1
        attrs = read_local_attrs(child)
        if attrs is not None and "multiscales" in md.ome_attributes(attrs):
            return True
        if (
            depth < MAX_NESTED_DEPTH
            and not md.is_ome_node(attrs or {})  # wells and the like: not nested images
            and _is_zarr_group(child)
            and _has_nested_ome(child, budget, depth + 1)
        ):
            return True
    return False
