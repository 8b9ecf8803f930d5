"""IPv4 (RFC 791): header parsing and building, routing, fragmentation and reassembly.

Options are skipped (their length is honoured, their content ignored), which is the safe
reading of RFC 1122 for a host that neither routes nor records routes.  Reassembly follows
RFC 815's hole list, bounded in memory (bytes held, datagrams in progress) and in time.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from fata.net import checksum
from fata.net.errors import ParseError

HEADER = struct.Struct("!BBHHHBBH4s4s")
HEADER_LEN = 20
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
FLAG_DF = 0x4000
FLAG_MF = 0x2000
MAX_DATAGRAM = 65535
DEFAULT_TTL = 64
ANY = b"\0\0\0\0"
LIMITED_BROADCAST = b"\xff\xff\xff\xff"


def addr(text: str) -> bytes:
    """Dotted quad to 4 bytes; raises ``ValueError``."""
    return ipaddress.IPv4Address(text).packed


def ntoa(raw: bytes) -> str:
    """4 bytes to a dotted quad."""
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"


@dataclass(slots=True)
class Ipv4Header:
    """The fields of a parsed header that the layers above use."""

    header_len: int
    tos: int
    total_len: int
    ident: int
    df: bool
    mf: bool
    frag_offset: int  # in bytes
    ttl: int
    proto: int
    src: bytes
    dst: bytes


def parse(packet: bytes | memoryview, verify: bool = True) -> tuple[Ipv4Header, memoryview]:
    """Parse a header and return it with the payload (Ethernet padding removed)."""
    if len(packet) < HEADER_LEN:
        raise ParseError("ipv4_short")
    vihl, tos, total, ident, frag, ttl, proto, _csum, src, dst = HEADER.unpack_from(packet)
    if vihl >> 4 != 4:
        raise ParseError("ipv4_bad_version", str(vihl >> 4))
    hlen = (vihl & 0xF) * 4
    if hlen < HEADER_LEN or total < hlen or total > len(packet):
        raise ParseError("ipv4_bad_length", f"ihl={hlen} total={total} have={len(packet)}")
    view = memoryview(packet)
    if verify and not checksum.verify(view[:hlen]):
        raise ParseError("ipv4_bad_checksum")
    if frag & 0x8000:
        raise ParseError("ipv4_reserved_flag")
    hdr = Ipv4Header(hlen, tos, total, ident, bool(frag & FLAG_DF), bool(frag & FLAG_MF),
                     (frag & 0x1FFF) * 8, ttl, proto, src, dst)
    if hdr.frag_offset + total - hlen > MAX_DATAGRAM:
        raise ParseError("ipv4_fragment_too_far")
    return hdr, view[hlen:total]


def header(src: bytes, dst: bytes, proto: int, payload_len: int, ident: int, *,
           ttl: int = DEFAULT_TTL, df: bool = False, mf: bool = False, frag_offset: int = 0,
           tos: int = 0) -> bytes:
    """A 20-byte header with its checksum."""
    frag = (FLAG_DF if df else 0) | (FLAG_MF if mf else 0) | (frag_offset >> 3)
    raw = HEADER.pack(0x45, tos, HEADER_LEN + payload_len, ident, frag, ttl, proto, 0, src, dst)
    csum = checksum.checksum(raw)
    return raw[:10] + csum.to_bytes(2, "big") + raw[12:]


def fragment(src: bytes, dst: bytes, proto: int, payload: bytes | memoryview, ident: int,
             mtu: int, *, ttl: int = DEFAULT_TTL) -> list[bytes]:
    """Split one datagram into fragments that each fit ``mtu`` (RFC 791 §3.2)."""
    step = ((mtu - HEADER_LEN) // 8) * 8
    if step <= 0:
        raise ValueError(f"MTU {mtu} too small to fragment")
    out = []
    view = memoryview(payload)
    for offset in range(0, len(view), step):
        chunk = view[offset:offset + step]
        more = offset + step < len(view)
        out.append(header(src, dst, proto, len(chunk), ident, ttl=ttl, mf=more,
                          frag_offset=offset) + bytes(chunk))
    return out


@dataclass(slots=True)
class _Datagram:
    expires: float
    holes: list[tuple[int, int]] = field(default_factory=lambda: [(0, 1 << 30)])
    pieces: list[tuple[int, bytes]] = field(default_factory=list)
    size: int = 0
    total: int | None = None


class Reassembler:
    """Puts fragments back together (RFC 815), within memory and time limits."""

    def __init__(self, *, timeout: float = 30.0, max_bytes: int = 4 << 20,
                 max_datagrams: int = 64) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_datagrams = max_datagrams
        self.held = 0
        self._pending: dict[tuple[bytes, bytes, int, int], _Datagram] = {}
        self.counters: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _drop(self, key: tuple[bytes, bytes, int, int], counter: str) -> None:
        dgram = self._pending.pop(key)
        self.held -= dgram.size
        self._count(counter)

    def add(self, hdr: Ipv4Header, payload: memoryview, now: float) -> bytes | None:
        """Add one fragment; returns the whole payload once every hole is filled."""
        first = hdr.frag_offset
        last = first + len(payload) - 1
        if hdr.mf and len(payload) % 8:
            self._count("bad_fragment_length")
            return None
        if len(payload) == 0:
            self._count("empty_fragment")
            return None
        key = (hdr.src, hdr.dst, hdr.proto, hdr.ident)
        dgram = self._pending.get(key)
        if dgram is None:
            if len(self._pending) >= self.max_datagrams:
                oldest = min(self._pending, key=lambda k: self._pending[k].expires)
                self._drop(oldest, "evicted_datagrams")
            dgram = _Datagram(now + self.timeout)
            self._pending[key] = dgram
        if self.held + len(payload) > self.max_bytes:
            self._drop(key, "memory_limit_drops")
            return None
        if not hdr.mf:
            if dgram.total is not None and dgram.total != last + 1:
                self._drop(key, "inconsistent_length")
                return None
            dgram.total = last + 1
        elif dgram.total is not None and last >= dgram.total:
            self._drop(key, "inconsistent_length")
            return None
        holes = []
        for h_first, h_last in dgram.holes:
            if first > h_last or last < h_first:
                holes.append((h_first, h_last))
                continue
            if first > h_first:
                holes.append((h_first, first - 1))
            if last < h_last and hdr.mf:
                holes.append((last + 1, h_last))
        if not hdr.mf:
            holes = [(a, min(b, last)) for a, b in holes if a <= last]
        dgram.holes = holes
        dgram.pieces.append((first, bytes(payload)))
        dgram.size += len(payload)
        self.held += len(payload)
        if holes or dgram.total is None:
            return None
        out = bytearray(dgram.total)
        for offset, data in dgram.pieces:
            out[offset:offset + len(data)] = data
        del self._pending[key]
        self.held -= dgram.size
        self._count("reassembled")
        return bytes(out)

    def on_timer(self, now: float) -> int:
        """Drop datagrams whose time ran out; returns how many."""
        stale = [k for k, d in self._pending.items() if d.expires <= now]
        for key in stale:
            self._drop(key, "timeouts")
        return len(stale)

    def next_deadline(self) -> float | None:
        """When the oldest incomplete datagram times out."""
        if not self._pending:
            return None
        return min(d.expires for d in self._pending.values())


@dataclass(slots=True)
class Ipv4Config:
    """An interface address with its subnet and an optional default gateway."""

    address: bytes
    prefix_len: int
    gateway: bytes | None = None

    @classmethod
    def from_text(cls, cidr: str, gateway: str | None = None) -> Ipv4Config:
        """``10.77.0.2/24`` (and ``10.77.0.1``) form; raises ``ValueError``."""
        iface = ipaddress.IPv4Interface(cidr)
        return cls(iface.ip.packed, iface.network.prefixlen,
                   addr(gateway) if gateway else None)

    @property
    def netmask(self) -> int:
        """The subnet mask as an integer."""
        return (0xFFFFFFFF << (32 - self.prefix_len)) & 0xFFFFFFFF

    @property
    def broadcast(self) -> bytes:
        """The subnet's directed broadcast address."""
        net = int.from_bytes(self.address, "big") & self.netmask
        return (net | (~self.netmask & 0xFFFFFFFF)).to_bytes(4, "big")

    def on_link(self, dst: bytes) -> bool:
        """Whether ``dst`` is on the local subnet."""
        mask = self.netmask
        return int.from_bytes(dst, "big") & mask == int.from_bytes(self.address, "big") & mask

    def next_hop(self, dst: bytes) -> bytes | None:
        """Where to send a packet for ``dst``: itself, the gateway, or nowhere (None)."""
        if dst == LIMITED_BROADCAST or self.on_link(dst):
            return dst
        return self.gateway

    def __str__(self) -> str:
        gw = f" via {ntoa(self.gateway)}" if self.gateway else ""
        return f"{ntoa(self.address)}/{self.prefix_len}{gw}"
