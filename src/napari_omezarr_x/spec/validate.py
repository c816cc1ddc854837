"""Validate an OME-Zarr store against the OME-NGFF specification (0.1 to 0.6-dev).

Each group's metadata is checked against the official JSON schemas of the version it
declares (the ngff-zarr package ships them), plus the rules a schema cannot express. The
hierarchy check then follows the metadata to the groups and arrays it names: they must
exist, match the axes, shrink level by level, and label arrays must hold integers.

Documents are read as raw JSON by key (fsspec for folders, zips and http URLs; the
object store's client for S3, GCS and Azure), so a broken document is reported where it
is instead of stopping the whole check. The data check (on by default for local stores,
see `validate_store`) then reads and decodes every chunk of the arrays the metadata names
and reports each bad one by key (`chunks`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_omezarr_x.errors import StoreAccessError
from napari_omezarr_x.storage import StoreLike, is_remote, journal, open_mapper

from .chunks import Progress, check_chunks, zarr_store
from .raw import axis_names, axis_types, declared, dtype_name, schema_models, vector_lengths
from .schemas import bundled_versions, is_prerelease, normalised, schema_issues

_INTEGER_DTYPES = {f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)}
_OME_KEYS = (
    "multiscales",
    "image-label",
    "plate",
    "well",
    "bioformats2raw.layout",
    "series",
    "scene",
)


@dataclass(frozen=True)
class Issue:
    """One finding: where it is (store key, then JSON path inside it) and what is wrong."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass
class ValidationReport:
    """The verdict on one store: valid when no error was found."""

    path: str
    version: str | None = None
    schema: str | None = None  # the schema version the metadata was checked against
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """The report as the JSON object `validate --json` prints."""
        return {
            "valid": self.valid,
            "version": self.version,
            "schema": self.schema,
            "errors": [{"location": i.location, "message": i.message} for i in self.errors],
            "warnings": [{"location": i.location, "message": i.message} for i in self.warnings],
        }


@dataclass
class _Node:
    """A group or array as its metadata documents describe it."""

    path: str
    key: str  # the document holding the attributes (zarr.json or .zattrs)
    zarr_format: int
    node_type: str
    attrs: dict[str, Any]
    meta: dict[str, Any]  # zarr.json or .zarray content (shape, dtype, ...)

    @property
    def pointer(self) -> str:
        """JSON path prefix of the attributes inside `key`."""
        return "$.attributes" if self.zarr_format == 3 else "$"


def validate_store(
    path: StoreLike,
    *,
    strict: bool = False,
    metadata_only: bool = False,
    storage_options: dict[str, Any] | None = None,
    data: bool | None = None,
    progress: Progress | None = None,
) -> ValidationReport:
    """Validate the OME-Zarr store at `path` (any StoreLike: folder, zip, URL, store object).

    `strict` also applies the specification's recommendations (its strict schemas);
    `metadata_only` checks the metadata documents only, not the arrays they name.
    `data` reads and decodes every chunk of those arrays and reports each one that
    fails by key; by default (None) it is done for local folders and zips, not for
    URLs, where it would download the whole store. `progress(done, total)` follows it.
    Raises StoreAccessError when `path` cannot be read as a zarr store at all.
    """
    mapper = open_mapper(path, storage_options)
    store_like, path = path, path if isinstance(path, str) else repr(path)
    checker = _Checker(mapper, path, strict=strict, metadata_only=metadata_only)
    try:
        root = checker.node("")
    except OSError as exc:
        raise StoreAccessError(f"{path}: cannot read store ({exc})") from exc
    if root is None and checker.unreadable:
        raise StoreAccessError(f"{path}: cannot read store ({checker.unreadable[0]})")
    if root is None and not checker.report.errors:
        raise StoreAccessError(f"{path}: no zarr metadata (zarr.json, .zattrs or .zgroup) found")
    if root is not None:
        checker.check_root(root)
    if data is None:
        data = not is_remote(store_like)
    if data and not metadata_only and checker.arrays:
        store, prefix = zarr_store(store_like, mapper, storage_options)
        for bad in check_chunks(store, checker.arrays, progress, prefix):
            checker.error(bad.key, bad.message)
    return checker.report


