"""Frame parsing into OXM field values, and the rewriting actions' checksum updates."""

from __future__ import annotations

import struct

from fata_openflow_switch.ofp_const import OFPVID_PRESENT, Ipv6ExthdrFlags
from fata_openflow_switch.ofp_const import OxmField as F
from fata_openflow_switch.packet import parse
from fata_openflow_switch.rewrite import (
    copy_ttl,
    crc32c,
    dec_nw_ttl,
    pop_mpls,
    pop_pbb,
    pop_vlan,
    push_mpls,
    push_pbb,
    push_vlan,
    set_field,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ._frames import (
    arp_frame,
    checksum,
    eth,
    ipv4,
    ipv4_ok,
    ipv6,
    mac,
    tcp4_frame,
    udp4_frame,
)


def test_tcp_over_ipv4_with_a_vlan_tag() -> None:
    frame = tcp4_frame(vlan=(100, 5), tos=(46 << 2) | 1, sport=4321, dport=443)
    f = parse(frame, 3).fields
    assert f == {
        F.IN_PORT: 3, F.ETH_DST: 0x020000000002, F.ETH_SRC: 0x020000000001,
        F.VLAN_PCP: 5, F.VLAN_VID: 100 | OFPVID_PRESENT, F.ETH_TYPE: 0x0800,
        F.IP_DSCP: 46, F.IP_ECN: 1, F.IP_PROTO: 6, F.IPV4_SRC: 0x0A000001,
        F.IPV4_DST: 0x0A000002, F.TCP_SRC: 4321, F.TCP_DST: 443,
    }


def test_untagged_frame_has_vlan_none_and_no_pcp() -> None:
    f = parse(udp4_frame(), 1).fields
    assert f[F.VLAN_VID] == 0 and F.VLAN_PCP not in f
    assert (f[F.UDP_SRC], f[F.UDP_DST]) == (5353, 53)


def test_qinq_outer_tag_and_inner_type() -> None:
    inner = eth(1, 2, 0x0806, arp_frame()[14:], vlan=(7, 0))
    outer = inner[:12] + struct.pack("!HH", 0x88A8, 9) + inner[12:]
    f = parse(outer, 1).fields
    assert f[F.VLAN_VID] == 9 | OFPVID_PRESENT and f[F.ETH_TYPE] == 0x0806
    assert f[F.ARP_OP] == 1


def test_arp_fields() -> None:
    f = parse(arp_frame(op=2, sha=0xA, spa=0x0B, tha=0xC, tpa=0x0D), 1).fields
    assert (f[F.ARP_OP], f[F.ARP_SHA], f[F.ARP_SPA], f[F.ARP_THA], f[F.ARP_TPA]) == (
        2, 0xA, 0x0B, 0xC, 0x0D)


def test_icmpv4_and_non_first_fragment() -> None:
    icmp = bytes([8, 0, 0, 0, 0, 1, 0, 1])
    f = parse(eth(1, 2, 0x0800, ipv4(1, 2, 1, icmp)), 1).fields
    assert (f[F.ICMPV4_TYPE], f[F.ICMPV4_CODE]) == (8, 0)
    frag = parse(eth(1, 2, 0x0800, ipv4(1, 2, 6, bytes(20), frag=100)), 1)
    assert F.TCP_SRC not in frag.fields and frag.fields[F.IP_PROTO] == 6 and frag.l4 == -1


def test_ipv6_extension_headers_and_neighbour_solicitation() -> None:
    target = 0xFE80 << 112 | 1
    ns = bytes([135, 0, 0, 0, 0, 0, 0, 0]) + target.to_bytes(16, "big")
    ns += bytes([1, 1]) + mac(0x0200000000AA)
    hop = bytes([58, 0]) + bytes(6)  # hop-by-hop options, next header ICMPv6
    f = parse(eth(1, 2, 0x86DD, ipv6(5, 6, 0, hop + ns, tc=(10 << 2) | 2, flabel=0xABCDE)),
              1).fields
    assert f[F.IPV6_SRC] == 5 and f[F.IPV6_DST] == 6 and f[F.IPV6_FLABEL] == 0xABCDE
    assert (f[F.IP_DSCP], f[F.IP_ECN], f[F.IP_PROTO]) == (10, 2, 58)
    assert f[F.IPV6_EXTHDR] == Ipv6ExthdrFlags.HOP
    assert f[F.ICMPV6_TYPE] == 135 and f[F.IPV6_ND_TARGET] == target
    assert f[F.IPV6_ND_SLL] == 0x0200000000AA


def test_mpls_and_pbb() -> None:
    word = (0xABCDE << 12) | (5 << 9) | (1 << 8) | 64
    f = parse(eth(1, 2, 0x8847, struct.pack("!I", word)), 1).fields
    assert (f[F.MPLS_LABEL], f[F.MPLS_TC], f[F.MPLS_BOS]) == (0xABCDE, 5, 1)
    g = parse(eth(1, 2, 0x88E7, bytes([0x80]) + (0x123456).to_bytes(3, "big")), 1).fields
    assert g[F.PBB_ISID] == 0x123456


def test_truncated_headers_keep_what_was_read() -> None:
    frame = tcp4_frame()
    f = parse(frame[:14 + 20 + 2], 1).fields  # the TCP header cut to 2 bytes
    assert f[F.IPV4_DST] == 0x0A000002 and F.TCP_SRC not in f
    assert parse(b"\x01\x02", 9).fields == {F.IN_PORT: 9, F.VLAN_VID: 0}


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 0xFFFFFFFF))
def test_parse_never_raises_on_garbage(data: bytes, port: int) -> None:
    p = parse(data, port)
    assert p.fields[F.IN_PORT] == port
    assert p.key == tuple(p.fields.items())


