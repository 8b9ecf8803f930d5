"""TCP segment wire format (RFC 9293 §3.1) and options: MSS, window scale, SACK, timestamps."""

from __future__ import annotations

import struct

from fata.net import checksum
from fata.net.errors import ParseError

HEADER = struct.Struct("!HHIIBBHHH")
HEADER_LEN = 20
PROTO = 6
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
_TS_PREFIX = b"\x01\x01\x08\x0a"


class Segment:
    """One segment, parsed from the wire or about to be built.  Sequence numbers are 32-bit."""

    __slots__ = (
        "ack",
        "dport",
        "flags",
        "mss",
        "payload",
        "sack",
        "sack_permitted",
        "seq",
        "sport",
        "tsecr",
        "tsval",
        "window",
        "wscale",
    )

    def __init__(self, sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
                 payload: bytes | memoryview = b"") -> None:
        self.sport = sport
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.mss: int | None = None
        self.wscale: int | None = None
        self.sack_permitted = False
        self.tsval: int | None = None
        self.tsecr = 0
        self.sack: list[tuple[int, int]] = []
        self.payload = payload

    def __repr__(self) -> str:
        names = "".join(c for bit, c in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"),
                                         (ACK, "."), (URG, "U")) if self.flags & bit)
        return (f"<Segment {self.sport}>{self.dport} [{names}] seq={self.seq} ack={self.ack} "
                f"win={self.window} len={len(self.payload)}>")


def _parse_options(seg: Segment, opts: memoryview) -> None:
    if len(opts) == 12 and opts[:4] == _TS_PREFIX:  # the common case: NOP NOP TS
        seg.tsval, seg.tsecr = struct.unpack_from("!II", opts, 4)
        return
    i = 0
    n = len(opts)
    while i < n:
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            raise ParseError("tcp_bad_option")
        length = opts[i + 1]
        if length < 2 or i + length > n:
            raise ParseError("tcp_bad_option")
        if kind == 2 and length == 4:
            seg.mss = int.from_bytes(opts[i + 2:i + 4], "big")
        elif kind == 3 and length == 3:
            seg.wscale = min(opts[i + 2], 14)
        elif kind == 4 and length == 2:
            seg.sack_permitted = True
        elif kind == 5 and (length - 2) % 8 == 0:
            seg.sack = [struct.unpack_from("!II", opts, j) for j in range(i + 2, i + length, 8)]
        elif kind == 8 and length == 10:
            seg.tsval, seg.tsecr = struct.unpack_from("!II", opts, i + 2)
        i += length


def parse(data: memoryview, pseudo: int | None) -> Segment:
    """Parse a segment; ``pseudo`` is the pseudo-header partial sum, None if already verified."""
    if len(data) < HEADER_LEN:
        raise ParseError("tcp_short")
    sport, dport, seq, ack, off, flags, window, _csum, _urg = HEADER.unpack_from(data)
    hlen = (off >> 4) * 4
    if hlen < HEADER_LEN or hlen > len(data):
        raise ParseError("tcp_bad_offset")
    if pseudo is not None and not checksum.verify(data, pseudo):
        raise ParseError("tcp_bad_checksum")
    if sport == 0 or dport == 0:
        raise ParseError("tcp_port_zero")
    seg = Segment(sport, dport, seq, ack, flags & 0x3F, window, data[hlen:])
    if hlen > HEADER_LEN:
        _parse_options(seg, data[HEADER_LEN:hlen])
    return seg


def options(seg: Segment) -> bytes:
    """Encode the segment's options, padded to a multiple of 4 bytes."""
    out = bytearray()
    if seg.mss is not None:
        out += struct.pack("!BBH", 2, 4, seg.mss)
    if seg.wscale is not None:
        out += struct.pack("!BBBB", 1, 3, 3, seg.wscale)
    if seg.sack_permitted:
        out += b"\x01\x01\x04\x02"
    if seg.tsval is not None:
        out += _TS_PREFIX + struct.pack("!II", seg.tsval, seg.tsecr)
    room = (40 - len(out) - 4) // 8  # options never exceed 40 bytes: SACK gives way
    if seg.sack and room > 0:
        blocks = seg.sack[:room]
        out += b"\x01\x01\x05" + bytes([2 + 8 * len(blocks)])
        for left, right in blocks:
            out += struct.pack("!II", left, right)
    return bytes(out)


def header(seg: Segment, pseudo_sum: int | None) -> bytes:
    """The TCP header (options included).

    With ``pseudo_sum`` (the pseudo-header partial for the full segment length) the checksum
    is computed over header and payload; with None the field is left for the caller to fill
    (checksum offload puts the pseudo-header sum there instead).
    """
    opts = options(seg)
    hlen = HEADER_LEN + len(opts)
    head = HEADER.pack(seg.sport, seg.dport, seg.seq, seg.ack, (hlen // 4) << 4, seg.flags,
                       seg.window, 0, 0) + opts
    if pseudo_sum is None:
        return head
    csum = checksum.finish(pseudo_sum + checksum.partial(head) + checksum.partial(seg.payload))
    return head[:16] + csum.to_bytes(2, "big") + head[18:]
