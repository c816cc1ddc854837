"""Collections: bioformats2raw series and plain groups holding several images.

The rule for what opens: every image when a collection holds at most `FEW`
(3) of them, otherwise the first only. Each image opened carries the
collection's listing (`model.Collection`: every series with its name from the
OME-XML, shape and pixel type), so a user can add the others (the napari
*Series* dock lists them). The listing costs no pixel read: shapes come from
the OME-XML, else from each image's metadata.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from napari_omezarr_x.errors import MetadataError, NgffComplianceWarning, OmeZarrXError
from napari_omezarr_x.model import Collection, Image, Series
from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.storage import parallel

from .nodes import Node, NodeReader, access_error

#: Collections of at most this many images open whole; larger ones open their first.
FEW = 3
#: How many series are tried, one after another, when the first cannot be read.
_TRIES = 8

SeriesChoice = int | Sequence[int] | str | None


def wanted(count: int, choice: SeriesChoice, where: str) -> list[int]:
    """Indices of the series to open: `choice`, or by default all when `count` <= FEW,
    else the first. `choice` is an index, a list of indices or "all"."""
    if choice is None:
        return list(range(count)) if count <= FEW else [0]
    if choice == "all":
        return list(range(count))
    picked = [choice] if isinstance(choice, int) else list(choice)  # type: ignore[arg-type]
    bad = [i for i in picked if not isinstance(i, int) or not 0 <= i < count]
    if bad:
        raise MetadataError(f"{where}: no series {bad} (the collection holds {count})")
    return picked


def xml_series(reader: NodeReader, path: str) -> list[md.XmlImage]:
    """Images listed by the collection's OME-XML (empty when absent or unreadable)."""
    data = reader.loc.read_bytes(reader.loc.join(path, "OME", "METADATA.ome.xml"))
    if data is None:
        data = reader.loc.read_sidecar()
    return md.ome_xml_images(data, reader.loc.describe(path)) if data else []


def series_paths(reader: NodeReader, path: str, n_xml: int) -> list[str]:
    """Series group names: the OME group's `series` list, else one per OME-XML image,
    else the numbered child groups."""
    try:
        listed = md.ome_attributes(reader.group(reader.loc.join(path, "OME")).attrs).get("series")
    except Exception:  # the OME group is optional
        listed = None
    if isinstance(listed, list) and listed:
        return [str(s) for s in listed]
    if n_xml:
        return [str(i) for i in range(n_xml)]
    if reader.loc.listable:
        return sorted((k for k in reader.loc.child_names(path) if k.isdigit()), key=int)
    return ["0"]


def image_shape(reader: NodeReader, path: str, attrs: dict[str, Any]) -> tuple[Any, Any]:
    """(shape, dtype) of an image's full-resolution level from its metadata, or (None, None)."""
    ome = md.ome_attributes(attrs)
    if "multiscales" not in ome:
        return None, None
    try:
        ms = md.parse_multiscale(attrs, reader.loc.describe(path))
        array = reader.array(reader.loc.join(path, ms.paths[0]), reader.zarr_format)
    except Exception:  # the listing is informative; the image itself reports errors
        return None, None
    return tuple(int(n) for n in array.shape), str(array.dtype)


def fill_shapes(reader: NodeReader, listing: list[Series], nodes: dict[int, Node]) -> None:
    """Shapes and dtypes of listed series that lack them, from their metadata (side by side)."""
    missing = [s for s in listing if s.shape is None]

    def one(series: Series) -> tuple[Any, Any]:
        node = nodes.get(series.index) or reader.group(series.path)
        return image_shape(reader, series.path, node.attrs)

    results = parallel([lambda s=s: one(s) for s in missing])
    for series, result in zip(missing, results, strict=True):
        if not isinstance(result, Exception):
            series.shape, series.dtype = result


