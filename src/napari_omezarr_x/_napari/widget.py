"""The "Channel settings" dock widget: edit an image's omero rendering settings.

It shows the channels of the selected image (the layers the reader made from
one OME-Zarr image, or a single image layer) and keeps them in step with the
layers both ways. The layers are the single source of truth: every control
is read back from its layer, so napari's own controls and this widget can
never disagree. "Save to file" writes the settings into the source store's
`omero` block; layers without a store keep them in
`layer.metadata["omezarr"]["channel"]`, where the writer finds them.
"""

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import napari
import napari.layers
import numpy as np
from napari.utils.colormaps import Colormap
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QSignalBlocker, Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleRangeSlider

from napari_omezarr_x import omero
from napari_omezarr_x._napari.image_layers import with_colormap_name
from napari_omezarr_x._napari.reader import apply_contrast_range
from napari_omezarr_x.errors import OmeZarrXError
from napari_omezarr_x.model import Channel
from napari_omezarr_x.storage import is_remote

logger = logging.getLogger(__name__)

# Layer events that change something the widget shows.
_LAYER_EVENTS = ("name", "colormap", "contrast_limits", "contrast_limits_range", "visible")
# napari appends " [n]" to make layer names unique; it is not part of the label.
_UNIQUE_SUFFIX = re.compile(r" \[\d+\]$")


