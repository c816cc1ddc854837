"""Multiscale images and label images: metadata parsed, levels as lazy dask arrays."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_omezarr_x.errors import MetadataError, NgffComplianceWarning, StoreAccessError
from napari_omezarr_x.model import Channel, Image
from napari_omezarr_x.spec import metadata as md
from napari_omezarr_x.spec.transforms import placement
from napari_omezarr_x.storage import journal, parallel

from .blocks import CachedReads
from .lazy import ChunkSource, to_dask
from .nodes import Node, NodeReader, access_error, is_missing
from .partial import PartialReads, WholeChunkReads


def integer_levels(image: Image) -> bool:
    return np.dtype(image.levels[0].dtype).kind in "iub"


def label_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _clean_name(name: str | None) -> str | None:
    cleaned = name.strip("/") if isinstance(name, str) else None
    return cleaned or None


class ImageReader(NodeReader):
    """Reads images and their labels from one opened store location."""

    def read_image(
        self,
        path: str,
        group: Node,
        *,
        kind: str = "image",
    ) -> Image:
        """One multiscale image (and its labels): metadata plus lazy levels.

        For a label image, a save of edits into it that was interrupted is
        completed first (see `storage.journal`), so its levels agree; when that
        cannot be done (a read-only folder), a warning says they may disagree.
        """
        where = self.loc.describe(path)
        if kind == "labels" and self._finish_interrupted_saves(path, where):
            group = self.group(path)
        attrs = group.attrs
        ms = md.parse_multiscale(attrs, where)
        fmt = group.zarr_format
        calls: list[Callable[[], Any]] = [
            lambda p=p: self.array(self.loc.join(path, p), fmt) for p in ms.paths
        ]
        if kind == "image":
            calls.append(lambda: self.group(self.loc.join(path, "labels")))
        results = parallel(calls)
        arrays = results[: len(ms.paths)]
        for level_path, arr in zip(ms.paths, arrays, strict=True):
            if isinstance(arr, Exception):
                level_where = self.loc.describe(self.loc.join(path, level_path))
                raise access_error(level_where, arr) from arr
        axes = ms.axes_for(arrays[0].ndim)
        self._check_levels(where, ms.paths, arrays, len(axes))
        ndim = len(axes)
        # Planes of deep blosc chunks in local files decode only their blosc blocks;
        # other reads go through the decoded-chunk cache (plane after plane from deep
        # chunks), below which single whole blosc chunks in local files skip zarr.
        sources = [
            ChunkSource(
                PartialReads(CachedReads(WholeChunkReads(a))),
                self.loc.describe(self.loc.join(path, p)),
            )
            for a, p in zip(arrays, ms.paths, strict=True)
        ]
        try:
            dataset, multiscale = ms.matrices(0, ndim, where)
        except MetadataError as exc:
            # Placement is cosmetic next to the pixels: show them on the pixel grid.
            warnings.warn(
                f"{exc}; the pixel grid is used instead", NgffComplianceWarning, stacklevel=2
            )
            dataset = multiscale = np.eye(ndim + 1)
        image = Image(
            store=self.loc.root,
            path=path,
            version=ms.version,
            name=_clean_name(ms.name),
            axes=axes,
            levels=[to_dask(source, remote=self.loc.remote) for source in sources],
            sources=sources,
            remote=self.loc.remote,
            scale=(1.0,) * ndim,
            translate=(0.0,) * ndim,
            attrs=md.ome_attributes(attrs),
            kind=kind,
            level_paths=list(ms.paths),
        )
        place = placement(dataset, multiscale, image.channel_axis)
        image.scale, image.translate, image.affine = place.scale, place.translate, place.affine
        image.channels = self._channels(image, attrs, where)
        if kind == "labels":
            image.label = md.parse_image_label(attrs, where)
        else:
            labels_group = results[-1]
            if isinstance(labels_group, Exception) and not is_missing(labels_group):
                labels_where = self.loc.describe(self.loc.join(path, "labels"))
                warnings.warn(
                    f"labels skipped: {access_error(labels_where, labels_group)}",
                    NgffComplianceWarning,
                    stacklevel=2,
                )
            elif not isinstance(labels_group, Exception):
                labels_path = self.loc.join(path, "labels")
                image.labels = self.read_labels_group(labels_path, labels_group.attrs, strict=False)
        return image

    def _check_levels(self, where: str, paths: list[str], arrays: list[Any], ndim: int) -> None:
        previous = None
        for level_path, arr in zip(paths, arrays, strict=True):
            if arr.ndim != ndim:
                raise MetadataError(
                    f"{where}/{level_path}: array has {arr.ndim} dimensions but the "
                    f"multiscale declares {ndim} axes"
                )
            if previous is not None and any(
                a > b for a, b in zip(arr.shape, previous, strict=True)
            ):
                raise MetadataError(
                    f"{where}/{level_path}: level shape {tuple(arr.shape)} is larger than the "
                    f"previous level's {tuple(previous)}; levels must go from largest to smallest"
                )
            previous = arr.shape

    def _channels(self, image: Image, attrs: dict[str, Any], where: str) -> list:
        channels = md.parse_channels(attrs, where)
        axis = image.channel_axis
        if axis is None or not channels:
            return channels
        size = image.levels[0].shape[axis]
        if len(channels) != size:
            warnings.warn(
                f"{where}: omero lists {len(channels)} channels but the channel axis has "
                f"{size}; extra entries are ignored and missing ones get defaults",
                NgffComplianceWarning,
                stacklevel=2,
            )
            channels = [*channels[:size], *(Channel() for _ in range(size - len(channels)))]
        return channels

    def read_labels_group(self, path: str, attrs: dict[str, Any], *, strict: bool) -> list[Image]:
        """Label images listed by a `labels` group, read concurrently.

        Broken ones are skipped with a warning; with `strict` (the user opened
        the labels group itself) an empty result is an error instead.
        """
        names = md.label_names(attrs)
        if not names and self.loc.listable:
            names = self.loc.child_names(path)
        paths = [self.loc.join(path, n) for n in names]
        results = parallel([lambda p=p: self.read_label(p, self.group(p)) for p in paths])
        labels = []
        for label_path, result in zip(paths, results, strict=True):
            if isinstance(result, Exception):
                error = access_error(self.loc.describe(label_path), result)
                warnings.warn(f"label skipped: {error}", NgffComplianceWarning, stacklevel=2)
            else:
                labels.append(result)
        if strict and not labels:
            raise MetadataError(f"{self.loc.describe(path)}: labels group holds no readable label")
        return labels

    def read_label(self, path: str, group: Node) -> Image:
        """One label image; it must hold integer data."""
        attrs = group.attrs
        where = self.loc.describe(path)
        if "multiscales" not in md.ome_attributes(attrs):
            raise MetadataError(f"{where}: label group has no 'multiscales'")
        image = self.read_image(path, group, kind="labels")
        if not integer_levels(image):
            raise MetadataError(
                f"{where}: label data must be integers, got {image.levels[0].dtype}"
            )
        image.name = md.label_title(image.name, label_name(path))
        return image

    def _finish_interrupted_saves(self, path: str, where: str) -> bool:
        """Complete interrupted saves into the group at `path`; whether any was replayed."""
        if self.loc.kind != "local":
            return False
        try:
            return journal.recover(Path(self.loc.root) / path, wait=False) > 0
        except (OSError, StoreAccessError) as exc:
            warnings.warn(
                f"{where}: an interrupted save of label edits could not be completed "
                f"({exc}); its pyramid levels may disagree with level 0",
                NgffComplianceWarning,
                stacklevel=3,
            )
            return False