class _Checker:
    """Walks a store from its root and fills a ValidationReport."""

    def __init__(
        self, mapper: Mapping[str, bytes], path: str, *, strict: bool, metadata_only: bool
    ):
        self.mapper = mapper
        self.strict = strict
        self.metadata_only = metadata_only
        self.report = ValidationReport(path=path)
        self._seen: set[str] = set()
        self.unreadable: list[str] = []  # read failures (not missing keys)
        self.arrays: list[str] = []  # every array the metadata names, for the data check

    # -- reading ------------------------------------------------------------------------

    def error(self, location: str, message: str) -> None:
        self.report.errors.append(Issue(location, message))

    def warn(self, location: str, message: str) -> None:
        self.report.warnings.append(Issue(location, message))

    def _json(self, key: str) -> dict[str, Any] | None:
        try:
            raw = self.mapper[key]
        except KeyError:
            return None
        except Exception as exc:
            # Any backend failure (HTTP status, timeout, damaged zip) is a finding here,
            # reported at the key, so the rest of the store is still checked.
            self.error(key, f"cannot read ({type(exc).__name__}: {exc})")
            self.unreadable.append(f"{key}: {type(exc).__name__}: {exc}")
            return None
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.error(key, f"not valid JSON ({exc})")
            return None
        if not isinstance(doc, dict):
            self.error(key, f"expected a JSON object, got {type(doc).__name__}")
            return None
        return doc

    def node(self, path: str) -> _Node | None:
        """The group or array at `path`, or None when it does not exist (or is unreadable)."""
        prefix = f"{path}/" if path else ""
        v3 = self._json(f"{prefix}zarr.json")
        if v3 is not None:
            attrs = v3.get("attributes", {})
            if not isinstance(attrs, dict):
                self.error(f"{prefix}zarr.json", "'attributes' is not a JSON object")
                attrs = {}
            node_type = str(v3.get("node_type", "group"))
            return _Node(path, f"{prefix}zarr.json", 3, node_type, attrs, v3)
        array = self._json(f"{prefix}.zarray")
        group = self._json(f"{prefix}.zgroup")
        attrs = self._json(f"{prefix}.zattrs")
        if array is None and group is None and attrs is None:
            return None
        node_type = "array" if array is not None else "group"
        return _Node(path, f"{prefix}.zattrs", 2, node_type, attrs or {}, array or group or {})

    # -- dispatch -----------------------------------------------------------------------

    def check_root(self, root: _Node) -> None:
        version, namespace = declared(root.attrs)
        self.report.version = version
        if not any(k in namespace for k in _OME_KEYS):
            self.error(root.key, f"no OME-NGFF metadata: none of {', '.join(_OME_KEYS)}")
            return
        self.check_group(root, parent_version=None)

    def check_group(
        self, node: _Node, parent_version: str | None, *, is_label: bool = False
    ) -> None:
        """Check one OME group's metadata, then the groups and arrays it names."""
        if node.path in self._seen:
            return
        self._seen.add(node.path)
        version, namespace = declared(node.attrs)
        if self.report.version is None:
            self.report.version = version
        schema_version = self._schema_version(node, version, parent_version, namespace)
        if schema_version is None:
            return
        self._note_schema(schema_version)
        if version is not None and parent_version is not None and version != parent_version:
            self.warn(node.key, f"declares version {version} inside a {parent_version} store")
        if schema_version >= "0.5" and node.zarr_format == 2:
            self.error(node.key, f"OME-NGFF {schema_version} requires zarr v3 (zarr.json)")
        elif schema_version < "0.5" and node.zarr_format == 3:
            self.warn(node.key, f"OME-NGFF {schema_version} is defined for zarr v2 stores")
        models = schema_models(namespace)
        attrs = normalised(node.attrs, schema_version)
        for model in models:
            found = schema_issues(
                attrs, schema_version, model, strict=self.strict, key=node.key, pointer=node.pointer
            )
            self.report.errors.extend(Issue(location, message) for location, message in found)
        checked = version or schema_version
        if "multiscales" in namespace:
            is_label = is_label or "image-label" in namespace
            self.check_image(node, namespace, checked, is_label=is_label)
        elif "image-label" in namespace and not self.metadata_only:
            self.error(node.key, "'image-label' group has no 'multiscales' image")
        if "plate" in namespace:
            self.check_plate(node, namespace["plate"], checked)
        if "well" in namespace:
            self.check_well(node, namespace["well"], checked)
        if "bioformats2raw.layout" in namespace:
            self.check_bf2raw(node, checked)
        if isinstance(namespace.get("scene"), dict):
            self.check_scene(node, namespace["scene"], checked)

    def _schema_version(
        self, node: _Node, version: str | None, parent: str | None, namespace: dict[str, Any]
    ) -> str | None:
        """The bundled schema tree to judge `node` with (None after reporting why not)."""
        if version is None:
            guess = parent or ("0.5" if node.zarr_format == 3 else "0.4")
            if node.zarr_format == 3 or "bioformats2raw.layout" not in namespace:
                self.warn(node.key, f"no OME-NGFF version declared; checked as {guess}")
            return guess
        match = re.match(r"^(\d+)\.(\d+)", version)
        base = f"{match[1]}.{match[2]}" if match else None
        if base not in bundled_versions():
            known = ", ".join(sorted(bundled_versions()))
            self.error(node.key, f"unknown OME-NGFF version {version!r} (known: {known})")
            return None
        if version != base and not is_prerelease(version, base):
            self.warn(node.key, f"version {version!r} is not a released version; checked as {base}")
        return base

    def _note_schema(self, schema_version: str) -> None:
        if self.report.schema is None:
            self.report.schema = schema_version

    # -- images and labels --------------------------------------------------------------

    def check_image(
        self, node: _Node, namespace: dict[str, Any], version: str, *, is_label: bool
    ) -> None:
        multiscales = namespace.get("multiscales")
        if not isinstance(multiscales, list):
            return
        for m, multiscale in enumerate(multiscales):
            if isinstance(multiscale, dict):
                where = f"{node.key}#{_pointer(node, namespace)}.multiscales[{m}]"
                shape = self._check_multiscale(node, multiscale, version, where, is_label)
                if m == 0 and shape is not None:
                    self._check_omero_channels(node, namespace, multiscale, version, shape)
        self.check_unfinished_saves(node)
        self.check_labels_group(node, version)

    def _check_omero_channels(
        self,
        node: _Node,
        namespace: dict[str, Any],
        ms: dict[str, Any],
        version: str,
        shape: tuple[int, ...],
    ) -> None:
        """`omero.channels` lists one entry per index of the `c` axis (one without it).

        A recommendation, not a schema rule: a warning, an error with --strict.
        """
        omero = namespace.get("omero")
        channels = omero.get("channels") if isinstance(omero, dict) else None
        axes = axis_types(ms, version)
        if not isinstance(channels, list) or axes is None or len(axes) != len(shape):
            return
        c = next((i for i, (name, kind) in enumerate(axes) if kind == "channel"), None)
        expected = 1 if c is None else shape[c]
        if len(channels) != expected:
            where = f"{node.key}#{_pointer(node, namespace)}.omero.channels"
            axis = (
                f"the channel axis {axes[c][0]!r} has length {expected}"
                if c is not None
                else ("the image has no channel axis")
            )
            message = f"lists {len(channels)} channels but {axis}"
            (self.error if self.strict else self.warn)(where, message)

    def check_unfinished_saves(self, node: _Node) -> None:
        """Report saves of edits into this group that were interrupted (local folders)."""
        folder = _local_folder(self.mapper, node.path)
        if folder is None:
            return
        try:
            found = journal.unfinished(folder)
        except StoreAccessError as exc:
            self.error(node.key, str(exc))
            return
        for name, committed in found:
            key = _join(node.path, name)
            if committed:
                self.error(
                    key,
                    "an interrupted save is pending: its levels may disagree with level 0 "
                    "until the store is opened with napari-omezarr-x or saved again",
                )
            else:
                self.warn(
                    key,
                    "an unfinished save left this folder (none of it was applied); "
                    "the next save or open removes it",
                )

    def _check_multiscale(
        self, node: _Node, ms: dict[str, Any], version: str, where: str, is_label: bool
    ) -> tuple[int, ...] | None:
        """Check one multiscale and its arrays; the shape of its first level, if read."""
        axes = axis_names(ms, version)
        if axes is not None:
            duplicates = sorted({a for a in axes if axes.count(a) > 1})
            if duplicates:
                self.error(f"{where}.axes", f"axis names repeat: {duplicates}")
        datasets = [d for d in ms.get("datasets", []) or [] if isinstance(d, dict)]
        paths = [d.get("path") for d in datasets]
        for j, p in enumerate(paths):
            if p is not None and p in paths[:j]:
                self.error(f"{where}.datasets[{j}].path", f"path {p!r} is listed twice")
        ndim = len(axes) if axes is not None else None
        for j, ds in enumerate(datasets):
            for length, what in vector_lengths(ds):
                if ndim is not None and length != ndim:
                    loc = f"{where}.datasets[{j}].coordinateTransformations"
                    self.warn(loc, f"{what} has {length} values for {ndim} axes")
        if self.metadata_only:
            return None
        first: tuple[int, ...] | None = None
        previous: tuple[int, ...] | None = None
        for j, ds in enumerate(datasets):
            path = ds.get("path")
            if not isinstance(path, str):
                continue
            loc = f"{where}.datasets[{j}]"
            shape = self._check_level(node, path, loc, ndim, ds, is_label)
            if j == 0:
                first = shape
            if shape is not None and previous is not None and len(shape) == len(previous):
                grown = [i for i, (a, b) in enumerate(zip(shape, previous, strict=True)) if a > b]
                if grown:
                    self.error(
                        loc,
                        f"level {path!r} {list(shape)} is larger than the level "
                        f"before it {list(previous)} along axes {grown}",
                    )
            previous = shape if shape is not None else previous
        return first

    def _check_level(
        self,
        node: _Node,
        path: str,
        where: str,
        ndim: int | None,
        ds: dict[str, Any],
        is_label: bool,
    ) -> tuple[int, ...] | None:
        """Check the array of one dataset; its shape, or None when it is missing."""
        key = _join(node.path, path)
        array = self.node(key)
        if array is None or array.node_type != "array":
            what = "is a group, not an array" if array is not None else "does not exist"
            self.error(key or "/", f"array named by {where}.path {what}")
            return None
        shape = tuple(int(s) for s in array.meta.get("shape", []))
        if key not in self.arrays:
            self.arrays.append(key)
        if ndim is not None and len(shape) != ndim:
            self.error(array.key, f"array has {len(shape)} dimensions but the axes name {ndim}")
        for length, what in vector_lengths(ds):
            if length != len(shape):
                self.error(where, f"{what} has {length} values for a {len(shape)}-d array")
        if is_label:
            dtype = dtype_name(array.zarr_format, array.meta)
            if dtype not in _INTEGER_DTYPES:
                self.error(array.key, f"label array has dtype {dtype}; labels must be integers")
        return shape

    def check_labels_group(self, image: _Node, version: str) -> None:
        labels_node = self.node(_join(image.path, "labels"))
        if labels_node is None or labels_node.node_type != "group":
            return
        _, namespace = declared(labels_node.attrs)
        names = namespace.get("labels")
        where = f"{labels_node.key}#{_pointer(labels_node, namespace)}.labels"
        if names is None:
            self.warn(labels_node.key, "'labels' group does not list its label images")
            return
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.error(where, "expected a list of label image paths")
            return
        for name in names:
            where_name = f"{where} entry {name!r}"
            self._check_child(labels_node, name, where_name, version, "multiscales", label=True)

    # -- plates, wells, bioformats2raw --------------------------------------------------

    def check_plate(self, node: _Node, plate: Any, version: str) -> None:
        if not isinstance(plate, dict):
            return
        where = f"{node.key}#{_pointer(node, declared(node.attrs)[1])}.plate"
        rows = [r.get("name") for r in plate.get("rows", []) or [] if isinstance(r, dict)]
        cols = [c.get("name") for c in plate.get("columns", []) or [] if isinstance(c, dict)]
        for w, well in enumerate(plate.get("wells", []) or []):
            if not isinstance(well, dict) or not isinstance(well.get("path"), str):
                continue
            loc = f"{where}.wells[{w}]"
            self._check_well_position(well, rows, cols, loc, version)
            self._check_child(node, well["path"], loc, version, "well")

    def _check_well_position(
        self, well: dict[str, Any], rows: list[Any], cols: list[Any], where: str, version: str
    ) -> None:
        r, c = well.get("rowIndex"), well.get("columnIndex")
        if not (isinstance(r, int) and isinstance(c, int)):
            return
        if not (0 <= r < len(rows) and 0 <= c < len(cols)):
            self.error(
                where,
                f"rowIndex {r} / columnIndex {c} outside the plate's "
                f"{len(rows)} rows and {len(cols)} columns",
            )
            return
        expected = f"{rows[r]}/{cols[c]}"
        if well["path"] != expected:
            message = f"path {well['path']!r} should be '<row>/<column>' = {expected!r}"
            # The 0.5 suite rejects this; the 0.4 and 0.6-dev suites accept it.
            (self.error if version.startswith("0.5") else self.warn)(f"{where}.path", message)

    def check_well(self, node: _Node, well: Any, version: str) -> None:
        if not isinstance(well, dict):
            return
        where = f"{node.key}#{_pointer(node, declared(node.attrs)[1])}.well.images"
        for i, image in enumerate(well.get("images", []) or []):
            if isinstance(image, dict) and isinstance(image.get("path"), str):
                self._check_child(node, image["path"], f"{where}[{i}]", version, "multiscales")

    def check_scene(self, node: _Node, scene: dict[str, Any], version: str) -> None:
        """0.6 scenes: the images their transformations reference by path must exist."""
        where = (
            f"{node.key}#{_pointer(node, declared(node.attrs)[1])}.scene.coordinateTransformations"
        )
        transforms = scene.get("coordinateTransformations")
        for i, t in enumerate(transforms if isinstance(transforms, list) else []):
            for end in ("input", "output"):
                ref = t.get(end) if isinstance(t, dict) else None
                if isinstance(ref, dict) and isinstance(ref.get("path"), str) and ref["path"]:
                    self._check_child(
                        node, ref["path"], f"{where}[{i}].{end}", version, "multiscales"
                    )

    def check_bf2raw(self, node: _Node, version: str) -> None:
        """bioformats2raw layout: series listed in OME/, else groups 0, 1, 2, ..."""
        ome = self.node(_join(node.path, "OME"))
        series = declared(ome.attrs)[1].get("series") if ome is not None else None
        if isinstance(series, list):
            for name in series:
                if isinstance(name, str):
                    self._check_child(node, name, "OME series", version, "multiscales")
            return
        index = 0
        while (child := self.node(_join(node.path, str(index)))) is not None:
            self.check_group(child, version)
            index += 1
        if index == 0 and not self.metadata_only:
            self.error(node.key, "bioformats2raw layout without any image series (0, 1, ...)")

    def _check_child(
        self,
        parent: _Node,
        path: str,
        where: str,
        version: str,
        expected_key: str,
        *,
        label: bool = False,
    ) -> None:
        """Check the group `path` below `parent` that metadata at `where` names."""
        key = _join(parent.path, path)
        child = self.node(key)
        if child is None or child.node_type != "group":
            if not self.metadata_only:
                self.error(key or "/", f"group named by {where} does not exist")
            return
        if expected_key not in declared(child.attrs)[1]:
            self.error(child.key, f"group named by {where} has no {expected_key!r} metadata")
            return
        if label and "image-label" not in declared(child.attrs)[1]:
            # 0.4 says a label image SHOULD have image-label (so --strict requires it);
            # 0.5 made it a MUST.
            message = "label image has no 'image-label' metadata"
            must = version >= "0.5" or self.strict
            (self.error if must else self.warn)(child.key, message)
        self.check_group(child, version, is_label=label)


# -- helpers ----------------------------------------------------------------------------


def _local_folder(mapper: Mapping[str, bytes], path: str) -> Path | None:
    """The folder of group `path` when the store is a local folder, else None."""
    fs = getattr(mapper, "fs", None)
    if fs is None:
        return None
    protocol = fs.protocol
    protocols = protocol if isinstance(protocol, tuple | list) else (protocol,)
    if not {"file", "local"} & set(protocols):
        return None
    folder = Path(mapper.root) / path
    return folder if folder.is_dir() else None


def _pointer(node: _Node, namespace: dict[str, Any]) -> str:
    return f"{node.pointer}.ome" if namespace is not node.attrs else node.pointer


def _join(base: str, path: str) -> str:
    return "/".join(p for p in (base.strip("/"), path.strip("/")) if p)
