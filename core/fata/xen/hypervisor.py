"""What the hypervisor keeps for the Xen platform on Linux: domains, their memory, their
event-channel ports and their parameters, with Xen's rules for who may do what.

Sans-IO: operations in, results out, errors as the errno names Xen's hypercalls return.
The process that owns this state (``fata.platform.xen_hypervisor``) turns its *channel
ids* into eventfds and each domain's memory into a memfd; nothing here opens either.

The rules are Xen's: domain 0 is privileged (it creates and destroys domains, sets their
parameters, maps any domain's pages and allocates unbound ports on any domain's behalf);
every other domain acts only as itself (``DOMID_SELF``).  A port is allocated *unbound* for
one remote domain and only that domain may bind to it (``EVTCHNOP_alloc_unbound`` and
``EVTCHNOP_bind_interdomain``); closing one end leaves the other unbound, as Xen does.

Grant tables follow Linux's ``gntalloc``/``gntdev`` model: a domain *allocates* grantable
pages for one remote domain (an :class:`Allocation`, which the process backs with a memfd of
its own, not with the domain's memory), each page named by a grant reference (gref) of the
granting domain's table; only that remote domain may map them, never writably when the grant
is read-only, and the granting domain cannot end a grant while it is mapped.  Domain 0 has
no privilege here: a grant is between two domains, as in Xen.  The errno names stand for
Xen's ``GNTST_*`` statuses: ``GNTST_bad_domain`` is ``ESRCH``, ``GNTST_bad_gntref`` and
``GNTST_bad_handle`` are ``EINVAL``, ``GNTST_permission_denied`` is ``EPERM``,
``GNTST_no_space`` is ``ENOSPC``, and ending a grant in use (what
``gnttab_end_foreign_access_ref`` refuses) is ``EBUSY``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

DOMID_SELF = 0x7FF0
PAGE_SIZE = 4096
MAX_PAGES = 65536  # 256 MiB of shareable memory per domain
MAX_PORTS = 4096
# Grefs 0..7 are Xen's reserved entries (GNTTAB_NR_RESERVED_ENTRIES: the toolstack's console
# and xenstore grants), so a domain's own allocations are numbered from 8.
FIRST_GREF = 8
# Live grefs per domain: 4096 pages (16 MiB) of grantable memory.  Xen's default table
# (max_grant_frames 64 x 512 v1 entries) has 32768; a ring.h frontend needs a few hundred
# (a netfront queue 256 tx + 256 rx, a one-page blkfront ring 32 requests x 11 segments),
# so 4096 serves several devices while bounding what one domain makes the hypervisor hold.
MAX_GRANTS = 4096
# Grefs one domain may hold mapped at once, over all its maps (Xen's maptrack table; its
# default, 1024 frames of 512 entries, is far larger, but here each entry is state the
# hypervisor process keeps on the domain's behalf).
MAX_MAPPED = 65536

HVM_PARAM_STORE_PFN = 1
HVM_PARAM_STORE_EVTCHN = 2
HVM_PARAM_CONSOLE_PFN = 17
HVM_PARAM_CONSOLE_EVTCHN = 18
PARAMS = {HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_CONSOLE_PFN,
          HVM_PARAM_CONSOLE_EVTCHN}


class HypervisorError(Exception):
    """A refused operation; ``code`` is the errno name the hypercall would return."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class PortState(enum.Enum):
    UNBOUND = "unbound"
    INTERDOMAIN = "interdomain"


@dataclass
class Port:
    """One event-channel port of a domain: it waits on channel ``recv`` and notifies
    ``send``; ``remote_port`` is set once bound."""

    port: int
    state: PortState
    remote_dom: int
    recv: int
    send: int
    remote_port: int = 0


@dataclass
class Grant:
    """One entry of a domain's grant table: page ``page`` of allocation ``allocation``,
    granted to ``remote``.  ``ending`` is set when its holder went away while it was mapped:
    it ends as its last map goes (Linux's deferred ``gnttab_end_foreign_access``)."""

    gref: int
    remote: int
    readonly: bool
    allocation: int
    page: int
    mapped: int = 0
    ending: bool = False


@dataclass
class Allocation:
    """Pages ``domid`` allocated to grant (``IOCTL_GNTALLOC_ALLOC_GREF``): ``grefs[i]``
    names page ``i``; ``live`` are the grefs not ended yet.  ``id`` is unique for the life
    of the hypervisor, so the process can key its memfd by it and a stale id never names
    another allocation."""

    id: int
    domid: int
    remote: int
    readonly: bool
    grefs: tuple[int, ...]
    live: set[int]


