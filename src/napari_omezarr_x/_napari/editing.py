"""Proofread labels opened from a store: paint at full resolution, save only what changed.

napari cannot paint a multiscale labels layer (it marks it `editable=False`),
and label images with pyramids are what the reader gives. So a labels layer
read from an OME-Zarr has two faces:

- the **overview**: the multiscale layer, lazy and fast at every zoom;
- the **editing** layer: the same layer rebuilt over the full-resolution
  level as an `EditableLabels` array (chunks read on demand, edits kept until
  saved), where napari's own brush, eraser, fill, polygon and undo work.

Picking a paint tool on the overview (napari's buttons or keys) switches to
editing, as does ticking *Edit* in the *Labels editing* dock widget; unticking
it goes back to the overview once the edits are saved or discarded. The swap
keeps the layer's place in the list, name, colours, features, transforms and
painting settings.

Saving (File > Save Selected Layers onto the same store, the *Save labels*
action, Ctrl+Shift+S on a labels layer, the widget's button) rewrites only
what changed (`write.labels_update`). A layer with unsaved edits carries
" *" after its name, and closing the window with unsaved edits asks first.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_info, show_warning

from napari_omezarr_x.errors import OmeZarrXError
from napari_omezarr_x.write import EditableLabels, SaveReport
from napari_omezarr_x.write.label_image import open_label_image

from . import close_guard
from .writer import EDIT_MARKER, _ProgressBar, _properties

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

#: napari modes that change the labels (they need the editable full-resolution layer).
PAINT_MODES = frozenset({"paint", "erase", "fill", "polygon"})
SAVE_ACTION = "napari-omezarr-x:save_labels"
SAVE_SHORTCUT = "Control-Shift-S"
#: Largest full-resolution volume shown in 3D while editing (napari reads it whole).
MAX_3D_BYTES = 1 << 30
#: Settings of the painting tools carried over when the layer is swapped.
_TOOL_SETTINGS = (
    "selected_label",
    "brush_size",
    "contour",
    "n_edit_dimensions",
    "contiguous",
    "preserve_labels",
    "show_selected_label",
)

_registered = False
_prepared: weakref.WeakSet[Labels] = weakref.WeakSet()
_guarded: weakref.WeakSet[Any] = weakref.WeakSet()


class LayerLabels(EditableLabels):
    """`EditableLabels` as napari's layer data.

    napari checks the label value of every brush dab, fill and polygon with
    `layer.data[0].dtype` (`get_dtype`), which for an array read on demand is a
    whole plane read each time; so a bare integer index gives a lazy plane here,
    read only when napari turns it into an array.
    """

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            return _LazyPlane(self, int(key))
        return super().__getitem__(key)


class _LazyPlane(np.lib.mixins.NDArrayOperatorsMixin):
    """`labels[i]`, read when used as an array, in arithmetic or indexed further."""

    def __init__(self, labels: EditableLabels, index: int) -> None:
        n = labels.shape[0]
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of bounds for axis 0 with size {n}")
        self._labels, self._index = labels, index % n
        self.shape, self.dtype = labels.shape[1:], labels.dtype
        self.ndim = len(self.shape)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        data = EditableLabels.__getitem__(self._labels, self._index)
        return data if dtype is None else data.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> Any:
        key = key if isinstance(key, tuple) else (key,)
        return EditableLabels.__getitem__(self._labels, (self._index, *key))

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        inputs = tuple(np.asarray(x) if isinstance(x, _LazyPlane) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)


# -- what a layer is --------------------------------------------------------------------


def source(layer: Any) -> str | None:
    """The location (store and path inside it) a labels layer was read from, or None."""
    if not isinstance(layer, Labels):
        return None
    meta = layer.metadata.get("omezarr") if isinstance(layer.metadata, dict) else None
    if not isinstance(meta, dict) or meta.get("kind") != "labels" or not meta.get("store"):
        return None
    if meta.get("plate"):  # a plate's or well's labels: many label images, not one to edit
        return None
    store, path = str(meta["store"]).rstrip("/"), str(meta.get("path") or "").strip("/")
    return f"{store}/{path}" if path else store


def edits_of(layer: Any) -> EditableLabels | None:
    """The editable full-resolution array of a layer in editing, else None."""
    data = getattr(layer, "data", None) if isinstance(layer, Labels) else None
    return data if isinstance(data, EditableLabels) else None


def base_name(layer: Any) -> str:
    """The layer name without the unsaved-edits marker."""
    name = str(layer.name)
    return name[: -len(EDIT_MARKER)] if name.endswith(EDIT_MARKER) else name


def unsaved(viewer: napari.Viewer) -> list[Labels]:
    """Labels layers of `viewer` with edits not saved yet."""
    return [layer for layer in viewer.layers if (e := edits_of(layer)) is not None and e.has_edits]


# -- switching ---------------------------------------------------------------------------


def prepare_layer(viewer: napari.Viewer, layer: Any) -> None:
    """Make a labels layer read from a store switch to editing when a paint tool is picked."""
    if source(layer) is None or layer in _prepared:
        return
    _prepared.add(layer)
    guard_viewer(viewer)
    if layer.multiscale:
        # napari greys out the paint tools of multiscale layers; they switch instead.
        layer.editable = True
    viewer_ref = weakref.ref(viewer)
    layer_ref = weakref.ref(layer)

    def on_mode(event: Any) -> None:
        lyr, vwr = layer_ref(), viewer_ref()
        mode = str(getattr(event, "mode", None) or getattr(lyr, "mode", ""))
        if lyr is None or vwr is None or mode not in PAINT_MODES or edits_of(lyr) is not None:
            return
        # Never paint into the pyramid or the lazy stored level, even for a moment:
        # the editing layer takes the tool once it is there.
        lyr.mode = "pan_zoom"
        _later(lambda: _switch_for_tool(vwr, lyr, mode))

    layer.events.mode.connect(on_mode)


def _switch_for_tool(viewer: napari.Viewer, layer: Labels, mode: str) -> None:
    if layer not in viewer.layers or edits_of(layer) is not None:
        return
    try:
        start_editing(viewer, layer, mode=mode)
    except (OmeZarrXError, OSError) as exc:
        show_warning(f"{base_name(layer)} cannot be edited: {exc}")


def start_editing(viewer: napari.Viewer, layer: Labels, *, mode: str | None = None) -> Labels:
    """Show `layer` at full resolution, editable; returns the layer now in the viewer.

    A multiscale layer is replaced by a new layer at the same place with the
    same name, colours, features and settings; a single-level one gets the
    editable array as its data. Read-only stores are editable too (the edits
    can be saved to a new file), with a warning saying why they cannot be
    saved back.
    """
    if edits_of(layer) is not None:
        if mode:
            layer.mode = mode
        return layer
    location = source(layer)
    if location is None:
        raise OmeZarrXError(f"{layer.name}: not read from an OME-Zarr store, nothing to edit")
    labels = LayerLabels(open_label_image(location))
    _check_viewable(viewer, labels, base_name(layer))
    if labels.read_only_reason:
        show_warning(
            f"{base_name(layer)}: {labels.read_only_reason}. Edits stay in napari; "
            "save them to a new OME-Zarr with File > Save Selected Layers."
        )
    if layer.multiscale:
        editing = _rebuilt(viewer, layer, labels, multiscale=False)
    else:
        layer.data = labels
        editing = layer
    _track(editing, labels)
    editing.editable = True
    if mode:
        editing.mode = mode
    return editing


def stop_editing(viewer: napari.Viewer, layer: Labels, *, discard: bool = False) -> Labels:
    """Go back to the overview (the pyramid as stored); returns the layer now in the viewer.

    Unsaved edits must be saved first or dropped with `discard=True`.
    """
    labels = edits_of(layer)
    if labels is None:
        return layer
    if labels.has_edits and not discard:
        raise OmeZarrXError(
            f"{base_name(layer)}: {labels.edited_count} edited chunk(s) are not saved: "
            "save them (Ctrl+Shift+S) or discard them first"
        )
    if discard:
        labels.discard()  # before the layer leaves the list: nothing to ask about then
    levels = _fresh_levels(labels)
    layer.mode = "pan_zoom"
    if len(levels) > 1:
        overview = _rebuilt(viewer, layer, levels, multiscale=True)
    else:
        layer.data = levels[0]
        overview = layer
    overview.name = base_name(overview)
    labels.close()
    prepare_layer(viewer, overview)
    overview.editable = True
    return overview


def _fresh_levels(labels: EditableLabels) -> list[Any]:
    """The stored levels as new lazy arrays (napari's cache holds the old ones)."""
    from napari_omezarr_x.read.lazy import to_dask

    return [to_dask(level.array, f"{labels.where}/{level.path}") for level in labels.image.levels]


def _check_viewable(viewer: napari.Viewer, labels: EditableLabels, name: str) -> None:
    """Refuse to edit what napari would have to read whole and could not."""
    displayed = list(viewer.dims.displayed)[-viewer.dims.ndisplay :]
    axes = [a for a in displayed if a < labels.ndim] or list(range(labels.ndim))[-2:]
    gib = int(np.prod([labels.shape[a] for a in axes])) * labels.dtype.itemsize / 2**30
    if len(axes) == 3 and gib > MAX_3D_BYTES / 2**30:
        raise OmeZarrXError(
            f"{name}: in 3D, editing would show the whole full-resolution volume "
            f"({gib:.1f} GiB, more than {MAX_3D_BYTES / 2**30:.0f} GiB): switch to 2D to edit"
        )
    if gib > labels.max_read_bytes / 2**30:
        raise OmeZarrXError(
            f"{name}: a full-resolution plane is {gib:.1f} GiB, more than the "
            f"{labels.max_read_bytes / 2**30:.0f} GiB napari can be given at once"
        )


def _rebuilt(viewer: napari.Viewer, layer: Labels, data: Any, *, multiscale: bool) -> Labels:
    """A copy of `layer` over `data`, put in its place in the layer list."""
    _, state, _ = layer.as_layer_data_tuple()
    state = {k: v for k, v in state.items() if k not in ("data", "properties")}
    visible = state.get("visible", True)
    # Built hidden: napari slices a visible layer at every change of its settings,
    # and one slice of the full resolution is a whole plane. It is sliced once, shown.
    state.update(multiscale=multiscale, visible=False)
    new = Labels(data, **state)
    for name in _TOOL_SETTINGS:
        try:
            setattr(new, name, getattr(layer, name))
        except (AttributeError, ValueError, TypeError):
            logger.debug("cannot carry %s over to %s", name, new.name)
    # The new layer goes in before the old one leaves, so the viewer never loses the
    # dimensions (an empty viewer would reset the slider positions and the camera).
    name = layer.name
    layer.name = f"{name} (replaced)"
    new.name = name
    selected = layer in viewer.layers.selection
    viewer.layers.insert(viewer.layers.index(layer) + 1, new)
    viewer.layers.remove(layer)
    if selected or viewer.layers.selection.active is None:
        viewer.layers.selection.active = new
    new.visible = visible
    return new


def _track(layer: Labels, labels: EditableLabels) -> None:
    """Keep the " *" marker of `layer` in step with its unsaved edits."""
    ref = weakref.ref(layer)

    def on_change(array: EditableLabels) -> None:
        lyr = ref()
        if lyr is None:
            return
        name = base_name(lyr)
        wanted = name + EDIT_MARKER if array.has_edits else name
        if lyr.name != wanted:
            lyr.name = wanted

    labels.listeners.append(on_change)
    on_change(labels)


# -- saving ------------------------------------------------------------------------------


def save_layer(layer: Labels) -> SaveReport:
    """Save the edits of a labels layer into the label image it was read from."""
    labels = edits_of(layer)
    if labels is None:
        raise OmeZarrXError(f"{layer.name}: not being edited, nothing to save")
    with _ProgressBar(f"Saving {base_name(layer)}") as report:
        return labels.save(
            colors=layer.colormap.map,
            properties=_properties(layer.features),
            progress=report,
        )


def discard_edits(layer: Labels) -> None:
    """Forget the unsaved edits of `layer` and its undo history, which refers to them."""
    labels = edits_of(layer)
    if labels is None:
        return
    labels.discard()
    # napari clears the undo history of a layer that stops being editable.
    layer.editable = False
    layer.editable = True
    layer.refresh()


def save_labels_action(layer: Labels) -> None:
    """The *Save labels* action: save the layer's edits and say what happened."""
    if edits_of(layer) is None:
        show_info(f"{layer.name}: no edits to save (pick a paint tool to edit it)")
        return
    try:
        report = save_layer(layer)
    except (OmeZarrXError, OSError) as exc:
        show_warning(f"Labels not saved: {exc}")
        return
    show_info(describe(report, base_name(layer)))


def describe(report: SaveReport, name: str) -> str:
    """One line saying what a save changed."""
    if not report.files:
        return f"{name}: nothing changed on disk"
    return (
        f"{name}: saved {report.written[0]} full-resolution and "
        f"{sum(report.written[1:])} pyramid chunk file(s)"
        + (f", removed {sum(report.deleted)} empty one(s)" if sum(report.deleted) else "")
        + f" in {report.seconds:.2f} s"
    )


def save_active_labels(viewer: napari.Viewer) -> None:
    """Menu command: save the edits of the selected labels layer."""
    layer = viewer.layers.selection.active
    if not isinstance(layer, Labels):
        show_info("Select a labels layer to save its edits")
        return
    save_labels_action(layer)


def register_save_action() -> None:
    """The *Save labels* action on Ctrl+Shift+S for labels layers (napari's action manager)."""
    global _registered
    if _registered:
        return
    from napari.utils.action_manager import action_manager

    _registered = True
    action_manager.register_action(
        name=SAVE_ACTION,
        command=save_labels_action,
        description="Save label edits into the OME-Zarr they came from (only what changed)",
        keymapprovider=Labels,
    )
    action_manager.bind_shortcut(SAVE_ACTION, SAVE_SHORTCUT)


# -- viewer guards -----------------------------------------------------------------------


def guard_viewer(viewer: napari.Viewer) -> None:
    """Once per viewer: the save shortcut, the close warning and the 3D size check."""
    if viewer in _guarded:
        return
    _guarded.add(viewer)
    register_save_action()
    viewer_ref = weakref.ref(viewer)

    def on_ndisplay(event: Any) -> None:
        vwr = viewer_ref()
        if vwr is not None and vwr.dims.ndisplay == 3:
            _leave_big_volumes(vwr)

    def on_removed(event: Any) -> None:
        layer, vwr = event.value, viewer_ref()
        labels = edits_of(layer)
        # While napari closes the window (the canvas hidden first), layers leave unasked.
        if vwr is None or labels is None or not labels.has_edits:
            return
        if close_guard.shown_by_user(vwr):
            _later(lambda: confirm_removal(vwr, layer, event.index))

    viewer.dims.events.ndisplay.connect(on_ndisplay, position="first")
    viewer.layers.events.removed.connect(on_removed)
    window = getattr(viewer, "window", None)
    qt_window = getattr(window, "_qt_window", None)
    if qt_window is not None:
        close_guard.CloseGuard.install(viewer, qt_window, confirm_close)


def confirm_close(viewer: napari.Viewer) -> bool:
    """Whether the window may close: nothing unsaved, saved, or discarded by the user."""
    layers = unsaved(viewer)
    if not layers:
        return True
    names = ", ".join(base_name(layer) for layer in layers)
    answer = close_guard.ask(
        "Unsaved label edits",
        f"{names} {'has' if len(layers) == 1 else 'have'} unsaved edits.\n"
        "Save them into the OME-Zarr before closing?",
    )
    if answer == close_guard.QMessageBox.StandardButton.Cancel:
        return False
    if answer == close_guard.QMessageBox.StandardButton.Discard:
        for layer in layers:
            labels = edits_of(layer)
            if labels is not None:
                labels.discard()
        return True
    for layer in layers:
        try:
            save_layer(layer)
        except (OmeZarrXError, OSError) as exc:
            show_warning(f"{base_name(layer)} not saved, window kept open: {exc}")
            return False
    return True


def confirm_removal(viewer: napari.Viewer, layer: Labels, index: int) -> None:
    """A labels layer left the viewer with unsaved edits: save them, drop them, or put it back.

    napari cannot refuse a removal, so Cancel (and a save that fails) puts the
    layer back where it was, edits and all. Removals while the window is closing
    or hidden (scripts, `viewer.close()`) are not asked about, as for closing.
    """
    labels = edits_of(layer)
    if labels is None or not labels.has_edits or layer in viewer.layers:
        return
    window = getattr(viewer.window, "_qt_window", None)
    if window is None or not window.isVisible() or not close_guard.shown_by_user(viewer):
        return
    name = base_name(layer)
    answer = close_guard.ask(
        "Unsaved label edits",
        f"{name} was removed with unsaved edits.\n"
        "Save them into the OME-Zarr? (Cancel puts the layer back.)",
    )
    if answer == close_guard.QMessageBox.StandardButton.Discard:
        labels.close()
        return
    if answer == close_guard.QMessageBox.StandardButton.Save:
        try:
            report = save_layer(layer)
        except (OmeZarrXError, OSError) as exc:
            show_warning(f"{name} not saved, layer put back with its edits: {exc}")
        else:
            show_info(describe(report, name))
            labels.close()
            return
    viewer.layers.insert(min(index, len(viewer.layers)), layer)


def _leave_big_volumes(viewer: napari.Viewer) -> None:
    """Before napari reads whole volumes for 3D: spare the ones too big to read."""
    for layer in list(viewer.layers):
        labels = edits_of(layer)
        if labels is None or not layer.visible or labels.ndim < 3:
            continue
        nbytes = int(np.prod(labels.shape[-3:])) * labels.dtype.itemsize
        if nbytes <= MAX_3D_BYTES:
            continue
        name = base_name(layer)
        if labels.has_edits:
            layer.visible = False
            show_warning(
                f"{name}: its full resolution ({nbytes / 2**30:.1f} GiB) is too big for 3D; "
                "hidden until its edits are saved or discarded (or back in 2D)"
            )
        else:
            stop_editing(viewer, layer)
            show_info(f"{name}: too big for 3D at full resolution; showing the overview")


def _later(call: Callable[[], None]) -> None:
    """Run `call` once the current Qt event is handled."""
    from qtpy.QtCore import QTimer

    QTimer.singleShot(0, call)
