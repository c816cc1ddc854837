"""Where a save goes, and how it stays safe there: local folders and object stores.

**Local folders** (and `file://` URLs): the store is built in a hidden sibling
folder and moved over the target when complete, an atomic exchange on Linux
(see `storage.atomic`).

**Object stores** (S3, GCS, Azure) have no rename, but a single object is
written whole or not at all. A save there keeps the old store readable, pixel
for pixel, until the new one is complete:

1. Every array is written at a path nothing references: a level keeps its plain
   name ("0", "1", ...) when no object exists under that name, else it gets a
   fresh one ("0-<token>"). The arrays a reader of the old store follows are
   never written to.
2. Only when every chunk is stored are the group documents written, from the
   leaves up (label images, the `labels` group, child images), the root
   group's document last: that single PUT is the moment the new store appears.
   Before it the store opens as the old one; a save killed before it leaves the
   old store as it was (a store that did not exist yet has no root document, so
   nothing opens as complete).
3. After it, everything under the store that the new metadata does not
   reference is deleted: the old arrays and what earlier killed saves left
   behind, so a later save cleans up after a killed one.

NGFF fixes the place of labels (`<image>/labels/<name>`) and of child images,
so their documents have fixed keys too; step 2 replaces each of them in one
PUT, deepest first, so any label image that opens is complete (old or new), and
the root image, which is what opens as "the store", switches last.

One writer per store at a time: two saves racing onto one URL are not
coordinated (as with two processes writing one folder).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_omezarr_x.errors import (
    OmeZarrXError,
    ReadOnlyStoreError,
    StoreExistsError,
    TargetExistsError,
)
from napari_omezarr_x.read import looks_like_ome_zarr
from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.storage import (
    HTTP_SCHEMES,
    METADATA_FILES,
    ObjectKeys,
    StoreLike,
    atomic,
    check_scheme,
    dump_json,
    local_path,
    object_error,
    object_scheme,
    object_store,
    zarr_object_store,
)

from .execute import share_malloc_arena, store_plans
from .plan import Plan, Progress, array_kwargs, create_arrays

log = logging.getLogger(__name__)

_ZARR_DOCS = (*METADATA_FILES, ".zarray")


@dataclass
class Target:
    """Where a save goes: a local folder, or an object store at `url`."""

    text: str
    folder: Path | None = None
    url: str | None = None
    storage_options: dict[str, Any] | None = None

    def join(self, rel: str) -> str:
        """The path or URL of group `rel` of the store, for messages and return values."""
        return "/".join(p for p in (self.text.rstrip("/"), rel) if p) if rel else self.text

    def keys(self) -> ObjectKeys:
        """Key-level access to the object store."""
        assert self.url is not None
        return ObjectKeys(self.url, object_store(self.url, self.storage_options))

    def array_store(self, path: str) -> Any:
        """A zarr store rooted at array `path` of the object store (no parent documents)."""
        return zarr_object_store(f"{self.url}/{path}", self.storage_options, read_only=False)


def resolve_target(path: StoreLike, storage_options: dict[str, Any] | None = None) -> Target:
    """Where `path` points for writing; ReadOnlyStoreError for places that cannot be written.

    Local paths, `file://` URLs and zarr LocalStores are folders; `s3://`,
    `gs://`, `az://` and `abfs://` URLs are object stores; http(s) URLs, zip
    files and other store objects are refused with a message saying what to use.
    """
    if not isinstance(path, str | os.PathLike):
        import zarr.storage

        if isinstance(path, zarr.storage.LocalStore):
            return Target(str(path.root), folder=Path(path.root))
        raise ReadOnlyStoreError(
            f"{path!r}: saving goes to a folder path or an object-store URL (s3://, gs://, "
            "az://, abfs://); give the path or URL instead of a store object"
        )
    text = os.fspath(path)
    scheme = check_scheme(text)
    if scheme in HTTP_SCHEMES:
        raise ReadOnlyStoreError(
            f"{text}: http(s) URLs are read-only; save to a folder or an object store "
            "(s3://, gs://, az://, abfs://)"
        )
    if scheme is not None and object_scheme(text) is not None:
        return Target(text.rstrip("/"), url=text.rstrip("/"), storage_options=storage_options)
    folder = local_path(text).expanduser()
    if folder.suffix.lower() in (".zip", ".ozx"):
        raise ReadOnlyStoreError(f"{text}: zipped stores are read-only; save to a folder")
    return Target(str(folder) if scheme else str(Path(text)), folder=folder)


def write_plans(
    target: Target,
    plans: Sequence[Plan],
    progress: Progress | None,
    overwrite: bool,
    scheduler: Any = None,
    groups: Mapping[str, dict[str, Any]] | None = None,
) -> None:
    """Write `plans` to `target` safely (see the module docstring). `groups` adds the
    attributes of groups that are not images (a plate and its wells), by path."""
    for plan in plans:
        # The spec recommends a name for every multiscale (`validate --strict` needs it).
        plan.name = plan.name or _default_name(target.text, plan.rel)
    if target.folder is not None:
        share_malloc_arena()
        _write_folder(target.folder, plans, progress, overwrite, scheduler, groups)
    else:
        _write_objects(target, plans, progress, overwrite, scheduler, groups)
    log.info("wrote %s", target.text)


def _default_name(target: str, rel: str) -> str:
    """An image's name when none was given: its group's, or the store's without suffix."""
    if rel:
        return rel.rsplit("/", 1)[-1]
    base = target.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".ome.zarr", ".zarr"):
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return base


