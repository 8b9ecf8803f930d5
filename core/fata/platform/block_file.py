"""``block()`` on ``unix``: a block device over a host file (``fata run --block NAME=PATH``),
or, in a Xen guest domain, the guest's virtual disk (``--block NAME=xen:DEVID``: blkfront,
``fata.platform.xen_blkfront``, needing no file and no privilege).

Reads and writes are ``pread``/``pwrite`` in a worker thread, so a slow disk never stalls the
event loop; ``flush`` is ``fdatasync``; ``discard`` punches a hole (``fallocate``), or writes
zeros where the file system cannot, so discarded sectors read as zeros everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
from contextlib import suppress

from fata.devices.block import Block, BlockError, BlockInfo
from fata.platform import PlatformError
from fata.platform.registry import DeviceContext

SECTOR = 512
_FALLOC_FL_KEEP_SIZE = 1
_FALLOC_FL_PUNCH_HOLE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--block NAME=PATH[:ro]`` or ``--block NAME=xen:DEVID[:ro]``, repeatable."""
    parser.add_argument(
        "--block", action="append", default=[], metavar="NAME=PATH[:ro]|NAME=xen:N[:ro]",
        help="the file holding block device NAME or, in a Xen guest, its vbd N (xen:N); "
             "':ro' opens it read-only; repeatable")


def _choices(options: argparse.Namespace) -> dict[str, tuple[str, bool]]:
    out: dict[str, tuple[str, bool]] = {}
    for text in getattr(options, "block", None) or []:
        name, sep, path = text.partition("=")
        if not sep or not name or not path:
            raise PlatformError(f"--block {text!r}: expected NAME=PATH or NAME=PATH:ro")
        read_only = path.endswith(":ro")
        out[name] = (path[:-3] if read_only else path, read_only)
    return out


async def open_block(name: str, spec: dict, ctx: DeviceContext) -> Block:
    """Open the file given for this device's name (or the guest's vbd for ``xen:N``)."""
    port = spec.get("name", name)
    chosen = _choices(ctx.options)
    if port not in chosen:
        raise PlatformError(f"block device {port!r} needs a file: fata run --block {port}=PATH")
    path, read_only = chosen[port]
    if path.startswith("xen:"):
        from fata.platform.xen_blkfront import open_blkfront

        devid = path[len("xen:"):]
        if not devid.isdigit():
            raise PlatformError(f"--block {port}={path}: a vbd is a number (xen:0)")
        return await open_blkfront(int(devid), read_only=read_only)
    return FileBlock.open(path, read_only=read_only)


class FileBlock(Block):
    """Sectors of a host file; its size is rounded down to whole sectors."""

    def __init__(self, fd: int, path: str, info: BlockInfo) -> None:
        self.fd = fd
        self.path = path
        self.info = info
        self._punch = _fallocate()

    @classmethod
    def open(cls, path: str, *, read_only: bool = False, sector_size: int = SECTOR) -> FileBlock:
        """Open ``path``; ``PlatformError`` (one sentence) if it cannot be."""
        try:
            fd = os.open(path, (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC)
        except OSError as exc:
            raise PlatformError(f"cannot open block file {path}: {exc.strerror}") from None
        size = os.fstat(fd).st_size
        return cls(fd, path, BlockInfo(sector_size, size // sector_size, read_only))

    async def read(self, sector: int, count: int) -> bytes:
        """``count`` sectors from ``sector``."""
        self.check(sector, count)
        size = self.info.sector_size
        data = await asyncio.to_thread(os.pread, self.fd, count * size, sector * size)
        if len(data) != count * size:
            raise BlockError(5, f"short read from {self.path}")  # EIO
        return data

    async def write(self, sector: int, data: bytes) -> None:
        """Write whole sectors from ``sector``."""
        size = self.info.sector_size
        if len(data) % size:
            raise BlockError(22, f"a write of {len(data)} bytes is not whole sectors of {size}")
        self.check(sector, len(data) // size, write=True)
        written = await asyncio.to_thread(os.pwrite, self.fd, data, sector * size)
        if written != len(data):
            raise BlockError(5, f"short write to {self.path}")

    async def flush(self) -> None:
        """``fdatasync``: every completed write is on the disk."""
        if not self.info.read_only:
            await asyncio.to_thread(os.fdatasync, self.fd)

    async def discard(self, sector: int, count: int) -> None:
        """Punch a hole over the sectors (zeros where the file system has no holes)."""
        self.check(sector, count, write=True)
        size = self.info.sector_size
        if self._punch is not None and not self._punch(
                self.fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, sector * size, count * size):
            return
        await self.write(sector, bytes(count * size))

    async def close(self) -> None:
        """Close the file."""
        if self.fd >= 0:
            with suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def _fallocate():  # -> Callable[[int, int, int, int], int] | None
    """libc's ``fallocate`` (Python has no binding for hole punching), or None."""
    try:
        func = ctypes.CDLL(None, use_errno=True).fallocate  # libc, already in the process
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    func.restype = ctypes.c_int
    return func
