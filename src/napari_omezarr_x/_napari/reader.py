"""npe2 reader contribution: open OME-Zarr folders, zips and URLs (http(s), s3, gs, az)
as napari layers.

napari calls `get_reader` for every folder it is asked to open, so it only
looks at metadata names and returns None quickly for anything that is not
OME-Zarr. The returned function reads the metadata, builds layer data tuples
(see layers.py) and raises errors that name the path and the problem.

Napari integrations live here too:
- a window's `min`/`max` becomes the contrast slider's range once a layer is
  added (layer data tuples cannot carry it);
- layers are handed to napari hidden and shown once added: napari reads the
  first plane while it adds a visible layer, and a read that raises there
  would abort `viewer.open` (at start-up, napari itself: `napari
  broken.ome.zarr` exited). The layer data draw our stores' read errors blank
  with a notice (guard.py); anything else raised by that first read leaves
  the layer hidden with a notification, and the rest opens;
- labels layers switch to full-resolution editing when a paint tool is
  picked (see editing.py);
- plate layers dock the *Plate browser* (and get the well/field status bar
  text), images of a collection of several dock the *Series* chooser;
- the first time the plugin is used, `.zarr` folders, URLs and paths inside
  them are associated with this reader in napari's preferences, unless the
  user already chose a reader for zarr data, so that dropping a `.zarr`
  folder opens it directly instead of asking which plugin to use.
"""

from __future__ import annotations

import json
import logging
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_omezarr_x._napari.editing import prepare_layer
from napari_omezarr_x._napari.guard import notify_error
from napari_omezarr_x._napari.layers import LayerData, layers_for_images
from napari_omezarr_x.errors import NotOmeZarrError, OmeZarrXError
from napari_omezarr_x.read import looks_like_ome_zarr, read_ome_zarr
from napari_omezarr_x.storage import is_object_url

logger = logging.getLogger(__name__)

PLUGIN_NAME = "napari-omezarr-x"
#: Reader preferences registered once: napari matches them against the path
#: with a trailing slash for folders, so these cover `.zarr` folders, URLs with
#: or without a slash, and groups inside a store (`plate.zarr/A/1`).
DEFAULT_PREFERENCES = ("*.zarr/", "*.zarr", "*.zarr/*")
_MARKER = "napari-omezarr-x.json"
#: Environment variable: open labels groups and label images without their image.
LABELS_ONLY_ENV = "NAPARI_OMEZARR_X_LABELS_ONLY"
#: Key of `metadata["omezarr"]` marking a layer handed over hidden, to show once added.
_REVEAL = "reveal_when_added"

_hooked_viewers: weakref.WeakSet[Any] = weakref.WeakSet()

ReaderFunction = Callable[[str | list[str]], list[LayerData]]


def _as_paths(path: str | os.PathLike[str] | list[Any] | tuple[Any, ...]) -> list[str]:
    items = path if isinstance(path, list | tuple) else [path]
    return [os.fspath(p) for p in items]


def get_reader(path: str | list[str]) -> ReaderFunction | None:
    """napari reader hook: a reader function for OME-Zarr paths, None for anything else.

    For a list, every path must be OME-Zarr. Object-store URLs (s3://, gs://,
    az://, ...) are always taken, without a request: no other reader opens them,
    and reading them reports what is wrong (credentials, a missing bucket, a
    missing package) better than napari's "no reader". Never raises, warns or
    reads chunks.
    """
    try:
        paths = _as_paths(path)
        if paths and all(is_object_url(p) or looks_like_ome_zarr(p) for p in paths):
            return read_layers
    except Exception:  # napari asks every reader; a failed guess just means "not ours"
        logger.debug("get_reader(%r) failed", path, exc_info=True)
    return None


def read_layers(path: str | list[str]) -> list[LayerData]:
    """Every layer of every OME-Zarr in `path` (a path, URL or list of them)."""
    layers: list[LayerData] = []
    for one in _as_paths(path):
        layers.extend(_read_one(one))
    if watch_current_viewer():
        for _, meta, _ in layers:
            _hide_until_added(meta)
    register_default_reader()
    return layers


def _hide_until_added(meta: dict[str, Any]) -> None:
    """Hand a layer to napari hidden; `watch_viewer` shows it once it is added."""
    block = (meta.get("metadata") or {}).get("omezarr")
    if meta.get("visible", True) and isinstance(block, dict):
        meta["visible"] = False
        block[_REVEAL] = True


