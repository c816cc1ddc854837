"""Which codec pipeline zarr encodes and decodes chunks with: zarrs where it can, else zarr's own.

The `zarrs` package is a codec pipeline for zarr-python backed by the Rust zarrs
crate. Where it is installed it becomes zarr's pipeline the first time this package
opens or creates a store (zarr is imported lazily, so importing the package stays
cheap for napari's first look at a path). It is installed through
`EnginePipeline`, which gives every array in a local folder zarrs's pipeline when
zarrs supports its codecs and data type, and zarr-python's own pipeline otherwise
(zip files, HTTP and object stores, big-endian zarr v2 data, codecs zarrs lacks),
without a warning either way.

The switch: the environment variable `NAPARI_OMEZARR_X_ENGINE` (`zarrs` or
`zarr-python`) or `set_engine(...)` at run time. Someone who configured zarr's
pipeline themselves (`zarr.config` or `ZARR_CODEC_PIPELINE__PATH`) keeps it: only
an explicit `set_engine` call replaces it. The same choice says whether saves may
write whole chunks of new local arrays themselves (`direct_writes`, `chunk_files`):
not with zarr-python's pipeline chosen or the user's own.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zarr.abc.codec import CodecPipeline
    from zarr.abc.store import Store
    from zarr.core.metadata import ArrayMetadata

log = logging.getLogger(__name__)

#: Environment variable choosing the engine: one of `ENGINES`.
ENV = "NAPARI_OMEZARR_X_ENGINE"
#: `zarrs`: the native pipeline where it supports the array; `zarr-python`: zarr's own.
ENGINES = ("zarrs", "zarr-python")
ZARR_PIPELINE = "zarr.core.codec_pipeline.BatchedCodecPipeline"
_ZARR_ENV = "ZARR_CODEC_PIPELINE__PATH"

_lock = threading.RLock()
_applied = False
# Whether savers may write whole chunks of new local arrays themselves (chunk_files).
_direct = True
# Marks a store object made by `serial_store`.
_SERIAL = "_napari_omezarr_x_serial_calls"


def serial_store(root: str | os.PathLike[str]) -> Store:
    """A writable local store whose arrays encode each call's chunks on the calling thread.

    For writers that already run one task per core (our dask pass): zarrs's own
    thread pool would only compete with them (about 8% more CPU time, most of it
    system time, for a pyramid of (1, 64, 256, 256) zstd-5 chunks on a busy
    2-core machine). zarr-python's pipeline is unaffected.
    """
    import zarr.storage

    store = zarr.storage.LocalStore(root)
    setattr(store, _SERIAL, True)
    return store


def zarrs_available() -> bool:
    """Whether the zarrs package can be imported on this machine."""
    try:
        import zarrs  # noqa: F401
    except ImportError:
        return False
    return True


def _pipeline_path() -> str:
    return f"{EnginePipeline.__module__}.{EnginePipeline.__qualname__}"


def current_engine() -> str:
    """The engine arrays opened from now on get: `zarrs`, `zarr-python` or `user` (another
    pipeline someone configured in zarr)."""
    import zarr

    path = zarr.config.get("codec_pipeline.path")
    if path == _pipeline_path():
        return "zarrs"
    return "zarr-python" if path == ZARR_PIPELINE else "user"


def set_engine(name: str) -> str:
    """Make arrays opened from now on use engine `name` (`zarrs` or `zarr-python`).

    Arrays already open keep the pipeline they were opened with. Asking for
    `zarrs` where it is not installed raises ImportError.
    """
    global _applied, _direct
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}: use one of {', '.join(ENGINES)}")
    if name == "zarrs" and not zarrs_available():
        raise ImportError("the zarrs engine needs the zarrs package: pip install zarrs")
    import zarr
    from zarr.registry import register_pipeline

    register_pipeline(EnginePipeline)
    with _lock:
        zarr.config.set(
            {"codec_pipeline.path": _pipeline_path() if name == "zarrs" else ZARR_PIPELINE}
        )
        _applied = True
        _direct = name == "zarrs"
    return name


def direct_writes() -> bool:
    """Whether a save may encode and write whole chunks of new local arrays itself
    (`chunk_files`): yes unless zarr-python's pipeline was chosen or the user
    configured zarr's pipeline."""
    apply()
    return _direct


def apply() -> None:
    """Install the engine chosen by the environment, once, unless zarr was configured.

    Called by everything in this package that opens or creates a store. An
    unknown value of `NAPARI_OMEZARR_X_ENGINE` is logged and the default kept.
    """
    global _applied, _direct
    if _applied:
        return
    # Held throughout, so no thread opens an array before the choice is made.
    with _lock:
        if _applied:
            return
        _applied = True
        import zarr

        if os.environ.get(_ZARR_ENV) or zarr.config.get("codec_pipeline.path") != ZARR_PIPELINE:
            log.debug("zarr's codec pipeline was configured by the user: left as it is")
            _direct = False
            return
        wanted = os.environ.get(ENV, "").strip().lower() or "zarrs"
        if wanted not in ENGINES:
            log.warning("%s=%r is not one of %s: using zarrs", ENV, wanted, ", ".join(ENGINES))
            wanted = "zarrs"
        if wanted == "zarrs" and not zarrs_available():
            log.debug("zarrs is not installed: zarr-python's codec pipeline stays")
            return
        set_engine(wanted)


