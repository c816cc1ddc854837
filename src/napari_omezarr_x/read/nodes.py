"""Zarr groups and arrays of an opened location, and what their errors mean.

`NodeReader` is the reader's lowest layer: it opens groups (remembering the
store's zarr format after the first one, so later groups need one probe) and
arrays, concurrently where asked. `access_error` maps whatever zarr, fsspec or
the OS raised into this package's error types, naming the place.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from napari_omezarr_x.errors import (
    MetadataError,
    NgffComplianceWarning,
    NotOmeZarrError,
    OmeZarrXError,
    StoreAccessError,
)
from napari_omezarr_x.storage import Location, object_error, parallel, read_many


def is_missing(exc: Exception) -> bool:
    """Whether a zarr/store error means "nothing there" (zarr's *NotFoundError family)."""
    return isinstance(exc, FileNotFoundError) or type(exc).__name__.endswith("NotFoundError")


def access_error(where: str, exc: Exception) -> OmeZarrXError:
    """Our error type for an exception raised while reading `where`."""
    if isinstance(exc, OmeZarrXError):
        return exc
    if type(exc).__module__.startswith("obstore"):  # an object store's answer, in one line
        return object_error(where, exc)
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return MetadataError(f"{where}: malformed JSON metadata: {exc}")
    if is_missing(exc):
        return MetadataError(f"{where}: missing zarr group or array")
    if type(exc).__name__ == "ContainsArrayError":
        return NotOmeZarrError(f"{where}: is a zarr array, not a group; open the image holding it")
    if isinstance(exc, ValueError | TypeError | KeyError | AttributeError):
        return MetadataError(f"{where}: invalid zarr metadata: {type(exc).__name__}: {exc}")
    return StoreAccessError(f"{where}: cannot read: {type(exc).__name__}: {exc}")


@dataclass
class Node:
    """What reading needs of a zarr group: its attributes and zarr format."""

    attrs: dict[str, Any]
    zarr_format: int


class NodeReader:
    """Opens the groups and arrays of one store location, safe to call from threads."""

    def __init__(self, location: Location) -> None:
        self.loc = location
        self.zarr_format: int | None = None

    def group(self, path: str) -> Node:
        """The group at `path` (raises the underlying zarr/IO error).

        The first group of a store is looked for in both zarr formats at once
        (`zarr.json`, `.zgroup` and `.zattrs` side by side: one round trip);
        its format is then assumed for the rest of the store, so later groups
        cost one request (v3) or two concurrent ones (v2). Consolidated
        metadata is never probed for: every node is read from its own document.
        """
        fmt = self.zarr_format
        try:
            group = self._open_group(path, fmt) if fmt else self._probe_group(path)
        except Exception as exc:
            node = self._loose_v2_group(path) if is_missing(exc) else None
            if node is None:
                raise
            return node
        if fmt is None:
            self.zarr_format = group.metadata.zarr_format
        return Node(dict(group.attrs.asdict()), group.metadata.zarr_format)

    def _open_group(self, path: str, zarr_format: int) -> Any:
        import zarr

        return zarr.open_group(
            self.loc.store,
            path=path or None,
            mode="r",
            zarr_format=zarr_format,
            use_consolidated=False,
        )

    def _probe_group(self, path: str) -> Any:
        """The group at `path` in whichever zarr format it has (v3 first), probed concurrently."""
        v3, v2 = parallel([lambda: self._open_group(path, 3), lambda: self._open_group(path, 2)])
        for result in (v3, v2):
            if not isinstance(result, Exception):
                return result
        # Both failed: a real error (unreachable, malformed) says more than "missing".
        for result in (v3, v2):
            if isinstance(result, Exception) and not is_missing(result):
                raise result
        raise v3

    def _loose_v2_group(self, path: str) -> Node | None:
        """A zarr v2 group written without `.zgroup` (some older tools): its `.zattrs` only."""
        if self.zarr_format == 3 or not self.loc.listable:
            return None
        raw = self.loc.read_bytes(self.loc.join(path, ".zattrs"))
        if raw is None:
            return None
        attrs = json.loads(raw)
        if not isinstance(attrs, dict):
            raise MetadataError(f"{self.loc.describe(path)}: .zattrs is not a JSON object")
        warnings.warn(
            f"{self.loc.describe(path)}: zarr group has .zattrs but no .zgroup",
            NgffComplianceWarning,
            stacklevel=2,
        )
        self.zarr_format = self.zarr_format or 2
        return Node(attrs, 2)

    def array(self, path: str, zarr_format: int | None) -> Any:
        """The zarr array at `path`."""
        import zarr

        return zarr.open_array(self.loc.store, path=path, mode="r", zarr_format=zarr_format)

    def array_from_document(self, path: str, document: bytes) -> Any:
        """The zarr array at `path` from its metadata document's bytes (no request)."""
        import zarr
        from zarr.storage import StorePath

        return zarr.Array.from_dict(StorePath(self.loc.store, path), json.loads(document))

    def array_documents(self, paths: Sequence[str]) -> list[Any] | None:
        """The metadata documents of the arrays at `paths`, read in one batch (None
        where absent), or None when the store has no batch read or the format is unknown."""
        name = {3: "zarr.json", 2: ".zarray"}.get(self.zarr_format or 0)
        if name is None:
            return None
        return read_many(self.loc, [self.loc.join(p, name) for p in paths])

    def open_groups(self, paths: Sequence[str], workers: int | None = None) -> list[Any]:
        """Groups at `paths`, opened concurrently; exceptions in place of failures."""
        calls = [lambda p=p: self.group(p) for p in paths]
        return parallel(calls, workers) if workers else parallel(calls)

    def group_attrs(self, paths: Sequence[str], workers: int | None = None) -> list[Any]:
        """Attributes of the groups at `paths`, read side by side: their metadata
        documents in one batch where the store allows it, else through zarr.
        Exceptions in place of failures (FileNotFoundError for a missing group)."""
        fmt = self.zarr_format
        name = {3: "zarr.json", 2: ".zattrs"}.get(fmt or 0)
        docs = read_many(self.loc, [self.loc.join(p, name) for p in paths]) if name else None
        if docs is None:
            groups = self.open_groups(paths, workers)
            return [g if isinstance(g, Exception) else g.attrs for g in groups]
        return [self._attrs(path, name, doc) for path, doc in zip(paths, docs, strict=True)]

    def _attrs(self, path: str, name: str, doc: bytes | Exception | None) -> Any:
        where = self.loc.describe(self.loc.join(path, name))
        if isinstance(doc, Exception):
            return doc
        if doc is None:
            return FileNotFoundError(f"{where}: not found")
        try:
            parsed = json.loads(doc)
        except (ValueError, UnicodeDecodeError) as exc:
            return MetadataError(f"{where}: malformed JSON metadata: {exc}")
        if not isinstance(parsed, dict):
            return MetadataError(f"{where}: not a JSON object")
        if name == "zarr.json":
            if parsed.get("node_type") != "group":
                return MetadataError(f"{where}: not a zarr group")
            parsed = parsed.get("attributes") or {}
        return parsed if isinstance(parsed, dict) else MetadataError(f"{where}: bad attributes")
