"""Running the writes of plans: one dask pass over every level of every image.

Every input block is read once and every level of it is written while it is in
memory; label blocks that are all background are left out; the save's threads
share one malloc arena, so freed blocks are reused by all of them, and memory
above a cap goes back to the OS as the save runs; progress is reported as tasks
finish.

On a dask.distributed cluster (an active Client, or `scheduler=` a Client or a
scheduler address) the pass runs there instead. The local scheduler's callbacks
see nothing of a cluster's work, so progress comes from the futures of the
chunk writes as they complete. A worker that dies mid-save costs nothing but
time: the scheduler reruns its tasks elsewhere, and rewriting a chunk is
idempotent (the same bytes to the same key). If the cluster gives up (a task
killed too many workers), the save fails before any metadata is written, so the
previous store is kept.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from napari_omezarr_x.errors import MissingDependencyError, StoreAccessError
from napari_omezarr_x.storage.chunk_files import ChunkFiles, chunk_files

from .plan import Plan, Progress


def store_plans(
    plans: Sequence[Plan],
    arrays: Sequence[Sequence[Any]],
    progress: Progress | None,
    scheduler: Any = None,
) -> list[np.ndarray | None]:
    """Compute and write every level of every plan in one dask pass.

    Returns, per plan, the sorted values present in level 0 when the plan's
    label colours come from a colormap (computed in the same pass), else None.
    `scheduler` is a dask.distributed Client or scheduler address; by default
    an active Client is used, else dask's configured scheduler.
    """
    import dask
    import dask.array as da

    sources = [lv for plan in plans for lv in plan.levels]
    targets = [
        _target(a, plan.label is not None)
        for plan, arrs in zip(plans, arrays, strict=True)
        for a in arrs
    ]
    write = da.store(sources, targets, lock=False, compute=False)
    wanted = [
        [dask.delayed(_present)(b) for b in plan.levels[0].to_delayed().ravel()]
        if plan.label is not None and callable(plan.colors)
        else []
        for plan in plans
    ]
    with _cluster(scheduler) as client:
        if client is not None:
            found = _compute_on_cluster(client, write, wanted, progress)
        else:
            with _ProgressCallback(progress), _trim_callback():
                _, found = dask.compute(write, wanted, **_threads(targets))
    return [np.unique(np.concatenate(v)) if v else None for v in found]


@contextlib.contextmanager
def _cluster(scheduler: Any) -> Any:
    """The distributed Client to run on (None: the local scheduler).

    A scheduler address is connected to for this save only. Without one, an
    active Client is used, as `dask.compute` itself would; distributed is only
    looked at when it has been imported (a Client cannot exist otherwise).
    """
    if isinstance(scheduler, str):
        try:
            from distributed import Client
        except ImportError as exc:
            raise MissingDependencyError(
                "running a save on a dask cluster needs distributed: "
                "pip install 'napari-omezarr-x[cluster]'"
            ) from exc
        try:
            client = Client(scheduler, timeout="5s", set_as_default=False)
        except OSError as exc:
            raise StoreAccessError(
                f"cannot reach the dask scheduler at {scheduler}: {exc}"
            ) from exc
        with client:
            yield client
        return
    if scheduler is not None:
        yield scheduler
        return
    if "distributed" not in sys.modules:
        yield None
        return
    from distributed import default_client

    try:
        yield default_client()
    except ValueError:  # no active client
        yield None


def _compute_on_cluster(
    client: Any, write: Any, wanted: list[list[Any]], progress: Progress | None
) -> list[list[np.ndarray]]:
    """Run the write graph on `client`, reporting progress as chunk writes complete.

    Each finished write is let go of at once, so a worker dying later does not
    make the cluster redo writes already done (it would recompute lost results
    still held by a future).
    """
    from distributed import as_completed, futures_of

    writes = list(write) if isinstance(write, tuple) else [write]
    flat = [d for plan_wanted in wanted for d in plan_wanted]
    with client.as_current():
        persisted = client.persist([*writes, *flat])
        futures = futures_of(persisted[: len(writes)])
        futures += [futures_of(d)[0] for d in persisted[len(writes) :]]
        del persisted
        wanted_at = {f.key: i for i, f in enumerate(futures[len(futures) - len(flat) :])}
        total = len(futures)
        pending = as_completed(futures)
        del futures
        if progress is not None:
            progress(0, total)
        results: list[Any] = [None] * len(flat)
        try:
            for done, future in enumerate(pending, start=1):
                value = future.result()  # raises the task's error (or a KilledWorker) here
                if future.key in wanted_at:
                    results[wanted_at[future.key]] = value
                del future, value
                if progress is not None:
                    progress(done, total)
        finally:
            pending.clear()
    out, start = [], 0
    for plan_wanted in wanted:
        out.append(results[start : start + len(plan_wanted)])
        start += len(plan_wanted)
    return out


def _threads(targets: Sequence[Any]) -> dict[str, int]:
    """One dask thread more than cores when our own chunk writer does every write.

    Each task then encodes and writes its chunks itself, but reads its input
    through zarr's event loop and executor thread and waits meanwhile: a third
    thread on two cores kept them busy 1.87 of 2 instead of 1.78, for 11.3 s
    against 11.95 s and a few MB more memory (a (2, 128, 2048, 2048) uint16
    pyramid). Through zarr's pipeline, more threads mean more blocks in flight
    and more memory, so the default stays. A scheduler or thread count the user
    configured in dask is kept.
    """
    import dask

    if not targets or not all(isinstance(t, ChunkFiles) for t in targets):
        return {}
    if any(dask.config.get(k, None) is not None for k in ("scheduler", "pool", "num_workers")):
        return {}
    from dask.system import CPU_COUNT

    return {"num_workers": CPU_COUNT + 1}


def _target(array: Any, label: bool) -> Any:
    """Where `da.store` writes the blocks of `array`: our own chunk writer where it
    applies, else zarr (label blocks that are all background left out either way)."""
    direct = chunk_files(array, skip_fill=label)
    if direct is not None:
        return direct
    return _SkipBackground(array) if label else array


class _SkipBackground:
    """A zarr array target for `da.store` that leaves out all-background write units.

    A block spans whole write units (shards, else chunks); units holding only 0
    are not written at all (the store is new, so they read as the fill value 0),
    which keeps painted labels, mostly background, to few files.
    """

    def __init__(self, array: Any) -> None:
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.unit = tuple(array.shards or array.chunks)

    def __setitem__(self, key: tuple[slice, ...], block: np.ndarray) -> None:
        grid = [range(0, n, u) for n, u in zip(block.shape, self.unit, strict=True)]
        units = [
            tuple(slice(i, i + u) for i, u in zip(corner, self.unit, strict=True))
            for corner in itertools.product(*grid)
        ]
        kept = [unit for unit in units if block[unit].any()]
        if len(kept) == len(units):
            self.array[key] = block
            return
        for unit in kept:
            piece = block[unit]
            target = tuple(
                slice((k.start or 0) + u.start, (k.start or 0) + u.start + n)
                for k, u, n in zip(key, unit, piece.shape, strict=True)
            )
            self.array[target] = piece


def _present(block: np.ndarray) -> np.ndarray:
    """The distinct values of a label block (bincount when the range is small)."""
    flat = block.ravel()
    if flat.size == 0:
        return flat
    lo, hi = flat.min(), flat.max()
    if int(hi) - int(lo) < 1 << 20:
        counts = np.bincount((flat - lo).astype(np.intp, copy=False))
        return (np.flatnonzero(counts) + int(lo)).astype(block.dtype)
    return np.unique(flat)


def _trim_callback() -> Any:
    """A dask callback giving freed memory back to the OS as a save runs.

    glibc keeps the pages of freed multi-megabyte blocks in its per-thread
    arenas, so without trimming the resident size of a long save creeps up with
    the image size although live data stays a few blocks (dask.distributed
    trims its workers' memory the same way). Trimming after every task would
    make every new block fault its pages in again (seconds of kernel time for
    a few GiB), so the heap is trimmed only when the resident size exceeds
    what it was when the save started by `TRIM_SLACK`: memory stays capped at
    the same level for any image size while most tasks trim nothing. A no-op
    where glibc (or /proc) is absent.
    """
    from dask.callbacks import Callback

    trim = _libc_function("malloc_trim")
    start = _resident()
    if trim is None or start is None:
        return contextlib.nullcontext()
    state = {"tasks": 0}

    def posttask(*_: object) -> None:
        # Reading /proc costs tens of microseconds: look every other task.
        state["tasks"] += 1
        if state["tasks"] % 2 == 0 and (_resident() or 0) > start + TRIM_SLACK:
            trim(0)

    return Callback(posttask=posttask)


def share_malloc_arena() -> bool:
    """Make threads that start from now on allocate from glibc's one shared arena.

    glibc gives each new thread an arena of its own (up to 8 per core), and the
    freed multi-megabyte blocks of one arena serve only the threads attached
    to it. A save's decoded and downsampled blocks pass through the dask
    workers and zarr's executor threads, so with an arena each the process
    holds several sets of free blocks: resident memory grows until
    `_trim_callback` trims it, and every trim makes the next blocks fault their
    pages in again. With one arena the blocks freed by any thread are reused by
    all: for a (2, 128, 2048, 2048) uint16 pyramid peak growth fell from 0.17
    to 0.12 GB and CPU time by 1-2 s of 23 (the trim then almost never runs).

    glibc takes the limit only while it has not fixed one yet (fewer than 9
    arenas made and no earlier limit), and then for the whole process. Threads
    that already have an arena keep it. `targets.write_plans` sets the limit as
    a save to a folder starts, before it creates arrays (not on import: a process
    that only reads keeps glibc's default); where zarr's or dask's threads
    started earlier (by reading), `_trim_callback` still bounds memory.

    Returns whether glibc accepted it; False where glibc is absent or the user
    set `MALLOC_ARENA_MAX` (glibc read it at start, and it stays the user's choice).
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_ARENA_MAX, 1))


_M_ARENA_MAX = -8


#: Growth of the resident size during a save (bytes) beyond which the heap is trimmed.
TRIM_SLACK = 128 * 2**20
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident() -> int | None:
    """The process's resident set size in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


@functools.cache
def _libc_function(name: str) -> Callable[..., int] | None:
    """A function of glibc (`malloc_trim`, `mallopt`), or None where there is none."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return getattr(libc, name, None)


class _ProgressCallback:
    """Reports finished dask tasks to `progress(done, total)`."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._cb = None

    def __enter__(self) -> _ProgressCallback:
        if self._progress is None:
            return self
        from dask.callbacks import Callback

        state = {"done": 0, "total": 0}
        report = self._progress

        def start(dsk):
            state["total"] = len(dsk)
            report(0, state["total"])

        def posttask(key, result, dsk, st, worker_id):
            state["done"] += 1
            report(min(state["done"], state["total"]), state["total"])

        self._cb = Callback(start=start, posttask=posttask)
        self._cb.__enter__()
        self._state = state
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cb is None:
            return
        self._cb.__exit__(*exc)
        if exc[0] is None and self._progress is not None:
            # Graph keys that are data, not tasks, never finish: end at 100%.
            self._progress(self._state["total"], self._state["total"])
