"""``xen()`` on ``unix``: a domain's connection to the hypervisor process
(``fata.platform.xen_hypervisor``), as the :class:`~fata.devices.xen.XenControl` device.

Domain 0's tools connect to the hypervisor's socket (``fata run --xen-hypervisor PATH``);
a guest inherits its connection from whoever created its domain (the descriptor number in
``FATA_XEN_DOMAIN_FD``).  Requests are asked one at a time, each answered in order on the
same ``SOCK_SEQPACKET`` connection, and the descriptors an answer grants become mappings
and :class:`~fata.xen.evtchn.EventChannel`\\ s here.  A grant's descriptor is mapped as
soon as it arrives and closed (the mapping keeps its own); the allocations and maps of a
connection end with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import os
import socket
import weakref
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from fata.devices.xen import GrantAllocation, GrantMapping, XenControl
from fata.platform import PlatformError
from fata.platform.registry import DeviceContext
from fata.platform.xs_ring_flow import RingFlow
from fata.xen.evtchn import EventChannel
from fata.xen.hypervisor import (
    DOMID_SELF,
    HVM_PARAM_STORE_EVTCHN,
    HVM_PARAM_STORE_PFN,
    PAGE_SIZE,
    HypervisorError,
)
from fata.xen.xs_ring import XsRing

DOMAIN_FD_ENV = "FATA_XEN_DOMAIN_FD"
_ADDED = "_fata_xen_hypervisor_added"


class HypervisorClient(XenControl):
    """One domain's hypercalls over its connection to the hypervisor."""

    available = True

    def __init__(self, sock: socket.socket, domid: int) -> None:
        self._sock = sock
        self.domid = domid
        self._lock = asyncio.Lock()
        self._memory: dict[int, tuple[int, int]] = {}  # domid -> (memfd, pages)
        self._maps: list[mmap.mmap] = []
        self._channels: dict[int, EventChannel] = {}
        self._allocations: weakref.WeakSet[GrantAllocation] = weakref.WeakSet()
        self._grant_maps: dict[int, GrantMapping] = {}  # handle -> mapping

    @classmethod
    async def connect(cls, path: str) -> HypervisorClient:
        """Domain 0's connection to the hypervisor listening on ``path``."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise PlatformError(f"cannot reach the Xen hypervisor at {path}: "
                                f"{exc.strerror}") from None
        return await cls._start(sock)

    @classmethod
    async def from_fd(cls, fd: int) -> HypervisorClient:
        """The connection a domain was created with (an inherited descriptor)."""
        return await cls._start(socket.socket(fileno=fd))

    @classmethod
    async def _start(cls, sock: socket.socket) -> HypervisorClient:
        sock.setblocking(False)
        client = cls(sock, -1)
        client.domid = (await client.call("whoami"))[0]["domid"]
        return client

    async def call(self, op: str, **args: Any) -> tuple[dict[str, Any], list[int]]:
        """One request and its answer (and granted descriptors); ``HypervisorError`` for a
        refusal, ``ConnectionError`` when the hypervisor is gone."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            try:
                socket.send_fds(self._sock, [json.dumps({"op": op, **args}).encode()], [])
                while True:
                    try:
                        data, fds, _, _ = socket.recv_fds(self._sock, 65536, 8)
                        break
                    except BlockingIOError:
                        ready = loop.create_future()
                        loop.add_reader(self._sock.fileno(), ready.set_result, None)
                        try:
                            await ready
                        finally:
                            loop.remove_reader(self._sock.fileno())
            except OSError as exc:
                raise ConnectionError(f"the Xen hypervisor connection failed: {exc}") from None
        if not data:
            raise ConnectionError("the Xen hypervisor closed the connection")
        answer = json.loads(data)
        if "error" in answer:
            for fd in fds:
                os.close(fd)
            raise HypervisorError(answer["error"], answer.get("detail", ""))
        return answer, fds

    async def create_domain(self, name: str, pages: int = 16) -> tuple[int, socket.socket]:
        """A new guest domain: its id and the connection to hand to its process."""
        answer, fds = await self.call("create_domain", name=name, pages=pages)
        return answer["domid"], socket.socket(fileno=fds[0])

    async def destroy_domain(self, domid: int) -> None:
        await self.call("destroy_domain", domid=domid)
        memory = self._memory.pop(domid, None)
        if memory is not None:
            os.close(memory[0])

    async def domains(self) -> list[dict[str, Any]]:
        return (await self.call("domains"))[0]["domains"]

    async def set_param(self, domid: int, index: int, value: int) -> None:
        await self.call("set_param", domid=domid, index=index, value=value)

    async def get_param(self, index: int, domid: int = DOMID_SELF) -> int:
        return (await self.call("get_param", domid=domid, index=index))[0]["value"]

    async def map_foreign(self, domid: int, pfn: int, count: int = 1) -> mmap.mmap:
        domid = self.domid if domid == DOMID_SELF else domid
        if domid not in self._memory:
            answer, fds = await self.call("memory", domid=domid)
            self._memory[domid] = (fds[0], answer["pages"])
        fd, pages = self._memory[domid]
        if count < 1 or pfn < 0 or pfn + count > pages:
            raise HypervisorError("EINVAL", f"pages {pfn}..{pfn + count} are outside domain "
                                            f"{domid}'s {pages}")
        mapping = mmap.mmap(fd, count * PAGE_SIZE, mmap.MAP_SHARED,
                            mmap.PROT_READ | mmap.PROT_WRITE, offset=pfn * PAGE_SIZE)
        self._maps.append(mapping)
        return mapping

    async def alloc_unbound(self, dom: int, remote: int) -> int:
        return (await self.call("alloc_unbound", dom=dom, remote=remote))[0]["port"]

    async def grant_alloc(self, remote: int, count: int = 1,
                          readonly: bool = False) -> GrantAllocation:
        answer, fds = await self.call("grant_alloc", remote=remote, count=count,
                                      readonly=readonly)
        grefs = answer["grefs"]
        try:
            # Mapped before the caller hands the grefs out: a read-only allocation is sealed
            # against new writable mappings at its first map (a remote that guessed its
            # grefs and mapped sooner only breaks the grant it was given).
            memory = mmap.mmap(fds[0], len(grefs) * PAGE_SIZE, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError:
            for gref in grefs:  # one mapped already ends as this connection closes
                with suppress(HypervisorError, ConnectionError):
                    await self.call("grant_end", gref=gref)
            raise
        finally:
            os.close(fds[0])
        allocation = GrantAllocation(memory, grefs, answer["remote"], answer["readonly"])
        self._allocations.add(allocation)
        return allocation

    async def grant_end(self, gref: int) -> None:
        await self.call("grant_end", gref=gref)

    async def grant_map(self, domid: int, grefs: Sequence[int],
                        writable: bool = True) -> GrantMapping:
        answer, fds = await self.call("grant_map", domid=domid, grefs=list(grefs),
                                      writable=writable)
        pages: list[int] = answer["pages"]
        first = min(pages)
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        try:  # one mapping from the first page asked for to the last
            memory = mmap.mmap(fds[0], (max(pages) - first + 1) * PAGE_SIZE,
                               mmap.MAP_SHARED, prot, offset=first * PAGE_SIZE)
        except OSError:
            with suppress(HypervisorError, ConnectionError):
                await self.call("grant_unmap", handle=answer["handle"])
            raise
        finally:
            os.close(fds[0])
        mapping = GrantMapping(answer["handle"], answer["domid"], grefs, pages, writable,
                               memory, first)
        self._grant_maps[mapping.handle] = mapping
        return mapping

    async def grant_unmap(self, mapping: GrantMapping) -> None:
        mapping.close()
        self._grant_maps.pop(mapping.handle, None)
        await self.call("grant_unmap", handle=mapping.handle)

    async def bind_interdomain(self, remote_dom: int, remote_port: int) -> EventChannel:
        answer, fds = await self.call("bind_interdomain", remote_dom=remote_dom,
                                      remote_port=remote_port)
        return self._channel(answer["port"], fds)

    async def open_port(self, port: int) -> EventChannel:
        answer, fds = await self.call("open_port", port=port)
        return self._channel(answer["port"], fds)

    def _channel(self, port: int, fds: list[int]) -> EventChannel:
        old = self._channels.pop(port, None)
        if old is not None:
            old.close()
        channel = self._channels[port] = EventChannel(port, fds[0], fds[1])
        return channel

    async def close_port(self, channel: EventChannel) -> None:
        self._channels.pop(channel.port, None)
        channel.close()
        with suppress(HypervisorError):  # already closed by the domain's destruction
            await self.call("close_port", port=channel.port)

    async def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        for pages in [*self._grant_maps.values(), *self._allocations]:
            with suppress(BufferError):  # the hypervisor unmaps them as the connection goes
                pages.close()
        self._grant_maps.clear()
        for mapping in self._maps:
            with suppress(BufferError):  # a view of it is still alive: the GC unmaps it
                mapping.close()
        self._maps.clear()
        for fd, _ in self._memory.values():
            os.close(fd)
        self._memory.clear()
        self._sock.close()


async def xenstore_ring(xen: HypervisorClient) -> RingFlow:
    """A guest's connection to xenstore: the ring page and event channel its builder set
    in ``HVM_PARAM_STORE_PFN`` and ``HVM_PARAM_STORE_EVTCHN``, as a Flow (what Linux's
    xenbus driver finds in its start info)."""
    page = await xen.map_foreign(DOMID_SELF, await xen.get_param(HVM_PARAM_STORE_PFN))
    channel = await xen.open_port(await xen.get_param(HVM_PARAM_STORE_EVTCHN))
    return RingFlow(XsRing(memoryview(page), server=False), channel, domid=xen.domid)


class NoHypervisor(XenControl):
    """The device when no hypervisor was named: every hypercall says how to get one."""

    available = False
    domid = 0

    def _absent(self) -> PlatformError:
        return PlatformError("no Xen hypervisor: start one with `python -m "
                             "fata.platform.xen_hypervisor --socket PATH` and pass "
                             "`fata run --xen-hypervisor PATH`")

    async def map_foreign(self, domid: int, pfn: int, count: int = 1) -> mmap.mmap:
        raise self._absent()

    async def alloc_unbound(self, dom: int, remote: int) -> int:
        raise self._absent()

    async def grant_alloc(self, remote: int, count: int = 1,
                          readonly: bool = False) -> GrantAllocation:
        raise self._absent()

    async def grant_end(self, gref: int) -> None:
        raise self._absent()

    async def grant_map(self, domid: int, grefs: Sequence[int],
                        writable: bool = True) -> GrantMapping:
        raise self._absent()

    async def grant_unmap(self, mapping: GrantMapping) -> None:
        raise self._absent()

    async def bind_interdomain(self, remote_dom: int, remote_port: int) -> EventChannel:
        raise self._absent()

    async def open_port(self, port: int) -> EventChannel:
        raise self._absent()

    async def close_port(self, channel: EventChannel) -> None:
        channel.close()

    async def get_param(self, index: int, domid: int = DOMID_SELF) -> int:
        raise self._absent()

    async def close(self) -> None:
        return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--xen-hypervisor PATH``: domain 0's way to the hypervisor process."""
    if getattr(parser, _ADDED, False):
        return
    setattr(parser, _ADDED, True)
    parser.add_argument("--xen-hypervisor", metavar="PATH", default=None,
                        help="the socket of a Xen hypervisor process "
                             "(python -m fata.platform.xen_hypervisor)")


async def open_xen(name: str, spec: dict, ctx: DeviceContext) -> XenControl:
    """The hypervisor named by ``--xen-hypervisor``, or the one this domain inherited."""
    path = getattr(ctx.options, "xen_hypervisor", None)
    if path:
        return await HypervisorClient.connect(path)
    fd = os.environ.get(DOMAIN_FD_ENV)
    if fd and fd.isdigit():
        return await HypervisorClient.from_fd(int(fd))
    return NoHypervisor()
