"""The xenstore ring page: its layout is Xen's, its indexes free-running across 2**32, a
peer's impossible indexes detected, reconnection as ``xenstore-ring.txt`` says; and the
ring as a Flow over a real event channel pair, back-pressure included."""

from __future__ import annotations

import asyncio
import struct

import pytest
from fata.platform.xs_ring_flow import RingFlow
from fata.xen.evtchn import EventChannel
from fata.xen.xs_ring import (
    CONNECTED,
    ERROR_RINGIDX,
    FEATURE_ERROR,
    FEATURE_RECONNECTION,
    RECONNECT,
    RingError,
    XsRing,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def fields(page: bytearray) -> tuple[int, ...]:
    """req_cons req_prod rsp_cons rsp_prod server_features connection error, as the C
    struct lays them out."""
    return struct.unpack_from("<7I", page, 2048)


def test_the_layout_is_xenstore_domain_interface() -> None:
    page = bytearray(4096)
    server, guest = XsRing(page, server=True), XsRing(page, server=False)
    server.advertise()
    assert guest.write(b"request") == 7
    assert page[0:7] == b"request" and fields(page)[:2] == (0, 7)
    assert server.read() == b"request" and fields(page)[:2] == (7, 7)
    assert server.write(b"answer") == 6
    assert page[1024:1030] == b"answer" and fields(page)[2:4] == (0, 6)
    assert guest.read() == b"answer"
    assert fields(page)[4] == FEATURE_RECONNECTION | FEATURE_ERROR


def test_indexes_wrap_around_two_to_the_32() -> None:
    page = bytearray(4096)
    start = 0xFFFFFFFF - 500
    struct.pack_into("<4I", page, 2048, start, start, start, start)
    server, guest = XsRing(page, server=True), XsRing(page, server=False)
    data = bytes(range(256)) * 4
    assert guest.write(data) == 1024 and guest.write(b"x") == 0  # full
    assert server.read() == data
    assert fields(page)[0] == (start + 1024) & 0xFFFFFFFF


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=20),
       st.integers(0, 0xFFFFFFFF), st.lists(st.integers(1, 1500), min_size=1, max_size=10))
def test_any_stream_arrives_whole_and_in_order(chunks: list[bytes], start: int,
                                               reads: list[int]) -> None:
    page = bytearray(4096)
    struct.pack_into("<2I", page, 2048, start, start)
    server, guest = XsRing(page, server=True), XsRing(page, server=False)
    sent = b"".join(chunks)
    pending, got, i = memoryview(sent), bytearray(), 0
    while len(got) < len(sent):
        pending = pending[guest.write(pending):]
        got += server.read(reads[i % len(reads)])
        i += 1
    assert bytes(got) == sent


def test_a_peer_with_impossible_indexes_is_refused() -> None:
    page = bytearray(4096)
    struct.pack_into("<2I", page, 2048, 0, 1025)  # 1025 bytes queued in a 1024-byte ring
    with pytest.raises(RingError, match="1025 bytes apart"):
        XsRing(page, server=True).read()
    struct.pack_into("<2I", page, 2056, 2000, 0)  # the guest consumed past our producer
    with pytest.raises(RingError):
        XsRing(page, server=True).write(b"x")


def test_reconnection_resets_the_ring_and_only_the_guest_may_ask() -> None:
    page = bytearray(4096)
    server, guest = XsRing(page, server=True), XsRing(page, server=False)
    with pytest.raises(RingError, match="does not offer"):
        guest.request_reconnect()
    server.advertise()
    guest.write(b"half a mess")
    guest.request_reconnect()
    assert server.connection == RECONNECT
    server.reset()
    assert fields(page)[:4] == (0, 0, 0, 0) and server.connection == CONNECTED
    with pytest.raises(ValueError):
        server.request_reconnect()
    with pytest.raises(ValueError):
        guest.reset()


def flows(page: bytearray, **kwargs) -> tuple[RingFlow, RingFlow]:
    ours, theirs = EventChannel.pair()
    server = RingFlow(XsRing(page, server=True), ours, domid=1, **kwargs)
    guest = RingFlow(XsRing(page, server=False), theirs, domid=1)
    return server, guest


def test_ring_flows_carry_a_stream_larger_than_the_ring_both_ways() -> None:
    async def main() -> None:
        page = bytearray(4096)
        XsRing(page, server=True).advertise()
        server, guest = flows(page, buffer=2048)
        blob = bytes(i % 251 for i in range(100_000))

        async def drain(flow: RingFlow, n: int) -> bytes:
            got = bytearray()
            while len(got) < n:
                got += await flow.read()
            return bytes(got)

        sent = asyncio.ensure_future(guest.write(blob))
        assert await asyncio.wait_for(drain(server, len(blob)), 10) == blob
        await sent
        back = asyncio.ensure_future(server.write(blob[::-1]))
        assert await asyncio.wait_for(drain(guest, len(blob)), 10) == blob[::-1]
        await back
        assert guest._channel.notified > 0 and server._channel.notified > 0

    asyncio.run(main())


def test_broken_indexes_end_the_server_flow_with_the_error_recorded() -> None:
    async def main() -> None:
        page = bytearray(4096)
        XsRing(page, server=True).advertise()
        server, guest = flows(page)
        struct.pack_into("<I", page, 2052, 5000)  # the guest's producer jumps
        guest._channel.notify()
        assert await asyncio.wait_for(server.read(), 5) == b""
        assert server.reset_by_peer and fields(page)[6] == ERROR_RINGIDX
        with pytest.raises(ConnectionResetError):
            await server.write(b"x")

    asyncio.run(main())


def test_a_guest_reconnection_ends_the_server_flow_and_the_owner_resets() -> None:
    async def main() -> None:
        page = bytearray(4096)
        XsRing(page, server=True).advertise()
        resets: list[RingFlow] = []

        def reconnected() -> None:
            ring = XsRing(page, server=True)
            ring.reset()
            resets.append(RingFlow(ring, server_channel, domid=1))
            server_channel.notify()

        server_channel, guest_channel = EventChannel.pair()
        server = RingFlow(XsRing(page, server=True), server_channel, domid=1,
                          on_reconnect=reconnected)
        guest = RingFlow(XsRing(page, server=False), guest_channel, domid=1)
        await guest.write(b"before")
        assert await server.read() == b"before"
        await asyncio.wait_for(guest.reconnect(), 5)
        assert await server.read() == b"" and len(resets) == 1
        await guest.write(b"after")
        assert await asyncio.wait_for(resets[0].read(), 5) == b"after"

    asyncio.run(main())
