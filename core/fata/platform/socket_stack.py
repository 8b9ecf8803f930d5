"""``--net socket``: the host kernel's UDP and TCP through non-blocking sockets.

The fastest target to develop on, and a fast one to serve from: UDP ports are read with
``loop.add_reader`` and drained in a loop of ``recvfrom`` calls per wake-up, so a burst of
queries costs one event-loop iteration instead of one per datagram, and the appliance's
synchronous handler runs with no task or future in between.

Where the compiled helper ``fata.platform._mmsg`` is present (it is built at install time
when a C compiler is there) a wake-up reads up to 64 datagrams with one ``recvmmsg`` and
sends the replies with one ``sendmmsg``: fewer kernel entries and none of CPython's
per-call socket overhead, which is most of a memoised DNS answer's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress

from fata.devices import (
    Address,
    AddressLike,
    Console,
    DatagramHandler,
    Flow,
    FlowHandler,
    Interface,
    ReplyCache,
    Stack,
    TcpListener,
    UdpEndpoint,
    bind_address,
    call_handler,
    flow_failure,
    handler_failure,
    ip_address,
    serve_flow,
)
from fata.devices.errors import from_os_error
from fata.platform import PlatformError
from fata.platform.host_interfaces import host_interfaces
from fata.platform.registry import DeviceContext
from fata.runtime import trace

try:
    from fata.platform._mmsg import Batch
except ImportError:  # built without a C compiler: recvfrom/sendto it is
    Batch = None

MAX_DATAGRAM = 65535
DRAIN_BATCH = 256  # datagrams handled per wake-up before yielding to other work
MMSG_BATCH = 64  # datagrams per recvmmsg/sendmmsg call
_LINGER_RESET = struct.pack("ii", 1, 0)
PEER_CACHE = 4096  # converted sender addresses kept per endpoint


@functools.lru_cache(maxsize=PEER_CACHE)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ip_address(text)  # immutable: the few peers of a busy port are parsed once


def _address(sockname: tuple) -> Address:
    """A socket module address (2- or 4-tuple) as the contract's ``(ip, port)``."""
    return _ip(sockname[0]), sockname[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The host kernel is already configured; the one choice is how UDP is read."""
    parser.add_argument(
        "--udp-io", choices=("auto", "mmsg", "plain"), default="auto",
        help="UDP system calls: 'mmsg' batches with recvmmsg/sendmmsg (needs the compiled "
             "fata.platform._mmsg), 'plain' is one recvfrom/sendto per datagram, 'auto' "
             "(default) is mmsg where built")


async def open_stack(name: str, spec: dict, ctx: DeviceContext) -> Stack:
    """Return the host-socket stack."""
    udp_io = getattr(ctx.options, "udp_io", "auto")
    if udp_io == "mmsg" and Batch is None:
        raise PlatformError("--udp-io mmsg: this build has no fata.platform._mmsg "
                            "(it is compiled at install time when a C compiler is present)")
    return SocketStack(ctx.console, batched_udp=udp_io != "plain")


class SocketUdpEndpoint(UdpEndpoint):
    """A bound UDP socket served from the event loop's reader callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 handler: DatagramHandler, console: Console, *, batched: bool = True,
                 reply_cache: ReplyCache | None = None) -> None:
        self._loop = loop
        self._sock = sock
        self._handler = handler
        self._console = console
        self.local = _address(sock.getsockname())
        self._peers: dict[tuple, Address] = {}  # the socket module's form -> the contract's
        self.received = 0
        self.send_errors = 0
        self.handler_errors = 0
        self._closed = False
        self.batched = Batch is not None and batched
        if self.batched:
            self._batch = Batch(sock.fileno(), MMSG_BATCH, MAX_DATAGRAM)
            if reply_cache is not None:
                self._batch.set_cache(reply_cache.entries, reply_cache.prefix,
                                      reply_cache.packed_sources())
            loop.add_reader(sock.fileno(), self._drain_batched)
        else:
            loop.add_reader(sock.fileno(), self._drain)

    def _drain_batched(self) -> None:
        """``_drain`` with one recvmmsg and one sendmmsg per batch of datagrams; those the
        reply cache answers (in C) never come up here.

        (Calling the handler from C instead of this loop measured no faster: the handler and
        the kernel are the cost, not the loop.)"""
        b = self._batch
        recv = b.recv
        reply = b.reply
        handler = self._handler
        for _ in range(DRAIN_BATCH // MMSG_BATCH):
            try:
                batch = recv()
            except (OSError, ValueError):  # the socket is gone (ValueError: closed meanwhile)
                break
            got = b.received
            if not got:
                break
            self.received += got
            replies: list[bytes | None] = []
            append = replies.append
            peers = self._peers
            for data, raw in batch:
                peer = peers.get(raw)
                if peer is None:
                    peer = self._peer(raw)
                try:
                    append(call_handler(handler, data, peer))
                except Exception as exc:
                    append(None)
                    self._handler_failed(exc)
            self.send_errors += reply(replies)  # nothing is sent if a handler closed the port
            if got < MMSG_BATCH:
                break

    def _drain(self) -> None:
        recvfrom = self._sock.recvfrom
        sendto = self._sock.sendto
        handler = self._handler
        count = 0
        peers = self._peers
        for _ in range(DRAIN_BATCH):
            try:
                data, raw = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ICMP errors surfaced as ECONNREFUSED: not ours to act on
                if self._closed:  # a handler closed the port
                    break
                continue
            count += 1
            peer = peers.get(raw)
            if peer is None:
                peer = self._peer(raw)
            try:
                reply = call_handler(handler, data, peer)
            except Exception as exc:
                self._handler_failed(exc)
                continue
            if reply is not None:
                try:
                    sendto(reply, raw)
                except OSError:
                    self.send_errors += 1
        self.received += count

    def _peer(self, raw: tuple) -> Address:
        """Convert a sender's address once; hot senders are then one dict lookup."""
        if len(self._peers) >= PEER_CACHE:
            self._peers.clear()
        peer = self._peers[raw] = _address(raw)
        return peer

    def _handler_failed(self, exc: Exception) -> None:
        self.handler_errors += 1
        self._console.error(handler_failure(self.local, exc))

    def sendto(self, data: bytes, peer: tuple[AddressLike, int]) -> None:
        """Send one datagram; a full socket buffer drops it (UDP semantics)."""
        try:
            self._sock.sendto(data, (str(peer[0]), peer[1]))
        except OSError:
            self.send_errors += 1

    def close(self) -> None:
        """Stop reading and close the socket."""
        if self._closed:
            return
        self._closed = True
        if self.batched:
            self._batch.close()  # before the descriptor can be reused
        with suppress(Exception):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


READ_LIMIT = 1 << 18  # bytes received and not yet read before the socket stops being read


class SocketFlow(Flow, asyncio.Protocol):
    """A TCP connection: an asyncio protocol that is its own ``Flow``.

    Not asyncio's streams: received chunks are queued as they came and handed out whole
    (no copy into a buffer and out again), and a write goes straight to the transport and
    waits only while the transport says its buffer is full (``pause_writing``), so a
    request and its answer cost two callbacks and no extra task or future on the way.
    Reading stops while :data:`READ_LIMIT` bytes wait unread (the peer then waits on TCP's
    window), and resumes when the appliance has read half of them."""

    def __init__(self, *, owner: set[SocketFlow] | None = None,
                 on_connect: Callable[[SocketFlow], None] | None = None) -> None:
        self._owner = owner  # the stack's set of flows to close, left when this one ends
        self._on_connect = on_connect
        self._transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._reading_paused = False
        self._eof = False  # no more bytes will arrive
        self._lost = False
        self._waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._gone: asyncio.Future[None] | None = None
        self._shut = False  # our side is done sending (shutdown or close)
        self._closed = False
        self.local: Address = _address(("0.0.0.0", 0))
        self.peer: Address = _address(("0.0.0.0", 0))

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        sockname = transport.get_extra_info("sockname")
        if isinstance(sockname, tuple):  # an IP socket (a Unix one keeps the defaults)
            self.local = _address(sockname)
            self.peer = _address(transport.get_extra_info("peername"))
        if self._owner is not None:
            self._owner.add(self)
        if self._on_connect is not None:
            self._on_connect(self)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > READ_LIMIT and not self._reading_paused:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep the transport: our side may still write (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._lost = True
        if self._owner is not None:
            self._owner.discard(self)
        self._wake()
        for future in (self._drain, self._gone):
            if future is not None and not future.done():
                future.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- Flow ---------------------------------------------------------------------------

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Next bytes, ``b""`` at end of stream (a reset, or our close, also reads as the end)."""
        chunks = self._chunks
        while not chunks:
            if self._eof or self._closed:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._closed:
            return b""
        chunk = chunks.popleft()
        if len(chunk) > max_bytes:
            chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        self._buffered -= len(chunk)
        if self._reading_paused and self._buffered <= READ_LIMIT // 2 and not self._lost:
            self._reading_paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        return chunk

    async def write(self, data: bytes) -> None:
        """Write, and wait while the transport's buffer is above its high-water mark."""
        if self._shut:
            raise BrokenPipeError("write after shutdown or close")
        transport = self._transport
        if self._lost or transport is None or transport.is_closing():
            raise ConnectionResetError("connection reset")
        transport.write(data)
        while self._write_paused and not self._lost:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain
        if self._lost:
            raise ConnectionResetError("connection reset")

    async def shutdown(self) -> None:
        """Send FIN after pending data (``shutdown(SHUT_WR)``); reading goes on."""
        if self._shut:
            return
        self._shut = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            with suppress(ConnectionError, OSError):
                transport.write_eof()

    async def close(self) -> None:
        """Send FIN after pending data and stop reading (unread or later data: RST)."""
        self._shut = self._closed = True
        if self._owner is not None:
            self._owner.discard(self)
        transport = self._transport
        if transport is None or self._lost:
            return
        if not transport.is_closing():
            transport.close()
        if not self._lost:
            self._gone = asyncio.get_running_loop().create_future()
            with suppress(Exception):
                await self._gone

    def abort(self) -> None:
        """Reset the connection."""
        self._shut = self._closed = True
        if self._owner is not None:
            self._owner.discard(self)
        transport = self._transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:  # linger 0: the close is a RST, not a FIN
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()


async def connect_flow(host: str, port: int, *, timeout: float | None = None,
                       owner: set[SocketFlow] | None = None) -> SocketFlow:
    """A connected :class:`SocketFlow` to ``host:port`` (OSError if it cannot be made)."""
    loop = asyncio.get_running_loop()
    _, flow = await asyncio.wait_for(loop.create_connection(
        lambda: SocketFlow(owner=owner), host, port), timeout)
    return flow


async def start_flow_server(handler: Callable[[SocketFlow], Awaitable[None]],
                            sock: socket.socket, *, backlog: int = 128,
                            owner: set[SocketFlow] | None = None) -> asyncio.Server:
    """Accept on the bound ``sock``; each connection runs ``handler(flow)`` in a task of
    its own (kept referenced until it ends)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()

    def connected(flow: SocketFlow) -> None:
        task = loop.create_task(handler(flow))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return await loop.create_server(
        lambda: SocketFlow(owner=owner, on_connect=connected), sock=sock, backlog=backlog)


class SocketTcpListener(TcpListener):
    """A listening socket; each connection runs the handler in its own task."""

    def __init__(self, server: asyncio.base_events.Server) -> None:
        self._server = server
        self.local = _address(server.sockets[0].getsockname())

    def close(self) -> None:
        """Stop accepting."""
        self._server.close()


class SocketStack(Stack):
    """The host kernel's network stack."""

    def __init__(self, console: Console, *, batched_udp: bool = True) -> None:
        self._console = console
        self._batched_udp = batched_udp
        self._udp: list[SocketUdpEndpoint] = []
        self._listeners: list[SocketTcpListener] = []
        self._flows: set[SocketFlow] = set()

    @property
    def interfaces(self) -> list[Interface]:
        """The host's interfaces and addresses, as the kernel has them now (loopback first)."""
        return host_interfaces()

    async def udp_listen(self, addr: AddressLike | None, port: int, handler: DatagramHandler, *,
                         reply_cache: ReplyCache | None = None) -> UdpEndpoint:
        """Bind a non-blocking UDP socket and serve it from the loop's reader callback.

        ``reply_cache`` is used on the batched path, unless tracing wraps the handler (every
        datagram is then a span)."""
        loop = asyncio.get_running_loop()
        ip = bind_address(addr)
        sock = socket.socket(_family(ip), socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            if ip.version == 6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((str(ip), port))
        except OSError as exc:
            sock.close()
            raise from_os_error(exc, f"cannot bind UDP {_text(ip, port)}") from None
        traced = trace.wrap_datagram_handler(handler, f"udp:{sock.getsockname()[1]}")
        endpoint = SocketUdpEndpoint(loop, sock, traced, self._console, batched=self._batched_udp,
                                     reply_cache=reply_cache if traced is handler else None)
        self._udp.append(endpoint)
        return endpoint

    async def tcp_listen(self, addr: AddressLike | None, port: int, handler: FlowHandler, *,
                         backlog: int = 128) -> TcpListener:
        """Listen with :class:`SocketFlow` protocols; a handler that raises aborts its
        connection only."""
        console = self._console

        traced: FlowHandler = handler  # wrapped for tracing once the port is bound

        async def on_connect(flow: SocketFlow) -> None:
            await serve_flow(traced, flow, lambda exc: console.error(flow_failure(flow, exc)))

        ip = bind_address(addr)
        sock = socket.socket(_family(ip), socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if ip.version == 6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((str(ip), port))
            traced = trace.wrap_flow_handler(handler, f"tcp:{sock.getsockname()[1]}")
            sock.setblocking(False)
            server = await start_flow_server(on_connect, sock, backlog=backlog,
                                             owner=self._flows)
        except OSError as exc:
            sock.close()
            raise from_os_error(exc, f"cannot listen on TCP {_text(ip, port)}") from None
        listener = SocketTcpListener(server)
        self._listeners.append(listener)
        return listener

    async def tcp_connect(self, addr: AddressLike, port: int, *,
                          timeout: float | None = None) -> Flow:
        """Connect through the kernel."""
        ip = ip_address(addr)
        try:
            flow = await connect_flow(str(ip), port, timeout=timeout, owner=self._flows)
        except OSError as exc:
            raise from_os_error(exc, f"cannot connect to {_text(ip, port)}") from None
        return flow

    async def close(self) -> None:
        """Close everything this stack opened."""
        for endpoint in self._udp:
            endpoint.close()
        for listener in self._listeners:
            listener.close()
        for flow in list(self._flows):
            flow.abort()
        self._udp.clear()
        self._listeners.clear()


def _family(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> socket.AddressFamily:
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def _text(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
