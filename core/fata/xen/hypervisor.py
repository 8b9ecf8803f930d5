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
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

DOMID_SELF = 0x7FF0
PAGE_SIZE = 4096
MAX_PAGES = 65536  # 256 MiB of shareable memory per domain
MAX_PORTS = 4096

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
class Domain:
    domid: int
    name: str
    pages: int
    params: dict[int, int] = field(default_factory=dict)
    ports: dict[int, Port] = field(default_factory=dict)

    def free_port(self) -> int:
        for port in range(1, MAX_PORTS):
            if port not in self.ports:
                return port
        raise HypervisorError("ENOSPC", f"domain {self.domid} has no free event-channel port")


class Hypervisor:
    """Domains and ports.  ``caller`` of every operation is the calling domain's id."""

    def __init__(self, dom0_pages: int = 256) -> None:
        self.domains: dict[int, Domain] = {0: Domain(0, "Domain-0", dom0_pages)}
        self._next_domid = 1
        self._next_channel = 1
        self.released: list[int] = []  # channel ids no port refers to any more

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
        """The domain is gone: its ports close (their peers become unbound)."""
        self._privileged(caller, "destroy a domain")
        domain = self.domain(domid)
        if domid == 0:
            raise HypervisorError("EINVAL", "domain 0 cannot be destroyed")
        for port in list(domain.ports):
            self.close_port(domid, port)
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

    # -- helpers -------------------------------------------------------------------------

    def _channel(self) -> int:
        self._next_channel += 1
        return self._next_channel

    @staticmethod
    def _privileged(caller: int, what: str) -> None:
        if caller != 0:
            raise HypervisorError("EPERM", f"domain {caller} may not {what}")
