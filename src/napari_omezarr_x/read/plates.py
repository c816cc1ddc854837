"""High-content screening: plates and wells as lazy mosaics.

A plate becomes one Image whose levels tile each well's first field on the
plate's row/column grid (and one mosaic per label name); a well becomes its
fields tiled on a near-square grid. Tiles are joined with `dask.array.block`;
missing wells are lazy constant blocks, so they cost no memory.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_omezarr_x.errors import MetadataError, NgffComplianceWarning, OmeZarrXError
from napari_omezarr_x.model import Image
from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.storage import parallel

from .images import ImageReader
from .nodes import Node

Grid = dict[tuple[int, int], Image]


def _names(entries: Any) -> list[str]:
    if not isinstance(entries, list):
        return []
    return [str(e.get("name")) if isinstance(e, dict) else str(e) for e in entries]


def _well_position(
    well: dict[str, Any], rows: list[str], cols: list[str]
) -> tuple[int, int] | None:
    row, col = well.get("rowIndex"), well.get("columnIndex")
    if isinstance(row, int) and isinstance(col, int):
        return row, col
    # Before 0.4 wells carried only their path "<row>/<column>".
    parts = str(well.get("path", "")).split("/")
    if len(parts) == 2 and parts[0] in rows and parts[1] in cols:
        return rows.index(parts[0]), cols.index(parts[1])
    return None


def _field_paths(attrs: dict[str, Any]) -> list[str]:
    well = md.ome_attributes(attrs).get("well")
    images = well.get("images") if isinstance(well, dict) else None
    if not isinstance(images, list):
        return []
    return [str(i["path"]).strip("/") for i in images if isinstance(i, dict) and "path" in i]


def _read_fields(reader: ImageReader, paths: list[str]) -> list[Image | None]:
    """Images at `paths` read concurrently; a broken one gives None.

    Fields of one plate usually share their flaws (the same odd unit in 384
    wells): warnings are summarised, one per distinct problem, with a count.
    """
    wheres = [reader.loc.describe(p) for p in paths]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NgffComplianceWarning)
        results = parallel([lambda p=p: reader.read_image(p, reader.group(p)) for p in paths])
    images: list[Image | None] = []
    for where, result in zip(wheres, results, strict=True):
        if isinstance(result, Exception):
            message = str(result) if isinstance(result, OmeZarrXError) else f"{where}: {result}"
            warnings.warn(f"field skipped: {message}", NgffComplianceWarning, stacklevel=2)
            images.append(None)
        else:
            images.append(result)
    problems: dict[tuple[type[Warning], str], list[str]] = {}
    for record in caught:
        if not issubclass(record.category, NgffComplianceWarning):
            warnings.warn(record.message, record.category, stacklevel=2)
            continue
        text = str(record.message)
        for where in sorted(wheres, key=len, reverse=True):
            text = text.replace(where, "<field>")
        problems.setdefault((record.category, text), []).append(str(record.message))
    for (category, text), originals in problems.items():
        if len(originals) == 1:
            warnings.warn(originals[0], category, stacklevel=2)
        else:
            warnings.warn(
                f"{len(originals)} fields of {len(paths)}: {text}", category, stacklevel=2
            )
    return images


def _fit(level: Any, tile: tuple[int, ...]) -> Any:
    """`level` cropped or padded with zeros to the tile shape."""
    import dask.array as da

    level = level[tuple(slice(0, t) for t in tile)]
    pad = [(0, t - s) for s, t in zip(level.shape, tile, strict=True)]
    return da.pad(level, pad, mode="constant") if any(p for _, p in pad) else level


def _mosaic_levels(grid: dict[tuple[int, int], list[Any]], n_rows: int, n_cols: int) -> list[Any]:
    """Tile each level of the grid's arrays over the last two axes."""
    import dask.array as da

    first = next(iter(grid.values()))
    n_levels = min(len(levels) for levels in grid.values())
    dtype = first[0].dtype
    mosaic = []
    for level in range(n_levels):
        shapes = [levels[level].shape for levels in grid.values()]
        tile = tuple(int(v) for v in np.max(shapes, axis=0))
        chunks = first[level].chunksize
        empty = da.zeros(
            tile, dtype=dtype, chunks=tuple(min(c, t) for c, t in zip(chunks, tile, strict=True))
        )
        blocks = [
            [
                _fit(grid[(r, c)][level].astype(dtype), tile) if (r, c) in grid else empty
                for c in range(n_cols)
            ]
            for r in range(n_rows)
        ]
        mosaic.append(da.block(blocks))
    return mosaic


def _labels_mosaic(grid: Grid, n_rows: int, n_cols: int, template: Image) -> list[Image]:
    """One mosaic per label name found in any tile."""
    names: list[str] = []
    for image in grid.values():
        names += [lab.name for lab in image.labels if lab.name not in names and lab.name]
    labels = []
    for name in names:
        tiles = {
            pos: next(lab for lab in img.labels if lab.name == name)
            for pos, img in grid.items()
            if any(lab.name == name for lab in img.labels)
        }
        first = next(iter(tiles.values()))
        if len({lab.levels[0].ndim for lab in tiles.values()}) != 1:
            warnings.warn(
                f"{template.store}/{template.path}: label {name!r} has different numbers of "
                "dimensions in different fields; not shown",
                NgffComplianceWarning,
                stacklevel=2,
            )
            continue
        levels = _mosaic_levels({p: lab.levels for p, lab in tiles.items()}, n_rows, n_cols)
        labels.append(
            Image(
                store=template.store,
                path=template.path,
                version=first.version,
                name=name,
                axes=first.axes,
                levels=levels,
                scale=first.scale,
                translate=first.translate,
                affine=first.affine,
                label=first.label,
                attrs=first.attrs,
                kind="labels",
            )
        )
    return labels


