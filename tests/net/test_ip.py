"""The sans-IO network layer: routing table, forwarding, ICMP errors and hooks, with frames
in and frames out (no devices, no event loop)."""

from __future__ import annotations

from fata.net import checksum, ethernet, icmp, ipv4
from fata.net.ip import IpLayer, refragment
from fata.net.ipv4 import Ipv4Config
from fata.net.routing import RoutingTable

A_HOST, B_HOST = bytes([10, 1, 0, 2]), bytes([10, 2, 0, 2])
A_MAC, B_MAC = b"\x02\0\0\0\0\xa2", b"\x02\0\0\0\0\xb2"
NOW = 100.0


def test_longest_prefix_wins_then_metric() -> None:
    table = RoutingTable()
    default = table.add("0.0.0.0/0", 0, gateway=bytes([10, 0, 0, 1]))
    table.add("10.0.0.0/8", 1)
    table.add("10.2.0.0/16", 2, metric=5)
    best = table.add("10.2.0.0/16", 3, metric=1)
    assert table.lookup(bytes([10, 9, 9, 9])).iface == 1
    assert table.lookup(bytes([10, 2, 3, 4])) is best
    assert table.lookup(bytes([192, 0, 2, 1])) is default
    assert default.next_hop(bytes([192, 0, 2, 1])) == bytes([10, 0, 0, 1])
    table.remove_interface(3)
    assert table.lookup(bytes([10, 2, 3, 4])).iface == 2  # the memo was dropped with it
    table.remove(default)
    assert table.lookup(bytes([192, 0, 2, 1])) is None
    assert str(best) == "10.2.0.0/16 dev 3 metric 1"


def router() -> tuple[IpLayer, list[tuple[int, bytes]]]:
    sent: list[tuple[int, bytes]] = []
    ip = IpLayer(lambda index, pieces, kw: sent.append((index, b"".join(pieces))), 7)
    for i, (mac, cidr) in enumerate(((b"\x02\0\0\0\0\x01", "10.1.0.1/24"),
                                     (b"\x02\0\0\0\0\x02", "10.2.0.1/24"))):
        ip.add_link(f"p{i}", mac, 1500)
        ip.configure(i, Ipv4Config.from_text(cidr))
    ip.links[0].arp.cache[A_HOST] = (A_MAC, NOW + 60)
    ip.links[1].arp.cache[B_HOST] = (B_MAC, NOW + 60)
    ip.forwarding = True
    return ip, sent


def frame(src: bytes, dst: bytes, payload: bytes, *, ttl: int = 64, df: bool = False,
          proto: int = 17, to: bytes = b"\x02\0\0\0\0\x01", from_mac: bytes = A_MAC) -> bytes:
    return ethernet.header(to, from_mac, ethernet.ETHERTYPE_IPV4) + ipv4.header(
        src, dst, proto, len(payload), 99, ttl=ttl, df=df) + payload


def test_forwarding_decrements_ttl_and_keeps_the_checksum_right() -> None:
    ip, sent = router()
    ip.frame_input(ip.links[0], frame(A_HOST, B_HOST, b"x" * 100), False, NOW)
    (index, out), = sent
    assert index == 1 and out[:6] == B_MAC and out[6:12] == ip.links[1].mac
    hdr, payload = ipv4.parse(out[14:])  # parse verifies the header checksum
    assert hdr.ttl == 63 and (hdr.src, hdr.dst) == (A_HOST, B_HOST)
    assert bytes(payload) == b"x" * 100 and ip.counters["ipv4_forwarded"] == 1


def _icmp_back(sent: list[tuple[int, bytes]]) -> tuple[int, int, int, bytes]:
    (index, out), = sent
    hdr, payload = ipv4.parse(out[14:])
    assert hdr.proto == ipv4.PROTO_ICMP and hdr.dst == A_HOST and checksum.verify(payload)
    return index, payload[0], payload[1], bytes(payload)


