"""blkback: the backend of guests' virtual disks (vbds) on files, as a privileged process
of domain 0 (a driver domain, in Xen's terms).

It watches ``/local/domain/<self>/backend/vbd`` in xenstore.  Each device the toolstack
makes there names its file as libxl does, ``params`` (the path) and ``mode`` (``r`` or
``w``; anything but ``w`` is read-only); blkback opens it
(:class:`~fata.platform.block_file.FileBlock`), advertises ``sectors`` (512-byte units),
``sector-size``, ``info`` (``VDISK_READONLY``), ``feature-flush-cache``,
``feature-discard`` (writable disks), ``feature-persistent`` and
``feature-max-indirect-segments``, and runs the xenbus handshake: once the frontend is
``Initialised`` it maps its ring, binds its event channel and is ``Connected``.

Each connected vbd is served by a thread of its own, as Linux's blkback has a kernel
thread per ring: the event loop's reader for the event channel only wakes it, and the
thread takes the requests (:class:`~fata.xen.blkchannel.BlkbackEngine`), does the file
I/O with ``preadv``/``pwritev`` straight between the file and the granted pages (no copy
here), ``fdatasync`` and hole punching, and answers, without a round trip through the
loop per request; the GIL is released for each system call.  Pages are mapped (on the
loop: a hypercall) the first time a request names them and kept for the connection
(persistent grants), a whole allocation in one hypercall when the frontend's references
allow it; a reference that cannot be mapped is refused and the requests naming it are
answered with errors.  A frontend that breaks its ring is disconnected and the device
closed; its device directory going away ends the device.

``python -m fata.platform.xen_blkback --xen-hypervisor PATH --xenstore SOCKET``
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import threading
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any

from fata.devices.console import Console
from fata.devices.xen import GrantMapping
from fata.platform import PlatformError
from fata.platform.block_file import (
    _FALLOC_FL_KEEP_SIZE,
    _FALLOC_FL_PUNCH_HOLE,
    FileBlock,
    _fallocate,
)
from fata.platform.xen_backend import BackendDomain, serve_backend
from fata.platform.xen_host import HypervisorClient
from fata.xen.blkchannel import MAX_INDIRECT_SEGMENTS, PROTOCOL, BlkbackEngine, Io
from fata.xen.blkif import (
    BLKIF_OP_DISCARD,
    BLKIF_OP_FLUSH_DISKCACHE,
    BLKIF_OP_READ,
    BLKIF_OP_WRITE,
    BLKIF_RSP_ERROR,
    BLKIF_RSP_OKAY,
    ENTRY_SIZE,
    SECTOR_SIZE,
    VDISK_READONLY,
)
from fata.xen.evtchn import EventChannel
from fata.xen.hypervisor import HypervisorError
from fata.xen.ring import BackRing, RingError
from fata.xen.xenbus import Device, XenbusDriver
from fata.xen.xs_client import XenstoreClient
from fata.xen.xs_wire import XenstoreError

ZEROS = bytes(1 << 20)  # what a discard writes where holes cannot be punched
MAP_PASSES = 3  # wanted()/map rounds per batch: ring, then indirect pages, then theirs


class FileIo:
    """One vbd's I/O on its file, synchronous: called from the vbd's thread only.  Every
    failure is an answer (``BLKIF_RSP_ERROR``), logged, never an exception."""

    def __init__(self, block: FileBlock, console: Console, name: str) -> None:
        self.fd, self.path = block.fd, block.path
        self.console, self.name = console, name
        self._punch = _fallocate()

    def __call__(self, io: Io) -> int:
        offset = io.sector * SECTOR_SIZE
        try:
            if io.kind == BLKIF_OP_READ:
                self._transfer(os.preadv, io.buffers, offset)
            elif io.kind == BLKIF_OP_WRITE:
                self._transfer(os.pwritev, io.buffers, offset)
                if io.flush:
                    os.fdatasync(self.fd)
            elif io.kind == BLKIF_OP_FLUSH_DISKCACHE:
                os.fdatasync(self.fd)
            elif io.kind == BLKIF_OP_DISCARD:
                self._discard(offset, io.count * SECTOR_SIZE)
            else:  # pragma: no cover - the engine hands out nothing else
                return BLKIF_RSP_ERROR
        except OSError as exc:
            self.console.error(f"{self.name}: I/O on {self.path} at sector {io.sector} "
                               f"failed: {exc.strerror or exc}")
            return BLKIF_RSP_ERROR
        return BLKIF_RSP_OKAY

    def _transfer(self, call: Callable[[int, list[memoryview], int], int],
                  buffers: list[memoryview], offset: int) -> None:
        """All of ``buffers`` read or written at ``offset``, through short transfers (a
        file that shrank underneath ends in EIO rather than a partial answer)."""
        pending = list(buffers)
        while pending:
            done = call(self.fd, pending, offset)
            if done <= 0:
                raise OSError(errno.EIO, f"the file ends before byte {offset}")
            offset += done
            while pending and done >= len(pending[0]):
                done -= len(pending.pop(0))
            if done:
                pending[0] = pending[0][done:]

    def _discard(self, offset: int, length: int) -> None:
        if self._punch is not None and not self._punch(
                self.fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length):
            return
        end = offset + length
        while offset < end:  # no holes here: zeros, a bounded chunk at a time
            chunk = min(len(ZEROS), end - offset)
            self._transfer(os.pwritev, [memoryview(ZEROS)[:chunk]], offset)
            offset += chunk


class _Server(threading.Thread):
    """The thread serving one connected vbd's ring until stopped."""

    def __init__(self, vbd: Vbd, engine: BlkbackEngine, channel: EventChannel,
                 io: FileIo) -> None:
        super().__init__(name=f"blkback-{vbd.name}", daemon=True)
        self.vbd, self.engine, self.channel, self.io = vbd, engine, channel, io
        self.loop = asyncio.get_running_loop()
        # A bare lock as a binary semaphore: released by a kick, taken by the thread before
        # each pass (a kick during a pass makes one more pass: none is lost).  Cheaper
        # than threading.Event, whose Condition costs a second lock per wake-up.
        self._gate = threading.Lock()
        self._gate.acquire()
        self._stopping = False

    def kick(self) -> None:
        """The frontend notified (the loop's reader callback): wake the thread."""
        with suppress(RuntimeError):  # released already: the thread has a pass to come
            self._gate.release()

    def stop(self) -> None:
        self._stopping = True
        self.kick()

    def run(self) -> None:
        try:
            while True:
                self._gate.acquire()
                if self._stopping:
                    return
                self._serve()
        except Exception as exc:  # a broken ring, the hypervisor gone: the device closes
            reason = str(exc) if isinstance(exc, RingError) else f"{type(exc).__name__}: {exc}"
            with suppress(RuntimeError):  # the loop is closing: so is the device
                self.loop.call_soon_threadsafe(self.vbd.broken, reason)

    def _serve(self) -> None:
        """Until the ring is empty (``RING_FINAL_CHECK_FOR_REQUESTS``): take the waiting
        requests and do their I/O in order, answering each as it completes (the frontend
        may reuse its pages while the next one runs); requests naming pages not mapped yet
        wait for a mapping on the loop, a few rounds at most (an indirect page, then the
        pages it names), then are answered."""
        engine, channel, io = self.engine, self.channel, self.io
        while not self._stopping:
            for attempt in range(MAP_PASSES + 1):
                for request in engine.take(final=attempt == MAP_PASSES):
                    engine.complete(request, io(request))
                    if engine.push():
                        channel.notify()
                wanted = engine.wanted()
                if not wanted:
                    break
                asyncio.run_coroutine_threadsafe(self.vbd.map(engine, wanted),
                                                 self.loop).result()
            if engine.push():  # the requests refused at once
                channel.notify()
            if not engine.ring.final_check_for_requests():
                return


