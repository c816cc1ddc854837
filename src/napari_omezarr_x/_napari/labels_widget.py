"""The "Labels editing" dock widget: edit a labels layer from a store and save it back.

It shows the selected labels layer: where it came from, whether it is the
overview (the stored pyramid) or being edited at full resolution, how many
chunks hold unsaved edits, and why it cannot be saved back when its store is
read-only. *Edit at full resolution* switches between the two faces of the
layer (see editing.py); *Save labels* and *Discard edits* act on the edits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import napari
import napari.layers
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_omezarr_x.errors import OmeZarrXError

from . import editing
from .close_guard import ask

logger = logging.getLogger(__name__)


class LabelsEditWidget(QWidget):
    """Dock widget switching a labels layer to full-resolution editing and saving it."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        # napari hands plugin widgets a proxy of the viewer whose layers are proxies
        # too; editing replaces layers and follows them by identity, so it works on
        # the viewer itself (the proxy's public `__wrapped__`).
        self.viewer = getattr(napari_viewer, "__wrapped__", napari_viewer)
        self.layer: napari.layers.Labels | None = None
        self._watched: Any = None
        editing.guard_viewer(self.viewer)

        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold;")
        self.source = QLabel()
        self.source.setWordWrap(True)
        self.source.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.state = QLabel()
        self.state.setWordWrap(True)
        self.edit_box = QCheckBox("Edit at full resolution")
        self.edit_box.setToolTip(
            "Paint the full-resolution level with napari's tools (picking a paint tool "
            "does this too); untick to go back to the pyramid overview"
        )
        self.save_button = QPushButton("Save labels")
        self.save_button.setToolTip(
            f"Write the edits into the store, only what changed ({editing.SAVE_SHORTCUT})"
        )
        self.discard_button = QPushButton("Discard edits")
        self.discard_button.setToolTip("Forget the unsaved edits and show the stored labels")
        self.status = QLabel()
        self.status.setWordWrap(True)

        self.edit_box.toggled.connect(self._on_edit_toggled)
        self.save_button.clicked.connect(self.save)
        self.discard_button.clicked.connect(self.discard)

        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.discard_button)
        layout = QVBoxLayout(self)
        for widget in (self.title, self.source, self.state, self.edit_box):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.setMinimumWidth(260)

        events = (
            (self.viewer.layers.selection.events.active, self._on_selection),
            (self.viewer.layers.events.inserted, self._on_selection),
            (self.viewer.layers.events.removed, self._on_selection),
        )
        for emitter, callback in events:
            emitter.connect(callback)
        self.destroyed.connect(lambda *_: _disconnect(events))
        self._on_selection()

    # -- which layer ------------------------------------------------------------------

    def _on_selection(self, event: object = None) -> None:
        active = self.viewer.layers.selection.active
        layer = active if isinstance(active, napari.layers.Labels) else None
        if layer is None and self.layer is not None and self.layer in self.viewer.layers:
            layer = self.layer
        self.show_layer(layer)

    def show_layer(self, layer: napari.layers.Labels | None) -> None:
        """Show `layer` (or nothing) and follow its edits."""
        if layer is not self.layer:
            self._unwatch()
            self.layer = layer
            if layer is not None:
                layer.events.data.connect(self.refresh)
                self._watched = layer
        self._follow_edits()
        self.refresh()

    def _unwatch(self) -> None:
        if self._watched is not None:
            try:
                self._watched.events.data.disconnect(self.refresh)
            except (RuntimeError, TypeError, ValueError):
                logger.debug("layer events already disconnected")
            self._watched = None

    def _follow_edits(self) -> None:
        labels = editing.edits_of(self.layer)
        if labels is not None and self._on_edits not in labels.listeners:
            labels.listeners.append(self._on_edits)

    def _on_edits(self, labels: Any) -> None:
        if labels is editing.edits_of(self.layer):
            self.refresh()

    # -- display ----------------------------------------------------------------------

    def refresh(self, event: object = None) -> None:
        """Show the state of the current layer."""
        layer = self.layer
        location = editing.source(layer)
        if layer is None or location is None:
            self.title.setText("Labels editing")
            self.source.setText("")
            self.state.setText("")
            self._set_box(False, enabled=False)
            self.save_button.setEnabled(False)
            self.discard_button.setEnabled(False)
            self._status(
                "Select a labels layer opened from an OME-Zarr to edit it."
                if layer is None
                else "This labels layer was not read from an OME-Zarr: paint it with "
                "napari's tools and save it with File > Save Selected Layers."
            )
            return
        self.title.setText(editing.base_name(layer))
        self.source.setText(location)
        labels = editing.edits_of(layer)
        if labels is None:
            levels = len(layer.data) if layer.multiscale else 1
            self.state.setText(f"Overview: the stored pyramid ({levels} levels)")
            self._set_box(False)
            self.save_button.setEnabled(False)
            self.discard_button.setEnabled(False)
            self._status("Tick Edit, or pick a paint tool, to edit at full resolution.")
            return
        shape = " x ".join(str(n) for n in labels.shape)
        self.state.setText(f"Editing the full resolution ({shape}, {labels.dtype})")
        self._set_box(True)
        reason = labels.read_only_reason
        self.save_button.setEnabled(labels.has_edits and reason is None)
        self.discard_button.setEnabled(labels.has_edits)
        if reason:
            self._status(f"Cannot be saved back: {reason}. Use File > Save Selected Layers.")
        elif labels.has_edits:
            self._status(f"{labels.edited_count} edited chunk(s) not saved yet.")
        else:
            self._status("No unsaved edits.")

    def _set_box(self, checked: bool, *, enabled: bool = True) -> None:
        self.edit_box.blockSignals(True)
        self.edit_box.setChecked(checked)
        self.edit_box.blockSignals(False)
        self.edit_box.setEnabled(enabled)

    def _status(self, text: str) -> None:
        self.status.setText(text)

    # -- actions ----------------------------------------------------------------------

    def _on_edit_toggled(self, checked: bool) -> None:
        if checked:
            self.start_editing()
        else:
            self.stop_editing()

    def start_editing(self) -> bool:
        """Switch the shown layer to full-resolution editing."""
        return self._swap(lambda layer: editing.start_editing(self.viewer, layer))

    def stop_editing(self) -> bool:
        """Back to the overview; unsaved edits are saved or discarded as the user says."""
        labels = editing.edits_of(self.layer)
        discard = False
        if labels is not None and labels.has_edits:
            answer = ask(
                "Unsaved label edits",
                f"{editing.base_name(self.layer)} has unsaved edits. Save them before "
                "going back to the overview?",
            )
            if answer == answer.Cancel:
                self.refresh()
                return False
            if answer == answer.Save and not self.save():
                self.refresh()
                return False
            discard = answer == answer.Discard
        return self._swap(lambda layer: editing.stop_editing(self.viewer, layer, discard=discard))

    def _swap(self, change: Callable[[napari.layers.Labels], napari.layers.Labels]) -> bool:
        if self.layer is None:
            return False
        try:
            layer = change(self.layer)
        except (OmeZarrXError, OSError) as exc:
            show_warning(str(exc))
            self._status(str(exc))
            self.refresh()
            return False
        self.show_layer(layer)
        return True

    def save(self) -> bool:
        """Save the edits of the shown layer; True on success."""
        if self.layer is None:
            return False
        try:
            report = editing.save_layer(self.layer)
        except (OmeZarrXError, OSError) as exc:
            show_warning(f"Labels not saved: {exc}")
            self._status(f"Not saved: {exc}")
            return False
        message = editing.describe(report, editing.base_name(self.layer))
        show_info(message)
        self.refresh()
        self._status(message)
        return True

    def discard(self) -> None:
        """Forget the unsaved edits of the shown layer."""
        if self.layer is not None:
            editing.discard_edits(self.layer)
            self.refresh()


def _disconnect(connections: Any) -> None:
    for emitter, callback in connections:
        try:
            emitter.disconnect(callback)
        except (RuntimeError, TypeError, ValueError):
            logger.debug("event already disconnected: %s", emitter)
