"""blkfront: a ``Block`` on the Xen platform, for an appliance running as a guest domain.

``fata run ... --block NAME=xen:DEVID`` (``xen:0`` is the first vbd; ``xen:0:ro`` refuses
writes even on a writable disk) makes the block device the guest's vbd ``DEVID``: the
guest finds its xenstore ring from its parameters, and its device directory
``device/vbd/DEVID`` (made by the toolstack, naming the backend) drives the xenbus
handshake.  When the backend is waiting (``InitWait``) the frontend allocates one ring
page and a pool of data pages granted to the backend once for the connection (persistent
grants), plus one page per ring slot for indirect segments when the backend offers
``feature-max-indirect-segments``; allocates an event channel; publishes ``ring-ref``,
``event-channel``, ``protocol`` and ``feature-persistent``, as Linux's blkfront does, and
goes ``Initialised``.  Once the backend is ``Connected`` it reads the disk's geometry
(``sectors``, ``sector-size``, ``info``) and features (``feature-flush-cache``,
``feature-discard``), which a backend may write only as it connects, and serves the
Block contract through :class:`~fata.xen.blkchannel.BlkfrontEngine`: any number of
operations in flight, each split into as many ring requests as it needs.

Without ``feature-discard`` a discard writes zeros (the contract: discarded sectors read
as zeros); without ``feature-flush-cache`` the backend writes through, as Linux's
blkfront assumes, and flush has nothing to wait for.  When the backend goes (its state
``Closing``, or its directory removed by the toolstack), every operation waiting fails
with ``BlockError`` (``ENXIO``) and so does every later one until a backend connects
again; nothing waits for a backend that is gone.  The guest needs no privilege: only its
hypervisor connection.
"""

from __future__ import annotations

import asyncio
import errno
from contextlib import suppress

from fata.devices.block import Block, BlockError, BlockInfo
from fata.devices.xen import GrantAllocation
from fata.platform import PlatformError
from fata.platform.xen_guest import guest_connection
from fata.platform.xen_host import HypervisorClient
from fata.xen.blkchannel import FRONT_MAX_SEGMENTS, PROTOCOL, BlkfrontEngine, Operation
from fata.xen.blkif import (
    BLK_RING_SIZE,
    BLKIF_MAX_SEGMENTS_PER_REQUEST,
    BLKIF_OP_DISCARD,
    BLKIF_OP_FLUSH_DISKCACHE,
    BLKIF_OP_READ,
    BLKIF_OP_WRITE,
    BLKIF_RSP_EOPNOTSUPP,
    BLKIF_RSP_OKAY,
    ENTRY_SIZE,
    SECTOR_SIZE,
    VDISK_READONLY,
)
from fata.xen.evtchn import EventChannel
from fata.xen.hypervisor import DOMID_SELF, HypervisorError
from fata.xen.netchannel import Buffer
from fata.xen.ring import PAGE, FrontRing, RingError
from fata.xen.xenbus import Device, XenbusDriver, XenbusState, read_state, switch_state
from fata.xen.xs_client import XenstoreClient
from fata.xen.xs_wire import XenstoreError

CONNECT_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0  # how long close() waits for the backend to let go of the pages
#: Data pages granted per vbd (2 MiB): 16 indirect requests of 128 KiB, or 32 of 64 KiB,
#: in flight, while a guest's 4096 grants leave room for several devices.
POOL_PAGES = 512
ZERO_CHUNK = 1 << 20  # a discard without feature-discard writes zeros this much at a time
_NOT_CONNECTED = tuple(s for s in XenbusState if s != XenbusState.CONNECTED)


