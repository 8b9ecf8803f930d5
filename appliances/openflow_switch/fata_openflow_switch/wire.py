"""Bounds-checked reading of OpenFlow's network-byte-order structures.

Every length in an OpenFlow message is the sender's claim, so every read goes through a
:class:`Reader` over a window of the message: reading past the window raises
:class:`BadMessage` with the error the specification names for *that* structure (a match cut
short is ``OFPBMC_BAD_LEN``, an action ``OFPBAC_BAD_LEN``, a message body ``OFPBRC_BAD_LEN``),
which the window was opened with.  ``BadMessage`` never leaves the codec: the message decoder
turns it into the ``ERROR`` reply (:class:`fata_openflow_switch.messages.Malformed`).
"""

from __future__ import annotations

import struct
from typing import NoReturn

from .ofp_const import BadRequestCode, ErrorType

ErrorCode = tuple[int, int]
"""An OpenFlow error as (``ofp_error_type``, code)."""

BAD_REQUEST_LEN: ErrorCode = (ErrorType.BAD_REQUEST, BadRequestCode.BAD_LEN)

U8 = struct.Struct("!B")
U16 = struct.Struct("!H")
U32 = struct.Struct("!I")
U64 = struct.Struct("!Q")


class BadMessage(Exception):
    """A structure the specification forbids; ``err`` is the error the sender gets back."""

    def __init__(self, err: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.err = err
        self.reason = reason


def pad8(length: int) -> int:
    """``length`` rounded up to a multiple of 8, the alignment of OpenFlow's variable parts."""
    return (length + 7) & ~7


def zeros_to_8(length: int) -> bytes:
    """The zero padding after ``length`` bytes that aligns them to 8."""
    return bytes(pad8(length) - length)


class Reader:
    """A window ``[pos, end)`` of a message; every read is checked against ``end``."""

    __slots__ = ("_data", "_end", "_pos", "err")

    def __init__(self, data: bytes, err: ErrorCode = BAD_REQUEST_LEN, pos: int = 0,
                 end: int | None = None) -> None:
        self._data = data
        self._pos = pos
        self._end = len(data) if end is None else end
        self.err = err

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def fail(self, reason: str, err: ErrorCode | None = None) -> NoReturn:
        """Raise this window's length error (or ``err``)."""
        raise BadMessage(self.err if err is None else err, reason)

    def _need(self, n: int, what: str) -> int:
        pos = self._pos
        if n < 0 or pos + n > self._end:
            self.fail(f"{what} needs {n} bytes, {self._end - pos} left")
        self._pos = pos + n
        return pos

    def unpack(self, st: struct.Struct, what: str = "structure") -> tuple:
        """The next ``st.size`` bytes unpacked."""
        return st.unpack_from(self._data, self._need(st.size, what))

    def u8(self) -> int:
        return U8.unpack_from(self._data, self._need(1, "u8"))[0]

    def u16(self) -> int:
        return U16.unpack_from(self._data, self._need(2, "u16"))[0]

    def u32(self) -> int:
        return U32.unpack_from(self._data, self._need(4, "u32"))[0]

    def take(self, n: int, what: str = "bytes") -> bytes:
        """The next ``n`` bytes."""
        pos = self._need(n, what)
        return bytes(self._data[pos:pos + n])

    def skip(self, n: int, what: str = "padding") -> None:
        """Step over ``n`` bytes (padding: a receiver ignores what it holds)."""
        self._need(n, what)

    def peek_u16(self, offset: int = 0) -> int:
        """A u16 at ``offset`` ahead, not consumed (a TLV's type or length)."""
        if self._pos + offset + 2 > self._end:
            self.fail(f"TLV header needs {offset + 2} bytes, {self.remaining} left")
        return U16.unpack_from(self._data, self._pos + offset)[0]

    def rest(self) -> bytes:
        """Everything left in the window."""
        return self.take(self.remaining)

    def window(self, n: int, err: ErrorCode | None = None, what: str = "structure") -> Reader:
        """The next ``n`` bytes as a window of their own, whose length errors are ``err``
        (a structure announced longer than what is left is its own length error too)."""
        err = self.err if err is None else err
        if n < 0 or n > self.remaining:
            self.fail(f"{what} needs {n} bytes, {self.remaining} left", err)
        pos = self._pos
        self._pos = pos + n
        return Reader(self._data, err, pos, pos + n)

    def end(self, what: str = "structure") -> None:
        """Refuse bytes left over: a fixed-size structure announced longer than it is."""
        if self._pos != self._end:
            self.fail(f"{self._end - self._pos} bytes after the {what}")
