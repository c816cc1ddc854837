"""Read any OME-Zarr (NGFF 0.1 to 0.6-dev; folder, zip or URL) into model.Image objects.

`read_ome_zarr` opens metadata only (no chunk is read) and returns lazy dask
levels. The reader dispatches on what each group is (image, labels, plate,
well, bioformats2raw collection, plain group holding images) and reads
independent documents concurrently, so that opening over HTTP costs a few
round trips, not one per array.
"""

from __future__ import annotations

import logging
import posixpath
import warnings
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from napari_omezarr_x.errors import (
    MetadataError,
    NgffComplianceWarning,
    NotOmeZarrError,
    StoreAccessError,
)
from napari_omezarr_x.model import Image, Plate
from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.storage import Location, StoreLike, open_location

from .collections import SeriesChoice, group_collection, read_bioformats2raw, xml_series
from .images import ImageReader, integer_levels, label_name
from .nodes import Node, access_error, is_missing
from .plates import Acquisition, read_fields, read_plate, read_well
from .probe import MAX_NESTED_DEPTH

log = logging.getLogger(__name__)


def read_ome_zarr(
    path: StoreLike,
    *,
    storage_options: dict[str, Any] | None = None,
    with_source: bool = False,
    within: str | None = None,
    acquisition: Acquisition = None,
    series: SeriesChoice = None,
) -> list[Image]:
    """Every image at `path` (root first), each with its label images in `.labels`.

    `path` is any StoreLike: a folder, zip file, `file://`, `http(s)://` or
    object-store URL (`s3://`, `gs://`, `az://`, `abfs://`), a zarr store, a
    zarr.Group or an fsspec mapper; `storage_options` configure an object store
    (credentials, endpoint, `anon`). With `with_source`, a `labels` group or a
    label image opened on its own comes with the image it labels
    (`image-label.source`, by default `../../`): that image is returned with the
    opened labels in `.labels` (a warning, and the labels alone, when it cannot be
    read). `within` reads the group at that path inside the store `path` (as
    `Image.path` names it) instead of the group `path` points at. `acquisition`
    picks a plate's acquisition (an id, "all", or None for the first of several).
    `series` picks the images of a collection (an index, a list of them, "all",
    or None: all of a collection of up to 3, else the first). Raises
    NotOmeZarrError, MetadataError or StoreAccessError with a message naming the
    path; warns NgffComplianceWarning for readable-but-broken parts.
    """
    location = open_location(path, storage_options)
    if within is not None:
        location.path = within.strip("/")
    with warnings.catch_warnings():
        # Old bioformats2raw releases wrote `"filters": []`; zarr complains about
        # it on every array, which tells a napari user nothing they can act on.
        warnings.filterwarnings("ignore", message="Found an empty list of filters")
        images = Reader(location, acquisition=acquisition, series=series).read()
        if with_source:
            images = with_source_image(location, images)
        return images


def with_source_image(location: Location, images: list[Image]) -> list[Image]:
    """`images` read from a `labels` group or a label image, under the image they label."""
    labels = [image for image in images if image.kind == "labels"]
    if not labels or len(labels) != len(images):
        return images
    first = labels[0]
    source = first.label.source if first.label is not None else None
    opened = location.describe(first.path).rstrip("/")
    in_labels_group = posixpath.basename(posixpath.dirname(opened)) == "labels"
    if source is None and not in_labels_group:
        return images  # a label image of its own (a labels-only store): nothing to add
    relative = source or "../../"
    target = posixpath.normpath(posixpath.join(first.path, relative))
    where = location.describe(posixpath.dirname(first.path) if len(labels) > 1 else first.path)
    try:
        if not target.startswith(".."):
            reader, target = Reader(location), "" if target == "." else target
        elif location.kind not in ("local", "zip"):
            # Above the opened location (a URL opened at its labels): open the source's URL.
            url = urlsplit(location.describe(first.path))
            above = posixpath.normpath(posixpath.join(url.path, relative))
            source_location = open_location(urlunsplit(url._replace(path=above)))
            reader, target = Reader(source_location), source_location.path
        else:
            raise MetadataError(f"source {relative!r} lies outside the store")
        image = reader.read_image(target, reader.group(target))
    except Exception as exc:  # the labels still open on their own
        warnings.warn(
            f"{where}: the image these labels belong to ({relative}) cannot be opened, so "
            f"they open alone: {exc}",
            NgffComplianceWarning,
            stacklevel=2,
        )
        return images
    image.labels = labels
    return [image]


