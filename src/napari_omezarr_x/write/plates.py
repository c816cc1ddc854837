"""Write HCS plates: plate and well metadata, every field an image, labels per field.

`write_plate` lays out `<row>/<column>/<field>` groups, makes one plan per field
image and per label image (the same plans, pyramids and one-pass execution as
`write_image`), and builds the whole store in a staging folder moved into place
when complete (see `stores`). `mosaic_wells` turns the layers of a plate as the
reader shows it (a `field` axis, wells tiled on the grid) back into wells, which
is how napari saves plate layers as a plate.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from napari_omezarr_x.model import Axis, Channel, Plate
from napari_omezarr_x.storage import StoreLike

from . import pyramid
from .documents import group_attrs, plate_json, well_json
from .existing import label_axes
from .layout import LayerInput, plan_layout
from .plan import CLEVEL, Plan, Progress, is_multiscale, make_plan
from .stores import ImageSpec, LabelsSpec, _check_version, _label_method
from .targets import resolve_target, write_plans

_NAME = re.compile(r"[A-Za-z0-9]+")


@dataclass
class FieldSpec(ImageSpec):
    """One field image of a well. `group` is its path in the well (default: its
    index); unset axes, units, scale, translate and channels take the plate's.
    `labels` are written to `labels/<name>` of the field."""

    acquisition: int | None = None
    labels: Sequence[LabelsSpec] = field(default_factory=list)


@dataclass
class WellSpec:
    """One well: its row and column names and its fields (FieldSpecs or arrays)."""

    row: str
    column: str
    fields: Sequence[FieldSpec | Any] = field(default_factory=list)


def _natural(names: set[str]) -> list[str]:
    """Row or column names in plate order: A..Z before AA, 2 before 10."""
    return sorted(names, key=lambda n: (len(n), n) if not n.isdigit() else (0, f"{int(n):09d}"))


def _check_name(name: str, what: str) -> str:
    name = str(name)
    if not _NAME.fullmatch(name):
        raise ValueError(f"{what} {name!r}: OME-NGFF allows letters and digits only")
    return name


def write_plate(
    path: StoreLike,
    wells: Sequence[WellSpec],
    *,
    rows: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    name: str | None = None,
    acquisitions: Sequence[dict[str, Any]] = (),
    axes: Sequence[str | Axis] | str | None = None,
    units: Sequence[str | None] | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    channels: Sequence[Channel] | None = None,
    version: str = "0.5",
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | bool | None = None,
    compression: str | None = "zstd",
    clevel: int = CLEVEL,
    levels: int | None = None,
    downsample: pyramid.Method = "mean",
    label_downsample: pyramid.Method = "mode",
    progress: Progress | None = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    scheduler: Any = None,
) -> str:
    """Write an HCS plate (OME-NGFF 0.4 or 0.5) at `path`; return the path.

    Each well is `<row>/<column>`, each field `<row>/<column>/<field>` with
    its pyramid as `write_image` makes it, and each field's labels under its
    `labels/`. `rows`/`columns` list the plate's grid (default: the names the
    wells use, in plate order); `acquisitions` are dicts with an integer `id`
    (and `name`, `description`, ...) that fields refer to. The other arguments
    apply to every field, as in `write_image`, unless a FieldSpec sets its own;
    `path` (a folder or an object-store URL), `storage_options` and `scheduler` as
    in write_image: the plate appears whole or not at all.
    """
    version = _check_version(version)
    if not wells:
        raise ValueError(f"{path}: a plate needs at least one well")
    row_names = [_check_name(r, "row") for r in rows or _natural({w.row for w in wells})]
    col_names = [_check_name(c, "column") for c in columns or _natural({w.column for w in wells})]
    known = {int(a["id"]) for a in acquisitions}
    options = {
        "version": version,
        "chunks": chunks,
        "shards": shards,
        "compression": compression,
        "clevel": clevel,
    }
    defaults = {
        "axes": axes,
        "units": units,
        "scale": scale,
        "translate": translate,
        "channels": channels,
    }
    plans: list[Plan] = []
    groups: dict[str, dict[str, Any]] = {}
    placed: list[tuple[str, int, int]] = []
    for well in wells:
        row, col = str(well.row), str(well.column)
        if row not in row_names or col not in col_names:
            raise ValueError(f"well {row}/{col}: not on the plate's grid {row_names} x {col_names}")
        well_path = f"{row}/{col}"
        if well_path in groups:
            raise ValueError(f"well {well_path} is given twice")
        images = []
        for index, item in enumerate(well.fields):
            spec = item if isinstance(item, FieldSpec) else FieldSpec(data=item)
            field_path = _check_name(spec.group or str(index), f"field of well {well_path}")
            if any(p == field_path for p, _ in images):
                raise ValueError(f"well {well_path}: two fields named {field_path!r}")
            if spec.acquisition is not None and spec.acquisition not in known:
                raise ValueError(
                    f"well {well_path} field {field_path}: acquisition {spec.acquisition} is not "
                    f"among the plate's acquisitions {sorted(known)}"
                )
            images.append((field_path, spec.acquisition))
            plans.extend(
                _field_plans(
                    f"{well_path}/{field_path}",
                    spec,
                    defaults,
                    options,
                    levels,
                    downsample,
                    label_downsample,
                )
            )
        if not images:
            raise ValueError(f"well {well_path} has no field")
        groups[well_path] = group_attrs(version, {"well": well_json(images, version)})
        placed.append((well_path, row_names.index(row), col_names.index(col)))
    field_count = max(len(w.fields) for w in wells)
    groups[""] = group_attrs(
        version,
        {
            "plate": plate_json(
                name, row_names, col_names, placed, field_count, acquisitions, version
            )
        },
    )
    target = resolve_target(path, storage_options)
    write_plans(target, plans, progress, overwrite, scheduler, groups)
    return target.text


def _field_plans(
    rel: str,
    spec: FieldSpec,
    defaults: dict[str, Any],
    options: dict[str, Any],
    levels: int | None,
    downsample: pyramid.Method,
    label_downsample: pyramid.Method,
) -> list[Plan]:
    """The plan of one field image and of each of its label images."""

    def pick(key: str) -> Any:
        value = getattr(spec, key)
        return value if value is not None else defaults[key]

    image = make_plan(
        rel,
        spec.data,
        axes=pick("axes"),
        units=pick("units"),
        scale=pick("scale"),
        translate=pick("translate"),
        name=spec.name,
        channels=pick("channels"),
        levels=levels,
        downsample=downsample,
        **options,
    )
    plans = [image]
    seen: set[str] = set()
    for label in spec.labels:
        if label.name in seen:
            raise ValueError(f"{rel}: two label images named {label.name!r}")
        seen.add(label.name)
        keep, geometry = _label_geometry(rel, image, label)
        plans.append(
            make_plan(
                f"{rel}/labels/{label.name}",
                label.data,
                name=label.name,
                downsample=_label_method(label_downsample),
                label={"properties": list(label.properties), "source": "../../"},
                colors=label.colors,
                factors=[tuple(f[i] for i in keep) for f in image.factors],
                **geometry,
                **options,
            )
        )
    return plans


def _label_geometry(rel: str, image: Plan, label: LabelsSpec) -> tuple[list[int], dict[str, Any]]:
    """Which of the field's axes a label image has, and its axes, units, scale and
    translation: its own where given, else the field's (scale stretched when the
    labels have another resolution than the field)."""
    first = label.data[0] if is_multiscale(label.data) else label.data
    shape = tuple(int(n) for n in first.shape)
    field_shape = tuple(int(n) for n in image.levels[0].shape)
    keep = label_axes(image.axes, field_shape, shape)
    if keep is None:
        names = "".join(a.name for a in image.axes)
        raise ValueError(
            f"{rel}: labels {label.name!r} of shape {shape} do not fit the field of shape "
            f"{field_shape} (axes {names}): give its axes, leaving out only the channel axis"
        )
    ratio = [field_shape[i] / n for i, n in zip(keep, shape, strict=True)]
    return keep, {
        "axes": label.axes if label.axes is not None else [image.axes[i] for i in keep],
        "units": label.units,
        "scale": label.scale
        if label.scale is not None
        else [image.scale[i] * r for i, r in zip(keep, ratio, strict=True)],
        "translate": label.translate
        if label.translate is not None
        else [image.translate[i] for i in keep],
    }


def mosaic_wells(plate: Plate, layers: Sequence[LayerInput]) -> list[WellSpec]:
    """Wells of a plate from the layers showing it (napari's image layers of its
    channels and its labels layers, as the reader made them: a `field` axis first,
    wells tiled on the grid). Every field each well lists is cut out of level 0
    at the plate's tile size (the first field's: smaller fields come out padded,
    larger ones cropped, as the mosaic shows them); the layers of one field are
    then laid out as any layer selection is (`layout.plan_layout`)."""
    n_rows, n_cols = len(plate.rows), len(plate.columns)
    level0 = [_aligned(_first(layer.data), n_rows, n_cols) for layer in layers]
    wells = []
    for well in plate.wells:
        fields = []
        for f, field_path in enumerate(well.fields):
            tiles = [
                replace(
                    layer,
                    data=_tile(data, f, well, n_rows, n_cols),
                    axis_labels=_rest(layer.axis_labels),
                    units=_rest(layer.units),
                    scale=_rest(layer.scale),
                    translate=_rest(layer.translate),
                )
                for layer, data in zip(layers, level0, strict=True)
                if f < data.shape[0]
            ]
            if not tiles:
                continue
            images, labels = plan_layout(tiles)
            if len(images) != 1 or any(lab.image_group != "" for lab in labels):
                raise ValueError(
                    f"plate layers of {plate.well_name(well)} field {f} do not make one image "
                    "with its labels: save layers of one plate with the same shapes"
                )
            (image,) = images
            fields.append(
                FieldSpec(
                    **{k: getattr(image, k) for k in _IMAGE_KEYS},
                    group=field_path,
                    acquisition=well.acquisitions[f] if f < len(well.acquisitions) else None,
                    labels=labels,
                )
            )
        if fields:
            wells.append(WellSpec(plate.rows[well.row], plate.columns[well.column], fields))
    return wells


_IMAGE_KEYS = ("data", "axes", "units", "scale", "translate", "name", "channels")


def _first(data: Any) -> Any:
    return data[0] if is_multiscale(data) else data


def _rest(values: Sequence[Any] | None) -> list[Any] | None:
    """Per-axis values without the leading `field` axis."""
    return None if values is None else list(values)[1:]


def _aligned(mosaic: Any, n_rows: int, n_cols: int) -> Any:
    """A dask mosaic whose blocks never straddle two wells (rechunked once if needed),
    so that a block holding several small tiles is read once, not once per well."""
    import dask.array as da

    if not isinstance(mosaic, da.Array):
        return mosaic
    ty, tx = mosaic.shape[-2] // n_rows, mosaic.shape[-1] // n_cols
    ends_y = set(itertools.accumulate(mosaic.chunks[-2]))
    ends_x = set(itertools.accumulate(mosaic.chunks[-1]))
    if all(ty * k in ends_y for k in range(1, n_rows + 1)) and all(
        tx * k in ends_x for k in range(1, n_cols + 1)
    ):
        return mosaic
    return mosaic.rechunk({mosaic.ndim - 2: ty, mosaic.ndim - 1: tx})


def _tile(mosaic: Any, f: int, well: Any, n_rows: int, n_cols: int) -> Any:
    """Field `f` of `well` cut out of a mosaic level."""
    ty, tx = mosaic.shape[-2] // n_rows, mosaic.shape[-1] // n_cols
    rows = slice(well.row * ty, (well.row + 1) * ty)
    cols = slice(well.column * tx, (well.column + 1) * tx)
    return mosaic[(f, Ellipsis, rows, cols)]


def write_plate_layers(
    path: StoreLike,
    plate: Plate,
    layers: Sequence[LayerInput],
    *,
    version: str = "0.5",
    progress: Progress | None = None,
    overwrite: bool = False,
    **options: Any,
) -> str:
    """Save the layers of one plate (see `mosaic_wells`) as an OME-Zarr plate: the
    fields on display (one acquisition when the plate has several), with as many
    pyramid levels as the layers have, recomputed from level 0. `options`
    (compression, shards, storage_options, scheduler) go to `write_plate`."""
    wells = mosaic_wells(plate, layers)
    if not wells:
        raise ValueError(f"{path}: the plate layers hold no field to save")
    return write_plate_like(
        plate,
        path,
        wells,
        version=version,
        levels=max(len(layer.data) if is_multiscale(layer.data) else 1 for layer in layers),
        progress=progress,
        overwrite=overwrite,
        **options,
    )


def write_plate_like(
    plate: Plate, path: StoreLike, wells: Sequence[WellSpec], **options: Any
) -> str:
    """Write `wells` as a plate with the rows, columns, name and acquisitions of `plate`
    (every acquisition a field names included); `options` go to `write_plate`."""
    return write_plate(
        path,
        wells,
        rows=plate.rows,
        columns=plate.columns,
        name=plate.name,
        acquisitions=complete_acquisitions(plate.acquisitions, wells),
        **options,
    )


def complete_acquisitions(
    listed: Sequence[dict[str, Any]], wells: Sequence[WellSpec]
) -> list[dict[str, Any]]:
    """`listed` acquisitions plus an `{"id": n}` entry for each id a field uses that the
    list lacks (a plate read from a store whose wells name acquisitions it does not list)."""
    known = {int(a["id"]) for a in listed}
    used = {
        f.acquisition
        for w in wells
        for f in w.fields
        if isinstance(f, FieldSpec) and f.acquisition is not None
    }
    return [*listed, *({"id": a} for a in sorted(used - known))]