def reveal(layer: Any) -> bool:
    """Show a layer handed over hidden; on a read failure keep it hidden and say why.

    Returns whether the layer is shown.
    """
    metadata = getattr(layer, "metadata", None)
    block = metadata.get("omezarr") if isinstance(metadata, dict) else None
    if not isinstance(block, dict) or not block.pop(_REVEAL, False):
        return bool(getattr(layer, "visible", False))
    try:
        layer.visible = True
    except Exception as exc:  # an unreadable first plane must not abort the open
        layer.visible = False
        # The message only: a kept traceback would hold the viewer alive.
        message = (
            f"{layer.name}: hidden, its first plane cannot be read "
            f"({type(exc).__name__}: {exc}). Other planes and layers may still show."
        )
        logger.warning(message)
        notify_error(message)
        return False
    return True


def labels_only() -> bool:
    """Whether a labels group or label image opens without its image (opt-out of the
    default): set NAPARI_OMEZARR_X_LABELS_ONLY=1 before opening."""
    value = os.environ.get(LABELS_ONLY_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def _read_one(path: str) -> list[LayerData]:
    try:
        images = read_ome_zarr(path, with_source=not labels_only())
        if not images:
            raise NotOmeZarrError(f"{path}: no OME-Zarr image found")
        return layers_for_images(images)
    except OmeZarrXError:
        raise
    except Exception as exc:
        raise OmeZarrXError(f"{path}: cannot be opened: {type(exc).__name__}: {exc}") from exc


# --- contrast range -------------------------------------------------------------


def apply_contrast_range(layer: Any) -> None:
    """Widen a layer's contrast slider to its omero window's min/max."""
    metadata = getattr(layer, "metadata", None)
    block = metadata.get("omezarr") if isinstance(metadata, dict) else None
    channel = block.get("channel") if isinstance(block, dict) else None
    window = channel.get("window") if isinstance(channel, dict) else None
    if not isinstance(window, dict) or not hasattr(layer, "contrast_limits_range"):
        return
    lo, hi = _as_number(window.get("min")), _as_number(window.get("max"))
    if lo is None or hi is None:
        return
    limits = layer.contrast_limits
    wanted = [min(lo, limits[0]), max(hi, limits[1])]
    if wanted[0] < wanted[1] and wanted != list(layer.contrast_limits_range):
        layer.contrast_limits_range = wanted


def _as_number(value: Any) -> float | None:
    """A finite number, also from a string of one (some writers quote window values)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def watch_viewer(viewer: Any) -> bool:
    """Prepare our layers as `viewer` adds them: window ranges, showing them, and
    labels that switch to editing when a paint tool is picked; False without a viewer."""
    if viewer is None:
        return False
    if viewer not in _hooked_viewers:
        viewer_ref = weakref.ref(viewer)

        def on_inserted(event: Any) -> None:
            apply_contrast_range(event.value)
            reveal(event.value)
            current = viewer_ref()
            if current is not None:
                prepare_layer(current, event.value)
                _dock_for(current, event.value)

        viewer.layers.events.inserted.connect(on_inserted)
        _hooked_viewers.add(viewer)
    return True


def watch_current_viewer() -> bool:
    """`watch_viewer` for the viewer napari is opening layers in."""
    import napari

    return watch_viewer(napari.current_viewer())


def _dock_for(viewer: Any, layer: Any) -> None:
    """Plate layers get the Plate browser (and the plate hooks), images of a
    collection the Series dock."""
    from napari_omezarr_x._napari.plates import on_inserted

    on_inserted(viewer, layer)


# --- reader preference ----------------------------------------------------------


def _marker_path() -> Path | None:
    from napari.settings import get_settings

    config = get_settings().config_path
    return Path(config).parent / _MARKER if config else None


def register_default_reader() -> list[str]:
    """Make this plugin napari's reader for `.zarr` folders, URLs and paths inside them.

    Done once per napari configuration (remembered in a small marker file next
    to napari's settings), and not at all when the user already associated
    any zarr pattern or folder with another reader: a user's choice, including
    removing ours later, is kept. Returns the patterns added.
    """
    from napari.settings import get_settings

    marker = _marker_path()
    try:
        done = bool(json.loads(marker.read_text())["registered"]) if marker else False
    except (OSError, ValueError, KeyError, TypeError):
        done = False
    settings = get_settings()
    prefs = dict(settings.plugins.extension2reader)
    theirs = [k for k, v in prefs.items() if "zarr" in k.lower() and v != PLUGIN_NAME]
    added = [] if done or theirs else [p for p in DEFAULT_PREFERENCES if p not in prefs]
    if added:
        settings.plugins.extension2reader = {**prefs, **dict.fromkeys(added, PLUGIN_NAME)}
        logger.info("napari now opens %s with %s", ", ".join(added), PLUGIN_NAME)
    if marker is not None and not done:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"registered": list(DEFAULT_PREFERENCES)}))
        except OSError:
            logger.debug("cannot write %s", marker, exc_info=True)
    return added


def activate(context: Any = None) -> None:
    """npe2 `on_activate`: register the default reader preference on first use."""
    register_default_reader()
