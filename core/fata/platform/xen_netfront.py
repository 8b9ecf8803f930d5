"""netfront: a ``Netif`` on the Xen platform, for an appliance running as a guest domain.

``fata run ... --netif NAME=xen:DEVID`` (``xen:0`` is the first vif) makes the port the
guest's vif ``DEVID``: the guest finds its xenstore ring from its parameters, and its
device directory ``device/vif/DEVID`` (made by the toolstack, naming the backend) drives
the xenbus handshake.  On connect it allocates one page for each ring and one per slot of
each (the tx buffers granted read-only, the rx buffers writable, to the backend only),
allocates an event channel for the backend, and publishes ``tx-ring-ref``,
``rx-ring-ref``, ``event-channel``, ``request-rx-copy`` and ``feature-rx-notify``, as
Linux's netfront does; the frames then move through :class:`~fata.xen.netchannel.NetfrontEngine`.
The guest needs no socket, no TAP and no privilege: only its hypervisor connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fata.devices.netif import BatchReceiver, Netif, Receiver
from fata.platform import PlatformError
from fata.platform.xen_guest import guest_connection
from fata.platform.xen_host import HypervisorClient
from fata.xen.hypervisor import DOMID_SELF, HypervisorError
from fata.xen.netchannel import Buffer, NetfrontEngine
from fata.xen.netif import NET_RX_RING_SIZE, NET_TX_RING_SIZE, RX_ENTRY_SIZE, TX_ENTRY_SIZE
from fata.xen.ring import FrontRing
from fata.xen.xenbus import Device, XenbusDriver, XenbusState
from fata.xen.xs_client import XenstoreClient
from fata.xen.xs_wire import XenstoreError

CONNECT_TIMEOUT = 30.0


class Netfront(Netif):
    """One vif of this guest; made by :func:`open_netfront`."""

    def __init__(self, xen: HypervisorClient, xs: XenstoreClient, device: Device,
                 mac: bytes, mtu: int = 1500) -> None:
        self.name = f"xen-vif{device.devid}"
        self.mac, self.mtu = mac, mtu
        self._xen, self._xs, self.device = xen, xs, device
        self._engine: NetfrontEngine | None = None
        self._channel = None
        self._held: list[object] = []  # allocations of the current connection
        self._receiver: Receiver | None = None
        self._batch: BatchReceiver | None = None
        self.driver = XenbusDriver.frontend(xs, device, self._connect, self._disconnect,
                                            connected_state=XenbusState.CONNECTED)
        self._task: asyncio.Task[None] | None = None

    @property
    def link_up(self) -> bool:
        return self._engine is not None

    async def _connect(self) -> None:
        xen, backend = self._xen, self.device.backend_id
        rings = await xen.grant_alloc(backend, 2)  # the backend writes responses
        tx_pages = await xen.grant_alloc(backend, NET_TX_RING_SIZE, readonly=True)
        rx_pages = await xen.grant_alloc(backend, NET_RX_RING_SIZE)
        port = await xen.alloc_unbound(DOMID_SELF, backend)
        channel = await xen.open_port(port)
        engine = NetfrontEngine(
            FrontRing(rings.page(0), TX_ENTRY_SIZE), FrontRing(rings.page(1), RX_ENTRY_SIZE),
            _buffers(tx_pages), _buffers(rx_pages))
        engine.post_rx()
        fe = self.device.frontend
        # offloads as the backend offers them; read once, at the first connection, since the
        # stack above is built for them (a later backend is expected to offer the same)
        be = self.device.backend
        self.csum_offload = await self._feature(f"{be}/feature-no-csum-offload") != 1
        self.tso = self.csum_offload and await self._feature(f"{be}/feature-gso-tcpv4") == 1

        async def publish(tx: int) -> None:
            for key, value in (("tx-ring-ref", rings.grefs[0]), ("rx-ring-ref", rings.grefs[1]),
                               ("event-channel", port), ("request-rx-copy", 1),
                               ("feature-rx-notify", 1), ("feature-sg", 1)):
                await self._xs.write(f"{fe}/{key}", str(value), tx=tx)
        await self._xs.transaction(publish)
        self._held = [rings, tx_pages, rx_pages]
        self._channel = channel
        self._engine = engine
        channel.start(self._kick)

    async def _feature(self, path: str) -> int:
        try:
            return int(await self._xs.read(path))
        except (XenstoreError, ValueError):
            return 0

    async def _disconnect(self) -> None:
        engine, self._engine = self._engine, None
        if self._channel is not None:
            self._channel.stop()
            await self._xen.close_port(self._channel)
            self._channel = None
        if engine is not None:
            engine.tx.release()
            engine.rx.release()
        held, self._held = self._held, []
        for allocation in held:
            for gref in allocation.grefs:  # type: ignore[attr-defined]
                try:
                    await self._xen.grant_end(gref)
                except HypervisorError:  # still mapped by the backend: it ends with its map
                    pass

    # -- Netif ----------------------------------------------------------------------------

    def start(self, receiver: Receiver, batch_receiver: BatchReceiver | None = None, *,
              wire: bool = False) -> None:
        self._receiver, self._batch = receiver, batch_receiver
        self._kick()

    def _kick(self) -> None:
        """The backend notified (or we started): take responses and frames, offer pages
        again, and look once more before sleeping, as ``RING_FINAL_CHECK`` asks."""
        engine = self._engine
        if engine is None:
            return
        notify = False
        while True:
            engine.tx_completed()
            frames = engine.receive()
            notify |= engine.post_rx()
            if frames:
                self.rx_frames += len(frames)
                if self._batch is not None:
                    self._batch(frames, bytes(len(frames)))
                elif self._receiver is not None:
                    for frame in frames:
                        self._receiver(frame, False)
            if not (engine.rx.final_check_for_responses()
                    or engine.tx.final_check_for_responses()):
                break
        if notify and self._channel is not None:
            self._channel.notify()

    def send(self, frame: bytes | list[bytes], *, csum_start: int = 0, csum_offset: int = 0,
             gso_size: int = 0) -> None:
        self._queue(frame, bool(csum_start), gso_size)
        self._flush()

    def send_many(self, frames: list[tuple[bytes, ...]], *, csum_start: int = 0,
                  csum_offset: int = 0) -> None:
        for pieces in frames:
            self._queue(list(pieces), bool(csum_start), 0)
        self._flush()

    def _queue(self, frame: bytes | Sequence[bytes], csum_blank: bool, gso_size: int) -> None:
        """The netback finds the checksum's place itself (as Linux's does), so a partial
        checksum needs only its flag; a TCP segment over the MTU its GSO extra."""
        engine = self._engine
        if engine is None:
            self.tx_drops += 1
            return
        data = frame if isinstance(frame, bytes | bytearray | memoryview) else b"".join(frame)
        for _attempt in range(2):
            if engine.send(data, csum_blank=csum_blank, gso_size=gso_size):
                self.tx_frames += 1
                return
            engine.tx_completed()  # make room from what the backend is done with
        self.tx_drops += 1

    def _flush(self) -> None:
        engine = self._engine
        if engine is not None and engine.push() and self._channel is not None:
            self._channel.notify()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._channel is not None:
            self._channel.stop()


def _buffers(allocation) -> list[Buffer]:
    return [Buffer(gref, allocation.page(i)) for i, gref in enumerate(allocation.grefs)]


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"{text!r} is not a MAC address")
    return bytes(int(p, 16) for p in parts)


async def open_netfront(devid: int, xen: HypervisorClient | None = None,
                        xs: XenstoreClient | None = None,
                        timeout: float = CONNECT_TIMEOUT) -> Netfront:
    """This guest's vif ``devid``, connected to its backend (``PlatformError`` if the
    guest has no hypervisor connection, no such device, or no backend answers in time)."""
    if xen is None or xs is None:
        xen, xs = await guest_connection(f"--netif ...=xen:{devid}")
    home = f"/local/domain/{xen.domid}/device/vif/{devid}"
    try:
        backend_id = int(await xs.read(f"{home}/backend-id"))
        mac = parse_mac((await xs.read(f"{home}/mac")).decode())
    except (XenstoreError, ValueError) as exc:
        raise PlatformError(f"xen vif {devid}: {home} is not a device made by the toolstack "
                            f"({exc})") from exc
    netif = Netfront(xen, xs, Device("vif", xen.domid, backend_id, devid), mac)
    netif._task = asyncio.get_running_loop().create_task(netif.driver.run())
    try:
        await asyncio.wait_for(netif.driver.wait_for(XenbusState.CONNECTED), timeout)
    except TimeoutError:
        netif.close()
        raise PlatformError(f"xen vif {devid}: no backend connected within {timeout:.0f} s "
                            f"(is a netback serving domain {backend_id}?)") from None
    return netif
