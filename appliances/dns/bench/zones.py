"""Zones and query mixes for the DNS benchmark, generated deterministically.

Every server is given byte-identical zone files and the same query file, so differences in
the results come from the servers alone. The generator also keeps the zone as data
(:class:`Zone`), which is what the correctness check compares answers with: the truth is the
generator's, not any server's reading of the file.

The zone file is written in the most conservative master-file form (absolute owner names,
explicit TTL and class on every line, no parentheses, no ``$`` directives but ``$ORIGIN`` and
``$TTL``) so that every parser under test reads it the same way.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

ORIGIN = "bench.fata.test."
"""The benchmark zone's apex (``.test`` is reserved for testing, RFC 2606)."""

TTL = 3600
SOA_RDATA = "ns1.{origin} hostmaster.{origin} 1 7200 3600 1209600 300"
"""Serial 1; the numbers are ordinary values and matter to no server's fast path."""

AAAA_EVERY = 4
"""Every fourth host name also has an AAAA record, so the mix has more than one qtype."""

NXDOMAIN_FRACTION = 0.10
"""Share of queries for names that do not exist (the issue's 90% / 10% mix)."""

DEFAULT_QUERY_COUNT = 20_000
"""Lines in the query file; dnsperf loops over it, so it only has to be well mixed."""


@dataclass(frozen=True)
class Query:
    """One query of the mix: the name, the type, and whether the name exists."""

    qname: str
    qtype: str
    exists: bool


@dataclass(frozen=True)
class Zone:
    """A generated zone: apex, host names, and every RRset as text rdata.

    ``rrsets`` maps ``(owner, type)`` to the rdata strings of that RRset, all with TTL
    :data:`TTL`. Owner names are absolute and lower case.
    """

    origin: str
    hosts: tuple[str, ...]
    rrsets: dict[tuple[str, str], tuple[str, ...]] = field(repr=False)

    @property
    def size(self) -> int:
        """Number of host names (the "zone size" of the benchmark)."""
        return len(self.hosts)

    @cached_property
    def names(self) -> frozenset[str]:
        """Every owner name in the zone, apex and name server included."""
        return frozenset(owner for owner, _ in self.rrsets)

    def lookup(self, qname: str, qtype: str) -> tuple[str, tuple[str, ...]]:
        """Expected ``(rcode, answer rdatas)`` for a query, as an authoritative server gives.

        The zone has no delegations, wildcards or CNAMEs, so the answer is one of: the
        RRset (NOERROR), nothing for an existing name (NOERROR/NODATA), or NXDOMAIN.
        """
        name = qname.lower()
        if not name.endswith("."):
            name += "."
        rdatas = self.rrsets.get((name, qtype.upper()))
        if rdatas is not None:
            return "NOERROR", rdatas
        if name in self.names:
            return "NOERROR", ()
        return "NXDOMAIN", ()

    def to_text(self) -> str:
        """The zone in master-file format; the SOA comes first as RFC 1035 requires."""
        lines = [f"$ORIGIN {self.origin}", f"$TTL {TTL}"]
        soa = (self.origin, "SOA")
        ordered = [soa] + [key for key in self.rrsets if key != soa]
        for owner, rtype in ordered:
            for rdata in self.rrsets[(owner, rtype)]:
                lines.append(f"{owner} {TTL} IN {rtype} {rdata}")
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> Path:
        """Write the zone file (the same bytes for every server)."""
        path.write_text(self.to_text(), encoding="ascii")
        return path


def _label(rng: random.Random, prefix: str, index: int) -> str:
    # An index keeps names unique; a random suffix gives them realistic, varied hashes.
    return f"{prefix}{index}-{rng.getrandbits(32):08x}"


