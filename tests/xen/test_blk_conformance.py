"""The ``Block`` conformance suite of ``tests/devices`` against blkfront: the same cases
the file-backed device passes, each on a vbd of a freshly built guest domain, through a
hypervisor process, the xenstore daemon appliance and a blkback process serving the
case's file (``XenProcesses`` of ``test_blkfront``), with this test's process playing
both the toolstack and the guest.  Twice: with indirect requests and with plain ones (the
frontend asked for 11 segments at most)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from devices import test_block_conformance as suite
from devices.test_block_conformance import (  # collected here, against blkfront
    test_discard_reads_as_zeros,
    test_geometry,
    test_out_of_range_is_a_block_error,
    test_partial_sectors_and_read_only,
    test_write_read_flush_and_reopen,
)
from fata.devices import Block
from fata.platform.xen_blkfront import Blkfront
from fata.xen.blkif import BLKIF_MAX_SEGMENTS_PER_REQUEST
from test_blkfront import XenProcesses, guest_vbd

__all__ = ["test_discard_reads_as_zeros", "test_geometry", "test_out_of_range_is_a_block_error",
           "test_partial_sectors_and_read_only", "test_write_read_flush_and_reopen"]

KINDS = {"xen-indirect": None, "xen-plain": BLKIF_MAX_SEGMENTS_PER_REQUEST}
pytestmark = [pytest.mark.parametrize("kind", sorted(KINDS)),
              pytest.mark.usefixtures("conformance_processes")]
_running: list[XenProcesses] = []


@pytest.fixture(scope="module")
def conformance_processes(tmp_path_factory: pytest.TempPathFactory):
    with XenProcesses(tmp_path_factory.mktemp("xen")) as processes:
        _running.append(processes)
        try:
            yield processes
        finally:
            _running.remove(processes)


def blkfront_block(max_segments: int | None):
    @contextlib.asynccontextmanager
    async def opened(tmp: Path, read_only: bool = False) -> AsyncIterator[Block]:
        path = tmp / "disk.img"
        if not path.exists():  # as the suite's file_block makes it
            path.write_bytes(bytes(range(256)) * (suite.SECTORS * 2))
        options = {} if max_segments is None else {"max_segments": max_segments}
        async with guest_vbd(_running[-1], path, read_only=read_only, **options) as block:
            assert isinstance(block, Blkfront) and block.connected
            yield block
    return opened


for _kind, _segments in KINDS.items():
    suite.IMPLEMENTATIONS[_kind] = blkfront_block(_segments)
