"""Property tests and fuzzing: malformed input at every layer is a counted drop, never a crash.

Each parser may only raise its typed ``ParseError``; the assembled stack must never let an
exception escape its frame handler (it would count ``internal_errors``, which must stay 0),
must account for every frame it is given (a drop counter, an answer, or a packet it holds
for later) and must go on serving afterwards.  The stacks run on a virtual clock
(``run_virtual``), so "afterwards" is exact: every frame in flight has been handled.
"""

from __future__ import annotations

import asyncio
import struct

from fata.net import arp, checksum, dhcp, ethernet, icmp, ipv4, tcp_wire, udp
from fata.net.errors import ParseError
from fata.net.ipv4 import Ipv4Config
from fata.net.stack import DirectStack
from fata.net.tcp import State
from fata.net.tcp import output as tcp_output
from fata.net.tcp_wire import ACK, FIN, PSH, RST, SYN, URG
from fata.platform.memory import MemoryWire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._services import echo, run_virtual, settle

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
MAC_A = b"\x02\0\0\0\0\x0a"
MAC_B = b"\x02\0\0\0\0\x0b"
IP_A = ipv4.addr("10.0.0.1")
IP_B = ipv4.addr("10.0.0.2")


def only_parse_errors(fn, *args) -> None:
    try:
        fn(*args)
    except ParseError:
        pass


@SETTINGS
@given(st.binary(max_size=200))
def test_parsers_raise_only_parse_errors(data: bytes) -> None:
    view = memoryview(data)
    only_parse_errors(ethernet.parse, data)
    only_parse_errors(arp.parse, data)
    only_parse_errors(ipv4.parse, data)
    only_parse_errors(icmp.parse, data)
    only_parse_errors(udp.parse, view, IP_A, IP_B)
    only_parse_errors(tcp_wire.parse, view, None)
    only_parse_errors(tcp_wire.parse, view, 0)
    only_parse_errors(dhcp.parse, data)


@SETTINGS
@given(st.binary(min_size=0, max_size=400))
def test_dhcp_client_ignores_garbage(data: bytes) -> None:
    client = dhcp.DhcpClient(MAC_A, lambda n: b"\x01" * n)
    client.start(0.0)
    payload = bytearray(dhcp.build(dhcp.OFFER, client.xid, MAC_A))
    payload[0] = 2
    payload[240:240 + len(data)] = data  # garbage options after the cookie
    only_parse_errors(client.input, bytes(payload), 1.0)
    assert client.state in (dhcp.DhcpState.SELECTING, dhcp.DhcpState.REQUESTING)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 70000), st.binary(min_size=0, max_size=600),
                          st.booleans(), st.integers(0, 3)), max_size=12))
def test_reassembler_never_exceeds_its_limits(frags: list) -> None:
    r = ipv4.Reassembler(max_bytes=4000, max_datagrams=2)
    for offset, data, more, ident in frags:
        hdr = ipv4.Ipv4Header(20, 0, 20 + len(data), ident, False, more, offset & ~7, 64, 17,
                              IP_A, IP_B)
        out = r.add(hdr, memoryview(data), 0.0)
        assert out is None or len(out) <= 70000 + 600
        assert r.held <= 4000 + 600
        assert len(r._pending) <= 2


def frame(payload: bytes, ethertype: int = ethernet.ETHERTYPE_IPV4) -> bytes:
    return ethernet.header(MAC_A, MAC_B, ethertype) + payload


def ip_packet(proto: int, payload: bytes, **kw: int) -> bytes:
    return ipv4.header(IP_B, IP_A, proto, len(payload), kw.get("ident", 1),
                       mf=bool(kw.get("mf", 0)), frag_offset=kw.get("off", 0)) + payload


