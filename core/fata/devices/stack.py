"""The network stack device: UDP endpoints and TCP flows, whoever implements TCP/IP.

The interface is deliberately small (the shape of mirage-tcpip's ``Stack``) so that very
different implementations stand behind it: the host kernel through sockets
(``fata.platform.socket_stack``), Fata's own sans-IO TCP/IP over a ``Netif``
(``fata.net``), and later netfront over Xen-ABI rings.  It is one contract: the conformance
suite in ``tests/devices/`` runs the same cases against every implementation, so an
appliance sees the same behaviour, the same addresses and the same errors
(``fata.devices.errors``) on every target.

- Addresses are ``ipaddress`` objects, IPv6-capable in every signature even where a
  platform implements IPv4 only (it then has no IPv6 address, so binding one is
  ``AddressNotAvailable``).  Methods that take an address also take its text.
- UDP receive is a *synchronous* callback returning the reply: a request/response appliance
  such as DNS then costs one function call per datagram, with no task or future created on
  the hot path.
- TCP is a stream of bytes with backpressure (``write`` waits for room), half-close
  (``shutdown``), close and abort.
"""

from __future__ import annotations

import abc
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Address = tuple[IPAddress, int]
"""An (IP address, port) pair."""

AddressLike = IPAddress | str
"""What methods taking an address accept: an ``ipaddress`` object or its text."""

DatagramHandler = Callable[[bytes, Address], "bytes | None"]
"""Called once per received datagram with (payload, sender); a returned payload is sent back
to the sender from the same endpoint.  Must not block; it runs on the event loop."""


def ip_address(addr: AddressLike) -> IPAddress:
    """``addr`` as an ``ipaddress`` object; ``ValueError`` if it is not an IP address."""
    if isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return addr
    return ipaddress.ip_address(addr)


ANY_IPV4 = ipaddress.IPv4Address(0)


def bind_address(addr: AddressLike | None) -> IPAddress:
    """The address to bind: ``None`` and ``""`` are every IPv4 address (``0.0.0.0``); an
    unspecified address (``0.0.0.0``, ``::``) is every address of its family."""
    if addr is None or addr == "":
        return ANY_IPV4
    return ip_address(addr)


def sockaddr(address: Address) -> tuple[str, int]:
    """``(text, port)``: an ``Address`` in the form Python's ``socket`` module takes."""
    return str(address[0]), address[1]


def reply_bytes(reply: object) -> bytes:
    """A datagram handler's reply that is not ``bytes`` as bytes (bytearray, memoryview), or
    a ``TypeError`` that names the mistake, which adapters count as the handler failing."""
    if isinstance(reply, bytes | bytearray | memoryview):
        return bytes(reply)
    raise TypeError(f"a datagram handler must return bytes or None, not {type(reply).__name__}")


def call_handler(handler: DatagramHandler, data: bytes, peer: Address) -> bytes | None:
    """The one way every platform calls a datagram handler: its reply as ``bytes`` (a
    bytes-like is converted), or None; what the handler raises, and a ``TypeError`` for a
    reply of another type, propagate to the platform, which counts the handler as failed
    and logs :func:`handler_failure`."""
    reply = handler(data, peer)
    if reply is None or reply.__class__ is bytes:
        return reply
    return reply_bytes(reply)


