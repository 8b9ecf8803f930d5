"""Is the server ready, and does it answer correctly? Both asked with dnspython.

A fast wrong answer is worth nothing, so before any timing each server is asked a sample of
the benchmark's own queries (present names, absent names) plus the apex and a no-data case,
and every answer is compared with the generated zone (:meth:`zones.Zone.lookup`): rcode,
the authoritative-answer flag, the answer RRset (owner, type, rdata set) and its TTL.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from .zones import TTL, Query, Zone

EDNS_PAYLOAD = 1232
"""The UDP payload the check's queries advertise (DNS flag day 2020's value)."""


def probe(host: str, port: int, origin: str, timeout: float = 0.02) -> bool:
    """True if the server answers an SOA query for ``origin`` over UDP with NOERROR.

    Used to wait for readiness and to time the first answer, so the timeout is short and
    any failure (nothing listening yet, a SERVFAIL while the zone loads) is just "not yet".
    """
    query = dns.message.make_query(origin, dns.rdatatype.SOA)
    try:
        response = dns.query.udp(query, host, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return False
    return response.rcode() == dns.rcode.NOERROR and bool(response.answer)


@dataclass
class CheckResult:
    """Outcome of the correctness check: how many queries were asked, what went wrong."""

    checked: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.checked > 0 and not self.failures


def sample_queries(zone: Zone, queries: Sequence[Query], count: int, seed: int = 7) -> list[Query]:
    """``count`` queries from the mix, at least a tenth of them NXDOMAIN, plus fixed cases.

    The fixed cases are the apex SOA and NS and, when the zone has one, a name with no AAAA
    asked for AAAA (NOERROR with an empty answer), which a sample of the mix never holds.
    """
    rng = random.Random(seed)
    present = [q for q in queries if q.exists]
    absent = [q for q in queries if not q.exists]
    n_absent = min(len(absent), max(1, count // 10)) if absent else 0
    picked = rng.sample(absent, n_absent) + rng.sample(present, min(len(present), count - n_absent))
    fixed = [Query(zone.origin, "SOA", True), Query(zone.origin, "NS", True)]
    no_aaaa = next((h for h in zone.hosts if (h, "AAAA") not in zone.rrsets), None)
    if no_aaaa is not None:
        fixed.append(Query(no_aaaa, "AAAA", True))
    return fixed + picked


def check_answer(zone: Zone, query: Query, response: dns.message.Message) -> str | None:
    """Why ``response`` is a wrong answer to ``query`` for ``zone``, or ``None`` if right."""
    what = f"{query.qname} {query.qtype}"
    want_rcode, want_rdatas = zone.lookup(query.qname, query.qtype)
    got_rcode = dns.rcode.to_text(response.rcode())
    if got_rcode != want_rcode:
        return f"{what}: rcode {got_rcode}, expected {want_rcode}"
    if not response.flags & dns.flags.AA:
        return f"{what}: answer is not authoritative (AA not set)"
    if not want_rdatas:
        if response.answer:
            return f"{what}: expected an empty answer, got {_show(response.answer)}"
        return None
    expected = dns.rrset.from_text_list(
        query.qname, TTL, dns.rdataclass.IN, query.qtype, list(want_rdatas)
    )
    if len(response.answer) != 1:
        return f"{what}: expected 1 answer RRset, got {_show(response.answer)}"
    got = response.answer[0]
    if got != expected:
        return f"{what}: answer {_show([got])}, expected {_show([expected])}"
    if got.ttl != TTL:
        return f"{what}: TTL {got.ttl}, expected {TTL}"
    return None


def _show(rrsets: Sequence[dns.rrset.RRset]) -> str:
    text = " | ".join(r.to_text().replace("\n", "; ") for r in rrsets) or "(empty)"
    return text if len(text) <= 200 else text[:197] + "..."


def check_server(
    host: str,
    port: int,
    zone: Zone,
    sample: Sequence[Query],
    timeout: float = 1.0,
    max_failures: int = 5,
) -> CheckResult:
    """Ask every query of ``sample`` over UDP and compare the answers with ``zone``.

    Stops collecting after ``max_failures`` wrong answers: one is enough to flag the server,
    a few tell a pattern, hundreds only bury it.
    """
    result = CheckResult()
    for query in sample:
        # EDNS with the flag-day payload: the flood zone's ~1 KB TXT answer must fit.
        message = dns.message.make_query(query.qname, query.qtype, use_edns=0,
                                         payload=EDNS_PAYLOAD)
        result.checked += 1
        try:
            response = dns.query.udp(message, host, port=port, timeout=timeout)
        except dns.exception.Timeout:
            problem: str | None = f"{query.qname} {query.qtype}: no answer in {timeout} s"
        except (dns.exception.DNSException, OSError) as exc:
            problem = f"{query.qname} {query.qtype}: {type(exc).__name__}: {exc}"
        else:
            problem = check_answer(zone, query, response)
        if problem is not None:
            result.failures.append(problem)
            if len(result.failures) >= max_failures:
                break
    return result
