"""JSON metadata documents of a store: read one, replace one atomically.

Small edits of a store (channel settings, the `labels` list of an image) touch
a single document. In a local folder it is replaced through a temporary file in
the same folder; in an object store it is one PUT, which the store applies
whole. Either way a crash leaves the old or the new document, never half of one.
`Documents` gives both the same face; `documents_for` opens it for a StoreLike
and refuses stores that cannot be written (zip files, http(s) URLs).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from napari_omezarr_x.errors import MetadataError, ReadOnlyStoreError

from .atomic import ensure_writable, write_file

# Indentation zarr-python itself uses for each metadata flavour.
_INDENT = {".zattrs": 4, ".zmetadata": 4, "zarr.json": 2}


def read_json(doc: Path) -> dict[str, Any]:
    """The JSON object in `doc`; MetadataError naming the file when it cannot be read."""
    try:
        data = json.loads(doc.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{doc}: cannot read metadata ({exc})") from exc
    if not isinstance(data, dict):
        raise MetadataError(f"{doc} does not hold a JSON object")
    return data


def dump_json(name: str, document: Mapping[str, Any], indent: int | None = None) -> bytes:
    """The bytes of a metadata document named `name` (zarr's indentation for it)."""
    text = json.dumps(document, indent=indent or _INDENT.get(name, 2), allow_nan=False)
    return text.encode("utf-8")


def write_json(doc: Path, document: Mapping[str, Any], indent: int | None = None) -> None:
    """Replace `doc` by the JSON of `document`, keeping the file's permission bits."""
    mode = doc.stat().st_mode & 0o777 if doc.exists() else 0o644
    write_file(doc, dump_json(doc.name, document, indent), mode=mode)


class Documents:
    """The JSON documents of one store, by key: a local folder or an object store."""

    def __init__(self, root: str, *, folder: Path | None = None, keys: Any = None) -> None:
        self.root = root.rstrip("/")
        self.folder = folder
        self.keys = keys

    def describe(self, key: str) -> str:
        """Where `key` is, for messages."""
        return f"{self.root}/{key}" if key else self.root

    def read_bytes(self, key: str) -> bytes | None:
        """The raw bytes of `key`, None when absent."""
        if self.folder is not None:
            file = self.folder / key
            return file.read_bytes() if file.is_file() else None
        return self.keys.get(key)

    def read(self, key: str) -> dict[str, Any] | None:
        """The JSON object at `key`, None when absent; MetadataError when malformed."""
        raw = self.read_bytes(key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise MetadataError(f"{self.describe(key)}: cannot read metadata ({exc})") from exc
        if not isinstance(data, dict):
            raise MetadataError(f"{self.describe(key)} does not hold a JSON object")
        return data

    def exists(self, key: str) -> bool:
        """Whether `key` exists."""
        return self.read_bytes(key) is not None

    def write(self, key: str, document: Mapping[str, Any], indent: int | None = None) -> None:
        """Replace (or create) `key` with `document` in one atomic step."""
        if self.folder is not None:
            target = self.folder / key
            target.parent.mkdir(parents=True, exist_ok=True)
            write_json(target, document, indent)
            return
        self.keys.put(key, dump_json(key.rsplit("/", 1)[-1], document, indent))

    def check_writable(self, key: str, purpose: str) -> None:
        """Raise ReadOnlyStoreError unless `key` can be replaced.

        A folder is probed with a file (see `ensure_writable`); an object store
        with a small object written and deleted next to `key`.
        """
        if self.folder is not None:
            doc = self.folder / key
            ensure_writable(doc.parent, purpose)
            if doc.exists() and (not doc.stat().st_mode & 0o222 or not os.access(doc, os.W_OK)):
                raise ReadOnlyStoreError(f"{doc} is read-only: {purpose}")
            return
        folder = key.rsplit("/", 1)[0] if "/" in key else ""
        probe = f"{folder}/.probe-{secrets.token_hex(4)}".lstrip("/")
        try:
            self.keys.put(probe, b"")
            self.keys.delete([probe])
        except OSError as exc:
            raise ReadOnlyStoreError(f"{self.root} cannot be written ({exc}): {purpose}") from exc


def documents_for(
    store: Any, storage_options: dict[str, Any] | None = None, *, purpose: str = ""
) -> Documents:
    """The documents of a writable StoreLike: a local folder or an object store.

    Raises ReadOnlyStoreError for zip files, http(s) URLs and store objects
    that are neither, with `purpose` (what cannot be done) in the message.
    """
    from .locations import HTTP_SCHEMES, ZIP_SUFFIXES, check_scheme, local_path, open_location
    from .objects import OBJECT_SCHEMES, ObjectKeys, object_store

    if isinstance(store, str | os.PathLike):
        text = os.fspath(store)
        scheme = check_scheme(text)
        if scheme in OBJECT_SCHEMES:
            return Documents(text, keys=ObjectKeys(text, object_store(text, storage_options)))
        if scheme in HTTP_SCHEMES:
            raise ReadOnlyStoreError(
                f"{text} is a remote store served over http(s), which is read-only: {purpose}. "
                "Use File > IO Utilities > Save as OME-Zarr... to write a copy to a folder or "
                "an object store."
            )
        local = local_path(text)
        if (local.is_file() and local.suffix.lower() in ZIP_SUFFIXES) or _is_zip(local):
            raise ReadOnlyStoreError(
                f"{text} is a zipped store, which is read-only: {purpose}. "
                "Unzip it or use File > IO Utilities > Save as OME-Zarr..."
            )
        return Documents(str(local), folder=local)
    location = open_location(store, storage_options)
    if location.kind == "local":
        folder = Path(location.root) / location.path
        return Documents(str(folder), folder=folder)
    if location.keys is not None and not location.path:
        return Documents(location.root, keys=location.keys)
    raise ReadOnlyStoreError(f"{location.root} cannot be written here: {purpose}")


def _is_zip(path: Path) -> bool:
    import zipfile

    return path.is_file() and zipfile.is_zipfile(path)
