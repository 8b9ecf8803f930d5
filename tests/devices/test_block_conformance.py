"""The ``Block`` contract, against every implementation (today the file-backed one; the Xen
platform adds blkfront to ``IMPLEMENTATIONS``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from fata.devices import Block, BlockError
from fata.platform import PlatformError
from fata.platform.block_file import FileBlock, _choices

SECTORS = 64


@contextlib.asynccontextmanager
async def file_block(tmp: Path, read_only: bool = False) -> AsyncIterator[Block]:
    path = tmp / "disk.img"
    if not path.exists():
        path.write_bytes(bytes(range(256)) * (SECTORS * 2))
    block = FileBlock.open(str(path), read_only=read_only)
    try:
        yield block
    finally:
        await block.close()


IMPLEMENTATIONS = {"file": file_block}
pytestmark = pytest.mark.parametrize("kind", sorted(IMPLEMENTATIONS))


def run(kind: str, tmp: Path, case: Callable[[Block], Awaitable[None]], **kw: bool) -> None:
    async def main() -> None:
        async with asyncio.timeout(20), IMPLEMENTATIONS[kind](tmp, **kw) as block:
            await case(block)
    asyncio.run(main())


def test_geometry(kind: str, tmp_path: Path) -> None:
    async def case(b: Block) -> None:
        assert (b.info.sector_size, b.info.sectors, b.info.read_only) == (512, SECTORS, False)
        assert b.info.size == SECTORS * 512
    run(kind, tmp_path, case)


def test_write_read_flush_and_reopen(kind: str, tmp_path: Path) -> None:
    data = os.urandom(3 * 512)

    async def case(b: Block) -> None:
        await b.write(5, data)
        assert await b.read(5, 3) == data
        assert await b.read(4, 1) == (bytes(range(256)) * 2)  # neighbours untouched
        await b.flush()

    async def again(b: Block) -> None:
        assert await b.read(5, 3) == data
    run(kind, tmp_path, case)
    run(kind, tmp_path, again)


def test_discard_reads_as_zeros(kind: str, tmp_path: Path) -> None:
    async def case(b: Block) -> None:
        await b.discard(8, 16)
        assert await b.read(8, 16) == bytes(16 * 512)
        assert (await b.read(7, 1))[:4] == bytes([0, 1, 2, 3])
    run(kind, tmp_path, case)


@pytest.mark.parametrize("sector, count", [(-1, 1), (SECTORS, 1), (SECTORS - 1, 2), (0, -1)])
def test_out_of_range_is_a_block_error(kind: str, tmp_path: Path, sector: int,
                                       count: int) -> None:
    async def case(b: Block) -> None:
        with pytest.raises(BlockError, match="outside the device"):
            await b.read(sector, count)
        if count > 0:
            with pytest.raises(BlockError):
                await b.write(sector, bytes(512 * count))
        with pytest.raises(BlockError):
            await b.discard(sector, count)
    run(kind, tmp_path, case)


def test_partial_sectors_and_read_only(kind: str, tmp_path: Path) -> None:
    async def case(b: Block) -> None:
        with pytest.raises(BlockError, match="whole sectors"):
            await b.write(0, b"x" * 100)

    async def read_only(b: Block) -> None:
        assert b.info.read_only
        assert len(await b.read(0, 2)) == 1024
        with pytest.raises(BlockError, match="read-only"):
            await b.write(0, bytes(512))
    run(kind, tmp_path, case)
    run(kind, tmp_path, read_only, read_only=True)


def test_block_option_forms(kind: str, tmp_path: Path) -> None:
    import argparse

    ns = argparse.Namespace(block=["log=/var/x.img", "seed=/tmp/s.img:ro"])
    assert _choices(ns) == {"log": ("/var/x.img", False), "seed": ("/tmp/s.img", True)}
    with pytest.raises(PlatformError, match="--block"):
        _choices(argparse.Namespace(block=["nonsense"]))
    with pytest.raises(PlatformError, match="cannot open block file"):
        FileBlock.open(str(tmp_path / "missing.img"))
