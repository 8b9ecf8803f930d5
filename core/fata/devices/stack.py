"""The network stack device: UDP endpoints and TCP flows, whoever implements TCP/IP.

The interface is deliberately small (the shape of mirage-tcpip's ``Stack``) so that three
very different implementations can stand behind it: the host kernel through sockets
(``fata.platform.socket_stack``), Fata's own sans-IO TCP/IP over a TAP device
(``fata.net``), and netfront over Xen-ABI rings.

UDP receive is a *synchronous* callback returning the reply: a request/response appliance
such as DNS then costs one function call per datagram, with no task or future created on
the hot path.  TCP is a stream of bytes with backpressure (``write`` waits for room).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Address = tuple[str, int]
"""An (IPv4 address, port) pair."""

DatagramHandler = Callable[[bytes, Address], "bytes | None"]
"""Called once per received datagram with (payload, sender); a returned payload is sent back
to the sender from the same endpoint.  Must not block; it runs on the event loop."""


def reply_bytes(reply: object) -> bytes:
    """A datagram handler's reply that is not ``bytes`` as bytes (bytearray, memoryview), or
    a ``TypeError`` that names the mistake, which adapters count as the handler failing."""
    if isinstance(reply, bytes | bytearray | memoryview):
        return bytes(reply)
    raise TypeError(f"a datagram handler must return bytes or None, not {type(reply).__name__}")


@dataclass(frozen=True, slots=True)
class ReplyCache:
    """Answers a platform may give without calling the datagram handler.

    For a datagram whose bytes after the first ``prefix`` are a key of ``entries``, the reply
    is those ``prefix`` bytes followed by the value: a DNS server's memo of whole answers
    keyed by the query minus its ID is one (``prefix=2``).  Principle 5 (memoise what is
    immutable) taken one step down: a platform that can look the datagram up below Python
    (the socket platform's batched C path does) skips the handler call for it.

    The appliance owns ``entries``: it must only hold replies the handler itself would
    give, and is changed in place (filled, cleared), never rebound, since platforms keep a
    reference.  A platform that cannot use it ignores it; the handler answers the same.
    """

    entries: dict[bytes, bytes]
    prefix: int = 0


class UdpEndpoint(abc.ABC):
    """A bound UDP port."""

    local: Address

    @abc.abstractmethod
    def sendto(self, data: bytes, peer: Address) -> None:
        """Send one datagram (best effort, never blocks)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Unbind the port; later datagrams to it are not delivered."""


class Flow(abc.ABC):
    """One established TCP connection: a reliable, ordered byte stream."""

    local: Address
    peer: Address

    @abc.abstractmethod
    async def read(self, max_bytes: int = 65536) -> bytes:
        """Return the next available bytes (at most ``max_bytes``); ``b""`` once the peer closed."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Queue ``data`` for sending; waits while the send buffer is full (backpressure).

        Raises ``ConnectionError`` if the connection was reset or closed.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Graceful close (FIN after pending data); returns once the close was started."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Close at once, discarding pending data (RST)."""


FlowHandler = Callable[[Flow], Awaitable[None]]
"""Runs once per accepted connection, as its own task; the flow is aborted if it raises."""


class TcpListener(abc.ABC):
    """A listening TCP port."""

    local: Address

    @abc.abstractmethod
    def close(self) -> None:
        """Stop accepting; established flows are unaffected."""


class Stack(abc.ABC):
    """A network stack: the appliance's only way to the network."""

    @property
    @abc.abstractmethod
    def ipv4_addresses(self) -> list[str]:
        """The IPv4 addresses this stack answers on (``["0.0.0.0"]``-style wildcards excluded)."""

    @abc.abstractmethod
    async def udp_listen(self, addr: str, port: int, handler: DatagramHandler, *,
                         reply_cache: ReplyCache | None = None) -> UdpEndpoint:
        """Bind ``addr:port`` (port 0 picks a free one) and deliver datagrams to ``handler``
        (or answer them from ``reply_cache`` where the platform can)."""

    @abc.abstractmethod
    async def tcp_listen(
        self, addr: str, port: int, handler: FlowHandler, *, backlog: int = 128
    ) -> TcpListener:
        """Listen on ``addr:port`` and run ``handler`` for each accepted connection."""

    @abc.abstractmethod
    async def tcp_connect(self, addr: str, port: int, *, timeout: float | None = None) -> Flow:
        """Open a connection; raises ``ConnectionError`` or ``TimeoutError``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every endpoint, listener and flow of this stack."""
