"""Remote stores that retry transient failures, end at a deadline and say what failed.

`RetryStore` wraps any zarr store (HTTP through fsspec today; S3, GCS and
Azure stores the same way) using only zarr's public `WrapperStore`:

- a transient failure (HTTP 408/429/500/502/503/504, a reset or refused
  connection, a truncated body, a timeout) is tried again after a growing,
  jittered pause, up to `RemoteSettings.attempts` tries;
- one key's read, all attempts included, ends at `RemoteSettings.deadline`
  (a body trickling in byte by byte ends too);
- at most `RemoteSettings.concurrency` requests of the store are in flight;
- a permanent failure (403, any other status, a malformed answer) is raised
  at once; a missing key (404) still reads as absent, so zarr fills it;
- every failure raised is a `RemoteReadError` naming the URL, the status, the
  number of attempts and the time they took.
"""

from __future__ import annotations

import asyncio
import errno
import random
import re
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from zarr.abc.store import Store
from zarr.storage import WrapperStore

from napari_omezarr_x.errors import RemoteReadError

from .network import RemoteSettings, raise_zarr_concurrency, remote_settings

if TYPE_CHECKING:
    from zarr.abc.store import ByteRequest
    from zarr.core.buffer import Buffer, BufferPrototype

T = TypeVar("T")

#: HTTP statuses worth another attempt: the server or a proxy is busy or down for a moment.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
    }
)


@dataclass(frozen=True)
class Failure:
    """What one failed attempt means: retry or not, the HTTP status, a short reason."""

    transient: bool
    reason: str
    status: int | None = None
    retry_after: float | None = None


def classify(exc: BaseException) -> Failure:
    """Judge an exception raised by a store, fsspec, aiohttp, requests or an object-store SDK."""
    if type(exc).__module__.startswith("obstore"):
        return _classify_obstore(exc)
    status, message, retry_after = _http_status(exc)
    if status is not None:
        reason = f"HTTP {status} {message}".strip()
        return Failure(status in RETRY_STATUSES, reason, status, retry_after)
    if isinstance(exc, TimeoutError) or type(exc).__name__ in ("Timeout", "ReadTimeout"):
        return Failure(True, "timed out waiting for the server")
    if isinstance(exc, PermissionError):
        return Failure(False, f"access denied: {exc}")
    if isinstance(exc, ConnectionError):
        return Failure(True, f"connection failed: {type(exc).__name__}: {exc}")
    name = type(exc).__name__
    if name in _TRANSIENT_NAMES or any(c.__name__ in _TRANSIENT_NAMES for c in type(exc).__mro__):
        return Failure(True, f"{name}: {exc}")
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return Failure(True, f"{name}: {exc}")
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc and not isinstance(exc, RemoteReadError):
        inner = classify(cause)
        if inner.transient or inner.status is not None:
            return inner
    return Failure(False, f"{name}: {exc}")


# obstore's errors carry no status attribute; their message says it, or names the transport step.
_OBSTORE_STATUS = re.compile(r"status code: (\d{3})(?: ([A-Za-z][A-Za-z \-]*))?")
_OBSTORE_TRANSIENT = ("error sending request", "body error", "timed out", "connection")


def _classify_obstore(exc: BaseException) -> Failure:
    text = str(exc)
    match = _OBSTORE_STATUS.search(text)
    if match:
        status = int(match.group(1))
        reason = f"HTTP {status} {match.group(2) or ''}".strip()
        return Failure(status in RETRY_STATUSES, reason, status)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    detail = first.split(" - ", 1)[-1].split("HTTP error: ", 1)[-1]
    if any(word in first for word in _OBSTORE_TRANSIENT):
        return Failure(True, f"connection failed: {detail}")
    return Failure(False, f"{type(exc).__name__}: {detail}")


# Transport errors by class name, so that aiohttp, requests and urllib3 need not be imported.
_TRANSIENT_NAMES = frozenset(
    {
        "ClientPayloadError",  # aiohttp: body shorter than Content-Length, broken chunking
        "ClientConnectionError",  # aiohttp: refused, reset, server disconnected
        "ChunkedEncodingError",  # requests: truncated body
        "ConnectionError",  # requests
        "ProtocolError",  # urllib3
        "IncompleteRead",  # http.client
    }
)


