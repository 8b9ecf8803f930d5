"""Meters (specification 1.3.5, 5.7 and 7.3.4.4): METER_MOD's commands and checks, and
the rate limiting itself.

Each band is a token bucket on the caller's clock (``now``, never read here): it fills at
the band's rate, in bits for a kb/s meter or packets for a packet/s one, up to the burst
size when the meter has ``OFPMF_BURST`` (else one second of the rate); a packet the bucket
cannot pay for *exceeds* the band.  Of the bands a packet exceeds, the one with the highest
rate applies (5.7): drop, or DSCP remark.  Bands and flags are kept as sent, for the
meter-config reply.
"""

from __future__ import annotations

from .messages import MeterMod
from .meter_bands import DropBand, DscpRemarkBand, MeterBand
from .multipart import Counter, MeterConfig, MeterStats
from .ofp_const import (
    OFPM_ALL,
    OFPM_MAX,
    ErrorType,
    MeterFlags,
    MeterModCommand,
    MeterModFailedCode,
)
from .wire import ErrorCode

_KNOWN_FLAGS = sum(int(f) for f in MeterFlags)
MAX_BANDS = 8


def _failed(code: MeterModFailedCode) -> ErrorCode:
    return (ErrorType.METER_MOD_FAILED, code)


def remark(dscp: int, prec_level: int) -> int:
    """A DSCP with its drop precedence raised by ``prec_level`` (the AF classes' bits 1-2,
    RFC 2597), at most to the highest."""
    precedence = min(3, ((dscp >> 1) & 3) + prec_level)
    return (dscp & ~6) | (precedence << 1)


class _Bucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def take(self, cost: float, now: float) -> bool:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class MeterEntry:
    """An installed meter: the bands as sent, counters, and a token bucket per band."""

    __slots__ = ("band_bytes", "band_packets", "bands", "buckets", "byte_count", "flags",
                 "installed", "meter_id", "packet_count")

    def __init__(self, mod: MeterMod, now: float) -> None:
        self.meter_id = mod.meter_id
        self.flags = mod.flags
        self.bands = mod.bands
        self.installed = now
        self.packet_count = self.byte_count = 0
        self.band_packets = [0] * len(mod.bands)
        self.band_bytes = [0] * len(mod.bands)
        kbps = bool(mod.flags & MeterFlags.KBPS)
        burst = bool(mod.flags & MeterFlags.BURST)
        self.buckets = []
        for band in mod.bands:
            rate = band.rate * (1000 if kbps else 1)  # bits or packets per second
            size = band.burst_size * (1000 if kbps else 1) if burst else rate
            self.buckets.append(_Bucket(rate, max(size, 1), now))

    def meter(self, length: int, now: float) -> MeterBand | None:
        """Count a packet of ``length`` bytes; the band that applies to it, or None."""
        self.packet_count += 1
        self.byte_count += length
        cost = length * 8 if self.flags & MeterFlags.KBPS else 1
        chosen = -1
        for i, bucket in enumerate(self.buckets):
            if not bucket.take(cost, now) and (
                    chosen < 0 or self.bands[i].rate > self.bands[chosen].rate):
                chosen = i
        if chosen < 0:
            return None
        self.band_packets[chosen] += 1
        self.band_bytes[chosen] += length
        return self.bands[chosen]

    def config(self) -> MeterConfig:
        return MeterConfig(self.flags, self.meter_id, self.bands)

    def stats(self, now: float, flow_count: int) -> MeterStats:
        elapsed = max(0.0, now - self.installed)
        sec = int(elapsed)
        return MeterStats(self.meter_id, flow_count, self.packet_count, self.byte_count, sec,
                          min(999_999_999, int((elapsed - sec) * 1e9)),
                          tuple(Counter(p, b) for p, b in zip(self.band_packets,
                                                              self.band_bytes, strict=True)))


class MeterTable:
    """Meters by number (1 to ``OFPM_MAX``; the virtual meters SLOWPATH and CONTROLLER are
    not implemented and refused as invalid)."""

    def __init__(self, max_meters: int = 1024) -> None:
        self.meters: dict[int, MeterEntry] = {}
        self.max_meters = max_meters

    def __contains__(self, meter_id: int) -> bool:
        return meter_id in self.meters

    @staticmethod
    def check(mod: MeterMod) -> ErrorCode | None:
        """The error refusing an ADD or MODIFY's contents, or None."""
        if not 1 <= mod.meter_id <= OFPM_MAX:
            return _failed(MeterModFailedCode.INVALID_METER)
        units = mod.flags & (MeterFlags.KBPS | MeterFlags.PKTPS)
        if mod.flags & ~_KNOWN_FLAGS or units not in (MeterFlags.KBPS, MeterFlags.PKTPS):
            return _failed(MeterModFailedCode.BAD_FLAGS)
        if len(mod.bands) > MAX_BANDS:
            return _failed(MeterModFailedCode.OUT_OF_BANDS)
        for band in mod.bands:
            if not isinstance(band, (DropBand, DscpRemarkBand)):
                return _failed(MeterModFailedCode.BAD_BAND)
            if band.rate == 0:
                return _failed(MeterModFailedCode.BAD_RATE)
            if mod.flags & MeterFlags.BURST and band.burst_size == 0:
                return _failed(MeterModFailedCode.BAD_BURST)
            if isinstance(band, DscpRemarkBand) and not 1 <= band.prec_level <= 3:
                return _failed(MeterModFailedCode.BAD_BAND_VALUE)
        return None

    def apply(self, mod: MeterMod, now: float) -> tuple[ErrorCode | None, list[int]]:
        """Apply ``mod``: its error (nothing changed), or None and the meters deleted (whose
        flows the switch removes)."""
        if mod.command == MeterModCommand.DELETE:
            if mod.meter_id == OFPM_ALL:
                doomed = list(self.meters)
            else:
                doomed = [mod.meter_id] if mod.meter_id in self.meters else []
            for m in doomed:
                del self.meters[m]
            return None, doomed
        if mod.command not in (MeterModCommand.ADD, MeterModCommand.MODIFY):
            return _failed(MeterModFailedCode.BAD_COMMAND), []
        err = self.check(mod)
        if err is not None:
            return err, []
        exists = mod.meter_id in self.meters
        if mod.command == MeterModCommand.ADD:
            if exists:
                return _failed(MeterModFailedCode.METER_EXISTS), []
            if len(self.meters) >= self.max_meters:
                return _failed(MeterModFailedCode.OUT_OF_METERS), []
        elif not exists:
            return _failed(MeterModFailedCode.UNKNOWN_METER), []
        self.meters[mod.meter_id] = MeterEntry(mod, now)
        return None, []