@dataclass
class GrantMap:
    """Grants of ``granter`` that domain ``domid`` mapped in one request, all pages of one
    allocation (``pages[i]`` is the page of ``grefs[i]``); ``handle`` names it for
    unmapping and is never reused by the same domain."""

    handle: int
    domid: int
    granter: int
    allocation: int
    grefs: tuple[int, ...]
    pages: tuple[int, ...]
    writable: bool


@dataclass
class Domain:
    domid: int
    name: str
    pages: int
    params: dict[int, int] = field(default_factory=dict)
    ports: dict[int, Port] = field(default_factory=dict)
    grants: dict[int, Grant] = field(default_factory=dict)
    maps: dict[int, GrantMap] = field(default_factory=dict)
    mapped: int = 0  # grefs held mapped over all of ``maps``
    next_handle: int = 1

    def free_port(self) -> int:
        for port in range(1, MAX_PORTS):
            if port not in self.ports:
                return port
        raise HypervisorError("ENOSPC", f"domain {self.domid} has no free event-channel port")

    def free_grefs(self, count: int) -> list[int]:
        """The ``count`` lowest unused grefs (Xen's guests reuse freed entries too)."""
        if len(self.grants) + count > MAX_GRANTS:
            raise HypervisorError("ENOSPC", f"domain {self.domid} has {len(self.grants)} of "
                                            f"{MAX_GRANTS} grants; {count} more do not fit")
        grefs: list[int] = []
        gref = FIRST_GREF
        while len(grefs) < count:
            if gref not in self.grants:
                grefs.append(gref)
            gref += 1
        return grefs


