"""The bodies of multipart requests and replies (specification 1.3.5, 7.3.5), one class per
``ofp_multipart_type`` and direction; :class:`.messages.MultipartRequest` and
:class:`.messages.MultipartReply` carry them behind the type and flags.

A body of a type the specification does not define is ``OFPBRC_BAD_MULTIPART``; a body or an
entry whose length is wrong is ``OFPBRC_BAD_LEN`` (the table-features entries have their own
``OFPTFFC_BAD_LEN``); matches, instructions, buckets and bands inside fail with their own
errors.  Flow-stats entries keep the match and instructions as decoded, so a reply built
from an installed flow echoes what the controller sent.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar, Self, TypeVar

from .buckets import Bucket, decode_buckets, encode_buckets
from .instructions import Instruction, decode_instructions, encode_instructions
from .meter_bands import MeterBand, decode_bands, encode_bands
from .ofp_const import (
    DESC_STR_LEN,
    OFPG_ALL,
    OFPG_ANY,
    OFPM_ALL,
    OFPQ_ALL,
    OFPTT_ALL,
    SERIAL_NUM_LEN,
    MultipartType,
    PortNo,
)
from .oxm import MATCH_ANY, Match
from .port_desc import Port, fixed_string, unpad
from .table_features import TableFeatures, decode_table_features
from .wire import BAD_REQUEST_LEN, Reader


class Body:
    """Base of the body classes: ``mp_type`` is the ``ofp_multipart_type``."""

    __slots__ = ()
    mp_type: ClassVar[int]

    def encode(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode(cls, r: Reader) -> Body:
        """The body from ``r``, which holds exactly the body."""
        raise NotImplementedError


class _Record:
    """A fixed-size structure whose dataclass fields are its ``STRUCT``'s, in order (the
    padding is in the format)."""

    __slots__ = ()
    STRUCT: ClassVar[struct.Struct]

    def encode(self) -> bytes:
        return self.STRUCT.pack(*(getattr(self, f.name) for f in fields(self)))  # type: ignore[arg-type]

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(*r.unpack(cls.STRUCT, cls.__name__))


class _RecordBody(_Record):
    """A body that is one record and nothing after it."""

    __slots__ = ()

    @classmethod
    def decode(cls, r: Reader) -> Self:
        body = cls(*r.unpack(cls.STRUCT, cls.__name__))
        r.end(cls.__name__)
        return body


_ID_PADDED = struct.Struct("!I4x")
"""A request for one object (or all of them) by a 32-bit ID, padded to 8 bytes."""

R = TypeVar("R")


def _records(cls: type[_Record], r: Reader) -> tuple:
    """Consecutive ``cls`` records filling ``r``; a partial one is ``OFPBRC_BAD_LEN``."""
    if r.remaining % cls.STRUCT.size:
        r.fail(f"{r.remaining} bytes is not a whole number of {cls.__name__}")
    out = []
    while r.remaining:
        out.append(cls.decode(r))
    return tuple(out)


def _entries(decode_one: Callable[[Reader], R], r: Reader) -> tuple[R, ...]:
    """Variable-length entries filling ``r``, each read by ``decode_one``."""
    out = []
    while r.remaining:
        out.append(decode_one(r))
    return tuple(out)


def _entry_window(r: Reader, minimum: int, what: str) -> Reader:
    """The next entry whose first u16 is its length (at least ``minimum``)."""
    length = r.peek_u16()
    if length < minimum or length > r.remaining:
        r.fail(f"{what} of length {length}, {r.remaining} bytes left")
    return r.window(length, BAD_REQUEST_LEN, what)


@dataclass(frozen=True, slots=True)
class _Empty(Body):
    def encode(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, r: Reader) -> Body:
        r.end(f"{cls.__name__} (it has no body)")
        return cls()


# --- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DescRequest(_Empty):
    mp_type: ClassVar[int] = MultipartType.DESC


_FLOW_REQUEST = struct.Struct("!B3xII4xQQ")


@dataclass(frozen=True, slots=True)
class _FlowSelect(Body):
    """The flow selection of the flow and aggregate requests."""

    table_id: int = OFPTT_ALL
    out_port: int = PortNo.ANY
    out_group: int = OFPG_ANY
    cookie: int = 0
    cookie_mask: int = 0
    match: Match = MATCH_ANY

    def encode(self) -> bytes:
        return _FLOW_REQUEST.pack(self.table_id, self.out_port, self.out_group, self.cookie,
                                  self.cookie_mask) + self.match.encode()

    @classmethod
    def decode(cls, r: Reader) -> Body:
        table_id, out_port, out_group, cookie, cookie_mask = r.unpack(_FLOW_REQUEST)
        match = Match.decode(r)
        r.end("flow request's match")
        return cls(table_id, out_port, out_group, cookie, cookie_mask, match)


@dataclass(frozen=True, slots=True)
class FlowStatsRequest(_FlowSelect):
    mp_type: ClassVar[int] = MultipartType.FLOW


@dataclass(frozen=True, slots=True)
class AggregateStatsRequest(_FlowSelect):
    mp_type: ClassVar[int] = MultipartType.AGGREGATE


@dataclass(frozen=True, slots=True)
class TableStatsRequest(_Empty):
    mp_type: ClassVar[int] = MultipartType.TABLE


@dataclass(frozen=True, slots=True)
class PortStatsRequest(_RecordBody, Body):
    mp_type: ClassVar[int] = MultipartType.PORT_STATS
    STRUCT: ClassVar[struct.Struct] = _ID_PADDED
    port_no: int = PortNo.ANY


@dataclass(frozen=True, slots=True)
class QueueStatsRequest(_RecordBody, Body):
    mp_type: ClassVar[int] = MultipartType.QUEUE
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!II")
    port_no: int = PortNo.ANY
    queue_id: int = OFPQ_ALL


@dataclass(frozen=True, slots=True)
class GroupStatsRequest(_RecordBody, Body):
    mp_type: ClassVar[int] = MultipartType.GROUP
    STRUCT: ClassVar[struct.Struct] = _ID_PADDED
    group_id: int = OFPG_ALL


@dataclass(frozen=True, slots=True)
class GroupDescRequest(_Empty):
    mp_type: ClassVar[int] = MultipartType.GROUP_DESC


@dataclass(frozen=True, slots=True)
class GroupFeaturesRequest(_Empty):
    mp_type: ClassVar[int] = MultipartType.GROUP_FEATURES


@dataclass(frozen=True, slots=True)
class MeterStatsRequest(_RecordBody, Body):
    mp_type: ClassVar[int] = MultipartType.METER
    STRUCT: ClassVar[struct.Struct] = _ID_PADDED
    meter_id: int = OFPM_ALL


@dataclass(frozen=True, slots=True)
class MeterConfigRequest(_RecordBody, Body):
    mp_type: ClassVar[int] = MultipartType.METER_CONFIG
    STRUCT: ClassVar[struct.Struct] = _ID_PADDED
    meter_id: int = OFPM_ALL


@dataclass(frozen=True, slots=True)
class MeterFeaturesRequest(_Empty):
    mp_type: ClassVar[int] = MultipartType.METER_FEATURES


@dataclass(frozen=True, slots=True)
class _TableFeaturesList(Body):
    tables: tuple[TableFeatures, ...] = ()

    def encode(self) -> bytes:
        return b"".join(t.encode() for t in self.tables)

    @classmethod
    def decode(cls, r: Reader) -> Body:
        return cls(decode_table_features(r))


@dataclass(frozen=True, slots=True)
class TableFeaturesRequest(_TableFeaturesList):
    """With no tables: what are the features; with tables: set them (7.3.5.18)."""

    mp_type: ClassVar[int] = MultipartType.TABLE_FEATURES


@dataclass(frozen=True, slots=True)
class PortDescRequest(_Empty):
    mp_type: ClassVar[int] = MultipartType.PORT_DESC


_EXPERIMENTER = struct.Struct("!II")


@dataclass(frozen=True, slots=True)
class ExperimenterMultipart(Body):
    """An experimenter request or reply body: ID, type, and bytes."""

    mp_type: ClassVar[int] = MultipartType.EXPERIMENTER
    experimenter: int
    exp_type: int
    data: bytes = b""

    def encode(self) -> bytes:
        return _EXPERIMENTER.pack(self.experimenter, self.exp_type) + self.data

    @classmethod
    def decode(cls, r: Reader) -> ExperimenterMultipart:
        experimenter, exp_type = r.unpack(_EXPERIMENTER)
        return cls(experimenter, exp_type, r.rest())


# --- replies --------------------------------------------------------------------------------

_DESC = struct.Struct(f"!{DESC_STR_LEN}s{DESC_STR_LEN}s{DESC_STR_LEN}s{SERIAL_NUM_LEN}s"
                      f"{DESC_STR_LEN}s")


@dataclass(frozen=True, slots=True)
class DescReply(Body):
    mp_type: ClassVar[int] = MultipartType.DESC
    mfr_desc: bytes = b""
    hw_desc: bytes = b""
    sw_desc: bytes = b""
    serial_num: bytes = b""
    dp_desc: bytes = b""

    def encode(self) -> bytes:
        return _DESC.pack(fixed_string(self.mfr_desc, DESC_STR_LEN),
                          fixed_string(self.hw_desc, DESC_STR_LEN),
                          fixed_string(self.sw_desc, DESC_STR_LEN),
                          fixed_string(self.serial_num, SERIAL_NUM_LEN),
                          fixed_string(self.dp_desc, DESC_STR_LEN))

    @classmethod
    def decode(cls, r: Reader) -> DescReply:
        values = r.unpack(_DESC)
        r.end("desc reply")
        return cls(*(unpad(v) for v in values))


_FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")


@dataclass(frozen=True, slots=True)
class FlowStats:
    """One flow-stats entry."""

    table_id: int
    duration_sec: int
    duration_nsec: int
    priority: int
    idle_timeout: int
    hard_timeout: int
    flags: int
    cookie: int
    packet_count: int
    byte_count: int
    match: Match = MATCH_ANY
    instructions: tuple[Instruction, ...] = ()

    def encode(self) -> bytes:
        tail = self.match.encode() + encode_instructions(self.instructions)
        return _FLOW_STATS.pack(_FLOW_STATS.size + len(tail), self.table_id, self.duration_sec,
                                self.duration_nsec, self.priority, self.idle_timeout,
                                self.hard_timeout, self.flags, self.cookie, self.packet_count,
                                self.byte_count) + tail

    @classmethod
    def decode(cls, r: Reader) -> FlowStats:
        w = _entry_window(r, _FLOW_STATS.size, "flow stats")
        _, *values = w.unpack(_FLOW_STATS)
        match = Match.decode(w)
        return cls(*values, match, decode_instructions(w))


@dataclass(frozen=True, slots=True)
class FlowStatsReply(Body):
    mp_type: ClassVar[int] = MultipartType.FLOW
    flows: tuple[FlowStats, ...] = ()

    def encode(self) -> bytes:
        return b"".join(f.encode() for f in self.flows)

    @classmethod
    def decode(cls, r: Reader) -> FlowStatsReply:
        return cls(_entries(FlowStats.decode, r))


@dataclass(frozen=True, slots=True)
class AggregateStatsReply(_RecordBody, Body):
    mp_type: ClassVar[int] = MultipartType.AGGREGATE
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!QQI4x")
    packet_count: int = 0
    byte_count: int = 0
    flow_count: int = 0


@dataclass(frozen=True, slots=True)
class TableStats(_Record):
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!B3xIQQ")
    table_id: int
    active_count: int = 0
    lookup_count: int = 0
    matched_count: int = 0


@dataclass(frozen=True, slots=True)
class TableStatsReply(Body):
    mp_type: ClassVar[int] = MultipartType.TABLE
    tables: tuple[TableStats, ...] = ()

    def encode(self) -> bytes:
        return b"".join(t.encode() for t in self.tables)

    @classmethod
    def decode(cls, r: Reader) -> TableStatsReply:
        return cls(_records(TableStats, r))


@dataclass(frozen=True, slots=True)
class PortStats(_Record):
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!I4x12QII")
    port_no: int
    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_frame_err: int = 0
    rx_over_err: int = 0
    rx_crc_err: int = 0
    collisions: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0


@dataclass(frozen=True, slots=True)
class PortStatsReply(Body):
    mp_type: ClassVar[int] = MultipartType.PORT_STATS
    ports: tuple[PortStats, ...] = ()

    def encode(self) -> bytes:
        return b"".join(p.encode() for p in self.ports)

    @classmethod
    def decode(cls, r: Reader) -> PortStatsReply:
        return cls(_records(PortStats, r))


@dataclass(frozen=True, slots=True)
class QueueStats(_Record):
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!IIQQQII")
    port_no: int
    queue_id: int
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0


@dataclass(frozen=True, slots=True)
class QueueStatsReply(Body):
    mp_type: ClassVar[int] = MultipartType.QUEUE
    queues: tuple[QueueStats, ...] = ()

    def encode(self) -> bytes:
        return b"".join(q.encode() for q in self.queues)

    @classmethod
    def decode(cls, r: Reader) -> QueueStatsReply:
        return cls(_records(QueueStats, r))


@dataclass(frozen=True, slots=True)
class Counter(_Record):
    """A bucket's or a meter band's packet and byte counts."""

    STRUCT: ClassVar[struct.Struct] = struct.Struct("!QQ")
    packet_count: int = 0
    byte_count: int = 0


_GROUP_STATS = struct.Struct("!H2xII4xQQII")


@dataclass(frozen=True, slots=True)
class GroupStats:
    group_id: int
    ref_count: int = 0
    packet_count: int = 0
    byte_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    bucket_stats: tuple[Counter, ...] = ()

    def encode(self) -> bytes:
        tail = b"".join(c.encode() for c in self.bucket_stats)
        return _GROUP_STATS.pack(_GROUP_STATS.size + len(tail), self.group_id, self.ref_count,
                                 self.packet_count, self.byte_count, self.duration_sec,
                                 self.duration_nsec) + tail

    @classmethod
    def decode(cls, r: Reader) -> GroupStats:
        w = _entry_window(r, _GROUP_STATS.size, "group stats")
        _, *values = w.unpack(_GROUP_STATS)
        return cls(*values, _records(Counter, w))


@dataclass(frozen=True, slots=True)
class GroupStatsReply(Body):
    mp_type: ClassVar[int] = MultipartType.GROUP
    groups: tuple[GroupStats, ...] = ()

    def encode(self) -> bytes:
        return b"".join(g.encode() for g in self.groups)

    @classmethod
    def decode(cls, r: Reader) -> GroupStatsReply:
        return cls(_entries(GroupStats.decode, r))


_GROUP_DESC = struct.Struct("!HBxI")


@dataclass(frozen=True, slots=True)
class GroupDesc:
    group_type: int
    group_id: int
    buckets: tuple[Bucket, ...] = ()

    def encode(self) -> bytes:
        tail = encode_buckets(self.buckets)
        return _GROUP_DESC.pack(_GROUP_DESC.size + len(tail), self.group_type,
                                self.group_id) + tail

    @classmethod
    def decode(cls, r: Reader) -> GroupDesc:
        w = _entry_window(r, _GROUP_DESC.size, "group desc")
        _, group_type, group_id = w.unpack(_GROUP_DESC)
        return cls(group_type, group_id, decode_buckets(w))


@dataclass(frozen=True, slots=True)
class GroupDescReply(Body):
    mp_type: ClassVar[int] = MultipartType.GROUP_DESC
    groups: tuple[GroupDesc, ...] = ()

    def encode(self) -> bytes:
        return b"".join(g.encode() for g in self.groups)

    @classmethod
    def decode(cls, r: Reader) -> GroupDescReply:
        return cls(_entries(GroupDesc.decode, r))


_GROUP_FEATURES = struct.Struct("!II4I4I")


@dataclass(frozen=True, slots=True)
class GroupFeaturesReply(Body):
    """``types`` is a bitmap of ``1 << OFPGT_*``, ``actions`` of ``1 << OFPAT_*``; the
    four-element tuples are indexed by group type."""

    mp_type: ClassVar[int] = MultipartType.GROUP_FEATURES
    types: int = 0
    capabilities: int = 0
    max_groups: tuple[int, int, int, int] = (0, 0, 0, 0)
    actions: tuple[int, int, int, int] = (0, 0, 0, 0)

    def encode(self) -> bytes:
        return _GROUP_FEATURES.pack(self.types, self.capabilities, *self.max_groups,
                                    *self.actions)

    @classmethod
    def decode(cls, r: Reader) -> GroupFeaturesReply:
        v = r.unpack(_GROUP_FEATURES)
        r.end("group features reply")
        return cls(v[0], v[1], tuple(v[2:6]), tuple(v[6:10]))  # type: ignore[arg-type]


_METER_STATS = struct.Struct("!IH6xIQQII")


@dataclass(frozen=True, slots=True)
class MeterStats:
    meter_id: int
    flow_count: int = 0
    packet_in_count: int = 0
    byte_in_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    band_stats: tuple[Counter, ...] = ()

    def encode(self) -> bytes:
        tail = b"".join(c.encode() for c in self.band_stats)
        return _METER_STATS.pack(self.meter_id, _METER_STATS.size + len(tail), self.flow_count,
                                 self.packet_in_count, self.byte_in_count, self.duration_sec,
                                 self.duration_nsec) + tail

    @classmethod
    def decode(cls, r: Reader) -> MeterStats:
        length = r.peek_u16(4)  # after the meter ID
        if length < _METER_STATS.size or length > r.remaining:
            r.fail(f"meter stats of length {length}, {r.remaining} bytes left")
        w = r.window(length, BAD_REQUEST_LEN)
        meter_id, _, *values = w.unpack(_METER_STATS)
        return cls(meter_id, *values, _records(Counter, w))


@dataclass(frozen=True, slots=True)
class MeterStatsReply(Body):
    mp_type: ClassVar[int] = MultipartType.METER
    meters: tuple[MeterStats, ...] = ()

    def encode(self) -> bytes:
        return b"".join(m.encode() for m in self.meters)

    @classmethod
    def decode(cls, r: Reader) -> MeterStatsReply:
        return cls(_entries(MeterStats.decode, r))


_METER_CONFIG = struct.Struct("!HHI")


@dataclass(frozen=True, slots=True)
class MeterConfig:
    flags: int
    meter_id: int
    bands: tuple[MeterBand, ...] = ()

    def encode(self) -> bytes:
        tail = encode_bands(self.bands)
        return _METER_CONFIG.pack(_METER_CONFIG.size + len(tail), self.flags, self.meter_id) + tail

    @classmethod
    def decode(cls, r: Reader) -> MeterConfig:
        w = _entry_window(r, _METER_CONFIG.size, "meter config")
        _, flags, meter_id = w.unpack(_METER_CONFIG)
        return cls(flags, meter_id, decode_bands(w))


@dataclass(frozen=True, slots=True)
class MeterConfigReply(Body):
    mp_type: ClassVar[int] = MultipartType.METER_CONFIG
    meters: tuple[MeterConfig, ...] = ()

    def encode(self) -> bytes:
        return b"".join(m.encode() for m in self.meters)

    @classmethod
    def decode(cls, r: Reader) -> MeterConfigReply:
        return cls(_entries(MeterConfig.decode, r))


@dataclass(frozen=True, slots=True)
class MeterFeaturesReply(_RecordBody, Body):
    """``band_types`` is a bitmap of ``1 << OFPMBT_*``, ``capabilities`` of ``OFPMF_*``."""

    mp_type: ClassVar[int] = MultipartType.METER_FEATURES
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!IIIBB2x")
    max_meter: int = 0
    band_types: int = 0
    capabilities: int = 0
    max_bands: int = 0
    max_color: int = 0


@dataclass(frozen=True, slots=True)
class TableFeaturesReply(_TableFeaturesList):
    mp_type: ClassVar[int] = MultipartType.TABLE_FEATURES


@dataclass(frozen=True, slots=True)
class PortDescReply(Body):
    mp_type: ClassVar[int] = MultipartType.PORT_DESC
    ports: tuple[Port, ...] = ()

    def encode(self) -> bytes:
        return b"".join(p.encode() for p in self.ports)

    @classmethod
    def decode(cls, r: Reader) -> PortDescReply:
        return cls(_entries(Port.decode, r))


REQUEST_BODIES: dict[int, type[Body]] = {cls.mp_type: cls for cls in (
    DescRequest, FlowStatsRequest, AggregateStatsRequest, TableStatsRequest, PortStatsRequest,
    QueueStatsRequest, GroupStatsRequest, GroupDescRequest, GroupFeaturesRequest,
    MeterStatsRequest, MeterConfigRequest, MeterFeaturesRequest, TableFeaturesRequest,
    PortDescRequest, ExperimenterMultipart)}

REPLY_BODIES: dict[int, type[Body]] = {cls.mp_type: cls for cls in (
    DescReply, FlowStatsReply, AggregateStatsReply, TableStatsReply, PortStatsReply,
    QueueStatsReply, GroupStatsReply, GroupDescReply, GroupFeaturesReply, MeterStatsReply,
    MeterConfigReply, MeterFeaturesReply, TableFeaturesReply, PortDescReply,
    ExperimenterMultipart)}
