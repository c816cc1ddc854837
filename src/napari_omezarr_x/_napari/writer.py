"""npe2 writer hooks: save image and labels layers as OME-Zarr.

napari calls `write_layers(path, [(data, meta, layer_type), ...])` for a
multi-layer selection and `write_image` / `write_labels(path, data, meta)`
for a single layer. The layer metadata is turned into plain values and the
core writer (`napari_omezarr_x.write`, `layout`) does the rest. Saving only
labels layers onto an existing OME-Zarr image adds them under its `labels/`;
labels layers being edited (see editing.py) saved onto the store they came
from are saved in place, rewriting only what changed; the layers of one plate
are saved as a plate (`write.plates`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_omezarr_x._napari.image_layers import with_colormap_name
from napari_omezarr_x.errors import SaveError
from napari_omezarr_x.model import Channel
from napari_omezarr_x.storage import url_scheme
from napari_omezarr_x.write import EditableLabels, add_labels, is_image, write_store
from napari_omezarr_x.write.layout import LayerInput, group_name, plan_layout
from napari_omezarr_x.write.plates import write_plate_layers

from .plates import is_well_names, plate_of

log = logging.getLogger(__name__)

SUFFIX = ".ome.zarr"
#: Appended to the name of a labels layer with unsaved edits (see editing.py).
EDIT_MARKER = " *"


def write_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Save any mix of image and labels layers to one OME-Zarr store.

    Any failure is raised as SaveError naming the target and the reason: napari
    turns a writer's ValueError into "not a valid writer" and hides the reason.
    """
    return write_with_options(path, layer_data)


def write_with_options(
    path: str,
    layer_data: list[tuple[Any, dict, str]],
    *,
    version: str | None = None,
    compression: str | None = "zstd",
    shards: bool | None = None,
) -> list[str]:
    """write_layers with the writer's options (the Save as OME-Zarr dialog's): NGFF
    `version` (default: 0.4 for layers opened from 0.4, else 0.5), `compression`
    ('zstd', 'lz4', 'gzip' or None) and `shards` (0.5 only). Errors are SaveError."""
    options: dict[str, Any] = {"compression": compression, "shards": shards}
    if version is not None:
        options["version"] = version
    try:
        return _write_layers(path, layer_data, **options)
    except SaveError:
        raise
    except Exception as exc:
        raise SaveError(f"Cannot save {path}: {exc}") from exc


def _write_layers(path: str, layer_data: list[tuple[Any, dict, str]], **options: Any) -> list[str]:
    """write_layers; `options` (version, compression, shards) go to `write_store` (or
    `write_plate_layers` for the layers of one plate, a plate's well names aside)."""
    target = target_path(path)
    layer_data = [item for item in layer_data if not is_well_names(item[1])]
    if layer_data and all(_saved_in_place(data, path, kind) for data, _, kind in layer_data):
        return [_save_in_place(data, meta) for data, meta, _ in layer_data]
    layers = [_layer_input(data, meta, kind) for data, meta, kind in layer_data]
    plate = plate_of(layer_data)
    if plate is not None:
        options.setdefault("version", _version(layer_data))
        with _ProgressBar(f"Saving {_name(target)}") as report:
            written = [
                write_plate_layers(
                    target, plate, layers, overwrite=True, progress=report, **options
                )
            ]
    elif layers and all(layer.kind == "labels" for layer in layers) and is_image(target):
        written = _add_labels(target, layers)
    else:
        images, labels = plan_layout(layers)
        options.setdefault("version", _version(layer_data))
        with _ProgressBar(f"Saving {_name(target)}") as report:
            written = write_store(
                target, images, labels, overwrite=True, progress=report, **options
            )
    _mark_saved(layer_data, written)
    return written


def _saved_in_place(data: Any, path: str, kind: str) -> bool:
    """Whether `data` is a label image being edited whose own store is the target:
    the store root holding it under `labels/`, or the label image itself."""
    folder = data.image.folder if isinstance(data, EditableLabels) else None
    if kind != "labels" or folder is None or url_scheme(os.fspath(path)) is not None:
        return False
    target = Path(path).expanduser().resolve()
    folder = folder.resolve()
    return folder == target or (folder.parent.name == "labels" and folder.parent.parent == target)


def _save_in_place(data: EditableLabels, meta: dict) -> str:
    colormap = meta.get("colormap")
    with _ProgressBar(f"Saving {data.image.name}") as report:
        data.save(
            colors=colormap.map if hasattr(colormap, "map") else None,
            properties=_properties(meta.get("features")),
            progress=report,
        )
    return str(data.image.folder)


def _mark_saved(layer_data: list[tuple[Any, dict, str]], written: list[str]) -> None:
    """Edited label images just rewritten whole at their own place hold their edits now."""
    places = {Path(w).resolve() for w in written if url_scheme(w) is None}
    for data, _, _ in layer_data:
        folder = data.image.folder if isinstance(data, EditableLabels) else None
        if folder is not None and folder.resolve() in places:
            data.mark_saved()


def _version(layer_data: list[tuple[Any, dict, str]]) -> str:
    """NGFF 0.4 when every layer was opened from a 0.4 store, else 0.5 (the default)."""
    versions = {
        str(((meta.get("metadata") or {}).get("omezarr") or {}).get("version"))
        for _, meta, _ in layer_data
    }
    return "0.4" if versions == {"0.4"} else "0.5"


