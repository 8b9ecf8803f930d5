"""Finishing what a device left to the receiver: partial checksums and large segments.

A TAP or packet socket with virtio-net headers hands over frames as the kernel holds them:
an L4 checksum left partial (``NEEDS_CSUM``: the field holds the pseudo-header sum, the
rest is to be summed from ``csum_start``) and TCP or UDP segments larger than the MTU
(``gso_type``, cut into ``gso_size`` pieces).  Fata's own stack takes them as they are, but
an appliance that forwards frames (a bridge, a switch, a router) must put on the wire what
a wire carries.  :func:`finish` does that, in the sans-IO style: a header and a frame in,
wire frames out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fata.net import checksum
from fata.net.errors import ParseError

VNET_HDR = struct.Struct("<BBHHHH")
NEEDS_CSUM = 1
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4
GSO_UDP_L4 = 5
GSO_ECN = 0x80
_FIN_PSH = 0x09
_CWR = 0x80


@dataclass(frozen=True, slots=True)
class VnetHeader:
    """The virtio-net header fields (``virtio_net_hdr``)."""

    flags: int
    gso_type: int
    hdr_len: int
    gso_size: int
    csum_start: int
    csum_offset: int

    @classmethod
    def parse(cls, data: bytes | memoryview) -> VnetHeader:
        """The first ``VNET_HDR.size`` bytes of ``data``."""
        return cls(*VNET_HDR.unpack_from(data))


def finish(frame: bytes, hdr: VnetHeader) -> list[bytes]:
    """The wire frames for ``frame``: its checksum completed, or its segments, each complete.

    A frame whose offload request does not fit it (offsets outside the frame, an unknown
    GSO type, a non-IP segment) raises ``ParseError``: the device's caller drops and counts it.
    """
    gso = hdr.gso_type & ~GSO_ECN
    if gso == GSO_NONE:
        if not hdr.flags & NEEDS_CSUM:
            return [frame]
        field = hdr.csum_start + hdr.csum_offset
        if hdr.csum_start < 14 or field + 2 > len(frame):
            raise ParseError("offload_bad_csum_offsets")
        out = bytearray(frame)
        out[field:field + 2] = checksum.checksum(out[hdr.csum_start:]).to_bytes(2, "big")
        return [bytes(out)]
    if gso not in (GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4) or hdr.gso_size <= 0:
        raise ParseError("offload_bad_gso")
    return _segment(frame, hdr.csum_start, gso, hdr.gso_size)


def _segment(frame: bytes, l4: int, gso: int, size: int) -> list[bytes]:
    """Cut a TCP or UDP super-segment into complete frames of ``size`` payload bytes."""
    l3 = 18 if frame[12:14] == b"\x81\x00" else 14
    if l4 <= l3 or l4 + 8 > len(frame):
        raise ParseError("offload_bad_gso")
    version = frame[l3] >> 4
    udp = gso == GSO_UDP_L4
    l4_len = 8 if udp else (frame[l4 + 12] >> 4) * 4
    if version not in (4, 6) or (not udp and l4_len < 20) or l4 + l4_len > len(frame):
        raise ParseError("offload_bad_gso")
    ip_head = frame[l3:l4]
    l4_head = frame[l4:l4 + l4_len]
    payload = memoryview(frame)[l4 + l4_len:]
    seq = int.from_bytes(l4_head[4:8], "big")
    ident = int.from_bytes(ip_head[4:6], "big") if version == 4 else 0
    flags = 0 if udp else l4_head[13]
    proto = 17 if udp else 6
    pieces = range(0, max(len(payload), 1), size)
    out: list[bytes] = []
    for n, start in enumerate(pieces):
        chunk = payload[start:start + size]
        last = n == len(pieces) - 1
        head = bytearray(l4_head)
        if udp:
            head[4:6] = (8 + len(chunk)).to_bytes(2, "big")
        else:
            head[4:8] = ((seq + start) & 0xFFFFFFFF).to_bytes(4, "big")
            head[13] = flags & ~((0 if last else _FIN_PSH) | (0 if n == 0 else _CWR))
        head[16 if not udp else 6:18 if not udp else 8] = b"\0\0"
        ip = bytearray(ip_head)
        length = l4_len + len(chunk)
        if version == 4:
            ip[2:4] = (len(ip) + length).to_bytes(2, "big")
            ip[4:6] = ((ident + n) & 0xFFFF).to_bytes(2, "big")
            ip[10:12] = b"\0\0"
            ip[10:12] = checksum.checksum(ip).to_bytes(2, "big")
            pseudo = checksum.pseudo_header_ipv4(bytes(ip[12:16]), bytes(ip[16:20]), proto,
                                                  length)
        else:
            ip[4:6] = (len(ip) - 40 + length).to_bytes(2, "big")
            pseudo = (checksum.partial(ip[8:40]) + proto + length) % 0xFFFF
        field = 16 if not udp else 6
        head[field:field + 2] = checksum.checksum(bytes(head) + chunk, pseudo).to_bytes(2, "big")
        out.append(frame[:l3] + bytes(ip) + bytes(head) + chunk)
    return out
