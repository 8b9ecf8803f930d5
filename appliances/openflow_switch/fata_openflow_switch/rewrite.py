"""The actions that change a frame's bytes: set-field, push/pop VLAN, TTL decrements.

Each works in place on a ``bytearray`` using the header offsets :func:`.packet.parse`
recorded, and keeps the frame valid on the wire: a changed IPv4 header gets its checksum
updated, and a changed address or port the TCP, UDP or ICMP checksum that covers it, by the
incremental update of RFC 1624 (the rest of the segment need not be there).  A function
returns False when the frame has no such field (the action is then a no-op, as 5.12 leaves
it to the switch), and the caller parses the frame again after a change.
"""

from __future__ import annotations

from .ofp_const import OxmField
from .oxm import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    ETH_MPLS,
    ETH_MPLS_MCAST,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
)
from .packet import Parsed

_F = OxmField


def _adjust(frame: bytearray, at: int, old: bytes, new: bytes, udp: bool = False) -> None:
    """RFC 1624 eqn. 3 for the 16-bit checksum at ``at``: ``old`` became ``new`` (an even
    number of bytes at an even offset in what the checksum covers)."""
    if at < 0 or at + 2 > len(frame):
        return
    csum = (frame[at] << 8) | frame[at + 1]
    if udp and csum == 0:  # a UDP datagram over IPv4 without a checksum stays without
        return
    s = ~csum & 0xFFFF
    for i in range(0, len(old), 2):
        s += (~((old[i] << 8) | old[i + 1]) & 0xFFFF) + ((new[i] << 8) | new[i + 1])
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    result = ~s & 0xFFFF
    if udp and result == 0:
        result = 0xFFFF
    frame[at], frame[at + 1] = result >> 8, result & 0xFF


def _l4_csum(p: Parsed) -> tuple[int, bool]:
    """Where the transport checksum covering the pseudo-header is, and whether it is UDP's
    (-1 when there is none in the frame)."""
    if p.l4 < 0:
        return -1, False
    proto = p.fields.get(_F.IP_PROTO)
    if proto == IPPROTO_TCP:
        return p.l4 + 16, False
    if proto == IPPROTO_UDP:
        return p.l4 + 6, p.eth_type == ETH_IPV4
    if proto == IPPROTO_ICMPV6:
        return p.l4 + 2, False
    return -1, False


def _replace(frame: bytearray, at: int, new: bytes) -> bytes | None:
    if at < 0 or at + len(new) > len(frame):
        return None
    old = bytes(frame[at:at + len(new)])
    frame[at:at + len(new)] = new
    return old


def _ip_word(frame: bytearray, p: Parsed, value: int, dscp: bool) -> bool:
    """DSCP or ECN: in IPv4's TOS byte (header checksum updated) or IPv6's traffic class."""
    l3 = p.l3
    if p.eth_type == ETH_IPV4 and _F.IP_DSCP in p.fields:
        tos = frame[l3 + 1]
        tos = (value << 2) | (tos & 3) if dscp else (tos & 0xFC) | value
        old = _replace(frame, l3, bytes([frame[l3], tos]))
        if old is not None:
            _adjust(frame, l3 + 10, old, bytes(frame[l3:l3 + 2]))
        return True
    if p.eth_type == ETH_IPV6 and _F.IP_DSCP in p.fields:
        word = int.from_bytes(frame[l3:l3 + 4], "big")
        tc = (word >> 20) & 0xFF
        tc = (value << 2) | (tc & 3) if dscp else (tc & 0xFC) | value
        word = (word & ~(0xFF << 20)) | (tc << 20)
        frame[l3:l3 + 4] = word.to_bytes(4, "big")
        return True
    return False


def _address(frame: bytearray, p: Parsed, offset: int, size: int, value: int) -> bool:
    old = _replace(frame, p.l3 + offset, value.to_bytes(size, "big"))
    if old is None:
        return False
    new = value.to_bytes(size, "big")
    if p.eth_type == ETH_IPV4:
        _adjust(frame, p.l3 + 10, old, new)
    at, udp = _l4_csum(p)
    _adjust(frame, at, old, new, udp)
    return True


def _port(frame: bytearray, p: Parsed, offset: int, value: int) -> bool:
    old = _replace(frame, p.l4 + offset, value.to_bytes(2, "big"))
    if old is None:
        return False
    at, udp = _l4_csum(p)
    _adjust(frame, at, old, value.to_bytes(2, "big"), udp)
    return True


def _icmp(frame: bytearray, p: Parsed, type_: bool, value: int) -> bool:
    l4 = p.l4
    if l4 < 0 or l4 + 4 > len(frame):
        return False
    old = bytes(frame[l4:l4 + 2])
    frame[l4 if type_ else l4 + 1] = value
    _adjust(frame, l4 + 2, old, bytes(frame[l4:l4 + 2]))
    return True


