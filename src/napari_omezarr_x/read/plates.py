"""High-content screening: plates and wells with every field on a `field` axis.

A plate becomes one Image of axes (field, *field axes): index f of the first
axis holds field f of every well, each well's tile placed on the plate's
row/column grid (see `mosaic`). Opening reads the plate and well documents and
the first field only; every other field is opened when a view first needs it,
so a 384-well plate opens in a few round trips. A well on its own becomes its
fields stacked on the same `field` axis, read in full (a well has few fields).
Labels follow the same layout. Plates with several acquisitions show one at a
time (the first by default).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_omezarr_x.errors import MetadataError, NgffComplianceWarning, OmeZarrXError
from napari_omezarr_x.model import Axis, Image, Plate, Well
from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.storage import parallel

from .images import ImageReader
from .mosaic import FieldSource, MosaicLevel, mosaic_array, stack_fields
from .nodes import Node

#: Well documents read at once where they go through zarr (stores without a batch
#: read): a 384-well plate then takes 12 round trips, not 24.
WELL_WORKERS = 32
#: How many wells are tried for the plate's first readable field.
_TEMPLATE_TRIES = 8
#: The `acquisition` argument that shows every field whatever its acquisition.
ALL = "all"

Acquisition = int | str | None


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


def well_images(attrs: dict[str, Any]) -> list[tuple[str, int | None]]:
    """(path, acquisition id) of every image a well lists."""
    well = md.ome_attributes(attrs).get("well")
    images = well.get("images") if isinstance(well, dict) else None
    if not isinstance(images, list):
        return []
    out = []
    for image in images:
        if isinstance(image, dict) and "path" in image:
            acq = image.get("acquisition")
            acq = acq if isinstance(acq, int) and not isinstance(acq, bool) else None
            out.append((str(image["path"]).strip("/"), acq))
    return out


@dataclass
class PlateLayout:
    """A plate's `plate` block: grid names, well positions and acquisitions."""

    name: str | None
    version: str
    rows: list[str]
    columns: list[str]
    wells: dict[str, tuple[int, int]]
    acquisitions: list[dict[str, Any]] = field(default_factory=list)


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
    acquisitions = [
        {k: v for k, v in a.items() if isinstance(v, str | int | float | bool)}
        for a in plate.get("acquisitions") or []
        if isinstance(a, dict) and isinstance(a.get("id"), int)
    ]
    name = plate.get("name")
    version = plate.get("version") or ome.get("version") or ""
    title = str(name) if name else None
    return PlateLayout(title, str(version), rows, cols, positions, acquisitions)


def choose_acquisition(
    layout: PlateLayout, images: list[list[tuple[str, int | None]]], wanted: Acquisition, where: str
) -> int | None:
    """The acquisition to show: `wanted`, or by default the first one listed when the
    plate has several that its wells use; None means every field."""
    used = {acq for well in images for _, acq in well if acq is not None}
    if wanted == ALL:
        return None
    if wanted is not None:
        if not isinstance(wanted, int) or wanted not in used:
            known = sorted(used) or "none"
            raise MetadataError(f"{where}: no field belongs to acquisition {wanted!r} ({known})")
        return wanted
    listed = [a["id"] for a in layout.acquisitions if a["id"] in used]
    return listed[0] if len(listed) > 1 else None


def read_plate(
    reader: ImageReader, path: str, group: Node, acquisition: Acquisition = None
) -> Image:
    """A plate with every field of the chosen acquisition on a `field` axis."""
    where = reader.loc.describe(path)
    layout = parse_plate(group.attrs, where)
    plate = read_layout(reader, path, layout, acquisition)
    template = _template(reader, plate)
    return _mosaic(reader, plate, template, md.ome_attributes(group.attrs))


