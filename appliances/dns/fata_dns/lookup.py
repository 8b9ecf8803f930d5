"""The authoritative lookup (RFC 1034 section 4.3.2, RFC 4592, RFC 2308, RFC 6604, RFC 8482).

Given a question, find the sections of the answer in the served zones.  Pure data in,
pure data out: the result is rendered to wire (and memoised) by :mod:`fata_dns.server`.
"""

from __future__ import annotations

from fata_dns import names
from fata_dns.errors import ZoneError
from fata_dns.records import AAAA, ANY, CNAME, DS, NS, A, RRset, target_name
from fata_dns.zone import Zone

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, NOTAUTH = 0, 1, 2, 3, 4, 5, 9
BADVERS = 16
MAX_CHAIN = 16  # CNAMEs followed before giving up (BIND uses 16 too)
_WILD = b"\x01*"
_ADDRESS_TYPES = (A, AAAA)


def _closest_encloser(zone: Zone, qname: bytes) -> bytes:
    """The closest encloser of ``qname``, a name ``zone`` lacks (RFC 4592 section 3.3.1)."""
    encloser = qname[qname[0] + 1 :]
    while encloser not in zone.names:
        encloser = encloser[encloser[0] + 1 :]
    return encloser


class Answer:
    """The sections of a response, before rendering."""

    __slots__ = ("aa", "additional", "answer", "authority", "rcode", "required", "wild")

    def __init__(self, rcode: int = NOERROR, aa: bool = True) -> None:
        self.rcode = rcode
        self.aa = aa
        self.answer: list[RRset] = []
        self.authority: list[RRset] = []
        self.additional: list[RRset] = []
        # Owners whose additional records must fit or set TC (in-domain glue, RFC 9471).
        self.required: set[bytes] = set()
        # Synthesised from a wildcard for the question's own name (RFC 4592): the closest
        # encloser whose wildcard answered, else None.  The server does not memoise these
        # per name (one entry per distinct name would be a flood's).
        self.wild: bytes | None = None


class Catalog:
    """The set of zones served; the closest enclosing zone answers a question."""

    def __init__(self, zones: list[Zone]) -> None:
        by_origin: dict[bytes, Zone] = {}
        for zone in zones:
            if zone.origin in by_origin:
                raise ZoneError(f"zone {zone.origin_text} is loaded twice "
                                f"({by_origin[zone.origin].source} and {zone.source})")
            by_origin[zone.origin] = zone
        self.zones = by_origin

    def zone_for(self, name: bytes) -> Zone | None:
        """The closest enclosing zone of ``name`` (lowercase wire), if any."""
        zones = self.zones
        while True:
            zone = zones.get(name)
            if zone is not None:
                return zone
            if name == names.ROOT:
                return None
            name = name[name[0] + 1 :]

    def resolve(self, qname: bytes, qtype: int) -> Answer:
        """Answer ``qname``/``qtype`` (class IN) from the served zones."""
        zone = self.zone_for(qname)
        if zone is None:
            return Answer(REFUSED, aa=False)
        if qtype == DS and qname == zone.origin and qname != names.ROOT:
            # RFC 4035 section 3.1.4.1: DS lives in the parent side of the cut.
            parent = self.zone_for(qname[qname[0] + 1 :])
            if parent is not None:
                zone = parent
        ans = Answer()
        self._resolve_in(zone, qname, qtype, ans, 0, {qname})
        self._add_additional(ans)
        return ans

    def absent(self, qname: bytes) -> tuple[Zone, bytes | None] | None:
        """For ``qname`` (lowercase wire) that a served zone lacks, with no delegation at or
        above it: that zone, and the closest encloser if its wildcard answers for the name
        (None: a plain NXDOMAIN).  None for any other name.

        The same decisions as :meth:`resolve` for a name that is not there; the server's
        NXDOMAIN and wildcard shortcuts ask this first.
        """
        zone = self.zone_for(qname)
        if zone is None or qname in zone.names or zone.find_cut(qname) is not None:
            return None
        encloser = _closest_encloser(zone, qname)
        return zone, (encloser if _WILD + encloser in zone.nodes else None)

    def _resolve_in(self, zone: Zone, qname: bytes, qtype: int, ans: Answer, depth: int,
                    seen: set[bytes]) -> None:
        cut = zone.find_cut(qname)
        if cut is not None and not (qtype == DS and cut == qname):
            if depth == 0:
                self._referral(zone, cut, ans)
            return  # a chain into delegated space ends with the CNAME
        node = zone.nodes.get(qname)
        owner = qname
        if node is None:
            if qname in zone.names:
                ans.authority.append(zone.negative_soa)  # empty non-terminal: NODATA
                return
            encloser = _closest_encloser(zone, qname)
            node = zone.nodes.get(_WILD + encloser)
            if node is None:
                ans.rcode = NXDOMAIN
                ans.authority.append(zone.negative_soa)
                return
            if depth == 0:
                ans.wild = encloser
        if qtype == ANY:
            # RFC 8482 section 4.2: answer with one RRset rather than all of them.
            rrset = node.get(CNAME) or node[min(node)]
            ans.answer.append(rrset if rrset.owner == owner else rrset.with_owner(owner))
            return
        rrset = node.get(qtype)
        if rrset is not None:
            ans.answer.append(rrset if rrset.owner == owner else rrset.with_owner(owner))
            return
        cname = node.get(CNAME)
        if cname is None:
            ans.authority.append(zone.negative_soa)
            return
        ans.answer.append(cname if cname.owner == owner else cname.with_owner(owner))
        target = cname.rdatas[0].lower()
        if depth + 1 >= MAX_CHAIN or target in seen:
            return
        seen.add(target)
        if self.zone_for(target) is not zone:
            # The chain leaves this zone: the client resolves the rest.  RFC 1034 4.3.2
            # would let us continue in another zone we serve, but BIND and Knot stop here
            # (the other zone's data has its own authority), and so do we.
            return
        self._resolve_in(zone, target, qtype, ans, depth + 1, seen)

    def _referral(self, zone: Zone, cut: bytes, ans: Answer) -> None:
        """NS of the child in authority, glue in additional, AA clear (RFC 1034 4.3.2 3b)."""
        ans.aa = False
        ns = zone.nodes[cut][NS]
        ans.authority.append(ns)
        for rdata in ns.rdatas:
            target = names.read_name(rdata, 0)[0].lower()
            node = zone.nodes.get(target)
            if node is None:
                continue
            if names.is_subdomain(target, cut):
                ans.required.add(target)
            for rtype in _ADDRESS_TYPES:
                rrset = node.get(rtype)
                if rrset is not None:
                    ans.additional.append(rrset)

    def _add_additional(self, ans: Answer) -> None:
        """Addresses of NS, MX and SRV targets found in our zones (RFC 1034 section 3.7)."""
        if not ans.answer:
            return
        present = {(rr.owner, rr.rtype) for rr in ans.answer}
        present.update((rr.owner, rr.rtype) for rr in ans.additional)
        for rrset in ans.answer:
            if rrset.rtype not in (NS, 15, 33):
                continue
            for rdata in rrset.rdatas:
                try:
                    target = target_name(rrset.rtype, rdata)
                except ValueError:
                    continue
                if target is None:
                    continue
                target = target.lower()
                zone = self.zone_for(target)
                if zone is None or zone.find_cut(target) is not None:
                    continue
                node = zone.nodes.get(target)
                if node is None:
                    continue
                for rtype in _ADDRESS_TYPES:
                    rr = node.get(rtype)
                    if rr is not None and (target, rtype) not in present:
                        present.add((target, rtype))
                        ans.additional.append(rr)
