"""The block device: a disk of fixed-size sectors (MirageOS's ``Mirage_block``).

What a durable appliance (the xenstore daemon's log, a cache) stands on, whatever holds the
sectors: a host file on ``unix`` (``fata.platform.block_file``), blkfront over Xen-ABI rings
later.  Every operation is whole sectors; a write is durable once ``flush`` returns.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass


class BlockError(OSError):
    """A request outside the device, misaligned, to a read-only device, or failed below."""


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """The device's geometry: ``sectors`` of ``sector_size`` bytes, and whether it can be
    written."""

    sector_size: int
    sectors: int
    read_only: bool

    @property
    def size(self) -> int:
        """The size in bytes."""
        return self.sector_size * self.sectors


class Block(abc.ABC):
    """Sector reads and writes, flush and discard."""

    info: BlockInfo

    def check(self, sector: int, count: int, *, write: bool = False) -> None:
        """Raise ``BlockError`` unless sectors ``sector .. sector+count`` are on the device
        (and writable when ``write``): the one bounds rule of every implementation."""
        if write and self.info.read_only:
            raise BlockError(30, "the block device is read-only")  # EROFS
        if sector < 0 or count < 0 or sector + count > self.info.sectors:
            raise BlockError(22, f"sectors {sector}..{sector + count} are outside the device "
                                 f"({self.info.sectors} sectors)")  # EINVAL

    @abc.abstractmethod
    async def read(self, sector: int, count: int) -> bytes:
        """``count`` sectors from ``sector``."""

    @abc.abstractmethod
    async def write(self, sector: int, data: bytes) -> None:
        """Write whole sectors from ``sector`` (``len(data)`` a multiple of the sector size)."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Return once every completed write is durable."""

    @abc.abstractmethod
    async def discard(self, sector: int, count: int) -> None:
        """The sectors' contents are no longer needed; they read as zeros afterwards."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the device (pending writes are not flushed: call ``flush`` first)."""