_ETH_TYPES = st.sampled_from([0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8, 0x8847, 0x88E7])


@settings(max_examples=1000, deadline=None)
@given(_ETH_TYPES, _ETH_TYPES, st.binary(max_size=90))
def test_parse_never_raises_on_garbage_after_real_types(t1: int, t2: int, rest: bytes) -> None:
    frame = mac(1) + mac(2) + struct.pack("!HHH", t1, 0, t2) + rest
    parse(frame, 1)
    parse(frame[:12] + struct.pack("!H", t1) + rest, 1)


def test_set_ipv4_addresses_and_ports_keep_checksums_valid() -> None:
    for frame in (tcp4_frame(), udp4_frame()):
        buf = bytearray(frame)
        p = parse(buf, 1)
        proto_src = F.TCP_SRC if F.TCP_SRC in p.fields else F.UDP_SRC
        for field, value in ((F.IPV4_SRC, 0xC0A80101), (F.IPV4_DST, 0x08080808),
                             (proto_src, 9999), (proto_src + 1, 7), (F.IP_DSCP, 46),
                             (F.IP_ECN, 3)):
            assert set_field(buf, p, field, value)
            p = parse(buf, 1)
            assert p.fields[field] == value
            assert ipv4_ok(bytes(buf)), field


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFF),
       st.integers(0, 0xFFFF), st.binary(max_size=40))
def test_incremental_checksums_equal_recomputed_ones(src: int, dst: int, sport: int,
                                                     dport: int, data: bytes) -> None:
    buf = bytearray(tcp4_frame(data=data))
    for field, value in ((F.IPV4_SRC, src), (F.IPV4_DST, dst), (F.TCP_SRC, sport),
                         (F.TCP_DST, dport)):
        set_field(buf, parse(buf, 1), field, value)
    assert bytes(buf) == tcp4_frame(src, dst, sport, dport, data=data)


def test_udp_without_checksum_stays_without() -> None:
    frame = bytearray(udp4_frame())
    frame[14 + 20 + 6:14 + 20 + 8] = b"\0\0"
    set_field(frame, parse(frame, 1), F.IPV4_SRC, 0x01020304)
    assert frame[14 + 20 + 6:14 + 20 + 8] == b"\0\0"


def test_push_pop_vlan_and_set_vid() -> None:
    frame = bytearray(tcp4_frame())
    assert push_vlan(frame, parse(frame, 1), 0x8100)
    p = parse(frame, 1)
    assert p.fields[F.VLAN_VID] == OFPVID_PRESENT and p.fields[F.ETH_TYPE] == 0x0800
    assert set_field(frame, p, F.VLAN_VID, 42 | OFPVID_PRESENT)
    assert set_field(frame, parse(frame, 1), F.VLAN_PCP, 3)
    assert bytes(frame) == tcp4_frame(vlan=(42, 3))
    assert pop_vlan(frame, parse(frame, 1))
    assert bytes(frame) == tcp4_frame()
    assert not pop_vlan(frame, parse(frame, 1))  # nothing left to pop


