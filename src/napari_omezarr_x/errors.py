"""Exceptions and warnings raised by napari-omezarr-x.

Every error names the store path (or URL) and what is wrong with it, so that
napari can show the message to the user as it is.
"""

from __future__ import annotations


class OmeZarrXError(Exception):
    """Base class of every error raised by this package."""


class NotOmeZarrError(OmeZarrXError, ValueError):
    """The path is not an OME-Zarr store (nothing of ours to open)."""


class MetadataError(OmeZarrXError, ValueError):
    """OME-NGFF metadata is malformed or inconsistent with the arrays."""


class StoreAccessError(OmeZarrXError, OSError):
    """A store could not be reached or read (missing path, HTTP failure, bad zip)."""


class MissingDependencyError(OmeZarrXError, ImportError):
    """An optional package a store needs is not installed; the message names the pip install."""


class RemoteReadError(StoreAccessError):
    """A remote read failed for good: after retries, at its deadline, or permanently.

    Carries what a user or a log needs to act on it: the URL (store and key),
    the HTTP status when there was one, how many attempts were made and how
    long they took, and whether the failure was transient (worth trying
    again later) or permanent (403, a malformed answer).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        key: str = "",
        status: int | None = None,
        attempts: int = 1,
        elapsed: float = 0.0,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.key = key
        self.status = status
        self.attempts = attempts
        self.elapsed = elapsed
        self.transient = transient


class StoreExistsError(OmeZarrXError, FileExistsError):
    """A write would replace something that is not an OME-Zarr store."""


class TargetExistsError(StoreExistsError):
    """An OME-Zarr already exists where a write was asked not to replace anything.

    `target` is the path; `advice(how)` words the message for the caller's own way
    of asking for a replacement (`overwrite=True` in Python, `--overwrite` in the CLI).
    """

    def __init__(self, target: str, how: str = "pass overwrite=True") -> None:
        self.target = target
        super().__init__(self.advice(how))

    def advice(self, how: str) -> str:
        """The message, with `how` telling the user what replaces the store."""
        return f"{self.target}: already exists ({how} to replace it)"


class ReadOnlyStoreError(OmeZarrXError, PermissionError):
    """A write was asked of a store that cannot be written (remote, zipped, read-only)."""


class SaveError(OmeZarrXError):
    """A save through napari failed; the message says why.

    Not a ValueError on purpose: napari takes a ValueError from a writer for "no
    writer found" and shows only "... is not a valid writer".
    """


class RegionTooLargeError(OmeZarrXError, MemoryError):
    """A read would return more data than is allowed at once (a whole huge volume)."""


class NgffComplianceWarning(UserWarning):
    """Data that can be read but does not follow the OME-NGFF specification."""
