"""Saving a pyramid from a lazily read (dask) volume with each tool.

Every function takes the input zarr path, the output path and the case parameters, writes
with blosc-zstd and (1, 64, 256, 256) chunks, and returns extra facts for the record. The
pyramid has the same 2x factors (z, y and x) for every tool, from ``volumes.pyramid_factors``.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable

import dask.array as da
import zarr
from volumes import IMAGE_CHUNKS, blosc_zstd, clip_chunks, pyramid_factors

IMAGE_AXES = ("c", "z", "y", "x")
LABEL_AXES = ("z", "y", "x")


def lazy_input(path: str) -> da.Array:
    """The input volume as a dask array with one dask chunk per zarr chunk."""
    return da.from_zarr(zarr.open_array(path, mode="r"))


def _chunks(arr: da.Array) -> tuple[int, ...]:
    return clip_chunks(arr.shape, IMAGE_CHUNKS[-arr.ndim :])


def _factor_dicts(arr: da.Array) -> list[dict[str, int]]:
    return [{"z": f, "y": f, "x": f} for f in pyramid_factors(arr.shape[-3:])]


def ours(kind: str, src: str, out: str, params: dict) -> dict:
    """napari-omezarr-x ``write_image`` (block mean) / ``write_labels`` (mode).

    With ``defaults`` it uses its own default chunks, compression level and depth.
    """
    from napari_omezarr_x import write

    arr = lazy_input(src)
    kwargs = {
        "axes": list(IMAGE_AXES if kind == "image" else LABEL_AXES),
        "version": params.get("version", "0.5"),
        "overwrite": True,
    }
    if not params.get("defaults"):
        # The same chunks, codec and pyramid depth as the other tools get.
        kwargs["chunks"] = _chunks(arr)
        kwargs["levels"] = len(pyramid_factors(arr.shape[-3:])) + 1
        kwargs["compression"] = "zstd"
        kwargs["clevel"] = 5
    if params.get("sharded"):
        kwargs["shards"] = True
    if kind == "image":
        write.write_image(out, arr, **kwargs)
    else:
        write.write_labels(out, arr, **kwargs)
    from napari_omezarr_x.storage import current_engine

    return {"version": importlib.metadata.version("napari-omezarr-x"), "engine": current_engine()}


def ome_zarr_py(kind: str, src: str, out: str, params: dict) -> dict:
    """ome-zarr-py ``write_image`` (default resize method) or ``write_labels`` (nearest)."""
    from ome_zarr import writer
    from ome_zarr.format import FormatV04, FormatV05

    arr = lazy_input(src)
    fmt = FormatV04() if params.get("version") == "0.4" else FormatV05()
    group = zarr.open_group(out, mode="w", zarr_format=fmt.zarr_format)
    options = {"chunks": _chunks(arr), "compressor": _compressor(fmt.zarr_format)}
    if kind == "image":
        writer.write_image(
            arr,
            group,
            scale_factors=_factor_dicts(arr),
            axes=list(IMAGE_AXES),
            fmt=fmt,
            storage_options=options,
        )
    else:
        writer.write_labels(
            arr,
            group,
            name="cells",
            scaler=None,
            scale_factors=_factor_dicts(arr),
            axes=list(LABEL_AXES),
            fmt=fmt,
            storage_options=options,
        )
    return {"version": importlib.metadata.version("ome-zarr")}


def _compressor(zarr_format: int):
    if zarr_format == 2:
        from numcodecs import Blosc

        return Blosc(cname="zstd", clevel=5, shuffle=Blosc.SHUFFLE)
    return blosc_zstd()


def ngff_zarr(kind: str, src: str, out: str, params: dict) -> dict:
    """ngff-zarr ``to_multiscales`` + ``to_ngff_zarr`` (default method; label method for labels)."""
    import ngff_zarr as nz

    arr = lazy_input(src)
    axes = IMAGE_AXES if kind == "image" else LABEL_AXES
    image = nz.to_ngff_image(arr, dims=list(axes))
    method = nz.Methods.ITKWASM_LABEL_IMAGE if kind == "labels" else None
    multiscales = nz.to_multiscales(
        image, scale_factors=_factor_dicts(arr), method=method, chunks=_chunks(arr)
    )
    version = params.get("version", "0.5")
    if version == "0.4":
        codec = {"compressor": {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 1}}
    else:
        codec = {"compressors": [blosc_zstd().to_dict()]}
    nz.to_ngff_zarr(out, multiscales, version=version, **codec)
    return {"version": importlib.metadata.version("ngff-zarr"), "method": str(method)}


def ceiling(kind: str, src: str, out: str, params: dict) -> dict:
    """Plain dask-to-zarr copy of the full-resolution level only, zarr's defaults throughout.

    With ``engine: zarrs`` zarr uses the zarrs codec pipeline for it (as its README says).
    """
    if params.get("engine") == "zarrs":
        zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})
    arr = lazy_input(src)
    target = zarr.create_array(
        store=out,
        shape=arr.shape,
        chunks=_chunks(arr),
        dtype=arr.dtype,
        compressors=[blosc_zstd()],
        overwrite=True,
    )
    da.store(arr, target, lock=False)
    engine = params.get("engine", "zarr-python")
    package = "zarrs" if engine == "zarrs" else "zarr"
    return {"version": importlib.metadata.version(package), "engine": engine}


def blosc_limit(kind: str, src: str, out: str, params: dict) -> dict:
    """blosc alone encoding the same chunks on all cores (see ``limits.py``)."""
    from limits import save_limit

    record = save_limit(kind, src, out, params)
    record["version"] = importlib.metadata.version("numcodecs")
    return record


TOOLS: dict[str, Callable[[str, str, str, dict], dict]] = {
    "ours": ours,
    "ome-zarr-py": ome_zarr_py,
    "ngff-zarr": ngff_zarr,
    "zarr-ceiling": ceiling,
    "blosc-limit": blosc_limit,
}