def test_set_field_absent_from_the_frame_is_refused() -> None:
    frame = bytearray(arp_frame())
    before = bytes(frame)
    assert not set_field(frame, parse(frame, 1), F.IPV4_SRC, 1)
    assert not set_field(frame, parse(frame, 1), F.VLAN_VID, OFPVID_PRESENT | 5)
    assert bytes(frame) == before


def test_dec_ttl_updates_checksum_and_stops_at_one() -> None:
    frame = bytearray(tcp4_frame(ttl=2))
    assert dec_nw_ttl(frame, parse(frame, 1)) is True
    assert frame[14 + 8] == 1 and checksum(bytes(frame[14:34])) == 0
    assert dec_nw_ttl(frame, parse(frame, 1)) is None


def test_mpls_push_copies_ip_ttl_and_stacks() -> None:
    frame = bytearray(tcp4_frame(ttl=17))
    assert push_mpls(frame, parse(frame, 1), 0x8847)
    p = parse(frame, 1)
    assert (p.fields[F.MPLS_LABEL], p.fields[F.MPLS_BOS], frame[17]) == (0, 1, 17)
    assert set_field(frame, p, F.MPLS_LABEL, 77) and set_field(frame, parse(frame, 1), F.MPLS_TC, 5)
    assert push_mpls(frame, parse(frame, 1), 0x8847)  # a second shim copies the first
    p = parse(frame, 1)
    assert (p.fields[F.MPLS_LABEL], p.fields[F.MPLS_TC], p.fields[F.MPLS_BOS]) == (77, 5, 0)
    frame[17] = 9  # outer TTL 9: copy-in reaches the inner shim, copy-out back
    assert copy_ttl(frame, parse(frame, 1), outwards=False) and frame[21] == 9
    assert pop_mpls(frame, parse(frame, 1), 0x8847)
    assert pop_mpls(frame, parse(frame, 1), 0x0800)
    assert bytes(frame) == tcp4_frame(ttl=17)


def test_copy_ttl_in_to_ipv4_keeps_its_checksum() -> None:
    frame = bytearray(tcp4_frame(ttl=40))
    push_mpls(frame, parse(frame, 1), 0x8847)
    frame[17] = 3
    assert copy_ttl(frame, parse(frame, 1), outwards=False)
    pop_mpls(frame, parse(frame, 1), 0x0800)
    assert frame[22] == 3 and ipv4_ok(bytes(frame))


def test_pbb_push_and_pop() -> None:
    frame = bytearray(udp4_frame())
    assert push_pbb(frame, parse(frame, 1), 0x88E7)
    p = parse(frame, 1)
    assert p.fields[F.ETH_TYPE] == 0x88E7 and p.fields[F.PBB_ISID] == 0
    assert set_field(frame, p, F.PBB_ISID, 0xABCDEF)
    assert parse(frame, 1).fields[F.PBB_ISID] == 0xABCDEF
    assert pop_pbb(frame, parse(frame, 1))
    assert bytes(frame) == udp4_frame()


def test_crc32c_and_sctp_ports() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720's check value
    sctp = struct.pack("!HHII", 1, 2, 0, 0) + bytes(16)
    frame = bytearray(eth(1, 2, 0x0800, ipv4(1, 2, 132, sctp)))
    assert set_field(frame, parse(frame, 1), F.SCTP_DST, 3868)
    seg = bytes(frame[34:])
    assert parse(frame, 1).fields[F.SCTP_DST] == 3868
    zeroed = seg[:8] + bytes(4) + seg[12:]
    assert struct.unpack_from("<I", seg, 8)[0] == crc32c(zeroed)


def test_ipv6_flabel_and_nd_target_set() -> None:
    target = 0xFE80 << 112 | 1
    ns = bytes([135, 0, 0, 0, 0, 0, 0, 0]) + target.to_bytes(16, "big") + bytes([1, 1]) + mac(5)
    frame = bytearray(eth(1, 2, 0x86DD, ipv6(5, 6, 58, ns)))
    for field, value in ((F.IPV6_FLABEL, 0x12345), (F.IPV6_ND_TARGET, 7), (F.IPV6_ND_SLL, 9)):
        assert set_field(frame, parse(frame, 1), field, value)
        assert parse(frame, 1).fields[field] == value
