"""OpenFlow 1.3 actions (specification 1.3.5, 7.2.5): every ``ofp_action_type``.

Each action is a frozen dataclass that encodes to exactly its ``ofp_action_*`` structure
(padding zeroed, ``len`` a multiple of 8), and :func:`decode_actions` reads a list back,
answering what the specification says for a list it cannot read: an unknown type is
``OFPBAC_BAD_TYPE``, a length that is short, not a multiple of 8, wrong for the type or past
the list is ``OFPBAC_BAD_LEN``, and a set-field whose OXM does not fit its action is
``OFPBAC_BAD_SET_LEN``.  Experimenter actions are kept (ID and bytes) for the switch to
refuse with ``OFPBAC_BAD_EXPERIMENTER``; :func:`check_set_field` says what a switch refuses in
a set-field that is well formed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from .ofp_const import OFPCML_MAX, ActionType, BadActionCode, ErrorType, OxmField
from .oxm import OxmTlv, decode_tlv
from .wire import ErrorCode, Reader, zeros_to_8

ACTION_HEADER = struct.Struct("!HH")
BAD_ACTION_LEN: ErrorCode = (ErrorType.BAD_ACTION, BadActionCode.BAD_LEN)
BAD_SET_LEN: ErrorCode = (ErrorType.BAD_ACTION, BadActionCode.BAD_SET_LEN)

_OUTPUT = struct.Struct("!HHIH6x")
_U32 = struct.Struct("!HHI")  # group, set_queue
_TTL = struct.Struct("!HHB3x")  # set_mpls_ttl, set_nw_ttl
_ETHERTYPE = struct.Struct("!HHH2x")  # push_vlan/mpls/pbb, pop_mpls
_BARE = struct.Struct("!HH4x")  # the actions with no argument
_EXPERIMENTER = struct.Struct("!HHI")


class Action:
    """Base of the action classes: ``action_type`` is the wire's ``ofp_action_type``."""

    __slots__ = ()
    action_type: ClassVar[int]

    def encode(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode(cls, r: Reader) -> Action:
        """The action from its whole ``ofp_action_*`` (header included) in ``r``."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Output(Action):
    action_type: ClassVar[int] = ActionType.OUTPUT
    port: int
    max_len: int = OFPCML_MAX

    def encode(self) -> bytes:
        return _OUTPUT.pack(self.action_type, _OUTPUT.size, self.port, self.max_len)

    @classmethod
    def decode(cls, r: Reader) -> Output:
        _, _, port, max_len = r.unpack(_OUTPUT)
        return cls(port, max_len)


@dataclass(frozen=True, slots=True)
class _Bare(Action):
    """An action without argument: its header and four bytes of padding."""

    def encode(self) -> bytes:
        return _BARE.pack(self.action_type, _BARE.size)

    @classmethod
    def decode(cls, r: Reader) -> Action:
        r.unpack(_BARE)
        return cls()


@dataclass(frozen=True, slots=True)
class CopyTtlOut(_Bare):
    action_type: ClassVar[int] = ActionType.COPY_TTL_OUT


@dataclass(frozen=True, slots=True)
class CopyTtlIn(_Bare):
    action_type: ClassVar[int] = ActionType.COPY_TTL_IN


@dataclass(frozen=True, slots=True)
class DecMplsTtl(_Bare):
    action_type: ClassVar[int] = ActionType.DEC_MPLS_TTL


@dataclass(frozen=True, slots=True)
class PopVlan(_Bare):
    action_type: ClassVar[int] = ActionType.POP_VLAN


@dataclass(frozen=True, slots=True)
class DecNwTtl(_Bare):
    action_type: ClassVar[int] = ActionType.DEC_NW_TTL


@dataclass(frozen=True, slots=True)
class PopPbb(_Bare):
    action_type: ClassVar[int] = ActionType.POP_PBB


@dataclass(frozen=True, slots=True)
class _Ttl(Action):
    ttl: int

    def encode(self) -> bytes:
        return _TTL.pack(self.action_type, _TTL.size, self.ttl)

    @classmethod
    def decode(cls, r: Reader) -> Action:
        return cls(r.unpack(_TTL)[2])


@dataclass(frozen=True, slots=True)
class SetMplsTtl(_Ttl):
    action_type: ClassVar[int] = ActionType.SET_MPLS_TTL


@dataclass(frozen=True, slots=True)
class SetNwTtl(_Ttl):
    action_type: ClassVar[int] = ActionType.SET_NW_TTL


@dataclass(frozen=True, slots=True)
class _Ethertype(Action):
    ethertype: int

    def encode(self) -> bytes:
        return _ETHERTYPE.pack(self.action_type, _ETHERTYPE.size, self.ethertype)

    @classmethod
    def decode(cls, r: Reader) -> Action:
        return cls(r.unpack(_ETHERTYPE)[2])


@dataclass(frozen=True, slots=True)
class PushVlan(_Ethertype):
    action_type: ClassVar[int] = ActionType.PUSH_VLAN


@dataclass(frozen=True, slots=True)
class PushMpls(_Ethertype):
    action_type: ClassVar[int] = ActionType.PUSH_MPLS


@dataclass(frozen=True, slots=True)
class PopMpls(_Ethertype):
    """Pop the outer MPLS label; ``ethertype`` is the payload's."""

    action_type: ClassVar[int] = ActionType.POP_MPLS


@dataclass(frozen=True, slots=True)
class PushPbb(_Ethertype):
    action_type: ClassVar[int] = ActionType.PUSH_PBB


@dataclass(frozen=True, slots=True)
class SetQueue(Action):
    action_type: ClassVar[int] = ActionType.SET_QUEUE
    queue_id: int

    def encode(self) -> bytes:
        return _U32.pack(self.action_type, _U32.size, self.queue_id)

    @classmethod
    def decode(cls, r: Reader) -> SetQueue:
        return cls(r.unpack(_U32)[2])


@dataclass(frozen=True, slots=True)
class Group(Action):
    action_type: ClassVar[int] = ActionType.GROUP
    group_id: int

    def encode(self) -> bytes:
        return _U32.pack(self.action_type, _U32.size, self.group_id)

    @classmethod
    def decode(cls, r: Reader) -> Group:
        return cls(r.unpack(_U32)[2])


@dataclass(frozen=True, slots=True)
class SetField(Action):
    """Set a header field: one OXM TLV, then zeros to a multiple of 8."""

    action_type: ClassVar[int] = ActionType.SET_FIELD
    field: OxmTlv

    def encode(self) -> bytes:
        tlv = self.field.encode()
        length = ACTION_HEADER.size + len(tlv)
        return ACTION_HEADER.pack(self.action_type, length + (-length % 8)) + tlv + zeros_to_8(length)

    @classmethod
    def decode(cls, r: Reader) -> SetField:
        r.unpack(ACTION_HEADER)
        body = r.window(r.remaining, BAD_SET_LEN)
        tlv = decode_tlv(body)
        if body.remaining >= 8:  # more than padding: the OXM's length is wrong
            body.fail(f"set-field with {body.remaining} bytes after its OXM")
        return cls(tlv)


@dataclass(frozen=True, slots=True)
class ExperimenterAction(Action):
    """An experimenter action, kept as its ID and the bytes after it (padding included)."""

    action_type: ClassVar[int] = ActionType.EXPERIMENTER
    experimenter: int
    data: bytes = b""

    def encode(self) -> bytes:
        length = _EXPERIMENTER.size + len(self.data)
        if length % 8:
            raise ValueError(f"experimenter action of {length} bytes is not a multiple of 8")
        return _EXPERIMENTER.pack(self.action_type, length, self.experimenter) + self.data

    @classmethod
    def decode(cls, r: Reader) -> ExperimenterAction:
        experimenter = r.unpack(_EXPERIMENTER)[2]
        return cls(experimenter, r.rest())


ACTION_CLASSES: dict[int, type[Action]] = {cls.action_type: cls for cls in (
    Output, CopyTtlOut, CopyTtlIn, SetMplsTtl, DecMplsTtl, PushVlan, PopVlan, PushMpls, PopMpls,
    SetQueue, Group, SetNwTtl, DecNwTtl, SetField, PushPbb, PopPbb, ExperimenterAction)}

_FIXED_LEN: dict[int, int] = {
    ActionType.OUTPUT: _OUTPUT.size,
    **{t: 8 for t in ACTION_CLASSES if t not in (ActionType.OUTPUT, ActionType.SET_FIELD,
                                                  ActionType.EXPERIMENTER)},
}
"""Actions whose ``len`` is fixed; a different one is ``OFPBAC_BAD_LEN``."""


def decode_action(r: Reader) -> Action:
    """The next action in ``r`` (a window of an action list)."""
    action_type, length = r.peek_u16(), r.peek_u16(2)
    if length < 8 or length % 8:
        r.fail(f"action {action_type} of length {length}", BAD_ACTION_LEN)
    if length > r.remaining:
        r.fail(f"action {action_type} of length {length}, {r.remaining} bytes left", BAD_ACTION_LEN)
    cls = ACTION_CLASSES.get(action_type)
    if cls is None:
        r.fail(f"unknown action type {action_type}", (ErrorType.BAD_ACTION, BadActionCode.BAD_TYPE))
    fixed = _FIXED_LEN.get(action_type)
    if fixed is not None and length != fixed:
        r.fail(f"{cls.__name__} of length {length} (it is {fixed})", BAD_ACTION_LEN)
    return cls.decode(r.window(length, BAD_ACTION_LEN))


def decode_actions(r: Reader) -> tuple[Action, ...]:
    """Every action left in ``r``, in order; they must fill it exactly."""
    w = r.window(r.remaining, BAD_ACTION_LEN, "actions")
    actions = []
    while w.remaining:
        actions.append(decode_action(w))
    return tuple(actions)


def encode_actions(actions: tuple[Action, ...] | list[Action]) -> bytes:
    return b"".join(a.encode() for a in actions)


_NOT_SETTABLE = frozenset({OxmField.IN_PORT, OxmField.IN_PHY_PORT, OxmField.METADATA})


def check_set_field(action: SetField) -> ErrorCode | None:
    """What a switch refuses in a well-formed set-field: a field that is not a basic-class
    packet header field (``OFPBAC_BAD_SET_TYPE``: in_port, in_phy_port and metadata are
    pipeline fields, 7.2.5), a mask (OpenFlow 1.3 sets whole fields) or value bits beyond the
    field's width (``OFPBAC_BAD_SET_ARGUMENT``)."""
    tlv = action.field
    spec = tlv.spec
    if spec is None or tlv.field in _NOT_SETTABLE:
        return (ErrorType.BAD_ACTION, BadActionCode.BAD_SET_TYPE)
    if tlv.mask is not None or tlv.int_value >= spec.value_limit:
        return (ErrorType.BAD_ACTION, BadActionCode.BAD_SET_ARGUMENT)
    return None

