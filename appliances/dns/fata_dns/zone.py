"""A loaded zone: its RRsets by owner and type, plus the facts lookups need.

Built once from the records a master file yields, checked like ``named-checkzone`` does
for the faults that would make answers wrong (no SOA or NS at the apex, data outside the
zone, CNAME beside other data), then never modified: a reload builds a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fata_dns import names
from fata_dns.errors import ZoneError
from fata_dns.master import Record, read_zone_text
from fata_dns.records import CNAME, NS, NSEC, RRSIG, SOA, RRset, soa_minimum, soa_serial

# Types allowed beside a CNAME (RFC 2181 section 10.1, RFC 4035 section 2.5).
_CNAME_COMPANIONS = frozenset({CNAME, RRSIG, NSEC})


class Zone:
    """One zone's data, immutable once built.

    ``nodes`` maps each owner (lowercase wire) to its RRsets by type; ``names`` holds every
    name that exists in the zone, the empty non-terminals included (RFC 4592 section 2.2.2);
    ``cuts`` holds the delegation points (owners of NS other than the apex).
    """

    __slots__ = (
        "cuts",
        "names",
        "negative_soa",
        "nodes",
        "origin",
        "records",
        "serial",
        "soa",
        "source",
    )

    def __init__(self, origin: bytes, nodes: dict[bytes, dict[int, RRset]], source: str,
                 records: list[RRset]) -> None:
        self.origin = origin
        self.nodes = nodes
        self.source = source
        self.records = records
        self.soa = nodes[origin][SOA]
        self.serial = soa_serial(self.soa.rdatas[0])
        # RFC 2308 section 3: the negative answer's SOA TTL is min(SOA TTL, SOA MINIMUM).
        self.negative_soa = self.soa.with_ttl(min(self.soa.ttl, soa_minimum(self.soa.rdatas[0])))
        olen = len(origin)
        all_names = set()
        for owner in nodes:
            name = owner
            while len(name) >= olen and name not in all_names:
                all_names.add(name)
                name = name[name[0] + 1 :] if name != names.ROOT else b""
        self.names = all_names
        self.cuts = frozenset(o for o, types in nodes.items() if NS in types and o != origin)

    @property
    def origin_text(self) -> str:
        """The origin in presentation form."""
        return names.to_text(self.origin)

    def find_cut(self, name: bytes) -> bytes | None:
        """The highest delegation point at or above ``name`` (below the apex), if any."""
        if not self.cuts:
            return None
        for candidate in names.ancestors(name, self.origin):
            if candidate in self.cuts:
                return candidate
        return None


def build_zone(origin: bytes, records: Iterable[Record], source: str) -> Zone:
    """Group ``records`` into RRsets and check the zone; raise ZoneError on a fault."""
    origin = origin.lower()
    grouped: dict[bytes, dict[int, list]] = {}
    for rec in records:
        if not names.is_subdomain(rec.owner, origin):
            raise ZoneError(f"{names.to_text(rec.owner)} is outside the zone "
                            f"{names.to_text(origin)}", rec.file, rec.line)
        types = grouped.setdefault(rec.owner, {})
        entry = types.get(rec.rtype)
        if entry is None:
            types[rec.rtype] = [rec.ttl, [rec.rdata], rec]
            continue
        if rec.rdata in entry[1]:
            continue  # RFC 2181 section 5: duplicate records are one record
        entry[0] = min(entry[0], rec.ttl)  # RFC 2181 section 5.2: one TTL per RRset
        entry[1].append(rec.rdata)
    apex = grouped.get(origin, {})
    if SOA not in apex:
        raise ZoneError(f"zone {names.to_text(origin)} has no SOA record at its apex", source)
    if len(apex[SOA][1]) != 1:
        raise ZoneError("more than one SOA record at the apex", source, apex[SOA][2].line)
    if NS not in apex:
        raise ZoneError(f"zone {names.to_text(origin)} has no NS records at its apex", source)
    nodes: dict[bytes, dict[int, RRset]] = {}
    ordered: list[RRset] = []
    for owner, types in grouped.items():
        if SOA in types and owner != origin:
            raise ZoneError("SOA record below the zone apex", source, types[SOA][2].line)
        if CNAME in types:
            first = types[CNAME][2]
            if len(types[CNAME][1]) > 1:
                raise ZoneError(f"{names.to_text(owner)} has more than one CNAME", source,
                                first.line)
            others = [t for t in types if t not in _CNAME_COMPANIONS]
            if others:
                raise ZoneError(f"{names.to_text(owner)} has a CNAME and other data", source,
                                first.line)
        node = {}
        for rtype, (ttl, rdatas, _rec) in types.items():
            rrset = RRset(owner, rtype, ttl, tuple(rdatas))
            node[rtype] = rrset
            ordered.append(rrset)
        nodes[owner] = node
    return Zone(origin, nodes, source, ordered)


def load_zone_text(source: str, text: str, read_text: Callable[[str], str] | None = None,
                   origin: bytes | None = None) -> Zone:
    """Parse and build a zone from master-file text.

    The origin comes from ``origin``, else the first ``$ORIGIN``, else the file name
    (``example.org.zone`` or ``example.org`` gives ``example.org.``).
    """
    if origin is None and "$ORIGIN" not in text.upper():
        origin = _origin_from_filename(source)
    found, records = read_zone_text(source, text, origin, read_text)
    if found is None:
        raise ZoneError("no $ORIGIN and the file name does not give one", source)
    return build_zone(found, records, source)


def _origin_from_filename(source: str) -> bytes | None:
    base = source.rsplit("/", 1)[-1]
    for suffix in (".zone", ".db"):
        base = base.removesuffix(suffix)
    if not base or "." not in base.strip("."):
        return None
    try:
        return names.from_text(base.rstrip(".") + ".", None)
    except names.BadName:
        return None
