"""The ``Stack`` contract, the same cases against every implementation (``_stacks.KINDS``).

An appliance's ``start()`` never knows its target, so each platform must behave the same:
addresses as ``ipaddress`` objects, one set of errors, half-close, close and abort, UDP
endpoints that only send.  Every case waits on conditions (futures, reads) under a
deadline, never on a sleep.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import ipaddress
from collections.abc import Awaitable, Callable

import pytest
from fata.devices import (
    AddressInUse,
    AddressNotAvailable,
    Flow,
    IPAddress,
    Stack,
)

from ._stacks import KINDS, Pair, stack_pair

pytestmark = pytest.mark.parametrize("kind", KINDS)
DEADLINE = 20.0
NOT_OURS = ["198.51.100.77", "2001:db8::77"]  # documentation ranges: nobody's address


def run(kind: str, case: Callable[[Pair], Awaitable[None]]) -> None:
    async def main() -> None:
        async with asyncio.timeout(DEADLINE), stack_pair(kind) as pair:
            await case(pair)
    asyncio.run(main())


async def read_all(flow: Flow) -> bytes:
    """Everything until end of stream."""
    out = bytearray()
    while chunk := await flow.read():
        out += chunk
    return bytes(out)


async def echo_upper_once(flow: Flow) -> None:
    """Read to the peer's FIN, then answer everything upper-cased (needs its half-close)."""
    data = await read_all(flow)
    await flow.write(data.upper())


def _is_ip(value: object) -> bool:
    return isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address)


# ---------------------------------------------------------------- addresses and interfaces

def test_interfaces_and_addresses(kind: str) -> None:
    async def case(p: Pair) -> None:
        assert p.address in p.server.addresses
        for interface in p.server.interfaces:
            assert isinstance(interface.name, str) and interface.name
            assert interface.mtu >= 576
            assert interface.mac is None or len(interface.mac) == 6
            for a in interface.addresses:
                assert isinstance(a, ipaddress.IPv4Interface | ipaddress.IPv6Interface)
        assert all(_is_ip(a) and not a.is_unspecified for a in p.server.addresses)
    run(kind, case)


@pytest.mark.parametrize("other", NOT_OURS)
def test_binding_an_address_that_is_not_ours_is_address_not_available(kind: str,
                                                                       other: str) -> None:
    async def case(p: Pair) -> None:
        with pytest.raises(AddressNotAvailable) as udp:
            await p.server.udp_listen(other, 0, lambda d, a: None)
        with pytest.raises(AddressNotAvailable):
            await p.server.tcp_listen(ipaddress.ip_address(other), 0, echo_upper_once)
        assert udp.value.errno == errno.EADDRNOTAVAIL and isinstance(udp.value, OSError)
    run(kind, case)


def test_a_port_in_use_is_address_in_use_for_udp_and_tcp(kind: str) -> None:
    async def case(p: Pair) -> None:
        ep = await p.server.udp_listen(p.address, 0, lambda d, a: None)
        with pytest.raises(AddressInUse) as exc:
            await p.server.udp_listen(str(p.address), ep.local[1], lambda d, a: None)
        assert exc.value.errno == errno.EADDRINUSE
        listener = await p.server.tcp_listen(p.address, 0, echo_upper_once)
        with pytest.raises(AddressInUse):
            await p.server.tcp_listen(p.address, listener.local[1], echo_upper_once)
        ep.close()  # unbinding frees the port
        again = await p.server.udp_listen(p.address, ep.local[1], lambda d, a: None)
        assert again.local == ep.local
    run(kind, case)


# ---------------------------------------------------------------- UDP

def test_udp_request_reply_with_ipaddress_addresses(kind: str) -> None:
    async def case(p: Pair) -> None:
        seen: list[tuple[IPAddress, int]] = []

        def handler(data: bytes, peer: tuple[IPAddress, int]) -> bytes:
            seen.append(peer)
            return data.upper()

        ep = await p.server.udp_listen(p.address, 0, handler)
        assert ep.local[0] == p.address and _is_ip(ep.local[0]) and ep.local[1] > 0
        replies: asyncio.Queue[tuple[bytes, tuple[IPAddress, int]]] = asyncio.Queue()
        client = await p.client.udp_open(handler=lambda d, a: replies.put_nowait((d, a)))
        client.sendto(b"hello", (p.address, ep.local[1]))
        data, source = await replies.get()
        assert data == b"HELLO" and source == ep.local and _is_ip(source[0])
        client.sendto(b"text form", (str(p.address), ep.local[1]))  # text is accepted too
        assert (await replies.get())[0] == b"TEXT FORM"
        assert all(_is_ip(ip) for ip, _port in seen)
        assert seen[0][1] == client.local[1]
        assert seen[0][0] in p.client.addresses
    run(kind, case)


