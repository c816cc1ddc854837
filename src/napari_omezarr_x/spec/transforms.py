"""OME-NGFF coordinate transformations as homogeneous matrices.

Every NGFF version describes where pixels sit in physical space with a list of
transformations (0.4/0.5: `scale` and `translation`; 0.6-dev adds `identity`,
`affine`, `rotation`, `mapAxis` and `sequence`). Viewers want a per-axis
scale and translate plus, only when really needed, an affine matrix. This
module turns transformation lists into (ndim+1)x(ndim+1) matrices and splits
the result back into those three parts.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_omezarr_x.errors import MetadataError, NgffComplianceWarning

_TOL = 1e-9


@dataclass(frozen=True)
class Placement:
    """Where level 0 sits: per-axis scale and translate, plus an optional affine.

    `affine`, when set, is a homogeneous matrix over the axes that remain once
    the channel axis is removed, applied after scale and translate.
    """

    scale: tuple[float, ...]
    translate: tuple[float, ...]
    affine: np.ndarray | None = None


def _vector(value: Any, ndim: int, key: str, where: str) -> np.ndarray:
    try:
        vec = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise MetadataError(f"{where}: transformation '{key}' is not a list of numbers") from exc
    if vec.shape != (ndim,):
        raise MetadataError(
            f"{where}: transformation '{key}' has {vec.size} values, expected {ndim} (one per axis)"
        )
    return vec


def _affine(value: Any, ndim: int, where: str) -> np.ndarray:
    try:
        mat = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise MetadataError(f"{where}: 'affine' is not a matrix of numbers") from exc
    if mat.ndim == 1 and mat.size == ndim * (ndim + 1):
        mat = mat.reshape(ndim, ndim + 1)
    if mat.shape == (ndim, ndim + 1):
        mat = np.vstack([mat, np.eye(1, ndim + 1, ndim)])
    if mat.shape != (ndim + 1, ndim + 1):
        raise MetadataError(
            f"{where}: 'affine' has shape {mat.shape}, expected ({ndim}, {ndim + 1}) "
            f"or ({ndim + 1}, {ndim + 1})"
        )
    if not np.allclose(mat[ndim], np.eye(1, ndim + 1, ndim)):
        # e.g. a 3x3 matrix placing 2-D data in 3-D space, not a 2-D homogeneous affine.
        raise MetadataError(
            f"{where}: 'affine' does not map {ndim} axes to {ndim} axes (last row "
            f"{mat[ndim].tolist()})"
        )
    return mat


def _map_axis(value: Any, ndim: int, where: str) -> np.ndarray:
    if isinstance(value, dict):
        # Early RFC-5 drafts spelled it {output axis: input axis} by name; the
        # names are not known here, so only integer values can be honoured.
        value = list(value.values())
    perm = [int(v) for v in value] if isinstance(value, list) else []
    if sorted(perm) != list(range(ndim)):
        raise MetadataError(f"{where}: 'mapAxis' {value!r} is not a permutation of {ndim} axes")
    mat = np.zeros((ndim + 1, ndim + 1))
    for out_axis, in_axis in enumerate(perm):
        mat[out_axis, in_axis] = 1.0
    mat[ndim, ndim] = 1.0
    return mat


def transform_matrix(transform: dict[str, Any], ndim: int, where: str) -> np.ndarray:
    """Homogeneous matrix of one NGFF transformation over `ndim` axes.

    Transformations that cannot be expressed as a matrix (displacement fields,
    values stored in binary arrays) are ignored with an NgffComplianceWarning,
    because the image is still worth showing with its pixel grid.
    """
    if not isinstance(transform, dict):
        raise MetadataError(f"{where}: transformation {transform!r} is not an object")
    kind = transform.get("type")
    mat = np.eye(ndim + 1)
    if kind == "identity":
        return mat
    if kind == "sequence":
        return sequence_matrix(transform.get("transformations") or [], ndim, where)
    if kind in ("scale", "translation") and kind not in transform and "path" in transform:
        warnings.warn(
            f"{where}: '{kind}' stored in the array {transform['path']!r} is not supported; "
            "it is ignored",
            NgffComplianceWarning,
            stacklevel=2,
        )
        return mat
    if kind == "scale":
        mat[:ndim, :ndim] = np.diag(_vector(transform.get("scale"), ndim, "scale", where))
        return mat
    if kind == "translation":
        mat[:ndim, ndim] = _vector(transform.get("translation"), ndim, "translation", where)
        return mat
    if kind == "affine":
        return _affine(transform.get("affine"), ndim, where)
    if kind == "rotation":
        rot = np.asarray(transform.get("rotation"), dtype=float)
        if rot.shape != (ndim, ndim):
            raise MetadataError(
                f"{where}: 'rotation' has shape {rot.shape}, expected {ndim}x{ndim}"
            )
        mat[:ndim, :ndim] = rot
        return mat
    if kind == "mapAxis":
        return _map_axis(transform.get("mapAxis"), ndim, where)
    if kind == "bijection" and isinstance(transform.get("forward"), dict):
        return transform_matrix(transform["forward"], ndim, where)
    warnings.warn(
        f"{where}: transformation type {kind!r} is not supported; it is ignored",
        NgffComplianceWarning,
        stacklevel=2,
    )
    return mat


def sequence_matrix(transforms: Sequence[dict[str, Any]], ndim: int, where: str) -> np.ndarray:
    """Matrix of a list of transformations applied in order (first one first)."""
    if not isinstance(transforms, list | tuple):
        raise MetadataError(f"{where}: 'coordinateTransformations' is not a list")
    total = np.eye(ndim + 1)
    for transform in transforms:
        total = transform_matrix(transform, ndim, where) @ total
    return total


def _is_diagonal(mat: np.ndarray) -> bool:
    linear = mat[:-1, :-1]
    return bool(np.all(np.abs(linear - np.diag(np.diag(linear))) < _TOL))


def _drop_axis(mat: np.ndarray, axis: int | None) -> np.ndarray:
    if axis is None:
        return mat
    keep = [i for i in range(mat.shape[0]) if i != axis]
    return mat[np.ix_(keep, keep)]


def placement(
    dataset: np.ndarray,
    multiscale: np.ndarray,
    channel_axis: int | None = None,
) -> Placement:
    """Split level 0's dataset matrix combined with the multiscale matrix into a Placement.

    Purely axis-aligned results become scale and translate only. When the
    combination rotates or shears, the dataset part (usually axis-aligned)
    stays as scale/translate and the rest becomes the affine, so that the
    layer's scale still reports the pixel size.
    """
    ndim = dataset.shape[0] - 1
    total = multiscale @ dataset
    if _is_diagonal(total):
        return Placement(
            tuple(float(v) for v in np.diag(total)[:ndim]),
            tuple(float(v) for v in total[:ndim, ndim]),
        )
    if _is_diagonal(dataset):
        scale, translate, affine = dataset, dataset, multiscale
    else:
        scale = translate = np.eye(ndim + 1)
        affine = total
    return Placement(
        tuple(float(v) for v in np.diag(scale)[:ndim]),
        tuple(float(v) for v in translate[:ndim, ndim]),
        _drop_axis(affine, channel_axis),
    )
