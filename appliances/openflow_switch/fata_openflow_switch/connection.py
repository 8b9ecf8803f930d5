"""An OpenFlow channel as a sans-IO engine: bytes in, events out, bytes to send queued.

The channel starts with both sides sending HELLO (specification 1.3.5, 6.3.1); the version
is the highest both version bitmaps share, or without the peer's bitmap the smaller of the
two header versions; when that is not 1.3 the peer gets ``OFPET_HELLO_FAILED`` /
``OFPHFC_INCOMPATIBLE`` with a sentence saying why and the channel closes.  So does a first
message that is not a HELLO, and a HELLO that cannot be read (no version can be agreed from
it).  The ``ERROR`` refusing a HELLO goes out in the peer's own header version, since
``OFPT_ERROR``, ``OFPET_HELLO_FAILED`` and ``OFPHFC_INCOMPATIBLE`` are numbered alike in
every OpenFlow version and the peer may speak no other.

After that, every message the framer cuts out of the stream (8-byte header, ``length``
bytes in all, in whatever pieces the transport delivers) is decoded by
:func:`.messages.decode_message`; a message it refuses is answered with the error it names
(``OFPBRC_BAD_VERSION``, ``OFPBRC_BAD_TYPE``, ``OFPBRC_BAD_LEN``, ...) and the channel goes on:
a well-formed stream is never dropped.  Only a header announcing fewer than 8 bytes ends it,
since no message boundary can be trusted after one (it is answered ``OFPBRC_BAD_LEN`` first).

Nothing here reads a socket or a clock: the adapter feeds :meth:`Connection.receive_data`,
sends what :meth:`Connection.data_to_send` returns, and closes the transport after a
:class:`Closed` event once that is flushed.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from .messages import HEADER, ErrorMsg, Hello, Malformed, Message, VersionBitmap, decode_message
from .ofp_const import (
    OFP_ERROR_DATA_LEN,
    OFP_HEADER_LEN,
    OFP_VERSION,
    ErrorType,
    HelloFailedCode,
    MsgType,
)
from .wire import BAD_REQUEST_LEN

SUPPORTED_VERSIONS = frozenset({OFP_VERSION})


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The HELLO exchange agreed on ``version``; messages follow."""

    version: int


@dataclass(frozen=True, slots=True)
class Received:
    message: Message


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message the codec refused; the ``ERROR`` answering it is already queued."""

    malformed: Malformed


@dataclass(frozen=True, slots=True)
class Closed:
    """The channel is over (anything queued is the last to send): ``reason`` for a log."""

    reason: str


Event = Negotiated | Received | Rejected | Closed


class State(enum.Enum):
    AWAIT_HELLO = "await-hello"
    OPEN = "open"
    CLOSED = "closed"


_TRANSITIONS: dict[State, frozenset[State]] = {
    State.AWAIT_HELLO: frozenset({State.OPEN, State.CLOSED}),
    State.OPEN: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


def negotiate(ours: Collection[int], hello_version: int, hello: Hello) -> int | None:
    """The version to speak after the peer's ``hello`` (sent with header version
    ``hello_version``), given that ours went out with a bitmap of ``ours``; None when there
    is none.  Bitmaps with no version in common fail rather than fall back to the header
    versions: the peer has said it speaks none of ours."""
    theirs = hello.versions
    if theirs is not None:
        common = set(ours) & theirs
        return max(common) if common else None
    version = min(hello_version, max(ours))
    return version if version in ours else None


class Connection:
    """One side of an OpenFlow channel (the switch's, here; the engine is symmetric).

    Our HELLO (header version 1.3, a bitmap of :data:`SUPPORTED_VERSIONS`) is queued on
    creation, as the specification has each side send it at once."""

    def __init__(self, hello_xid: int = 0) -> None:
        self._buf = bytearray()
        self._out: list[bytes] = []
        self.state = State.AWAIT_HELLO
        self.version: int | None = None
        self._out.append(Hello((VersionBitmap.of(SUPPORTED_VERSIONS),), xid=hello_xid).encode())

    def _move(self, to: State) -> None:
        if to not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"OpenFlow channel cannot go from {self.state.value} to {to.value}")
        self.state = to

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message held."""
        return len(self._buf)

    def data_to_send(self) -> bytes:
        """Everything queued to the peer since the last call."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def send(self, message: Message) -> None:
        """Queue ``message`` (1.3's header).  Sending on a closed channel is a bug."""
        if self.state is State.CLOSED:
            raise RuntimeError("OpenFlow channel is closed")
        self._out.append(message.encode())

    def close(self, reason: str = "closed by the switch") -> Closed:
        """End the channel from our side; nothing more is read."""
        self._move(State.CLOSED)
        self._buf.clear()
        return Closed(reason)

    def receive_data(self, data: bytes) -> list[Event]:
        """The events ``data`` completes.  After :class:`Closed`, data is ignored."""
        if self.state is State.CLOSED:
            return []
        buf = self._buf
        buf += data
        events: list[Event] = []
        pos = 0
        while self.state is not State.CLOSED and len(buf) - pos >= OFP_HEADER_LEN:
            _, _, length, xid = HEADER.unpack_from(buf, pos)
            if length < OFP_HEADER_LEN:
                err = ErrorMsg.for_request(BAD_REQUEST_LEN, bytes(buf[pos:pos + OFP_ERROR_DATA_LEN]), xid)
                self._out.append(err.encode(self.version or OFP_VERSION))
                events.append(self.close(f"header announces {length} bytes: the stream cannot be framed"))
                return events
            if len(buf) - pos < length:
                break
            raw = bytes(buf[pos:pos + length])
            pos += length
            events.extend(self._message(raw, xid))
        del buf[:pos]
        return events

    def _message(self, raw: bytes, xid: int) -> list[Event]:
        if self.state is State.AWAIT_HELLO:
            return self._hello(raw, xid)
        result = decode_message(raw)
        if isinstance(result, Malformed):
            self._out.append(result.error.encode())
            return [Rejected(result)]
        return [Received(result)]

    def _hello(self, raw: bytes, xid: int) -> list[Event]:
        peer_version = raw[0]
        if raw[1] != MsgType.HELLO:
            return self._hello_failed(peer_version, xid, f"expected HELLO, got message type {raw[1]}")
        hello = decode_message(raw)
        if isinstance(hello, Malformed):
            return self._hello_failed(peer_version, xid, f"unreadable HELLO ({hello.reason})")
        assert isinstance(hello, Hello)
        version = negotiate(SUPPORTED_VERSIONS, peer_version, hello)
        if version is None:
            theirs = sorted(hello.versions or {peer_version})
            return self._hello_failed(peer_version, xid, f"no common version: we speak "
                                      f"{sorted(SUPPORTED_VERSIONS)}, the peer {theirs}")
        self.version = version
        self._move(State.OPEN)
        return [Negotiated(version)]

    def _hello_failed(self, peer_version: int, xid: int, reason: str) -> list[Event]:
        err = ErrorMsg(ErrorType.HELLO_FAILED, HelloFailedCode.INCOMPATIBLE,
                       reason.encode("ascii", "replace"), xid=xid)
        self._out.append(err.encode(peer_version))
        return [self.close(reason)]