class Vbd:
    """One guest's virtual disk: its file, its ring once connected, its xenbus driver."""

    def __init__(self, backend: Blkback, device: Device) -> None:
        self.backend, self.device = backend, device
        self.name = f"vbd {device.frontend_id}/{device.devid}"
        self.block: FileBlock | None = None
        self.engine: BlkbackEngine | None = None
        self.channel: EventChannel | None = None
        self.server: _Server | None = None
        self.maps: list[GrantMapping] = []
        self.driver = XenbusDriver.backend(backend.xs, device, self._connect, self._disconnect)

    async def run(self) -> None:
        xs, be, console = self.backend.xs, self.device.backend, self.backend.console
        try:
            path = (await xs.read(f"{be}/params")).decode()
            mode = (await xs.read(f"{be}/mode")).decode()
        except (XenstoreError, UnicodeDecodeError) as exc:
            console.error(f"{self.name}: the toolstack named no file ({exc})")
            return
        try:
            self.block = block = FileBlock.open(path, read_only=mode != "w")
        except PlatformError as exc:
            console.error(f"{self.name}: {exc}")
            with suppress(XenstoreError):  # where libxl looks for a backend's failure
                await xs.write(f"{be}/hotplug-error", str(exc))
            return
        info = block.info
        features = {
            "sectors": info.size // SECTOR_SIZE, "sector-size": info.sector_size,
            "physical-sector-size": info.sector_size,
            "info": VDISK_READONLY if info.read_only else 0,
            "feature-flush-cache": 1, "feature-discard": 0 if info.read_only else 1,
            "discard-granularity": info.sector_size, "discard-alignment": 0,
            "discard-secure": 0, "feature-persistent": 1,
            "feature-max-indirect-segments": self.backend.max_indirect_segments}

        async def advertise(tx: int) -> None:
            for key, value in features.items():
                await xs.write(f"{be}/{key}", str(value), tx=tx)
        await xs.transaction(advertise)
        console.info(f"{self.name}: {path} ({info.size // SECTOR_SIZE} sectors, "
                     f"{'read-only' if info.read_only else 'read-write'})")
        try:
            await self.driver.run()
        finally:
            await self._disconnect()
            await block.close()

    async def _connect(self) -> None:
        xs, xen, fe = self.backend.xs, self.backend.xen, self.device.frontend
        dom, block, console = self.device.frontend_id, self.block, self.backend.console
        assert block is not None
        try:
            ring_ref = int(await xs.read(f"{fe}/ring-ref"))
            port = int(await xs.read(f"{fe}/event-channel"))
            try:
                protocol = (await xs.read(f"{fe}/protocol")).decode()
            except XenstoreError:
                protocol = PROTOCOL  # absent: the native layout
        except (XenstoreError, ValueError, UnicodeDecodeError) as exc:
            console.error(f"{self.name}: the frontend's ring is not readable ({exc})")
            self.broken("no ring")
            return
        if protocol != PROTOCOL:
            console.error(f"{self.name}: protocol {protocol!r} is not served (only {PROTOCOL})")
            self.broken("unknown protocol")
            return
        try:
            ring_map = await xen.grant_map(dom, [ring_ref], writable=True)
        except HypervisorError as exc:
            console.error(f"{self.name}: the ring {ring_ref} cannot be mapped ({exc})")
            self.broken("no ring")
            return
        self.maps.append(ring_map)
        info = block.info
        engine = BlkbackEngine(BackRing(ring_map.page(ring_ref), ENTRY_SIZE),
                               info.size // SECTOR_SIZE, read_only=info.read_only,
                               max_indirect_segments=self.backend.max_indirect_segments)
        channel = await xen.bind_interdomain(dom, port)
        self.engine, self.channel = engine, channel
        self.server = _Server(self, engine, channel, FileIo(block, console, self.name))
        self.server.start()
        channel.start(self.server.kick)
        self.server.kick()
        console.info(f"{self.name}: connected")

    async def _disconnect(self) -> None:
        server, self.server = self.server, None
        if self.channel is not None:
            self.channel.stop()
        if server is not None:
            server.stop()
            await asyncio.to_thread(server.join)
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.release()
            self.backend.console.info(f"{self.name}: disconnected")
        if self.channel is not None:
            with suppress(HypervisorError, OSError):
                await self.backend.xen.close_port(self.channel)
            self.channel = None
        maps, self.maps = self.maps, []
        for mapping in maps:
            with suppress(HypervisorError, BufferError, OSError):
                await self.backend.xen.grant_unmap(mapping)

    async def map(self, engine: BlkbackEngine, wanted: set[int]) -> None:
        """Map the pages waiting requests name (on the loop, for the vbd's thread): all
        in one hypercall when they are one allocation, else each on its own, writable if
        the grant allows, read-only if not, refused if neither."""
        xen, dom = self.backend.xen, self.device.frontend_id
        grefs = sorted(wanted)
        try:
            mapping = await xen.grant_map(dom, grefs, writable=True)
        except HypervisorError:
            pass
        else:
            self.maps.append(mapping)
            for gref in grefs:
                engine.grant(gref, mapping.page(gref), True)
            return
        for gref in grefs:
            for writable in (True, False):
                try:
                    single = await xen.grant_map(dom, [gref], writable=writable)
                except HypervisorError:
                    continue
                self.maps.append(single)
                engine.grant(gref, single.page(gref), writable)
                break
            else:
                engine.refuse(gref)

    def broken(self, reason: str) -> None:
        """The frontend broke its ring (or the device cannot work): close the device,
        telling the frontend, from the loop."""
        self.backend.console.error(f"{self.name}: {reason}; closing")
        asyncio.get_running_loop().create_task(self.driver.close())


