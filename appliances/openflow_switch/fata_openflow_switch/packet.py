"""An Ethernet frame as the OXM field values a flow table matches on (specification 1.3.5,
7.2.3.7), in one pass over the headers.

:func:`parse` never raises: whatever the bytes, a header cut short simply ends the parse,
and the fields found so far are the packet's (a truncated TCP segment still matches on its
addresses).  Besides the values it records where the headers start, so the actions that
rewrite a field (:mod:`.rewrite`) know where it is without parsing again.

Values are plain ``int``s keyed by :class:`~.ofp_const.OxmField` number, because the matcher
compares ``value & mask`` with integers; ``VLAN_VID`` is always present, ``OFPVID_NONE`` (0)
for an untagged frame and the VID with ``OFPVID_PRESENT`` for a tagged one, as Table 12
wants for matching "no VLAN".
"""

from __future__ import annotations

from .ofp_const import OFPVID_PRESENT, Ipv6ExthdrFlags, OxmField
from .oxm import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    ETH_MPLS,
    ETH_MPLS_MCAST,
    ETH_PBB,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    ND_ADVERT,
    ND_SOLICIT,
)

VLAN_TPIDS = frozenset({0x8100, 0x88A8})
"""The tag protocol IDs of 802.1Q and 802.1ad: a frame's VLAN tags (the outer one is what
``VLAN_VID``/``VLAN_PCP`` describe; ``ETH_TYPE`` is the type after every tag)."""

_F = OxmField
_X = Ipv6ExthdrFlags
_IPV6_EXT = {0: _X.HOP, 43: _X.ROUTER, 44: _X.FRAG, 60: _X.DEST, 51: _X.AUTH}
"""IPv6 extension headers walked over, and the ``IPV6_EXTHDR`` bit each one sets."""
_MAX_EXT = 8
"""Extension headers followed before giving up (a chain of zero-length headers ends)."""


class Parsed:
    """One frame's fields and header offsets.  ``key`` is the fields as a tuple, in the fixed
    order the parse found them, so equal frames (for matching) have equal keys and the
    exact-match cache can use it; ``l3``/``l4`` are -1 when there is no such header (or, for
    ``l4``, when the frame is a non-first IPv4 fragment or an IPv6 fragment)."""

    __slots__ = ("_key", "fields", "l3", "l4", "vlan")

    def __init__(self, fields: dict[int, int], vlan: int, l3: int, l4: int) -> None:
        self.fields = fields
        self.vlan = vlan
        self.l3 = l3
        self.l4 = l4
        self._key: tuple[tuple[int, int], ...] | None = None

    @property
    def key(self) -> tuple[tuple[int, int], ...]:
        if self._key is None:
            self._key = tuple(self.fields.items())
        return self._key

    def set(self, field: int, value: int) -> None:
        """Change a field that is pipeline state rather than bytes (``TUNNEL_ID``)."""
        self.fields[field] = value
        self._key = None

    @property
    def eth_type(self) -> int | None:
        return self.fields.get(_F.ETH_TYPE)


def _u16(b: bytes | bytearray, i: int) -> int:
    return (b[i] << 8) | b[i + 1]


def _int(b: bytes | bytearray, i: int, n: int) -> int:
    return int.from_bytes(b[i:i + n], "big")


def parse(frame: bytes | bytearray, in_port: int) -> Parsed:
    """The fields of ``frame`` received on ``in_port``."""
    n = len(frame)
    f: dict[int, int] = {_F.IN_PORT: in_port}
    if n < 14:
        f[_F.VLAN_VID] = 0
        return Parsed(f, -1, -1, -1)
    f[_F.ETH_DST] = _int(frame, 0, 6)
    f[_F.ETH_SRC] = _int(frame, 6, 6)
    eth_type = _u16(frame, 12)
    off = 14
    vlan = -1
    vid = 0
    while eth_type in VLAN_TPIDS and off + 4 <= n:
        tci = _u16(frame, off)
        if vlan < 0:
            vlan = off
            vid = (tci & 0xFFF) | OFPVID_PRESENT
            f[_F.VLAN_PCP] = tci >> 13
        eth_type = _u16(frame, off + 2)
        off += 4
    f[_F.VLAN_VID] = vid
    f[_F.ETH_TYPE] = eth_type
    l4 = -1
    if eth_type == ETH_IPV4:
        l4 = _ipv4(frame, off, f)
    elif eth_type == ETH_IPV6:
        l4 = _ipv6(frame, off, f)
    elif eth_type == ETH_ARP:
        _arp(frame, off, f)
    elif eth_type in (ETH_MPLS, ETH_MPLS_MCAST):
        if off + 4 <= n:
            word = _int(frame, off, 4)
            f[_F.MPLS_LABEL] = word >> 12
            f[_F.MPLS_TC] = (word >> 9) & 7
            f[_F.MPLS_BOS] = (word >> 8) & 1
    elif eth_type == ETH_PBB:
        if off + 4 <= n:
            f[_F.PBB_ISID] = _int(frame, off + 1, 3)
    return Parsed(f, vlan, off, l4)


