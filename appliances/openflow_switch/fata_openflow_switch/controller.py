"""The controller's side of OpenFlow channels, as a sans-IO engine with NOX-style events.

NOX (the controller the ASPLOS paper's Mirage controller was measured against) gave its
applications events, not messages: a datapath joined (its id and ports known), a packet
came in (in-port, buffer, frame), a datapath left.  :class:`Datapath` is one switch's
channel: bytes in through :meth:`Datapath.receive_data`, those events out, and the bytes to
send queued by what the application calls (:meth:`Datapath.install`, :meth:`Datapath.send`).
It speaks OpenFlow 1.0 and 1.3, whichever the switch's HELLO agrees on (specification
1.3.5, 6.3.1): the HELLO goes out with a bitmap of both, then FEATURES_REQUEST; the
FEATURES_REPLY makes the datapath join, after which (1.3 only, where a table miss drops by
default) a table-miss flow sends every unmatched packet to the controller.  ECHO_REQUESTs
are answered here; an ERROR from the switch becomes an event.

:class:`Controller` holds the applications and hands each event to every one that has a
handler for it (``datapath_join``, ``packet_in``, ``datapath_leave``, ``switch_error``),
as NOX's components registered for events.  Nothing here reads a socket or a clock.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from . import of10
from .actions import Output
from .connection import negotiate
from .instructions import ApplyActions
from .messages import (
    HEADER,
    ErrorMsg,
    FeaturesReply,
    FeaturesRequest,
    FlowMod,
    Hello,
    PacketIn,
    PacketOut,
    VersionBitmap,
    decode_message,
)
from .ofp_const import (
    OFP_NO_BUFFER,
    OFP_VERSION,
    OFPCML_NO_BUFFER,
    ErrorType,
    HelloFailedCode,
    MsgType,
    OxmField,
    PortNo,
)
from .oxm import Match, OxmTlv

VERSIONS = frozenset({of10.OFP10_VERSION, OFP_VERSION})
FLOOD = "flood"
_U32 = struct.Struct("!I")


class State(enum.Enum):
    AWAIT_HELLO = "await-hello"
    AWAIT_FEATURES = "await-features"
    READY = "ready"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class DatapathJoin:
    datapath: Datapath


@dataclass(frozen=True, slots=True)
class PacketInEvent:
    """A packet the switch sent up: its in-port, buffer (``OFP_NO_BUFFER`` when ``data`` is
    all of it), length on the wire, the reason code and the frame (or its first bytes)."""

    datapath: Datapath
    in_port: int
    buffer_id: int
    total_len: int
    reason: int
    data: bytes
    now: float


@dataclass(frozen=True, slots=True)
class DatapathLeave:
    datapath: Datapath
    reason: str


@dataclass(frozen=True, slots=True)
class SwitchError:
    datapath: Datapath
    error_type: int
    code: int
    data: bytes


Event = DatapathJoin | PacketInEvent | DatapathLeave | SwitchError


class Datapath:
    """One switch's channel, from the controller's side."""

    def __init__(self, versions: frozenset[int] = VERSIONS) -> None:
        self.versions = versions
        self.state = State.AWAIT_HELLO
        self.version: int | None = None
        self.datapath_id: int | None = None
        self.n_buffers = 0
        self.ports: tuple[int, ...] = ()
        self.joined = False
        self.now = 0.0
        self.received = 0
        self.sent = 0
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._xid = 0
        self._out.append(Hello((VersionBitmap.of(versions),)).encode(max(versions)))

    def _next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def close(self, reason: str) -> DatapathLeave:
        """The channel is over (from either side); nothing more is read or sent."""
        self.state = State.CLOSED
        self._buf.clear()
        return DatapathLeave(self, reason)

    # --- what applications call --------------------------------------------------------

    def install(self, in_port: int, dl_dst: bytes, out_port: int, *, buffer_id: int,
                priority: int = 0x8000, idle_timeout: int = 0, hard_timeout: int = 0) -> None:
        """A flow sending frames from ``in_port`` to ``dl_dst`` out of ``out_port``, applied
        at once to the buffered packet ``buffer_id`` (when it is not ``OFP_NO_BUFFER``)."""
        if self.state is not State.READY:
            return
        self.sent += 1
        if self.version == of10.OFP10_VERSION:
            self._out.append(of10.flow_mod(
                self._next_xid(), of10.match_in_port_dl_dst(in_port, dl_dst),
                of10.output(out_port), priority=priority, buffer_id=buffer_id,
                idle_timeout=idle_timeout, hard_timeout=hard_timeout))
            return
        match = Match((OxmTlv(OxmField.IN_PORT, _U32.pack(in_port)),
                       OxmTlv(OxmField.ETH_DST, dl_dst)))
        self._out.append(FlowMod(priority=priority, buffer_id=buffer_id,
                                 idle_timeout=idle_timeout, hard_timeout=hard_timeout,
                                 match=match, instructions=(ApplyActions((Output(out_port),)),),
                                 xid=self._next_xid()).encode())

    def send(self, in_port: int, out_port: int | str, *, buffer_id: int = OFP_NO_BUFFER,
             data: bytes = b"") -> None:
        """A PACKET_OUT of the buffered packet (or of ``data``) to ``out_port`` (``FLOOD``:
        every port but ``in_port``)."""
        if self.state is not State.READY:
            return
        self.sent += 1
        payload = data if buffer_id == OFP_NO_BUFFER else b""
        if self.version == of10.OFP10_VERSION:
            port = of10.OFPP10_FLOOD if out_port == FLOOD else int(out_port)
            self._out.append(of10.packet_out(self._next_xid(), in_port, of10.output(port),
                                             buffer_id=buffer_id, data=payload))
            return
        port = PortNo.FLOOD if out_port == FLOOD else int(out_port)
        self._out.append(PacketOut(buffer_id, in_port, (Output(port, 0),), payload,
                                   xid=self._next_xid()).encode())

    # --- what the switch sends ---------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """The events ``data`` completes, received at ``now`` (the caller's clock)."""
        if self.state is State.CLOSED:
            return []
        self.now = now
        buf = self._buf
        buf += data
        events: list[Event] = []
        pos = 0
        unpack = HEADER.unpack_from
        while len(buf) - pos >= HEADER.size:
            version, msg_type, length, xid = unpack(buf, pos)
            if length < HEADER.size:
                events.append(self.close(f"header announces {length} bytes: the stream "
                                         "cannot be framed"))
                return events
            if len(buf) - pos < length:
                break
            raw = bytes(buf[pos:pos + length])
            pos += length
            self.received += 1
            event = self._message(version, msg_type, xid, raw)
            if event is not None:
                events.append(event)
                if self.state is State.CLOSED:
                    return events
        del buf[:pos]
        return events

    def _message(self, version: int, msg_type: int, xid: int, raw: bytes) -> Event | None:
        if self.state is State.AWAIT_HELLO:
            return self._hello(version, msg_type, raw)
        if version != self.version:
            return None  # not the agreed version: nothing we can read (and the spec says drop)
        if msg_type == MsgType.PACKET_IN and self.state is State.READY:
            return self._packet_in(raw)
        if msg_type == MsgType.ECHO_REQUEST:
            self._out.append(HEADER.pack(version, MsgType.ECHO_REPLY, len(raw), xid)
                             + raw[HEADER.size:])
            return None
        if msg_type == MsgType.FEATURES_REPLY and self.state is State.AWAIT_FEATURES:
            return self._features(raw)
        if msg_type == MsgType.ERROR and len(raw) >= 12:
            error_type, code = struct.unpack_from("!HH", raw, 8)
            return SwitchError(self, error_type, code, raw[12:])
        return None  # port status, flow removed, barrier replies...: no application wants them

    def _hello(self, version: int, msg_type: int, raw: bytes) -> Event | None:
        if msg_type != MsgType.HELLO:
            return self.close(f"expected HELLO, got message type {msg_type}")
        hello = decode_message(raw)
        agreed = negotiate(self.versions, version, hello) if isinstance(hello, Hello) else (
            min(version, max(self.versions)))
        if agreed not in self.versions:
            self._out.append(ErrorMsg(ErrorType.HELLO_FAILED, HelloFailedCode.INCOMPATIBLE,
                                      b"no common OpenFlow version").encode(version))
            return self.close(f"no common version with the switch's {version}")
        self.version = agreed
        self.state = State.AWAIT_FEATURES
        self._out.append(HEADER.pack(agreed, MsgType.FEATURES_REQUEST, HEADER.size,
                                     self._next_xid()) if agreed != OFP_VERSION
                         else FeaturesRequest(xid=self._next_xid()).encode())
        return None

    def _features(self, raw: bytes) -> Event | None:
        try:
            if self.version == of10.OFP10_VERSION:
                reply = of10.decode_features_reply(raw)
                self.datapath_id, self.n_buffers = reply.datapath_id, reply.n_buffers
                self.ports = tuple(p.port_no for p in reply.ports)
            else:
                msg = decode_message(raw)
                if not isinstance(msg, FeaturesReply):
                    return self.close("unreadable FEATURES_REPLY")
                self.datapath_id, self.n_buffers = msg.datapath_id, msg.n_buffers
        except ValueError as exc:
            return self.close(f"unreadable FEATURES_REPLY: {exc}")
        self.state = State.READY
        self.joined = True
        if self.version == OFP_VERSION:  # 1.3 drops on a table miss: send misses up instead
            self._out.append(FlowMod(priority=0, instructions=(ApplyActions(
                (Output(PortNo.CONTROLLER, OFPCML_NO_BUFFER),)),),
                xid=self._next_xid()).encode())
        return DatapathJoin(self)

    def _packet_in(self, raw: bytes) -> Event | None:
        if self.version == of10.OFP10_VERSION:
            try:
                p = of10.decode_packet_in(raw)
            except ValueError:
                return None
            return PacketInEvent(self, p.in_port, p.buffer_id, p.total_len, p.reason, p.data,
                                 self.now)
        msg = decode_message(raw)
        if not isinstance(msg, PacketIn):
            return None
        in_port = msg.match.get(OxmField.IN_PORT)
        if in_port is None:
            return None
        return PacketInEvent(self, in_port.int_value, msg.buffer_id, msg.total_len, msg.reason,
                             msg.data, self.now)


class App(Protocol):
    """A controller application: any of ``datapath_join(event)``, ``packet_in(event)``,
    ``datapath_leave(event)``, ``switch_error(event)``."""


_HANDLERS = {DatapathJoin: "datapath_join", PacketInEvent: "packet_in",
             DatapathLeave: "datapath_leave", SwitchError: "switch_error"}


class Controller:
    """The applications, and the datapaths they serve."""

    def __init__(self, apps: Iterable[object], versions: frozenset[int] = VERSIONS) -> None:
        self.apps = list(apps)
        self.versions = versions
        self.datapaths: set[Datapath] = set()
        self._handlers = {kind: [getattr(app, name) for app in self.apps if hasattr(app, name)]
                          for kind, name in _HANDLERS.items()}

    def connect(self) -> Datapath:
        """A new switch connection (its HELLO already queued)."""
        dp = Datapath(self.versions)
        self.datapaths.add(dp)
        return dp

    def receive(self, dp: Datapath, data: bytes, now: float) -> bytes:
        """Feed ``data`` from ``dp``'s switch (received at ``now``), dispatch its events;
        the bytes to send it.  After the engine closed the channel (``dp.state`` is
        ``CLOSED``) the caller sends them and closes the connection."""
        for event in dp.receive_data(data, now):
            self.dispatch(event)
        return dp.data_to_send()

    def disconnect(self, dp: Datapath, reason: str) -> None:
        """The switch's connection ended (closed by either side)."""
        if dp.state is not State.CLOSED:
            self.dispatch(dp.close(reason))
        self.datapaths.discard(dp)

    def dispatch(self, event: Event) -> None:
        """``event`` to every application's handler for it; a datapath that never joined
        never leaves."""
        if isinstance(event, DatapathLeave):
            self.datapaths.discard(event.datapath)
            if not event.datapath.joined:
                return
        for handler in self._handlers[type(event)]:
            handler(event)