class Hypervisor:
    """Domains, ports and grant tables.  ``caller`` of every operation is the calling
    domain's id.  ``released`` and ``released_allocations`` list what the process may now
    close (channels, allocations' memfds); it empties them."""

    def __init__(self, dom0_pages: int = 256) -> None:
        self.domains: dict[int, Domain] = {0: Domain(0, "Domain-0", dom0_pages)}
        self._next_domid = 1
        self._next_channel = 1
        self.released: list[int] = []  # channel ids no port refers to any more
        self.allocations: dict[int, Allocation] = {}
        self._next_allocation = 1
        self.released_allocations: list[int] = []  # allocation ids no gref refers to any more

    # -- domains -------------------------------------------------------------------------

    def create_domain(self, caller: int, name: str, pages: int) -> Domain:
        """A new unprivileged domain with ``pages`` pages of shareable memory."""
        self._privileged(caller, "create a domain")
        if not 1 <= pages <= MAX_PAGES:
            raise HypervisorError("EINVAL", f"a domain has 1 to {MAX_PAGES} pages, not {pages}")
        if not name or len(name) > 64 or not name.isprintable():
            raise HypervisorError("EINVAL", "a domain's name is 1 to 64 printable characters")
        if any(d.name == name for d in self.domains.values()):
            raise HypervisorError("EEXIST", f"a domain named {name!r} exists")
        domid = self._next_domid
        while domid in self.domains:
            domid += 1
        self._next_domid = domid + 1
        domain = self.domains[domid] = Domain(domid, name, pages)
        return domain

    def destroy_domain(self, caller: int, domid: int) -> None:
        """The domain is gone: its ports close (their peers become unbound), its maps of
        others' grants are unmapped, and its grant table goes with every allocation in it,
        mapped or not (a backend keeps what it mapped, as Xen keeps a dying domain's granted
        pages until they are unmapped, but it can map none of them any more)."""
        self._privileged(caller, "destroy a domain")
        domain = self.domain(domid)
        if domid == 0:
            raise HypervisorError("EINVAL", "domain 0 cannot be destroyed")
        for port in list(domain.ports):
            self.close_port(domid, port)
        for handle in list(domain.maps):
            self.grant_unmap(domid, handle)
        for allocation in [a for a in self.allocations.values() if a.domid == domid]:
            self._drop_allocation(allocation)
        del self.domains[domid]

    def domain(self, domid: int) -> Domain:
        try:
            return self.domains[domid]
        except KeyError:
            raise HypervisorError("ESRCH", f"no domain {domid}") from None

    def memory(self, caller: int, domid: int) -> Domain:
        """The domain whose memory ``caller`` maps: its own, or any for domain 0."""
        domid = caller if domid == DOMID_SELF else domid
        if domid != caller:
            self._privileged(caller, f"map domain {domid}'s memory")
        return self.domain(domid)

    # -- parameters ----------------------------------------------------------------------

    def set_param(self, caller: int, domid: int, index: int, value: int) -> None:
        self._privileged(caller, "set a domain's parameters")
        if index not in PARAMS:
            raise HypervisorError("EINVAL", f"no parameter {index}")
        self.domain(domid).params[index] = value

    def get_param(self, caller: int, domid: int, index: int) -> int:
        domid = caller if domid == DOMID_SELF else domid
        if domid != caller:
            self._privileged(caller, f"read domain {domid}'s parameters")
        if index not in PARAMS:
            raise HypervisorError("EINVAL", f"no parameter {index}")
        try:
            return self.domain(domid).params[index]
        except KeyError:
            raise HypervisorError("ENOENT", f"parameter {index} of domain {domid} is not set"
                                  ) from None

    # -- event channels ------------------------------------------------------------------

    def alloc_unbound(self, caller: int, dom: int, remote: int) -> Port:
        """A port of ``dom`` that only ``remote`` may bind (domain 0 may allocate for any
        domain, as a domain builder does for a guest's xenstore channel)."""
        dom = caller if dom == DOMID_SELF else dom
        remote = caller if remote == DOMID_SELF else remote
        if dom != caller:
            self._privileged(caller, f"allocate a port of domain {dom}")
        domain = self.domain(dom)
        self.domain(remote)
        port = Port(domain.free_port(), PortState.UNBOUND, remote, self._channel(),
                    self._channel())
        domain.ports[port.port] = port
        return port

    def bind_interdomain(self, caller: int, remote_dom: int, remote_port: int) -> Port:
        """Bind a new port of ``caller`` to ``remote_dom``'s unbound ``remote_port``."""
        domain = self.domain(caller)
        peer = self.domain(remote_dom).ports.get(remote_port)
        if peer is None or peer.state is not PortState.UNBOUND:
            raise HypervisorError("EINVAL", f"port {remote_port} of domain {remote_dom} is "
                                            "not unbound")
        if peer.remote_dom != caller:
            raise HypervisorError("EPERM", f"port {remote_port} of domain {remote_dom} is "
                                           f"for domain {peer.remote_dom}")
        port = Port(domain.free_port(), PortState.INTERDOMAIN, remote_dom, peer.send,
                    peer.recv, remote_port)
        domain.ports[port.port] = port
        peer.state, peer.remote_port = PortState.INTERDOMAIN, port.port
        return port

    def port(self, caller: int, port: int) -> Port:
        """``caller``'s own ``port`` (a guest opens the port its builder allocated)."""
        found = self.domain(caller).ports.get(port)
        if found is None:
            raise HypervisorError("EINVAL", f"domain {caller} has no port {port}")
        return found

    def close_port(self, caller: int, port: int) -> None:
        """Close ``caller``'s ``port``; a bound peer becomes unbound for us again, with a
        fresh channel for the next binder (the old one is released once both ends went)."""
        closing = self.port(caller, port)
        del self.domains[caller].ports[port]
        peer = None
        if closing.state is PortState.INTERDOMAIN and closing.remote_dom in self.domains:
            peer = self.domains[closing.remote_dom].ports.get(closing.remote_port)
        if peer is not None:
            peer.state, peer.remote_port = PortState.UNBOUND, 0
            peer.remote_dom = caller
            old_send = peer.send
            peer.send = self._channel()
            self.released.append(old_send)
        else:
            self.released += [closing.recv, closing.send]

    # -- grant tables --------------------------------------------------------------------

    def grant_alloc(self, caller: int, remote: int, count: int, readonly: bool) -> Allocation:
        """``count`` new pages of ``caller`` granted to ``remote`` (``readonly`` or
        read-write), named by the lowest free grefs, in page order."""
        remote = caller if remote == DOMID_SELF else remote
        domain = self.domain(caller)
        self.domain(remote)
        if not 1 <= count <= MAX_GRANTS:
            raise HypervisorError("EINVAL", f"an allocation has 1 to {MAX_GRANTS} pages, "
                                            f"not {count}")
        grefs = domain.free_grefs(count)
        allocation = Allocation(self._next_allocation, caller, remote, readonly,
                                tuple(grefs), set(grefs))
        self._next_allocation += 1
        self.allocations[allocation.id] = allocation
        for page, gref in enumerate(grefs):
            domain.grants[gref] = Grant(gref, remote, readonly, allocation.id, page)
        return allocation

    def grant(self, caller: int, gref: int) -> Grant:
        """``caller``'s own grant ``gref``."""
        found = self.domain(caller).grants.get(gref)
        if found is None:
            raise HypervisorError("EINVAL", f"domain {caller} has no grant {gref}")
        return found

    def grant_map(self, caller: int, granter: int, grefs: Sequence[int],
                  writable: bool) -> GrantMap:
        """Map ``granter``'s ``grefs`` for ``caller``: each must be granted to ``caller``
        (domain 0 included: grants are not privileged), none read-only if ``writable``, all
        of one allocation, each at most once, since one map is one descriptor of one
        allocation's memory."""
        granter = caller if granter == DOMID_SELF else granter
        mapper = self.domain(caller)
        table = self.domain(granter).grants
        if not 1 <= len(grefs) <= MAX_GRANTS or len(set(grefs)) != len(grefs):
            raise HypervisorError("EINVAL", f"a map names 1 to {MAX_GRANTS} distinct grefs")
        grants = []
        for gref in grefs:
            grant = table.get(gref)
            if grant is None or grant.ending:
                raise HypervisorError("EINVAL", f"domain {granter} has no grant {gref}")
            if grant.remote != caller:
                raise HypervisorError("EPERM", f"grant {gref} of domain {granter} is not "
                                               f"for domain {caller}")
            if writable and grant.readonly:
                raise HypervisorError("EPERM", f"grant {gref} of domain {granter} is "
                                               "read-only")
            grants.append(grant)
        if len({g.allocation for g in grants}) != 1:
            raise HypervisorError("EINVAL", "the grefs of one map are of one allocation")
        if mapper.mapped + len(grants) > MAX_MAPPED:
            raise HypervisorError("ENOSPC", f"domain {caller} has {mapper.mapped} of "
                                            f"{MAX_MAPPED} grants mapped")
        for grant in grants:
            grant.mapped += 1
        mapper.mapped += len(grants)
        mapping = GrantMap(mapper.next_handle, caller, granter, grants[0].allocation,
                           tuple(grefs), tuple(g.page for g in grants), writable)
        mapper.next_handle += 1
        mapper.maps[mapping.handle] = mapping
        return mapping

    def grant_unmap(self, caller: int, handle: int) -> GrantMap:
        """Undo ``caller``'s map ``handle``: its grefs count one map fewer (a grant whose
        holder went away ends with its last map)."""
        mapper = self.domain(caller)
        mapping = mapper.maps.pop(handle, None)
        if mapping is None:
            raise HypervisorError("EINVAL", f"domain {caller} has no map {handle}")
        mapper.mapped -= len(mapping.grefs)
        if mapping.allocation not in self.allocations:  # its granter was destroyed
            return mapping
        table = self.domains[mapping.granter].grants
        for gref in mapping.grefs:
            grant = table[gref]
            grant.mapped -= 1
            if grant.ending and not grant.mapped:
                self._end(mapping.granter, grant)
        return mapping

    def grant_end(self, caller: int, gref: int) -> None:
        """End ``caller``'s grant ``gref`` (``gnttab_end_foreign_access``): refused while
        any domain maps it; the allocation goes once all its grefs ended."""
        grant = self.grant(caller, gref)
        if grant.mapped:
            raise HypervisorError("EBUSY", f"grant {gref} of domain {caller} is mapped "
                                           f"{grant.mapped} times")
        self._end(caller, grant)

    def grant_release(self, caller: int, allocation_id: int) -> None:
        """Whoever held ``caller``'s allocation is gone (its connection closed, as closing
        ``/dev/xen/gntalloc``): its grefs end now, or those mapped as their last map goes;
        none can be mapped again."""
        allocation = self.allocations.get(allocation_id)
        if allocation is None or allocation.domid != caller:
            raise HypervisorError("EINVAL", f"domain {caller} has no allocation "
                                            f"{allocation_id}")
        table = self.domains[caller].grants
        for gref in sorted(allocation.live):
            grant = table[gref]
            grant.ending = True
            if not grant.mapped:
                self._end(caller, grant)

    def _end(self, domid: int, grant: Grant) -> None:
        del self.domains[domid].grants[grant.gref]
        allocation = self.allocations[grant.allocation]
        allocation.live.discard(grant.gref)
        if not allocation.live:
            del self.allocations[allocation.id]
            self.released_allocations.append(allocation.id)

    def _drop_allocation(self, allocation: Allocation) -> None:
        table = self.domains[allocation.domid].grants
        for gref in allocation.live:
            del table[gref]
        del self.allocations[allocation.id]
        self.released_allocations.append(allocation.id)

    # -- helpers -------------------------------------------------------------------------

    def _channel(self) -> int:
        self._next_channel += 1
        return self._next_channel

    @staticmethod
    def _privileged(caller: int, what: str) -> None:
        if caller != 0:
            raise HypervisorError("EPERM", f"domain {caller} may not {what}")