def _native_byte_order(metadata: ArrayMetadata) -> bool:
    try:
        return bool(metadata.dtype.to_native_dtype().isnative)
    except (AttributeError, TypeError):
        return False


def _native_store(store: Store) -> bool:
    """Whether zarrs may read and write `store` itself: local folders only.

    zarrs also takes HTTP stores (without options, so not ours, which carry
    connect and read timeouts) and obstore's object stores, but with obstore
    0.12 and zarrs 0.2.3 its requests to a local S3 server failed, each after a
    60 s timeout, where obstore's own succeed at once.
    """
    from zarr.storage import LocalStore

    return isinstance(store, LocalStore)


def _codecs(metadata: ArrayMetadata) -> list[Any]:
    """The codecs of an array as zarr builds its pipeline from them (v2: one wrapper)."""
    from zarr.codecs._v2 import V2Codec
    from zarr.core.metadata import ArrayV2Metadata

    if isinstance(metadata, ArrayV2Metadata):
        return [V2Codec(filters=metadata.filters, compressor=metadata.compressor)]
    return list(metadata.codecs)


def _zarrs_pipeline(metadata: ArrayMetadata, store: Store) -> CodecPipeline:
    """zarrs's pipeline for this array; raises if zarrs cannot take its codecs or store.

    zarrs's own constructor would warn and fall back per array; asking it to be
    strict lets this module choose zarr's pipeline quietly instead.
    """
    from zarr.core.codec_pipeline import BatchedCodecPipeline
    from zarrs.pipeline import get_codec_pipeline_impl

    from .native import GuardedZarrsPipeline

    if getattr(store, _SERIAL, False):
        impl = _impl_with_threads(metadata, store, 1)
    else:
        impl = get_codec_pipeline_impl(metadata, store, strict=True)
    if impl is None:
        raise ValueError("zarrs declined the array's codecs or store")
    # zarr-python's pipeline stays inside for the selections zarrs cannot index
    # and for writes to read-only stores.
    fallback = BatchedCodecPipeline.from_codecs(_codecs(metadata))
    return GuardedZarrsPipeline(metadata=metadata, store=store, impl=impl, python_impl=fallback)


def _impl_with_threads(metadata: ArrayMetadata, store: Store, threads: int) -> Any:
    """zarrs's pipeline core as zarrs makes it from zarr's config, with `threads` threads."""
    import zarr
    from zarrs.pipeline import CodecPipelineImpl

    checksums = zarr.config.get("codec_pipeline.validate_checksums", True)
    return CodecPipelineImpl(
        json.dumps(metadata.to_dict()),
        store_config=store,
        validate_checksums=True if checksums is None else checksums,
        chunk_concurrent_minimum=zarr.config.get("codec_pipeline.chunk_concurrent_minimum", None),
        chunk_concurrent_maximum=zarr.config.get("codec_pipeline.chunk_concurrent_maximum", None),
        num_threads=threads,
        direct_io=zarr.config.get("codec_pipeline.direct_io", False),
    )


def pipeline_name(array: Any) -> str:
    """The class name of the codec pipeline a zarr array reads and writes with."""
    return type(array.async_array.codec_pipeline).__name__


class EnginePipeline:
    """The class zarr's `codec_pipeline.path` names when the zarrs engine is on.

    zarr asks it for each array's pipeline (`from_array_metadata_and_store`) and
    for the inner pipelines of sharding codecs (`from_codecs`); it hands back
    zarrs's pipeline where zarrs supports the array and its store, and
    zarr-python's pipeline otherwise. It is a factory: no instance is ever made.
    """

    @classmethod
    def from_array_metadata_and_store(
        cls, array_metadata: ArrayMetadata, store: Store
    ) -> CodecPipeline:
        """zarrs's pipeline if it takes this array and store; NotImplementedError tells
        zarr to build its own from the codecs instead."""
        # zarrs 0.2.3 failed reads of Fortran-ordered zarr v2 arrays ("input array must be a
        # C contiguous array"): those keep zarr-python's pipeline.
        c_order = getattr(array_metadata, "order", "C") == "C"
        if c_order and _native_byte_order(array_metadata) and _native_store(store):
            try:
                return _zarrs_pipeline(array_metadata, store)
            except Exception as exc:  # zarrs raises its own types for what it lacks
                log.debug("zarrs declined %s: %s: %s", store, type(exc).__name__, exc)
        # zarr then builds its own pipeline through `from_codecs`.
        raise NotImplementedError("zarr-python's pipeline for this array")

    @classmethod
    def from_codecs(cls, codecs: Iterable[Any]) -> CodecPipeline:
        """zarr-python's pipeline of `codecs` (inner chunks of shards, metadata-less uses)."""
        from zarr.core.codec_pipeline import BatchedCodecPipeline

        return BatchedCodecPipeline.from_codecs(codecs)