# -- local folders -------------------------------------------------------------------------


def _write_folder(
    target: Path,
    plans: Sequence[Plan],
    progress: Progress | None,
    overwrite: bool,
    scheduler: Any,
    groups: Mapping[str, dict[str, Any]] | None = None,
) -> None:
    """Build `plans` in a staging folder and move it to `target` when complete."""
    if target.exists() and not overwrite:
        raise TargetExistsError(str(target))
    atomic.check_replaceable(target, looks_like_ome_zarr)
    atomic.ensure_writable(target.parent, f"cannot write {target}")
    if target.exists():
        atomic.ensure_writable(target, f"refusing to replace {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = atomic.staging_dir(target)
    try:
        arrays = create_arrays(staged, plans)
        present = store_plans(plans, arrays, progress, scheduler)
        _write_group_attrs(staged, plans, present, groups)
        atomic.move_into_place(staged, target)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


def group_attributes(
    plans: Sequence[Plan],
    present: Sequence[np.ndarray | None],
    extra: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, tuple[int, dict[str, Any]]]:
    """(zarr format, attributes) of every group the plans need, the root and
    intermediate groups included, keyed by group path ("" = root); `extra`
    adds attributes by group path."""
    zfmt = 3 if plans[0].version == "0.5" else 2
    groups: dict[str, tuple[int, dict[str, Any]]] = {"": (zfmt, {})}
    labels_of: dict[str, list[str]] = {}
    for plan in plans:
        parts = [p for p in plan.rel.split("/") if p]
        for i in range(1, len(parts)):
            groups.setdefault("/".join(parts[:i]), (zfmt, {}))
        if len(parts) >= 2 and parts[-2] == "labels":
            labels_of.setdefault("/".join(parts[:-1]), []).append(parts[-1])
    for plan, values in zip(plans, present, strict=True):
        groups[plan.rel] = (3 if plan.version == "0.5" else 2, plan.attrs(values))
    for rel, names in labels_of.items():
        content = {"labels": names}
        groups[rel] = (zfmt, {"ome": {"version": "0.5", **content}} if zfmt == 3 else content)
    for rel, attrs in (extra or {}).items():
        groups[rel] = (zfmt, {**groups.get(rel, (zfmt, {}))[1], **attrs})
    return groups


def _write_group_attrs(
    root: Path,
    plans: Sequence[Plan],
    present: Sequence[np.ndarray | None],
    extra: Mapping[str, dict[str, Any]] | None = None,
) -> None:
    import zarr

    for rel, (zfmt, attrs) in group_attributes(plans, present, extra).items():
        if attrs:
            group = zarr.open_group(str(root / rel), mode="a", zarr_format=zfmt)
            group.attrs.update(attrs)


# -- object stores --------------------------------------------------------------------------


def _write_objects(
    target: Target,
    plans: Sequence[Plan],
    progress: Progress | None,
    overwrite: bool,
    scheduler: Any,
    groups: Mapping[str, dict[str, Any]] | None = None,
) -> None:
    keys = target.keys()
    existing = keys.keys()
    _check_object_target(target, keys, existing, overwrite)
    with _object_errors(target):
        _write_new_version(target, keys, existing, plans, progress, scheduler, groups)


@contextlib.contextmanager
def _object_errors(target: Target) -> Iterator[None]:
    """Errors of the object store client (raised through zarr or dask) as StoreAccessError."""
    try:
        yield
    except OmeZarrXError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("obstore") or isinstance(exc, OSError):
            raise object_error(target.text, exc, "cannot write") from exc
        raise


def _write_new_version(
    target: Target,
    keys: ObjectKeys,
    existing: list[str],
    plans: Sequence[Plan],
    progress: Progress | None,
    scheduler: Any,
    groups: Mapping[str, dict[str, Any]] | None = None,
) -> None:
    """Steps 1 to 3 of the module docstring."""
    taken = _taken_prefixes(existing)
    token = secrets.token_hex(4)
    for plan in plans:
        plan.level_paths = [_fresh(plan.rel, str(k), token, taken) for k in range(len(plan.levels))]
    arrays = []
    for plan in plans:
        level_arrays = []
        for k, name in enumerate(plan.paths()):
            import zarr

            kwargs = array_kwargs(plan, k, name)
            kwargs.pop("name")
            kwargs["zarr_format"] = 3 if plan.version == "0.5" else 2
            store = target.array_store(_join(plan.rel, name))
            level_arrays.append(zarr.create_array(store, **kwargs))
        arrays.append(level_arrays)
    present = store_plans(plans, arrays, progress, scheduler)
    written = commit_groups(keys, group_attributes(plans, present, groups), existing)
    keep = {_join(plan.rel, name) for plan in plans for name in plan.paths()}
    collect_garbage(keys, keep, written)


def _check_object_target(
    target: Target, keys: ObjectKeys, existing: list[str], overwrite: bool
) -> None:
    """Refuse to replace a store unless asked to, and anything that is not OME-Zarr."""
    root_docs = [k for k in existing if k in METADATA_FILES]
    if root_docs:
        if not overwrite:
            raise TargetExistsError(target.text)
        attrs = _root_attributes(keys)
        if attrs is not None and not md.is_ome_node(attrs) and not _holds_ome_groups(keys):
            raise StoreExistsError(
                f"{target.text}: exists and is not an OME-Zarr store; refusing to replace it"
            )
    elif existing and not any(k.rsplit("/", 1)[-1] in _ZARR_DOCS for k in existing):
        raise StoreExistsError(
            f"{target.text}: holds objects that are not a zarr store; refusing to write there"
        )


def _root_attributes(keys: ObjectKeys, group: str = "") -> dict[str, Any] | None:
    """Attributes of the group at `group` ({} when it has none, None when unparsable)."""
    import json

    for name in ("zarr.json", ".zattrs"):
        raw = keys.get(_join(group, name))
        if raw is not None:
            try:
                doc = json.loads(raw)
            except ValueError:
                return None
            if name == "zarr.json":
                doc = doc.get("attributes", {}) if isinstance(doc, dict) else {}
            return doc if isinstance(doc, dict) else {}
    return {}


def _holds_ome_groups(keys: ObjectKeys) -> bool:
    """A plain root group whose children are OME images (a store `write_store` made)."""
    for child in keys.child_names(""):
        attrs = _root_attributes(keys, child)
        if attrs and md.is_ome_node(attrs):
            return True
    return False


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _taken_prefixes(existing: Sequence[str]) -> set[str]:
    """Every "folder" that holds an object (so an array written there would mix)."""
    taken: set[str] = set()
    for key in existing:
        parts = key.split("/")
        for i in range(1, len(parts)):
            taken.add("/".join(parts[:i]))
    return taken


def _fresh(rel: str, name: str, token: str, taken: set[str]) -> str:
    """`name` when nothing is stored under it, else a new name no object uses."""
    if _join(rel, name) not in taken:
        return name
    return f"{name}-{token}"


def commit_groups(
    keys: ObjectKeys,
    groups: dict[str, tuple[int, dict[str, Any]]],
    existing: Sequence[str],
) -> set[str]:
    """Write the group documents deepest first, the root's last; return the keys written.

    A zarr v2 group is `.zgroup` then `.zattrs` (the attributes are what makes
    it an OME node). When the store switches zarr format, the old format's
    document of a group would hide or shadow the new one: a v3 `zarr.json` that
    a v2 save replaces is deleted right after that group's v2 documents are
    written (the old v2 documents a v3 save leaves are deleted with the garbage).
    """
    present = set(existing)
    written: set[str] = set()
    for rel in sorted(groups, key=lambda r: (-r.count("/") - bool(r), r)):
        zfmt, attrs = groups[rel]
        if zfmt == 3:
            document = {"zarr_format": 3, "node_type": "group", "attributes": attrs}
            key = _join(rel, "zarr.json")
            keys.put(key, dump_json("zarr.json", document))
            written.add(key)
            continue
        for name, document in ((".zgroup", {"zarr_format": 2}), (".zattrs", attrs)):
            key = _join(rel, name)
            keys.put(key, dump_json(name, document))
            written.add(key)
        stale = _join(rel, "zarr.json")
        if stale in present:
            keys.delete([stale])
    return written


def collect_garbage(
    keys: ObjectKeys, arrays: set[str], documents: set[str], under: str = ""
) -> int:
    """Delete every object under `under` that is neither in `documents` nor inside one
    of `arrays`; return how many were deleted."""
    doomed = [
        key
        for key in keys.keys(under)
        if key not in documents and not any(key.startswith(f"{a}/") for a in arrays)
    ]
    keys.delete(doomed)
    if doomed:
        log.info("deleted %d objects no longer referenced under %s", len(doomed), keys.url)
    return len(doomed)