def write_image(path: str, data: Any, meta: dict) -> list[str]:
    """Save one image layer as an OME-Zarr image."""
    return write_layers(path, [(data, meta, "image")])


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Save one labels layer: into `labels/` of an existing OME-Zarr image at
    `path`, else as an OME-Zarr of its own."""
    return write_layers(path, [(data, meta, "labels")])


def target_path(path: str) -> str:
    """The path (or object-store URL) as typed, with `.ome.zarr` appended when it has
    no extension."""
    text = os.fspath(path)
    if url_scheme(text) is None:
        text = str(Path(text).expanduser())
    name = text.rstrip("/").rsplit("/", 1)[-1]
    if "." not in name:
        text = text.rstrip("/") + SUFFIX
    return text


def _name(target: str) -> str:
    return target.rstrip("/").rsplit("/", 1)[-1]


def _add_labels(target: str, layers: list[LayerInput]) -> list[str]:
    written = []
    with _ProgressBar(f"Adding labels to {_name(target)}") as report:
        for layer in layers:
            written.append(
                add_labels(
                    target,
                    layer.data,
                    group_name(layer.name, set()),
                    title=layer.name,
                    colors=layer.colors,
                    properties=layer.properties,
                    progress=report,
                )
            )
    return written


def _layer_input(data: Any, meta: dict, kind: str) -> LayerInput:
    """Plain values from napari's layer metadata."""
    omezarr = (meta.get("metadata") or {}).get("omezarr") or {}
    units = meta.get("units")
    name = str(meta.get("name") or kind)
    if isinstance(data, EditableLabels) and name.endswith(EDIT_MARKER):
        name = name[: -len(EDIT_MARKER)]
    layer = LayerInput(
        data=data,
        kind=kind,
        name=name,
        axis_labels=meta.get("axis_labels"),
        units=None if units is None else [str(u) for u in units],
        scale=meta.get("scale"),
        translate=meta.get("translate"),
        rgb=bool(meta.get("rgb", False)),
        image_name=omezarr.get("image_name"),
        channel_index=omezarr.get("channel_index"),
        rdefs=dict(omezarr["rdefs"]) if isinstance(omezarr.get("rdefs"), dict) else None,
    )
    if kind == "image":
        layer.channel = _channel(data, meta, omezarr.get("channel"))
        _keep_greyscale(layer, omezarr.get("channel"))
    elif kind == "labels":
        colormap = meta.get("colormap")
        if colormap is not None and hasattr(colormap, "map"):
            layer.colors = colormap.map
        layer.properties = _properties(meta.get("features"))
    return layer


def _channel(data: Any, meta: dict, raw: dict | None) -> Channel:
    """omero channel settings from an image layer's colormap, contrast and visibility.

    The label is the layer name, or the file's own channel label while the layer
    keeps the name the reader gave it ("<image>: <channel>")."""
    from napari.utils.colormaps import ensure_colormap

    colors = np.asarray(ensure_colormap(meta.get("colormap", "gray")).colors)
    inverted = colors[0][:3].sum() > colors[-1][:3].sum()
    rgb = colors[0] if inverted else colors[-1]
    start, end = (float(v) for v in meta.get("contrast_limits") or (0.0, 1.0))
    raw = dict(raw or {})
    window = raw.get("window") or {}
    dtype = np.dtype(data[0].dtype if isinstance(data, list | tuple) else data.dtype)
    if dtype.kind in "iu":
        lo, hi = float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)
    else:
        lo, hi = start, end
    vmin = min(float(window.get("min", lo)), start)
    vmax = max(float(window.get("max", hi)), end)
    raw = with_colormap_name(raw, meta.get("colormap", "gray"))
    label = str(meta.get("name"))
    raw_label = raw.get("label")
    if raw_label is not None and (label == raw_label or label.endswith(f": {raw_label}")):
        label = str(raw_label)
    return Channel(
        label=label,
        color="".join(f"{round(float(v) * 255):02X}" for v in rgb[:3]),
        start=start,
        end=end,
        min=vmin,
        max=vmax,
        active=bool(meta.get("visible", True)),
        inverted=bool(inverted),
        raw=raw,
    )


def _keep_greyscale(layer: LayerInput, raw: dict | None) -> None:
    """A channel the reader showed grey for `rdefs.model: greyscale` keeps its own
    colour in the file; recoloured in napari, the image is saved as "color"."""
    if layer.rdefs is None or layer.rdefs.get("model") != "greyscale" or layer.channel is None:
        return
    if layer.channel.color == "FFFFFF":
        color = (raw or {}).get("color")
        layer.channel.color = str(color) if color else layer.channel.color
    else:
        layer.rdefs["model"] = "color"


def _properties(features: Any) -> list[dict[str, Any]]:
    """`image-label.properties` rows from a features table keyed by `index`."""
    if features is None or len(features) == 0:
        return []
    table = features.reset_index(drop=True)
    values = table.pop("index") if "index" in table.columns else range(len(table))
    rows = []
    for value, (_, row) in zip(values, table.iterrows(), strict=True):
        entry = {"label-value": int(value)}
        entry.update({str(k): v for k, v in row.items()})
        rows.append(entry)
    return rows


class _ProgressBar:
    """napari's progress bar fed by the writer's `progress(done, total)` calls."""

    def __init__(self, description: str) -> None:
        self._description = description
        self._bar = None

    def __enter__(self):
        from napari.utils import progress

        self._bar = progress(total=0, desc=self._description)

        def report(done: int, total: int) -> None:
            if self._bar.total != total:
                self._bar.total = total
            self._bar.n = done
            self._bar.refresh()

        return report

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
