"""Read any OME-Zarr (NGFF 0.1 to 0.6-dev; folder, zip or URL) into model.Image objects.

`looks_like_ome_zarr` is the cheap test napari calls on every dropped path;
`read_ome_zarr` opens metadata only (no chunk is read) and returns lazy dask
levels. Independent metadata documents are fetched concurrently so that
opening over HTTP costs a few round trips, not one per array.
"""

from __future__ import annotations

import json
import logging
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from . import metadata as md
from .errors import (
    MetadataError,
    NgffComplianceWarning,
    NotOmeZarrError,
    OmeZarrXError,
    StoreAccessError,
)
from .model import Image
from .store import (
    METADATA_FILES,
    ZIP_SUFFIXES,
    Location,
    is_url,
    layout1_data_dir,
    open_location,
    parallel,
    read_local_attrs,
    split_zip_path,
    to_dask,
)
from .transforms import placement

log = logging.getLogger(__name__)
_MAX_NESTED_DEPTH = 3
# Child folders `looks_like_ome_zarr` may look into for nested images.
_NESTED_SCAN_BUDGET = 64


def looks_like_ome_zarr(path: str) -> bool:
    """Cheap guess whether `path` is OME-Zarr: never raises, warns, prints or reads chunks.

    Local folders are judged by their metadata file's OME keys; zip files by
    their extension and member names; URLs by their name.
    """
    try:
        return _looks_like(str(path))
    except Exception:  # this check must never fail, whatever the input
        return False


def _looks_like(text: str) -> bool:
    if is_url(text):
        parts = urlsplit(text).path.rstrip("/").lower().split("/")
        return parts[-1].endswith(ZIP_SUFFIXES) or any(p.endswith(".zarr") for p in parts)
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
            depth < _MAX_NESTED_DEPTH
            and not md.is_ome_node(attrs or {})  # wells and the like: not nested images
            and _is_zarr_group(child)
            and _has_nested_ome(child, budget, depth + 1)
        ):
            return True
    return False


def read_ome_zarr(path: str) -> list[Image]:
    """Every image at `path` (root first), each with its label images in `.labels`.

    Raises NotOmeZarrError, MetadataError or StoreAccessError with a message
    naming the path; warns NgffComplianceWarning for readable-but-broken parts.
    """
    location = open_location(path)
    with warnings.catch_warnings():
        # Old bioformats2raw releases wrote `"filters": []`; zarr complains about
        # it on every array, which tells a napari user nothing they can act on.
        warnings.filterwarnings("ignore", message="Found an empty list of filters")
        return Reader(location).read()


def _is_missing(exc: Exception) -> bool:
    """Whether a zarr/store error means "nothing there" (zarr's *NotFoundError family)."""
    return isinstance(exc, FileNotFoundError) or type(exc).__name__.endswith("NotFoundError")


def _access_error(where: str, exc: Exception) -> OmeZarrXError:
    """Our error type for an exception raised while reading `where`."""
    if isinstance(exc, OmeZarrXError):
        return exc
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return MetadataError(f"{where}: malformed JSON metadata: {exc}")
    if _is_missing(exc):
        return MetadataError(f"{where}: missing zarr group or array")
    if type(exc).__name__ == "ContainsArrayError":
        return NotOmeZarrError(f"{where}: is a zarr array, not a group; open the image holding it")
    if isinstance(exc, ValueError | TypeError | KeyError | AttributeError):
        return MetadataError(f"{where}: invalid zarr metadata: {type(exc).__name__}: {exc}")
    return StoreAccessError(f"{where}: cannot read: {type(exc).__name__}: {exc}")


def _integer_levels(image: Image) -> bool:
    return np.dtype(image.levels[0].dtype).kind in "iub"


def _label_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _clean_name(name: str | None) -> str | None:
    cleaned = name.strip("/") if isinstance(name, str) else None
    return cleaned or None


@dataclass
class Node:
    """What reading needs of a zarr group: its attributes and zarr format."""

    attrs: dict[str, Any]
    zarr_format: int


