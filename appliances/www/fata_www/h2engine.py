"""The HTTP/2 state of one connection (RFC 9113): the sans-IO ``h2`` package framing the
same answers as HTTP/1.1.

:class:`H2Connection` has :class:`~fata_www.engine.HttpConnection`'s interface (bytes and
times in, bytes out, ``next_deadline``/``on_timer`` for the timeouts), so the appliance runs
either over a flow: ALPN ``h2`` over TLS, or a cleartext connection that opens with the
HTTP/2 preface (prior knowledge, :func:`is_preface`).  Every request is answered by the
listener's ``Answers`` (:meth:`Responses.answer`) once its stream ends; a plain ``GET`` or
``HEAD`` of a prepared target, with no conditional or range, takes a memo of its header
list and body (per listener's answers, so a reload starts a new one).  Bodies go out as
the peer's flow-control windows allow, in frames of at most its maximum frame size, as
slices of the one prepared body.

Limits against the known HTTP/2 attacks, beyond those ``h2`` enforces itself (frame sizes,
64 CONTINUATION frames per header block, HPACK bounds):

- concurrent streams: :data:`MAX_STREAMS` advertised; a stream beyond it is refused with
  ``REFUSED_STREAM`` and the others go on (``h2`` itself is left a backstop of twice that,
  where it ends the connection);
- the header list: ``max_header_bytes`` advertised (``SETTINGS_MAX_HEADER_LIST_SIZE``) and
  enforced by the HPACK decoder;
- rapid reset (CVE-2023-44487): streams the peer resets are counted in a budget
  (:data:`RESET_BURST`, refilled at :data:`RESET_RATE` per second); past it the connection
  ends with ``GOAWAY(ENHANCE_YOUR_CALM)``;
- floods of control frames (SETTINGS, PING, PRIORITY, WINDOW_UPDATE, empty DATA, unknown
  frames): one budget likewise (:data:`CONTROL_BURST`, :data:`CONTROL_RATE`);
- request bodies: past ``max_body`` bytes the stream gets ``413`` and is reset;
- time: the preface and every request must arrive within ``header_timeout`` (of the accept,
  of the stream's first frame), and a connection with nothing to do for ``idle_timeout``
  gets ``GOAWAY(NO_ERROR)``.

A protocol error ends the connection with the ``GOAWAY`` ``h2`` chose; the server keeps
serving everyone else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from fata_www.engine import HttpServer, LogEntry
from fata_www.responses import Reply, error_reply

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_STREAMS = 100
RESET_BURST, RESET_RATE = 200.0, 50.0
CONTROL_BURST, CONTROL_RATE = 1000.0, 200.0
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade",
                        b"proxy-connection"})
UNMEMOISED = (b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since",
              b"if-range", b"range")
_CONTROL_EVENTS = (h2.events.RemoteSettingsChanged, h2.events.PingReceived,
                   h2.events.PriorityUpdated, h2.events.UnknownFrameReceived,
                   h2.events.SettingsAcknowledged, h2.events.PingAckReceived)
_CONFIG = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                    validate_outbound_headers=False,
                                    normalize_outbound_headers=False)


def is_preface(data: bytes) -> bool | None:
    """Whether a connection's first bytes are the HTTP/2 preface: True, False, or None while
    they are a proper beginning of it."""
    if data.startswith(PREFACE):
        return True
    return None if PREFACE.startswith(data) else False


@dataclass
class Budget:
    """A token bucket: ``burst`` events at once, refilled at ``rate`` per second."""

    burst: float
    rate: float
    tokens: float = field(init=False)
    at: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def spend(self, now: float, count: int = 1) -> bool:
        """Take ``count`` tokens at ``now``; False when the bucket is empty."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= count
        return self.tokens >= 0


@dataclass(slots=True)
class _Stream:
    started: float
    method: bytes = b""
    path: bytes = b""
    headers: dict[bytes, bytes] | None = None
    body_bytes: int = 0
    answered: bool = False
    out: memoryview | None = None  # the body still to send
    sent: int = 0