def read_layout(
    reader: ImageReader, path: str, layout: PlateLayout, acquisition: Acquisition = None
) -> Plate:
    """The plate's wells with their fields, from every well's document (read side by side)."""
    where = reader.loc.describe(path)
    paths = list(layout.wells)
    docs = reader.group_attrs([reader.loc.join(path, p) for p in paths], WELL_WORKERS)
    images: list[list[tuple[str, int | None]]] = []
    broken = []
    for well_path, result in zip(paths, docs, strict=True):
        if isinstance(result, Exception):
            broken.append(well_path)
            images.append([])
        else:
            images.append(well_images(result))
    empty = [p for p, imgs in zip(paths, images, strict=True) if not imgs and p not in broken]
    for label, which in (("missing or unreadable", broken), ("without fields", empty)):
        if which:
            warnings.warn(
                f"{where}: {len(which)} well(s) {label}, shown empty: {', '.join(which[:5])}"
                + (" ..." if len(which) > 5 else ""),
                NgffComplianceWarning,
                stacklevel=3,
            )
    chosen = choose_acquisition(layout, images, acquisition, where)
    wells = []
    for well_path, imgs in zip(paths, images, strict=True):
        kept = [(p, a) for p, a in imgs if chosen is None or a == chosen]
        row, col = layout.wells[well_path]
        wells.append(Well(well_path, row, col, [p for p, _ in kept], [a for _, a in kept]))
    wells.sort(key=lambda w: (w.row, w.column))
    n_fields = max((len(w.fields) for w in wells), default=0)
    if n_fields == 0:
        raise MetadataError(f"{where}: no well of the plate lists an image")
    return Plate(
        store=reader.loc.root,
        path=path,
        name=layout.name,
        version=layout.version,
        rows=layout.rows,
        columns=layout.columns,
        wells=wells,
        tile=(),
        field_count=n_fields,
        acquisitions=layout.acquisitions,
        acquisition=chosen,
    )


def _template(reader: ImageReader, plate: Plate) -> Image:
    """The first readable field (tried in a few wells): its shape and metadata stand for all."""
    candidates = [w for w in plate.wells if w.fields][:_TEMPLATE_TRIES]
    errors = []
    for well in candidates:
        field_path = reader.loc.join(plate.path, well.path, well.fields[0])
        try:
            image = reader.read_image(field_path, reader.group(field_path))
        except Exception as exc:  # try the next well; all failing is an error below
            errors.append(str(exc) if isinstance(exc, OmeZarrXError) else f"{field_path}: {exc}")
            continue
        for message in errors:
            warnings.warn(f"field skipped: {message}", NgffComplianceWarning, stacklevel=3)
        if image.ndim < 2:
            raise MetadataError(f"{reader.loc.describe(field_path)}: fields need 2 or more axes")
        plate.tile = tuple(int(n) for n in image.levels[0].shape)
        return image
    raise MetadataError(
        f"{reader.loc.describe(plate.path)}: no readable field in the first "
        f"{len(candidates)} wells: {'; '.join(errors[:3])}"
    )


def _field_axis(image: Image) -> dict[str, Any]:
    """Axes, scale, translate and affine of `image` with a `field` axis in front."""
    affine = None
    if image.affine is not None:
        mat = np.asarray(image.affine, dtype=float)
        affine = np.eye(mat.shape[0] + 1)
        affine[1:, 1:] = mat
    return {
        "axes": (Axis("field"), *image.axes),
        "scale": (1.0, *image.scale),
        "translate": (0.0, *image.translate),
        "affine": affine,
    }


def _mosaic(reader: ImageReader, plate: Plate, template: Image, attrs: dict[str, Any]) -> Image:
    """The plate image and its label images as lazy mosaics of every field."""
    grid = (len(plate.rows), len(plate.columns))
    where = reader.loc.describe(plate.path)
    fields = {
        (f, w.row, w.column): reader.loc.join(plate.path, w.path, p)
        for w in plate.wells
        for f, p in enumerate(w.fields)
    }

    def levels(image: Image, suffix: str) -> list[Any]:
        sources = {
            key: FieldSource(reader, reader.loc.join(path, suffix), image.level_paths)
            for key, path in fields.items()
        }
        return [
            mosaic_array(
                MosaicLevel(sources, k, level.shape, grid, plate.field_count, level.dtype, where),
                level.chunksize,
            )
            for k, level in enumerate(image.levels)
        ]

    labels = [
        Image(
            store=reader.loc.root,
            path=plate.path,
            version=label.version,
            name=label.name,
            levels=levels(label, f"labels/{label.path.rsplit('/', 1)[-1]}"),
            channels=[],
            label=label.label,
            attrs=label.attrs,
            kind="labels",
            plate=plate,
            **_field_axis(label),
        )
        for label in template.labels
    ]
    return Image(
        store=reader.loc.root,
        path=plate.path,
        version=plate.version or template.version,
        name=plate.name,
        levels=levels(template, ""),
        channels=template.channels,
        labels=labels,
        attrs=attrs,
        kind="plate",
        plate=plate,
        **_field_axis(template),
    )


