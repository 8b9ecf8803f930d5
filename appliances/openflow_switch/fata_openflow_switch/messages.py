"""OpenFlow 1.3 messages (specification 1.3.5, 7.1-7.5): every ``ofp_type``, as frozen
dataclasses that encode to the wire and decode from it.

``decode_message(data)`` takes one whole message (header included, as :mod:`.connection`
frames them) and returns either the message or :class:`Malformed`, which carries the
``ERROR`` that answers it: the error the specification names for what is wrong, the
offending message's ``xid``, and its first 64 bytes as data.  No exception leaves it, whatever
the bytes.  ``msg.encode()`` is the inverse: for every message the codec accepts,
``decode_message(data).encode(data[0]) == data`` unless the sender put non-zero bytes where
the specification has padding (they are written back as zeros).

Every number is kept as sent (``FlowMod.command`` may be 7); deciding what a valid message
means, and answering ``OFPFMC_BAD_COMMAND`` for it, is the switch's business.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields
from typing import ClassVar, Self

from .actions import Action, decode_actions, encode_actions
from .buckets import Bucket, decode_buckets, encode_buckets
from .instructions import Instruction, decode_instructions, encode_instructions
from .meter_bands import MeterBand, decode_bands, encode_bands
from .multipart import REPLY_BODIES, REQUEST_BODIES, Body
from .ofp_const import (
    OFP_DEFAULT_MISS_SEND_LEN,
    OFP_DEFAULT_PRIORITY,
    OFP_ERROR_DATA_LEN,
    OFP_HEADER_LEN,
    OFP_NO_BUFFER,
    OFP_VERSION,
    OFPG_ANY,
    BadRequestCode,
    ErrorType,
    HelloElemType,
    MsgType,
    PortNo,
)
from .oxm import MATCH_ANY, Match
from .port_desc import Port
from .queue_desc import PacketQueue
from .wire import BAD_REQUEST_LEN, BadMessage, ErrorCode, Reader, zeros_to_8

HEADER = struct.Struct("!BBHI")
OFP_MAX_MESSAGE_LEN = 0xFFFF


@dataclass(frozen=True, slots=True)
class Message:
    """Base of every message: ``msg_type`` is its ``ofp_type``, ``xid`` (keyword-only, so
    subclasses' own fields come first) the transaction ID a reply repeats."""

    msg_type: ClassVar[int]
    xid: int = field(default=0, kw_only=True)

    def encode_body(self) -> bytes:
        """The bytes after the header."""
        raise NotImplementedError

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> Self:
        """The message from the bytes after its header (all of ``r``); raises
        :class:`~.wire.BadMessage`, which :func:`decode_message` turns into the answer."""
        raise NotImplementedError

    def encode(self, version: int = OFP_VERSION) -> bytes:
        """The whole message.  ``version`` is for a HELLO or the ERROR that refuses one,
        which may go out in another version's header; everything else is OpenFlow 1.3's."""
        body = self.encode_body()
        length = HEADER.size + len(body)
        if length > OFP_MAX_MESSAGE_LEN:
            raise ValueError(f"{type(self).__name__} of {length} bytes does not fit a message "
                             f"(at most {OFP_MAX_MESSAGE_LEN}; split a multipart reply)")
        return HEADER.pack(version, self.msg_type, length, self.xid) + body


@dataclass(frozen=True, slots=True)
class _Empty(Message):
    """A message that is its header alone; bytes after it are ``OFPBRC_BAD_LEN``."""

    def encode_body(self) -> bytes:
        return b""

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> Self:
        r.end(f"{cls.__name__} header (it has no body)")
        return cls(xid=xid)


@dataclass(frozen=True, slots=True)
class _Fixed(Message):
    """A message whose body is one fixed structure ``BODY`` holding the dataclass fields in
    order (``xid`` aside); any other length is ``OFPBRC_BAD_LEN``."""

    BODY: ClassVar[struct.Struct]

    def encode_body(self) -> bytes:
        return self.BODY.pack(*(getattr(self, f.name) for f in fields(self) if f.name != "xid"))

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> Self:
        values = r.unpack(cls.BODY, cls.__name__)
        r.end(cls.__name__)
        return cls(*values, xid=xid)


# --- HELLO ----------------------------------------------------------------------------------

_ELEM_HEADER = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class VersionBitmap:
    """``OFPHET_VERSIONBITMAP``: bit ``v % 32`` of word ``v // 32`` says version ``v`` is
    spoken.  The words are kept as sent (trailing zero words included)."""

    bitmaps: tuple[int, ...]

    @classmethod
    def of(cls, versions: set[int] | frozenset[int] | list[int] | tuple[int, ...]) -> VersionBitmap:
        """The shortest bitmap of ``versions``."""
        words = [0] * (max(versions) // 32 + 1 if versions else 0)
        for v in versions:
            words[v // 32] |= 1 << (v % 32)
        return cls(tuple(words))

    @property
    def versions(self) -> frozenset[int]:
        return frozenset(i * 32 + b for i, w in enumerate(self.bitmaps) for b in range(32)
                         if w >> b & 1)

    def encode(self) -> bytes:
        length = _ELEM_HEADER.size + 4 * len(self.bitmaps)
        return (_ELEM_HEADER.pack(HelloElemType.VERSIONBITMAP, length)
                + struct.pack(f"!{len(self.bitmaps)}I", *self.bitmaps) + zeros_to_8(length))


@dataclass(frozen=True, slots=True)
class HelloElement:
    """An element of a type this version does not define (a receiver ignores it, 7.5.1)."""

    type: int
    data: bytes = b""

    def encode(self) -> bytes:
        length = _ELEM_HEADER.size + len(self.data)
        return _ELEM_HEADER.pack(self.type, length) + self.data + zeros_to_8(length)


@dataclass(frozen=True, slots=True)
class Hello(Message):
    msg_type: ClassVar[int] = MsgType.HELLO
    elements: tuple[VersionBitmap | HelloElement, ...] = ()

    @property
    def versions(self) -> frozenset[int] | None:
        """The versions of the first version bitmap, None without one."""
        for e in self.elements:
            if isinstance(e, VersionBitmap):
                return e.versions
        return None

    def encode_body(self) -> bytes:
        return b"".join(e.encode() for e in self.elements)

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> Hello:
        elements: list[VersionBitmap | HelloElement] = []
        while r.remaining:
            etype, length = r.peek_u16(), r.peek_u16(2)
            if length < _ELEM_HEADER.size:
                r.fail(f"hello element of length {length}")
            w = r.window(length, what="hello element")
            r.skip(-length % 8, "hello element padding")
            w.skip(_ELEM_HEADER.size)
            if etype == HelloElemType.VERSIONBITMAP:
                if w.remaining % 4:
                    w.fail(f"version bitmap of {w.remaining} bytes")
                elements.append(VersionBitmap(struct.unpack(f"!{w.remaining // 4}I", w.rest())))
            else:
                elements.append(HelloElement(etype, w.rest()))
        return cls(tuple(elements), xid=xid)


# --- ERROR, ECHO, EXPERIMENTER --------------------------------------------------------------

_ERROR = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class ErrorMsg(Message):
    """``OFPT_ERROR``.  For ``OFPET_EXPERIMENTER`` (0xffff), ``code`` is the experimenter's
    ``exp_code`` and ``experimenter`` its ID; it is None for every other type."""

    msg_type: ClassVar[int] = MsgType.ERROR
    type: int
    code: int
    data: bytes = b""
    experimenter: int | None = None

    @classmethod
    def for_request(cls, err: ErrorCode, request: bytes, xid: int) -> ErrorMsg:
        """The error answering ``request`` (its whole bytes): its xid and first 64 bytes."""
        return cls(err[0], err[1], bytes(request[:OFP_ERROR_DATA_LEN]), xid=xid)

    def encode_body(self) -> bytes:
        if (self.type == ErrorType.EXPERIMENTER) != (self.experimenter is not None):
            raise ValueError("an experimenter ID goes with OFPET_EXPERIMENTER and only with it")
        exp = b"" if self.experimenter is None else struct.pack("!I", self.experimenter)
        return _ERROR.pack(self.type, self.code) + exp + self.data

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> ErrorMsg:
        err_type, code = r.unpack(_ERROR, "error")
        experimenter = r.u32() if err_type == ErrorType.EXPERIMENTER else None
        return cls(err_type, code, r.rest(), experimenter, xid=xid)


@dataclass(frozen=True, slots=True)
class _Data(Message):
    data: bytes = b""

    def encode_body(self) -> bytes:
        return self.data

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> Self:
        return cls(r.rest(), xid=xid)


@dataclass(frozen=True, slots=True)
class EchoRequest(_Data):
    msg_type: ClassVar[int] = MsgType.ECHO_REQUEST

    def reply(self) -> EchoReply:
        """The answer: the same xid and data (7.5.2)."""
        return EchoReply(self.data, xid=self.xid)


@dataclass(frozen=True, slots=True)
class EchoReply(_Data):
    msg_type: ClassVar[int] = MsgType.ECHO_REPLY


_EXPERIMENTER = struct.Struct("!II")


@dataclass(frozen=True, slots=True)
class Experimenter(Message):
    msg_type: ClassVar[int] = MsgType.EXPERIMENTER
    experimenter: int
    exp_type: int
    data: bytes = b""

    def encode_body(self) -> bytes:
        return _EXPERIMENTER.pack(self.experimenter, self.exp_type) + self.data

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> Experimenter:
        experimenter, exp_type = r.unpack(_EXPERIMENTER, "experimenter")
        return cls(experimenter, exp_type, r.rest(), xid=xid)


# --- switch configuration -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeaturesRequest(_Empty):
    msg_type: ClassVar[int] = MsgType.FEATURES_REQUEST


@dataclass(frozen=True, slots=True)
class FeaturesReply(_Fixed):
    msg_type: ClassVar[int] = MsgType.FEATURES_REPLY
    BODY: ClassVar[struct.Struct] = struct.Struct("!QIBB2xII")
    datapath_id: int
    n_buffers: int = 0
    n_tables: int = 1
    auxiliary_id: int = 0
    capabilities: int = 0
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class GetConfigRequest(_Empty):
    msg_type: ClassVar[int] = MsgType.GET_CONFIG_REQUEST


_SWITCH_CONFIG = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class GetConfigReply(_Fixed):
    msg_type: ClassVar[int] = MsgType.GET_CONFIG_REPLY
    BODY: ClassVar[struct.Struct] = _SWITCH_CONFIG
    flags: int = 0
    miss_send_len: int = OFP_DEFAULT_MISS_SEND_LEN


@dataclass(frozen=True, slots=True)
class SetConfig(_Fixed):
    msg_type: ClassVar[int] = MsgType.SET_CONFIG
    BODY: ClassVar[struct.Struct] = _SWITCH_CONFIG
    flags: int = 0
    miss_send_len: int = OFP_DEFAULT_MISS_SEND_LEN


@dataclass(frozen=True, slots=True)
class TableMod(_Fixed):
    msg_type: ClassVar[int] = MsgType.TABLE_MOD
    BODY: ClassVar[struct.Struct] = struct.Struct("!B3xI")
    table_id: int
    config: int = 0


@dataclass(frozen=True, slots=True)
class PortMod(_Fixed):
    msg_type: ClassVar[int] = MsgType.PORT_MOD
    BODY: ClassVar[struct.Struct] = struct.Struct("!I4x6s2xIII4x")
    port_no: int
    hw_addr: bytes
    config: int = 0
    mask: int = 0
    advertise: int = 0


# --- asynchronous messages ------------------------------------------------------------------

_PACKET_IN = struct.Struct("!IHBBQ")


@dataclass(frozen=True, slots=True)
class PacketIn(Message):
    msg_type: ClassVar[int] = MsgType.PACKET_IN
    buffer_id: int
    total_len: int
    reason: int
    table_id: int
    cookie: int
    match: Match = MATCH_ANY
    data: bytes = b""

    def encode_body(self) -> bytes:
        return (_PACKET_IN.pack(self.buffer_id, self.total_len, self.reason, self.table_id,
                                self.cookie) + self.match.encode() + b"\0\0" + self.data)

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> PacketIn:
        buffer_id, total_len, reason, table_id, cookie = r.unpack(_PACKET_IN, "packet-in")
        match = Match.decode(r)
        r.skip(2)
        return cls(buffer_id, total_len, reason, table_id, cookie, match, r.rest(), xid=xid)


_FLOW_REMOVED = struct.Struct("!QHBBIIHHQQ")


@dataclass(frozen=True, slots=True)
class FlowRemoved(Message):
    msg_type: ClassVar[int] = MsgType.FLOW_REMOVED
    cookie: int
    priority: int
    reason: int
    table_id: int
    duration_sec: int
    duration_nsec: int
    idle_timeout: int
    hard_timeout: int
    packet_count: int
    byte_count: int
    match: Match = MATCH_ANY

    def encode_body(self) -> bytes:
        return _FLOW_REMOVED.pack(self.cookie, self.priority, self.reason, self.table_id,
                                  self.duration_sec, self.duration_nsec, self.idle_timeout,
                                  self.hard_timeout, self.packet_count,
                                  self.byte_count) + self.match.encode()

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> FlowRemoved:
        values = r.unpack(_FLOW_REMOVED, "flow-removed")
        match = Match.decode(r)
        r.end("flow-removed match")
        return cls(*values, match, xid=xid)


_PORT_STATUS = struct.Struct("!B7x")


@dataclass(frozen=True, slots=True)
class PortStatus(Message):
    msg_type: ClassVar[int] = MsgType.PORT_STATUS
    reason: int
    desc: Port

    def encode_body(self) -> bytes:
        return _PORT_STATUS.pack(self.reason) + self.desc.encode()

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> PortStatus:
        (reason,) = r.unpack(_PORT_STATUS, "port-status")
        desc = Port.decode(r)
        r.end("port-status")
        return cls(reason, desc, xid=xid)


# --- controller commands --------------------------------------------------------------------

_PACKET_OUT = struct.Struct("!IIH6x")


@dataclass(frozen=True, slots=True)
class PacketOut(Message):
    msg_type: ClassVar[int] = MsgType.PACKET_OUT
    buffer_id: int = OFP_NO_BUFFER
    in_port: int = PortNo.CONTROLLER
    actions: tuple[Action, ...] = ()
    data: bytes = b""

    def encode_body(self) -> bytes:
        actions = encode_actions(self.actions)
        return _PACKET_OUT.pack(self.buffer_id, self.in_port, len(actions)) + actions + self.data

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> PacketOut:
        buffer_id, in_port, actions_len = r.unpack(_PACKET_OUT, "packet-out")
        actions = decode_actions(r.window(actions_len, what="packet-out actions"))
        return cls(buffer_id, in_port, actions, r.rest(), xid=xid)


_FLOW_MOD = struct.Struct("!QQBBHHHIIIH2x")


@dataclass(frozen=True, slots=True)
class FlowMod(Message):
    msg_type: ClassVar[int] = MsgType.FLOW_MOD
    cookie: int = 0
    cookie_mask: int = 0
    table_id: int = 0
    command: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    priority: int = OFP_DEFAULT_PRIORITY
    buffer_id: int = OFP_NO_BUFFER
    out_port: int = PortNo.ANY
    out_group: int = OFPG_ANY
    flags: int = 0
    match: Match = MATCH_ANY
    instructions: tuple[Instruction, ...] = ()

    def encode_body(self) -> bytes:
        return (_FLOW_MOD.pack(self.cookie, self.cookie_mask, self.table_id, self.command,
                               self.idle_timeout, self.hard_timeout, self.priority,
                               self.buffer_id, self.out_port, self.out_group, self.flags)
                + self.match.encode() + encode_instructions(self.instructions))

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> FlowMod:
        values = r.unpack(_FLOW_MOD, "flow-mod")
        match = Match.decode(r)
        return cls(*values, match, decode_instructions(r), xid=xid)


_GROUP_MOD = struct.Struct("!HBxI")


@dataclass(frozen=True, slots=True)
class GroupMod(Message):
    msg_type: ClassVar[int] = MsgType.GROUP_MOD
    command: int
    group_type: int
    group_id: int
    buckets: tuple[Bucket, ...] = ()

    def encode_body(self) -> bytes:
        return _GROUP_MOD.pack(self.command, self.group_type, self.group_id) + encode_buckets(
            self.buckets)

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> GroupMod:
        command, group_type, group_id = r.unpack(_GROUP_MOD, "group-mod")
        return cls(command, group_type, group_id, decode_buckets(r), xid=xid)


_METER_MOD = struct.Struct("!HHI")


@dataclass(frozen=True, slots=True)
class MeterMod(Message):
    msg_type: ClassVar[int] = MsgType.METER_MOD
    command: int
    flags: int
    meter_id: int
    bands: tuple[MeterBand, ...] = ()

    def encode_body(self) -> bytes:
        return _METER_MOD.pack(self.command, self.flags, self.meter_id) + encode_bands(self.bands)

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> MeterMod:
        command, flags, meter_id = r.unpack(_METER_MOD, "meter-mod")
        return cls(command, flags, meter_id, decode_bands(r), xid=xid)


# --- multipart ------------------------------------------------------------------------------

_MULTIPART = struct.Struct("!HH4x")


@dataclass(frozen=True, slots=True)
class _Multipart(Message):
    """``body``'s class says the multipart type; ``flags`` is ``OFPMPF_*_MORE`` or 0."""

    BODIES: ClassVar[dict[int, type[Body]]]
    body: Body
    flags: int = 0

    def encode_body(self) -> bytes:
        return _MULTIPART.pack(self.body.mp_type, self.flags) + self.body.encode()

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> Self:
        mp_type, flags = r.unpack(_MULTIPART, "multipart")
        body_cls = cls.BODIES.get(mp_type)
        if body_cls is None:
            r.fail(f"multipart type {mp_type}", (ErrorType.BAD_REQUEST, BadRequestCode.BAD_MULTIPART))
        return cls(body_cls.decode(r.window(r.remaining, BAD_REQUEST_LEN)), flags, xid=xid)


@dataclass(frozen=True, slots=True)
class MultipartRequest(_Multipart):
    msg_type: ClassVar[int] = MsgType.MULTIPART_REQUEST
    BODIES: ClassVar[dict[int, type[Body]]] = REQUEST_BODIES


@dataclass(frozen=True, slots=True)
class MultipartReply(_Multipart):
    msg_type: ClassVar[int] = MsgType.MULTIPART_REPLY
    BODIES: ClassVar[dict[int, type[Body]]] = REPLY_BODIES


# --- barrier, queues, roles, asynchronous configuration -------------------------------------


@dataclass(frozen=True, slots=True)
class BarrierRequest(_Empty):
    msg_type: ClassVar[int] = MsgType.BARRIER_REQUEST


@dataclass(frozen=True, slots=True)
class BarrierReply(_Empty):
    msg_type: ClassVar[int] = MsgType.BARRIER_REPLY


@dataclass(frozen=True, slots=True)
class QueueGetConfigRequest(_Fixed):
    msg_type: ClassVar[int] = MsgType.QUEUE_GET_CONFIG_REQUEST
    BODY: ClassVar[struct.Struct] = struct.Struct("!I4x")
    port: int = PortNo.ANY


_QUEUE_CONFIG = struct.Struct("!I4x")


@dataclass(frozen=True, slots=True)
class QueueGetConfigReply(Message):
    msg_type: ClassVar[int] = MsgType.QUEUE_GET_CONFIG_REPLY
    port: int
    queues: tuple[PacketQueue, ...] = ()

    def encode_body(self) -> bytes:
        return _QUEUE_CONFIG.pack(self.port) + b"".join(q.encode() for q in self.queues)

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> QueueGetConfigReply:
        (port,) = r.unpack(_QUEUE_CONFIG, "queue config")
        queues = []
        while r.remaining:
            queues.append(PacketQueue.decode(r))
        return cls(port, tuple(queues), xid=xid)


_ROLE = struct.Struct("!I4xQ")


@dataclass(frozen=True, slots=True)
class RoleRequest(_Fixed):
    msg_type: ClassVar[int] = MsgType.ROLE_REQUEST
    BODY: ClassVar[struct.Struct] = _ROLE
    role: int
    generation_id: int = 0


@dataclass(frozen=True, slots=True)
class RoleReply(_Fixed):
    msg_type: ClassVar[int] = MsgType.ROLE_REPLY
    BODY: ClassVar[struct.Struct] = _ROLE
    role: int
    generation_id: int = 0


@dataclass(frozen=True, slots=True)
class GetAsyncRequest(_Empty):
    msg_type: ClassVar[int] = MsgType.GET_ASYNC_REQUEST


_ASYNC = struct.Struct("!6I")


@dataclass(frozen=True, slots=True)
class _AsyncConfig(Message):
    """Each mask is (for master or equal role, for slave role), bits ``1 << reason``."""

    packet_in_mask: tuple[int, int] = (0, 0)
    port_status_mask: tuple[int, int] = (0, 0)
    flow_removed_mask: tuple[int, int] = (0, 0)

    def encode_body(self) -> bytes:
        return _ASYNC.pack(*self.packet_in_mask, *self.port_status_mask, *self.flow_removed_mask)

    @classmethod
    def decode_body(cls, r: Reader, xid: int) -> Self:
        v = r.unpack(_ASYNC, "async config")
        r.end("async config")
        return cls((v[0], v[1]), (v[2], v[3]), (v[4], v[5]), xid=xid)


@dataclass(frozen=True, slots=True)
class GetAsyncReply(_AsyncConfig):
    msg_type: ClassVar[int] = MsgType.GET_ASYNC_REPLY


@dataclass(frozen=True, slots=True)
class SetAsync(_AsyncConfig):
    msg_type: ClassVar[int] = MsgType.SET_ASYNC


MESSAGE_CLASSES: dict[int, type[Message]] = {cls.msg_type: cls for cls in (
    Hello, ErrorMsg, EchoRequest, EchoReply, Experimenter, FeaturesRequest, FeaturesReply,
    GetConfigRequest, GetConfigReply, SetConfig, PacketIn, FlowRemoved, PortStatus, PacketOut,
    FlowMod, GroupMod, PortMod, TableMod, MultipartRequest, MultipartReply, BarrierRequest,
    BarrierReply, QueueGetConfigRequest, QueueGetConfigReply, RoleRequest, RoleReply,
    GetAsyncRequest, GetAsyncReply, SetAsync, MeterMod)}


# --- decoding -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Malformed:
    """A message the codec refused: ``error`` is the ``ERROR`` to send back (the offending
    xid, the specification's type and code, the first 64 bytes), ``reason`` says why in words
    for a log."""

    error: ErrorMsg
    reason: str

    @property
    def err(self) -> ErrorCode:
        return (self.error.type, self.error.code)


def _refuse(data: bytes, xid: int, err: ErrorCode, reason: str) -> Malformed:
    return Malformed(ErrorMsg.for_request(err, data, xid), reason)


def decode_message(data: bytes) -> Message | Malformed:
    """One whole message (header included) to its dataclass, or the answer refusing it.

    The header's length must be ``len(data)``; the version must be 1.3's except in a HELLO
    (which says which versions its sender speaks, :mod:`.connection` negotiates); the type
    must be one of ``ofp_type`` (``OFPBRC_BAD_TYPE``), and the body what that type says.
    """
    data = bytes(data)
    if len(data) < OFP_HEADER_LEN:
        return _refuse(data, 0, BAD_REQUEST_LEN, f"{len(data)} bytes is shorter than a header")
    version, msg_type, length, xid = HEADER.unpack_from(data)
    if length != len(data):
        return _refuse(data, xid, BAD_REQUEST_LEN, f"header says {length} bytes, message is "
                                                   f"{len(data)}")
    if version != OFP_VERSION and msg_type != MsgType.HELLO:
        return _refuse(data, xid, (ErrorType.BAD_REQUEST, BadRequestCode.BAD_VERSION),
                       f"version {version} after OpenFlow 1.3 was agreed")
    cls = MESSAGE_CLASSES.get(msg_type)
    if cls is None:
        return _refuse(data, xid, (ErrorType.BAD_REQUEST, BadRequestCode.BAD_TYPE),
                       f"message type {msg_type}")
    try:
        return cls.decode_body(Reader(data, BAD_REQUEST_LEN, OFP_HEADER_LEN), xid)
    except BadMessage as e:
        return _refuse(data, xid, e.err, f"{cls.__name__}: {e.reason}")

