"""The hypervisor of the Xen platform on Linux, as a process: it owns every domain's memory
(a sealed memfd) and every event channel (eventfds), and hands them out by Xen's rules
(``fata.xen.hypervisor``) over Unix ``SOCK_SEQPACKET`` connections.

Who a caller is comes from the connection, never from what it says: whoever connects to the
listening socket (mode 0600, in a 0700 directory) is domain 0, the toolstack's; a guest gets
one end of a socket pair when its domain is created and can only ever be that domain.  Each
request is one JSON datagram; its answer is one JSON datagram with the descriptors it
grants in ``SCM_RIGHTS``.  A domain's memfd is sealed against shrinking and growing, so no
domain can make another's mapping fault by truncating it.

Run it with ``python -m fata.platform.xen_hypervisor --socket PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import signal
import socket
from contextlib import suppress
from pathlib import Path
from typing import Any

from fata.xen.evtchn import new_eventfd
from fata.xen.hypervisor import PAGE_SIZE, Hypervisor, HypervisorError, Port

MAX_REQUEST = 4096


class HypervisorServer:
    """The state, its descriptors, and the connections of the domains."""

    def __init__(self) -> None:
        self.hv = Hypervisor()
        self.channels: dict[int, int] = {}  # channel id -> eventfd
        self.memory: dict[int, int] = {}  # domid -> memfd
        self.connections: dict[socket.socket, int] = {}
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
        assert self._loop is not None
        self._loop.add_reader(conn.fileno(), self._request, conn)

    def _drop(self, conn: socket.socket) -> None:
        if self.connections.pop(conn, None) is not None and self._loop is not None:
            self._loop.remove_reader(conn.fileno())
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
            answer, out = self.handle(caller, request)
        except HypervisorError as exc:
            answer, out = {"error": exc.code, "detail": exc.detail}, []
        except (ValueError, KeyError, TypeError) as exc:
            answer, out = {"error": "EINVAL", "detail": f"malformed request: {exc}"}, []
        try:
            socket.send_fds(conn, [json.dumps(answer).encode()], out)
        except OSError:  # a caller that does not read its answers is dropped
            self._drop(conn)

    def handle(self, caller: int, req: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        """One request of domain ``caller``: its JSON answer and the descriptors granted."""
        op, hv = req.get("op"), self.hv
        if op == "whoami":
            return {"domid": caller}, []
        if op == "create_domain":
            domain = hv.create_domain(caller, str(req["name"]), int(req["pages"]))
            self.memory[domain.domid] = _memfd(domain.domid, domain.pages)
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self._add(ours, domain.domid)
            self._closing_after_send(theirs)
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
        for channel in self.hv.released:
            with suppress(KeyError, OSError):
                os.close(self.channels.pop(channel))
        self.hv.released.clear()

    def _closing_after_send(self, sock: socket.socket) -> None:
        """Close our copy of a granted socket once the answer carrying it is sent."""
        assert self._loop is not None
        self._loop.call_soon(sock.close)

    def close(self) -> None:
        for conn in list(self.connections):
            self._drop(conn)
        if self._listener is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
        for fd in [*self.channels.values(), *self.memory.values()]:
            with suppress(OSError):
                os.close(fd)
        self.channels.clear()
        self.memory.clear()


def _memfd(domid: int, pages: int) -> int:
    fd = os.memfd_create(f"fata-dom{domid}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, pages * PAGE_SIZE)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                | fcntl.F_SEAL_SEAL)
    return fd


async def serve(path: str) -> None:
    """Run the hypervisor on ``path`` until SIGTERM or SIGINT."""
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
