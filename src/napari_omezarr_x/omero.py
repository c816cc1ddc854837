"""Read and save the `omero` channel rendering block of an OME-Zarr image.

The block lives in the image group's attributes: at the top level of `.zattrs`
for NGFF 0.4 and earlier (zarr v2), under `attributes["ome"]` of `zarr.json`
for 0.5 and later (zarr v3). Saving rewrites only that one JSON document
(plus the store's consolidated copy of it, if any), atomically through a
temporary file in the same folder (one PUT on an object store such as S3), so
arrays are never touched and a crash cannot leave half a document behind.
Zipped stores and http(s) URLs are read-only.
"""

from __future__ import annotations

import copy
import logging
import math
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import (
    MetadataError,
    NotOmeZarrError,
    StoreAccessError,
)
from .model import Channel
from .storage import Documents, StoreLike, documents_for, open_store

logger = logging.getLogger(__name__)

_WINDOW_KEYS = ("start", "end", "min", "max")


def channel_from_omero(raw: Mapping[str, Any]) -> Channel:
    """Turn one raw omero channel dict into a `Channel`, keeping the dict in `raw`."""
    window = raw.get("window") if isinstance(raw.get("window"), Mapping) else {}
    color = raw.get("color")
    return Channel(
        label=str(raw["label"]) if raw.get("label") is not None else None,
        color=_normalise_color(color) if isinstance(color, str) else None,
        active=bool(raw.get("active", True)),
        inverted=bool(raw.get("inverted", False)),
        raw=copy.deepcopy(dict(raw)),
        **{key: _number(window.get(key)) for key in _WINDOW_KEYS},
    )


def channel_to_omero(channel: Channel | Mapping[str, Any]) -> dict[str, Any]:
    """Raw omero channel dict for `channel`: its `raw` keys, overlaid with its fields.

    Keys the model does not know (`family`, `coefficient`, vendor keys) come
    through unchanged. A mapping is taken as an omero dict and only normalised.
    """
    channel = channel_from_omero(channel) if isinstance(channel, Mapping) else copy.copy(channel)
    # The window lies within min..max (the spec's data range): widen it if needed.
    if channel.start is not None and channel.min is not None:
        channel.min = min(channel.min, channel.start)
    if channel.end is not None and channel.max is not None:
        channel.max = max(channel.max, channel.end)
    out = copy.deepcopy(channel.raw)
    window = dict(out.get("window") or {})
    for key in _WINDOW_KEYS:
        value = getattr(channel, key)
        # An unchanged value keeps its original spelling (246.0 stays 246.0).
        if value is not None and _number(window.get(key)) != value:
            window[key] = _json_number(value, key)
    if window:
        out["window"] = window
    if channel.label is not None:
        out["label"] = channel.label
    if channel.color is not None:
        out["color"] = _normalise_color(channel.color)
    out["active"] = bool(channel.active)
    out["inverted"] = bool(channel.inverted)
    return out