def _ipv4(b: bytes | bytearray, off: int, f: dict[int, int]) -> int:
    if off + 20 > len(b) or b[off] >> 4 != 4:
        return -1
    ihl = (b[off] & 0xF) * 4
    tos = b[off + 1]
    proto = b[off + 9]
    f[_F.IP_DSCP] = tos >> 2
    f[_F.IP_ECN] = tos & 3
    f[_F.IP_PROTO] = proto
    f[_F.IPV4_SRC] = _int(b, off + 12, 4)
    f[_F.IPV4_DST] = _int(b, off + 16, 4)
    if ihl < 20 or _u16(b, off + 6) & 0x1FFF:  # bad header length, or not the first fragment
        return -1
    return _l4(b, off + ihl, proto, f)


def _ipv6(b: bytes | bytearray, off: int, f: dict[int, int]) -> int:
    if off + 40 > len(b) or b[off] >> 4 != 6:
        return -1
    word = _int(b, off, 4)
    tc = (word >> 20) & 0xFF
    f[_F.IP_DSCP] = tc >> 2
    f[_F.IP_ECN] = tc & 3
    f[_F.IPV6_SRC] = _int(b, off + 8, 16)
    f[_F.IPV6_DST] = _int(b, off + 24, 16)
    f[_F.IPV6_FLABEL] = word & 0xFFFFF
    nxt = b[off + 6]
    pos = off + 40
    flags = 0
    fragment = False
    for _ in range(_MAX_EXT):
        bit = _IPV6_EXT.get(nxt)
        if bit is None or pos + 8 > len(b):
            break
        flags |= bit
        if nxt == 44:
            fragment = fragment or bool(_u16(b, pos + 2) & 0xFFF8)
            size = 8
        elif nxt == 51:
            size = (b[pos + 1] + 2) * 4
        else:
            size = (b[pos + 1] + 1) * 8
        nxt = b[pos]
        pos += size
    if nxt == 59:
        flags |= _X.NONEXT
    elif nxt == 50:
        flags |= _X.ESP
    f[_F.IPV6_EXTHDR] = flags
    f[_F.IP_PROTO] = nxt
    if fragment or pos > len(b):
        return -1
    return _l4(b, pos, nxt, f)


def _l4(b: bytes | bytearray, off: int, proto: int, f: dict[int, int]) -> int:
    n = len(b)
    if proto in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP):
        if off + 4 > n:
            return -1
        src, dst = _u16(b, off), _u16(b, off + 2)
        if proto == IPPROTO_TCP:
            f[_F.TCP_SRC], f[_F.TCP_DST] = src, dst
        elif proto == IPPROTO_UDP:
            f[_F.UDP_SRC], f[_F.UDP_DST] = src, dst
        else:
            f[_F.SCTP_SRC], f[_F.SCTP_DST] = src, dst
        return off
    if proto == IPPROTO_ICMP:
        if off + 2 > n:
            return -1
        f[_F.ICMPV4_TYPE], f[_F.ICMPV4_CODE] = b[off], b[off + 1]
        return off
    if proto == IPPROTO_ICMPV6:
        if off + 2 > n:
            return -1
        icmp_type = b[off]
        f[_F.ICMPV6_TYPE], f[_F.ICMPV6_CODE] = icmp_type, b[off + 1]
        if icmp_type in (ND_SOLICIT, ND_ADVERT) and off + 24 <= n:
            f[_F.IPV6_ND_TARGET] = _int(b, off + 8, 16)
            _nd_options(b, off + 24, 1 if icmp_type == ND_SOLICIT else 2, f)
        return off
    return -1


def _nd_options(b: bytes | bytearray, pos: int, wanted: int, f: dict[int, int]) -> None:
    """The source (solicitation) or target (advertisement) link-layer address option; 0
    when the message has none, so a match on it can still be decided."""
    field = _F.IPV6_ND_SLL if wanted == 1 else _F.IPV6_ND_TLL
    f[field] = 0
    while pos + 8 <= len(b):
        opt, size = b[pos], b[pos + 1] * 8
        if size == 0:
            return
        if opt == wanted:
            f[field] = _int(b, pos + 2, 6)
            return
        pos += size


def _arp(b: bytes | bytearray, off: int, f: dict[int, int]) -> None:
    # Ethernet/IPv4 ARP only: the fields of Table 12 are defined for that layout
    if off + 28 > len(b) or _u16(b, off) != 1 or _u16(b, off + 2) != ETH_IPV4:
        return
    if b[off + 4] != 6 or b[off + 5] != 4:
        return
    f[_F.ARP_OP] = _u16(b, off + 6)
    f[_F.ARP_SHA] = _int(b, off + 8, 6)
    f[_F.ARP_SPA] = _int(b, off + 14, 4)
    f[_F.ARP_THA] = _int(b, off + 18, 6)
    f[_F.ARP_TPA] = _int(b, off + 24, 4)
