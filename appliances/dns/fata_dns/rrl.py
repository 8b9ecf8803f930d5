"""Response rate limiting (RRL), sans-IO, after BIND's and Knot's.

An authoritative server answers whoever the source address claims to be, so a spoofed flood
makes it an amplifier aimed at the victim whose address is forged.  RRL bounds the answers
that leave for one client network and one kind of answer: each (client prefix, answer class,
name) has a token bucket refilled at ``rate`` answers per second and allowed to run at most
``window`` seconds of credit into debt; an answer over the rate is dropped, except that every
``slip``-th one is replaced by a truncated answer (TC=1, no records) so that a real client
behind a busy prefix retries over TCP and is served, which a spoofed victim never does.

Answer classes (what BIND accounts separately):

- ``answer``: a positive answer, keyed by (qname, qtype);
- ``nodata``: no records of that type, keyed by qname;
- ``nxdomain``: no such name, keyed by the zone (a flood of random names is one stream);
- ``referral``: a delegation, keyed by the delegated name;
- ``error``: any other rcode, keyed by nothing.

Clients in ``exempt`` networks (BIND's ``exempt-clients``, Knot's ``whitelist``: a monitoring
host, a known resolver) are never limited nor accounted.

Time comes in as ``now``; nothing here reads a clock.  The table is bounded: beyond
``max_entries`` the stalest buckets are forgotten (they have refilled anyway).
"""

from __future__ import annotations

import enum
import ipaddress
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ANSWER, NODATA, NXDOMAIN, REFERRAL, ERROR = "answer", "nodata", "nxdomain", "referral", "error"


class Verdict(enum.Enum):
    """What to do with one answer."""

    SEND = "send"
    DROP = "drop"
    SLIP = "slip"  # send a truncated answer instead


@dataclass(frozen=True)
class RrlConfig:
    """Rates per second per (client prefix, class, name); ``slip`` 0 never slips, 1 always."""

    rate: float = 5.0
    nxdomain_rate: float | None = None  # default: ``rate``
    error_rate: float | None = None  # default: ``rate``
    window: float = 15.0
    slip: int = 2
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    max_entries: int = 100_000
    exempt: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def is_exempt(self, client: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether answers to ``client`` bypass the limiter."""
        return any(client in net for net in self.exempt if net.version == client.version)

    def rate_for(self, kind: str) -> float:
        """The rate of one answer class."""
        if kind == NXDOMAIN and self.nxdomain_rate is not None:
            return self.nxdomain_rate
        if kind == ERROR and self.error_rate is not None:
            return self.error_rate
        return self.rate


@dataclass
class _Bucket:
    balance: float
    stamp: float
    over: int = 0  # answers over the rate since the bucket was last in credit


@dataclass
class RrlCounters:
    """What the limiter did, for the stop line."""

    sent: int = 0
    dropped: int = 0
    slipped: int = 0
    evicted: int = 0


@dataclass
class ResponseRateLimiter:
    """The buckets and the decision for each answer about to leave."""

    config: RrlConfig = field(default_factory=RrlConfig)
    counters: RrlCounters = field(default_factory=RrlCounters)

    def __post_init__(self) -> None:
        self._buckets: OrderedDict[tuple, _Bucket] = OrderedDict()

    def prefix(self, client: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[int, int]:
        """The client's network, as (version, network bits) accounted together."""
        if client.version == 4:
            bits = self.config.ipv4_prefix
            return 4, int(client) >> (32 - bits)
        bits = self.config.ipv6_prefix
        return 6, int(client) >> (128 - bits)

    def check(self, client: ipaddress.IPv4Address | ipaddress.IPv6Address, kind: str,
              name: bytes, now: float) -> Verdict:
        """Account one answer of class ``kind`` about ``name`` (lowercased wire form) to
        ``client``: send it, drop it, or slip a truncated one instead."""
        key = (self.prefix(client), kind, name)
        rate = self.config.rate_for(kind)
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = _Bucket(rate, now)
            buckets[key] = bucket
            if len(buckets) > self.config.max_entries:
                buckets.popitem(last=False)
                self.counters.evicted += 1
        else:
            buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.stamp)
            bucket.balance = min(rate, bucket.balance + elapsed * rate)
            bucket.stamp = now
        bucket.balance -= 1.0
        if bucket.balance >= 0.0:
            bucket.over = 0
            self.counters.sent += 1
            return Verdict.SEND
        bucket.balance = max(bucket.balance, -self.config.window * rate)
        bucket.over += 1
        slip = self.config.slip
        if slip and bucket.over % slip == 0:
            self.counters.slipped += 1
            return Verdict.SLIP
        self.counters.dropped += 1
        return Verdict.DROP


def truncated(query: bytes) -> bytes | None:
    """The slip answer to ``query``: its header with QR, AA and TC set, its question, nothing
    else (None when the query is too short to have a header)."""
    if len(query) < 12:
        return None
    end = 12
    while end < len(query) and query[end]:  # the question name: labels to the root
        if query[end] & 0xC0:
            return None
        end += 1 + query[end]
    end += 5  # the root label, qtype and qclass
    if end > len(query):
        return None
    flags = bytes([(query[2] & 0x79) | 0x86, query[3] & 0x10])  # QR AA TC, opcode, RD; CD
    return query[:2] + flags + b"\x00\x01\x00\x00\x00\x00\x00\x00" + query[12:end]


def classify(reply: bytes, zone_of: Callable[[bytes], bytes]) -> tuple[str, bytes]:
    """The answer class of ``reply`` and the name it is accounted under: (qname, qtype) for
    an answer, qname for NODATA and referrals, the zone (``zone_of(qname)``) for NXDOMAIN,
    nothing for errors.  The question is read as written (lowercased); a reply without a
    readable question is an error."""
    if len(reply) < 12:
        return ERROR, b""
    rcode = reply[3] & 0x0F
    end = 12
    while end < len(reply) and reply[end]:
        if reply[end] & 0xC0:
            return ERROR, b""
        end += 1 + reply[end]
    if end + 5 > len(reply) or reply[4:6] != b"\x00\x01":
        return ERROR, b""
    qname = reply[12:end + 1].lower()
    if rcode == 3:
        return NXDOMAIN, zone_of(qname)
    if rcode != 0:
        return ERROR, b""
    if reply[6:8] != b"\x00\x00":
        return ANSWER, qname + reply[end + 1:end + 3]
    if not reply[2] & 0x04:  # NOERROR, no answer, not authoritative: a referral
        return REFERRAL, qname
    return NODATA, qname


def limited(handler: Callable[[bytes, Any], bytes | None], rrl: ResponseRateLimiter,
            zone_of: Callable[[bytes], bytes],
            now: Callable[[], float]) -> Callable[[bytes, Any], bytes | None]:
    """``handler`` (a datagram handler answering DNS queries) with every answer accounted:
    sent, dropped (None) or replaced by the truncated slip answer.  ``now`` is the clock the
    adapter passes in (the limiter itself reads none)."""
    check = rrl.check
    exempt = rrl.config.is_exempt if rrl.config.exempt else None

    def answer(query: bytes, peer: Any) -> bytes | None:
        reply = handler(query, peer)
        if reply is None or (exempt is not None and exempt(peer[0])):
            return reply
        kind, name = classify(reply, zone_of)
        verdict = check(peer[0], kind, name, now())
        if verdict is Verdict.SEND:
            return reply
        if verdict is Verdict.SLIP:
            return truncated(query)
        return None

    return answer
