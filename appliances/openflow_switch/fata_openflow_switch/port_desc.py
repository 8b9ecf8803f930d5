"""``ofp_port``, a port's description (specification 1.3.5, 7.2.1), as port-status and the
port-description reply carry it: 64 bytes, the name NUL-padded to 16."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .ofp_const import OFP_MAX_PORT_NAME_LEN
from .wire import Reader

PORT = struct.Struct("!I4x6s2x16sIIIIIIII")


def fixed_string(value: bytes, size: int) -> bytes:
    """``value`` NUL-padded to ``size`` bytes, as OpenFlow's fixed-size strings are."""
    if len(value) > size:
        raise ValueError(f"{value!r} is longer than {size} bytes")
    return value.ljust(size, b"\0")


def unpad(raw: bytes) -> bytes:
    """A fixed-size string without its NUL padding (whatever precedes the padding is kept,
    so encoding it again gives the same bytes)."""
    return raw.rstrip(b"\0")


@dataclass(frozen=True, slots=True)
class Port:
    """``config``, ``state`` and the features are ``OFPPC_*``, ``OFPPS_*`` and ``OFPPF_*``
    bits; speeds are in kb/s."""

    port_no: int
    hw_addr: bytes
    name: bytes
    config: int = 0
    state: int = 0
    curr: int = 0
    advertised: int = 0
    supported: int = 0
    peer: int = 0
    curr_speed: int = 0
    max_speed: int = 0

    def encode(self) -> bytes:
        return PORT.pack(self.port_no, self.hw_addr, fixed_string(self.name, OFP_MAX_PORT_NAME_LEN),
                         self.config, self.state, self.curr, self.advertised, self.supported,
                         self.peer, self.curr_speed, self.max_speed)

    @classmethod
    def decode(cls, r: Reader) -> Port:
        (port_no, hw_addr, name, config, state, curr, advertised, supported, peer, curr_speed,
         max_speed) = r.unpack(PORT, "port")
        return cls(port_no, hw_addr, unpad(name), config, state, curr, advertised, supported,
                   peer, curr_speed, max_speed)
