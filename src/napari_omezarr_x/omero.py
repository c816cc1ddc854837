"""Read and save the `omero` channel rendering block of an OME-Zarr image.

The block lives in the image group's attributes: at the top level of `.zattrs`
for NGFF 0.4 and earlier (zarr v2), under `attributes["ome"]` of `zarr.json`
for 0.5 and later (zarr v3). Saving rewrites only that one JSON document
(plus the store's consolidated copy of it, if any), atomically through a
temporary file in the same folder, so arrays are never touched and a crash
cannot leave half a document behind. Remote and zipped stores are read-only.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import (
    MetadataError,
    NotOmeZarrError,
    ReadOnlyStoreError,
    StoreAccessError,
)
from .model import Channel
from .storage import (
    ZIP_SUFFIXES,
    ensure_writable,
    is_remote,
    local_path,
    open_store,
    read_json,
    write_json,
)

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


def read_omero(store: str | os.PathLike[str], path: str = "") -> dict[str, Any] | None:
    """The `omero` block of the image group at `path` inside `store`, or None.

    Works for local folders, zip files and http(s) URLs. Reads the group's
    own metadata document, not a consolidated copy, so it sees the last save.
    """
    import zarr

    text = os.fspath(store)
    try:
        zstore = open_store(text)
        group = zarr.open_group(zstore, path=path or "", mode="r", use_consolidated=False)
        attrs = group.attrs.asdict()
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise NotOmeZarrError(f"No zarr group at {path or '/'!r} in {text}: {exc}") from exc
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        where = f"{path or '/'!r} in {text}"
        raise StoreAccessError(f"Cannot read the metadata of {where}: {exc}") from exc
    omero = _omero_of(attrs)
    return copy.deepcopy(omero) if isinstance(omero, dict) else None


def read_channels(store: str | os.PathLike[str], path: str = "") -> list[Channel]:
    """The channels of the `omero` block at `path` in `store` (empty when there is none)."""
    omero = read_omero(store, path)
    raw = omero.get("channels") if omero else None
    if not isinstance(raw, list):
        return []
    return [channel_from_omero(c) for c in raw if isinstance(c, Mapping)]


def metadata_document(store: str | os.PathLike[str], path: str = "") -> Path:
    """The local JSON file holding the attributes of the group at `path`.

    Raises ReadOnlyStoreError for remote or zipped stores, NotOmeZarrError when
    the group has no zarr metadata.
    """
    text = os.fspath(store)
    if is_remote(text):
        raise ReadOnlyStoreError(
            f"{text} is a remote store: channel settings cannot be saved there. "
            "Use File > Save as OME-Zarr to write a local copy."
        )
    root = local_path(text)
    if root.is_file() and (root.suffix.lower() in ZIP_SUFFIXES or zipfile.is_zipfile(root)):
        raise ReadOnlyStoreError(
            f"{text} is a zipped store, which is read-only: channel settings cannot be saved "
            "there. Unzip it or use File > Save as OME-Zarr."
        )
    group = root / path if path else root
    for name in ("zarr.json", ".zattrs"):
        if (group / name).is_file():
            return group / name
    if (group / ".zgroup").is_file():
        return group / ".zattrs"
    raise NotOmeZarrError(f"No zarr group metadata (zarr.json or .zgroup) in {group}")


def check_writable(store: str | os.PathLike[str], path: str = "") -> Path:
    """Raise ReadOnlyStoreError unless the group's metadata document can be replaced.

    The folder must be writable (see `storage.ensure_writable`: permission
    bits, access and a probe file) and so must the document itself.
    Returns the document's path.
    """
    doc = metadata_document(store, path)
    purpose = "channel settings cannot be saved."
    ensure_writable(doc.parent, purpose)
    if doc.exists() and (not doc.stat().st_mode & 0o222 or not os.access(doc, os.W_OK)):
        raise ReadOnlyStoreError(f"{doc} is read-only: {purpose}")
    return doc


def save_omero(
    store: str | os.PathLike[str],
    path: str,
    channels: Sequence[Channel | Mapping[str, Any]],
) -> Path:
    """Write `channels` as the omero block of the image at `path` in `store`.

    Every other attribute, and every other key of an existing omero block
    (`rdefs`, `id`, `name`, ...), is kept. Only the group's metadata document
    is rewritten (and its entry in consolidated metadata, when present).
    Returns the document's path.
    """
    doc = check_writable(store, path)
    raw_channels = [channel_to_omero(c) for c in channels]
    document = read_json(doc) if doc.exists() else {}
    attrs = _attributes_of(document, doc)
    expected = _channel_count(doc.parent, attrs, doc.name)
    if expected is not None and expected != len(raw_channels):
        raise MetadataError(
            f"{doc.parent}: the image has {expected} channel(s) but {len(raw_channels)} "
            "channel setting(s) were given; nothing was saved."
        )
    holder = attrs["ome"] if isinstance(attrs.get("ome"), dict) else attrs
    omero = holder.get("omero") if isinstance(holder.get("omero"), dict) else {}
    omero = {**omero, "channels": raw_channels}
    holder["omero"] = omero
    write_json(doc, document)
    _update_consolidated(local_path(store), path, doc.name, attrs)
    logger.info("Saved %d channel setting(s) to %s", len(raw_channels), doc)
    return doc


def _omero_of(attrs: Mapping[str, Any]) -> Any:
    ome = attrs.get("ome")
    if isinstance(ome, Mapping) and "omero" in ome:
        return ome["omero"]
    return attrs.get("omero")


def _attributes_of(document: dict[str, Any], doc: Path) -> dict[str, Any]:
    """The attributes dict inside `document` (created when missing), mutable in place."""
    if doc.name == ".zattrs":
        return document
    attrs = document.setdefault("attributes", {})
    if not isinstance(attrs, dict):
        raise MetadataError(f"{doc}: 'attributes' is not a JSON object")
    return attrs


def _channel_count(group: Path, attrs: Mapping[str, Any], doc_name: str) -> int | None:
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
    array = group / str(datasets[0].get("path", ""))
    meta = array / ("zarr.json" if doc_name == "zarr.json" else ".zarray")
    try:
        shape = read_json(meta).get("shape")
    except (OSError, MetadataError):
        return None
    if not isinstance(shape, list) or len(shape) != len(names):
        return None
    return 1 if index is None else int(shape[index])


def _update_consolidated(root: Path, path: str, doc_name: str, attrs: dict[str, Any]) -> None:
    """Refresh the store's consolidated metadata entry of the group, if there is one.

    Without this, readers that trust consolidated metadata would keep seeing
    the old settings.
    """
    if doc_name == ".zattrs":
        zmeta = root / ".zmetadata"
        if not zmeta.is_file():
            return
        document = read_json(zmeta)
        entries = document.get("metadata")
        key = f"{path.strip('/')}/.zattrs" if path.strip("/") else ".zattrs"
        if isinstance(entries, dict) and key in entries:
            entries[key] = attrs
            write_json(zmeta, document, indent=4)
        return
    if not path.strip("/"):
        return  # the root group's own zarr.json was the document just written
    root_doc = root / "zarr.json"
    if not root_doc.is_file():
        return
    document = read_json(root_doc)
    consolidated = document.get("consolidated_metadata")
    entries = consolidated.get("metadata") if isinstance(consolidated, dict) else None
    entry = entries.get(path.strip("/")) if isinstance(entries, dict) else None
    if isinstance(entry, dict):
        entry["attributes"] = attrs
        write_json(root_doc, document)


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