def test_udp_open_without_a_handler_only_sends(kind: str) -> None:
    async def case(p: Pair) -> None:
        got: asyncio.Queue[tuple[bytes, tuple[IPAddress, int]]] = asyncio.Queue()
        ep = await p.server.udp_listen(p.address, 0, lambda d, a: got.put_nowait((d, a)) or b"back")
        sender = await p.client.udp_open()
        assert sender.local[1] > 0
        sender.sendto(b"one", (p.address, ep.local[1]))
        sender.sendto(b"two", (p.address, ep.local[1]))  # the reply to "one" was dropped
        assert [(await got.get())[0] for _ in range(2)] == [b"one", b"two"]
    run(kind, case)


def test_udp_handler_failures_do_not_stop_the_port(kind: str) -> None:
    async def case(p: Pair) -> None:
        def handler(data: bytes, peer: tuple[IPAddress, int]) -> object:
            if data == b"raise":
                raise ValueError("bad datagram")
            if data == b"wrong type":
                return 42
            return bytearray(data[::-1])  # bytes-likes are sent as bytes

        ep = await p.server.udp_listen(p.address, 0, handler)
        replies: asyncio.Queue[bytes] = asyncio.Queue()
        client = await p.client.udp_open(handler=lambda d, a: replies.put_nowait(d))
        for payload in (b"raise", b"wrong type", b"fine"):
            client.sendto(payload, (p.address, ep.local[1]))
        assert await replies.get() == b"enif"
    run(kind, case)


# ---------------------------------------------------------------- TCP

def test_tcp_half_close_keeps_reading(kind: str) -> None:
    async def case(p: Pair) -> None:
        sides: list[Flow] = []

        async def handler(flow: Flow) -> None:
            sides.append(flow)
            await echo_upper_once(flow)

        listener = await p.server.tcp_listen(p.address, 0, handler)
        assert listener.local[0] == p.address and _is_ip(listener.local[0])
        flow = await p.client.tcp_connect(p.address, listener.local[1], timeout=5)
        await flow.write(b"half ")
        await flow.write(b"close")
        await flow.shutdown()
        with pytest.raises(BrokenPipeError):
            await flow.write(b"too late")
        assert await read_all(flow) == b"HALF CLOSE"
        server_side = sides[0]
        assert server_side.local == (p.address, listener.local[1])
        assert server_side.peer == flow.local and flow.peer == server_side.local
        assert all(_is_ip(a[0]) for a in (flow.local, flow.peer, server_side.peer))
        await flow.close()
    run(kind, case)


def test_tcp_close_ends_reading_and_writing(kind: str) -> None:
    async def case(p: Pair) -> None:
        ended: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handler(flow: Flow) -> None:
            ended.set_result(await read_all(flow))

        listener = await p.server.tcp_listen(p.address, 0, handler)
        flow = await p.client.tcp_connect(str(p.address), listener.local[1], timeout=5)
        await flow.write(b"bye")
        await flow.close()
        assert await ended == b"bye"
        assert await flow.read() == b""
        with pytest.raises(BrokenPipeError):
            await flow.write(b"after close")
    run(kind, case)


def test_tcp_abort_resets_the_peer(kind: str) -> None:
    async def case(p: Pair) -> None:
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        connected = asyncio.Event()

        async def handler(flow: Flow) -> None:
            connected.set()
            assert await flow.read() == b""  # a reset reads as the end
            try:
                for _ in range(1000):
                    await flow.write(b"x" * 1000)
            except ConnectionResetError:
                outcome.set_result("reset")
                return
            except BrokenPipeError:
                outcome.set_result("broken pipe")
                return
            outcome.set_result("writes kept succeeding")

        listener = await p.server.tcp_listen(p.address, 0, handler)
        flow = await p.client.tcp_connect(p.address, listener.local[1], timeout=5)
        await connected.wait()
        flow.abort()
        assert await outcome == "reset"
        assert await flow.read() == b""
    run(kind, case)


