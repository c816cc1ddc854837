"""JSON metadata documents of local stores: read one, replace one atomically.

Small edits of a store (channel settings, the `labels` list of an image) touch
a single document; it is replaced through a temporary file in the same folder,
so a crash leaves either the old or the new document, never half of one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from napari_omezarr_x.errors import MetadataError

from .atomic import write_file

# Indentation zarr-python itself uses for each metadata flavour.
_INDENT = {".zattrs": 4, ".zmetadata": 4, "zarr.json": 2}


def read_json(doc: Path) -> dict[str, Any]:
    """The JSON object in `doc`; MetadataError naming the file when it cannot be read."""
    try:
        data = json.loads(doc.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{doc}: cannot read metadata ({exc})") from exc
    if not isinstance(data, dict):
        raise MetadataError(f"{doc} does not hold a JSON object")
    return data


def write_json(doc: Path, document: Mapping[str, Any], indent: int | None = None) -> None:
    """Replace `doc` by the JSON of `document`, keeping the file's permission bits."""
    text = json.dumps(document, indent=indent or _INDENT.get(doc.name, 2), allow_nan=False)
    mode = doc.stat().st_mode & 0o777 if doc.exists() else 0o644
    write_file(doc, text.encode("utf-8"), mode=mode)
