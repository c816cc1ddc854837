"""A label image on disk as saving edits needs it: levels, write units, metadata, access.

Every access to the store behind an edited label image goes through
`LabelImage`: opening its levels, telling whether and why it cannot be
written, listing the stored write units (chunk or shard files) of a level,
encoding new units exactly as zarr would store them, and the crash-safe
update of its folder (`storage.journal`). Only local folders can be written
today; zip files and http(s) stores open read-only with a reason.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_omezarr_x.errors import MetadataError, ReadOnlyStoreError, StoreAccessError
from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.storage import atomic, journal, open_location

Box = tuple[tuple[int, int], ...]

# Indentation zarr-python itself uses for each metadata document.
_INDENT = {".zattrs": 4, "zarr.json": 2}


@dataclass
class Level:
    """One pyramid level: its array and how it derives from the level before."""

    path: str
    array: Any
    step: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.array.shape)

    @property
    def unit(self) -> tuple[int, ...]:
        """The write unit: a shard when the array is sharded, else a chunk."""
        shards = getattr(self.array, "shards", None)
        return tuple(int(n) for n in (shards or self.array.chunks))

    def unit_box(self, unit: tuple[int, ...]) -> Box:
        return tuple(
            (u * s, min((u + 1) * s, n))
            for u, s, n in zip(unit, self.unit, self.shape, strict=True)
        )

    def units_in(self, box: Box) -> Iterator[tuple[int, ...]]:
        """Write units intersecting `box`."""
        if any(lo >= hi for lo, hi in box):
            return iter(())
        return itertools.product(
            *(range(lo // s, -(-hi // s)) for (lo, hi), s in zip(box, self.unit, strict=True))
        )


@dataclass
class LabelImage:
    """A label image (a multiscale integer image, usually under `labels/`) in a store."""

    root: str
    path: str
    kind: str
    version: str
    zarr_format: int
    attrs: dict[str, Any]
    levels: list[Level]
    folder: Path | None = None
    read_only: str | None = None
    pyramid_error: str | None = None
    recovered: int = 0
    #: The multiscale's `type` (how its levels were made), when the store says.
    method: str | None = None
    _encoders: dict[int, tuple[Any, dict[str, Any]]] = field(default_factory=dict, repr=False)

    @property
    def where(self) -> str:
        return f"{self.root}/{self.path}" if self.path else self.root

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1] if self.path else Path(self.root).name

    @property
    def attrs_key(self) -> str:
        """The document holding the group's attributes."""
        return "zarr.json" if self.zarr_format == 3 else ".zattrs"

    def image_label(self) -> dict[str, Any]:
        """The `image-label` block (empty when the group has none)."""
        block = md.ome_attributes(self.attrs).get("image-label")
        return dict(block) if isinstance(block, dict) else {}

    def check_writable(self) -> Path:
        """The local folder to write, or ReadOnlyStoreError / MetadataError saying why not."""
        if self.read_only is not None or self.folder is None:
            raise ReadOnlyStoreError(
                f"{self.where}: {self.read_only}; save the layer to a new OME-Zarr instead "
                "(File > Save Selected Layers, or write_labels / add_labels)"
            )
        if self.pyramid_error is not None:
            raise MetadataError(f"{self.where}: {self.pyramid_error}")
        return self.folder

    # -- stored units -----------------------------------------------------------------

    def stored_units(self, k: int) -> Iterator[tuple[int, ...]]:
        """Grid coordinates of the write units of level `k` present on disk."""
        if self.folder is None:
            return
        level = self.levels[k]
        base = self.folder / level.path
        pattern = _key_pattern(level.array.metadata, level.array.ndim)
        for top, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            rel_top = Path(top).relative_to(base).as_posix()
            for name in files:
                key = name if rel_top == "." else f"{rel_top}/{name}"
                match = pattern.fullmatch(key)
                if match:
                    yield tuple(int(v) for v in match.groups())

    # -- encoding ---------------------------------------------------------------------

    def encode(self, k: int, unit: tuple[int, ...], data: np.ndarray) -> tuple[str, bytes | None]:
        """The folder key of write unit `unit` of level `k` and its stored bytes.

        The bytes come from zarr itself, writing into an in-memory copy of the
        array (same codecs, sharding and key encoding), so they are exactly
        what zarr would have written. None means "no file": every value is the
        fill value, which zarr (and the writer) leave unstored.
        """
        level = self.levels[k]
        mem, store = self._encoder(k)
        mem[tuple(slice(lo, hi) for lo, hi in level.unit_box(unit))] = data
        key = level.array.metadata.encode_chunk_key(unit)
        buffer = store.pop(f"{level.path}/{key}", None)
        store_keys = [s for s in store if not _is_metadata_key(s)]
        for extra in store_keys:  # nothing else may linger between units
            store.pop(extra)
        return f"{level.path}/{key}", None if buffer is None else buffer.to_bytes()

    def _encoder(self, k: int) -> tuple[Any, dict[str, Any]]:
        if k not in self._encoders:
            import zarr
            from zarr.storage import MemoryStore

            level = self.levels[k]
            contents: dict[str, Any] = {}
            mem = zarr.from_array(
                MemoryStore(store_dict=contents),
                data=level.array,
                name=level.path,
                write_data=False,
                config={"write_empty_chunks": False},
            )
            self._encoders[k] = (mem, contents)
        return self._encoders[k]

    # -- metadata document ------------------------------------------------------------

    def attrs_document(self, image_label: Mapping[str, Any]) -> bytes:
        """The group's attributes document with `image_label` in place of the old block."""
        assert self.folder is not None
        doc_path = self.folder / self.attrs_key
        try:
            doc = json.loads(doc_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MetadataError(f"{doc_path}: cannot read metadata ({exc})") from exc
        holder = doc.setdefault("attributes", {}) if self.zarr_format == 3 else doc
        if self.zarr_format == 3 and isinstance(holder.get("ome"), dict):
            holder = holder["ome"]
        holder["image-label"] = dict(image_label)
        return json.dumps(doc, indent=_INDENT[self.attrs_key], allow_nan=False).encode("utf-8")

    def update(self, info: Mapping[str, Any]) -> journal.FolderUpdate:
        """A crash-safe update of the label image's folder (see storage.journal)."""
        return journal.FolderUpdate(self.check_writable(), info)


def _is_metadata_key(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in ("zarr.json", ".zarray", ".zattrs", ".zgroup")


def _key_pattern(metadata: Any, ndim: int) -> re.Pattern[str]:
    """A regex matching the chunk (or shard) keys of an array, capturing the coordinates."""
    encoding = getattr(metadata, "chunk_key_encoding", None)
    if encoding is not None:
        sep = re.escape(getattr(encoding, "separator", "/"))
        prefix = "c" + sep if getattr(encoding, "name", "default") == "default" else ""
    else:  # zarr v2 metadata
        sep = re.escape(getattr(metadata, "dimension_separator", None) or ".")
        prefix = ""
    return re.compile(prefix + sep.join([r"(\d+)"] * ndim))


def _steps(where: str, levels: list[tuple[str, Any]]) -> tuple[list[tuple[int, ...]], str | None]:
    """Per level, which axes are halved from the level before (1 or 2), and any problem."""
    steps = [(1,) * levels[0][1].ndim]
    for (_, prev), (path, arr) in itertools.pairwise(levels):
        if arr.ndim != prev.ndim or np.dtype(arr.dtype) != np.dtype(prev.dtype):
            return steps, f"level {path!r} differs from the level before it in dimensions or dtype"
        step = []
        for n, m in zip(prev.shape, arr.shape, strict=True):
            if m == n:
                step.append(1)
            elif m in (-(-n // 2), n // 2):
                step.append(2)
            else:
                return steps, (
                    f"level {path!r} {tuple(arr.shape)} is not a halving of the level before "
                    f"it {tuple(prev.shape)}, so its pyramid cannot be updated in place"
                )
        steps.append(tuple(step))
    return steps, None


def open_label_image(path: str | os.PathLike[str]) -> LabelImage:
    """Open the label image at `path` (a group inside a store, or a store root).

    Interrupted saves of a writable folder are completed first, so the levels
    read agree with each other.
    """
    import zarr

    loc = open_location(os.fspath(path))
    where = loc.describe(loc.path)
    folder = Path(loc.root) / loc.path if loc.kind == "local" else None
    read_only = _read_only_reason(loc.kind, folder)
    recovered = 0
    if folder is not None and read_only is None:
        recovered = journal.recover(folder)
    elif folder is not None and journal.pending(folder):
        read_only = f"{read_only} (and an interrupted save is pending, levels may disagree)"
    try:
        group = zarr.open_group(loc.store, path=loc.path or None, mode="r")
    except Exception as exc:
        raise StoreAccessError(f"{where}: cannot open the label image group: {exc}") from exc
    attrs = dict(group.attrs.asdict())
    ms = md.parse_multiscale(attrs, where)
    arrays = []
    for level_path in ms.paths:
        try:
            arrays.append(
                (
                    level_path,
                    zarr.open_array(loc.store, path=loc.join(loc.path, level_path), mode="r"),
                )
            )
        except Exception as exc:
            raise StoreAccessError(
                f"{where}/{level_path}: cannot open the level array: {exc}"
            ) from exc
    if np.dtype(arrays[0][1].dtype).kind not in "iub":
        raise MetadataError(f"{where}: label data must be integers, got {arrays[0][1].dtype}")
    steps, problem = _steps(where, arrays)
    levels = [Level(p, a, s) for (p, a), s in zip(arrays, steps, strict=False)]
    return LabelImage(
        root=loc.root,
        path=loc.path,
        kind=loc.kind,
        version=md.normalize_version(ms.version, where),
        zarr_format=group.metadata.zarr_format,
        attrs=attrs,
        levels=levels,
        folder=folder,
        read_only=read_only,
        pyramid_error=problem,
        recovered=recovered,
        method=ms.raw.get("type") if isinstance(ms.raw.get("type"), str) else None,
    )


def _read_only_reason(kind: str, folder: Path | None) -> str | None:
    if kind in ("zip", "zip-remote"):
        return "zipped stores are read-only"
    if kind == "http":
        return "http(s) stores are read-only"
    if kind != "local" or folder is None:
        # Object stores have no rename: the journal of local folders does not apply.
        return "label edits are saved in place into local folders only (this is not one)"
    try:
        atomic.ensure_writable(folder, "label edits cannot be saved back")
    except (ReadOnlyStoreError, StoreAccessError) as exc:
        return str(exc)
    with contextlib.suppress(OSError):
        # Files are replaced by renames, but a label image whose files cannot be
        # written is read-only by its owner's choice: keep it so.
        for entry in os.scandir(folder):
            if entry.is_file() and not os.access(entry.path, os.W_OK):
                return f"{entry.path} is read-only: label edits cannot be saved back"
    return None
