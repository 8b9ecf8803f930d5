"""The hypervisor of the Xen platform on Linux, as a process: it owns every domain's memory
(a sealed memfd) and every event channel (eventfds), and hands them out by Xen's rules
(``fata.xen.hypervisor``) over Unix ``SOCK_SEQPACKET`` connections.

Who a caller is comes from the connection, never from what it says: whoever connects to the
listening socket (mode 0600, in a 0700 directory) is domain 0, the toolstack's; a guest gets
one end of a socket pair when its domain is created and can only ever be that domain.  Each
request is one JSON datagram; its answer is one JSON datagram with the descriptors it
grants in ``SCM_RIGHTS``.  A domain's memfd is sealed against shrinking and growing, so no
domain can make another's mapping fault by truncating it.

Grants (``grant_alloc``, ``grant_map``, ``grant_unmap``, ``grant_end``) are memfds of their
own, one per allocation, sealed the same way.  The granting domain gets its allocation's
memfd read-write; a domain mapping a read-write grant gets the same, one mapping a read-only
grant a descriptor reopened ``O_RDONLY`` (so ``mmap(PROT_WRITE, MAP_SHARED)``, ``write`` and
``fallocate`` on it fail) of a memfd sealed with ``F_SEAL_FUTURE_WRITE`` at its first map
(so reopening ``/proc/self/fd/N`` read-write, which the memfd's mode allows, gains nothing:
only the writable mapping its granter made before the seal can still change it).  The
kernel cannot take back a descriptor, so ending a grant stops new maps, not a backend that
kept what it mapped; like ``gntalloc``, an allocation is never reused for anything else.

A connection's allocations and maps are its own, as a ``gntalloc`` or ``gntdev`` descriptor's
are: another process of the same domain 0 cannot end or unmap them, and when the connection
closes its maps are unmapped and its grants end (those still mapped, as their last map
goes).

Run it with ``python -m fata.platform.xen_hypervisor --socket PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import json
import os
import resource
import signal
import socket
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from fata.xen.evtchn import new_eventfd
from fata.xen.hypervisor import (
    MAX_GRANTS,
    PAGE_SIZE,
    Allocation,
    Hypervisor,
    HypervisorError,
    Port,
)

# Room for a map of a whole allocation: MAX_GRANTS grefs of up to six characters each.
MAX_REQUEST = 16 * MAX_GRANTS
# Not in Python 3.11's fcntl (Linux 5.1, include/uapi/linux/fcntl.h).
F_SEAL_FUTURE_WRITE = getattr(fcntl, "F_SEAL_FUTURE_WRITE", 0x0010)


@dataclass
class Holdings:
    """What one connection holds: allocation ids and map handles (of its domain)."""

    allocations: set[int] = field(default_factory=set)
    maps: set[int] = field(default_factory=set)


class HypervisorServer:
    """The state, its descriptors, and the connections of the domains."""

    def __init__(self) -> None:
        self.hv = Hypervisor()
        self.channels: dict[int, int] = {}  # channel id -> eventfd
        self.memory: dict[int, int] = {}  # domid -> memfd
        self.grant_memory: dict[int, int] = {}  # allocation id -> memfd
        self.connections: dict[socket.socket, int] = {}
        self.holdings: dict[socket.socket, Holdings] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: socket.socket | None = None

    async def listen(self, path: str) -> None:
        """Accept domain 0's connections on ``path`` (a stale socket is replaced)."""
        self._loop = asyncio.get_running_loop()
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with suppress(FileNotFoundError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        sock.listen(64)
        sock.setblocking(False)
        self._listener = sock
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        assert self._listener is not None
        with suppress(BlockingIOError):
            conn, _ = self._listener.accept()
            self._add(conn, 0)

    def _add(self, conn: socket.socket, domid: int) -> None:
        conn.setblocking(False)
        self.connections[conn] = domid
        self.holdings[conn] = Holdings()
        assert self._loop is not None
        self._loop.add_reader(conn.fileno(), self._request, conn)

    def _drop(self, conn: socket.socket) -> None:
        domid = self.connections.pop(conn, None)
        if domid is not None and self._loop is not None:
            self._loop.remove_reader(conn.fileno())
        holdings = self.holdings.pop(conn, None)
        if holdings is not None and domid in self.hv.domains:
            for handle in holdings.maps:
                with suppress(HypervisorError):  # unmapped by the domain's destruction
                    self.hv.grant_unmap(domid, handle)
            for allocation in holdings.allocations:
                with suppress(HypervisorError):  # every gref of it already ended
                    self.hv.grant_release(domid, allocation)
            self._release()
        conn.close()

    def _request(self, conn: socket.socket) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 8)
        except BlockingIOError:
            return
        except OSError:
            self._drop(conn)
            return
        for fd in fds:  # nobody gives the hypervisor descriptors
            os.close(fd)
        if not data:
            self._drop(conn)
            return
        caller = self.connections.get(conn)
        if caller is None:
            return
        try:
            request = json.loads(data)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            answer, out = self.handle(caller, request, self.holdings[conn])
        except HypervisorError as exc:
            answer, out = {"error": exc.code, "detail": exc.detail}, []
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            answer, out = {"error": "EINVAL", "detail": f"malformed request: {exc}"}, []
        except OSError as exc:  # out of descriptors or memory: refused, still serving
            answer, out = {"error": errno.errorcode.get(exc.errno or 0, "EIO"),
                           "detail": f"the hypervisor cannot: {exc.strerror}"}, []
        try:
            socket.send_fds(conn, [json.dumps(answer).encode()], out)
        except OSError:  # a caller that does not read its answers is dropped
            self._drop(conn)

    def handle(self, caller: int, req: dict[str, Any],
               holdings: Holdings) -> tuple[dict[str, Any], list[int]]:
        """One request of domain ``caller`` on a connection holding ``holdings``: its JSON
        answer and the descriptors granted."""
        op, hv = req.get("op"), self.hv
        if isinstance(op, str) and op.startswith("grant_"):
            return self._grant(caller, op, req, holdings)
        if op == "whoami":
            return {"domid": caller}, []
        if op == "create_domain":
            domain = hv.create_domain(caller, str(req["name"]), int(req["pages"]))
            self.memory[domain.domid] = _memfd(domain.domid, domain.pages)
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self._add(ours, domain.domid)
            self._after_send(theirs.close)
            return {"domid": domain.domid}, [theirs.fileno()]
        if op == "destroy_domain":
            domid = int(req["domid"])
            hv.destroy_domain(caller, domid)
            with suppress(KeyError, OSError):
                os.close(self.memory.pop(domid))
            for conn, owner in list(self.connections.items()):
                if owner == domid:
                    self._drop(conn)
            self._release()
            return {}, []
        if op == "memory":
            domain = hv.memory(caller, int(req["domid"]))
            return {"domid": domain.domid, "pages": domain.pages}, [self._memfd(domain.domid)]
        if op == "set_param":
            hv.set_param(caller, int(req["domid"]), int(req["index"]), int(req["value"]))
            return {}, []
        if op == "get_param":
            return {"value": hv.get_param(caller, int(req["domid"]), int(req["index"]))}, []
        if op == "alloc_unbound":
            return {"port": hv.alloc_unbound(caller, int(req["dom"]),
                                             int(req["remote"])).port}, []
        if op == "bind_interdomain":
            port = hv.bind_interdomain(caller, int(req["remote_dom"]), int(req["remote_port"]))
            return {"port": port.port}, self._ends(port)
        if op == "open_port":
            port = hv.port(caller, int(req["port"]))
            return {"port": port.port}, self._ends(port)
        if op == "close_port":
            hv.close_port(caller, int(req["port"]))
            self._release()
            return {}, []
        if op == "domains":
            if caller != 0:
                raise HypervisorError("EPERM", f"domain {caller} may not list domains")
            return {"domains": [{"domid": d.domid, "name": d.name, "pages": d.pages}
                                for d in hv.domains.values()]}, []
        raise HypervisorError("ENOSYS", f"no operation {op!r}")

    def _grant(self, caller: int, op: str, req: dict[str, Any],
               holdings: Holdings) -> tuple[dict[str, Any], list[int]]:
        """The grant-table operations.  Their arguments are checked for their JSON types
        (no ``int("7")`` or ``int(7.9)`` coercion: what a domain names must be what it
        meant)."""
        hv = self.hv
        if op == "grant_alloc":
            allocation = hv.grant_alloc(caller, _int(req, "remote"), _int(req, "count"),
                                        _bool(req, "readonly"))
            try:
                self.grant_memory[allocation.id] = _grant_memfd(allocation)
            except OSError:
                hv.grant_release(caller, allocation.id)
                self._release()
                raise
            holdings.allocations.add(allocation.id)
            return {"grefs": list(allocation.grefs), "remote": allocation.remote,
                    "readonly": allocation.readonly}, [self.grant_memory[allocation.id]]
        if op == "grant_map":
            grefs = req.get("grefs")
            if not isinstance(grefs, list) or not all(_is_int(g) for g in grefs):
                raise HypervisorError("EINVAL", "grefs is a list of integers")
            writable = _bool(req, "writable")
            mapping = hv.grant_map(caller, _int(req, "domid"), grefs, writable)
            try:
                fd = self._grant_descriptor(hv.allocations[mapping.allocation])
            except OSError:
                hv.grant_unmap(caller, mapping.handle)
                raise
            holdings.maps.add(mapping.handle)
            return {"handle": mapping.handle, "domid": mapping.granter,
                    "pages": list(mapping.pages), "writable": writable}, [fd]
        if op == "grant_unmap":
            handle = _int(req, "handle")
            if handle not in holdings.maps:
                raise HypervisorError("EINVAL", f"this connection has no map {handle}")
            hv.grant_unmap(caller, handle)
            holdings.maps.discard(handle)
            self._release()
            return {}, []
        if op == "grant_end":
            gref = _int(req, "gref")
            allocation = hv.grant(caller, gref).allocation
            if allocation not in holdings.allocations:
                raise HypervisorError("EINVAL", f"this connection has no grant {gref}")
            hv.grant_end(caller, gref)
            if allocation not in hv.allocations:
                holdings.allocations.discard(allocation)
            self._release()
            return {}, []
        raise HypervisorError("ENOSYS", f"no operation {op!r}")

    def _grant_descriptor(self, allocation: Allocation) -> int:
        """What a mapper of ``allocation`` gets: its memfd for a read-write grant; for a
        read-only one, the memfd sealed against new writers and reopened read-only (closed
        here once the answer is sent)."""
        memfd = self.grant_memory[allocation.id]
        if not allocation.readonly:
            return memfd
        if not fcntl.fcntl(memfd, fcntl.F_GET_SEALS) & F_SEAL_FUTURE_WRITE:
            # A failure (a granter that sealed its memfd itself, a kernel before 5.1)
            # refuses the map: a read-only grant that cannot be enforced is not given.
            fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, F_SEAL_FUTURE_WRITE | fcntl.F_SEAL_SEAL)
        fd = os.open(f"/proc/self/fd/{memfd}", os.O_RDONLY | os.O_CLOEXEC)
        self._after_send(lambda: os.close(fd))
        return fd

    def _ends(self, port: Port) -> list[int]:
        return [self._eventfd(port.recv), self._eventfd(port.send)]

    def _eventfd(self, channel: int) -> int:
        if channel not in self.channels:
            self.channels[channel] = new_eventfd()
        return self.channels[channel]

    def _memfd(self, domid: int) -> int:
        if domid not in self.memory:  # domain 0's memory is made on first use
            self.memory[domid] = _memfd(domid, self.hv.domain(domid).pages)
        return self.memory[domid]

    def _release(self) -> None:
        """Close the eventfds and grant memfds the state no longer refers to (a domain
        that mapped a grant keeps its own descriptor or mapping of it)."""
        for channel in self.hv.released:
            with suppress(KeyError, OSError):
                os.close(self.channels.pop(channel))
        self.hv.released.clear()
        for allocation in self.hv.released_allocations:
            with suppress(KeyError, OSError):
                os.close(self.grant_memory.pop(allocation))
        self.hv.released_allocations.clear()

    def _after_send(self, close: Callable[[], None]) -> None:
        """Close our copy of a descriptor given away once the answer carrying it is sent
        (answers are sent before the loop runs its next callback)."""
        assert self._loop is not None
        self._loop.call_soon(close)

    def close(self) -> None:
        for conn in list(self.connections):
            self._drop(conn)
        if self._listener is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
        for fd in [*self.channels.values(), *self.memory.values(),
                   *self.grant_memory.values()]:
            with suppress(OSError):
                os.close(fd)
        self.channels.clear()
        self.memory.clear()
        self.grant_memory.clear()