class Blkfront(Block):
    """One vbd of this guest; made by :func:`open_blkfront`.

    ``read_only`` refuses writes whatever the disk; ``pool_pages`` and ``max_segments``
    size the persistent pool and the largest request (at most what the backend offers)."""

    def __init__(self, xen: HypervisorClient, xs: XenstoreClient, device: Device, *,
                 read_only: bool = False, pool_pages: int = POOL_PAGES,
                 max_segments: int = FRONT_MAX_SEGMENTS) -> None:
        if pool_pages < max_segments:
            raise ValueError(f"a pool of {pool_pages} pages cannot hold a request of "
                             f"{max_segments} segments")
        self.name = f"xen-vbd{device.devid}"
        self.info = BlockInfo(SECTOR_SIZE, 0, True)  # until a backend has connected
        self.device = device
        self._xen, self._xs = xen, xs
        self._read_only, self._pool_pages, self._max_segments = read_only, pool_pages, max_segments
        self._engine: BlkfrontEngine | None = None
        self._channel: EventChannel | None = None
        self._held: list[GrantAllocation] = []
        self._ready = asyncio.Event()  # connected and the geometry read
        self._scale = 1  # 512-byte sectors per sector of the disk
        self._flush = self._discard = False
        self._push_soon = False
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.driver = XenbusDriver.frontend(xs, device, self._connect, self._disconnect)

    @property
    def connected(self) -> bool:
        """Whether operations are served now."""
        return self._ready.is_set()

    def start(self) -> None:
        """Run the handshake (and again whenever a backend returns)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.driver.run()), loop.create_task(self._follow())]

    async def wait_connected(self) -> None:
        """Until a backend is connected; the driver's failure if it ends first."""
        ready = asyncio.ensure_future(self._ready.wait())
        try:
            done, _ = await asyncio.wait([ready, *self._tasks],
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if ready not in done:
            for task in done:
                task.result()
            raise PlatformError(f"{self.name}: the xenbus driver ended")

    # -- the handshake ------------------------------------------------------------------

    async def _connect(self) -> None:
        """The backend waits: make the ring and the pool, advertise them."""
        xen, backend, be = self._xen, self.device.backend_id, self.device.backend
        offered = await _read_int(self._xs, f"{be}/feature-max-indirect-segments", 0)
        segments = BLKIF_MAX_SEGMENTS_PER_REQUEST
        if offered > BLKIF_MAX_SEGMENTS_PER_REQUEST:
            segments = max(segments, min(offered, self._max_segments))
        indirect = BLK_RING_SIZE if segments > BLKIF_MAX_SEGMENTS_PER_REQUEST else 0
        ring = await xen.grant_alloc(backend, 1)
        self._held = [ring]  # from here on, _disconnect gives back what was made
        pool = await xen.grant_alloc(backend, indirect + self._pool_pages)
        self._held.append(pool)
        port = await xen.alloc_unbound(DOMID_SELF, backend)
        self._channel = channel = await xen.open_port(port)
        buffers = [Buffer(gref, pool.page(i)) for i, gref in enumerate(pool.grefs)]
        engine = BlkfrontEngine(FrontRing(ring.page(0), ENTRY_SIZE), buffers[indirect:],
                                indirect=buffers[:indirect], max_segments=segments,
                                handle=self.device.devid)
        fe = self.device.frontend

        async def publish(tx: int) -> None:
            for key, value in (("ring-ref", ring.grefs[0]), ("event-channel", port),
                               ("protocol", PROTOCOL), ("feature-persistent", 1)):
                await self._xs.write(f"{fe}/{key}", str(value), tx=tx)
        await self._xs.transaction(publish)
        self._engine = engine
        channel.start(self._kick)

    async def _follow(self) -> None:
        """Each time this side is ``Connected`` (the backend is), read what the backend
        wrote as it connected; operations are served from then until it goes."""
        while True:
            await self.driver.wait_for(XenbusState.CONNECTED)
            if self._engine is not None:
                await self._read_geometry()
                self._ready.set()
            await self.driver.wait_for(*_NOT_CONNECTED)
            self._ready.clear()

    async def _read_geometry(self) -> None:
        xs, be = self._xs, self.device.backend
        sectors = await _read_int(xs, f"{be}/sectors", -1)
        size = await _read_int(xs, f"{be}/sector-size", SECTOR_SIZE)
        info = await _read_int(xs, f"{be}/info", 0)
        if sectors < 0 or size % SECTOR_SIZE or not SECTOR_SIZE <= size <= PAGE:
            raise PlatformError(f"{self.name}: the backend's disk is not usable ({sectors} "
                                f"sectors of {size} bytes)")
        self._scale = size // SECTOR_SIZE
        self._flush = await _read_int(xs, f"{be}/feature-flush-cache", 0) == 1
        self._discard = await _read_int(xs, f"{be}/feature-discard", 0) == 1
        self.info = BlockInfo(size, sectors // self._scale,
                              self._read_only or bool(info & VDISK_READONLY))

    async def _disconnect(self) -> None:
        """The backend went (or we go): fail what waits, give the pages back."""
        self._ready.clear()
        engine, self._engine = self._engine, None
        if engine is not None:
            self._fail(engine, "the backend went away")
            engine.ring.release()
            del engine  # its views of the pool, so that the pool can be unmapped below
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.stop()
            with suppress(HypervisorError, ConnectionError):
                await self._xen.close_port(channel)
        held, self._held = self._held, []
        for allocation in held:
            for gref in allocation.grefs:
                with suppress(HypervisorError, ConnectionError):  # EBUSY: the backend
                    await self._xen.grant_end(gref)  # still maps it; it ends with its map
            with suppress(BufferError):
                allocation.close()

    def _fail(self, engine: BlkfrontEngine, why: str) -> None:
        for op in engine.abort():
            future = op.tag
            if isinstance(future, asyncio.Future) and not future.done():
                future.set_exception(BlockError(errno.ENXIO, f"{self.name}: {why}"))

    # -- the ring -----------------------------------------------------------------------

    def _kick(self) -> None:
        """The backend notified: finish what it answered, put what now fits, and look
        once more before sleeping, as ``RING_FINAL_CHECK`` asks."""
        engine = self._engine
        if engine is None:
            return
        notify = False
        try:
            while True:
                for op in engine.complete():
                    self._finish(op)
                notify |= engine.push()
                if not engine.ring.final_check_for_responses():
                    break
        except RingError as exc:  # the backend broke the ring: this connection is over
            self._engine = None
            self._ready.clear()
            self._fail(engine, f"the backend broke the ring ({exc})")
            engine.ring.release()
            asyncio.get_running_loop().create_task(self.driver.close())
            return
        if notify and self._channel is not None:
            self._channel.notify()

    def _finish(self, op: Operation) -> None:
        future = op.tag
        if not isinstance(future, asyncio.Future) or future.done():
            return  # its caller was cancelled
        if op.status == BLKIF_RSP_OKAY:
            future.set_result(None)
            return
        what = {BLKIF_OP_READ: "a read", BLKIF_OP_WRITE: "a write",
                BLKIF_OP_FLUSH_DISKCACHE: "a flush", BLKIF_OP_DISCARD: "a discard"}[op.kind]
        if op.status == BLKIF_RSP_EOPNOTSUPP:
            future.set_exception(BlockError(errno.EOPNOTSUPP, f"{self.name}: the backend "
                                                              f"does not support {what}"))
        else:
            future.set_exception(BlockError(errno.EIO, f"{self.name}: the backend failed "
                                                       f"{what} at sector {op.sector}"))

    async def _run(self, op: Operation) -> None:
        engine = self._engine
        if engine is None or not self._ready.is_set():
            raise BlockError(errno.ENXIO, f"{self.name}: no backend is connected")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        op.tag = future
        engine.submit(op)
        if not engine.in_flight:  # the backend is idle: no one to batch with, go now
            self._push()
        elif not self._push_soon:  # one push (and notification) for all submitted this turn
            self._push_soon = True
            loop.call_soon(self._push)
        await future

    def _push(self) -> None:
        self._push_soon = False  # (a push now covers what a pending one would have)
        engine = self._engine
        if engine is not None and engine.push() and self._channel is not None:
            self._channel.notify()

    # -- Block --------------------------------------------------------------------------

    async def read(self, sector: int, count: int) -> bytes:
        """``count`` sectors from ``sector``."""
        self.check(sector, count)
        if count == 0:
            return b""
        op = Operation(BLKIF_OP_READ, sector * self._scale, count * self._scale)
        await self._run(op)
        return op.result

    async def write(self, sector: int, data: bytes) -> None:
        """Write whole sectors from ``sector`` (``data`` is copied into granted pages as
        each request is put on the ring: it must not change until this returns)."""
        size = self.info.sector_size
        if len(data) % size:
            raise BlockError(errno.EINVAL, f"a write of {len(data)} bytes is not whole "
                                           f"sectors of {size}")
        self.check(sector, len(data) // size, write=True)
        if data:
            await self._run(Operation(BLKIF_OP_WRITE, sector * self._scale,
                                      len(data) // SECTOR_SIZE, data))

    async def flush(self) -> None:
        """Every completed write is durable once this returns (the backend's
        ``fdatasync``; nothing to wait for on a backend that writes through)."""
        if self.info.read_only or not self._flush:
            if not self._ready.is_set():
                raise BlockError(errno.ENXIO, f"{self.name}: no backend is connected")
            return
        await self._run(Operation(BLKIF_OP_FLUSH_DISKCACHE))

    async def discard(self, sector: int, count: int) -> None:
        """The sectors read as zeros afterwards (a discard request, else written zeros)."""
        self.check(sector, count, write=True)
        if count == 0:
            return
        if self._discard:
            await self._run(Operation(BLKIF_OP_DISCARD, sector * self._scale,
                                      count * self._scale))
            return
        per = max(1, ZERO_CHUNK // self.info.sector_size)
        for start in range(sector, sector + count, per):
            n = min(per, sector + count - start)
            await self.write(start, bytes(n * self.info.sector_size))

    async def close(self) -> None:
        """Leave in order: tell the backend (``Closing``), let it unmap the pages, then
        end their grants and say ``Closed``.  Operations still waiting fail."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        fe, be = self.device.frontend, self.device.backend
        with suppress(XenstoreError, ConnectionError):
            if self._engine is not None:
                await switch_state(self._xs, fe, XenbusState.CLOSING)
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._backend_let_go(be), CLOSE_TIMEOUT)
        await self._disconnect()
        with suppress(XenstoreError, ConnectionError):
            await switch_state(self._xs, fe, XenbusState.CLOSED)

    async def _backend_let_go(self, be: str) -> None:
        gone = (XenbusState.CLOSING, XenbusState.CLOSED, XenbusState.UNKNOWN)
        async with await self._xs.subscribe(f"{be}/state") as sub:
            while await read_state(self._xs, be) not in gone:
                await sub.next()


async def _read_int(xs: XenstoreClient, path: str, default: int) -> int:
    """A number the peer wrote, or ``default`` when it is absent or not a number."""
    try:
        return int(await xs.read(path))
    except XenstoreError as exc:
        if exc.code in ("ENOENT", "EACCES"):
            return default
        raise
    except ValueError:
        return default


async def open_blkfront(devid: int, xen: HypervisorClient | None = None,
                        xs: XenstoreClient | None = None, *, read_only: bool = False,
                        timeout: float = CONNECT_TIMEOUT, **options: int) -> Blkfront:
    """This guest's vbd ``devid``, connected to its backend (``PlatformError`` if the guest
    has no hypervisor connection, no such device, or no backend connects in time).
    ``options`` are :class:`Blkfront`'s ``pool_pages`` and ``max_segments``."""
    if xen is None or xs is None:
        xen, xs = await guest_connection("--block ...=xen:DEVID")
    home = f"/local/domain/{xen.domid}/device/vbd/{devid}"
    try:
        backend_id = int(await xs.read(f"{home}/backend-id"))
    except (XenstoreError, ValueError) as exc:
        raise PlatformError(f"xen vbd {devid}: {home} is not a device made by the toolstack "
                            f"({exc})") from exc
    block = Blkfront(xen, xs, Device("vbd", xen.domid, backend_id, devid),
                     read_only=read_only, **options)
    block.start()
    try:
        await asyncio.wait_for(block.wait_connected(), timeout)
    except TimeoutError:
        await block.close()
        raise PlatformError(f"xen vbd {devid}: no backend connected within {timeout:.0f} s "
                            f"(is a blkback serving domain {backend_id}?)") from None
    except HypervisorError as exc:  # no grants or ports left for the ring and the pool
        await block.close()
        raise PlatformError(f"xen vbd {devid}: cannot set the ring up ({exc})") from None
    except BaseException:
        await block.close()
        raise
    return block
