"""The Xen control device: what ``/dev/xen/privcmd``, ``evtchn`` and ``gntdev`` give a
domain, for appliances that are part of the Xen platform (the xenstore daemon, backends,
a toolstack).

A domain maps pages it was given (domain 0: any domain's, as ``xenforeignmemory`` does),
binds event channels, and reads its parameters (where its xenstore ring and console are).
It shares pages with one other domain through grant tables, as ``gntalloc`` and ``gntdev``
do: a frontend allocates pages granted to its backend and hands over their grant
references (through xenstore); the backend maps them, and only it can.
On ``unix`` the hypervisor is a process of its own (``fata.platform.xen_hypervisor``) that a
privileged appliance reaches with ``fata run --xen-hypervisor PATH``; without one the device
is there but ``available`` is false, and an appliance decides what it can do without it.
"""

from __future__ import annotations

import abc
import mmap
from collections.abc import Sequence

from fata.xen.evtchn import EventChannel
from fata.xen.hypervisor import PAGE_SIZE


class _Pages:
    """Pages mapped in this process, handed out as page-sized views of one mapping."""

    def __init__(self, memory: mmap.mmap) -> None:
        self.memory = memory
        self._view = memoryview(memory)

    def _page(self, index: int) -> memoryview:
        return self._view[index * PAGE_SIZE:(index + 1) * PAGE_SIZE]

    def close(self) -> None:
        """Unmap the pages here.  ``BufferError`` (and nothing unmapped) while a view of
        them is still held: release those first, since the memory under a live view cannot
        be taken away."""
        self._view.release()
        try:
            self.memory.close()
        except BufferError:
            self._view = memoryview(self.memory)
            raise


class GrantAllocation(_Pages):
    """Pages this domain allocated to share with domain ``remote`` (``gntalloc``):
    ``grefs[i]`` names page ``i``.  The pages stay mapped here after their grants end (a
    frontend reads a response from a page it has just ended), until :meth:`close`."""

    def __init__(self, memory: mmap.mmap, grefs: Sequence[int], remote: int,
                 readonly: bool) -> None:
        super().__init__(memory)
        self.grefs = tuple(grefs)
        self.remote = remote
        self.readonly = readonly

    def page(self, index: int) -> memoryview:
        """Page ``index`` of the allocation (the one ``grefs[index]`` names), writable."""
        if not 0 <= index < len(self.grefs):
            raise IndexError(f"an allocation of {len(self.grefs)} pages has no page {index}")
        return self._page(index)


class GrantMapping(_Pages):
    """Grants of domain ``domid`` mapped here (``gntdev``), named ``handle`` for
    :meth:`XenControl.grant_unmap`; views of read-only grants cannot be written."""

    def __init__(self, handle: int, domid: int, grefs: Sequence[int], pages: Sequence[int],
                 writable: bool, memory: mmap.mmap, first: int) -> None:
        super().__init__(memory)
        self.handle = handle
        self.domid = domid
        self.grefs = tuple(grefs)
        self.writable = writable
        # ``memory`` starts at page ``first`` of the allocation the grefs are pages of.
        self._index = {gref: page - first for gref, page in zip(self.grefs, pages,
                                                                 strict=True)}

    def page(self, gref: int) -> memoryview:
        """The page ``gref`` names."""
        try:
            return self._page(self._index[gref])
        except KeyError:
            raise KeyError(f"grant {gref} of domain {self.domid} is not in this "
                           "mapping") from None

    def pages(self) -> list[memoryview]:
        """Every page, in the order of ``grefs``."""
        return [self._page(self._index[gref]) for gref in self.grefs]


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
    async def grant_alloc(self, remote: int, count: int = 1,
                          readonly: bool = False) -> GrantAllocation:
        """``count`` new pages of this domain, granted to domain ``remote`` alone,
        read-only or read-write for it (read-write here either way).  Each page is named by
        a grant reference of this domain's table (8 upwards: 0 to 7 are Xen's reserved
        entries).  ``ENOSPC`` past ``MAX_GRANTS`` grefs of the domain, ``ESRCH`` for no
        domain ``remote``, ``EINVAL`` for a count outside 1..``MAX_GRANTS``."""

    @abc.abstractmethod
    async def grant_end(self, gref: int) -> None:
        """Stop sharing page ``gref`` (``gnttab_end_foreign_access``): ``EBUSY`` while its
        remote domain has it mapped, ``EINVAL`` for a gref this connection did not
        allocate.  Once every gref of an allocation ended, nobody can map it again; its
        pages stay mapped here until the allocation is closed."""

    @abc.abstractmethod
    async def grant_map(self, domid: int, grefs: Sequence[int],
                        writable: bool = True) -> GrantMapping:
        """Map the pages domain ``domid`` granted this domain as ``grefs`` (all of one of
        its allocations, each once): ``EPERM`` for a grant to another domain or ``writable``
        of a read-only grant, ``EINVAL`` for an unknown gref or grefs of several
        allocations, ``ESRCH`` for no domain ``domid``, ``ENOSPC`` past ``MAX_MAPPED``
        grefs mapped by this domain.  A read-only map is enforced by the kernel: its
        descriptor cannot be mapped writable."""

    @abc.abstractmethod
    async def grant_unmap(self, mapping: GrantMapping) -> None:
        """Unmap ``mapping`` here and then in the hypervisor, so its granter may end it
        (``BufferError``, nothing unmapped, while a view of its pages is still held)."""

    @abc.abstractmethod
    async def get_param(self, index: int, domid: int = 0x7FF0) -> int:
        """A parameter (``HVM_PARAM_*``) of this domain, or of any for domain 0."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every mapping and the connection to the hypervisor."""
