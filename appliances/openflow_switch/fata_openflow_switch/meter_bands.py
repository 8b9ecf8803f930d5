"""Meter bands (``ofp_meter_band_*``, specification 1.3.5, 7.3.4.5), as meter-mod and the
meter-configuration reply carry them.

A band's length that is short, wrong for its type or past the list is ``OFPBRC_BAD_LEN``
(meter-mod has no length error of its own; OVS answers the same), an unknown band type is
``OFPMMFC_BAD_BAND``.  Experimenter bands are kept (ID and bytes) for the switch to refuse.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from .ofp_const import ErrorType, MeterBandType, MeterModFailedCode
from .wire import BAD_REQUEST_LEN, Reader

BAND_HEADER = struct.Struct("!HHII")
_DROP = struct.Struct("!HHII4x")
_DSCP = struct.Struct("!HHIIB3x")
_EXPERIMENTER = struct.Struct("!HHIII")


class MeterBand:
    """Base of the band classes: ``band_type`` is the wire's ``ofp_meter_band_type``;
    ``rate`` is in kb/s or packets/s as the meter's flags say, ``burst_size`` likewise."""

    __slots__ = ()
    band_type: ClassVar[int]

    def encode(self) -> bytes:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class DropBand(MeterBand):
    band_type: ClassVar[int] = MeterBandType.DROP
    rate: int
    burst_size: int = 0

    def encode(self) -> bytes:
        return _DROP.pack(self.band_type, _DROP.size, self.rate, self.burst_size)


@dataclass(frozen=True, slots=True)
class DscpRemarkBand(MeterBand):
    """Raise the drop precedence of the DSCP by ``prec_level`` above the rate."""

    band_type: ClassVar[int] = MeterBandType.DSCP_REMARK
    rate: int
    burst_size: int = 0
    prec_level: int = 0

    def encode(self) -> bytes:
        return _DSCP.pack(self.band_type, _DSCP.size, self.rate, self.burst_size, self.prec_level)


@dataclass(frozen=True, slots=True)
class ExperimenterBand(MeterBand):
    band_type: ClassVar[int] = MeterBandType.EXPERIMENTER
    rate: int
    burst_size: int
    experimenter: int
    data: bytes = b""

    def encode(self) -> bytes:
        return _EXPERIMENTER.pack(self.band_type, _EXPERIMENTER.size + len(self.data), self.rate,
                                  self.burst_size, self.experimenter) + self.data


def decode_band(r: Reader) -> MeterBand:
    """The next band in ``r``."""
    band_type, length = r.peek_u16(), r.peek_u16(2)
    if length < BAND_HEADER.size or length > r.remaining:
        r.fail(f"meter band of length {length}, {r.remaining} bytes left", BAD_REQUEST_LEN)
    w = r.window(length, BAD_REQUEST_LEN)
    if band_type == MeterBandType.DROP:
        _, _, rate, burst = w.unpack(_DROP, "drop band")
        w.end("drop band")
        return DropBand(rate, burst)
    if band_type == MeterBandType.DSCP_REMARK:
        _, _, rate, burst, prec_level = w.unpack(_DSCP, "dscp_remark band")
        w.end("dscp_remark band")
        return DscpRemarkBand(rate, burst, prec_level)
    if band_type == MeterBandType.EXPERIMENTER:
        _, _, rate, burst, experimenter = w.unpack(_EXPERIMENTER, "experimenter band")
        return ExperimenterBand(rate, burst, experimenter, w.rest())
    r.fail(f"meter band type {band_type}", (ErrorType.METER_MOD_FAILED, MeterModFailedCode.BAD_BAND))


def decode_bands(r: Reader) -> tuple[MeterBand, ...]:
    """Every band left in ``r``."""
    w = r.window(r.remaining, BAD_REQUEST_LEN, "bands")
    bands = []
    while w.remaining:
        bands.append(decode_band(w))
    return tuple(bands)


def encode_bands(bands: tuple[MeterBand, ...] | list[MeterBand]) -> bytes:
    return b"".join(b.encode() for b in bands)