def handler_failure(local: Address, exc: BaseException) -> str:
    """The log line for a datagram handler that failed on the endpoint at ``local``."""
    return f"udp {local[0]}:{local[1]} handler failed: {exc!r}"


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

    With ``sources``, only datagrams from those networks may be answered from it (a DNS
    server with rate limiting accounts every other client's answers in its handler); a
    platform that cannot check the source ignores the cache.
    """

    entries: dict[bytes, bytes]
    prefix: int = 0
    sources: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None

    def packed_sources(self) -> bytes | None:
        """``sources`` as the C batch path takes them: per network its family (4 or 6), its
        prefix length and its address in 16 bytes (IPv4 in the first 4)."""
        if self.sources is None:
            return None
        return b"".join(bytes((net.version, net.prefixlen))
                        + net.network_address.packed.ljust(16, b"\x00")
                        for net in self.sources)


@dataclass(frozen=True, slots=True)
class Interface:
    """One interface of a stack: its name, link address, MTU and IP addresses."""

    name: str
    mac: bytes | None
    mtu: int
    addresses: tuple[IPInterface, ...]


class UdpEndpoint(abc.ABC):
    """A bound UDP port."""

    local: Address

    @abc.abstractmethod
    def sendto(self, data: bytes, peer: tuple[AddressLike, int]) -> None:
        """Send one datagram (best effort, never blocks; a full queue drops it)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Unbind the port; later datagrams to it are not delivered."""


class Flow(abc.ABC):
    """One established TCP connection: a reliable, ordered byte stream.

    ``shutdown`` is the half-close: our side sends FIN after the pending data and the peer's
    data can still be read.  ``close`` ends our use of the flow: FIN after the pending data,
    nothing more is read (data the peer sends afterwards is answered with RST, as a closed
    socket does).  ``abort`` resets at once.
    """

    local: Address
    peer: Address

    @abc.abstractmethod
    async def read(self, max_bytes: int = 65536) -> bytes:
        """The next available bytes (at most ``max_bytes``); ``b""`` once the peer closed its
        side, the connection was reset, or we closed it."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Queue ``data`` for sending; waits while the send buffer is full (backpressure).

        Raises ``BrokenPipeError`` after our ``shutdown``/``close`` and
        ``ConnectionResetError`` once the connection was reset.
        """

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Half-close: FIN after pending data; reading goes on until the peer's FIN."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Graceful close (FIN after pending data); returns once the close was started."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Close at once, discarding pending data (RST)."""


FlowHandler = Callable[[Flow], Awaitable[None]]
"""Runs once per accepted connection, as its own task; the flow is aborted if it raises and
closed when it returns."""


async def serve_flow(handler: FlowHandler, flow: Flow,
                     failed: Callable[[Exception], None]) -> None:
    """Run ``handler`` on an accepted ``flow`` as every platform must: if it raises, report
    the error with ``failed`` and abort the connection; when it returns, close it."""
    try:
        await handler(flow)
    except Exception as exc:
        failed(exc)
        flow.abort()
        return
    try:
        await flow.close()
    except ConnectionError:
        pass


def flow_failure(flow: Flow, exc: BaseException) -> str:
    """The log line for a flow handler that raised."""
    return f"tcp {flow.local[1]} from {flow.peer[0]}:{flow.peer[1]}: handler failed: {exc!r}"


class TcpListener(abc.ABC):
    """A listening TCP port."""

    local: Address

    @abc.abstractmethod
    def close(self) -> None:
        """Stop accepting; established flows are unaffected."""


def _drop(payload: bytes, peer: Address) -> None:
    """The handler of an endpoint opened only to send: received datagrams are dropped."""
    return None


class Stack(abc.ABC):
    """A network stack: the appliance's only way to the network."""

    @property
    @abc.abstractmethod
    def interfaces(self) -> list[Interface]:
        """The stack's interfaces with their addresses, in the platform's order."""

    @property
    def addresses(self) -> list[IPAddress]:
        """Every address the stack answers on, interface by interface (wildcards excluded)."""
        return [a.ip for i in self.interfaces for a in i.addresses]

    @abc.abstractmethod
    async def udp_listen(self, addr: AddressLike | None, port: int, handler: DatagramHandler, *,
                         reply_cache: ReplyCache | None = None) -> UdpEndpoint:
        """Bind ``addr:port`` (``None``: every address; port 0 picks a free one) and deliver
        datagrams to ``handler`` (or answer them from ``reply_cache`` where the platform can).

        Raises ``AddressInUse`` or ``AddressNotAvailable``."""

    async def udp_open(self, addr: AddressLike | None = None, port: int = 0,
                       handler: DatagramHandler | None = None) -> UdpEndpoint:
        """An endpoint to send from (a free port unless ``port`` is given); datagrams sent
        back to it go to ``handler``, or are dropped without one."""
        return await self.udp_listen(addr, port, handler or _drop)

    @abc.abstractmethod
    async def tcp_listen(self, addr: AddressLike | None, port: int, handler: FlowHandler, *,
                         backlog: int = 128) -> TcpListener:
        """Listen on ``addr:port`` and run ``handler`` for each accepted connection.

        Raises ``AddressInUse`` or ``AddressNotAvailable``."""

    @abc.abstractmethod
    async def tcp_connect(self, addr: AddressLike, port: int, *,
                          timeout: float | None = None) -> Flow:
        """Open a connection; raises ``ConnectionRefusedError``, ``TimeoutError`` or
        ``NetworkUnreachable``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every endpoint, listener and flow of this stack."""