def read_plate_fields(
    plate: Plate, storage_options: dict[str, Any] | None = None
) -> list[list[Image | None]]:
    """Each field image of each well of a plate `read_ome_zarr` returned (its
    `Image.plate`), with full metadata and lazy levels: what converting or
    copying a plate field by field needs. Unreadable fields are None (warned)."""
    return read_fields(Reader(open_location(plate.store, storage_options)), plate)


class Reader(ImageReader):
    """Reads every OME node of one opened store location."""

    def __init__(
        self, location: Location, *, acquisition: Acquisition = None, series: SeriesChoice = None
    ) -> None:
        super().__init__(location)
        self.acquisition = acquisition
        self.series = series

    def read(self) -> list[Image]:
        """Everything at the location's path."""
        path = self.loc.path
        where = self.loc.describe(path)
        try:
            group = self.group(path)
        except Exception as exc:  # mapped to our error types
            if is_missing(exc):
                if self.loc.kind in ("http", "object"):
                    raise StoreAccessError(
                        f"{where}: no zarr metadata found at this URL (zarr.json/.zattrs missing "
                        "or the server is unreachable)"
                        if self.loc.kind == "http"
                        else f"{where}: no zarr metadata (zarr.json, .zattrs) at this URL"
                    ) from exc
                raise NotOmeZarrError(f"{where}: not an OME-Zarr store (no zarr group)") from exc
            raise access_error(where, exc) from exc
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
            names = [x.name for x in xml_series(self, parent)]
            if int(series) < len(names) and names[int(series)]:
                image.name = names[int(series)]

    def read_node(self, path: str, group: Node) -> list[Image]:
        """Images of one group, whatever OME node it is."""
        attrs = group.attrs
        ome = md.ome_attributes(attrs)
        if "multiscales" in ome:
            kind = "labels" if self._is_label_path(path, ome) else "image"
            image = self.read_image(path, group, kind=kind)
            if kind == "labels":
                parts = self.loc.describe(path).rstrip("/").split("/")
                # Under `labels/` the key names it; a labels-only store, its multiscale.
                if len(parts) >= 2 and parts[-2] == "labels":
                    image.name = md.label_title(image.name, parts[-1])
                else:
                    image.name = image.name or label_name(self.loc.describe(path))
                if not integer_levels(image):
                    warnings.warn(
                        f"{self.loc.describe(path)}: label data must be integers, got "
                        f"{image.levels[0].dtype}; read as an image",
                        NgffComplianceWarning,
                        stacklevel=2,
                    )
                    image.kind, image.label = "image", None
            return self.nested_images(path, image)
        if "plate" in ome:
            return [read_plate(self, path, group, self.acquisition)]
        if "well" in ome:
            return [read_well(self, path, group, self.acquisition)]
        if "labels" in ome:
            return self.read_labels_group(path, attrs, strict=True)
        if "bioformats2raw.layout" in ome:
            return read_bioformats2raw(self, path, self._series_at(path))
        return self.nested_images(path, None)

    def _is_label_path(self, path: str, ome: dict[str, Any]) -> bool:
        # The store root counts too: a URL may point straight at `.../labels/<name>`.
        parts = self.loc.describe(path).rstrip("/").split("/")
        return "image-label" in ome or (len(parts) >= 2 and parts[-2] == "labels")

    def nested_images(self, path: str, parent: Image | None) -> list[Image]:
        """`parent` (the image at `path`, if any) and the images in child groups (e.g.
        `sub_array_1`, `sub_array_2/sub_sub_array_1`), chosen as collections are."""
        if not self.loc.listable:
            return [parent] if parent is not None else []
        skip = {"OME"}
        if parent is not None:
            # An image's own labels and level arrays are not nested images. Elsewhere
            # (e.g. a spatialdata store) a plain `labels` group is searched too.
            skip |= {"labels", *(p.split("/", 1)[0] for p in parent.level_paths)}
        found: list[tuple[str, Node]] = []
        self._collect_nested(path, skip, found, depth=1)
        if not found:
            return [parent] if parent is not None else []
        return group_collection(self, path, parent, found, self._series_at(path))

    def _series_at(self, path: str) -> SeriesChoice:
        """The `series` choice applies to the collection the user opened, not to
        collections nested inside it (which follow the default rule)."""
        return self.series if path == self.loc.path else None

    def _collect_nested(
        self, path: str, skip: set[str], found: list[tuple[str, Node]], depth: int
    ) -> None:
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
                found.append((child_path, child))
            elif depth < MAX_NESTED_DEPTH and not md.is_ome_node(attrs):
                self._collect_nested(child_path, set(), found, depth + 1)
