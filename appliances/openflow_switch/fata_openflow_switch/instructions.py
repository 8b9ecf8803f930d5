"""OpenFlow 1.3 instructions (specification 1.3.5, 7.2.4): every ``ofp_instruction_type``.

As with actions, an instruction encodes to exactly its structure and :func:`decode_instructions`
answers an unreadable list with the specification's error: an unknown type is
``OFPBIC_UNKNOWN_INST``, a length that is short, not a multiple of 8, wrong for the type or
past the list is ``OFPBIC_BAD_LEN``; the actions inside write- and apply-actions are read by
:mod:`.actions` and fail with its ``OFPET_BAD_ACTION`` errors.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

from .actions import Action, decode_actions, encode_actions
from .ofp_const import BadInstructionCode, ErrorType, InstructionType
from .wire import ErrorCode, Reader

INSTRUCTION_HEADER = struct.Struct("!HH")
BAD_INSTRUCTION_LEN: ErrorCode = (ErrorType.BAD_INSTRUCTION, BadInstructionCode.BAD_LEN)

_GOTO = struct.Struct("!HHB3x")
_METADATA = struct.Struct("!HH4xQQ")
_ACTIONS = struct.Struct("!HH4x")
_U32 = struct.Struct("!HHI")  # meter, experimenter


class Instruction:
    """Base of the instruction classes: ``instruction_type`` is the wire's type."""

    __slots__ = ()
    instruction_type: ClassVar[int]

    def encode(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode(cls, r: Reader) -> Instruction:
        """The instruction from its whole structure (header included) in ``r``."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class GotoTable(Instruction):
    instruction_type: ClassVar[int] = InstructionType.GOTO_TABLE
    table_id: int

    def encode(self) -> bytes:
        return _GOTO.pack(self.instruction_type, _GOTO.size, self.table_id)

    @classmethod
    def decode(cls, r: Reader) -> GotoTable:
        return cls(r.unpack(_GOTO)[2])


@dataclass(frozen=True, slots=True)
class WriteMetadata(Instruction):
    instruction_type: ClassVar[int] = InstructionType.WRITE_METADATA
    metadata: int
    metadata_mask: int = 0xFFFFFFFFFFFFFFFF

    def encode(self) -> bytes:
        return _METADATA.pack(self.instruction_type, _METADATA.size, self.metadata,
                              self.metadata_mask)

    @classmethod
    def decode(cls, r: Reader) -> WriteMetadata:
        _, _, metadata, mask = r.unpack(_METADATA)
        return cls(metadata, mask)


@dataclass(frozen=True, slots=True)
class _WithActions(Instruction):
    actions: tuple[Action, ...] = field(default=())

    def encode(self) -> bytes:
        body = encode_actions(self.actions)
        return _ACTIONS.pack(self.instruction_type, _ACTIONS.size + len(body)) + body

    @classmethod
    def decode(cls, r: Reader) -> Instruction:
        r.unpack(_ACTIONS)
        return cls(decode_actions(r))


@dataclass(frozen=True, slots=True)
class WriteActions(_WithActions):
    """Merge ``actions`` into the action set."""

    instruction_type: ClassVar[int] = InstructionType.WRITE_ACTIONS


@dataclass(frozen=True, slots=True)
class ApplyActions(_WithActions):
    """Apply ``actions`` to the packet now, in order."""

    instruction_type: ClassVar[int] = InstructionType.APPLY_ACTIONS


@dataclass(frozen=True, slots=True)
class ClearActions(Instruction):
    """Empty the action set (``ofp_instruction_actions`` with no actions: 8 bytes)."""

    instruction_type: ClassVar[int] = InstructionType.CLEAR_ACTIONS

    def encode(self) -> bytes:
        return _ACTIONS.pack(self.instruction_type, _ACTIONS.size)

    @classmethod
    def decode(cls, r: Reader) -> ClearActions:
        r.unpack(_ACTIONS)
        return cls()


@dataclass(frozen=True, slots=True)
class Meter(Instruction):
    instruction_type: ClassVar[int] = InstructionType.METER
    meter_id: int

    def encode(self) -> bytes:
        return _U32.pack(self.instruction_type, _U32.size, self.meter_id)

    @classmethod
    def decode(cls, r: Reader) -> Meter:
        return cls(r.unpack(_U32)[2])


@dataclass(frozen=True, slots=True)
class ExperimenterInstruction(Instruction):
    """An experimenter instruction, kept as its ID and the bytes after it."""

    instruction_type: ClassVar[int] = InstructionType.EXPERIMENTER
    experimenter: int
    data: bytes = b""

    def encode(self) -> bytes:
        length = _U32.size + len(self.data)
        if length % 8:
            raise ValueError(f"experimenter instruction of {length} bytes is not a multiple of 8")
        return _U32.pack(self.instruction_type, length, self.experimenter) + self.data

    @classmethod
    def decode(cls, r: Reader) -> ExperimenterInstruction:
        experimenter = r.unpack(_U32)[2]
        return cls(experimenter, r.rest())


INSTRUCTION_CLASSES: dict[int, type[Instruction]] = {cls.instruction_type: cls for cls in (
    GotoTable, WriteMetadata, WriteActions, ApplyActions, ClearActions, Meter,
    ExperimenterInstruction)}

_FIXED_LEN: dict[int, int] = {
    InstructionType.GOTO_TABLE: _GOTO.size,
    InstructionType.WRITE_METADATA: _METADATA.size,
    InstructionType.CLEAR_ACTIONS: _ACTIONS.size,
    InstructionType.METER: _U32.size,
}


def decode_instruction(r: Reader) -> Instruction:
    """The next instruction in ``r`` (a window of an instruction list)."""
    itype, length = r.peek_u16(), r.peek_u16(2)
    if length < 8 or length % 8 or length > r.remaining:
        r.fail(f"instruction {itype} of length {length}, {r.remaining} bytes left")
    cls = INSTRUCTION_CLASSES.get(itype)
    if cls is None:
        r.fail(f"unknown instruction type {itype}",
               (ErrorType.BAD_INSTRUCTION, BadInstructionCode.UNKNOWN_INST))
    fixed = _FIXED_LEN.get(itype)
    if fixed is not None and length != fixed:
        r.fail(f"{cls.__name__} of length {length} (it is {fixed})")
    return cls.decode(r.window(length))


def decode_instructions(r: Reader) -> tuple[Instruction, ...]:
    """Every instruction left in ``r``, in order; they must fill it exactly."""
    w = r.window(r.remaining, BAD_INSTRUCTION_LEN, "instructions")
    instructions = []
    while w.remaining:
        instructions.append(decode_instruction(w))
    return tuple(instructions)


def encode_instructions(instructions: tuple[Instruction, ...] | list[Instruction]) -> bytes:
    return b"".join(i.encode() for i in instructions)