def read_omero(
    store: StoreLike, path: str = "", *, storage_options: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The `omero` block of the image group at `path` inside `store`, or None.

    Works for every StoreLike (folders, zip files, http(s) and object-store
    URLs, store objects). Reads the group's own metadata document, not a
    consolidated copy, so it sees the last save.
    """
    import zarr

    text = store if isinstance(store, str) else repr(store)
    try:
        zstore = open_store(store, storage_options)
        group = zarr.open_group(zstore, path=path or "", mode="r", use_consolidated=False)
        attrs = group.attrs.asdict()
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise NotOmeZarrError(f"No zarr group at {path or '/'!r} in {text}: {exc}") from exc
    except StoreAccessError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        where = f"{path or '/'!r} in {text}"
        raise StoreAccessError(f"Cannot read the metadata of {where}: {exc}") from exc
    omero = _omero_of(attrs)
    return copy.deepcopy(omero) if isinstance(omero, dict) else None


def read_channels(
    store: StoreLike, path: str = "", *, storage_options: dict[str, Any] | None = None
) -> list[Channel]:
    """The channels of the `omero` block at `path` in `store` (empty when there is none)."""
    omero = read_omero(store, path, storage_options=storage_options)
    raw = omero.get("channels") if omero else None
    if not isinstance(raw, list):
        return []
    return [channel_from_omero(c) for c in raw if isinstance(c, Mapping)]


_PURPOSE = "channel settings cannot be saved"


def _document(
    store: StoreLike, path: str, storage_options: dict[str, Any] | None
) -> tuple[Documents, str]:
    """The store's documents and the key of the group's attributes document."""
    docs = documents_for(store, storage_options, purpose=_PURPOSE)
    prefix = f"{path.strip('/')}/" if path.strip("/") else ""
    for name in ("zarr.json", ".zattrs"):
        if docs.exists(prefix + name):
            return docs, prefix + name
    if docs.exists(prefix + ".zgroup"):
        return docs, prefix + ".zattrs"
    raise NotOmeZarrError(
        f"No zarr group metadata (zarr.json or .zgroup) in {docs.describe(path.strip('/'))}"
    )


def metadata_document(
    store: StoreLike, path: str = "", *, storage_options: dict[str, Any] | None = None
) -> Path | str:
    """The document holding the attributes of the group at `path`: a local file, or
    the URL of an object.

    Raises ReadOnlyStoreError for zipped stores and http(s) URLs, NotOmeZarrError
    when the group has no zarr metadata.
    """
    docs, key = _document(store, path, storage_options)
    return docs.folder / key if docs.folder is not None else docs.describe(key)


def check_writable(
    store: StoreLike, path: str = "", *, storage_options: dict[str, Any] | None = None
) -> Path | str:
    """Raise ReadOnlyStoreError unless the group's metadata document can be replaced.

    A folder must be writable (see `storage.ensure_writable`: permission bits,
    access and a probe file) and so must the document itself; an object store
    must accept a probe object. Returns the document (as `metadata_document`).
    """
    docs, key = _document(store, path, storage_options)
    docs.check_writable(key, f"{_PURPOSE}.")
    return docs.folder / key if docs.folder is not None else docs.describe(key)


def save_omero(
    store: StoreLike,
    path: str,
    channels: Sequence[Channel | Mapping[str, Any]],
    *,
    storage_options: dict[str, Any] | None = None,
) -> Path | str:
    """Write `channels` as the omero block of the image at `path` in `store`.

    Every other attribute, and every other key of an existing omero block
    (`rdefs`, `id`, `name`, ...), is kept. Only the group's metadata document
    is rewritten (and its entry in consolidated metadata, when present): a
    file replaced through a rename, or one PUT to an object store. Returns the
    document (as `metadata_document`).
    """
    docs, key = _document(store, path, storage_options)
    docs.check_writable(key, f"{_PURPOSE}.")
    raw_channels = [channel_to_omero(c) for c in channels]
    document = docs.read(key) or {}
    name = key.rsplit("/", 1)[-1]
    attrs = _attributes_of(document, name, docs.describe(key))
    expected = _channel_count(docs, path.strip("/"), attrs, name)
    group = docs.describe(path.strip("/"))
    if expected is not None and expected != len(raw_channels):
        raise MetadataError(
            f"{group}: the image has {expected} channel(s) but {len(raw_channels)} "
            "channel setting(s) were given; nothing was saved."
        )
    holder = attrs["ome"] if isinstance(attrs.get("ome"), dict) else attrs
    omero = holder.get("omero") if isinstance(holder.get("omero"), dict) else {}
    omero = {**omero, "channels": raw_channels}
    holder["omero"] = omero
    docs.write(key, document)
    _update_consolidated(docs, path, name, attrs)
    logger.info("Saved %d channel setting(s) to %s", len(raw_channels), docs.describe(key))
    return docs.folder / key if docs.folder is not None else docs.describe(key)


def _omero_of(attrs: Mapping[str, Any]) -> Any:
    ome = attrs.get("ome")
    if isinstance(ome, Mapping) and "omero" in ome:
        return ome["omero"]
    return attrs.get("omero")


def _attributes_of(document: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """The attributes dict inside `document` (created when missing), mutable in place."""
    if name == ".zattrs":
        return document
    attrs = document.setdefault("attributes", {})
    if not isinstance(attrs, dict):
        raise MetadataError(f"{where}: 'attributes' is not a JSON object")
    return attrs


def _channel_count(
    docs: Documents, group: str, attrs: Mapping[str, Any], doc_name: str
) -> int | None:
    """Size of the channel axis of the first multiscale's level 0, or None if unknown."""
    holder = attrs["ome"] if isinstance(attrs.get("ome"), Mapping) else attrs
    multiscales = holder.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales:
        return None
    ms = multiscales[0]
    axes = ms.get("axes") if isinstance(ms, Mapping) else None
    if axes is None:
        names = ["t", "c", "z", "y", "x"]  # NGFF 0.1 and 0.2 imply 5D tczyx
    else:
        names = [a.get("type") or a.get("name") if isinstance(a, Mapping) else a for a in axes]
    datasets = ms.get("datasets") if isinstance(ms, Mapping) else None
    if not datasets or not isinstance(datasets[0], Mapping):
        return None
    index = next((i for i, n in enumerate(names) if n in ("channel", "c")), None)
    array = "/".join(p for p in (group, str(datasets[0].get("path", ""))) if p)
    meta = f"{array}/{'zarr.json' if doc_name == 'zarr.json' else '.zarray'}"
    try:
        shape = (docs.read(meta) or {}).get("shape")
    except (OSError, MetadataError):
        return None
    if not isinstance(shape, list) or len(shape) != len(names):
        return None
    return 1 if index is None else int(shape[index])


def _update_consolidated(docs: Documents, path: str, doc_name: str, attrs: dict[str, Any]) -> None:
    """Refresh the store's consolidated metadata entry of the group, if there is one.

    Without this, readers that trust consolidated metadata would keep seeing
    the old settings.
    """
    if doc_name == ".zattrs":
        document = docs.read(".zmetadata")
        if document is None:
            return
        entries = document.get("metadata")
        key = f"{path.strip('/')}/.zattrs" if path.strip("/") else ".zattrs"
        if isinstance(entries, dict) and key in entries:
            entries[key] = attrs
            docs.write(".zmetadata", document, indent=4)
        return
    if not path.strip("/"):
        return  # the root group's own zarr.json was the document just written
    document = docs.read("zarr.json")
    if document is None:
        return
    consolidated = document.get("consolidated_metadata")
    entries = consolidated.get("metadata") if isinstance(consolidated, dict) else None
    entry = entries.get(path.strip("/")) if isinstance(entries, dict) else None
    if isinstance(entry, dict):
        entry["attributes"] = attrs
        docs.write("zarr.json", document)


def _normalise_color(color: str) -> str:
    """`RRGGBB` upper-case hex as the spec writes it; accepts `#rgb`, `#rrggbb`, `rrggbbaa`."""
    text = color.strip().lstrip("#")
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    if len(text) == 8:
        text = text[:6]
    try:
        int(text, 16)
    except ValueError:
        text = ""
    if len(text) != 6:
        raise MetadataError(f"Channel colour {color!r} is not a hex RRGGBB colour")
    return text.upper()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _json_number(value: float, key: str) -> int | float:
    """A JSON-safe number: integral values as int (as OMERO writes them), NaN refused."""
    number = float(value)
    if not math.isfinite(number):
        raise MetadataError(f"Channel window {key} must be a finite number, got {value!r}")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number
