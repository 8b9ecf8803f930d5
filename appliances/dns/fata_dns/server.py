"""The DNS server engine (sans-IO): query bytes in, response bytes out.

Speed comes from memoisation, in two levels, both keyed by data that cannot change while a
catalog is served:

1. ``_exact``: the query minus its ID (``payload[2:]``) to the response minus its ID.  A
   response is a pure function of those bytes over UDP, so a hit costs one slice, one dict
   lookup and one concatenation.
2. ``_memo``: (lowercase question, EDNS size class) to the rendered sections.  A query
   that misses the first level (new ID-independent bytes: another name case, a fresh EDNS
   cookie) is looked up here, without a full parse when it has the common shape
   (:meth:`Server._memo_fast`), and the answer is assembled from the precomputed header fields and
   tail with the query's own question bytes, which echoes the question's case for free
   because every compression pointer to the question still lands on the same offsets.
   Filled at load by :meth:`Server.warm` (every name and type of every zone) and on demand.

Both are bounded in bytes (``memo_bytes``, ``reply_cache_bytes``; :mod:`fata_dns.cache`):
an entry is accounted as its keys' and values' lengths plus ``MEMO_OVERHEAD`` or
``EXACT_OVERHEAD``, estimates of the Python objects and dict slot around them.  Once a
budget is half used, entries made on demand enter only on a key's second sighting (a
:class:`Doorkeeper`), so a flood of once-seen names passes through; the answers
precomputed by :meth:`Server.warm`, and reply-cache entries of those answers (up to half
its budget), are pinned: when a budget is reached the other entries are dropped together,
never these.  Answers synthesised from a wildcard for the question's own name are not
memoised per name (each distinct name would be an entry, and a flood of names under a
wildcard is a flood of them) nor put in the reply cache: the memo holds one answer per
wildcard and *shape* of name (its label lengths), proved independent of the labels' bytes
when it is made (:meth:`Server._learn_wild`), and the question is spliced in.

Everything else (errors, EDNS versions, transfers, unusual questions) takes the full path.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from fata.devices import ReplyCache

from fata_dns import render as r
from fata_dns.axfr import transfer_messages
from fata_dns.cache import Budget, Doorkeeper
from fata_dns.lookup import (
    BADVERS,
    FORMERR,
    NOTAUTH,
    NOTIMP,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    Catalog,
)
from fata_dns.query import Drop, FormErr, Query, parse_query, question_end
from fata_dns.records import AXFR, DS, IN, IXFR, MAILA, MAILB, OPT

MEMO_BYTES = 32 << 20  # default bounds (runtime arguments --memo-bytes, --reply-cache-bytes)
REPLY_CACHE_BYTES = 16 << 20
# Per-entry estimates beyond the lengths of the bytes (CPython 3.11, 64-bit, checked by
# tests/dns/test_dns_memory_bounds.py): memo: key tuple 56 + question bytes header 33 +
# variant int 28 + value tuple 64 + flags int 28 + counts bytes 40 + tail bytes header 33
# + dict slot ~50 + pinned-set slot or transient-list slot ~30, rounded up;
# reply cache: two bytes headers 2 x 33 + dict slot ~50 + transient-list slot ~10.
MEMO_OVERHEAD = 384
EXACT_OVERHEAD = 160
EXACT_MAX_QUERY = 512
NO_EDNS_LIMIT = 512
TCP_LIMIT = 65535
_TKEY, _TSIG = 249, 250
_NOT_PLAIN = frozenset({OPT, AXFR, IXFR, MAILA, MAILB, _TKEY, _TSIG, DS})  # full path only
_RR_HEAD = struct.Struct("!HHIH")
WILD_VARIANT = 1 << 40  # marks a memo key of a wildcard's answer by name shape


@dataclass
class Stats:
    """Counters an operator (and the tests) read; cheap enough for the slow path only."""

    queries_slow: int = 0
    dropped: int = 0
    formerr: int = 0
    notimp: int = 0
    refused: int = 0
    badvers: int = 0
    internal_errors: int = 0
    axfr: int = 0
    axfr_refused: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Server:
    """Answers queries for a :class:`Catalog`; swap the catalog with :meth:`load`."""

    def __init__(self, catalog: Catalog, axfr_allow: list[str] | tuple[str, ...] = (), *,
                 memo_bytes: int = MEMO_BYTES,
                 reply_cache_bytes: int = REPLY_CACHE_BYTES) -> None:
        self.stats = Stats()
        self.axfr_allow = [ipaddress.ip_network(a, strict=False) for a in axfr_allow]
        self._exact: dict[bytes, bytes] = {}
        self.reply_cache = ReplyCache(self._exact, prefix=2)
        """``_exact`` for the platform to answer from below Python (the query's ID is kept)."""
        self.exact_budget = Budget(self._exact, reply_cache_bytes, EXACT_OVERHEAD,
                                   pinned_max=int(reply_cache_bytes) // 2)
        self._memo: dict[tuple[bytes, int], tuple[int, bytes, bytes]] = {}
        self.memo_budget = Budget(self._memo, memo_bytes, MEMO_OVERHEAD)
        self._warm_keys: set[tuple[bytes, int]] = set()  # the memo's pinned keys
        self._exact_door = Doorkeeper()
        self._memo_door = Doorkeeper()
        self._cacheable = True  # per query: False for a wildcard-synthesised answer
        self._pinned_hit = False  # per query: answered from a pinned memo entry
        self._transfers: dict[bytes, list[bytes]] = {}
        self.catalog = catalog
        self.load(catalog)

    def load(self, catalog: Catalog) -> None:
        """Serve ``catalog`` from now on (atomically: the caches go with the old one)."""
        self.catalog = catalog
        self.exact_budget.reset()  # in place: the platform holds it as the reply cache
        self.memo_budget.reset()
        self._warm_keys = set()
        self._transfers = {}

    # -- UDP -----------------------------------------------------------------------------

    def handle_udp(self, payload: bytes, peer: object = None) -> bytes | None:
        """One datagram in, the reply (or None: drop) out.  The hot path."""
        hit = self._exact.get(payload[2:])
        if hit is not None:
            return payload[:2] + hit
        return self._udp_miss(payload)

    def _udp_miss(self, payload: bytes) -> bytes | None:
        self.stats.queries_slow += 1
        self._cacheable = True
        self._pinned_hit = False
        try:
            reply = self._memo_fast(payload)
            if reply is None:
                reply = self._answer_bytes(payload, tcp=False)
        except Exception:  # the receive loop must survive anything; counted, and fuzzed to 0
            self.stats.internal_errors += 1
            return _servfail(payload)
        if reply is not None and self._cacheable and len(payload) <= EXACT_MAX_QUERY:
            key = payload[2:]
            value = reply[2:]
            size = len(key) + len(value)
            budget = self.exact_budget
            if not (self._pinned_hit and budget.add(key, value, size, pinned=True)) \
                    and (budget.used < budget.gate or self._exact_door.admit(key)):
                budget.add(key, value, size)
        return reply

    def _memo_fast(self, payload: bytes) -> bytes | None:
        """The second memo level without the full parse, for the common query shape
        (one question, no answer or authority records, at most one version-0 OPT); then,
        for a name no zone has, the negative answer without the full parse.

        The question comes from ``question_end(payload, checked=False)``: its name is taken
        to end at the first zero byte, a guess only used to look up the memo, whose keys
        are all valid names, so a hit proves it.  Anything else returns None and takes the
        full path, which gives the same answer.
        """
        shape = _query_shape(payload)
        if shape is None:
            return None
        end, qend, variant = shape
        key = (payload[12 : end + 1].lower() + payload[end + 1 : qend], variant)
        entry = self._memo.get(key)
        if entry is None:
            return self._absent_fast(payload, end, qend, variant)
        if key in self._warm_keys:
            self._pinned_hit = True
        flags, counts, tail = entry
        flags |= _rd_cd(payload)
        return payload[:2] + flags.to_bytes(2, "big") + counts + payload[12:qend] + tail

    def _absent_fast(self, payload: bytes, end: int, qend: int, variant: int) -> bytes | None:
        """The answer for a name under a served zone that the zone does not have: NXDOMAIN,
        or an answer synthesised from a wildcard.

        A flood of random names under a zone (the common attack on authoritative servers)
        misses both memo levels, and the full parse, lookup and render cost ~60 µs per
        query.  Such answers differ only in the question.  An NXDOMAIN's SOA in authority
        is the zone's, its owner a pointer to the zone's name inside the question, so it is
        put together from the question and the zone's SOA.  A wildcard's answer is the
        memoised template of its names of the same shape (see :meth:`_learn_wild`).
        ``Catalog.absent`` makes the lookup's decisions (no such name or empty non-terminal,
        no delegation above it, the wildcard at its closest encloser, if any), as the full
        lookup does.  DNSSEC OK queries, other classes and types the full path treats
        specially, and NXDOMAIN answers over the size limit return None.
        """
        if variant & 3 == 3 or payload[qend - 2 : qend] != b"\x00\x01":
            return None
        if int.from_bytes(payload[qend - 4 : qend - 2], "big") in _NOT_PLAIN:
            return None
        if question_end(payload) != qend:  # the guess, proved by the label walk this time
            return None
        qname = payload[12 : end + 1].lower()
        found = self.catalog.absent(qname)
        if found is None:
            return None
        zone, encloser = found
        if encloser is not None:
            key = (_shape(qname, len(qname) - len(encloser)) + payload[end + 1 : qend],
                   variant | WILD_VARIANT)
            entry = self._memo.get(key)
            if entry is None:
                return None
            self._cacheable = False
            flags, counts, tail = entry
            flags |= _rd_cd(payload)
            return payload[:2] + flags.to_bytes(2, "big") + counts + payload[12:qend] + tail
        soa = zone.negative_soa
        rdata = soa.rdatas[0]
        opt = b"" if variant & 3 == 0 else r.opt_record(False)
        flags = r.QR | r.AA | NXDOMAIN | _rd_cd(payload)
        reply = b"".join((
            payload[:2], flags.to_bytes(2, "big"), b"\x00\x01\x00\x00\x00\x01",
            b"\x00\x01" if opt else b"\x00\x00", payload[12:qend],
            (0xC000 | (end + 1 - len(zone.origin))).to_bytes(2, "big"),
            _RR_HEAD.pack(soa.rtype, IN, soa.ttl, len(rdata)), rdata, opt))
        return reply if len(reply) <= variant >> 2 else None

    def _learn_wild(self, qlower: bytes, qname: bytes, encloser: bytes, qtype: int,
                    variant: int, entry: tuple[int, bytes, bytes], limit: int,
                    opt: bytes | None) -> None:
        """Memoise a wildcard's answer once for every name of the same shape.

        Names a wildcard answers for differ in the labels before its closest encloser, and
        a flood of distinct such names must not take one memo entry each.  The rendered
        answer depends on those labels' bytes only where a name in it is compressed against
        them; so the answer is rendered again for a probe name of the same shape (the same
        label lengths, every byte of those labels changed), and if both renders are equal,
        the bytes are not used and the answer, keyed by the shape, serves every name with
        that shape (``_absent_fast``).  A flood of distinct shapes meets the memo's own
        byte budget and admission policy.
        """
        keep = len(qname) - len(encloser)
        rest = qlower[len(qname):]
        key = (_shape(qname, keep) + rest, variant | WILD_VARIANT)
        budget = self.memo_budget
        if key in self._memo or not (budget.used < budget.gate or self._memo_door.admit(key)):
            return
        starts = _label_starts(qname, keep)
        probe = bytes(b if i in starts else (0x78 if b != 0x78 else 0x79)
                      for i, b in enumerate(qname[:keep])) + encloser
        probe_ans = self.catalog.resolve(probe, qtype)
        if probe_ans.wild != encloser or r.render(probe + rest, probe_ans, limit, opt) != entry:
            return
        budget.add(key, entry, len(key[0]) + len(entry[1]) + len(entry[2]))

    # -- TCP -----------------------------------------------------------------------------

    def handle_tcp(self, payload: bytes, peer: tuple[str, int] | None = None) -> list[bytes]:
        """One TCP message in, the reply messages out (several for a zone transfer; none
        for an unanswerable message, after which the connection should be closed)."""
        try:
            if len(payload) >= 12 and not payload[2] & 0x80 and (payload[2] >> 3) & 0xF == 0:
                qend = question_end(payload)
                if qend > 0 and int.from_bytes(payload[qend - 4 : qend - 2], "big") in (AXFR, IXFR):
                    return list(self._transfer(payload, peer))
            reply = self._answer_bytes(payload, tcp=True)
        except Exception:  # a connection must never take the server down; counted
            self.stats.internal_errors += 1
            reply = _servfail(payload)
        return [reply] if reply is not None else []

    # -- full path -----------------------------------------------------------------------

    def _count(self, reason: str) -> None:
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1

    def _answer_bytes(self, payload: bytes, tcp: bool) -> bytes | None:
        if len(payload) >= 12 and not payload[2] & 0x80 and payload[2] & 0x78:
            # Unknown or unsupported opcode (RFC 1035 section 4.1.1): NOTIMP, header only.
            self.stats.notimp += 1
            flags = r.QR | (int.from_bytes(payload[2:4], "big") & (r.OPCODE_MASK | r.RD)) | NOTIMP
            return r.header_only(payload[:2], flags, None, None)
        try:
            q = parse_query(payload)
        except Drop as exc:
            self.stats.dropped += 1
            self._count(str(exc))
            return None
        except FormErr as exc:
            self.stats.formerr += 1
            self._count(str(exc))
            opt = r.opt_record(False) if exc.edns else None
            flags = r.QR | (exc.flags & r.RD) | FORMERR
            return r.header_only(exc.msg_id, flags, exc.question, opt)
        return self._answer_query(q, tcp)

    def _answer_query(self, q: Query, tcp: bool) -> bytes:
        edns = q.edns
        rdcd = q.flags & (r.RD | r.CD)
        if edns is not None and edns.version > 0:
            # RFC 6891 section 6.1.3: BADVERS (16) = extended rcode 1, low bits 0.
            self.stats.badvers += 1
            return r.header_only(q.msg_id, r.QR | rdcd, q.question,
                                 r.opt_record(edns.do, BADVERS >> 4))
        opt = r.opt_record(edns.do) if edns is not None else None
        qtype = q.qtype
        if q.qclass != IN:
            self.stats.refused += 1
            return r.header_only(q.msg_id, r.QR | rdcd | REFUSED, q.question, opt)
        if qtype in (MAILA, MAILB, _TKEY, _TSIG):
            self.stats.notimp += 1
            return r.header_only(q.msg_id, r.QR | rdcd | NOTIMP, q.question, opt)
        if qtype in (OPT, AXFR, IXFR):
            # OPT is not a question; transfers go over TCP (RFC 5936 section 4.2), which
            # intercepts them before this point.  FORMERR, as BIND and Knot answer IXFR
            # over UDP too.
            self.stats.formerr += 1
            return r.header_only(q.msg_id, r.QR | rdcd | FORMERR, q.question, opt)
        if tcp:
            limit = TCP_LIMIT
        elif edns is None:
            limit = NO_EDNS_LIMIT
        else:
            limit = min(max(edns.payload, 512), r.SERVER_UDP_SIZE)
        variant = (limit << 2) | (0 if edns is None else (3 if edns.do else 1))
        qname_lower = q.qname.lower()
        qlower = qname_lower + q.question[len(qname_lower) :]
        key = (qlower, variant)
        entry = self._memo.get(key)
        if entry is None:
            ans = self.catalog.resolve(qname_lower, qtype)
            if ans.rcode == REFUSED:
                self.stats.refused += 1
            entry = r.render(qlower, ans, limit, opt)
            if ans.wild is not None:
                self._cacheable = False  # nor in the reply cache (see the module's doc)
                self._learn_wild(qlower, qname_lower, ans.wild, qtype, variant, entry, limit,
                                 opt)
            elif (self.memo_budget.used < self.memo_budget.gate
                  or self._memo_door.admit(key)):
                self.memo_budget.add(key, entry, len(qlower) + len(entry[1]) + len(entry[2]))
        elif key in self._warm_keys:
            self._pinned_hit = True
        flags, counts, tail = entry
        return q.msg_id + (flags | rdcd).to_bytes(2, "big") + counts + q.question + tail

    def warm(self) -> Iterator[int]:
        """Precompute the answers of every name and type of every zone, for the common
        size classes (no EDNS; EDNS at our payload size), one entry per step.  These
        entries are pinned; precomputation stops when they fill the memo's byte budget
        (the rest are memoised on demand).

        A generator so that the caller decides when to do the work: the unikernel runs
        it in slices after its listeners are up, so the first answer is not delayed.
        Stops early if another catalog is loaded meanwhile.
        """
        catalog = self.catalog
        variants = ((NO_EDNS_LIMIT, None), (r.SERVER_UDP_SIZE, r.opt_record(False)))
        done = 0
        for zone in list(catalog.zones.values()):
            for owner, node in zone.nodes.items():
                for rtype in node:
                    for limit, opt in variants:
                        if self.catalog is not catalog:
                            return
                        question = owner + rtype.to_bytes(2, "big") + b"\x00\x01"
                        variant = (limit << 2) | (0 if opt is None else 1)
                        key = (question, variant)
                        if key not in self._warm_keys:
                            ans = catalog.resolve(owner, rtype)
                            entry = r.render(question, ans, limit, opt)
                            self._memo.pop(key, None)  # made on demand: pinned from now on
                            if not self.memo_budget.add(
                                    key, entry,
                                    len(question) + len(entry[1]) + len(entry[2]), pinned=True):
                                return  # the budget is full: the rest on demand
                            self._warm_keys.add(key)
                        done += 1
                        yield done

    # -- transfers -----------------------------------------------------------------------

    def axfr_allowed(self, peer: tuple[str, int] | None) -> bool:
        """Whether ``peer`` is on the transfer allow-list."""
        if peer is None:
            return False
        try:
            addr = ipaddress.ip_address(peer[0])
        except ValueError:
            return False
        return any(addr in net for net in self.axfr_allow)

    def _transfer(self, payload: bytes, peer: tuple[str, int] | None) -> Iterator[bytes]:
        try:
            q = parse_query(payload)
        except Drop:
            self.stats.dropped += 1
            return
        except FormErr as exc:
            self.stats.formerr += 1
            yield r.header_only(exc.msg_id, r.QR | (exc.flags & r.RD) | FORMERR, exc.question,
                                r.opt_record(False) if exc.edns else None)
            return
        rdcd = q.flags & (r.RD | r.CD)
        if q.qclass != IN:
            yield r.header_only(q.msg_id, r.QR | rdcd | REFUSED, q.question, None)
            return
        if not self.axfr_allowed(peer):
            self.stats.axfr_refused += 1
            yield r.header_only(q.msg_id, r.QR | rdcd | REFUSED, q.question, None)
            return
        qname = q.qname.lower()
        zone = self.catalog.zones.get(qname)
        if zone is None:
            yield r.header_only(q.msg_id, r.QR | rdcd | NOTAUTH, q.question, None)
            return
        self.stats.axfr += 1
        messages = self._transfers.get(qname)
        if messages is None:
            messages = transfer_messages(zone)
            self._transfers[qname] = messages
        # IXFR without history is answered with the whole zone (RFC 1995 section 4).
        first_question = q.question
        flags = (r.QR | r.AA | rdcd).to_bytes(2, "big")
        for i, body in enumerate(messages):
            if i == 0:
                qlen = len(first_question)
                yield q.msg_id + flags + body[4:12] + first_question + body[12 + qlen :]
            else:
                yield q.msg_id + flags + body[4:]


def _rd_cd(payload: bytes) -> int:
    """The query's RD and CD bits, in place, for the response's flags."""
    return ((payload[2] & 0x01) << 8) | (payload[3] & 0x10)


def _query_shape(payload: bytes) -> tuple[int, int, int] | None:
    """(end of the question name as guessed, end of the question, size variant) of a query
    of the common shape, or None (see ``Server._memo_fast``)."""
    n = len(payload)
    if n < 17 or payload[2] & 0xF8 or payload[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None
    qend = question_end(payload, False)  # a guess, proved by a memo hit
    if qend < 0:
        return None
    end = qend - 5
    arcount = payload[10:12]
    if arcount == b"\x00\x00":
        if n != qend:
            return None
        return end, qend, NO_EDNS_LIMIT << 2
    if arcount != b"\x00\x01":
        return None
    if n < qend + 11 or payload[qend : qend + 3] != b"\x00\x00\x29" or payload[qend + 6]:
        return None
    if int.from_bytes(payload[qend + 9 : qend + 11], "big") != n - qend - 11:
        return None
    pos = qend + 11
    while pos < n:  # the options must be well-formed, as the full parser requires
        if pos + 4 > n:
            return None
        pos += 4 + int.from_bytes(payload[pos + 2 : pos + 4], "big")
    if pos != n:
        return None
    size = int.from_bytes(payload[qend + 3 : qend + 5], "big")
    limit = r.SERVER_UDP_SIZE if size >= r.SERVER_UDP_SIZE else max(size, 512)
    return end, qend, (limit << 2) | (3 if payload[qend + 7] & 0x80 else 1)


def _label_starts(name: bytes, end: int) -> frozenset[int]:
    """Offsets of the length bytes of ``name``'s labels before offset ``end``."""
    starts, pos = [], 0
    while pos < end:
        starts.append(pos)
        pos += name[pos] + 1
    return frozenset(starts)


def _shape(name: bytes, end: int) -> bytes:
    """``name`` with every byte of its labels before offset ``end`` zeroed: the names a
    wildcard answers for that share a shape share one memoised answer."""
    out, pos = bytearray(name), 0
    while pos < end:
        n = name[pos]
        out[pos + 1 : pos + 1 + n] = bytes(n)
        pos += n + 1
    return bytes(out)


def _servfail(payload: bytes) -> bytes | None:
    """SERVFAIL with the query's ID, for a query the engine failed on (counted)."""
    if len(payload) < 12 or payload[2] & 0x80:
        return None
    flags = r.QR | (int.from_bytes(payload[2:4], "big") & (r.OPCODE_MASK | r.RD)) | SERVFAIL
    return r.header_only(payload[:2], flags, None, None)

