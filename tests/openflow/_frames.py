"""Frames for the switch tests, built field by field with ``struct`` (independently of the
code under test), and a full Internet checksum to verify the switch's incremental ones."""

from __future__ import annotations

import struct


def mac(n: int) -> bytes:
    return n.to_bytes(6, "big")


def checksum(data: bytes) -> int:
    """RFC 1071 over ``data`` (padded with a zero byte when odd)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(dst: int, src: int, eth_type: int, payload: bytes, vlan: tuple[int, int] | None = None,
        tpid: int = 0x8100) -> bytes:
    """An Ethernet frame; ``vlan`` is (vid, pcp) for one tag."""
    tag = b"" if vlan is None else struct.pack("!HH", tpid, (vlan[1] << 13) | vlan[0])
    return mac(dst) + mac(src) + tag + struct.pack("!H", eth_type) + payload


def ipv4(src: int, dst: int, proto: int, payload: bytes, tos: int = 0, ttl: int = 64,
         frag: int = 0) -> bytes:
    header = struct.pack("!BBHHHBBHII", 0x45, tos, 20 + len(payload), 1, frag, ttl, proto, 0,
                         src, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ipv6(src: int, dst: int, nxt: int, payload: bytes, tc: int = 0, flabel: int = 0,
         hlim: int = 64) -> bytes:
    word = (6 << 28) | (tc << 20) | flabel
    return (struct.pack("!IHBB", word, len(payload), nxt, hlim) + src.to_bytes(16, "big")
            + dst.to_bytes(16, "big") + payload)


def _pseudo4(src: int, dst: int, proto: int, length: int) -> bytes:
    return struct.pack("!IIBBH", src, dst, 0, proto, length)


def tcp(sport: int, dport: int, src: int, dst: int, data: bytes = b"") -> bytes:
    """A TCP segment with its checksum over the IPv4 pseudo-header of ``src``/``dst``."""
    seg = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x02, 8192, 0, 0) + data
    c = checksum(_pseudo4(src, dst, 6, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(sport: int, dport: int, src: int, dst: int, data: bytes = b"") -> bytes:
    dgram = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    c = checksum(_pseudo4(src, dst, 17, len(dgram)) + dgram) or 0xFFFF
    return dgram[:6] + struct.pack("!H", c) + dgram[8:]


def tcp4_frame(src: int = 0x0A000001, dst: int = 0x0A000002, sport: int = 1234,
               dport: int = 80, vlan: tuple[int, int] | None = None, tos: int = 0,
               ttl: int = 64, data: bytes = b"hello") -> bytes:
    return eth(0x020000000002, 0x020000000001, 0x0800,
               ipv4(src, dst, 6, tcp(sport, dport, src, dst, data), tos=tos, ttl=ttl), vlan)


def udp4_frame(src: int = 0x0A000001, dst: int = 0x0A000002, sport: int = 5353,
               dport: int = 53) -> bytes:
    return eth(0x020000000002, 0x020000000001, 0x0800,
               ipv4(src, dst, 17, udp(sport, dport, src, dst, b"query")))


def arp_frame(op: int = 1, sha: int = 0x020000000001, spa: int = 0x0A000001,
              tha: int = 0, tpa: int = 0x0A000002) -> bytes:
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac(sha) + struct.pack("!I", spa)
    body += mac(tha) + struct.pack("!I", tpa)
    return eth(0xFFFFFFFFFFFF, sha, 0x0806, body)


def ipv4_ok(frame: bytes, l3: int = 14) -> bool:
    """Whether the IPv4 header checksum and the TCP/UDP checksum of ``frame`` verify."""
    ihl = (frame[l3] & 0xF) * 4
    if checksum(frame[l3:l3 + ihl]) != 0:
        return False
    total = struct.unpack_from("!H", frame, l3 + 2)[0]
    proto = frame[l3 + 9]
    src, dst = struct.unpack_from("!II", frame, l3 + 12)
    seg = frame[l3 + ihl:l3 + total]
    if proto == 17 and struct.unpack_from("!H", seg, 6)[0] == 0:
        return True
    return checksum(_pseudo4(src, dst, proto, len(seg)) + seg) == 0