def _mpls(frame: bytearray, p: Parsed, shift: int, width: int, value: int) -> bool:
    at = p.l3
    word = int.from_bytes(frame[at:at + 4], "big")
    mask = ((1 << width) - 1) << shift
    frame[at:at + 4] = ((word & ~mask) | (value << shift)).to_bytes(4, "big")
    return True


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes | bytearray) -> int:
    """CRC-32C (Castagnoli), SCTP's checksum (RFC 9260 appendix A)."""
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _sctp_port(frame: bytearray, p: Parsed, offset: int, value: int) -> bool:
    """An SCTP port; the CRC32c covers the whole packet, so it is computed again (from the
    IP payload to the end of the frame, which is the packet when nothing pads it)."""
    l4 = p.l4
    if l4 < 0 or l4 + 12 > len(frame):
        return False
    frame[l4 + offset:l4 + offset + 2] = value.to_bytes(2, "big")
    frame[l4 + 8:l4 + 12] = bytes(4)
    frame[l4 + 8:l4 + 12] = crc32c(frame[l4:]).to_bytes(4, "little")
    return True


def _nd_option_at(frame: bytearray, p: Parsed, wanted: int) -> int:
    pos = p.l4 + 24
    while pos + 8 <= len(frame):
        size = frame[pos + 1] * 8
        if size == 0:
            break
        if frame[pos] == wanted:
            return pos + 2
        pos += size
    return -1


def _icmpv6_bytes(frame: bytearray, p: Parsed, at: int, new: bytes) -> bool:
    """ND target and link-layer addresses: even sizes at even offsets in the message."""
    old = _replace(frame, at, new)
    if old is None:
        return False
    _adjust(frame, p.l4 + 2, old, new)
    return True


def _ip_proto(frame: bytearray, p: Parsed, value: int) -> bool:
    """The protocol number (IPv4) or the last next-header (IPv6 without extension headers);
    the pseudo-header's protocol word and IPv4's header checksum follow."""
    at_csum, udp = _l4_csum(p)
    if p.eth_type == ETH_IPV4:
        old = bytes(frame[p.l3 + 8:p.l3 + 10])
        frame[p.l3 + 9] = value
        _adjust(frame, p.l3 + 10, old, bytes(frame[p.l3 + 8:p.l3 + 10]))
    elif p.eth_type == ETH_IPV6 and p.fields.get(_F.IPV6_EXTHDR, 0) == 0:
        frame[p.l3 + 6] = value
    else:
        return False
    _adjust(frame, at_csum, bytes([0, p.fields[_F.IP_PROTO]]), bytes([0, value]), udp)
    return True


SETTABLE: frozenset[int] = frozenset(set(OxmField) - {_F.IN_PORT, _F.IN_PHY_PORT, _F.METADATA,
                                                      _F.IPV6_EXTHDR})
"""The fields :func:`set_field` can write: every packet header field but ``IPV6_EXTHDR``
(a summary of the headers present, not a field).  ``TUNNEL_ID`` is the packet's pipeline
state, which the switch sets itself (:meth:`.packet.Parsed.set`)."""


