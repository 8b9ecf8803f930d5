"""ARP (RFC 826) for IPv4 over Ethernet, sans-IO.

The engine answers requests for our addresses only, keeps a cache whose entries expire,
queues packets while a next hop is being resolved (bounded per destination), retries
requests and gives up after a few, and announces our address with a gratuitous ARP.
Frames to send are returned; time is passed in.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fata.net import ethernet
from fata.net.errors import ParseError

PACKET = struct.Struct("!HHBBH6s4s6s4s")
PACKET_LEN = 28
OP_REQUEST = 1
OP_REPLY = 2
_ZERO_IP = b"\0\0\0\0"


@dataclass(slots=True)
class ArpPacket:
    """One parsed ARP packet for Ethernet/IPv4."""

    op: int
    sha: bytes
    spa: bytes
    tha: bytes
    tpa: bytes


def parse(payload: bytes | memoryview) -> ArpPacket:
    """Parse an Ethernet/IPv4 ARP packet; raises ``ParseError``."""
    if len(payload) < PACKET_LEN:
        raise ParseError("arp_short")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = PACKET.unpack_from(payload)
    if htype != 1 or ptype != ethernet.ETHERTYPE_IPV4 or hlen != 6 or plen != 4:
        raise ParseError("arp_unsupported", f"htype={htype} ptype={ptype:#x}")
    if op not in (OP_REQUEST, OP_REPLY):
        raise ParseError("arp_bad_op", str(op))
    return ArpPacket(op, sha, spa, tha, tpa)


def build(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes, dst_mac: bytes) -> bytes:
    """A complete Ethernet frame carrying one ARP packet."""
    return ethernet.header(dst_mac, sha, ethernet.ETHERTYPE_ARP) + PACKET.pack(
        1, ethernet.ETHERTYPE_IPV4, 6, 4, op, sha, spa, tha, tpa
    )


@dataclass(slots=True)
class _Pending:
    tries: int
    next_try: float
    queue: deque[Any] = field(default_factory=deque)


class Arp:
    """ARP cache and resolver for one interface."""

    def __init__(
        self,
        mac: bytes,
        *,
        entry_ttl: float = 60.0,
        retry_interval: float = 1.0,
        max_tries: int = 3,
        max_queued: int = 64,
        max_entries: int = 4096,
    ) -> None:
        self.mac = mac
        self.addresses: set[bytes] = set()
        self.entry_ttl = entry_ttl
        self.retry_interval = retry_interval
        self.max_tries = max_tries
        self.max_queued = max_queued
        self.max_entries = max_entries
        self.cache: dict[bytes, tuple[bytes, float]] = {}
        self.pending: dict[bytes, _Pending] = {}
        self.counters: dict[str, int] = {}
        self.moved: Callable[[bytes], None] | None = None
        """Called with an address whose MAC changed (a peer replaced, a new host-side
        device): whoever cached frames' headers for it must forget them."""

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _request(self, ip: bytes) -> bytes:
        spa = next(iter(self.addresses), _ZERO_IP)
        return build(OP_REQUEST, self.mac, spa, b"\0" * 6, ip, ethernet.BROADCAST)

    def gratuitous(self, ip: bytes) -> bytes:
        """An announcement of ``ip`` (a request for our own address, RFC 5227 §3)."""
        return build(OP_REQUEST, self.mac, ip, b"\0" * 6, ip, ethernet.BROADCAST)

    def lookup(self, ip: bytes, now: float) -> bytes | None:
        """The cached MAC of ``ip`` if it has not expired."""
        entry = self.cache.get(ip)
        if entry is None or entry[1] < now:
            return None
        return entry[0]

    def resolve(self, ip: bytes, item: Any, now: float) -> list[bytes]:
        """Queue ``item`` until ``ip`` resolves; returns the request frames to send now."""
        pending = self.pending.get(ip)
        if pending is None:
            pending = _Pending(1, now + self.retry_interval)
            self.pending[ip] = pending
            pending.queue.append(item)
            self._count("requests_sent")
            return [self._request(ip)]
        if len(pending.queue) >= self.max_queued:
            pending.queue.popleft()
            self._count("queue_overflow_drops")
        pending.queue.append(item)
        return []

    def _learn(self, ip: bytes, mac: bytes, now: float) -> list[tuple[bytes, Any]]:
        if len(self.cache) >= self.max_entries and ip not in self.cache:
            oldest = min(self.cache, key=lambda k: self.cache[k][1])
            del self.cache[oldest]
        before = self.cache.get(ip)
        self.cache[ip] = (mac, now + self.entry_ttl)
        if before is not None and before[0] != mac:
            self._count("moved")
            if self.moved is not None:
                self.moved(ip)
        pending = self.pending.pop(ip, None)
        if pending is None:
            return []
        return [(mac, item) for item in pending.queue]

    def input(
        self, payload: bytes | memoryview, now: float
    ) -> tuple[list[bytes], list[tuple[bytes, Any]]]:
        """Handle one ARP packet: (frames to send, queued items now sendable to a MAC)."""
        pkt = parse(payload)
        out: list[bytes] = []
        released: list[tuple[bytes, Any]] = []
        if not ethernet.is_unicast(pkt.sha) or pkt.sha == self.mac:
            self._count("bad_sender_drops")
            return out, released
        if pkt.spa != _ZERO_IP and pkt.spa in self.addresses:
            self._count("address_conflicts")
            return out, released
        for_us = pkt.tpa in self.addresses
        if pkt.spa != _ZERO_IP and (for_us or pkt.spa in self.cache or pkt.spa in self.pending):
            released = self._learn(pkt.spa, pkt.sha, now)
        if for_us and pkt.op == OP_REQUEST:
            self._count("replies_sent")
            out.append(build(OP_REPLY, self.mac, pkt.tpa, pkt.sha, pkt.spa, pkt.sha))
        elif not for_us:
            self._count("not_for_us")
        return out, released

    def on_timer(self, now: float) -> tuple[list[bytes], list[Any]]:
        """Retry due requests: (frames to send, queued items dropped after the last try)."""
        out: list[bytes] = []
        dropped: list[Any] = []
        for ip in [ip for ip, p in self.pending.items() if p.next_try <= now]:
            pending = self.pending[ip]
            if pending.tries >= self.max_tries:
                del self.pending[ip]
                dropped.extend(pending.queue)
                self._count("resolution_failures")
                continue
            pending.tries += 1
            pending.next_try = now + self.retry_interval
            self._count("requests_sent")
            out.append(self._request(ip))
        return out, dropped

    def next_deadline(self) -> float | None:
        """When ``on_timer`` next has work (cache expiry needs no timer: it is checked on lookup)."""
        if not self.pending:
            return None
        return min(p.next_try for p in self.pending.values())
