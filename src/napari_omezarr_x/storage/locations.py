"""Open local folders, zip files and http(s) URLs as read-only zarr stores.

A path may point inside a store (`image.zarr/labels/cells`, `plate.ozx/A/1`);
`open_location` finds the store root and the group path inside it, so the
reader can see the context (the parent image of a label, the OME-XML of a
bioformats2raw collection). Only the public zarr v3 API is used; zarr is
imported on first use so that napari's cheap "is this mine?" check stays cheap.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from napari_omezarr_x.errors import StoreAccessError

if TYPE_CHECKING:
    from zarr.abc.store import Store

ZIP_SUFFIXES = (".zip", ".ozx")
METADATA_FILES = ("zarr.json", ".zattrs", ".zgroup")
# Seconds: connecting must be quick so an unreachable host fails fast;
# reading may take longer on slow links.
HTTP_CONNECT_TIMEOUT = 5.0
HTTP_READ_TIMEOUT = 30.0
_MAX_PARENT_LEVELS = 8


@dataclass
class Location:
    """A store opened read-only, and the group path the user pointed at."""

    store: Store
    root: str
    path: str
    kind: str
    sidecar: Path | None = None

    @property
    def listable(self) -> bool:
        """Whether child groups can be discovered by listing (not over HTTP)."""
        return self.kind != "http"

    def join(self, *parts: str) -> str:
        """A group path inside the store made of `parts` (empty parts skipped)."""
        return "/".join(p.strip("/") for p in parts if p and p.strip("/"))

    def describe(self, path: str) -> str:
        """Human-readable location of `path` for messages."""
        return f"{self.root}/{path}" if path else self.root

    def child_names(self, path: str) -> list[str]:
        """Sorted names of the sub-folders of group `path`, without opening them.

        Listing through zarr would parse every child's metadata and fail on
        one broken child; here each child is judged later on its own.
        """
        try:
            if self.kind == "local":
                folder = Path(self.root) / path
                return sorted(p.name for p in folder.iterdir() if p.is_dir())
            if self.kind == "zip":
                prefix = f"{path}/" if path else ""
                with zipfile.ZipFile(self.root) as archive:
                    names = {
                        n[len(prefix) :].split("/", 1)[0]
                        for n in archive.namelist()
                        if n.startswith(prefix) and "/" in n[len(prefix) :]
                    }
                return sorted(names)
        except OSError:
            return []
        return []

    def read_bytes(self, key: str) -> bytes | None:
        """A non-zarr file of the store (e.g. OME/METADATA.ome.xml), or None if absent."""
        try:
            if self.kind == "local":
                file = Path(self.root) / key
                return file.read_bytes() if file.is_file() else None
            if self.kind == "zip":
                with zipfile.ZipFile(self.root) as archive:
                    return archive.read(key) if key in archive.namelist() else None
            return _http_get(f"{self.root}/{key}")
        except OSError:
            return None


def is_remote(store: str | os.PathLike[str]) -> bool:
    """True for URLs (http, https, s3, ...) other than `file://`."""
    text = os.fspath(store)
    return "://" in text and not text.startswith("file://")


def local_path(store: str | os.PathLike[str]) -> Path:
    """The local path of a path or `file://` URL."""
    text = os.fspath(store)
    return Path(text[len("file://") :] if text.startswith("file://") else text)


def open_store(store: str | os.PathLike[str]) -> Store:
    """A read-only zarr store rooted exactly at `store` (folder, zip file or URL)."""
    import zarr.storage

    text = os.fspath(store)
    if is_remote(text):
        return zarr.storage.FsspecStore.from_url(text, read_only=True)
    if local_path(text).is_file():
        return zarr.storage.ZipStore(local_path(text), mode="r")
    return zarr.storage.LocalStore(local_path(text), read_only=True)


def is_url(path: str) -> bool:
    """Whether `path` is an http(s) URL."""
    return urlsplit(str(path)).scheme in ("http", "https")


def _http_get(url: str) -> bytes | None:
    import requests

    try:
        response = requests.get(url, timeout=(HTTP_CONNECT_TIMEOUT, HTTP_READ_TIMEOUT))
    except requests.RequestException:
        return None
    return response.content if response.status_code == 200 else None


def _is_group_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in METADATA_FILES)


def split_zip_path(path: str) -> tuple[Path, str] | None:
    """(zip file, path inside it) when a component of `path` is a zip file."""
    parts = Path(path).parts
    for i in range(len(parts), 0, -1):
        candidate = Path(*parts[:i])
        if candidate.suffix.lower() in ZIP_SUFFIXES and candidate.is_file():
            return candidate, "/".join(parts[i:])
    return None


def _local_root(path: Path) -> tuple[Path, str]:
    """Walk up from a group folder to the outermost enclosing zarr group."""
    root = path
    for _ in range(_MAX_PARENT_LEVELS):
        if root.parent == root or not _is_group_dir(root.parent):
            break
        root = root.parent
    inner = path.relative_to(root).as_posix()
    return root, "" if inner == "." else inner


def layout1_data_dir(path: Path) -> Path | None:
    """`data.zarr` of a bioformats2raw layout-1 folder (METADATA.ome.xml next to it)."""
    data = path / "data.zarr"
    if (path / "METADATA.ome.xml").is_file() and _is_group_dir(data):
        return data
    return None


def _http_options() -> dict[str, Any]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(
        total=None, connect=HTTP_CONNECT_TIMEOUT, sock_read=HTTP_READ_TIMEOUT
    )
    return {"client_kwargs": {"timeout": timeout}}


def _top_folder(names: list[str]) -> str:
    """The single top-level folder of a zip without root metadata (`image.zarr/...`), or ""."""
    if any(n in names for n in METADATA_FILES):
        return ""
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    return tops.pop() if len(tops) == 1 else ""


def _open_http(url: str) -> Location:
    import zarr.storage

    root = url.rstrip("/")
    if urlsplit(root).path.lower().endswith(ZIP_SUFFIXES):
        return _open_http_zip(root)
    try:
        store = zarr.storage.FsspecStore.from_url(
            root, storage_options=_http_options(), read_only=True
        )
    except (OSError, ValueError, ImportError) as exc:
        raise StoreAccessError(f"{url}: cannot open as a zarr store: {exc}") from exc
    return Location(store=store, root=root, path="", kind="http")


def _open_http_zip(url: str) -> Location:
    """A zipped store served over HTTP, read with range requests (as .ozx intends)."""
    import fsspec
    import zarr.storage
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    try:
        archive = fsspec.filesystem(
            "zip", fo=url, target_protocol="http", target_options=_http_options()
        )
        names = archive.zip.namelist()
    except Exception as exc:  # fsspec/aiohttp/zipfile each raise their own types
        raise StoreAccessError(
            f"{url}: cannot read as a zip over HTTP (the server must allow range "
            f"requests): {type(exc).__name__}: {exc}"
        ) from exc
    store = zarr.storage.FsspecStore(
        AsyncFileSystemWrapper(archive, asynchronous=True), path="", read_only=True
    )
    return Location(store=store, root=url, path=_top_folder(names), kind="http")


def _open_zip(file: Path, inner: str) -> Location:
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise StoreAccessError(f"{file}: not a readable zip file: {exc}") from exc
    prefix = _top_folder(names)
    import zarr.storage

    try:
        store = zarr.storage.ZipStore(file, mode="r")
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise StoreAccessError(f"{file}: not a readable zip file: {exc}") from exc
    path = "/".join(p for p in (prefix, inner.strip("/")) if p)
    return Location(store=store, root=str(file), path=path, kind="zip")


def open_location(path: str | Path) -> Location:
    """Open the store holding `path` read-only; raise StoreAccessError if it cannot be."""
    text = str(path)
    if is_url(text):
        return _open_http(text)
    zipped = split_zip_path(text)
    if zipped is not None:
        return _open_zip(*zipped)
    local = Path(text).expanduser()
    if not local.exists():
        raise StoreAccessError(f"{text}: no such file or directory")
    if not local.is_dir():
        raise StoreAccessError(f"{text}: not a folder, zip file or URL")
    local = local.resolve()
    sidecar = None
    data = layout1_data_dir(local)
    if data is not None and not _is_group_dir(local):
        sidecar, local = local / "METADATA.ome.xml", data
    root, inner = _local_root(local)
    if sidecar is None and (root.parent / "METADATA.ome.xml").is_file():
        sidecar = root.parent / "METADATA.ome.xml"
    import zarr.storage

    store = zarr.storage.LocalStore(root, read_only=True)
    return Location(store=store, root=str(root), path=inner, kind="local", sidecar=sidecar)


def read_local_attrs(folder: Path) -> dict[str, Any] | None:
    """Attributes of a local zarr group folder from its metadata file, or None.

    Used by the fast `looks_like_ome_zarr` check; never raises.
    """
    try:
        v3 = folder / "zarr.json"
        if v3.is_file():
            doc = json.loads(v3.read_text(encoding="utf-8"))
            attrs = doc.get("attributes") if isinstance(doc, dict) else None
            return attrs if isinstance(attrs, dict) else {}
        v2 = folder / ".zattrs"
        if v2.is_file():
            doc = json.loads(v2.read_text(encoding="utf-8"))
            return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return None
    return None