def set_field(frame: bytearray, p: Parsed, field: int, value: int) -> bool:
    """Write ``value`` into ``field`` of the frame ``p`` describes; False when the frame has
    no such field (its prerequisite header is missing) or the field is not in
    :data:`SETTABLE`."""
    if field not in p.fields or field not in SETTABLE:
        return False
    et = p.eth_type
    if field == _F.ETH_DST:
        frame[0:6] = value.to_bytes(6, "big")
    elif field == _F.ETH_SRC:
        frame[6:12] = value.to_bytes(6, "big")
    elif field == _F.ETH_TYPE:
        frame[p.l3 - 2:p.l3] = value.to_bytes(2, "big")
    elif field in (_F.VLAN_VID, _F.VLAN_PCP):
        if p.vlan < 0:
            return False
        tci = (frame[p.vlan] << 8) | frame[p.vlan + 1]
        if field == _F.VLAN_VID:
            tci = (tci & 0xF000) | (value & 0xFFF)  # with or without OFPVID_PRESENT
        else:
            tci = (tci & 0x1FFF) | (value << 13)
        frame[p.vlan:p.vlan + 2] = tci.to_bytes(2, "big")
    elif field in (_F.IP_DSCP, _F.IP_ECN):
        return _ip_word(frame, p, value, field == _F.IP_DSCP)
    elif field in (_F.IPV4_SRC, _F.IPV4_DST):
        return _address(frame, p, 12 if field == _F.IPV4_SRC else 16, 4, value)
    elif field in (_F.IPV6_SRC, _F.IPV6_DST):
        return _address(frame, p, 8 if field == _F.IPV6_SRC else 24, 16, value)
    elif field in (_F.TCP_SRC, _F.UDP_SRC):
        return _port(frame, p, 0, value)
    elif field in (_F.TCP_DST, _F.UDP_DST):
        return _port(frame, p, 2, value)
    elif field in (_F.ICMPV4_TYPE, _F.ICMPV6_TYPE):
        return _icmp(frame, p, True, value)
    elif field in (_F.ICMPV4_CODE, _F.ICMPV6_CODE):
        return _icmp(frame, p, False, value)
    elif field == _F.IP_PROTO:
        return _ip_proto(frame, p, value)
    elif field == _F.IPV6_FLABEL:
        word = int.from_bytes(frame[p.l3:p.l3 + 4], "big")
        frame[p.l3:p.l3 + 4] = ((word & ~0xFFFFF) | value).to_bytes(4, "big")
    elif field in (_F.SCTP_SRC, _F.SCTP_DST):
        return _sctp_port(frame, p, 0 if field == _F.SCTP_SRC else 2, value)
    elif field == _F.IPV6_ND_TARGET:
        return _icmpv6_bytes(frame, p, p.l4 + 8, value.to_bytes(16, "big"))
    elif field in (_F.IPV6_ND_SLL, _F.IPV6_ND_TLL):
        at = _nd_option_at(frame, p, 1 if field == _F.IPV6_ND_SLL else 2)
        return at >= 0 and _icmpv6_bytes(frame, p, at, value.to_bytes(6, "big"))
    elif field == _F.PBB_ISID:
        frame[p.l3 + 1:p.l3 + 4] = value.to_bytes(3, "big")
    elif field == _F.TUNNEL_ID:
        return False  # pipeline state, not bytes: the switch sets it on the parse
    elif et == ETH_ARP:
        offset, size = {_F.ARP_OP: (6, 2), _F.ARP_SHA: (8, 6), _F.ARP_SPA: (14, 4),
                        _F.ARP_THA: (18, 6), _F.ARP_TPA: (24, 4)}[field]
        frame[p.l3 + offset:p.l3 + offset + size] = value.to_bytes(size, "big")
    elif et in (ETH_MPLS, ETH_MPLS_MCAST):
        shift, width = {_F.MPLS_LABEL: (12, 20), _F.MPLS_TC: (9, 3), _F.MPLS_BOS: (8, 1)}[field]
        return _mpls(frame, p, shift, width, value)
    return True


def push_vlan(frame: bytearray, p: Parsed, tpid: int) -> bool:
    """A new outer tag after the source address (5.12.1: its VID and PCP copied from the
    tag it covers, 0 when there is none)."""
    if len(frame) < 14:
        return False
    tci = ((frame[p.vlan] << 8) | frame[p.vlan + 1]) if p.vlan >= 0 else 0
    frame[12:12] = tpid.to_bytes(2, "big") + tci.to_bytes(2, "big")
    return True


def pop_vlan(frame: bytearray, p: Parsed) -> bool:
    """Remove the outer tag (the frame's type then follows the source address)."""
    if p.vlan != 14:
        return False
    del frame[12:16]
    return True


def dec_nw_ttl(frame: bytearray, p: Parsed) -> bool | None:
    """IPv4's TTL (checksum updated) or IPv6's hop limit down by one; None when it was
    already 0 or 1, so the packet is invalid (``OFPR_INVALID_TTL``); False with no IP."""
    if p.eth_type == ETH_IPV4 and _F.IPV4_SRC in p.fields:
        ttl = frame[p.l3 + 8]
        if ttl <= 1:
            return None
        old = bytes(frame[p.l3 + 8:p.l3 + 10])
        frame[p.l3 + 8] = ttl - 1
        _adjust(frame, p.l3 + 10, old, bytes(frame[p.l3 + 8:p.l3 + 10]))
        return True
    if p.eth_type == ETH_IPV6 and _F.IPV6_SRC in p.fields:
        if frame[p.l3 + 7] <= 1:
            return None
        frame[p.l3 + 7] -= 1
        return True
    return False


def set_nw_ttl(frame: bytearray, p: Parsed, ttl: int) -> bool:
    if p.eth_type == ETH_IPV4 and _F.IPV4_SRC in p.fields:
        old = bytes(frame[p.l3 + 8:p.l3 + 10])
        frame[p.l3 + 8] = ttl
        _adjust(frame, p.l3 + 10, old, bytes(frame[p.l3 + 8:p.l3 + 10]))
        return True
    if p.eth_type == ETH_IPV6 and _F.IPV6_SRC in p.fields:
        frame[p.l3 + 7] = ttl
        return True
    return False


