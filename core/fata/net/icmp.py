"""ICMPv4 (RFC 792): echo replies and the errors a host and a router send (destination
unreachable, fragmentation needed with the next-hop MTU of RFC 1191, time exceeded)."""

from __future__ import annotations

import struct

from fata.net import checksum
from fata.net.errors import ParseError

TYPE_ECHO_REPLY = 0
TYPE_UNREACHABLE = 3
TYPE_ECHO_REQUEST = 8
TYPE_TIME_EXCEEDED = 11
CODE_NET_UNREACHABLE = 0
CODE_HOST_UNREACHABLE = 1
CODE_PORT_UNREACHABLE = 3
CODE_FRAG_NEEDED = 4
ERROR_TYPES = frozenset({TYPE_UNREACHABLE, 4, 5, TYPE_TIME_EXCEEDED, 12})
HEADER = struct.Struct("!BBHI")


def parse(payload: bytes | memoryview) -> tuple[int, int]:
    """Validate an ICMP message and return (type, code); raises ``ParseError``."""
    if len(payload) < 8:
        raise ParseError("icmp_short")
    if not checksum.verify(payload):
        raise ParseError("icmp_bad_checksum")
    return payload[0], payload[1]


def _message(icmp_type: int, code: int, rest: int, body: bytes | memoryview) -> bytes:
    raw = HEADER.pack(icmp_type, code, 0, rest) + bytes(body)
    csum = checksum.checksum(raw)
    return raw[:2] + csum.to_bytes(2, "big") + raw[4:]


def echo_reply(request: bytes | memoryview) -> bytes:
    """The reply to a (validated) echo request: same identifier, sequence and data."""
    rest = int.from_bytes(request[4:8], "big")
    return _message(TYPE_ECHO_REPLY, 0, rest, request[8:])


def echo_request(ident: int, seq: int, data: bytes) -> bytes:
    """An echo request (used by tests and diagnostics)."""
    return _message(TYPE_ECHO_REQUEST, 0, (ident << 16) | seq, data)


def unreachable(code: int, original: bytes | memoryview, mtu: int = 0) -> bytes:
    """A destination-unreachable carrying the original IP header and 8 payload bytes
    (``mtu``: the next-hop MTU of a fragmentation-needed, RFC 1191)."""
    ihl = (original[0] & 0xF) * 4
    return _message(TYPE_UNREACHABLE, code, mtu & 0xFFFF, original[:ihl + 8])


def time_exceeded(original: bytes | memoryview) -> bytes:
    """A time-exceeded in transit (code 0) for a packet whose TTL ran out."""
    ihl = (original[0] & 0xF) * 4
    return _message(TYPE_TIME_EXCEEDED, 0, 0, original[:ihl + 8])


class RateLimiter:
    """A token bucket: ``rate`` events per second with bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.last = 0.0

    def allow(self, now: float) -> bool:
        """Take one token if there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
