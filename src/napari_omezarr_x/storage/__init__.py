"""The one door to bytes: where stores are, how to open them, how to replace them.

Holds the openers of every kind of location (local folders, zip files, http(s)
URLs), raw key views for the validator, JSON documents of local stores, crash-safe
replacement of folders and files, and concurrent I/O calls. Everything above
(`spec`, `read`, `write`, the applications and `_napari`) reaches files and URLs
only through here. Imports nothing of this package but `errors`.
"""

from __future__ import annotations

from .atomic import (
    check_replaceable,
    ensure_writable,
    move_into_place,
    staging_dir,
    write_file,
)
from .concurrency import parallel
from .documents import read_json, write_json
from .locations import (
    HTTP_CONNECT_TIMEOUT,
    HTTP_READ_TIMEOUT,
    METADATA_FILES,
    ZIP_SUFFIXES,
    Location,
    is_remote,
    is_url,
    layout1_data_dir,
    local_path,
    open_location,
    open_store,
    read_local_attrs,
    split_zip_path,
)
from .mappers import open_mapper

__all__ = [
    "HTTP_CONNECT_TIMEOUT",
    "HTTP_READ_TIMEOUT",
    "METADATA_FILES",
    "ZIP_SUFFIXES",
    "Location",
    "check_replaceable",
    "ensure_writable",
    "is_remote",
    "is_url",
    "layout1_data_dir",
    "local_path",
    "move_into_place",
    "open_location",
    "open_mapper",
    "open_store",
    "parallel",
    "read_json",
    "read_local_attrs",
    "split_zip_path",
    "staging_dir",
    "write_file",
    "write_json",
]