def test_tcp_connect_to_a_closed_port_is_refused(kind: str) -> None:
    async def case(p: Pair) -> None:
        listener = await p.server.tcp_listen(p.address, 0, echo_upper_once)
        port = listener.local[1]
        listener.close()
        with pytest.raises(ConnectionRefusedError):
            await p.client.tcp_connect(p.address, port, timeout=5)
    run(kind, case)


def test_closing_a_listener_leaves_established_flows(kind: str) -> None:
    async def case(p: Pair) -> None:
        listener = await p.server.tcp_listen(p.address, 0, echo_upper_once)
        flow = await p.client.tcp_connect(p.address, listener.local[1], timeout=5)
        listener.close()
        await flow.write(b"still here")
        await flow.shutdown()
        assert await read_all(flow) == b"STILL HERE"
    run(kind, case)


def test_a_failing_flow_handler_aborts_only_its_connection(kind: str) -> None:
    async def case(p: Pair) -> None:
        async def handler(flow: Flow) -> None:
            data = await flow.read()
            if data == b"fail":
                raise RuntimeError("handler bug")
            await flow.write(data + b"!")

        listener = await p.server.tcp_listen(p.address, 0, handler)
        bad = await p.client.tcp_connect(p.address, listener.local[1], timeout=5)
        await bad.write(b"fail")
        assert await read_all(bad) == b""
        good = await p.client.tcp_connect(p.address, listener.local[1], timeout=5)
        await good.write(b"ok")
        assert await read_all(good) == b"ok!"  # the handler returned: the stack closed it
    run(kind, case)


def test_tcp_bulk_both_ways_with_backpressure(kind: str) -> None:
    size = 4 << 20

    async def case(p: Pair) -> None:
        blob = bytes(range(256)) * (size // 256)

        async def handler(flow: Flow) -> None:
            digest = hashlib.sha256(await read_all(flow)).digest()
            for i in range(0, size, 100_000):  # more than any send buffer holds
                await flow.write(blob[i:i + 100_000])
            await flow.write(digest)

        listener = await p.server.tcp_listen(p.address, 0, handler)
        flow = await p.client.tcp_connect(p.address, listener.local[1], timeout=5)
        await flow.write(blob)
        await flow.shutdown()
        back = await read_all(flow)
        assert back[:size] == blob and back[size:] == hashlib.sha256(blob).digest()
    run(kind, case)


def test_closing_the_stack_ends_its_flows(kind: str) -> None:
    async def case(p: Pair) -> None:
        listener = await p.server.tcp_listen(p.address, 0, lambda f: f.read())
        flow = await p.client.tcp_connect(p.address, listener.local[1], timeout=5)
        await flow.write(b"x")
        await p.server.close()
        assert await flow.read() == b""
    run(kind, case)


async def _stack_close_is_idempotent(stack: Stack) -> None:
    await stack.close()
    await stack.close()


def test_stack_close_twice(kind: str) -> None:
    async def case(p: Pair) -> None:
        await p.server.udp_listen(p.address, 0, lambda d, a: None)
        await _stack_close_is_idempotent(p.server)
    run(kind, case)


def test_tracing_records_a_span_per_datagram_and_per_connection(kind: str, tmp_path) -> None:
    from fata.runtime import trace

    async def case(p: Pair) -> None:
        tracer = trace.current = trace.Tracer(tmp_path / "trace.json")
        try:
            ep = await p.server.udp_listen(p.address, 0, lambda d, a: d)
            listener = await p.server.tcp_listen(p.address, 0, echo_upper_once)
        finally:
            trace.current = None  # wrapping happens when listening
        replies: asyncio.Queue[bytes] = asyncio.Queue()
        client = await p.client.udp_open(handler=lambda d, a: replies.put_nowait(d))
        client.sendto(b"traced", (p.address, ep.local[1]))
        assert await replies.get() == b"traced"
        flow = await p.client.tcp_connect(p.address, listener.local[1], timeout=5)
        await flow.write(b"x")
        await flow.shutdown()
        assert await read_all(flow) == b"X"
        names = [e["name"] for e in tracer.events]
        assert f"udp:{ep.local[1]}" in names
        while f"tcp:{listener.local[1]}" not in names:  # the span ends after the handler
            await asyncio.sleep(0)
            names = [e["name"] for e in tracer.events]
    run(kind, case)
