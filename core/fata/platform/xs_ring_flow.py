"""A xenstore ring and its event channel as a :class:`~fata.devices.Flow`, so that the
xenstore daemon serves a domain's ring with the same code as a Unix-socket connection, and
Fata's client talks over either.

The flow looks at the ring whenever the peer notifies and whenever its own reader or writer
makes progress possible: it pulls input into a bounded buffer (at most ``buffer`` bytes, so a
reader that stops holds the peer up at the ring, which is the back-pressure a ring gives),
pushes queued output as room appears, and notifies the peer each time either moved.  A ring
with impossible indexes ends the flow (the server records ``XENSTORE_ERROR_RINGIDX`` in the
page).  A guest's reconnection request ends the server's flow too: its owner resets the ring
and serves a fresh flow, which is what "reset on a packet boundary" means to the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fata.devices import Flow
from fata.xen.evtchn import EventChannel
from fata.xen.xs_ring import CONNECTED, ERROR_RINGIDX, RECONNECT, RingError, XsRing


class RingFlow(Flow):
    """One connection over a xenstore ring; ``on_reconnect`` (server) is called once when
    the guest asks for a reset, after the flow has ended."""

    def __init__(self, ring: XsRing, channel: EventChannel, *, domid: int,
                 buffer: int = 65536,
                 on_reconnect: Callable[[], None] | None = None) -> None:
        self.local = self.peer = (f"dom{domid}", channel.port)  # type: ignore[assignment]
        self.domid = domid
        self._ring = ring
        self._channel = channel
        self._limit = buffer
        self._in = bytearray()
        self._out = bytearray()
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._connected = asyncio.Event()
        self._on_reconnect = on_reconnect
        self.ended = False
        self.reset_by_peer = False
        channel.stop()
        channel.start(self.poll)
        asyncio.get_running_loop().call_soon(self.poll)

    def poll(self) -> None:
        """Move what can move between the ring and the buffers; notify if anything did."""
        if self.ended:
            return
        ring, moved = self._ring, False
        try:
            if not ring.server and ring.connection != CONNECTED:
                return  # our reconnection is in progress: nothing else may be touched
            if ring.server and ring.connection == RECONNECT:
                self._end(reset=True)
                if self._on_reconnect is not None:
                    self._on_reconnect()
                return
            while len(self._in) < self._limit:
                chunk = ring.read(self._limit - len(self._in))
                if not chunk:
                    break
                self._in += chunk
                moved = True
            if self._out:
                n = ring.write(self._out)
                if n:
                    del self._out[:n]
                    moved = True
        except RingError:
            if ring.server:
                ring.fail(ERROR_RINGIDX)
            self._end(reset=True)
            moved = True
        if moved:
            self._channel.notify()
        if self._in:
            self._readable.set()
        if not self._out:
            self._room.set()

    async def read(self, max_bytes: int = 65536) -> bytes:
        while not self._in:
            if self.ended:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = bytes(self._in[:max_bytes])
        del self._in[:max_bytes]
        self.poll()  # room in our buffer: take what the peer is waiting to hand over
        return data

    async def write(self, data: bytes) -> None:
        if self.ended:
            raise ConnectionResetError("the ring connection ended")
        self._out += data
        self.poll()
        while self._out:
            if self.ended:
                raise ConnectionResetError("the ring connection ended")
            self._room.clear()
            await self._room.wait()

    async def reconnect(self) -> None:
        """Guest: have the server reset the ring (pending bytes and its state for us go);
        returns once the server says the ring is connected again."""
        self._in.clear()
        self._out.clear()
        self._ring.request_reconnect()
        self._channel.notify()
        self._channel.stop()
        self._channel.start(self._check_connected)
        self._check_connected()
        await self._connected.wait()
        self._connected.clear()
        self._channel.stop()
        self._channel.start(self.poll)
        self.poll()

    def _check_connected(self) -> None:
        if self._ring.connection == CONNECTED:
            self._connected.set()

    async def shutdown(self) -> None:
        """A ring has no half-close: the daemon's side of a ring ends with the domain."""

    async def close(self) -> None:
        self._end()

    def abort(self) -> None:
        self._end()

    def _end(self, *, reset: bool = False) -> None:
        if self.ended:
            return
        self.ended = True
        self.reset_by_peer = reset
        self._channel.stop(self.poll)
        self._readable.set()
        self._room.set()
