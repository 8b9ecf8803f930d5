"""Unit tests of the sans-IO layers: checksum, Ethernet, ARP, IPv4, ICMP, UDP, TCP wire."""

from __future__ import annotations

import random
import struct

import pytest
from fata.net import arp, checksum, ethernet, icmp, ipv4, tcp_wire, udp
from fata.net.errors import ParseError

MAC_A = b"\x02\0\0\0\0\x01"
MAC_B = b"\x02\0\0\0\0\x02"
IP_A = ipv4.addr("10.0.0.1")
IP_B = ipv4.addr("10.0.0.2")


def slow_checksum(data: bytes) -> int:
    """RFC 1071 done the obvious way, to check the fast one against."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@pytest.mark.parametrize("size", [0, 1, 2, 3, 20, 1499, 1500, 65535])
def test_checksum_matches_rfc1071(size: int) -> None:
    data = random.Random(size).randbytes(size)
    fast = checksum.checksum(data)
    slow = slow_checksum(data)
    assert fast == slow or {fast, slow} == {0, 0xFFFF}
    patched = data + fast.to_bytes(2, "big") if size % 2 == 0 else None
    if patched is not None:
        assert checksum.verify(patched)


def test_checksum_known_vector() -> None:
    # RFC 1071 §3 example bytes
    data = bytes([0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7])
    assert checksum.checksum(data) == (~0xDDF2) & 0xFFFF


def test_ethernet_roundtrip_and_errors() -> None:
    frame = ethernet.header(MAC_B, MAC_A, ethernet.ETHERTYPE_IPV4) + b"payload"
    assert ethernet.parse(frame) == (MAC_B, MAC_A, ethernet.ETHERTYPE_IPV4)
    with pytest.raises(ParseError):
        ethernet.parse(b"\0" * 13)
    with pytest.raises(ParseError):  # 802.3 length field, not an Ethernet II type
        ethernet.parse(ethernet.header(MAC_B, MAC_A, 100))
    assert ethernet.mac_from_str(ethernet.mac_to_str(MAC_A)) == MAC_A


def test_arp_answers_only_for_our_addresses_and_learns() -> None:
    a = arp.Arp(MAC_A)
    a.addresses = {IP_A}
    request = arp.build(arp.OP_REQUEST, MAC_B, IP_B, b"\0" * 6, IP_A, ethernet.BROADCAST)
    out, released = a.input(request[14:], now=0.0)
    assert len(out) == 1 and not released
    reply = arp.parse(out[0][14:])
    assert (reply.op, reply.sha, reply.spa, reply.tpa) == (arp.OP_REPLY, MAC_A, IP_A, IP_B)
    assert a.lookup(IP_B, 1.0) == MAC_B
    other = arp.build(arp.OP_REQUEST, MAC_B, IP_B, b"\0" * 6, ipv4.addr("10.0.0.9"),
                      ethernet.BROADCAST)
    out, _ = a.input(other[14:], now=0.0)
    assert out == []


def test_arp_says_when_a_peer_moved_to_another_mac() -> None:
    a = arp.Arp(MAC_A)
    a.addresses.add(IP_A)
    moved: list[bytes] = []
    a.moved = moved.append
    request = arp.build(arp.OP_REQUEST, MAC_B, IP_B, b"\0" * 6, IP_A, ethernet.BROADCAST)
    a.input(request[14:], 0.0)
    a.input(request[14:], 1.0)  # the same MAC again: a refresh, not a move
    assert moved == []
    new_mac = b"\x02\x00\x00\x00\x00\x99"
    a.input(arp.build(arp.OP_REQUEST, new_mac, IP_B, b"\0" * 6, IP_A,
                      ethernet.BROADCAST)[14:], 2.0)
    assert moved == [IP_B] and a.lookup(IP_B, 2.0) == new_mac
    assert a.counters["moved"] == 1


def test_arp_queues_retries_expires() -> None:
    a = arp.Arp(MAC_A, entry_ttl=10, retry_interval=1, max_tries=3)
    a.addresses = {IP_A}
    assert len(a.resolve(IP_B, "p1", 0.0)) == 1
    assert a.resolve(IP_B, "p2", 0.1) == []  # already asking: queued, no second request
    frames, dropped = a.on_timer(1.0)
    assert len(frames) == 1 and not dropped
    reply = arp.build(arp.OP_REPLY, MAC_B, IP_B, MAC_A, IP_A, MAC_A)
    _, released = a.input(reply[14:], 1.5)
    assert released == [(MAC_B, "p1"), (MAC_B, "p2")]
    assert a.lookup(IP_B, 11.4) == MAC_B
    assert a.lookup(IP_B, 11.6) is None  # expired
    a.resolve(IP_B, "p3", 20.0)
    a.on_timer(21.0)
    a.on_timer(22.0)
    frames, dropped = a.on_timer(23.0)
    assert dropped == ["p3"] and a.counters["resolution_failures"] == 1


def test_arp_gratuitous_is_a_request_for_ourselves() -> None:
    a = arp.Arp(MAC_A)
    pkt = arp.parse(a.gratuitous(IP_A)[14:])
    assert pkt.spa == pkt.tpa == IP_A and pkt.op == arp.OP_REQUEST


def test_ipv4_header_roundtrip_and_checks() -> None:
    head = ipv4.header(IP_A, IP_B, ipv4.PROTO_UDP, 4, 77, ttl=9)
    hdr, payload = ipv4.parse(head + b"abcd" + b"\0" * 10)  # Ethernet padding is removed
    assert (hdr.src, hdr.dst, hdr.ttl, hdr.ident, bytes(payload)) == (IP_A, IP_B, 9, 77, b"abcd")
    bad = bytearray(head + b"abcd")
    bad[8] ^= 1
    with pytest.raises(ParseError, match="checksum"):
        ipv4.parse(bytes(bad))
    with pytest.raises(ParseError):
        ipv4.parse(head[:19])


def test_ipv4_options_are_skipped() -> None:
    opts = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    raw = bytearray(ipv4.HEADER.pack(0x46, 0, 24 + 3, 1, 0, 64, 17, 0, IP_A, IP_B) + opts)
    raw[10:12] = checksum.checksum(bytes(raw)).to_bytes(2, "big")
    hdr, payload = ipv4.parse(bytes(raw) + b"xyz")
    assert hdr.header_len == 24 and bytes(payload) == b"xyz"


def test_fragment_and_reassemble_in_any_order() -> None:
    data = random.Random(1).randbytes(5000)
    frags = ipv4.fragment(IP_A, IP_B, ipv4.PROTO_ICMP, data, 99, 1500)
    assert len(frags) == 4 and all(len(f) <= 1500 for f in frags)
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1, 1]):
        r = ipv4.Reassembler()
        result = None
        for i in order:
            hdr, payload = ipv4.parse(frags[i])
            result = r.add(hdr, payload, 0.0) or result
        assert result == data
        r.on_timer(60.0)  # a late duplicate starts a new datagram, which then times out
        assert r.held == 0


def test_reassembly_limits() -> None:
    data = bytes(4000)
    frags = ipv4.fragment(IP_A, IP_B, 17, data, 5, 1500)
    r = ipv4.Reassembler(timeout=2.0, max_bytes=2000, max_datagrams=2)
    hdr, payload = ipv4.parse(frags[0])
    assert r.add(hdr, payload, 0.0) is None
    assert r.on_timer(1.0) == 0
    assert r.on_timer(2.5) == 1 and r.held == 0
    r.add(hdr, payload, 3.0)
    hdr2, payload2 = ipv4.parse(frags[1])
    assert r.add(hdr2, payload2, 3.0) is None  # over the memory limit: the datagram is dropped
    assert r.counters["memory_limit_drops"] == 1 and r.held == 0
    for ident in range(5):  # more datagrams than allowed in progress: oldest evicted
        f = ipv4.fragment(IP_A, IP_B, 17, bytes(100), ident, 68)
        h, p = ipv4.parse(f[0])
        r.add(h, p, 4.0 + ident)
    assert len(r._pending) == 2 and r.counters["evicted_datagrams"] >= 3


def test_routing() -> None:
    cfg = ipv4.Ipv4Config.from_text("10.77.0.2/24", "10.77.0.1")
    assert cfg.next_hop(ipv4.addr("10.77.0.9")) == ipv4.addr("10.77.0.9")
    assert cfg.next_hop(ipv4.addr("8.8.8.8")) == ipv4.addr("10.77.0.1")
    assert cfg.broadcast == ipv4.addr("10.77.0.255")
    assert ipv4.Ipv4Config.from_text("10.77.0.2/24").next_hop(ipv4.addr("8.8.8.8")) is None


def test_icmp_echo_and_unreachable() -> None:
    req = icmp.echo_request(7, 3, b"data")
    assert icmp.parse(req) == (icmp.TYPE_ECHO_REQUEST, 0)
    reply = icmp.echo_reply(req)
    assert icmp.parse(reply) == (icmp.TYPE_ECHO_REPLY, 0) and reply[4:] == req[4:]
    original = ipv4.header(IP_A, IP_B, 17, 20, 1) + bytes(20)
    err = icmp.unreachable(icmp.CODE_PORT_UNREACHABLE, original)
    assert icmp.parse(err) == (3, 3) and err[8:] == original[:28]
    with pytest.raises(ParseError):
        icmp.parse(req[:-1] + b"X")


def test_icmp_rate_limiter() -> None:
    limiter = icmp.RateLimiter(rate=10, burst=5)
    assert sum(limiter.allow(0.0) for _ in range(20)) == 5
    assert sum(limiter.allow(0.5) for _ in range(20)) == 5  # 0.5 s refilled 5 tokens


def test_udp_roundtrip_checksum_and_zero_checksum() -> None:
    pseudo = checksum.pseudo_header_ipv4(IP_A, IP_B, 17, 8 + 5)
    dgram = udp.build(1000, 53, b"hello", pseudo)
    assert udp.parse(memoryview(dgram), IP_A, IP_B) == (1000, 53, b"hello")
    with pytest.raises(ParseError, match="checksum"):
        udp.parse(memoryview(dgram), IP_A, ipv4.addr("10.0.0.3"))
    no_sum = dgram[:6] + b"\0\0" + dgram[8:]
    assert udp.parse(memoryview(no_sum), IP_A, ipv4.addr("10.0.0.3"))[2] == b"hello"


def test_tcp_wire_options_roundtrip() -> None:
    seg = tcp_wire.Segment(1234, 80, 0xFFFFFFF0, 5, tcp_wire.SYN | tcp_wire.ACK, 65535, b"x")
    seg.mss, seg.wscale, seg.sack_permitted = 1460, 7, True
    seg.tsval, seg.tsecr = 11, 22
    seg.sack = [(1, 2), (3, 4)]  # only one block fits beside the SYN options
    head = tcp_wire.header(seg, None)
    length = len(head) + 1
    pseudo = checksum.pseudo_header_ipv4(IP_A, IP_B, 6, length)
    raw = tcp_wire.header(seg, pseudo) + b"x"
    back = tcp_wire.parse(memoryview(raw), pseudo)
    assert (back.sport, back.dport, back.seq, back.ack, back.flags) == \
        (1234, 80, 0xFFFFFFF0, 5, tcp_wire.SYN | tcp_wire.ACK)
    assert (back.mss, back.wscale, back.sack_permitted, back.tsval, back.tsecr) == \
        (1460, 7, True, 11, 22)
    assert back.sack == [(1, 2)] and bytes(back.payload) == b"x"
    ack = tcp_wire.Segment(1, 2, 3, 4, tcp_wire.ACK, 5)
    ack.tsval, ack.tsecr, ack.sack = 1, 2, [(10, 20), (30, 40), (50, 60), (70, 80)]
    back = tcp_wire.parse(memoryview(tcp_wire.header(ack, None)), None)
    assert back.sack == [(10, 20), (30, 40), (50, 60)] and back.tsval == 1
    with pytest.raises(ParseError, match="checksum"):
        tcp_wire.parse(memoryview(raw[:-1] + b"y"), pseudo)


@pytest.mark.parametrize("opts", [b"\x02", b"\x02\x01", b"\x05\x40" + bytes(6), b"\x08\x00"])
def test_tcp_wire_bad_options(opts: bytes) -> None:
    padded = opts + b"\0" * (-len(opts) % 4)
    hlen = 20 + len(padded)
    raw = tcp_wire.HEADER.pack(1, 2, 0, 0, (hlen // 4) << 4, tcp_wire.SYN, 0, 0, 0) + padded
    with pytest.raises(ParseError):
        tcp_wire.parse(memoryview(raw), None)
