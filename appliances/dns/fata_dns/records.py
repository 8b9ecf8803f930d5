"""Resource record sets as wire bytes, and what the engine needs to know about rdata.

An :class:`RRset` holds its owner (lowercase wire), type, TTL and the rdata of each record
as uncompressed wire bytes.  Only a few types carry names that a server may compress
(RFC 3597 section 4: the RFC 1035 types) or that trigger additional-section processing
(NS, MX, SRV); :func:`rdata_names` and :func:`target_name` find those names in the wire
form, so no rdata object is kept after loading.
"""

from __future__ import annotations

import struct

from fata_dns.names import read_name

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, DNAME, OPT, DS, RRSIG, NSEC, DNSKEY = (
    1, 2, 5, 6, 12, 15, 16, 28, 33, 39, 41, 43, 46, 47, 48,
)
IXFR, AXFR, MAILB, MAILA, ANY = 251, 252, 253, 254, 255
CAA = 257
IN = 1

# Types whose embedded names a server may compress (RFC 3597 section 4).
COMPRESSIBLE = frozenset({NS, CNAME, SOA, PTR, MX})


class RRset:
    """One RRset: owner (lowercase wire), type, TTL and the records' rdata (wire)."""

    __slots__ = ("owner", "rdatas", "rtype", "ttl")

    def __init__(self, owner: bytes, rtype: int, ttl: int, rdatas: tuple[bytes, ...]) -> None:
        self.owner = owner
        self.rtype = rtype
        self.ttl = ttl
        self.rdatas = rdatas

    def with_owner(self, owner: bytes) -> RRset:
        """The same records under another owner (wildcard synthesis, RFC 4592)."""
        return RRset(owner, self.rtype, self.ttl, self.rdatas)

    def with_ttl(self, ttl: int) -> RRset:
        """The same records with another TTL (the SOA of a negative answer, RFC 2308)."""
        return RRset(self.owner, self.rtype, ttl, self.rdatas)

    def __repr__(self) -> str:
        return f"RRset({self.owner!r}, {self.rtype}, {self.ttl}, {len(self.rdatas)} rr)"


def rdata_names(rtype: int, rdata: bytes) -> list[tuple[int, int]]:
    """Spans (start, end) of the compressible names inside ``rdata`` of a COMPRESSIBLE type."""
    if rtype == MX:
        _, end = read_name(rdata, 2)
        return [(2, end)]
    if rtype == SOA:
        _, mid = read_name(rdata, 0)
        _, end = read_name(rdata, mid)
        return [(0, mid), (mid, end)]
    _, end = read_name(rdata, 0)
    return [(0, end)]


def target_name(rtype: int, rdata: bytes) -> bytes | None:
    """The host name whose addresses belong in the additional section, if any (RFC 1035
    section 3.3: NS and MX; RFC 2782: SRV)."""
    if rtype == NS:
        return read_name(rdata, 0)[0]
    if rtype == MX:
        return read_name(rdata, 2)[0]
    if rtype == SRV:
        return read_name(rdata, 6)[0]
    return None


def soa_serial(rdata: bytes) -> int:
    """The SERIAL field of an SOA rdata."""
    _, mid = read_name(rdata, 0)
    _, end = read_name(rdata, mid)
    return struct.unpack_from("!I", rdata, end)[0]


def soa_minimum(rdata: bytes) -> int:
    """The MINIMUM field of an SOA rdata (the negative-caching TTL bound, RFC 2308)."""
    return struct.unpack_from("!I", rdata, len(rdata) - 4)[0]