def test_ttl_one_is_time_exceeded_and_df_over_mtu_is_frag_needed() -> None:
    ip, sent = router()
    ip.frame_input(ip.links[0], frame(A_HOST, B_HOST, b"x" * 8, ttl=1), False, NOW)
    index, kind, code, _ = _icmp_back(sent)
    assert (index, kind, code) == (0, icmp.TYPE_TIME_EXCEEDED, 0)
    sent.clear()
    ip.links[1].mtu = 576
    ip.frame_input(ip.links[0], frame(A_HOST, B_HOST, b"y" * 1000, df=True), False, NOW)
    index, kind, code, message = _icmp_back(sent)
    assert (index, kind, code) == (0, icmp.TYPE_UNREACHABLE, icmp.CODE_FRAG_NEEDED)
    assert int.from_bytes(message[6:8], "big") == 576  # the next-hop MTU (RFC 1191)
    sent.clear()
    ip.frame_input(ip.links[0], frame(A_HOST, B_HOST, b"z" * 1000), False, NOW)
    assert [i for i, _ in sent] == [1, 1] and ip.counters["ipv4_fragmented"] == 1
    parts = [ipv4.parse(out[14:]) for _, out in sent]
    assert b"".join(bytes(p) for _h, p in parts) == b"z" * 1000
    assert [h.mf for h, _p in parts] == [True, False]


def test_no_route_martians_and_forwarding_off() -> None:
    ip, sent = router()
    ip.frame_input(ip.links[0], frame(A_HOST, bytes([192, 0, 2, 9]), b"q"), False, NOW)
    _, kind, code, _ = _icmp_back(sent)
    assert (kind, code) == (icmp.TYPE_UNREACHABLE, icmp.CODE_NET_UNREACHABLE)
    sent.clear()
    ip.frame_input(ip.links[0], frame(bytes([127, 0, 0, 1]), B_HOST, b"q"), False, NOW)
    ip.frame_input(ip.links[0], frame(A_HOST, bytes([224, 0, 0, 5]), b"q"), False, NOW)
    assert not sent and ip.counters["ipv4_martian_drops"] == 2
    ip.forwarding = False
    ip.frame_input(ip.links[0], frame(A_HOST, B_HOST, b"q"), False, NOW)
    assert not sent and ip.counters["ipv4_not_for_us"] == 1


def test_hooks_see_packets_with_their_links_and_may_rewrite_or_drop() -> None:
    ip, sent = router()
    seen: list[tuple[str, int | None, int | None]] = []

    def pre(packet: bytes, inp: int | None, out: int | None) -> bytes | None:
        seen.append(("pre", inp, out))
        return None if packet[-1:] == b"!" else packet

    def post(packet: bytes, inp: int | None, out: int | None) -> bytes:
        seen.append(("post", inp, out))
        rewritten = bytearray(packet)
        rewritten[1] = 0x10  # TOS, then the header checksum, as a NAT would
        rewritten[10:12] = b"\0\0"
        rewritten[10:12] = checksum.checksum(rewritten[:20]).to_bytes(2, "big")
        return bytes(rewritten)

    ip.prerouting.append(pre)
    ip.postrouting.append(post)
    ip.frame_input(ip.links[0], frame(A_HOST, B_HOST, b"drop me!"), False, NOW)
    assert not sent and ip.counters["ipv4_hook_drops"] == 1
    ip.frame_input(ip.links[0], frame(A_HOST, B_HOST, b"pass"), False, NOW)
    hdr, _ = ipv4.parse(sent[0][1][14:])
    assert hdr.tos == 0x10 and hdr.ttl == 63
    assert seen == [("pre", 0, None), ("pre", 0, None), ("post", 0, 1)]


def test_refragmenting_a_fragment_keeps_offsets_and_more_fragments() -> None:
    first = ipv4.header(A_HOST, B_HOST, 17, 1480, 5, mf=True) + bytes(range(256)) * 5 + \
        bytes(200)
    pieces = refragment(first, 600)
    parsed = [ipv4.parse(p) for p in pieces]
    assert [h.frag_offset for h, _ in parsed] == [0, 576, 1152]
    assert all(h.mf for h, _ in parsed)  # the original had more after it
    assert b"".join(bytes(p) for _, p in parsed) == first[20:]


def test_reconfiguring_a_link_replaces_its_own_routes_only() -> None:
    ip, _sent = router()
    static = ip.routes.add("192.0.2.0/24", 1, gateway=bytes([10, 2, 0, 9]))
    ip.configure(1, Ipv4Config.from_text("10.2.0.1/24", "10.2.0.254"))  # a DHCP renewal
    assert ip.routes.lookup(bytes([192, 0, 2, 5])) is static
    assert ip.routes.lookup(bytes([10, 2, 0, 7])).iface == 1
    assert ip.routes.lookup(bytes([8, 8, 8, 8])).gateway == bytes([10, 2, 0, 254])
    ip.configure(1, None)  # the lease is lost: its routes go, the static one stays
    assert ip.routes.lookup(bytes([10, 2, 0, 7])) is None
    assert ip.routes.lookup(bytes([8, 8, 8, 8])) is None
    assert ip.routes.lookup(bytes([192, 0, 2, 5])) is static
