"""blkback's engine serving a blkfront written in C with nothing but Xen's own headers
(``ring_peer.c``'s ``blkdisk-front`` mode, built by ``test_ring_interop``'s fixture):
requests laid out by gcc from ``blkif.h``'s structs (plain ones of every segment shape,
indirect ones through ``blkif_request_indirect``, discards, flushes, and requests to
refuse) are served from this process over the same shared file, with a bytearray for the
disk; the C end checks every byte it reads back against its own model of the disk and
every response's id, operation and status, and prints a hash of its model, which must be
this disk's."""

from __future__ import annotations

import mmap
import os
import select
import subprocess
from pathlib import Path

from fata.xen.blkchannel import BlkbackEngine, Io
from fata.xen.blkif import (
    BLKIF_OP_DISCARD,
    BLKIF_OP_FLUSH_DISKCACHE,
    BLKIF_OP_READ,
    BLKIF_OP_WRITE,
    BLKIF_RSP_OKAY,
    ENTRY_SIZE,
)
from fata.xen.ring import PAGE, BackRing
from test_ring_interop import TIMEOUT, peer, pytestmark  # noqa: F401  (the C end, its marks)

DISK_SECTORS, DATA_PAGES, GREF, INDIRECT_GREF = 2048, 64, 1000, 2000  # as ring_peer.c
ROUNDS = 300


def fnv1a(data: bytes | bytearray) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Disk:
    """The adapter's part, as blkback does it, on a bytearray."""

    def __init__(self) -> None:
        self.data = bytearray(DISK_SECTORS * 512)
        self.flushes = 0

    def do(self, io: Io) -> int:
        at = io.sector * 512
        if io.kind in (BLKIF_OP_READ, BLKIF_OP_WRITE):
            for buf in io.buffers:
                if io.kind == BLKIF_OP_READ:
                    buf[:] = self.data[at:at + len(buf)]
                else:
                    self.data[at:at + len(buf)] = buf
                at += len(buf)
        elif io.kind == BLKIF_OP_DISCARD:
            self.data[at:at + io.count * 512] = bytes(io.count * 512)
        else:
            assert io.kind == BLKIF_OP_FLUSH_DISKCACHE
            self.flushes += 1
        return BLKIF_RSP_OKAY


def serve(proc: subprocess.Popen, engine: BlkbackEngine, disk: Disk,
          pages: dict[int, memoryview], wait_fd: int, kick_fd: int) -> None:
    """blkback's loop (``xen_blkback._Server``) until the C end exits, waiting on the
    event channel or the process, never longer than TIMEOUT."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        poll = select.poll()
        poll.register(wait_fd, select.POLLIN)
        poll.register(pidfd, select.POLLIN)
        while proc.poll() is None:
            for attempt in range(4):
                for io in engine.take(final=attempt == 3):
                    engine.complete(io, disk.do(io))
                for gref in engine.wanted():
                    if gref in pages:
                        engine.grant(gref, pages[gref], True)
                    else:
                        engine.refuse(gref)
            if engine.push():
                os.eventfd_write(kick_fd, 1)
            if engine.ring.final_check_for_requests():
                continue
            ready = dict(poll.poll(TIMEOUT * 1000))
            assert ready, f"no request from the C end in {TIMEOUT} s (a lost wake-up)"
            if wait_fd in ready:
                os.eventfd_read(wait_fd)
    finally:
        os.close(pidfd)


def test_a_c_blkfront_built_from_the_headers_is_served(peer: Path,  # noqa: F811 (a fixture)
                                                       tmp_path: Path) -> None:
    path = tmp_path / "shared"
    path.write_bytes(bytes((2 + DATA_PAGES) * PAGE))  # the ring, the data, the indirect page
    ours, theirs = os.eventfd(0, os.EFD_CLOEXEC), os.eventfd(0, os.EFD_CLOEXEC)
    fd = os.open(path, os.O_RDWR)
    memory = mmap.mmap(fd, (2 + DATA_PAGES) * PAGE)
    view = memoryview(memory)
    pages = {GREF + k: view[(1 + k) * PAGE:(2 + k) * PAGE] for k in range(DATA_PAGES)}
    pages[INDIRECT_GREF] = view[(1 + DATA_PAGES) * PAGE:(2 + DATA_PAGES) * PAGE]
    engine = BlkbackEngine(BackRing(view[:PAGE], ENTRY_SIZE), DISK_SECTORS)
    disk = Disk()
    try:
        proc = subprocess.Popen([str(peer), "blkdisk-front", str(path), str(PAGE), "0",
                                 str(ROUNDS), str(theirs), str(ours)], pass_fds=(ours, theirs),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        serve(proc, engine, disk, pages, ours, theirs)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        fields = dict(zip(out.split()[::2], out.split()[1::2], strict=True))
        assert int(fields["fnv"], 16) == fnv1a(disk.data)
        refused = 5 * (ROUNDS // 13)
        assert int(fields["refused"]) == refused
        counters = engine.counters
        assert counters.requests == int(fields["requests"])
        assert (counters.errors, counters.unsupported) == (refused * 4 // 5, refused // 5)
        assert counters.discards == ROUNDS // 7
        assert counters.flushes == disk.flushes == ROUNDS // 9
        assert counters.reads == counters.writes == ROUNDS
    finally:
        engine.release()
        pages.clear()
        view.release()
        memory.close()
        for descriptor in (fd, ours, theirs):
            os.close(descriptor)