def _memfd(domid: int, pages: int) -> int:
    fd = os.memfd_create(f"fata-dom{domid}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, pages * PAGE_SIZE)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                | fcntl.F_SEAL_SEAL)
    return fd


def _grant_memfd(allocation: Allocation) -> int:
    """An allocation's pages, sealed against shrinking and growing like a domain's memory.
    A read-only allocation stays open to one more seal, added at its first map
    (``F_SEAL_FUTURE_WRITE`` cannot come sooner: its granter must map it writable first)."""
    fd = os.memfd_create(f"fata-dom{allocation.domid}-grant{allocation.id}",
                         os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, len(allocation.grefs) * PAGE_SIZE)
        seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    seals if allocation.readonly else seals | fcntl.F_SEAL_SEAL)
    except OSError:
        os.close(fd)
        raise
    return fd


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(req: dict[str, Any], key: str) -> int:
    value = req.get(key)
    if not _is_int(value):
        raise HypervisorError("EINVAL", f"{key} is an integer, not {value!r:.40}")
    return value


def _bool(req: dict[str, Any], key: str) -> bool:
    value = req.get(key)
    if not isinstance(value, bool):
        raise HypervisorError("EINVAL", f"{key} is true or false, not {value!r:.40}")
    return value


def _raise_descriptor_limit() -> None:
    """Every allocation is a memfd held here: allow as many descriptors as the hard limit
    does (systemd and containers often leave the soft limit at 1024), or as the kernel
    does (``fs.nr_open``) when the hard limit is unlimited.  Failing that, the limit stays
    as it was: an allocation past it is refused with ``EMFILE``, nothing worse."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        with suppress(OSError, ValueError):
            target = int(Path("/proc/sys/fs/nr_open").read_text())
    if soft != target:
        with suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def serve(path: str) -> None:
    """Run the hypervisor on ``path`` until SIGTERM or SIGINT."""
    _raise_descriptor_limit()
    server = HypervisorServer()
    await server.listen(path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"fata xen hypervisor: listening on {path}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        with suppress(FileNotFoundError):
            os.unlink(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fata.platform.xen_hypervisor",
                                     description="the Xen platform's hypervisor process")
    parser.add_argument("--socket", required=True, help="where domain 0 connects")
    asyncio.run(serve(parser.parse_args(argv).socket))


if __name__ == "__main__":
    main()