def push_mpls(frame: bytearray, p: Parsed, ethertype: int) -> bool:
    """A new outermost MPLS shim after the Ethernet and VLAN headers (5.12.1: label, TC and
    TTL copied from the shim it covers; over IP, label and TC 0, bottom of stack, the IP
    TTL)."""
    if p.l3 < 14:
        return False
    if p.eth_type in (ETH_MPLS, ETH_MPLS_MCAST):
        shim = int.from_bytes(frame[p.l3:p.l3 + 4], "big") & ~0x100
    else:
        shim = 0x100 | _ip_ttl(frame, p)
    frame[p.l3 - 2:p.l3] = ethertype.to_bytes(2, "big")
    frame[p.l3:p.l3] = shim.to_bytes(4, "big")
    return True


def pop_mpls(frame: bytearray, p: Parsed, ethertype: int) -> bool:
    """Remove the outermost shim; ``ethertype`` is what follows it."""
    if p.eth_type not in (ETH_MPLS, ETH_MPLS_MCAST) or p.l3 + 4 > len(frame):
        return False
    frame[p.l3 - 2:p.l3] = ethertype.to_bytes(2, "big")
    del frame[p.l3:p.l3 + 4]
    return True


def push_pbb(frame: bytearray, p: Parsed, ethertype: int) -> bool:
    """802.1ah encapsulation: a backbone header (addresses copied from the customer's),
    ``ethertype`` and an I-TAG (I-SID copied from an I-TAG the frame has, else 0) before the
    whole customer frame."""
    if len(frame) < 14:
        return False
    isid = p.fields.get(_F.PBB_ISID, 0)
    frame[0:0] = bytes(frame[0:12]) + ethertype.to_bytes(2, "big") + isid.to_bytes(4, "big")
    return True


def pop_pbb(frame: bytearray, p: Parsed) -> bool:
    """Remove the backbone header and I-TAG: the customer frame is left."""
    if _F.PBB_ISID not in p.fields or p.l3 + 4 + 14 > len(frame):
        return False
    del frame[0:p.l3 + 4]
    return True


def _ip_ttl(frame: bytearray, p: Parsed) -> int:
    if p.eth_type == ETH_IPV4 and _F.IPV4_SRC in p.fields:
        return frame[p.l3 + 8]
    if p.eth_type == ETH_IPV6 and _F.IPV6_SRC in p.fields:
        return frame[p.l3 + 7]
    return 0


def _inner_ttl_at(frame: bytearray, p: Parsed) -> tuple[int, int]:
    """Where the TTL under the outermost MPLS shim is: (offset, IPv4 header start or -1)."""
    nxt = p.l3 + 4
    if frame[p.l3 + 2] & 1 == 0:
        return (nxt + 3 if nxt + 4 <= len(frame) else -1), -1
    if nxt + 20 <= len(frame) and frame[nxt] >> 4 == 4:
        return nxt + 8, nxt
    if nxt + 40 <= len(frame) and frame[nxt] >> 4 == 6:
        return nxt + 7, -1
    return -1, -1


def copy_ttl(frame: bytearray, p: Parsed, outwards: bool) -> bool:
    """Copy-TTL-out (next-to-outermost to the outermost MPLS TTL) or -in (the reverse, an
    inner IPv4 header's checksum updated)."""
    if p.eth_type not in (ETH_MPLS, ETH_MPLS_MCAST) or p.l3 + 4 > len(frame):
        return False
    at, ipv4_at = _inner_ttl_at(frame, p)
    if at < 0:
        return False
    if outwards:
        frame[p.l3 + 3] = frame[at]
        return True
    start = at - (at - ipv4_at) % 2 if ipv4_at >= 0 else at
    old = bytes(frame[start:start + 2])
    frame[at] = frame[p.l3 + 3]
    if ipv4_at >= 0:
        _adjust(frame, ipv4_at + 10, old, bytes(frame[start:start + 2]))
    return True


def set_mpls_ttl(frame: bytearray, p: Parsed, ttl: int) -> bool:
    if p.eth_type not in (ETH_MPLS, ETH_MPLS_MCAST) or p.l3 + 4 > len(frame):
        return False
    frame[p.l3 + 3] = ttl
    return True


def dec_mpls_ttl(frame: bytearray, p: Parsed) -> bool | None:
    """As :func:`dec_nw_ttl`, for the outermost MPLS TTL."""
    if p.eth_type not in (ETH_MPLS, ETH_MPLS_MCAST) or p.l3 + 4 > len(frame):
        return False
    if frame[p.l3 + 3] <= 1:
        return None
    frame[p.l3 + 3] -= 1
    return True
