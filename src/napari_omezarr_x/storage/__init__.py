"""The one door to bytes: where stores are, how to open them, how to replace them.

Holds `StoreLike` (what every public function accepts as a store) and the openers
of every kind of location (local folders, zip files, http(s) URLs, object stores
such as S3, GCS and Azure, zarr stores and groups, fsspec mappers), the rules of
remote reads (`network`: timeouts, retries, requests in flight; `retry`: the zarr
store wrapper applying them, imported on use as it needs zarr), raw key views
for the validator, JSON documents of local folders and object stores, crash-safe
replacement of folders and files, crash-safe updates of many files of one folder
(`journal`, used to save label edits), concurrent I/O calls, batches of small
documents read at once, the engine that encodes and decodes chunks (zarrs's
native codec pipeline where it can, else zarr's own), and part of a blosc chunk
file read and decoded without the rest (`blosc`, imported on use). Everything above (`spec`,
`read`, `write`, the applications and `_napari`) reaches files and URLs only
through here. Imports nothing of this package but `errors`.
"""

from __future__ import annotations

from .atomic import (
    check_replaceable,
    ensure_writable,
    move_into_place,
    staging_dir,
    write_file,
)
from .batch import read_many
from .concurrency import parallel
from .documents import Documents, documents_for, dump_json, read_json, write_json
from .engine import ENGINES, current_engine, serial_store, set_engine
from .engine import apply as apply_engine
from .locations import (
    HTTP_SCHEMES,
    METADATA_FILES,
    ZIP_SUFFIXES,
    Location,
    StoreLike,
    check_scheme,
    is_object_url,
    is_remote,
    is_url,
    layout1_data_dir,
    local_path,
    open_location,
    open_store,
    read_local_attrs,
    split_zip_path,
    url_scheme,
)
from .mappers import open_mapper
from .network import RemoteSettings, configure_remote, remote_settings, reset_remote
from .objects import ObjectKeys, object_error, object_scheme, object_store, zarr_object_store

__all__ = [
    "ENGINES",
    "HTTP_SCHEMES",
    "METADATA_FILES",
    "ZIP_SUFFIXES",
    "Documents",
    "Location",
    "ObjectKeys",
    "RemoteSettings",
    "StoreLike",
    "apply_engine",
    "check_replaceable",
    "check_scheme",
    "configure_remote",
    "current_engine",
    "documents_for",
    "dump_json",
    "ensure_writable",
    "is_object_url",
    "is_remote",
    "is_url",
    "layout1_data_dir",
    "local_path",
    "move_into_place",
    "object_error",
    "object_scheme",
    "object_store",
    "open_location",
    "open_mapper",
    "open_store",
    "parallel",
    "read_json",
    "read_local_attrs",
    "read_many",
    "remote_settings",
    "reset_remote",
    "serial_store",
    "set_engine",
    "split_zip_path",
    "staging_dir",
    "url_scheme",
    "write_file",
    "write_json",
    "zarr_object_store",
]
