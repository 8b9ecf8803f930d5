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
        # Every owner and every name between it and the apex (the empty non-terminals);
        # the walk up from an owner stops at the first name already known.
        olen = len(origin)
        all_names = set(nodes)
        for owner in nodes:
            name = owner[owner[0] + 1 :]
            while len(name) > olen and name not in all_names:
                all_names.add(name)
                name = name[name[0] + 1 :]
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
    """Group ``records`` into RRsets and check the zone; raise ZoneError on a fault.

    One pass makes the RRsets: a record either starts an RRset or joins one, so the
    per-record work is two dictionary lookups (start-up time is spent here, per record).
    An owner is checked to be inside the zone once, when first seen, mostly by finding its
    parent among the owners already checked (all of ``nodes``).
    """
    origin = origin.lower()
    nodes: dict[bytes, dict[int, RRset]] = {}
    more: dict[RRset, list[bytes]] = {}  # the rdatas of RRsets with more than one record
    first_line: dict[tuple[bytes, int], int] = {}  # of each SOA and CNAME RRset, for errors
    for owner, rtype, ttl, rdata, file, line in records:
        node = nodes.get(owner)
        if node is None:
            if not (owner[owner[0] + 1 :] in nodes or names.is_subdomain(owner, origin)):
                raise ZoneError(f"{names.to_text(owner)} is outside the zone "
                                f"{names.to_text(origin)}", file, line)
            node = nodes[owner] = {}
        rrset = node.get(rtype)
        if rrset is None:
            node[rtype] = RRset(owner, rtype, ttl, (rdata,))
            if rtype == SOA or rtype == CNAME:
                first_line[(owner, rtype)] = line
            continue
        rdatas = more.get(rrset)
        if rdatas is None:
            if rdata == rrset.rdatas[0]:
                continue  # RFC 2181 section 5: duplicate records are one record
            more[rrset] = [rrset.rdatas[0], rdata]
        elif rdata in rdatas:
            continue
        else:
            rdatas.append(rdata)
        if ttl < rrset.ttl:
            rrset.ttl = ttl  # RFC 2181 section 5.2: one TTL per RRset
    for rrset, rdatas in more.items():
        rrset.rdatas = tuple(rdatas)
    apex = nodes.get(origin, {})
    if SOA not in apex:
        raise ZoneError(f"zone {names.to_text(origin)} has no SOA record at its apex", source)
    if len(apex[SOA].rdatas) != 1:
        raise ZoneError("more than one SOA record at the apex", source,
                        first_line[(origin, SOA)])
    if NS not in apex:
        raise ZoneError(f"zone {names.to_text(origin)} has no NS records at its apex", source)
    flagged = {owner for owner, rtype in first_line if rtype == CNAME or owner != origin}
    if flagged:
        for owner, types in nodes.items():  # in file order, so the first fault is reported
            if owner not in flagged:
                continue
            if SOA in types and owner != origin:
                raise ZoneError("SOA record below the zone apex", source,
                                first_line[(owner, SOA)])
            if CNAME in types:
                line = first_line[(owner, CNAME)]
                if len(types[CNAME].rdatas) > 1:
                    raise ZoneError(f"{names.to_text(owner)} has more than one CNAME", source,
                                    line)
                if any(t not in _CNAME_COMPANIONS for t in types):
                    raise ZoneError(f"{names.to_text(owner)} has a CNAME and other data",
                                    source, line)
    ordered = [rrset for node in nodes.values() for rrset in node.values()]
    return Zone(origin, nodes, source, ordered)


NO_ORIGIN = ("no $ORIGIN, and the file name gives no origin: name it with --zone "
             "ORIGIN=FILE")


def load_zone_text(source: str, text: str, read_text: Callable[[str], str] | None = None,
                   origin: bytes | None = None) -> Zone:
    """Parse and build a zone from master-file text.

    The origin comes from ``origin``, else the first ``$ORIGIN``, else the file name
    (``example.org.zone`` or ``example.org`` gives ``example.org.``).
    """
    if origin is None and "$ORIGIN" not in text.upper():
        origin = _origin_from_filename(source)
        if origin is None:
            raise ZoneError(NO_ORIGIN, source)
    found, records = read_zone_text(source, text, origin, read_text)
    if found is None:
        raise ZoneError(NO_ORIGIN, source)
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