class Blkback(BackendDomain):
    """Every vbd of this backend domain."""

    kind, service = "vbd", "blkback"

    def __init__(self, xen: HypervisorClient, xs: XenstoreClient, console: Console, *,
                 max_indirect_segments: int = MAX_INDIRECT_SEGMENTS) -> None:
        super().__init__(xen, xs, console)
        self.max_indirect_segments = max_indirect_segments

    def serve(self, device: Device) -> Coroutine[Any, Any, None]:
        return Vbd(self, device).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fata.platform.xen_blkback",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--xen-hypervisor", required=True, metavar="PATH")
    parser.add_argument("--xenstore", required=True, metavar="SOCKET")
    parser.add_argument("--max-indirect-segments", type=int, default=MAX_INDIRECT_SEGMENTS,
                        metavar="N", help="segments an indirect request may carry "
                                          f"(0: plain requests only; default "
                                          f"{MAX_INDIRECT_SEGMENTS})")
    args = parser.parse_args(argv)
    def make(xen: HypervisorClient, xs: XenstoreClient, console: Console) -> Blkback:
        return Blkback(xen, xs, console, max_indirect_segments=args.max_indirect_segments)
    asyncio.run(serve_backend("blkback", args.xen_hypervisor, args.xenstore, make))


if __name__ == "__main__":
    main()
