"""UDP (RFC 768): datagram parsing and building with the pseudo-header checksum."""

from __future__ import annotations

import struct

from fata.net import checksum
from fata.net.errors import ParseError

HEADER = struct.Struct("!HHHH")
HEADER_LEN = 8
PROTO = 17


def parse(payload: memoryview, src: bytes, dst: bytes,
          verify: bool = True) -> tuple[int, int, memoryview]:
    """Return (source port, destination port, data) of a datagram from ``src`` to ``dst``.

    ``verify`` is False when the checksum was already verified (by device offload); a zero
    checksum field means the sender did not compute one.
    """
    if len(payload) < HEADER_LEN:
        raise ParseError("udp_short")
    sport, dport, length, csum = HEADER.unpack_from(payload)
    if length < HEADER_LEN or length > len(payload):
        raise ParseError("udp_bad_length", f"{length} of {len(payload)}")
    if verify and csum != 0 and not checksum.verify(
            payload[:length], checksum.pseudo_header_ipv4(src, dst, PROTO, length)):
        raise ParseError("udp_bad_checksum")
    if dport == 0:
        raise ParseError("udp_port_zero")
    return sport, dport, payload[HEADER_LEN:length]


def build(sport: int, dport: int, data: bytes | memoryview, pseudo_sum: int) -> bytes:
    """A datagram with a full checksum; ``pseudo_sum`` is ``checksum.pseudo_header_*``'s value
    for the datagram's length (HEADER_LEN + len(data))."""
    length = HEADER_LEN + len(data)
    head = HEADER.pack(sport, dport, length, 0)
    csum = checksum.finish(pseudo_sum + checksum.partial(head) + checksum.partial(data))
    return HEADER.pack(sport, dport, length, csum) + bytes(data)
