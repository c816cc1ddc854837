"""Ask before a napari window with unsaved label edits closes.

napari 0.9 offers no public hook on window close (its task-status list only
reaches the confirmation dialog of closes made by the window manager), so an
event filter on the main window sees every Close event first: from the
window's close button, File > Close Window (Ctrl+W) and Quit (Ctrl+Q). It
asks to save, discard or cancel. A close made from code (`viewer.close()`,
which hides the canvas before closing the window) is not asked about.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QMessageBox

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)


class CloseGuard(QObject):
    """Event filter of a napari main window that lets `confirm(viewer)` stop a user's close.

    `confirm` returns whether the window may close (nothing unsaved, saved, or
    discarded by the user).
    """

    def __init__(
        self, viewer: napari.Viewer, window: QObject, confirm: Callable[[Any], bool]
    ) -> None:
        super().__init__(window)
        self._viewer = weakref.ref(viewer)
        self._confirm = confirm

    @classmethod
    def install(
        cls, viewer: napari.Viewer, window: QObject, confirm: Callable[[Any], bool]
    ) -> CloseGuard:
        guard = cls(viewer, window, confirm)
        window.installEventFilter(guard)
        return guard

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.Close:
            return False
        viewer = self._viewer()
        if viewer is None or not shown_by_user(viewer):
            return False
        if self._confirm(viewer):
            return False
        event.ignore()
        return True


def ask(title: str, text: str) -> Any:
    """Save / Discard / Cancel, Save by default."""
    buttons = (
        QMessageBox.StandardButton.Save
        | QMessageBox.StandardButton.Discard
        | QMessageBox.StandardButton.Cancel
    )
    return QMessageBox.question(None, title, text, buttons, QMessageBox.StandardButton.Save)


def shown_by_user(viewer: napari.Viewer) -> bool:
    """Whether the viewer's canvas is on screen: napari's own `Window.close()` hides it
    first, the user's closes and removals happen while it is shown."""
    qt_viewer = getattr(viewer.window, "_qt_viewer", None)
    return qt_viewer is None or qt_viewer.isVisible()
