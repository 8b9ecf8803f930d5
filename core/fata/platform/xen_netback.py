"""netback: the backend of guests' vifs, as a privileged process of domain 0 that owns the
real devices (a driver domain, in Xen's terms).

It watches ``/local/domain/<self>/backend/vif`` in xenstore; for each device the toolstack
makes there it creates TAP ``vif<fe>.<devid>`` (Linux netback's name), offers
``feature-rx-copy`` and ``feature-sg``, and runs the xenbus handshake: once the frontend has
published its rings it maps them and binds the event channel, then moves frames between
the TAP and the rings through :class:`~fata.xen.netchannel.NetbackEngine`.  Pages named by
requests are mapped on first sight, a whole allocation in one hypercall where the
frontend's references allow it; a reference that cannot be mapped is refused, and the
requests naming it are answered with errors.  A frontend that breaks its rings is
disconnected; its device directory going away ends the device.

``python -m fata.platform.xen_netback --xen-hypervisor PATH --xenstore SOCKET``
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any

from fata.platform.netif import NetifChoice, open_choice
from fata.platform.xen_backend import BackendDomain, serve_backend
from fata.xen.hypervisor import HypervisorError
from fata.xen.netchannel import NetbackEngine, Offloaded
from fata.xen.netif import RX_ENTRY_SIZE, TX_ENTRY_SIZE
from fata.xen.ring import BackRing, RingError
from fata.xen.xenbus import Device, XenbusDriver
from fata.xen.xs_wire import XenstoreError


class Vif:
    """One guest's vif: its TAP, its rings once connected, its xenbus driver."""

    def __init__(self, backend: Netback, device: Device) -> None:
        self.backend, self.device = backend, device
        self.ifname = f"vif{device.frontend_id}.{device.devid}"
        self.tap = None
        self.engine: NetbackEngine | None = None
        self.channel = None
        self.maps: list[object] = []
        self._busy = False
        self._again = False
        self.driver = XenbusDriver.backend(backend.xs, device, self._connect, self._disconnect)

    async def run(self) -> None:
        xs, be = self.backend.xs, self.device.backend
        self.tap = await open_choice(NetifChoice("tap", self.ifname))
        for key in ("feature-rx-copy", "feature-sg", "feature-gso-tcpv4"):
            await xs.write(f"{be}/{key}", "1")
        await xs.write(f"{be}/vifname", self.ifname)  # for the toolstack to configure it
        self.tap.start(self._from_tap_one, self._from_tap, wire=True)
        self.backend.console.info(f"vif {self.device.frontend_id}/{self.device.devid}: "
                                  f"TAP {self.ifname}")
        try:
            await self.driver.run()
        finally:
            await self._disconnect()
            self.tap.close()

    async def _connect(self) -> None:
        xs, xen, fe = self.backend.xs, self.backend.xen, self.device.frontend
        dom = self.device.frontend_id
        try:
            tx_ref = int(await xs.read(f"{fe}/tx-ring-ref"))
            rx_ref = int(await xs.read(f"{fe}/rx-ring-ref"))
            port = int(await xs.read(f"{fe}/event-channel"))
        except (XenstoreError, ValueError) as exc:
            self.backend.console.error(f"vif {dom}: the frontend's rings are not readable "
                                       f"({exc})")
            return
        tx_map = await xen.grant_map(dom, [tx_ref], writable=True)
        rx_map = await xen.grant_map(dom, [rx_ref], writable=True)
        self.maps = [tx_map, rx_map]
        self.engine = NetbackEngine(BackRing(tx_map.page(tx_ref), TX_ENTRY_SIZE),
                                    BackRing(rx_map.page(rx_ref), RX_ENTRY_SIZE))
        self.channel = await xen.bind_interdomain(dom, port)
        self.channel.start(self.kick)
        self.kick()

    async def _disconnect(self) -> None:
        engine, self.engine = self.engine, None
        if self.channel is not None:
            self.channel.stop()
            with suppress(HypervisorError, OSError):
                await self.backend.xen.close_port(self.channel)
            self.channel = None
        if engine is not None:
            engine.tx.release()
            engine.rx.release()
            engine.pages.clear()
        maps, self.maps = self.maps, []
        for mapping in maps:
            with suppress(HypervisorError, BufferError, OSError):
                await self.backend.xen.grant_unmap(mapping)

    # -- frames -----------------------------------------------------------------------

    def kick(self) -> None:
        """The guest notified: serve its rings from a task (mapping new pages is a
        hypercall), never more than one at a time, again if kicked meanwhile."""
        if self._busy:
            self._again = True
            return
        self._busy = True
        asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        try:
            while True:
                self._again = False
                engine = self.engine
                if engine is None:
                    return
                try:
                    await self._map(engine)
                    frames, notify = engine.transmit()
                    if frames:
                        self._to_tap(frames)
                    if notify and self.channel is not None:
                        self.channel.notify()
                    more = engine.tx.final_check_for_requests()
                except RingError as exc:
                    self.backend.console.error(f"vif {self.device.frontend_id}: {exc}; "
                                               "disconnecting")
                    await self._disconnect()
                    return
                if not (more or self._again):
                    return
        finally:
            self._busy = False

    def _to_tap(self, frames: list[bytes | Offloaded]) -> None:
        """Plain frames in one batch; a frame whose checksum or segmentation the guest left
        to the device goes with a virtio-net header saying where (found as Linux's netback
        finds it, from the frame's own headers), or is dropped if its headers do not say."""
        plain = [(frame,) for frame in frames if type(frame) is bytes]
        if plain:
            self.tap.send_many(plain)
        for frame in frames:
            if type(frame) is bytes:
                continue
            where = offload_offsets(frame.frame)
            if where is None:
                self.tap.tx_drops += 1
                continue
            csum_start, csum_offset, header = where
            data = frame.frame
            if frame.gso_size:
                self.tap.send([data[:csum_start], data[csum_start:header], data[header:]],
                              csum_start=csum_start, csum_offset=csum_offset,
                              gso_size=frame.gso_size)
            else:
                self.tap.send(data, csum_start=csum_start, csum_offset=csum_offset)

    async def _map(self, engine: NetbackEngine) -> None:
        """Map the pages waiting requests name: each group (read-only tx pages, writable
        rx pages) in one call when it is one allocation, else one by one."""
        wanted = engine.wanted()
        xen, dom = self.backend.xen, self.device.frontend_id
        for writable in (False, True):
            grefs = sorted(g for g, w in wanted if w == writable)
            if not grefs:
                continue
            try:
                mapping = await xen.grant_map(dom, grefs, writable=writable)
            except HypervisorError:
                for gref in grefs:
                    try:
                        single = await xen.grant_map(dom, [gref], writable=writable)
                    except HypervisorError:
                        engine.refuse(gref, writable)
                        continue
                    self.maps.append(single)
                    engine.grant(gref, writable, single.page(gref))
                continue
            self.maps.append(mapping)
            for gref in grefs:
                engine.grant(gref, writable, mapping.page(gref))

    def _from_tap(self, frames, trusted) -> None:
        engine = self.engine
        if engine is None:
            return
        try:
            if engine.wanted():  # pages not mapped yet: map them, then deliver
                asyncio.get_running_loop().create_task(self._deliver_later(list(frames)))
                return
            if engine.deliver(frames) and self.channel is not None:
                self.channel.notify()
        except RingError as exc:
            self.backend.console.error(f"vif {self.device.frontend_id}: {exc}")

    def _from_tap_one(self, frame: bytes, trusted: bool) -> None:
        self._from_tap([frame], b"\1")

    async def _deliver_later(self, frames: list[bytes]) -> None:
        engine = self.engine
        if engine is None:
            return
        await self._map(engine)
        if engine.deliver(frames) and self.channel is not None:
            self.channel.notify()