def mosaic(grid: Grid, n_rows: int, n_cols: int, *, template: Image, kind: str) -> Image:
    """An Image tiling `grid`'s images; scale, axes and channels come from the first tile."""
    first = next(iter(grid.values()))
    if {img.ndim for img in grid.values()} != {first.ndim} or first.ndim < 2:
        raise MetadataError(
            f"{template.store}/{template.path}: fields have different numbers of dimensions"
        )
    return Image(
        store=template.store,
        path=template.path,
        version=template.version or first.version,
        name=template.name,
        axes=first.axes,
        levels=_mosaic_levels({p: img.levels for p, img in grid.items()}, n_rows, n_cols),
        scale=first.scale,
        translate=first.translate,
        affine=first.affine,
        channels=first.channels,
        labels=_labels_mosaic(grid, n_rows, n_cols, template),
        attrs=template.attrs,
        kind=kind,
    )


@dataclass
class PlateLayout:
    """A plate's grid: row and column names and each well's (row, column) position."""

    name: str | None
    version: str
    rows: list[str]
    columns: list[str]
    wells: dict[str, tuple[int, int]]


def parse_plate(attrs: dict[str, Any], where: str) -> PlateLayout:
    """The `plate` block; wells without a usable position are skipped with a warning."""
    ome = md.ome_attributes(attrs)
    plate = ome.get("plate")
    if not isinstance(plate, dict):
        raise MetadataError(f"{where}: 'plate' is not an object")
    rows, cols = _names(plate.get("rows")), _names(plate.get("columns"))
    raw_wells = plate.get("wells")
    wells = [w for w in raw_wells or [] if isinstance(w, dict) and "path" in w]
    if not rows or not cols or not wells:
        raise MetadataError(f"{where}: plate needs non-empty 'rows', 'columns' and 'wells'")
    positions = {}
    for well in wells:
        pos = _well_position(well, rows, cols)
        if pos is None or not (0 <= pos[0] < len(rows) and 0 <= pos[1] < len(cols)):
            warnings.warn(
                f"{where}: well {well!r} has no valid row/column; skipped",
                NgffComplianceWarning,
                stacklevel=2,
            )
            continue
        positions[str(well["path"]).strip("/")] = pos
    name = plate.get("name")
    version = plate.get("version") or ome.get("version") or ""
    return PlateLayout(str(name) if name else None, str(version), rows, cols, positions)


def read_plate(reader: ImageReader, path: str, group: Node) -> Image:
    """A plate as a mosaic of each well's first field (field index 0)."""
    attrs = group.attrs
    where = reader.loc.describe(path)
    layout = parse_plate(attrs, where)
    positions = {reader.loc.join(path, w): pos for w, pos in layout.wells.items()}
    well_groups = reader.open_groups(list(positions))
    field_paths, field_pos = [], []
    for (well_path, pos), result in zip(positions.items(), well_groups, strict=True):
        fields = [] if isinstance(result, Exception) else _field_paths(result.attrs)
        if not fields:
            warnings.warn(
                f"{reader.loc.describe(well_path)}: well unreadable or without fields; shown empty",
                NgffComplianceWarning,
                stacklevel=2,
            )
            continue
        field_paths.append(reader.loc.join(well_path, fields[0]))
        field_pos.append(pos)
    grid = {
        pos: image
        for pos, image in zip(field_pos, _read_fields(reader, field_paths), strict=True)
        if image is not None
    }
    if not grid:
        raise MetadataError(f"{where}: no well of the plate holds a readable image")
    template = _template(reader, path, layout.version, layout.name, md.ome_attributes(attrs))
    return mosaic(grid, len(layout.rows), len(layout.columns), template=template, kind="plate")


def read_well(reader: ImageReader, path: str, group: Node) -> Image:
    """A well as its fields tiled on a near-square grid, row by row."""
    attrs = group.attrs
    where = reader.loc.describe(path)
    fields = _field_paths(attrs)
    if not fields:
        raise MetadataError(f"{where}: well lists no images")
    n_cols = math.ceil(math.sqrt(len(fields)))
    n_rows = math.ceil(len(fields) / n_cols)
    images = _read_fields(reader, [reader.loc.join(path, f) for f in fields])
    grid = {divmod(i, n_cols): img for i, img in enumerate(images) if img is not None}
    if not grid:
        raise MetadataError(f"{where}: no field of the well holds a readable image")
    ome = md.ome_attributes(attrs)
    well = ome.get("well") or {}
    version = well.get("version") if isinstance(well, dict) else None
    name = re.sub(r"^/+", "", path) or None
    template = _template(reader, path, str(version or ome.get("version") or ""), name, ome)
    return mosaic(grid, n_rows, n_cols, template=template, kind="well")


def _template(
    reader: ImageReader, path: str, version: str, name: Any, ome: dict[str, Any]
) -> Image:
    return Image(
        store=reader.loc.root,
        path=path,
        version=version,
        name=str(name) if name else None,
        axes=(),
        levels=[],
        scale=(),
        translate=(),
        attrs=ome,
    )
