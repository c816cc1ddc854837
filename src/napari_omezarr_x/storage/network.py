"""How remote reads behave: timeouts, retries, deadline and requests in flight.

One process-wide `RemoteSettings` applies to every remote store opened after
it is set (stores keep the settings they were opened with). The defaults suit
a laptop on a remote link; each field can be changed with an environment
variable (`NAPARI_OMEZARR_X_<FIELD>`, e.g. `NAPARI_OMEZARR_X_DEADLINE=60`) or
from Python with `configure_remote(deadline=60)`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "NAPARI_OMEZARR_X_"


@dataclass(frozen=True)
class RemoteSettings:
    """Timeouts, retries and concurrency of remote reads (seconds, counts).

    - `connect_timeout`: a connection must be made within this (per attempt).
    - `read_timeout`: an attempt fails when no byte arrives for this long.
    - `deadline`: one key's read ends after this, all attempts included, so a
      body that trickles a byte at a time ends too.
    - `attempts`: tries per key for transient failures (HTTP 408, 429, 500,
      502, 503, 504, resets, truncated bodies, timeouts); 1 disables retries.
    - `backoff`, `max_backoff`: wait before the second attempt, doubled per
      attempt up to `max_backoff` (with jitter; a longer `Retry-After` wins).
    - `concurrency`: most requests in flight per opened store; zarr's own
      per-call limit (`async.concurrency`) is raised to it while it is still
      at zarr's default, so that one plane's chunks are fetched side by side.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 30.0
    attempts: int = 4
    backoff: float = 0.25
    max_backoff: float = 4.0
    concurrency: int = 32

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and (not isinstance(value, int) or value < 1):
                raise ValueError(f"remote setting {field.name} must be a whole number >= 1")
            if field.type == "float" and not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"remote setting {field.name} must be a number of seconds > 0")


_lock = threading.Lock()
_current: RemoteSettings | None = None
# The value raise_zarr_concurrency last gave zarr (so it may raise it again).
_zarr_concurrency_set: int | None = None


def settings_from_env(environ: dict[str, str] | None = None) -> RemoteSettings:
    """Defaults overridden by `NAPARI_OMEZARR_X_<FIELD>` variables; ValueError names a bad one."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in fields(RemoteSettings):
        name = ENV_PREFIX + field.name.upper()
        text = env.get(name)
        if text is None or not text.strip():
            continue
        try:
            values[field.name] = int(text) if field.type == "int" else float(text)
        except ValueError:
            kind = "a whole number" if field.type == "int" else "a number of seconds"
            raise ValueError(f"{name}={text!r} is not {kind}") from None
    try:
        return RemoteSettings(**values)
    except ValueError as exc:
        raise ValueError(f"{exc} (from {ENV_PREFIX}* environment variables)") from None


def remote_settings() -> RemoteSettings:
    """The settings new remote stores get (from the environment until configured)."""
    global _current
    with _lock:
        if _current is None:
            _current = settings_from_env()
        return _current


def configure_remote(**changes: Any) -> RemoteSettings:
    """Change fields of the remote settings for stores opened from now on; returns them.

    `configure_remote(deadline=60, attempts=6)`; unknown names raise TypeError.
    """
    global _current
    updated = dataclasses.replace(remote_settings(), **changes)
    with _lock:
        _current = updated
    return updated


def reset_remote() -> RemoteSettings:
    """Back to the defaults and the environment variables (as at start-up)."""
    global _current
    with _lock:
        _current = settings_from_env()
        return _current


def raise_zarr_concurrency(wanted: int) -> None:
    """Let one zarr call fetch `wanted` chunks at once, unless the user set zarr's limit.

    zarr reads the chunks of one selection concurrently, at most
    `async.concurrency` at a time (10 by default): a 16-chunk plane would
    take two round trips. The value is only raised from zarr's own default,
    never lowered and never changed once a user (or ZARR_ASYNC__CONCURRENCY)
    set it.
    """
    import zarr

    global _zarr_concurrency_set
    current = zarr.config.get("async.concurrency")
    ours = current in (_zarr_default_concurrency(), _zarr_concurrency_set)
    if ours and wanted > current:
        zarr.config.set({"async.concurrency": wanted})
        _zarr_concurrency_set = wanted


def _zarr_default_concurrency() -> int | None:
    import zarr

    for defaults in zarr.config.defaults:
        value = defaults.get("async", {}).get("concurrency")
        if value is not None:
            return int(value)
    return None
