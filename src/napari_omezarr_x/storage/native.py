"""zarrs's codec pipeline, kept from writing into stores opened read-only.

zarrs writes chunks through a store of its own made from the zarr store's
address, so zarr's read-only check never runs (zarrs 0.2.3 overwrote chunks of
a store opened with `read_only=True`). Writes to such a store go through
zarr-python's pipeline here, which refuses them as zarr always does. Imported
only where zarrs is installed.
"""

from __future__ import annotations

from typing import Any

from zarrs import ZarrsCodecPipeline


class GuardedZarrsPipeline(ZarrsCodecPipeline):
    """zarrs's pipeline whose writes to read-only stores zarr-python's pipeline makes."""

    async def write(self, batch_info: Any, value: Any, drop_axes: tuple[int, ...] = ()) -> None:
        """Write chunks with zarrs, unless the store is read-only (zarr then refuses)."""
        if getattr(self.store, "read_only", False) and self.python_impl is not None:
            await self.python_impl.write(batch_info, value, drop_axes)
            return
        await super().write(batch_info, value, drop_axes)
