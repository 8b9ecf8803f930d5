"""The direct stack's endpoints: UDP ports, TCP flows and listeners over ``DirectStack``.

They keep the ``fata.devices`` contract (addresses as ``ipaddress`` objects, ``shutdown`` as
the half-close, ``close`` that stops reading and resets on data after it, ``abort``) on top
of the TCP engine's control blocks; the stack wakes a flow when its connection changed.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING

from fata.devices import (
    Address,
    AddressLike,
    DatagramHandler,
    Flow,
    ReplyCache,
    TcpListener,
    UdpEndpoint,
    ip_address,
)
from fata.net import ipv4
from fata.net.tcp import Connection, Listener, State

if TYPE_CHECKING:
    from fata.net.stack import DirectStack

_ANY = ipv4.ANY


def address(ip: bytes, port: int) -> Address:
    """4 address bytes and a port as the contract's ``(ip, port)``."""
    return ipaddress.IPv4Address(ip), port


class DirectUdpEndpoint(UdpEndpoint):
    """A bound UDP port of a ``DirectStack``."""

    def __init__(self, stack: DirectStack, ip: bytes, port: int,
                 handler: DatagramHandler, reply_cache: ReplyCache | None = None) -> None:
        self._stack = stack
        self.ip = ip
        self.port = port
        self.handler = handler
        # the fast path's view of the reply cache (udp_fast.Endpoint.memo)
        self.memo = None if reply_cache is None else (
            reply_cache.entries, reply_cache.prefix, 42 + reply_cache.prefix,
            None if reply_cache.sources is None else tuple(
                (int(net.network_address), int(net.netmask))
                for net in reply_cache.sources if net.version == 4))
        self.local = address(ip, port)
        self.closed = False

    def sendto(self, data: bytes, peer: tuple[AddressLike, int]) -> None:
        """Send one datagram from this port (an IPv6 peer is unreachable: dropped)."""
        if self.closed:
            return
        stack = self._stack
        ip = ip_address(peer[0])
        if ip.version != 4:
            stack._count("udp_unreachable_drops")
            return
        dst = ip.packed
        src = self.ip if self.ip != _ANY else stack.source_for(dst)
        stack.udp_send(src, self.port, dst, peer[1], data)

    def close(self) -> None:
        """Unbind."""
        if not self.closed:
            self.closed = True
            self._stack._udp.pop((self.ip, self.port), None)
            self._stack._udp_keys.pop((int.from_bytes(self.ip, "big") << 16) | self.port, None)


class DirectFlow(Flow):
    """A TCP connection of a ``DirectStack``."""

    def __init__(self, stack: DirectStack, conn: Connection) -> None:
        self._stack = stack
        self._conn = conn
        self._waiter: asyncio.Future[None] | None = None
        self._shut = False  # our side is done sending (shutdown or close)
        self._closed = False  # close(): nothing more is read
        conn.user = self
        self.local = address(conn.local_ip, conn.local_port)
        self.peer = address(conn.remote_ip, conn.remote_port)

    @property
    def connection(self) -> Connection:
        """The engine's control block (for tests and diagnostics)."""
        return self._conn

    @property
    def nodelay(self) -> bool:
        """Whether Nagle's algorithm is off for this flow (``TCP_NODELAY``)."""
        return not self._conn.nagle

    @nodelay.setter
    def nodelay(self, value: bool) -> None:
        self._conn.nagle = not value

    def _wake(self) -> None:
        if self._closed and self._conn.rcvbuf:  # data after close: reset, as a socket does
            self.abort()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._stack.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read(self, max_bytes: int = 65536) -> bytes:
        """The next received bytes; ``b""`` at end of stream, after a reset or our close."""
        conn = self._conn
        if self._closed:
            return b""
        while not conn.rcvbuf:
            if conn.peer_fin or conn.state == State.CLOSED:
                return b""
            await self._wait()
        data = conn.app_read(max_bytes, self._stack.loop.time())
        self._stack.flush()
        return data

    async def write(self, data: bytes) -> None:
        """Queue ``data``, waiting while the send buffer is full."""
        conn = self._conn
        view = memoryview(data)
        loop = self._stack.loop
        if self._shut:
            raise BrokenPipeError("write after shutdown or close")
        while view:
            if conn.error is not None or conn.state == State.CLOSED:
                raise ConnectionResetError(str(conn.error or "connection reset"))
            n = conn.app_send(view, loop.time())
            self._stack.flush()
            view = view[n:]
            if view:
                await self._wait()

    async def shutdown(self) -> None:
        """Half-close: FIN after the queued data; the peer's data can still be read."""
        if self._shut:
            return
        self._shut = True
        self._conn.app_close(self._stack.loop.time())
        self._stack.flush()

    async def close(self) -> None:
        """FIN after the queued data and stop reading; unread data means RST instead."""
        if self._closed:
            return
        self._closed = True
        if self._conn.rcvbuf:
            self.abort()
            return
        await self.shutdown()

    def abort(self) -> None:
        """Send RST and forget the connection."""
        self._shut = self._closed = True
        if self._conn.state != State.CLOSED:
            self._conn.app_abort(self._stack.loop.time())
            self._stack.flush()


class DirectTcpListener(TcpListener):
    """A listening port of a ``DirectStack``."""

    def __init__(self, stack: DirectStack, listener: Listener) -> None:
        self._stack = stack
        self.listener = listener
        self.local = address(listener.ip, listener.port)

    def close(self) -> None:
        """Stop accepting; connections whose handshake already completed are still served
        (the handler stays reachable from them, ``DirectStack._handlers``)."""
        self._stack.tcp.unlisten(self.listener)
        self._stack._listeners.pop(self.listener, None)