@dataclass(frozen=True, slots=True)
class _Head:
    """A memoised answer: its status, lowercase header list (no ``date``) and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def h2_headers(reply: Reply) -> list[tuple[bytes, bytes]]:
    """A reply's headers for HTTP/2: ``:status`` first, names in lowercase, no
    connection-specific fields (RFC 9113 section 8.2.2), ``date`` not included."""
    out = [(b":status", b"%d" % reply.status)]
    out += [(name.lower(), value) for name, value in reply.headers
            if name.lower() not in HOP_BY_HOP]
    return out


class H2Connection:
    """The HTTP/2 state of one connection; see the module docstring."""

    def __init__(self, server: HttpServer, now: float) -> None:
        self.server = server
        self.limits = server.limits
        self.closed = False
        self.pending = False  # never: every complete request is answered at once
        self.requests = 0
        self.refused_streams = 0
        self.timed_out: str | None = None
        self.calm: str | None = None  # what ended it with ENHANCE_YOUR_CALM
        self.log: list[LogEntry] = []
        self._accepted = now
        self._received = 0
        self._preface_seen = False
        self._last_input = now
        self._streams: dict[int, _Stream] = {}
        self._resets = Budget(RESET_BURST, RESET_RATE, at=now)
        self._control = Budget(CONTROL_BURST, CONTROL_RATE, at=now)
        self._conn = h2.connection.H2Connection(config=_CONFIG)
        header_list = self.limits.max_header_bytes
        codes = h2.settings.SettingCodes
        self._conn.local_settings = h2.settings.Settings(client=False, initial_values={
            codes.MAX_CONCURRENT_STREAMS: MAX_STREAMS, codes.MAX_HEADER_LIST_SIZE: header_list})
        self._conn.initiate_connection()
        self._conn.local_settings = h2.settings.Settings(client=False, initial_values={
            codes.MAX_CONCURRENT_STREAMS: 2 * MAX_STREAMS,
            codes.MAX_HEADER_LIST_SIZE: header_list})
        self._conn.decoder.max_header_list_size = header_list

    def initiate(self) -> list[bytes]:
        """The server's connection preface (its SETTINGS), to write first."""
        return self._output()

    # -- input -------------------------------------------------------------------------

    def receive(self, data: bytes, now: float, wall: float) -> list[bytes]:
        """Feed received bytes; the bytes to write."""
        if self.closed or not data:
            return []
        self._last_input = now
        if not self._preface_seen:  # h2 drops a wrong one silently: say why (GOAWAY)
            seen = self._received
            self._received += len(data)
            if not PREFACE.startswith(data[: len(PREFACE) - seen], seen):
                self._goaway(ErrorCodes.PROTOCOL_ERROR)
                return self._output()
            self._preface_seen = self._received >= len(PREFACE)
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError:  # h2 has queued the GOAWAY naming the error
            self.closed = True
            return self._output()
        for event in events:
            try:
                self._event(event, now, wall)
            except h2.exceptions.ProtocolError:  # the stream was reset or closed by a later
                # frame of the same read (h2 answered that already): nothing to send on it
                self._streams.pop(getattr(event, "stream_id", 0), None)
            if self.closed:
                break
        return self._output()

    def receive_eof(self, now: float, wall: float) -> list[bytes]:
        """The peer closed its side: nothing more can be asked or acknowledged."""
        self.closed = True
        return []

    # -- time --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` is next due."""
        if self.closed:
            return None
        if not self._preface_seen:
            return self._accepted + self.limits.header_timeout
        waiting = [s.started for s in self._streams.values() if not s.answered]
        if waiting:
            return min(waiting) + self.limits.header_timeout
        return self._last_input + self.limits.idle_timeout

    def on_timer(self, now: float) -> list[bytes]:
        """Apply a deadline that has passed: a request or the preface too slow ends the
        connection (``timed_out = "header"``), so does idleness (``"idle"``)."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        slow = not self._preface_seen or any(not s.answered for s in self._streams.values())
        self.timed_out = "header" if slow else "idle"
        self._goaway(ErrorCodes.NO_ERROR)
        return self._output()

    # -- events ------------------------------------------------------------------------

    def _event(self, event: h2.events.Event, now: float, wall: float) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event, now, wall)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event, now, wall)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self._streams.get(event.stream_id)
            if stream is not None and not stream.answered:
                self._answer(event.stream_id, stream, wall)
        elif isinstance(event, h2.events.WindowUpdated):
            if not self._spend(self._control, now, "window updates"):
                return
            self._flush_all()
        elif isinstance(event, h2.events.StreamReset):
            self._streams.pop(event.stream_id, None)
            if event.remote_reset and not self._spend(self._resets, now, "stream resets"):
                return
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True
        elif isinstance(event, _CONTROL_EVENTS):
            self._spend(self._control, now, type(event).__name__)

    def _spend(self, budget: Budget, now: float, what: str) -> bool:
        if budget.spend(now):
            return True
        self.calm = what
        self._goaway(ErrorCodes.ENHANCE_YOUR_CALM)
        return False

    def _request(self, event: h2.events.RequestReceived, now: float, wall: float) -> None:
        sid = event.stream_id
        if sum(1 for s in self._streams.values() if not s.answered or s.out) >= MAX_STREAMS:
            self.refused_streams += 1
            self._conn.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            return
        stream = _Stream(now)
        headers: dict[bytes, bytes] = {}
        for name, value in event.headers:
            if name == b":method":
                stream.method = value
            elif name == b":path":
                stream.path = value
            elif name == b":authority":
                headers.setdefault(b"host", value)
            elif name[:1] != b":":
                old = headers.get(name)
                joiner = b"; " if name == b"cookie" else b", "
                headers[name] = value if old is None else old + joiner + value
        stream.headers = headers
        self._streams[sid] = stream
        if event.stream_ended is not None:
            self._answer(sid, stream, wall)

    def _data(self, event: h2.events.DataReceived, now: float, wall: float) -> None:
        sid = event.stream_id
        if event.flow_controlled_length:
            self._conn.acknowledge_received_data(event.flow_controlled_length, sid)
        elif not event.stream_ended and not self._spend(self._control, now, "empty DATA"):
            return
        stream = self._streams.get(sid)
        if stream is None or stream.answered:
            return
        stream.body_bytes += len(event.data)
        if stream.body_bytes > self.limits.max_body:
            self._send(sid, stream, error_reply(413), wall)
            if sid in self._conn.streams and not self._conn.streams[sid].closed:
                self._conn.reset_stream(sid, ErrorCodes.NO_ERROR)
            self._streams.pop(sid, None)

    # -- answers -----------------------------------------------------------------------

    def _answer(self, sid: int, stream: _Stream, wall: float) -> None:
        self.requests += 1
        responses = self.server.responses
        headers = stream.headers or {}
        method, path = stream.method, stream.path
        memo = None
        if (method in (b"GET", b"HEAD") and path in responses.fast
                and not any(name in headers for name in UNMEMOISED)):
            prepared = responses.fast[path]
            coding = self.server.choose_encoding(headers.get(b"accept-encoding", b""),
                                                 prepared.codings) if prepared.codings else None
            memo = self.server.h2_memo(responses, (method, path, coding))
            if memo is None:
                reply = responses.answer(method, path, headers)
                memo = _Head(reply.status, h2_headers(reply), reply.body)
                self.server.h2_memo(responses, (method, path, coding), memo)
        if memo is None:
            reply = responses.answer(method, path, headers)
            memo = _Head(reply.status, h2_headers(reply), reply.body)
        self._send_head(sid, stream, memo, method == b"HEAD", wall)

    def _send(self, sid: int, stream: _Stream, reply: Reply, wall: float) -> None:
        self._send_head(sid, stream, _Head(reply.status, h2_headers(reply), reply.body),
                        False, wall)

    def _send_head(self, sid: int, stream: _Stream, head: _Head, is_head: bool,
                   wall: float) -> None:
        stream.answered = True
        body = b"" if is_head else head.body
        date = (b"date", self.server.date_line(wall)[6:-2])
        self._conn.send_headers(sid, [*head.headers, date], end_stream=not body)
        if self.server.access_log:
            line = stream.method + b" " + stream.path + b" HTTP/2.0"
            self.log.append(LogEntry(line, head.status, len(body)))
        if body:
            stream.out = memoryview(body)
            self._flush(sid, stream)
        else:
            self._streams.pop(sid, None)

    def _flush(self, sid: int, stream: _Stream) -> None:
        """Send what the windows allow of a stream's body."""
        out = stream.out
        assert out is not None
        conn = self._conn
        total = len(out)
        while stream.sent < total:
            size = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size,
                       total - stream.sent)
            if size <= 0:
                return
            end = stream.sent + size
            conn.send_data(sid, out[stream.sent:end], end_stream=end == total)
            stream.sent = end
        self._streams.pop(sid, None)

    def _flush_all(self) -> None:
        for sid, stream in list(self._streams.items()):
            if stream.out is not None:
                try:
                    self._flush(sid, stream)
                except h2.exceptions.ProtocolError:  # closed meanwhile: nothing to send
                    self._streams.pop(sid, None)

    # -- output ------------------------------------------------------------------------

    def _goaway(self, code: ErrorCodes) -> None:
        if not self.closed:
            self._conn.close_connection(error_code=code)
            self.closed = True

    def _output(self) -> list[bytes]:
        data = self._conn.data_to_send()
        return [data] if data else []
