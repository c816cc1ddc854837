"""Independent I/O calls run concurrently on a bounded thread pool.

Opening a store fetches many small metadata documents (one per array, label,
well or field); over a network each costs a round trip, so they are fetched
side by side instead of one after another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_MAX_WORKERS = 16


def parallel(calls: Sequence[Callable[[], T]], workers: int = _MAX_WORKERS) -> list[T | Exception]:
    """Run independent I/O calls concurrently (at most `workers` at a time); each
    result or the exception it raised."""

    def run(call: Callable[[], T]) -> T | Exception:
        try:
            return call()
        except Exception as exc:  # handed back to the caller to judge
            return exc

    if len(calls) <= 1:
        return [run(c) for c in calls]
    with ThreadPoolExecutor(max_workers=min(workers, len(calls))) as pool:
        return list(pool.map(run, calls))