def _http_status(exc: BaseException) -> tuple[int | None, str, float | None]:
    """(status, message, Retry-After) from aiohttp, requests, botocore or any `status` attribute."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        status = getattr(current, "status", None)
        if status is None:
            status = getattr(current, "status_code", None)
        response = getattr(current, "response", None)
        headers = getattr(current, "headers", None)
        if status is None and response is not None:
            status = getattr(response, "status_code", None)
            headers = getattr(response, "headers", headers)
            if status is None and isinstance(response, dict):
                status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int) and 100 <= status <= 599:
            message = getattr(current, "message", None) or getattr(response, "reason", "") or ""
            return status, str(message), _retry_after(headers)
        current = current.__cause__ or current.__context__
        seen += 1
    return None, "", None


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def backoff_delay(attempt: int, failure: Failure, settings: RemoteSettings) -> float:
    """Pause before attempt `attempt + 1`: doubling from `backoff`, jittered, capped."""
    base = min(settings.max_backoff, settings.backoff * 2 ** (attempt - 1))
    delay = base / 2 + random.random() * base / 2
    if failure.retry_after is not None:
        delay = max(delay, failure.retry_after)
    return delay


class _Attempts:
    """The retry decisions shared by the async store and the sync helper."""

    def __init__(self, url: str, key: str, settings: RemoteSettings, now: float) -> None:
        self.url, self.key, self.settings = url, key, settings
        self.started = now
        self.count = 0

    def remaining(self, now: float) -> float:
        """Seconds left before the deadline."""
        return self.settings.deadline - (now - self.started)

    def after_failure(self, exc: BaseException, now: float, *, expired: bool) -> float:
        """Seconds to wait before the next attempt; raises RemoteReadError when done."""
        elapsed = now - self.started
        s = self.settings
        past_deadline = f"deadline of {s.deadline:g} s passed"
        if expired:
            failure = Failure(True, "no complete answer")
            raise self._error(failure, elapsed, past_deadline) from exc
        failure = classify(exc)
        if isinstance(exc, TimeoutError):
            failure = Failure(True, f"no data within the read timeout of {s.read_timeout:g} s")
        if not failure.transient:
            raise self._error(failure, elapsed, "") from exc
        if self.count >= s.attempts:
            raise self._error(failure, elapsed, "") from exc
        delay = backoff_delay(self.count, failure, s)
        if elapsed + delay >= s.deadline:
            why = past_deadline
            if failure.retry_after is not None and failure.retry_after >= s.deadline - elapsed:
                why = f"the server asked to wait {failure.retry_after:g} s, past the deadline"
            raise self._error(failure, elapsed, why) from exc
        return delay

    def _error(self, failure: Failure, elapsed: float, why: str) -> RemoteReadError:
        if not failure.transient and self.count == 1:
            detail = "permanent, not retried"
        else:
            plural = "s" if self.count != 1 else ""
            detail = f"{self.count} attempt{plural} in {elapsed:.1f} s"
        detail = f"{why}; {detail}" if why else detail
        return RemoteReadError(
            f"{self.url}: {failure.reason} ({detail})",
            url=self.url,
            key=self.key,
            status=failure.status,
            attempts=self.count,
            elapsed=elapsed,
            transient=failure.transient,
        )


class RetryStore(WrapperStore[Store]):
    """A read store that retries transient failures and names what failed.

    `name` is the store's URL, used in messages as `<name>/<key>`. The
    settings are fixed when the store is made (`remote_settings()` then).
    """

    def __init__(
        self, store: Store, *, name: str = "", settings: RemoteSettings | None = None
    ) -> None:
        super().__init__(store)
        self.name = (name or str(store)).rstrip("/")
        self.settings = settings or remote_settings()
        self._slots: weakref.WeakKeyDictionary[Any, asyncio.Semaphore] = weakref.WeakKeyDictionary()
        raise_zarr_concurrency(self.settings.concurrency)

    def _with_store(self, store: Store) -> RetryStore:
        return type(self)(store, name=self.name, settings=self.settings)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_slots"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._slots = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"RetryStore({self.name!r})"

    def __str__(self) -> str:
        return self.name

    def url(self, key: str) -> str:
        """The URL of `key` for messages."""
        return f"{self.name}/{key}" if key else self.name

    def _slot(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        slot = self._slots.get(loop)
        if slot is None:
            slot = self._slots[loop] = asyncio.Semaphore(self.settings.concurrency)
        return slot

    async def _retrying(self, key: str, call: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        attempts: _Attempts | None = None
        while True:
            async with self._slot():
                if attempts is None:
                    attempts = _Attempts(self.url(key), key, self.settings, loop.time())
                attempts.count += 1
                timeout = asyncio.timeout(max(attempts.remaining(loop.time()), 0.0))
                try:
                    async with timeout:
                        return await call()
                except Exception as exc:  # judged by after_failure: retried or raised
                    error, expired = exc, timeout.expired()
            await asyncio.sleep(attempts.after_failure(error, loop.time(), expired=expired))

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """The value of `key` (None when absent), retried as the settings say."""
        return await self._retrying(key, lambda: self._store.get(key, prototype, byte_range))

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Byte ranges of keys, each fetched (and retried) on its own, side by side."""
        return list(
            await asyncio.gather(*(self.get(key, prototype, rng) for key, rng in key_ranges))
        )

    async def exists(self, key: str) -> bool:
        """Whether `key` exists, retried as the settings say."""
        return await self._retrying(key, lambda: self._store.exists(key))

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        for key, prototype, byte_range in requests:
            yield key, await self.get(key, prototype, byte_range)


def retry_sync(url: str, call: Callable[[float], T], settings: RemoteSettings | None = None) -> T:
    """Run a blocking request `call(seconds_left)` with the retry rules of RetryStore.

    For the few documents read outside zarr (an OME-XML sidecar over HTTP).
    """
    s = settings or remote_settings()
    attempts = _Attempts(url, url.rsplit("/", 1)[-1], s, time.monotonic())
    while True:
        attempts.count += 1
        left = attempts.remaining(time.monotonic())
        try:
            return call(left)
        except Exception as exc:
            expired = attempts.remaining(time.monotonic()) <= 0
            delay = attempts.after_failure(exc, time.monotonic(), expired=expired)
        time.sleep(delay)