class Reader:
    """Reads the OME nodes of one opened store location."""

    def __init__(self, location: Location) -> None:
        self.loc = location
        self.zarr_format: int | None = None

    # -- low-level access, safe to call from worker threads -------------------------

    def group(self, path: str) -> Node:
        """The group at `path` (raises the underlying zarr/IO error).

        Once the first group is open its zarr format is assumed for the rest
        of the store, which saves probing for both formats' files per group.
        """
        import zarr

        fmt = self.zarr_format
        try:
            group = zarr.open_group(
                self.loc.store,
                path=path or None,
                mode="r",
                zarr_format=fmt,
                use_consolidated=False if fmt else None,
            )
        except Exception as exc:
            node = self._loose_v2_group(path) if _is_missing(exc) else None
            if node is None:
                raise
            return node
        if fmt is None:
            self.zarr_format = group.metadata.zarr_format
        return Node(dict(group.attrs.asdict()), group.metadata.zarr_format)

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

    def open_groups(self, paths: Sequence[str]) -> list[Any]:
        """Groups at `paths`, opened concurrently; exceptions in place of failures."""
        return parallel([lambda p=p: self.group(p) for p in paths])

    # -- dispatch ---------------------------------------------------------------------

    def read(self) -> list[Image]:
        """Everything at the location's path."""
        path = self.loc.path
        where = self.loc.describe(path)
        try:
            group = self.group(path)
        except Exception as exc:  # mapped to our error types
            if _is_missing(exc):
                if self.loc.kind == "http":
                    raise StoreAccessError(
                        f"{where}: no zarr metadata found at this URL (zarr.json/.zattrs missing "
                        "or the server is unreachable)"
                    ) from exc
                raise NotOmeZarrError(f"{where}: not an OME-Zarr store (no zarr group)") from exc
            raise _access_error(where, exc) from exc
        images = self.read_node(path, group)
        if not images:
            raise NotOmeZarrError(f"{where}: no OME-NGFF image, plate or labels found")
        self._name_series(path, images[0])
        return images

    def _name_series(self, path: str, image: Image) -> None:
        """Name a series opened on its own (`collection.zarr/1`) from the collection's OME-XML."""
        parent, _, series = path.rpartition("/")
        if not series.isdigit() or image.path != path:
            return
        try:
            parent_attrs = md.ome_attributes(self.group(parent).attrs)
        except Exception:  # the parent is optional context, not required to read
            return
        if "bioformats2raw.layout" in parent_attrs and "multiscales" not in parent_attrs:
            names = self.ome_xml_names(parent)
            if int(series) < len(names) and names[int(series)]:
                image.name = names[int(series)]

    def read_node(self, path: str, group: Node) -> list[Image]:
        """Images of one group, whatever OME node it is."""
        attrs = group.attrs
        from . import hcs

        ome = md.ome_attributes(attrs)
        if "multiscales" in ome:
            kind = "labels" if self._is_label_path(path, ome) else "image"
            image = self.read_image(path, group, kind=kind)
            if kind == "labels":
                image.name = _label_name(self.loc.describe(path))
                if not _integer_levels(image):
                    warnings.warn(
                        f"{self.loc.describe(path)}: label data must be integers, got "
                        f"{image.levels[0].dtype}; read as an image",
                        NgffComplianceWarning,
                        stacklevel=2,
                    )
                    image.kind, image.label = "image", None
            return [image, *self.nested_images(path, image)]
        if "plate" in ome:
            return [hcs.read_plate(self, path, group)]
        if "well" in ome:
            return [hcs.read_well(self, path, group)]
        if "labels" in ome:
            return self.read_labels_group(path, attrs, strict=True)
        if "bioformats2raw.layout" in ome:
            return self.read_series(path, attrs)
        return self.nested_images(path, None)

    def _is_label_path(self, path: str, ome: dict[str, Any]) -> bool:
        # The store root counts too: a URL may point straight at `.../labels/<name>`.
        parts = self.loc.describe(path).rstrip("/").split("/")
        return "image-label" in ome or (len(parts) >= 2 and parts[-2] == "labels")

    # -- images -------------------------------------------------------------------------

    def read_image(
        self,
        path: str,
        group: Node,
        *,
        kind: str = "image",
    ) -> Image:
        """One multiscale image (and its labels): metadata plus lazy levels."""
        attrs = group.attrs
        where = self.loc.describe(path)
        ms = md.parse_multiscale(attrs, where)
        fmt = group.zarr_format
        calls: list[Callable[[], Any]] = [
            lambda p=p: self.array(self.loc.join(path, p), fmt) for p in ms.paths
        ]
        if kind == "image":
            calls.append(lambda: self.group(self.loc.join(path, "labels")))
        results = parallel(calls)
        arrays = results[: len(ms.paths)]
        for level_path, arr in zip(ms.paths, arrays, strict=True):
            if isinstance(arr, Exception):
                level_where = self.loc.describe(self.loc.join(path, level_path))
                raise _access_error(level_where, arr) from arr
        axes = ms.axes_for(arrays[0].ndim)
        self._check_levels(where, ms.paths, arrays, len(axes))
        ndim = len(axes)
        try:
            dataset, multiscale = ms.matrices(0, ndim, where)
        except MetadataError as exc:
            # Placement is cosmetic next to the pixels: show them on the pixel grid.
            warnings.warn(
                f"{exc}; the pixel grid is used instead", NgffComplianceWarning, stacklevel=2
            )
            dataset = multiscale = np.eye(ndim + 1)
        image = Image(
            store=self.loc.root,
            path=path,
            version=ms.version,
            name=_clean_name(ms.name),
            axes=axes,
            levels=[
                to_dask(a, self.loc.describe(self.loc.join(path, p)))
                for a, p in zip(arrays, ms.paths, strict=True)
            ],
            scale=(1.0,) * ndim,
            translate=(0.0,) * ndim,
            attrs=md.ome_attributes(attrs),
            kind=kind,
            level_paths=list(ms.paths),
        )
        place = placement(dataset, multiscale, image.channel_axis)
        image.scale, image.translate, image.affine = place.scale, place.translate, place.affine
        image.channels = self._channels(image, attrs, where)
        if kind == "labels":
            image.label = md.parse_image_label(attrs, where)
        else:
            labels_group = results[-1]
            if isinstance(labels_group, Exception) and not _is_missing(labels_group):
                labels_where = self.loc.describe(self.loc.join(path, "labels"))
                warnings.warn(
                    f"labels skipped: {_access_error(labels_where, labels_group)}",
                    NgffComplianceWarning,
                    stacklevel=2,
                )
            elif not isinstance(labels_group, Exception):
                labels_path = self.loc.join(path, "labels")
                image.labels = self.read_labels_group(labels_path, labels_group.attrs, strict=False)
        return image

    def _check_levels(self, where: str, paths: list[str], arrays: list[Any], ndim: int) -> None:
        previous = None
        for level_path, arr in zip(paths, arrays, strict=True):
            if arr.ndim != ndim:
                raise MetadataError(
                    f"{where}/{level_path}: array has {arr.ndim} dimensions but the "
                    f"multiscale declares {ndim} axes"
                )
            if previous is not None and any(
                a > b for a, b in zip(arr.shape, previous, strict=True)
            ):
                raise MetadataError(
                    f"{where}/{level_path}: level shape {tuple(arr.shape)} is larger than the "
                    f"previous level's {tuple(previous)}; levels must go from largest to smallest"
                )
            previous = arr.shape

    def _channels(self, image: Image, attrs: dict[str, Any], where: str) -> list:
        channels = md.parse_channels(attrs, where)
        axis = image.channel_axis
        if axis is None or not channels:
            return channels
        size = image.levels[0].shape[axis]
        if len(channels) != size:
            warnings.warn(
                f"{where}: omero lists {len(channels)} channels but the channel axis has "
                f"{size}; extra entries are ignored and missing ones get defaults",
                NgffComplianceWarning,
                stacklevel=2,
            )
            from .model import Channel

            channels = [*channels[:size], *(Channel() for _ in range(size - len(channels)))]
        return channels

    # -- labels -------------------------------------------------------------------------

    def read_labels_group(self, path: str, attrs: dict[str, Any], *, strict: bool) -> list[Image]:
        """Label images listed by a `labels` group, read concurrently.

        Broken ones are skipped with a warning; with `strict` (the user opened
        the labels group itself) an empty result is an error instead.
        """
        names = md.label_names(attrs)
        if not names and self.loc.listable:
            names = self.loc.child_names(path)
        paths = [self.loc.join(path, n) for n in names]
        results = parallel([lambda p=p: self.read_label(p, self.group(p)) for p in paths])
        labels = []
        for label_path, result in zip(paths, results, strict=True):
            if isinstance(result, Exception):
                error = _access_error(self.loc.describe(label_path), result)
                warnings.warn(f"label skipped: {error}", NgffComplianceWarning, stacklevel=2)
            else:
                labels.append(result)
        if strict and not labels:
            raise MetadataError(f"{self.loc.describe(path)}: labels group holds no readable label")
        return labels

    def read_label(self, path: str, group: Node) -> Image:
        """One label image; it must hold integer data."""
        attrs = group.attrs
        where = self.loc.describe(path)
        if "multiscales" not in md.ome_attributes(attrs):
            raise MetadataError(f"{where}: label group has no 'multiscales'")
        image = self.read_image(path, group, kind="labels")
        if not _integer_levels(image):
            raise MetadataError(
                f"{where}: label data must be integers, got {image.levels[0].dtype}"
            )
        image.name = _label_name(path)
        return image

    # -- collections --------------------------------------------------------------------

    def nested_images(self, path: str, parent: Image | None) -> list[Image]:
        """Images in child groups (e.g. `sub_array_1`, `sub_array_2/sub_sub_array_1`)."""
        if not self.loc.listable:
            return []
        skip = {"OME"}
        if parent is not None:
            # An image's own labels and level arrays are not nested images. Elsewhere
            # (e.g. a spatialdata store) a plain `labels` group is searched too.
            skip |= {"labels", *(p.split("/", 1)[0] for p in parent.level_paths)}
        found: list[Image] = []
        self._collect_nested(path, skip, found, depth=1)
        return found

    def _collect_nested(self, path: str, skip: set[str], found: list[Image], depth: int) -> None:
        for name in self.loc.child_names(path):
            if name in skip:
                continue
            child_path = self.loc.join(path, name)
            try:
                child = self.group(child_path)
                attrs = child.attrs
            except Exception as exc:  # a broken child must not hide the rest
                log.debug("skipping %s: %s", child_path, exc)
                continue
            ome = md.ome_attributes(attrs)
            if md.is_ome_node(attrs) and "labels" not in ome:
                try:
                    found.extend(self.read_node(child_path, child))
                except OmeZarrXError as exc:
                    warnings.warn(
                        f"nested image skipped: {exc}", NgffComplianceWarning, stacklevel=2
                    )
            elif depth < _MAX_NESTED_DEPTH and not md.is_ome_node(attrs):
                self._collect_nested(child_path, set(), found, depth + 1)

    def read_series(self, path: str, attrs: dict[str, Any]) -> list[Image]:
        """Every series of a bioformats2raw collection, named from its OME-XML."""
        where = self.loc.describe(path)
        names = self.ome_xml_names(path)
        series = self._series_paths(path, names)
        groups = self.open_groups([self.loc.join(path, s) for s in series])
        images = []
        for index, (series_path, result) in enumerate(zip(series, groups, strict=True)):
            full = self.loc.join(path, series_path)
            if isinstance(result, Exception):
                warnings.warn(
                    f"series skipped: {_access_error(self.loc.describe(full), result)}",
                    NgffComplianceWarning,
                    stacklevel=2,
                )
                continue
            for image in self.read_node(full, result):
                if image.path == full and index < len(names) and names[index]:
                    image.name = names[index]
                images.append(image)
        if not images:
            raise MetadataError(f"{where}: bioformats2raw collection holds no readable series")
        return images

    def _series_paths(self, path: str, names: list[str]) -> list[str]:
        try:
            ome_attrs = md.ome_attributes(self.group(self.loc.join(path, "OME")).attrs)
            listed = ome_attrs.get("series")
        except Exception:  # the OME group is optional
            listed = None
        if isinstance(listed, list) and listed:
            return [str(s) for s in listed]
        if names:
            return [str(i) for i in range(len(names))]
        if self.loc.listable:
            keys = self.loc.child_names(path)
            return sorted((k for k in keys if k.isdigit()), key=int)
        return ["0"]

    def ome_xml_names(self, path: str) -> list[str]:
        """Image names from the collection's OME-XML (empty when absent or unreadable)."""
        data = self.loc.read_bytes(self.loc.join(path, "OME", "METADATA.ome.xml"))
        if data is None and self.loc.sidecar is not None:
            data = self.loc.sidecar.read_bytes()
        return md.ome_xml_image_names(data, self.loc.describe(path)) if data else []
