"""Open any `StoreLike` read-only: what every public function accepts as a store.

A `StoreLike` is a local path (str or Path, or a `file://` URL), a zip file, an
`http(s)://` URL, an object-store URL (`s3://`, `gs://`, `az://`, `abfs://`, see
`objects`), a `zarr.storage` store, a `zarr.Group` or an fsspec mapper. Any other
URL scheme is an error naming the supported ones: it never becomes a local folder.

A local path may point inside a store (`image.zarr/labels/cells`, `plate.ozx/A/1`);
`open_location` finds the store root and the group path inside it, so the
reader can see the context (the parent image of a label, the OME-XML of a
bioformats2raw collection). Remote stores are wrapped in `retry.RetryStore`
(retries, deadline, requests in flight; settings in `network`). Only the
public zarr v3 API is used; zarr is imported on first use so that napari's
cheap "is this mine?" check stays cheap.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

from napari_omezarr_x.errors import StoreAccessError

from .engine import apply as apply_engine
from .network import remote_settings
from .objects import (
    OBJECT_SCHEMES,
    ObjectKeys,
    object_error,
    object_scheme,
    object_store,
    zarr_object_store,
)

if TYPE_CHECKING:
    from zarr.abc.store import Store

#: What every public read and write function accepts as a store: a path, a URL,
#: a `zarr.storage` store, a `zarr.Group` or an fsspec mapper.
StoreLike: TypeAlias = "str | os.PathLike[str] | Store | Any"
LOCAL_SCHEMES = ("file",)
HTTP_SCHEMES = ("http", "https")

ZIP_SUFFIXES = (".zip", ".ozx")
METADATA_FILES = ("zarr.json", ".zattrs", ".zgroup")
_MAX_PARENT_LEVELS = 8


@dataclass
class Location:
    """A store opened read-only, and the group path the user pointed at."""

    store: Store
    root: str
    path: str
    kind: str
    sidecar: Path | None = None
    keys: ObjectKeys | None = None
    storage_options: dict[str, Any] | None = None

    @property
    def listable(self) -> bool:
        """Whether child groups can be discovered by listing (not over HTTP)."""
        return self.kind not in ("http", "zip-remote")

    @property
    def remote(self) -> bool:
        """Whether the store is reached over a network (reads pay a round trip each)."""
        if self.kind == "store":  # a store object the caller opened
            return type(self.store).__name__ not in ("LocalStore", "ZipStore", "MemoryStore")
        return self.kind not in ("local", "zip")

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
            if self.keys is not None:
                return self.keys.child_names(path)
            if self.kind == "store":
                return _group_keys(self.store, path)
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

    def read_sidecar(self) -> bytes | None:
        """The OME-XML next to the store (bioformats2raw layout 1), or None.

        In an object store it is looked for beside the store's prefix
        (`.../METADATA.ome.xml` for `.../data.zarr`), one request.
        """
        try:
            if self.sidecar is not None:
                return self.sidecar.read_bytes()
            if self.keys is not None and self.root.count("/") > 2:
                parent = self.root.rsplit("/", 1)[0]
                keys = ObjectKeys(parent, object_store(parent, self.storage_options))
                return keys.get("METADATA.ome.xml")
        except OSError:
            return None
        return None

    def read_bytes(self, key: str) -> bytes | None:
        """A non-zarr file of the store (e.g. OME/METADATA.ome.xml), or None if absent."""
        try:
            if self.keys is not None:
                return self.keys.get(key)
            if self.kind in ("store", "zip-remote"):
                return None
            if self.kind == "local":
                file = Path(self.root) / key
                return file.read_bytes() if file.is_file() else None
            if self.kind == "zip":
                with zipfile.ZipFile(self.root) as archive:
                    return archive.read(key) if key in archive.namelist() else None
            return _http_get(f"{self.root}/{key}")
        except OSError:
            return None


def url_scheme(text: str) -> str | None:
    """The scheme of a URL-looking string (`s3`, `https`, ...), None for a plain path.

    One-letter schemes are Windows drive letters, not URLs. A known scheme
    followed by one slash only (`s3:/bucket`) still counts, so that it is
    refused instead of becoming a local folder named `s3:`.
    """
    scheme = urlsplit(text).scheme.lower()
    if len(scheme) < 2:
        return None
    known = (*LOCAL_SCHEMES, *HTTP_SCHEMES, *OBJECT_SCHEMES)
    return scheme if "://" in text or scheme in known else None


def check_scheme(text: str) -> str | None:
    """The scheme of `text` when it is a supported URL; StoreAccessError when it is not."""
    scheme = url_scheme(text)
    if scheme is None:
        return None
    supported = (*LOCAL_SCHEMES, *HTTP_SCHEMES, *OBJECT_SCHEMES)
    if scheme not in supported:
        raise StoreAccessError(
            f"{text}: the URL scheme {scheme!r} is not supported; use a local path, file://, "
            "http(s)://, s3://, gs://, az:// or abfs://"
        )
    if "://" not in text:
        raise StoreAccessError(f"{text}: malformed URL: write {scheme}://...")
    return scheme


def is_remote(store: Any) -> bool:
    """True for remote locations: URLs other than `file://`, and store objects not on disk."""
    if isinstance(store, str | os.PathLike):
        scheme = url_scheme(os.fspath(store))
        return scheme is not None and scheme not in LOCAL_SCHEMES
    return _local_root_of(store) is None


def is_object_url(store: Any) -> bool:
    """Whether `store` is an object-store URL (s3://, gs://, az://, abfs://, ...)."""
    return isinstance(store, str | os.PathLike) and object_scheme(os.fspath(store)) is not None


def local_path(store: str | os.PathLike[str]) -> Path:
    """The local path of a path or `file://` URL."""
    text = os.fspath(store)
    return Path(text[len("file://") :] if text.lower().startswith("file://") else text)


def open_store(store: StoreLike, storage_options: dict[str, Any] | None = None) -> Store:
    """A read-only zarr store rooted exactly at `store` (no walking up to an outer group)."""
    import zarr.storage

    apply_engine()
    if not isinstance(store, str | os.PathLike):
        return _open_object_of(store, storage_options).store
    text = os.fspath(store)
    scheme = check_scheme(text)
    if scheme in OBJECT_SCHEMES:
        return zarr_object_store(text, storage_options)
    if scheme in HTTP_SCHEMES:
        return _open_http(text).store
    if local_path(text).is_file():
        return zarr.storage.ZipStore(local_path(text), mode="r")
    return zarr.storage.LocalStore(local_path(text), read_only=True)


def is_url(path: Any) -> bool:
    """Whether `path` is an http(s) URL."""
    return isinstance(path, str | os.PathLike) and url_scheme(os.fspath(path)) in HTTP_SCHEMES


def _http_get(url: str) -> bytes | None:
    """A document over HTTP with the remote retry rules; None when absent or unreadable."""
    from .retry import RemoteReadError, retry_sync

    try:
        return retry_sync(url, lambda left: _http_get_once(url, left))
    except RemoteReadError:
        return None


def _http_get_once(url: str, seconds_left: float) -> bytes | None:
    import time

    import requests

    settings = remote_settings()
    ends = time.monotonic() + seconds_left
    timeout = (settings.connect_timeout, min(settings.read_timeout, seconds_left))
    with requests.get(url, timeout=timeout, stream=True) as response:
        if response.status_code == 404:
            return None
        response.raise_for_status()
        # read1 returns what has arrived (urllib3 >= 2.3), so a trickle meets the deadline.
        read = getattr(response.raw, "read1", response.raw.read)
        body = bytearray()
        while piece := read(1 << 16, decode_content=True):
            body += piece
            if time.monotonic() > ends:
                raise TimeoutError(f"{url}: body not complete within the deadline")
        return bytes(body)


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
    """aiohttp timeouts from the remote settings (the deadline is RetryStore's)."""
    import aiohttp

    settings = remote_settings()
    timeout = aiohttp.ClientTimeout(
        total=None, connect=settings.connect_timeout, sock_read=settings.read_timeout
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

    from .retry import RetryStore

    root = url.rstrip("/")
    if urlsplit(root).path.lower().endswith(ZIP_SUFFIXES):
        return _open_http_zip(root)
    try:
        store = zarr.storage.FsspecStore.from_url(
            root, storage_options=_http_options(), read_only=True
        )
    except (OSError, ValueError, ImportError) as exc:
        raise StoreAccessError(f"{url}: cannot open as a zarr store: {exc}") from exc
    return Location(store=RetryStore(store, name=root), root=root, path="", kind="http")


def _open_http_zip(url: str) -> Location:
    """A zipped store served over HTTP, read with range requests (as .ozx intends)."""
    import zarr.storage
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    from .archives import zip_filesystem

    try:
        archive = zip_filesystem(url, target_protocol="http", target_options=_http_options())
        names = archive.zip.namelist()
    except Exception as exc:  # fsspec/aiohttp/zipfile each raise their own types
        raise StoreAccessError(
            f"{url}: cannot read as a zip over HTTP (the server must allow range "
            f"requests): {type(exc).__name__}: {exc}"
        ) from exc
    from .retry import RetryStore

    store = zarr.storage.FsspecStore(
        AsyncFileSystemWrapper(archive, asynchronous=True), path="", read_only=True
    )
    return Location(
        store=RetryStore(store, name=url), root=url, path=_top_folder(names), kind="http"
    )


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


def _open_object(url: str, storage_options: dict[str, Any] | None) -> Location:
    """An object-store URL, checked: a missing bucket or denied access is reported here."""
    root = url.rstrip("/")
    if urlsplit(root).path.lower().endswith(ZIP_SUFFIXES):
        return _open_object_zip(root, storage_options)
    store = zarr_object_store(root, storage_options)
    # Key access (probes, listings, sidecars) with obstore's own retries; zarr's reads
    # go through `store`, which follows the remote settings.
    keys = ObjectKeys(root, object_store(root, storage_options))
    for name in METADATA_FILES:
        if keys.get(name) is not None:
            break
    else:
        # Nothing at the URL itself: one listing tells a missing bucket (or denied
        # access) from a prefix that simply holds no zarr metadata. A public bucket
        # may allow reads but not listing: then only the first can be said.
        try:
            keys.child_names("")
        except StoreAccessError as exc:
            if "access denied" not in str(exc):
                raise
            raise StoreAccessError(
                f"{root}: no zarr metadata (zarr.json, .zattrs) at this URL, and the bucket "
                "does not allow listing to tell more (check the URL and the credentials)"
            ) from exc
    return Location(
        store=store,
        root=root,
        path="",
        kind="object",
        keys=keys,
        storage_options=storage_options,
    )


def _open_object_zip(url: str, storage_options: dict[str, Any] | None) -> Location:
    """A zipped store in an object store, read with range requests (as .ozx intends)."""
    import obstore
    import zarr.storage
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    from .archives import zip_filesystem

    parent, name = url.rsplit("/", 1)
    try:
        reader = obstore.open_reader(object_store(parent, storage_options), name)
        archive = zip_filesystem(_RangeFile(reader))
        names = archive.zip.namelist()
    except StoreAccessError:
        raise
    except Exception as exc:  # obstore and zipfile each raise their own types
        raise object_error(url, exc, "cannot read as a zip file") from exc
    store = zarr.storage.FsspecStore(
        AsyncFileSystemWrapper(archive, asynchronous=True), path="", read_only=True
    )
    return Location(store=store, root=url, path=_top_folder(names), kind="zip-remote")


class _RangeFile(io.RawIOBase):
    """A read-only file over an object read by ranges (obstore's reader), for zipfile."""

    def __init__(self, reader: Any) -> None:
        super().__init__()
        self._reader = reader

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return bytes(self._reader.read(size if size is not None and size >= 0 else None))

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._reader.seek(offset, whence)

    def tell(self) -> int:
        return self._reader.tell()


def _local_root_of(store: Any) -> Path | None:
    """The folder of a zarr store or fsspec mapper that lives on the local disk, or None."""
    import zarr.storage

    if isinstance(store, zarr.storage.LocalStore):
        return Path(store.root)
    fs = getattr(store, "fs", None)
    protocol = getattr(fs, "protocol", None)
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol or ())
    if fs is not None and ("file" in protocols or "local" in protocols):
        return Path(getattr(store, "path", None) or getattr(store, "root", ""))
    return None


def _open_root(store: Any, storage_options: dict[str, Any] | None) -> Location | None:
    """A Location for URLs and store objects; None for local paths (handled by the caller)."""
    if isinstance(store, str | os.PathLike):
        text = os.fspath(store)
        scheme = check_scheme(text)
        if scheme in HTTP_SCHEMES:
            return _open_http(text)
        if scheme in OBJECT_SCHEMES:
            return _open_object(text, storage_options)
        return None
    return _open_object_of(store, storage_options)


def _open_object_of(store: Any, storage_options: dict[str, Any] | None) -> Location:
    """A Location for a zarr store, a zarr Group or an fsspec mapper."""
    import zarr
    import zarr.storage

    if isinstance(store, zarr.Group):
        inner = open_location(store.store, storage_options)
        inner.path = inner.join(inner.path, store.path)
        return inner
    local = _local_root_of(store)
    if local is not None:
        return open_location(local)
    if isinstance(store, zarr.storage.ZipStore):
        return _open_zip(Path(store.path), "")
    from .retry import RetryStore

    if isinstance(store, zarr.storage.ObjectStore):
        obs = store.store
        return Location(
            store=RetryStore(store, name=str(obs)),
            root=str(obs),
            path="",
            kind="object",
            keys=ObjectKeys(str(obs), obs),
        )
    if isinstance(store, zarr.storage.FsspecStore):
        retrying = RetryStore(store, name=str(store))
        return Location(store=retrying, root=str(store), path="", kind="store")
    if hasattr(store, "fs") and hasattr(store, "root"):  # an fsspec mapper (FSMap)
        from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

        fs = store.fs if store.fs.async_impl else AsyncFileSystemWrapper(store.fs)
        zstore = zarr.storage.FsspecStore(fs, path=store.root, read_only=True)
        root = f"{store.fs.protocol if isinstance(store.fs.protocol, str) else store.fs.protocol[0]}://{store.root}"
        return Location(store=zstore, root=root, path="", kind="store")
    if isinstance(store, zarr.abc.store.Store):
        return Location(store=store, root=repr(store), path="", kind="store")
    raise StoreAccessError(
        f"{store!r}: not a store: give a path, a URL, a zarr store, a zarr.Group or an "
        "fsspec mapper"
    )


def _group_keys(store: Any, path: str) -> list[str]:
    import zarr

    group = zarr.open_group(store, path=path or None, mode="r")
    return sorted(group.group_keys())


def open_location(path: StoreLike, storage_options: dict[str, Any] | None = None) -> Location:
    """Open the store holding `path` read-only; raise StoreAccessError if it cannot be."""
    apply_engine()
    location = _open_root(path, storage_options)
    if location is not None:
        return location
    text = os.fspath(path)
    text = str(local_path(text)) if url_scheme(text) in LOCAL_SCHEMES else text
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
