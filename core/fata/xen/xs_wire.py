"""The xenstore wire protocol (Xen's ``xen/io/xs_wire.h``, ``docs/misc/xenstore.txt``):
messages, their framing, and the error strings, as bytes in and bytes out.

A message is a 16-byte header of four little-endian ``uint32`` (type, request id,
transaction id, payload length) and at most :data:`PAYLOAD_MAX` bytes of payload, which is
mostly NUL-terminated strings.  The same framing runs over the Unix sockets of a daemon
and over a domain's shared-memory ring, so :class:`MessageReader` takes bytes in whatever
pieces a transport delivers and hands out whole messages; nothing here reads a socket or a
clock, which is what lets the daemon, a client and the tests share it.

A peer that announces a payload over :data:`PAYLOAD_MAX` has broken the protocol (the C
daemon drops such a connection): the reader raises :class:`WireError` and keeps nothing of
the stream after it.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

HEADER = struct.Struct("<IIII")
PAYLOAD_MAX = 4096
ABS_PATH_MAX = 3072
REL_PATH_MAX = 2048
RING_SIZE = 1024  # each of a domain ring's request and response rings
FEATURE_RECONNECTION = 1  # XENSTORE_SERVER_FEATURE_*: what a ring's server offers
FEATURE_ERROR = 2


class Op(enum.IntEnum):
    """Message types (``enum xsd_sockmsg_type``); numbers are the wire's."""

    CONTROL = 0  # also XS_DEBUG
    DIRECTORY = 1
    READ = 2
    GET_PERMS = 3
    WATCH = 4
    UNWATCH = 5
    TRANSACTION_START = 6
    TRANSACTION_END = 7
    INTRODUCE = 8
    RELEASE = 9
    GET_DOMAIN_PATH = 10
    WRITE = 11
    MKDIR = 12
    RM = 13
    SET_PERMS = 14
    WATCH_EVENT = 15
    ERROR = 16
    IS_DOMAIN_INTRODUCED = 17
    RESUME = 18
    SET_TARGET = 19
    RESET_WATCHES = 21  # XS_SET_TARGET + 2: XS_RESTRICT (20) was removed
    DIRECTORY_PART = 22
    GET_FEATURE = 23  # these four are in xenstore.txt and Xen 4.20's xs_wire.h,
    SET_FEATURE = 24  # not yet in Debian 12's (4.17)
    GET_QUOTA = 25
    SET_QUOTA = 26
    INVALID = 0xFFFF


ERRORS = ("EINVAL", "EACCES", "EEXIST", "EISDIR", "ENOENT", "ENOMEM", "ENOSPC", "EIO",
          "ENOTEMPTY", "ENOSYS", "EROFS", "EBUSY", "EAGAIN", "EISCONN", "E2BIG", "EPERM")
"""The error names ``xsd_errors`` allows, sent as the payload of an ``ERROR`` message."""


class WireError(ValueError):
    """The byte stream is not the xenstore protocol (the connection cannot go on)."""


class XenstoreError(Exception):
    """An operation answered with ``ERROR``; ``code`` is one of :data:`ERRORS`."""

    def __init__(self, code: str, detail: str = "") -> None:
        if code not in ERRORS:
            raise ValueError(f"{code!r} is not a xenstore error")
        super().__init__(f"{code}{': ' + detail if detail else ''}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Message:
    """One message: ``op`` is the raw type number (an unknown one is still a message,
    answered ``ENOSYS``), ``payload`` its bytes."""

    op: int
    req_id: int
    tx_id: int
    payload: bytes

    def encode(self) -> bytes:
        """Header and payload as the wire carries them."""
        if len(self.payload) > PAYLOAD_MAX:
            raise WireError(f"payload of {len(self.payload)} bytes exceeds {PAYLOAD_MAX}")
        return HEADER.pack(self.op, self.req_id, self.tx_id, len(self.payload)) + self.payload

    def strings(self) -> list[bytes]:
        """The payload as NUL-terminated strings (the last may lack its NUL, as ``WRITE``'s
        value does)."""
        parts = self.payload.split(b"\0")
        if parts and parts[-1] == b"":
            parts.pop()
        return parts

    def reply(self, payload: bytes, op: int | None = None) -> Message:
        """The answer to this request: its ids, ``op`` (default the request's)."""
        return Message(self.op if op is None else op, self.req_id, self.tx_id, payload)

    def error(self, code: str) -> Message:
        """The ``ERROR`` answer ``code`` (one of :data:`ERRORS`) to this request."""
        if code not in ERRORS:
            raise ValueError(f"{code!r} is not a xenstore error")
        return self.reply(code.encode("ascii") + b"\0", Op.ERROR)


def strings_payload(parts: Sequence[bytes], terminate_last: bool = True) -> bytes:
    """NUL-separated ``parts``, the last NUL-terminated unless ``terminate_last`` is false
    (a ``WRITE``'s value is sent as it is); no parts is no bytes (a ``DIRECTORY`` of a node
    without children)."""
    if not parts:
        return b""
    body = b"\0".join(parts)
    return body + b"\0" if terminate_last else body


def watch_event(path: bytes, token: bytes) -> Message:
    """The ``WATCH_EVENT`` a connection gets when ``path`` changes under a watch ``token``."""
    return Message(Op.WATCH_EVENT, 0, 0, strings_payload([path, token]))


class MessageReader:
    """Bytes in, whole messages out, in any split.  :meth:`feed` raises
    :class:`WireError` for a payload length over :data:`PAYLOAD_MAX`; after that the
    reader refuses everything (the stream has no trustworthy message boundary left)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.broken = False

    def feed(self, data: bytes) -> Iterator[Message]:
        """The messages completed by ``data`` (a generator: iterate it to the end)."""
        if self.broken:
            raise WireError("the stream broke the protocol earlier")
        buf = self._buf
        buf += data
        pos = 0
        try:
            while len(buf) - pos >= HEADER.size:
                op, req_id, tx_id, length = HEADER.unpack_from(buf, pos)
                if length > PAYLOAD_MAX:
                    self.broken = True
                    raise WireError(f"message announces {length} bytes of payload "
                                    f"(at most {PAYLOAD_MAX})")
                end = pos + HEADER.size + length
                if len(buf) < end:
                    break
                yield Message(op, req_id, tx_id, bytes(buf[pos + HEADER.size:end]))
                pos = end
        finally:
            del buf[:pos]

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message held."""
        return len(self._buf)