def read_bioformats2raw(reader: Any, path: str, choice: SeriesChoice) -> list[Image]:
    """The chosen series of a bioformats2raw collection, named from its OME-XML.

    `reader` is the dispatching `Reader` (it reads whatever node a series is).
    """
    where = reader.loc.describe(path)
    xml = xml_series(reader, path)
    paths = series_paths(reader, path, len(xml))
    listing = [
        Series(
            index=i,
            path=reader.loc.join(path, p),
            name=(xml[i].name or None) if i < len(xml) else None,
            shape=xml[i].shape if i < len(xml) else None,
            dtype=xml[i].dtype if i < len(xml) else None,
        )
        for i, p in enumerate(paths)
    ]
    opened = wanted(len(listing), choice, where)
    images, nodes, done = _read_series(reader, listing, opened)
    if not images and choice is None:
        # The first series is broken: the next readable one stands in for it.
        for index in range(len(opened), min(len(listing), len(opened) + _TRIES)):
            images, more, done = _read_series(reader, listing, [index])
            nodes.update(more)
            if images:
                break
    if not images:
        raise MetadataError(f"{where}: bioformats2raw collection holds no readable series")
    _attach(
        reader, Collection(reader.loc.root, path, "bioformats2raw", listing, done), nodes, images
    )
    return images


def _attach(
    reader: NodeReader, collection: Collection, nodes: dict[int, Node], images: list[Image]
) -> None:
    """Give the images opened from a collection of several its listing (shapes filled in)."""
    if len(collection.series) < 2 or not images:
        return
    fill_shapes(reader, collection.series, nodes)
    opened = {collection.series[i].path for i in collection.opened}
    for image in images:
        if image.path in opened:
            image.collection = collection


def _read_series(
    reader: Any, listing: list[Series], indices: list[int]
) -> tuple[list[Image], dict[int, Node], list[int]]:
    groups = reader.open_groups([listing[i].path for i in indices])
    images: list[Image] = []
    nodes: dict[int, Node] = {}
    done: list[int] = []
    for index, result in zip(indices, groups, strict=True):
        series = listing[index]
        if isinstance(result, Exception):
            warnings.warn(
                f"series skipped: {access_error(reader.loc.describe(series.path), result)}",
                NgffComplianceWarning,
                stacklevel=3,
            )
            continue
        nodes[index] = result
        try:
            found = reader.read_node(series.path, result)
        except OmeZarrXError as exc:
            warnings.warn(f"series skipped: {exc}", NgffComplianceWarning, stacklevel=3)
            continue
        for image in found:
            if image.path == series.path and series.name:
                image.name = series.name
        images.extend(found)
        done.append(index)
    return images, nodes, done


def group_collection(
    reader: Any,
    path: str,
    parent: Image | None,
    candidates: list[tuple[str, Node]],
    choice: SeriesChoice,
) -> list[Image]:
    """The images of a plain group (after `parent`, the image at `path` itself if any):
    the chosen ones read, all of them listed when there are several."""
    listing = []
    if parent is not None:
        shape = tuple(int(n) for n in parent.levels[0].shape)
        listing.append(Series(0, path, parent.name, shape, str(parent.levels[0].dtype)))
    for child_path, node in candidates:
        listing.append(Series(len(listing), child_path, _multiscale_name(node.attrs)))
    opened = wanted(len(listing), choice, reader.loc.describe(path))
    images: list[Image] = [parent] if parent is not None and 0 in opened else []
    done = [0] if images else []
    offset = 1 if parent is not None else 0
    for index in opened:
        if index < offset:
            continue
        child_path, node = candidates[index - offset]
        try:
            images.extend(reader.read_node(child_path, node))
            done.append(index)
        except OmeZarrXError as exc:
            warnings.warn(f"nested image skipped: {exc}", NgffComplianceWarning, stacklevel=3)
    nodes = {i + offset: node for i, (_, node) in enumerate(candidates)}
    _attach(reader, Collection(reader.loc.root, path, "group", listing, done), nodes, images)
    return images


def _multiscale_name(attrs: dict[str, Any]) -> str | None:
    multiscales = md.ome_attributes(attrs).get("multiscales")
    first = multiscales[0] if isinstance(multiscales, list) and multiscales else None
    name = first.get("name") if isinstance(first, dict) else None
    return str(name).strip("/") or None if name else None
