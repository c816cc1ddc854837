"""Model -> plans -> pyramids -> stores: everything that writes OME-Zarr.

- `stores`: the public API (`write_image`, `write_labels`, `add_labels`,
  `write_store`) and the crash-safe build of a store;
- `plates`: HCS plates (`write_plate`: plate and well metadata, fields, labels
  per field) and plate mosaics cut back into wells;
- `layout`: where each napari layer of a multi-layer save goes;
- `targets`: where a save goes and how it stays safe there (a staging folder
  and an atomic exchange; in object stores fresh array paths, documents from the
  leaves up with the root last, then garbage collection);
- `plan`: one image as zarr arrays (levels, chunks, shards, codecs, attributes);
- `execute`: the single dask pass that writes every plan, locally or on a
  dask.distributed cluster, with progress;
- `pyramid`: pyramid planning and the downsampling kernels;
- `documents`: the NGFF JSON the writer produces;
- `existing`: what adding labels needs to know of an existing image;
- `labels_update`: label images edited in place (`open_labels`, `update_labels`)
  and saved by rewriting only what changed, over `editable` (a numpy-like
  overlay of edited chunks) and `label_image` (the label image on disk).

May import `storage`, `spec`, `read`, `model` and `errors`; never napari.
A local save makes threads started from then on share glibc's malloc arena
(`execute.share_malloc_arena`), which keeps a save's memory flat.
"""

from __future__ import annotations

from .labels_update import EditableLabels, SaveReport, open_labels, update_labels
from .plates import FieldSpec, WellSpec, write_plate
from .stores import (
    ImageSpec,
    LabelsSpec,
    add_labels,
    is_image,
    write_image,
    write_labels,
    write_store,
)

__all__ = [
    "EditableLabels",
    "FieldSpec",
    "ImageSpec",
    "LabelsSpec",
    "SaveReport",
    "WellSpec",
    "add_labels",
    "is_image",
    "open_labels",
    "update_labels",
    "write_image",
    "write_labels",
    "write_plate",
    "write_store",
]