def _read_fields(reader: ImageReader, paths: list[str]) -> list[Image | None]:
    """Images at `paths` read concurrently; a broken one gives None.

    Fields of one well usually share their flaws (the same odd unit in every
    field): warnings are summarised, one per distinct problem, with a count.
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


def read_well(
    reader: ImageReader, path: str, group: Node, acquisition: Acquisition = None
) -> Image:
    """A well: its fields (of `acquisition`, default all) at full size on a `field` axis."""
    where = reader.loc.describe(path)
    listed = well_images(group.attrs)
    if acquisition not in (None, ALL):
        listed = [(p, a) for p, a in listed if a == acquisition]
    if not listed:
        raise MetadataError(f"{where}: well lists no images" + _of(acquisition))
    images = _read_fields(reader, [reader.loc.join(path, p) for p, _ in listed])
    present = [img for img in images if img is not None]
    if not present:
        raise MetadataError(f"{where}: no field of the well holds a readable image")
    first = present[0]
    if len({img.ndim for img in present}) != 1:
        raise MetadataError(f"{where}: fields have different numbers of dimensions")
    levels = stack_fields([None if i is None else i.levels for i in images], first.levels[0].dtype)
    parts = path.strip("/").split("/")
    row, column = (parts[-2], parts[-1]) if len(parts) >= 2 else (parts[-1], "")
    plate = Plate(
        store=reader.loc.root,
        path=path,
        name=None,
        version=first.version,
        rows=[row],
        columns=[column],
        wells=[Well(path, 0, 0, [p for p, _ in listed], [a for _, a in listed])],
        tile=tuple(int(n) for n in levels[0].shape[1:]),
        field_count=len(listed),
        acquisition=acquisition if isinstance(acquisition, int) else None,
    )
    ome = md.ome_attributes(group.attrs)
    well_meta = ome.get("well") if isinstance(ome.get("well"), dict) else {}
    version = str(well_meta.get("version") or ome.get("version") or first.version)
    return Image(
        store=reader.loc.root,
        path=path,
        version=version,
        name=path.strip("/") or None,
        levels=levels,
        channels=first.channels,
        labels=_stacked_labels(images, plate, where),
        attrs=ome,
        kind="well",
        plate=plate,
        **_field_axis(first),
    )


def _of(acquisition: Acquisition) -> str:
    return f" of acquisition {acquisition}" if acquisition not in (None, ALL) else ""


def _stacked_labels(images: list[Image | None], plate: Plate, where: str) -> list[Image]:
    """One stacked label image per label name found in any field."""
    names: list[str] = []
    for image in images:
        for lab in image.labels if image is not None else []:
            if lab.name and lab.name not in names:
                names.append(lab.name)
    out = []
    for name in names:
        per_field = [
            next((lab for lab in img.labels if lab.name == name), None) if img else None
            for img in images
        ]
        present = [lab for lab in per_field if lab is not None]
        first = present[0]
        if len({lab.ndim for lab in present}) != 1:
            warnings.warn(
                f"{where}: label {name!r} has different numbers of dimensions in different "
                "fields; not shown",
                NgffComplianceWarning,
                stacklevel=3,
            )
            continue
        levels = stack_fields(
            [None if lab is None else lab.levels for lab in per_field], first.levels[0].dtype
        )
        out.append(
            Image(
                store=first.store,
                path=plate.path,
                version=first.version,
                name=name,
                levels=levels,
                label=first.label,
                attrs=first.attrs,
                kind="labels",
                plate=plate,
                **_field_axis(first),
            )
        )
    return out


def read_fields(reader: ImageReader, plate: Plate) -> list[list[Image | None]]:
    """Every field image of every well of `plate` (full metadata, lazy pixels), read
    side by side; per well, in its field order, None where a field is unreadable."""
    paths = [reader.loc.join(plate.path, w.path, f) for w in plate.wells for f in w.fields]
    images = iter(_read_fields(reader, paths))
    return [[next(images) for _ in w.fields] for w in plate.wells]
