"""Layer data that never shows a stale plane: a failed read is drawn blank, and said so.

When reading a slice raises, napari keeps drawing the layer's previous slice
(a plane of another z, under a slider showing the new one), and with async
slicing a failure in one layer stops every layer of that slicing task from
updating. So the levels handed to napari are `GuardedArray`s: dask arrays
whose materialisation, while napari slices them for display, turns this
package's read errors (`StoreAccessError`: a chunk that could not be fetched
after retries, timed out or is corrupt) into a blank (zero) region plus one
notification. Nothing blank is cached: the failed read raised inside dask,
so the next look at that plane reads it again.

Outside napari's slicing (a writer saving the layer, a script calling
`np.asarray(layer.data[0])`) errors are raised as usual, so a blank is never
saved as data. napari marks its slicing by turning dask's task fusion off
(`optimization.fuse.active = False`, its `dask_optimized_slicing` context,
applied by both sync and async slicing); that is what is checked here.

Remote layers are also read with `REMOTE_READ_THREADS` dask threads instead
of one per core: napari widens the region it shows to whole dask blocks, and
the blocks of one view are network waits, not computation, so they are
fetched side by side.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import dask
import dask.array as da
import numpy as np

from napari_omezarr_x.errors import RemoteReadError, StoreAccessError

logger = logging.getLogger(__name__)

#: Seconds during which further failures of the same kind and store are
#: counted instead of notified one by one.
QUIET_SECONDS = 10.0
#: Dask threads that read the blocks of one view of a remote layer.
REMOTE_READ_THREADS = 16


class FailureReporter:
    """One napari notification per kind of failure and store, not one per plane."""

    def __init__(self, quiet: float = QUIET_SECONDS) -> None:
        self.quiet = quiet
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def report(self, store: str, source: str, error: Exception) -> bool:
        """Notify the user of `error` unless the same failure was just notified; True if shown."""
        key = (store, failure_kind(error))
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.quiet:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        more = f" ({held} similar failure{'s' * (held != 1)} since the last notice)" if held else ""
        message = f"{source}: shown blank, the data could not be read{more}. {error}"
        logger.warning(message)
        _notify_from_any_thread(message)
        return True


def failure_kind(error: BaseException) -> str:
    """What failed, coarsely: an HTTP status, a timeout, or the type of error."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, RemoteReadError):
            if current.status is not None:
                return f"HTTP {current.status}"
            return "timeout" if "timed out" in str(current) or "deadline" in str(current) else "io"
        current = current.__cause__
    return type(error.__cause__ or error).__name__


REPORTER = FailureReporter()
#: How often, and how many times, a start-up notification checks for the window.
_SHOWN_POLL_MS, _SHOWN_POLL_TRIES = 100, 600


def notify_error(message: str) -> None:
    """A napari error notification, shown as soon as the window is on screen.

    napari draws a notification only if its window is visible when it arrives; at
    start-up (`napari path`) layers are added before the window is shown, so the
    message then waits for the event loop, which runs once the window is up.
    Call it from the Qt thread.
    """
    import napari
    from napari.utils.notifications import show_error

    viewer = napari.current_viewer()
    window = getattr(getattr(viewer, "window", None), "_qt_window", None)
    if window is None or window.isVisible():
        show_error(message)
        return
    from qtpy.QtCore import QTimer

    def when_shown(tries: int) -> None:
        if window.isVisible() or tries <= 0:
            show_error(message)
        else:
            QTimer.singleShot(_SHOWN_POLL_MS, lambda: when_shown(tries - 1))

    when_shown(_SHOWN_POLL_TRIES)


def _notify_from_any_thread(message: str) -> None:
    """notify_error on the Qt thread (napari's async slicing reads in a thread of its own)."""
    from qtpy.QtWidgets import QApplication

    if QApplication.instance() is None:  # napari without its Qt window
        from napari.utils.notifications import show_error

        show_error(message)
        return
    from superqt.utils import ensure_main_thread

    ensure_main_thread(notify_error)(message)


def in_napari_slicing() -> bool:
    """Whether napari is slicing layers for display right now (see the module docstring)."""
    return dask.config.get("optimization.fuse.active", None) is False


class GuardedArray(da.Array):
    """A dask array that napari draws blank (with a notice) where it cannot be read."""

    _guard: tuple[str, str, FailureReporter, int | None]

    def __new__(
        cls,
        array: da.Array,
        store: str,
        source: str,
        reporter: FailureReporter | None = None,
        threads: int | None = None,
    ) -> GuardedArray:
        meta = np.empty((0,) * array.ndim, dtype=array.dtype)
        self = super().__new__(cls, array.dask, array.name, array.chunks, meta=meta)
        self._guard = (store, source, reporter or REPORTER, threads)
        return self

    @property
    def unguarded(self) -> da.Array:
        """The same data as a plain dask array."""
        meta = np.empty((0,) * self.ndim, dtype=self.dtype)
        return da.Array(self.dask, self.name, self.chunks, meta=meta)

    def __getitem__(self, index: Any) -> Any:
        result = super().__getitem__(index)
        if isinstance(result, da.Array) and not isinstance(result, GuardedArray):
            return GuardedArray(result, *self._guard)
        return result

    def __array__(self, dtype: Any = None, copy: Any = None, **kwargs: Any) -> np.ndarray:
        store, source, reporter, threads = self._guard
        try:
            if threads:
                data = self.compute(scheduler="threads", num_workers=threads)
            else:
                data = self.compute()
        except StoreAccessError as exc:
            if not in_napari_slicing():
                raise
            reporter.report(store, source, exc)
            return np.zeros(self.shape, dtype=dtype or self.dtype)
        return np.asarray(data, dtype=dtype)

    def __reduce__(self) -> Any:
        return (da.Array, (self.dask, self.name, self.chunks, self.dtype))


def guard(array: da.Array, store: str, source: str, *, remote: bool) -> da.Array:
    """`array` as napari layer data that never raises our read errors while displayed."""
    if isinstance(array, GuardedArray):
        return array
    threads = REMOTE_READ_THREADS if remote else None
    return GuardedArray(array, store, source, threads=threads)