def generate_zone(size: int, origin: str = ORIGIN, seed: int = 1) -> Zone:
    """A zone with ``size`` host names, each with an A record (every fourth also AAAA).

    Besides the hosts the zone has its apex (SOA, NS) and the name server ``ns1`` with its
    address, so it loads in every server without warnings.
    """
    if size < 1:
        raise ValueError("zone size must be at least 1")
    if not origin.endswith("."):
        origin += "."
    origin = origin.lower()
    rng = random.Random(f"zone/{size}/{seed}")
    rrsets: dict[tuple[str, str], tuple[str, ...]] = {
        (origin, "SOA"): (SOA_RDATA.format(origin=origin),),
        (origin, "NS"): (f"ns1.{origin}",),
        (f"ns1.{origin}", "A"): ("192.0.2.1",),
    }
    hosts = []
    for i in range(size):
        host = f"{_label(rng, 'h', i)}.{origin}"
        hosts.append(host)
        # Addresses in 10.0.0.0/8 and fc00::/7 are record data only: nothing is sent there.
        # Canonical text, so the rdata strings compare equal to what parsers print back.
        rrsets[(host, "A")] = (str(ipaddress.IPv4Address(0x0A00_0000 + i)),)
        if i % AAAA_EVERY == 0:
            rrsets[(host, "AAAA")] = (str(ipaddress.IPv6Address((0xFD00 << 112) + i)),)
    return Zone(origin=origin, hosts=tuple(hosts), rrsets=rrsets)


FLOOD_ORIGIN = "reflect.fata.test."
"""The zone a spoofed flood aims at (its own zone, so that NSD, which cannot exempt a client,
can exempt the ordinary zone instead; see ``peers/nsd.py``)."""
FLOOD_QNAME = f"big.{FLOOD_ORIGIN}"
FLOOD_TXT_STRINGS = 4
FLOOD_TXT_LENGTH = 240


def flood_zone() -> Zone:
    """The amplifier: one TXT RRset of about a kilobyte at :data:`FLOOD_QNAME` (a ~50-byte
    query draws a ~1,050-byte answer), with its apex and name server."""
    origin = FLOOD_ORIGIN
    rng = random.Random("flood")
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    text = " ".join(
        '"' + "".join(rng.choice(alphabet) for _ in range(FLOOD_TXT_LENGTH)) + '"'
        for _ in range(FLOOD_TXT_STRINGS)
    )
    rrsets: dict[tuple[str, str], tuple[str, ...]] = {
        (origin, "SOA"): (SOA_RDATA.format(origin=origin),),
        (origin, "NS"): (f"ns1.{origin}",),
        (f"ns1.{origin}", "A"): ("192.0.2.1",),
        (FLOOD_QNAME, "TXT"): (text,),
    }
    return Zone(origin=origin, hosts=(FLOOD_QNAME,), rrsets=rrsets)


def generate_queries(
    zone: Zone,
    count: int = DEFAULT_QUERY_COUNT,
    nx_fraction: float = NXDOMAIN_FRACTION,
    seed: int = 1,
) -> list[Query]:
    """A shuffled mix: ``nx_fraction`` of the queries for absent names, the rest for present
    ones (A, or AAAA where the host has one).

    Exactly ``round(count * nx_fraction)`` queries are NXDOMAIN, so every prefix of the
    shuffled list is close to the intended mix, which matters because a short dnsperf run
    only gets through part of the file.
    """
    if count < 1:
        raise ValueError("query count must be at least 1")
    if not 0.0 <= nx_fraction <= 1.0:
        raise ValueError("nx_fraction must be within [0, 1]")
    rng = random.Random(f"queries/{zone.size}/{count}/{seed}")
    n_nx = round(count * nx_fraction)
    queries: list[Query] = []
    for _ in range(count - n_nx):
        host = rng.choice(zone.hosts)
        qtype = "AAAA" if (host, "AAAA") in zone.rrsets and rng.random() < 0.5 else "A"
        queries.append(Query(host, qtype, True))
    for j in range(n_nx):
        # The "nx" prefix can never collide with the hosts' "h" prefix.
        queries.append(Query(f"{_label(rng, 'nx', j)}.{zone.origin}", "A", False))
    rng.shuffle(queries)
    return queries


def write_queries(queries: Iterable[Query], path: Path) -> Path:
    """Write a dnsperf data file: one ``name type`` per line."""
    path.write_text("".join(f"{q.qname} {q.qtype}\n" for q in queries), encoding="ascii")
    return path
