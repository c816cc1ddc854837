"""Zip archives read through fsspec, with missing members reported as missing files.

fsspec's ZipFileSystem before 2026.9 lets zipfile's KeyError escape for a member that is
not in the archive; zarr's FsspecStore and fsspec's mappers only treat FileNotFoundError as
"no such key", so a probe for an absent `.zarray` or `zarr.json` failed the whole open. The
resolver may pick such an fsspec (other packages pin it), so every zip goes through here.
"""

from __future__ import annotations

from typing import Any

from fsspec.implementations.zip import ZipFileSystem


class ZipArchive(ZipFileSystem):
    """A read-only ZipFileSystem whose missing members raise FileNotFoundError."""

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        try:
            return super()._open(path, mode=mode, **kwargs)
        except KeyError as exc:
            raise FileNotFoundError(path) from exc


def zip_filesystem(fo: Any, **options: Any) -> ZipArchive:
    """Open the zip archive `fo` (a path, URL or file object) for reading members."""
    return ZipArchive(fo=fo, mode="r", **options)
