"""Edit a label image in place and save only what changed.

`open_labels(path)` gives an `EditableLabels`: a numpy-like array over the
full-resolution level of a label image in a store, of any size, whose edits
stay in memory (or a bounded spill) until `save()`. Saving then

1. rewrites only the full-resolution write units (chunks, or shards) whose
   content really changed;
2. recomputes each coarser level only over the region that changed in the
   level below it, with the writer's own downsampling (`pyramid.downsample_block`:
   block mode with ties to the top-left pixel, or nearest), each level from the
   one before, so the store ends exactly as a full rewrite of the edited
   array would leave it;
3. updates `image-label`: colours and properties of values that no longer
   occur anywhere are removed, values that occur for the first time get the
   given colour and properties row;
4. does all of it as one crash-safe update of the label image's folder
   (`storage.journal`): a save killed at any moment leaves the old or the new
   label image, never a mix, once the next save or open has completed it.

The image's arrays and other label images are never touched. `update_labels`
does open, assign and save in one call.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_omezarr_x.spec import metadata as md

from . import pyramid
from .documents import default_label_colors, image_label_json
from .editable import MEMORY_BUDGET, Box, EditableArray
from .label_image import LabelImage, Level, open_label_image

log = logging.getLogger(__name__)

Colors = Mapping[int, Sequence[float]] | Callable[[np.ndarray], Any]
Progress = Callable[[int, int], None]
#: Coarse levels up to this size are read whole to find label values quickly.
_SCAN_BYTES = 64 * 2**20


@dataclass
class SaveReport:
    """What a save changed: files written and deleted per level, label values, time."""

    written: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    added_values: list[int] = field(default_factory=list)
    removed_values: list[int] = field(default_factory=list)
    metadata_changed: bool = False
    seconds: float = 0.0

    @property
    def files(self) -> int:
        """Files written or deleted in all."""
        return sum(self.written) + sum(self.deleted) + int(self.metadata_changed)


class EditableLabels(EditableArray):
    """The full-resolution level of a label image, editable, saved back by `save()`."""

    def __init__(self, image: LabelImage, *, memory_budget: int = MEMORY_BUDGET) -> None:
        super().__init__(image.levels[0].array, image.where, memory_budget=memory_budget)
        self.image = image

    @property
    def read_only_reason(self) -> str | None:
        """Why edits cannot be saved back to the store (None when they can)."""
        return self.image.read_only or self.image.pyramid_error

    @property
    def writable(self) -> bool:
        return self.read_only_reason is None

    def save(
        self,
        *,
        colors: Colors | None = None,
        properties: Sequence[Mapping[str, Any]] | None = None,
        downsample: pyramid.Method | None = None,
        progress: Progress | None = None,
    ) -> SaveReport:
        """Write the edits back (see `save_labels`)."""
        return save_labels(
            self, colors=colors, properties=properties, downsample=downsample, progress=progress
        )


def open_labels(
    path: str | os.PathLike[str], *, memory_budget: int = MEMORY_BUDGET
) -> EditableLabels:
    """The label image at `path` (e.g. `image.ome.zarr/labels/cells`), ready to edit.

    Any store opens; zip files, URLs and read-only folders give an array whose
    `read_only_reason` says why `save()` will refuse. An interrupted earlier
    save of a writable folder is completed first.
    """
    return EditableLabels(open_label_image(path), memory_budget=memory_budget)


def update_labels(
    path: str | os.PathLike[str],
    key: Any,
    values: Any,
    *,
    colors: Colors | None = None,
    properties: Sequence[Mapping[str, Any]] | None = None,
    downsample: pyramid.Method | None = None,
    progress: Progress | None = None,
) -> SaveReport:
    """Set `labels[key] = values` in the label image at `path` and save only what changed."""
    labels = open_labels(path)
    try:
        labels[key] = values
        return labels.save(
            colors=colors, properties=properties, downsample=downsample, progress=progress
        )
    finally:
        labels.close()


def save_labels(
    labels: EditableLabels,
    *,
    colors: Colors | None = None,
    properties: Sequence[Mapping[str, Any]] | None = None,
    downsample: pyramid.Method | None = None,
    progress: Progress | None = None,
) -> SaveReport:
    """Save the edits of `labels` into its store, rewriting only what changed.

    `colors` (value -> RGBA in 0-1, or a function from an array of values to
    RGBA rows, such as a napari colormap's `map`; by default the writer's own
    palette) and `properties` (dicts with `label-value`) are used for label
    values that appear for the first time.
    `downsample` is the method the pyramid was made with: 'mode' (the writer's
    default for labels) or 'nearest'; by default the multiscale's `type` when
    it names one of them, else 'mode'. Raises ReadOnlyStoreError for stores
    that cannot be written, MetadataError for pyramids that are not halvings
    of their level 0.
    """
    image = labels.image
    if downsample is None:
        downsample = "nearest" if image.method == "nearest" else "mode"
    if downsample not in ("mode", "nearest"):
        raise ValueError(f"labels are downsampled with 'mode' or 'nearest', not {downsample!r}")
    image.check_writable()
    start = time.perf_counter()
    report = SaveReport(written=[0] * len(image.levels), deleted=[0] * len(image.levels))
    with labels.lock:
        if not labels.has_edits:
            return report
        info = {"label image": image.path or ".", "levels": [lv.path for lv in image.levels]}
        views: list[EditableArray] = []
        try:
            with image.update(info) as tx:
                changed0, removed, appeared = _save_level0(labels, image, tx, report)
                boxes = [box for _, box in changed0]
                source: EditableArray = labels
                for k in range(1, len(image.levels)):
                    if progress is not None:
                        progress(k, len(image.levels) + 1)
                    view = EditableArray(
                        image.levels[k].array, f"{image.where}/{image.levels[k].path}"
                    )
                    views.append(view)
                    boxes = _save_level(image, k, source, view, boxes, downsample, tx, report)
                    source = view
                block = _image_label(
                    image, labels, views, changed0, removed, appeared, colors, properties, report
                )
                if block is not None:
                    tx.put(image.attrs_key, image.attrs_document(block))
                    report.metadata_changed = True
                if tx.size:
                    tx.commit()
        finally:
            for view in views:
                view.close()
        if report.metadata_changed and block is not None:
            _store_block(image, block)
        labels.mark_saved()
    report.seconds = time.perf_counter() - start
    if progress is not None:
        progress(len(image.levels) + 1, len(image.levels) + 1)
    log.info(
        "%s: saved edits in %.2f s: %s units written, %s deleted per level",
        image.where,
        report.seconds,
        report.written,
        report.deleted,
    )
    return report


# -- levels ----------------------------------------------------------------------------


def _stage(image: LabelImage, k: int, unit: tuple[int, ...], data: np.ndarray, tx, report) -> None:
    key, encoded = image.encode(k, unit, data)
    if encoded is None:
        tx.delete(key)
        report.deleted[k] += 1
    else:
        tx.put(key, encoded)
        report.written[k] += 1


def _changed_box(diff: np.ndarray, box: Box) -> Box:
    """The bounding box, in array coordinates, of the True values of `diff` (inside `box`)."""
    out = []
    for axis in range(diff.ndim):
        other = tuple(a for a in range(diff.ndim) if a != axis)
        hits = np.flatnonzero(diff.any(axis=other))
        out.append((box[axis][0] + int(hits[0]), box[axis][0] + int(hits[-1]) + 1))
    return tuple(out)


def _save_level0(
    labels: EditableLabels, image: LabelImage, tx, report: SaveReport
) -> tuple[list[tuple[tuple[int, ...], Box]], set[int], set[int]]:
    """Stage the changed full-resolution units; (unit, changed box) pairs and values."""
    level = image.levels[0]
    units = sorted(
        {
            tuple(c * cs // us for c, cs, us in zip(chunk, labels.chunks, level.unit, strict=True))
            for chunk in labels.edited_chunks()
        }
    )
    changed: list[tuple[tuple[int, ...], Box]] = []
    removed: set[int] = set()
    appeared: set[int] = set()
    for unit in units:
        box = level.unit_box(unit)
        new = labels.read(box)
        old = labels.read_stored(box)
        diff = new != old
        if not diff.any():
            continue
        changed.append((unit, _changed_box(diff, box)))
        removed.update(int(v) for v in np.unique(old[diff]))
        appeared.update(int(v) for v in np.unique(new[diff]))
        _stage(image, 0, unit, new, tx, report)
    return changed, removed, appeared


def _save_level(
    image: LabelImage,
    k: int,
    source: EditableArray,
    view: EditableArray,
    boxes: list[Box],
    method: pyramid.Method,
    tx,
    report: SaveReport,
) -> list[Box]:
    """Recompute level `k` over what changed in level k-1 (`boxes`); the boxes changed here."""
    level: Level = image.levels[k]
    prev_shape = image.levels[k - 1].shape
    step = level.step
    targets: set[tuple[int, ...]] = set()
    for box in boxes:
        mapped = tuple(
            (lo // s, min(-(-hi // s), n))
            for (lo, hi), s, n in zip(box, step, level.shape, strict=True)
        )
        targets.update(level.units_in(mapped))
    changed: list[Box] = []
    for unit in sorted(targets):
        ubox = level.unit_box(unit)
        src = tuple(
            (lo * s, min(hi * s, n)) for (lo, hi), s, n in zip(ubox, step, prev_shape, strict=True)
        )
        block = pyramid.downsample_block(source.read(src), step, method)
        new = block[tuple(slice(0, hi - lo) for lo, hi in ubox)]
        old = view.read_stored(ubox)
        diff = new != old
        if not diff.any():
            continue
        changed.append(_changed_box(diff, ubox))
        view[tuple(slice(lo, hi) for lo, hi in ubox)] = new
        _stage(image, k, unit, new, tx, report)
    return changed


# -- image-label ------------------------------------------------------------------------


def _listed(block: Mapping[str, Any]) -> set[int]:
    values = set()
    for key in ("colors", "properties"):
        for entry in block.get(key) or []:
            if isinstance(entry, dict) and isinstance(entry.get("label-value"), int | float):
                values.add(int(entry["label-value"]))
    return values


def _image_label(
    image: LabelImage,
    labels: EditableLabels,
    views: list[EditableArray],
    changed0: list[tuple[tuple[int, ...], Box]],
    removed: set[int],
    appeared: set[int],
    colors: Colors | None,
    properties: Sequence[Mapping[str, Any]] | None,
    report: SaveReport,
) -> dict[str, Any] | None:
    """The updated `image-label` block, or None when it does not change."""
    block = image.image_label()
    if not block and "image-label" not in _ome(image):
        return None
    listed = _listed(block)
    candidates = (removed - appeared - {0}) & listed
    if candidates:
        candidates = _absent(image, labels, views, changed0, candidates)
    listed_colors = {
        int(e["label-value"])
        for e in block.get("colors") or []
        if isinstance(e, dict) and isinstance(e.get("label-value"), int | float)
    }
    fresh_colors = sorted(appeared - listed_colors - {0}) if "colors" in block else []
    # Without colours given, new values get the writer's own palette.
    rgba = _rgba(default_label_colors if colors is None else colors, fresh_colors)
    new_colors = sorted(rgba)
    rows = {
        int(p["label-value"]): dict(p)
        for p in properties or []
        if isinstance(p.get("label-value"), int | float)
    }
    listed_props = {
        int(e["label-value"])
        for e in block.get("properties") or []
        if isinstance(e, dict) and isinstance(e.get("label-value"), int | float)
    }
    new_props = sorted((appeared - listed_props - {0}) & set(rows))
    if not candidates and not new_colors and not new_props:
        return None
    out = dict(block)
    if "colors" in out:
        kept = [e for e in out["colors"] if not _value_in(e, candidates)]
        added = image_label_json(rgba, [], image.version)["colors"] if rgba else []
        out["colors"] = sorted(kept + added, key=_sort_key)
    if "properties" in out or new_props:
        kept = [e for e in out.get("properties") or [] if not _value_in(e, candidates)]
        added = image_label_json({}, [rows[v] for v in new_props], image.version).get(
            "properties", []
        )
        out["properties"] = sorted(kept + added, key=_sort_key)
    report.added_values = sorted(set(new_colors) | set(new_props))
    report.removed_values = sorted(candidates)
    return out


def _ome(image: LabelImage) -> dict[str, Any]:
    return md.ome_attributes(image.attrs)


def _value_in(entry: Any, values: set[int]) -> bool:
    return isinstance(entry, dict) and entry.get("label-value") in values


def _sort_key(entry: Any) -> int:
    value = entry.get("label-value") if isinstance(entry, dict) else None
    return int(value) if isinstance(value, int | float) else -1


def _rgba(colors: Colors | None, values: list[int]) -> dict[int, Sequence[float]]:
    if not values or colors is None:
        return {}
    if callable(colors):
        rgba = np.asarray(colors(np.asarray(values)), dtype=float).reshape(len(values), -1)
        return {v: tuple(float(c) for c in row) for v, row in zip(values, rgba, strict=True)}
    return {v: colors[v] for v in values if v in colors}


def _absent(
    image: LabelImage,
    labels: EditableLabels,
    views: list[EditableArray],
    changed0: list[tuple[tuple[int, ...], Box]],
    candidates: set[int],
) -> set[int]:
    """Which of `candidates` occur nowhere in the edited label image any more.

    Coarse levels first (a value present at any level is present at level 0,
    as downsampling never invents values), then the changed units, then every
    other stored unit of level 0, stopping as soon as all are found.
    """
    left = set(candidates)
    wanted = np.asarray(sorted(left))
    for k in range(len(image.levels) - 1, 0, -1):
        level = image.levels[k]
        if np.prod(level.shape) * level.array.dtype.itemsize > _SCAN_BYTES:
            break
        data = views[k - 1].read(tuple((0, n) for n in level.shape))
        left -= {int(v) for v in wanted[np.isin(wanted, data)]}
        if not left:
            return left
    level0 = image.levels[0]
    done = set()
    for unit, _ in changed0:
        data = labels.read(level0.unit_box(unit))
        left -= {int(v) for v in wanted[np.isin(wanted, data)]}
        done.add(unit)
        if not left:
            return left
    for unit in image.stored_units(0):
        if unit in done:
            continue
        data = labels.read_stored(level0.unit_box(unit))
        left -= {int(v) for v in wanted[np.isin(wanted, data)]}
        if not left:
            break
    return left


def _store_block(image: LabelImage, block: dict[str, Any]) -> None:
    """Keep the in-memory attributes in step with the saved document."""
    if image.zarr_format == 3 and isinstance(image.attrs.get("ome"), dict):
        image.attrs["ome"]["image-label"] = block
    else:
        image.attrs["image-label"] = block