def offload_offsets(frame: bytes) -> tuple[int, int, int] | None:
    """Where a frame's L4 header starts, where its checksum is in that header, and where
    its payload starts (TCP or UDP over IPv4 or IPv6, one VLAN tag at most); None if it is
    not such a frame or its headers run past its end."""
    at, kind = 14, int.from_bytes(frame[12:14], "big")
    if kind == 0x8100:
        at, kind = 18, int.from_bytes(frame[16:18], "big")
    if kind == 0x0800 and len(frame) >= at + 20:
        l4, proto = at + (frame[at] & 0x0F) * 4, frame[at + 9]
    elif kind == 0x86DD and len(frame) >= at + 40:
        l4, proto = at + 40, frame[at + 6]
    else:
        return None
    if proto == 6 and len(frame) >= l4 + 20:
        header = l4 + (frame[l4 + 12] >> 4) * 4
        return (l4, 16, header) if header <= len(frame) else None
    if proto == 17 and len(frame) >= l4 + 8:
        return l4, 6, l4 + 8
    return None


class Netback(BackendDomain):
    """Every vif of this backend domain."""

    kind, service = "vif", "netback"

    def serve(self, device: Device) -> Coroutine[Any, Any, None]:
        return Vif(self, device).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fata.platform.xen_netback",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--xen-hypervisor", required=True, metavar="PATH")
    parser.add_argument("--xenstore", required=True, metavar="SOCKET")
    args = parser.parse_args(argv)
    asyncio.run(serve_backend("netback", args.xen_hypervisor, args.xenstore, Netback))


if __name__ == "__main__":
    main()