def omezarr_meta(layer: napari.layers.Layer) -> dict[str, Any]:
    """The layer's `metadata["omezarr"]` dict (empty when it has none)."""
    meta = layer.metadata.get("omezarr") if isinstance(layer.metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def source_of(layer: napari.layers.Layer) -> tuple[str, str] | None:
    """(store, path) of the OME-Zarr image the layer was read from, or None."""
    meta = omezarr_meta(layer)
    store = meta.get("store")
    if not store or meta.get("kind", "image") != "image":
        return None
    return str(store), str(meta.get("path") or "")


def channel_group(
    layers: Sequence[napari.layers.Layer], layer: napari.layers.Layer
) -> list[napari.layers.Image]:
    """The image layers shown as channels together with `layer`, in channel order.

    Layers read from the same image of the same store form one group, sorted by
    `channel_index`; any other image layer is a group of its own. RGB layers
    and non-image layers have no channel settings.
    """
    if not isinstance(layer, napari.layers.Image) or layer.rgb:
        return []
    source = source_of(layer)
    if source is None:
        return [layer]
    by_index: dict[int, napari.layers.Image] = {}
    for other in layers:
        if isinstance(other, napari.layers.Image) and not other.rgb and source_of(other) == source:
            index = omezarr_meta(other).get("channel_index")
            index = index if isinstance(index, int) else 0
            # Duplicated layers claim the same index: the selected one wins.
            if index not in by_index or other is layer:
                by_index[index] = other
    return [by_index[i] for i in sorted(by_index)]


def colormap_color(cmap: Colormap) -> tuple[str, bool]:
    """(RRGGBB, inverted) of a colormap: its brighter end, and whether that end is 0."""
    ends = np.asarray(cmap.map(np.array([0.0, 1.0])))[:, :3]
    luminance = ends @ np.array([0.2126, 0.7152, 0.0722])
    inverted = bool(luminance[0] > luminance[1])
    rgb = ends[0 if inverted else 1]
    return "".join(f"{round(float(c) * 255):02X}" for c in np.clip(rgb, 0, 1)), inverted


def channel_colormap(color: str, inverted: bool) -> Colormap:
    """Linear colormap from black to `color` (from `color` to black when inverted)."""
    hex_color = omero.channel_to_omero(Channel(color=color))["color"].lower()
    rgb = [int(hex_color[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    colors = [[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]]
    if inverted:
        return Colormap(colors[::-1], name=f"#{hex_color}_r", display_name=f"#{hex_color} inverted")
    return Colormap(colors, name=f"#{hex_color}", display_name=f"#{hex_color}")


class _ChannelRow(QFrame):
    """Controls of one channel: active, colour, label, inverted, window and range."""

    def __init__(self, layer: napari.layers.Image, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer = layer
        self.setObjectName("omezarrChannelRow")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._prefix, self._suffix = self._name_parts()
        self._color = "FFFFFF"

        self.active = QCheckBox()
        self.active.setToolTip("Active: show this channel (layer visibility)")
        self.color_button = QPushButton()
        self.color_button.setFixedSize(22, 22)
        self.color_button.setToolTip("Channel colour: the colormap runs from black to it")
        self.label = QLineEdit()
        self.label.setPlaceholderText("channel label")
        self.label.setToolTip("Channel label (the layer name)")
        self.inverted = QCheckBox("Invert")
        self.inverted.setToolTip("Inverted: the colormap runs from the colour to black")
        self.window = QLabeledDoubleRangeSlider(Qt.Orientation.Horizontal)
        self.window.setToolTip(
            "Window start and end (contrast limits); the editable numbers at the ends are "
            "the window min and max (the range the slider covers)"
        )
        integer = np.issubdtype(np.dtype(layer.dtype), np.integer)
        self.window.setDecimals(0 if integer else 3)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.active)
        top.addWidget(self.color_button)
        top.addWidget(self.label, 1)
        top.addWidget(self.inverted)
        box = QVBoxLayout(self)
        box.setContentsMargins(6, 4, 6, 4)
        box.setSpacing(2)
        box.addLayout(top)
        box.addWidget(self.window)

        # napari narrows the slider range to the limits it was given: widen it
        # back to the file's window min/max before showing it.
        apply_contrast_range(layer)
        self.refresh()
        self.active.toggled.connect(self._on_active)
        self.color_button.clicked.connect(self._pick_color)
        self.label.editingFinished.connect(self._on_label)
        self.inverted.toggled.connect(self._on_inverted)
        self.window.valueChanged.connect(self._on_window)
        self.window.rangeChanged.connect(self._on_range)

    # -- layer -> controls -------------------------------------------------
    def _name_parts(self) -> tuple[str, str]:
        """Text around the label in the layer name (e.g. "image: " before it)."""
        raw = omezarr_meta(self.layer).get("channel") or {}
        label = raw.get("label") if isinstance(raw, dict) else None
        name = _UNIQUE_SUFFIX.sub("", self.layer.name)
        if isinstance(label, str) and label and label in name:
            before, _, after = name.rpartition(label)
            return before, after
        # The reader names unlabelled channels "<image name>: channel <i>".
        title = omezarr_meta(self.layer).get("image_name")
        if isinstance(title, str) and title and name.startswith(f"{title}: "):
            return f"{title}: ", ""
        return "", ""

    def current_label(self) -> str:
        """The channel label the layer name stands for."""
        name = _UNIQUE_SUFFIX.sub("", self.layer.name)
        end = len(name) - len(self._suffix)
        if (
            name.startswith(self._prefix)
            and name.endswith(self._suffix)
            and end > len(self._prefix)
        ):
            return name[len(self._prefix) : end]
        self._prefix, self._suffix = "", ""
        return name

    def channel(self) -> dict[str, Any]:
        """The raw omero channel dict of the layer's current state (extra keys kept)."""
        raw = omezarr_meta(self.layer).get("channel")
        model = omero.channel_from_omero(raw if isinstance(raw, dict) else {})
        model.label = self.current_label()
        model.color, model.inverted = colormap_color(self.layer.colormap)
        model.start, model.end = (float(v) for v in self.layer.contrast_limits)
        model.min, model.max = (float(v) for v in self.layer.contrast_limits_range)
        model.active = bool(self.layer.visible)
        model.raw = with_colormap_name(model.raw, self.layer.colormap)
        return omero.channel_to_omero(model)

    def refresh(self) -> None:
        """Show the layer's state, without echoing it back to the layer."""
        raw = self.channel()
        self._color = raw["color"]
        lo, hi = self.layer.contrast_limits_range
        with QSignalBlocker(self.window):
            self.window.setRange(float(lo), float(hi))
            self.window.setValue(tuple(float(v) for v in self.layer.contrast_limits))
        with QSignalBlocker(self.active):
            self.active.setChecked(raw["active"])
        with QSignalBlocker(self.inverted):
            self.inverted.setChecked(raw["inverted"])
        if self.label.text() != raw["label"] and not self.label.hasFocus():
            self.label.setText(raw["label"])
        # A style sheet of our own, as napari's theme sets every range slider's
        # bar colour when the dock is shown.
        bar = f"QRangeSlider {{ qproperty-barColor: #{self._color}; }}"
        if self.window.styleSheet() != bar:
            self.window.setStyleSheet(bar)
        self.color_button.setStyleSheet(
            f"QPushButton {{ background-color: #{self._color}; border: 1px solid #888;"
            " border-radius: 3px; }"
        )
        # Keep the layer's own copy current, so File > IO Utilities > Save as OME-Zarr... uses it.
        meta = {**omezarr_meta(self.layer), "channel": raw}
        self.layer.metadata = {**self.layer.metadata, "omezarr": meta}

    # -- controls -> layer -------------------------------------------------
    def set_color(self, color: str) -> None:
        """Give the channel `color` (hex); the layer colormap follows."""
        self.layer.colormap = channel_colormap(color, self.inverted.isChecked())

    def set_label(self, label: str) -> None:
        """Rename the channel; the layer name keeps its decoration around the label."""
        self.layer.name = f"{self._prefix}{label}{self._suffix}"

    def _pick_color(self) -> None:
        chosen = QColorDialog.getColor(QColor(f"#{self._color}"), self, "Channel colour")
        if chosen.isValid():
            self.set_color(chosen.name())

    def _on_label(self) -> None:
        text = self.label.text().strip()
        if text and text != self.current_label():
            self.set_label(text)

    def _on_active(self, checked: bool) -> None:
        self.layer.visible = checked

    def _on_inverted(self, checked: bool) -> None:
        self.layer.colormap = channel_colormap(self._color, checked)

    def _on_window(self, value: tuple[float, float]) -> None:
        if value[1] > value[0]:
            self.layer.contrast_limits = (float(value[0]), float(value[1]))

    def _on_range(self, lo: float, hi: float) -> None:
        if hi > lo:
            self.layer.contrast_limits_range = (float(lo), float(hi))


class ChannelSettingsWidget(QWidget):
    """Dock widget editing the omero channel settings of the selected image."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.layers: list[napari.layers.Image] = []
        self.rows: list[_ChannelRow] = []
        self._connections: list[tuple[Any, Callable[..., Any]]] = []

        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold;")
        self.source = QLabel()
        self.source.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.save_button = QPushButton("Save to file")
        self.save_button.setToolTip("Write these settings into the image's omero metadata")
        self.revert_button = QPushButton("Revert")
        self.revert_button.setToolTip("Reload the settings saved in the file")
        self.save_button.clicked.connect(self.save)
        self.revert_button.clicked.connect(self.revert)

        self._rows_box = QVBoxLayout()
        self._rows_box.setSpacing(4)
        holder = QWidget()
        inner = QVBoxLayout(holder)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addLayout(self._rows_box)
        inner.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(holder)

        buttons = QGridLayout()
        buttons.addWidget(self.save_button, 0, 0)
        buttons.addWidget(self.revert_button, 0, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.source)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(scroll, 1)
        self.setMinimumWidth(280)

        viewer_events = (
            (self.viewer.layers.selection.events.active, self._on_selection),
            (self.viewer.layers.events.inserted, self._on_selection),
            (self.viewer.layers.events.removed, self._on_selection),
        )
        for emitter, callback in viewer_events:
            emitter.connect(callback)
        # Once Qt has deleted the widget, napari must stop calling into it.
        self.destroyed.connect(lambda *_: _disconnect([*viewer_events, *self._connections]))
        self._on_selection()

    # -- which layers -------------------------------------------------------
    @property
    def store(self) -> tuple[str, str] | None:
        """(store, path) of the shown image, or None for a layer not read from a file."""
        return source_of(self.layers[0]) if self.layers else None

    def _on_selection(self, event: object = None) -> None:
        active = self.viewer.layers.selection.active
        if active is None:
            group = [layer for layer in self.layers if layer in self.viewer.layers]
            group = channel_group(self.viewer.layers, group[0]) if group else []
        else:
            group = channel_group(self.viewer.layers, active)
        if [id(layer) for layer in group] != [id(layer) for layer in self.layers]:
            self.show_layers(group)
        elif not group:
            self._update_header()  # which hint to show depends on the selection

    def show_layers(self, layers: Sequence[napari.layers.Image]) -> None:
        """Show `layers` as the channels of one image."""
        _disconnect(self._connections)
        self._connections = []
        for row in self.rows:
            row.setParent(None)
            row.deleteLater()
        self.layers = list(layers)
        self.rows = [_ChannelRow(layer) for layer in self.layers]
        for row in self.rows:
            self._rows_box.addWidget(row)
            for name in _LAYER_EVENTS:
                emitter = getattr(row.layer.events, name)
                emitter.connect(row.refresh)
                self._connections.append((emitter, row.refresh))
        self._update_header()

    def _update_header(self) -> None:
        if not self.layers:
            self.title.setText("Channel settings")
            self.source.setText("")
            active = self.viewer.layers.selection.active
            if isinstance(active, napari.layers.Image) and active.rgb:
                self._set_status("RGB layers have no channel settings: select another image.")
            else:
                self._set_status("Select an image layer to edit its channel settings.")
            self.save_button.setEnabled(False)
            self.revert_button.setEnabled(False)
            return
        meta = omezarr_meta(self.layers[0])
        name = meta.get("image_name") or self.layers[0].name
        count = len(self.layers)
        self.title.setText(f"{name} — {count} channel{'s' if count != 1 else ''}")
        source = self.store
        if source is None:
            self.source.setText("Not read from an OME-Zarr")
            self.source.setToolTip("")
            self._set_status(
                "Settings stay on the layer; File > IO Utilities > Save as OME-Zarr... writes them."
            )
            self.save_button.setEnabled(False)
            self.revert_button.setEnabled(False)
            return
        store, path = source
        version = meta.get("version")
        shown = Path(store).name if not is_remote(store) else store
        self.source.setText(
            f"{shown}{'/' + path if path else ''}" + (f" · NGFF {version}" if version else "")
        )
        self.source.setToolTip(f"{store}{'/' + path if path else ''}")
        self.revert_button.setEnabled(True)
        try:
            omero.check_writable(store, path)
        except OmeZarrXError as exc:
            self.save_button.setEnabled(False)
            self.save_button.setToolTip(str(exc))
            self._set_status(str(exc))
        else:
            self.save_button.setEnabled(True)
            self.save_button.setToolTip("Write these settings into the image's omero metadata")
            self._set_status("")

    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    # -- file ---------------------------------------------------------------
    def save(self) -> bool:
        """Write the shown channels' settings into the source store; True on success."""
        source = self.store
        if source is None:
            return False
        store, path = source
        try:
            saved = {i: c.raw for i, c in enumerate(omero.read_channels(store, path))}
            for layer, row in zip(self.layers, self.rows, strict=True):
                index = omezarr_meta(layer).get("channel_index")
                saved[index if isinstance(index, int) else 0] = row.channel()
            missing = [i for i in range(max(saved) + 1) if i not in saved]
            if missing:
                raise OmeZarrXError(
                    f"channel(s) {missing} of {store} have no layer and no saved settings"
                )
            doc = omero.save_omero(store, path, [saved[i] for i in sorted(saved)])
        except (OmeZarrXError, OSError) as exc:
            self._set_status(f"Not saved: {exc}")
            show_warning(f"Channel settings not saved: {exc}")
            return False
        doc_name = doc.name if isinstance(doc, Path) else str(doc).rsplit("/", 1)[-1]
        where = store if is_remote(store) else Path(store).name
        self._set_status(f"Saved to {doc_name} in {where}.")
        show_info(f"Channel settings saved to {doc}")
        return True

    def revert(self) -> bool:
        """Reload the settings stored in the file and apply them to the layers."""
        source = self.store
        if source is None:
            return False
        store, path = source
        try:
            channels = omero.read_channels(store, path)
        except (OmeZarrXError, OSError) as exc:
            self._set_status(f"Cannot revert: {exc}")
            show_warning(f"Channel settings not reverted: {exc}")
            return False
        if not channels:
            self._set_status("The file holds no channel settings to revert to.")
            return False
        for row in self.rows:
            index = omezarr_meta(row.layer).get("channel_index")
            index = index if isinstance(index, int) else 0
            if index < len(channels):
                apply_channel(row, channels[index])
        self._set_status("Reverted to the settings saved in the file.")
        return True


def apply_channel(row: _ChannelRow, channel: Channel) -> None:
    """Set the row's layer to `channel`'s label, colour, window, range and visibility."""
    layer = row.layer
    meta = {**omezarr_meta(layer), "channel": omero.channel_to_omero(channel)}
    layer.metadata = {**layer.metadata, "omezarr": meta}
    if channel.label:
        row.set_label(channel.label)
    color = channel.color or colormap_color(layer.colormap)[0]
    layer.colormap = channel_colormap(color, channel.inverted)
    start, end = layer.contrast_limits
    start = channel.start if channel.start is not None else start
    end = channel.end if channel.end is not None else end
    lo = min(v for v in (channel.min, start) if v is not None)
    hi = max(v for v in (channel.max, end) if v is not None)
    if hi > lo:
        layer.contrast_limits_range = (lo, hi)
    if end > start:
        layer.contrast_limits = (start, end)
    layer.visible = channel.active


def _disconnect(connections: Sequence[tuple[Any, Callable[..., Any]]]) -> None:
    for emitter, callback in connections:
        try:
            emitter.disconnect(callback)
        except (RuntimeError, TypeError, ValueError):
            logger.debug("event already disconnected: %s", emitter)
