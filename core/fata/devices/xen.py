"""The Xen control device: what ``/dev/xen/privcmd``, ``evtchn`` and ``gntdev`` give a
domain, for appliances that are part of the Xen platform (the xenstore daemon, backends,
a toolstack).

A domain maps pages it was given (domain 0: any domain's, as ``xenforeignmemory`` does),
binds event channels, and reads its parameters (where its xenstore ring and console are).
On ``unix`` the hypervisor is a process of its own (``fata.platform.xen_hypervisor``) that a
privileged appliance reaches with ``fata run --xen-hypervisor PATH``; without one the device
is there but ``available`` is false, and an appliance decides what it can do without it.
"""

from __future__ import annotations

import abc
import mmap

from fata.xen.evtchn import EventChannel


class XenControl(abc.ABC):
    """A domain's hypercalls.  Refusals raise ``fata.xen.hypervisor.HypervisorError``."""

    available: bool
    domid: int

    @abc.abstractmethod
    async def map_foreign(self, domid: int, pfn: int, count: int = 1) -> mmap.mmap:
        """``count`` pages of ``domid``'s memory from page ``pfn``, shared and writable."""

    @abc.abstractmethod
    async def alloc_unbound(self, dom: int, remote: int) -> int:
        """A port of ``dom`` that ``remote`` may bind; its number."""

    @abc.abstractmethod
    async def bind_interdomain(self, remote_dom: int, remote_port: int) -> EventChannel:
        """A local port bound to ``remote_dom``'s unbound ``remote_port``."""

    @abc.abstractmethod
    async def open_port(self, port: int) -> EventChannel:
        """This domain's own ``port`` (allocated for it by its builder), to wait and notify."""

    @abc.abstractmethod
    async def close_port(self, channel: EventChannel) -> None:
        """Close the port (its peer becomes unbound) and the channel's descriptors."""

    @abc.abstractmethod
    async def get_param(self, index: int, domid: int = 0x7FF0) -> int:
        """A parameter (``HVM_PARAM_*``) of this domain, or of any for domain 0."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every mapping and the connection to the hypervisor."""