def valid_frames() -> list[bytes]:
    """One good frame of each kind, for mutation."""
    psum = checksum.pseudo_header_ipv4(IP_B, IP_A, 17, 8 + 4)
    seg = tcp_wire.Segment(40000, 7, 1000, 0, SYN, 65535)
    seg.mss, seg.wscale, seg.sack_permitted, seg.tsval = 1460, 7, True, 5
    head = tcp_wire.header(seg, None)
    tcp_raw = tcp_wire.header(seg, checksum.pseudo_header_ipv4(IP_B, IP_A, 6, len(head)))
    return [
        arp.build(arp.OP_REQUEST, MAC_B, IP_B, b"\0" * 6, IP_A, ethernet.BROADCAST),
        frame(ip_packet(1, icmp.echo_request(1, 1, b"ping" * 10))),
        frame(ip_packet(17, udp.build(5555, 7, b"echo", psum))),
        frame(ip_packet(6, tcp_raw)),
        frame(ip_packet(1, icmp.echo_request(1, 2, bytes(64))[:40], mf=1, ident=9)),
    ]


def trace(stack: DirectStack, wire: MemoryWire) -> tuple[int, ...]:
    """What a frame can leave behind: a counter, a frame sent (an answer or an ARP request
    for the answer's next hop), a fragment held, a packet waiting for ARP, a connection."""
    return (sum(stack.stats().values()), wire.a.sent, stack.ip.reassembler.held,
            sum(len(p.queue) for p in stack.arp.pending.values()), len(stack.tcp.conns))


def discarded_by_listener(frame: bytes, trusted: bool) -> bool:
    """Whether ``frame`` is a sound TCP segment for the listener on port 7 that RFC 9293
    §3.10.7.2 says to drop without an answer: an RST, or neither SYN nor ACK, or SYN with
    FIN.  (The engine keeps no counter for these; they are the only traceless frames.)"""
    try:
        if ethernet.parse(frame)[2] != ethernet.ETHERTYPE_IPV4:
            return False
        hdr, packet = ipv4.parse(frame[ethernet.HEADER_LEN:])
        if hdr.proto != 6 or hdr.dst != IP_A or hdr.mf or hdr.frag_offset:
            return False
        pseudo = None if trusted else checksum.pseudo_header_ipv4(hdr.src, hdr.dst, 6,
                                                                  len(packet))
        seg = tcp_wire.parse(packet, pseudo)
    except ParseError:
        return False
    return seg.dport == 7 and bool(seg.flags & RST or (not seg.flags & (SYN | ACK))
                                   or (seg.flags & SYN and seg.flags & FIN and
                                       not seg.flags & ACK))


async def fuzz_stack(frames: list[bytes]) -> DirectStack:
    """A stack fed ``frames`` (each untrusted, then as if a device had vouched for its
    checksums); each one must leave a trace, and none an internal error."""
    wire = MemoryWire()
    stack = DirectStack(wire.a, Ipv4Config.from_text("10.0.0.1/24"))
    stack.start()
    await stack.udp_listen("0.0.0.0", 7, lambda data, peer: data)
    await stack.tcp_listen("0.0.0.0", 7, echo)
    await settle()
    for f in frames:
        for trusted in (False, True):
            before = trace(stack, wire)
            stack._on_frame(f, trusted)
            await settle()
            assert trace(stack, wire) != before or discarded_by_listener(f, trusted), \
                f"frame left no trace: {f.hex()}"
    assert stack.stats().get("internal_errors", 0) == 0
    return stack


@SETTINGS
@given(st.lists(st.binary(max_size=1600), max_size=8))
def test_random_frames(frames: list[bytes]) -> None:
    async def main() -> None:
        stack = await fuzz_stack(frames)
        await stack.close()
    run_virtual(main())


@SETTINGS
@given(st.integers(0, 4), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)),
                                    min_size=1, max_size=6), st.integers(0, 200))
def test_mutated_valid_frames(which: int, flips: list, cut: int) -> None:
    base = bytearray(valid_frames()[which])
    for pos, value in flips:
        base[pos % len(base)] = value
    data = bytes(base[:len(base) - cut % len(base)])

    async def main() -> None:
        stack = await fuzz_stack([data])
        await stack.close()
    run_virtual(main())


flag_bits = st.integers(0, 0x3F).map(lambda v: v & (SYN | ACK | FIN | RST | PSH | URG))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(flag_bits, st.integers(-70000, 70000), st.integers(-70000, 70000),
                          st.integers(0, 65535), st.binary(max_size=300),
                          st.one_of(st.none(), st.integers(0, 2**32 - 1)),
                          st.lists(st.tuples(st.integers(-5000, 5000), st.integers(0, 5000)),
                                   max_size=3)),
                min_size=1, max_size=15))
