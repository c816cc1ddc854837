"""File > IO Utilities > "Open OME-Zarr URL...": open an http(s), s3, gs or az URL.

napari's File > Open is Qt's file dialog, which accepts only existing local files
(a pasted URL gets "file not found"); this menu entry asks for a URL instead and
opens it with this plugin's reader, as `viewer.open(url, plugin=...)` does.
Errors (no credentials, a missing bucket, not OME-Zarr) become a notification.
"""

from __future__ import annotations

import logging

import napari
from napari.utils.notifications import show_error
from qtpy.QtWidgets import QApplication, QInputDialog, QLineEdit

from napari_omezarr_x._napari.reader import PLUGIN_NAME

logger = logging.getLogger(__name__)


def open_url(viewer: napari.viewer.Viewer, url: str) -> list:
    """Open `url` in `viewer` with this plugin; notify and return [] when it fails."""
    url = url.strip()
    if not url:
        return []
    try:
        return viewer.open(url, plugin=PLUGIN_NAME)
    except Exception as exc:  # shown to the user, whatever the reader raised
        cause = getattr(exc, "original_error", None) or exc.__cause__ or exc
        show_error(f"Cannot open {url}: {cause}")
        logger.debug("open_url(%r) failed", url, exc_info=True)
        return []


def open_url_dialog(viewer: napari.viewer.Viewer) -> list:
    """Ask for a URL (s3://bucket/image.ome.zarr, https://...) and open it."""
    dialog = QInputDialog(QApplication.activeWindow())
    dialog.setWindowTitle("Open OME-Zarr URL")
    dialog.setLabelText("URL (s3://, gs://, az://, abfs://, https://):")
    dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
    dialog.resize(560, dialog.height())
    if not dialog.exec():
        return []
    return open_url(viewer, dialog.textValue())
