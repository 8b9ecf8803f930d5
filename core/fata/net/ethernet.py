"""Ethernet II framing (no 802.1Q: a TAP appliance sees untagged frames)."""

from __future__ import annotations

import struct

from fata.net.errors import ParseError

HEADER = struct.Struct("!6s6sH")
HEADER_LEN = 14
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6


def parse(frame: bytes | memoryview) -> tuple[bytes, bytes, int]:
    """Return (destination MAC, source MAC, ethertype); the payload starts at ``HEADER_LEN``."""
    if len(frame) < HEADER_LEN:
        raise ParseError("eth_short", f"{len(frame)} bytes")
    dst, src, ethertype = HEADER.unpack_from(frame)
    if ethertype < 0x0600:
        raise ParseError("eth_not_ethernet_ii", f"length field {ethertype}")
    return dst, src, ethertype


def header(dst: bytes, src: bytes, ethertype: int) -> bytes:
    """The 14-byte header to put in front of a payload."""
    return HEADER.pack(dst, src, ethertype)


def mac_to_str(mac: bytes) -> str:
    """``02:00:00:00:00:01`` form."""
    return ":".join(f"{b:02x}" for b in mac)


def mac_from_str(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff``; raises ``ValueError``."""
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def is_unicast(mac: bytes) -> bool:
    """Whether ``mac`` names one station (the group bit is clear)."""
    return not mac[0] & 1
