"""The adapter: TLS over any ``fata.devices.Flow`` (host socket, Fata's own TCP, a Xen ring),
presented as a ``Flow`` again, so an appliance reads and writes plaintext unaware of TLS.

This is the only TLS code that awaits; it moves bytes between the sans-IO engine and the
underlying flow.  It reads the time (for ticket ages and certificate validity) from the clock
it is given, a callable returning seconds since the Unix epoch: an appliance passes its
``fata.devices.Clock``'s ``time`` (``accept(flow, cfg, clock=clock.time)``), a test whatever
instant it needs.  There is no default, so nothing under ``fata.tls`` reads the host's clock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from fata.devices.stack import Flow
from fata.tls.alerts import TLSUsageError
from fata.tls.client import TLSClient
from fata.tls.config import TLSConfig
from fata.tls.connection import TLSConnection
from fata.tls.events import (
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    KeyUpdateReceived,
    SessionTicket,
    SessionTicketReceived,
)
from fata.tls.server import TLSServer


class TLSHandshakeError(ConnectionError):
    """The handshake ended without a connection (the alert is in ``closed``)."""

    def __init__(self, message: str, closed: ConnectionClosed | None) -> None:
        super().__init__(message)
        self.closed = closed


class TLSFlow(Flow):
    """A plaintext ``Flow`` over a TLS connection running on another ``Flow``.

    ``clock()`` gives the wall-clock time (Unix seconds) passed to the engine with each read.
    """

    def __init__(
        self,
        flow: Flow,
        conn: TLSConnection,
        clock: Callable[[], float],
        read_size: int = 1 << 17,
    ) -> None:
        self.flow = flow
        self.conn = conn
        self.local = getattr(flow, "local", ("0.0.0.0", 0))
        self.peer = getattr(flow, "peer", ("0.0.0.0", 0))
        self._clock = clock
        self._read_size = read_size
        self._chunks: deque[bytes] = deque()
        self._eof = False
        self.closed_event: ConnectionClosed | None = None
        self.handshake: HandshakeComplete | None = None
        self.tickets: list[SessionTicket] = []
        self.key_updates_received = 0
        self._writing = False  # a flush is in flow.write (the others queue behind it)
        self._flush_waiters: deque[asyncio.Future[None]] = deque()

    async def _flush(self) -> None:
        # Records carry sequence numbers: the engine's output must reach the flow in the
        # order it was produced, even when a reader task (answering a KeyUpdate) and a
        # writer task flush at once and the flow's write waits for room.  A flag and a
        # queue of waiters, not an asyncio.Lock: the uncontended flush (every one, in
        # practice) then costs no coroutine beyond the flow's write.
        while self._writing:
            waiter = asyncio.get_running_loop().create_future()
            self._flush_waiters.append(waiter)
            await waiter
        data = self.conn.data_to_send()
        if not data:
            return
        self._writing = True
        try:
            await self.flow.write(data)
        finally:
            self._writing = False
            while self._flush_waiters:
                waiter = self._flush_waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break

    def _absorb(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, ApplicationData):
                self._chunks.append(ev.data)
            elif isinstance(ev, HandshakeComplete):
                self.handshake = ev
            elif isinstance(ev, KeyUpdateReceived):
                self.key_updates_received += 1
            elif isinstance(ev, SessionTicketReceived):
                self.tickets.append(ev.ticket)
            elif isinstance(ev, ConnectionClosed):
                self._eof = True
                self.closed_event = ev

    async def _read_more(self) -> None:
        try:
            data = await self.flow.read(self._read_size)
        except ConnectionError:
            data = b""
        self._absorb(self.conn.receive_data(data, now=self._clock()))
        try:
            await self._flush()
        except ConnectionError:
            self._eof = True

    async def do_handshake(self) -> HandshakeComplete:
        """Run the handshake to completion; raises ``TLSHandshakeError`` if it fails."""
        await self._flush()
        while self.handshake is None:
            if self._eof:
                ev = self.closed_event
                why = f"{ev.alert!r} ({ev.reason})" if ev else "connection closed"
                try:
                    await self._flush()
                    await self.flow.close()
                except ConnectionError:
                    pass
                raise TLSHandshakeError(f"TLS handshake failed: {why}", ev)
            await self._read_more()
        return self.handshake

    async def read(self, max_bytes: int = 65536) -> bytes:
        while not self._chunks:
            if self._eof:
                return b""
            await self._read_more()
        chunk = self._chunks[0]
        if len(chunk) <= max_bytes:
            return self._chunks.popleft()
        self._chunks[0] = chunk[max_bytes:]
        return chunk[:max_bytes]

    async def write(self, data: bytes) -> None:
        try:
            self.conn.send_application_data(data)
        except TLSUsageError as exc:
            raise ConnectionError(str(exc)) from None
        await self._flush()

    async def shutdown(self) -> None:
        """Half-close: close_notify (TLS 1.3 closes each direction on its own, RFC 8446
        6.1), then FIN on the flow below; the peer's records can still be read."""
        await self._close_notify()
        await self.flow.shutdown()

    async def close(self) -> None:
        await self._close_notify()
        await self.flow.close()

    async def _close_notify(self) -> None:
        self.conn.close()
        try:
            await self._flush()
        except ConnectionError:
            pass

    def abort(self) -> None:
        self.flow.abort()


async def accept(flow: Flow, config: TLSConfig, *, clock: Callable[[], float]) -> TLSFlow:
    """Server side: run the handshake on an accepted flow; ``clock`` as for ``TLSFlow``."""
    tls = TLSFlow(flow, TLSServer(config, now=clock()), clock)
    await tls.do_handshake()
    return tls


async def connect(
    flow: Flow,
    config: TLSConfig,
    server_name: str | None,
    session: SessionTicket | None = None,
    *,
    clock: Callable[[], float],
) -> TLSFlow:
    """Client side: run the handshake on a connected flow; ``clock`` as for ``TLSFlow``."""
    conn = TLSClient(config, server_name=server_name, session=session, now=clock())
    tls = TLSFlow(flow, conn, clock)
    await tls.do_handshake()
    return tls
