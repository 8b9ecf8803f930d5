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
import socket
from contextlib import suppress

from fata.devices import (
    Console,
    DatagramHandler,
    Flow,
    FlowHandler,
    ReplyCache,
    Stack,
    TcpListener,
    UdpEndpoint,
    reply_bytes,
)
from fata.platform import PlatformError
from fata.runtime import trace

try:
    from fata.platform._mmsg import Batch
except ImportError:  # built without a C compiler: recvfrom/sendto it is
    Batch = None

MAX_DATAGRAM = 65535
DRAIN_BATCH = 256  # datagrams handled per wake-up before yielding to other work
MMSG_BATCH = 64  # datagrams per recvmmsg/sendmmsg call


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The host kernel is already configured; the one choice is how UDP is read."""
    parser.add_argument(
        "--udp-io", choices=("auto", "mmsg", "plain"), default="auto",
        help="UDP system calls: 'mmsg' batches with recvmmsg/sendmmsg (needs the compiled "
             "fata.platform._mmsg), 'plain' is one recvfrom/sendto per datagram, 'auto' "
             "(default) is mmsg where built")


async def open_stack(options: argparse.Namespace, console: Console) -> Stack:
    """Return the host-socket stack."""
    udp_io = getattr(options, "udp_io", "auto")
    if udp_io == "mmsg" and Batch is None:
        raise PlatformError("--udp-io mmsg: this build has no fata.platform._mmsg "
                            "(it is compiled at install time when a C compiler is present)")
    return SocketStack(console, batched_udp=udp_io != "plain")


class SocketUdpEndpoint(UdpEndpoint):
    """A bound UDP socket served from the event loop's reader callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 handler: DatagramHandler, console: Console, *, batched: bool = True,
                 reply_cache: ReplyCache | None = None) -> None:
        self._loop = loop
        self._sock = sock
        self._handler = handler
        self._console = console
        self.local = sock.getsockname()[:2]
        self.received = 0
        self.send_errors = 0
        self.handler_errors = 0
        self._closed = False
        self.batched = Batch is not None and batched
        if self.batched:
            self._batch = Batch(sock.fileno(), MMSG_BATCH, MAX_DATAGRAM)
            if reply_cache is not None:
                self._batch.set_cache(reply_cache.entries, reply_cache.prefix)
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
            for data, peer in batch:
                try:
                    answer = handler(data, peer)
                    if answer is not None and answer.__class__ is not bytes:
                        answer = reply_bytes(answer)
                    append(answer)
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
        for _ in range(DRAIN_BATCH):
            try:
                data, peer = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ICMP errors surfaced as ECONNREFUSED: not ours to act on
                if self._closed:  # a handler closed the port
                    break
                continue
            count += 1
            try:
                reply = handler(data, peer)
                if reply is not None and reply.__class__ is not bytes:
                    reply = reply_bytes(reply)
            except Exception as exc:
                self._handler_failed(exc)
                continue
            if reply is not None:
                try:
                    sendto(reply, peer)
                except OSError:
                    self.send_errors += 1
        self.received += count

    def _handler_failed(self, exc: Exception) -> None:
        self.handler_errors += 1
        self._console.error(f"udp {self.local[0]}:{self.local[1]} handler failed: {exc!r}")

    def sendto(self, data: bytes, peer: tuple[str, int]) -> None:
        """Send one datagram; a full socket buffer drops it (UDP semantics)."""
        try:
            self._sock.sendto(data, peer)
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


class SocketFlow(Flow):
    """A TCP connection over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.local = writer.get_extra_info("sockname")[:2]
        self.peer = writer.get_extra_info("peername")[:2]

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Next bytes, ``b""`` at end of stream (a reset also reads as the end)."""
        try:
            return await self._reader.read(max_bytes)
        except ConnectionError:
            return b""

    async def write(self, data: bytes) -> None:
        """Write and wait for the buffer to drain below its high-water mark."""
        if self._writer.is_closing():
            raise ConnectionResetError("connection closed")
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        """Send FIN after pending data."""
        if not self._writer.is_closing():
            self._writer.close()
        with suppress(Exception):
            await self._writer.wait_closed()

    def abort(self) -> None:
        """Reset the connection."""
        self._writer.transport.abort()


class SocketTcpListener(TcpListener):
    """A listening socket; each connection runs the handler in its own task."""

    def __init__(self, server: asyncio.base_events.Server) -> None:
        self._server = server
        self.local = server.sockets[0].getsockname()[:2]

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
    def ipv4_addresses(self) -> list[str]:
        """The host's addresses are whatever the kernel has; loopback is always there."""
        return ["127.0.0.1"]

    async def udp_listen(self, addr: str, port: int, handler: DatagramHandler, *,
                         reply_cache: ReplyCache | None = None) -> UdpEndpoint:
        """Bind a non-blocking UDP socket and serve it from the loop's reader callback.

        ``reply_cache`` is used on the batched path, unless tracing wraps the handler (every
        datagram is then a span)."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((addr, port))
        except OSError as exc:
            sock.close()
            raise PlatformError(f"cannot bind UDP {addr}:{port}: {exc.strerror}") from None
        traced = trace.wrap_datagram_handler(handler, f"udp:{port}")
        endpoint = SocketUdpEndpoint(loop, sock, traced, self._console, batched=self._batched_udp,
                                     reply_cache=reply_cache if traced is handler else None)
        self._udp.append(endpoint)
        return endpoint

    async def tcp_listen(self, addr: str, port: int, handler: FlowHandler, *,
                         backlog: int = 128) -> TcpListener:
        """Listen with asyncio streams; a handler that raises aborts its connection only."""
        console = self._console

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            flow = SocketFlow(reader, writer)
            self._flows.add(flow)
            tracer = trace.current
            start = tracer.now_us() if tracer else 0.0
            try:
                await handler(flow)
            except Exception as exc:
                console.error(f"tcp {flow.peer[0]}:{flow.peer[1]} handler failed: {exc!r}")
                flow.abort()
            finally:
                self._flows.discard(flow)
                if tracer:
                    tracer.complete(f"tcp:{port}", "tcp", start, {"peer": f"{flow.peer[0]}"})
                if not writer.is_closing():
                    writer.close()

        try:
            server = await asyncio.start_server(on_connect, addr, port, backlog=backlog,
                                                reuse_address=True)
        except OSError as exc:
            raise PlatformError(f"cannot listen on TCP {addr}:{port}: {exc.strerror}") from None
        listener = SocketTcpListener(server)
        self._listeners.append(listener)
        return listener

    async def tcp_connect(self, addr: str, port: int, *, timeout: float | None = None) -> Flow:
        """Connect through the kernel."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(addr, port), timeout)
        return SocketFlow(reader, writer)

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