def test_tcp_state_machine_survives_arbitrary_segments(segments: list) -> None:
    """Valid-checksum segments with arbitrary flags, numbers and options against a live flow
    whose application sends nothing: it ends up only where RFC 9293 allows (still
    established, half-closed by a FIN, or reset by an RST), with its send sequence space
    intact, and it never sends a byte of data."""
    async def main() -> None:
        wire = MemoryWire()
        a = DirectStack(wire.a, Ipv4Config.from_text("10.0.0.1/24"))
        b = DirectStack(wire.b, Ipv4Config.from_text("10.0.0.2/24"))
        a.start()
        b.start()
        await b.tcp_listen("0.0.0.0", 7, echo)
        flow = await a.tcp_connect("10.0.0.2", 7, timeout=5)
        conn = flow.connection  # type: ignore[attr-defined]
        await settle()
        iss_side = (conn.snd_una, conn.snd_nxt, conn.snd_max)
        data_sent: list[bytes] = []

        def watch(frame: bytes) -> bool:  # a frame A sends: does it carry data?
            if frame[12:14] == b"\x08\x00":
                hdr, packet = ipv4.parse(frame[ethernet.HEADER_LEN:])
                if hdr.proto == 6 and tcp_wire.parse(packet, None).payload:
                    data_sent.append(frame)
            return True

        wire.a.filter = watch
        for flags, dseq, dack, window, payload, tsval, sacks in segments:
            seg = tcp_wire.Segment(7, conn.local_port, (conn.rcv_nxt + dseq) & 0xFFFFFFFF,
                                   (conn.snd_una + dack) & 0xFFFFFFFF, flags, window, payload)
            seg.tsval = tsval
            seg.sack = [((conn.snd_una + x) & 0xFFFFFFFF, (conn.snd_una + x + n) & 0xFFFFFFFF)
                        for x, n in sacks]
            tcp_output.transmit(b.ip, IP_B, IP_A, seg, 0, b.loop.time())
            await settle()
        assert a.stats().get("internal_errors", 0) == 0
        assert b.stats().get("internal_errors", 0) == 0
        sent_flags = {f for f, *_ in segments}
        if conn.state == State.CLOSED:
            assert isinstance(conn.error, ConnectionResetError) and any(
                f & RST for f in sent_flags), (conn.error, sent_flags)
        else:
            assert conn.state in (State.ESTABLISHED, State.CLOSE_WAIT), conn.state
            assert conn.state == State.ESTABLISHED or any(f & FIN for f in sent_flags)
            assert (conn.snd_una, conn.snd_nxt, conn.snd_max) == iss_side
        assert not data_sent, "the stack sent data its application never wrote"
        wire.a.filter = None
        # the stack still works: a fresh connection echoes
        fresh = await a.tcp_connect("10.0.0.2", 7, timeout=5)
        await fresh.write(b"still alive")
        assert await asyncio.wait_for(fresh.read(), 5) == b"still alive"
        await a.close()
        await b.close()
    run_virtual(main())


def test_counters_name_the_drops() -> None:
    async def main() -> None:
        bad_ip = bytearray(valid_frames()[1])
        bad_ip[14 + 10] ^= 0xFF  # IPv4 header checksum
        bad_udp = bytearray(valid_frames()[2])
        bad_udp[-1] ^= 0xFF  # UDP payload vs its checksum
        stack = await fuzz_stack([b"\0" * 10, bytes(bad_ip), bytes(bad_udp),
                                  frame(b"", 0x88CC)])
        stats = stack.stats()
        assert stats["eth_short"] == 2 and stats["ipv4_bad_checksum"] == 2
        assert stats["udp_bad_checksum"] == 1  # the trusted copy was delivered
        assert stats["eth_unknown_type"] == 2
        await stack.close()
    run_virtual(main())


def test_struct_sizes() -> None:
    assert struct.calcsize(ipv4.HEADER.format) == 20 and tcp_wire.HEADER.size == 20
