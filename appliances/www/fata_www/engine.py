"""The HTTP/1.1 engine, sans-IO: one :class:`HttpConnection` per TCP connection.

Bytes go in with the time (:meth:`HttpConnection.receive`), bytes to write come out, and
:attr:`HttpConnection.closed` says when the connection is to end once they are written;
:meth:`~HttpConnection.next_deadline` names the moment :meth:`~HttpConnection.on_timer` wants
to run.  Nothing here reads a clock or touches a socket: ``now`` (monotonic, for timeouts)
and ``wall`` (epoch seconds, for ``Date``) are arguments.

Requests are answered in order, one at a time, which is all that HTTP/1.1 pipelining asks.
Each request at the head of the buffer takes one of two paths:

- the *fast path*: a complete head whose request line is exactly ``GET`` or ``HEAD``, a
  target in the prepared table (``Responses.fast``, raw bytes, so no decoding) and
  ``HTTP/1.1``, with only ordinary headers (:data:`FAST_HEADERS`, valid values, exactly one
  ``Host``, no body framing, no conditionals or ranges, ``Connection`` absent,
  ``keep-alive`` or ``close``, the last answered with ``Connection: close`` and the end of
  the connection, as h11 would): a slice of the buffer, a dictionary lookup, and the
  prepared bytes (a brotli or gzip variant's when the resource has one and
  ``Accept-Encoding`` prefers it, a decision remembered per header value);
- everything else goes to a fresh ``h11.Connection`` with the bytes so far, which parses and
  frames that one request and its response (keep-alive, ``Connection: close``, HTTP/1.0,
  bodies, chunked encoding, every malformation h11 knows).  When its cycle ends, whatever
  h11 holds beyond that request comes back into our buffer, so the next request may take the
  fast path again.

Limits: a request line longer than ``max_request_line`` is 414, a head longer than
``max_header_bytes`` 431, a body longer than ``max_body`` 413, a malformed request 400,
each followed by the end of the connection (the framing can no longer be trusted).  At most
``max_pipeline`` requests are answered per call; :attr:`HttpConnection.pending` then says
that more wait in the buffer, and the adapter writes the answers before asking again, so a
client that pipelines without reading holds one read's worth of requests, never a pile of
answers.  Timeouts: a request's head (and body) must be complete within ``header_timeout``
of its first byte, or of the accept for the first request (slowloris: bytes trickling in do
not extend it; a partial request gets 408); between requests a connection may idle for
``idle_timeout``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import h11

from fata_www.dates import http_date
from fata_www.responses import REASONS, Answers, Reply, choose_encoding, closing_bytes


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds a connection is held to (the appliance's ``--max-*`` and timeouts)."""

    max_request_line: int = 8192
    max_header_bytes: int = 16384
    max_body: int = 65536
    max_pipeline: int = 32
    header_timeout: float = 10.0
    idle_timeout: float = 30.0


# Header names a plain GET from a browser, curl or a load generator carries, none of which
# changes the answer; anything else sends the request to h11.
FAST_HEADERS = frozenset({
    b"host", b"user-agent", b"accept", b"accept-language", b"accept-encoding",
    b"cache-control", b"pragma", b"referer", b"cookie", b"dnt", b"upgrade-insecure-requests",
    b"sec-fetch-dest", b"sec-fetch-mode", b"sec-fetch-site", b"sec-fetch-user", b"sec-gpc",
    b"sec-ch-ua", b"sec-ch-ua-mobile", b"sec-ch-ua-platform", b"priority", b"te", b"origin",
    b"connection",
})
ENCODING_MEMO = 64
JOIN_BODY = 16384  # bodies up to this size are joined to their head (one write, one segment)
# A field value as h11 accepts it: visible characters, spaces and tabs, obs-text.
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


class LogEntry(NamedTuple):
    """One answered request, for the access log."""

    request_line: bytes
    status: int
    size: int  # body bytes sent


class HttpServer:
    """What every connection shares: the current site's responses (swapped whole on a
    reload, so each request sees one site), the limits, and the ``Date`` of this second."""

    def __init__(self, responses: Answers, limits: Limits | None = None, *,
                 access_log: bool = False) -> None:
        self.responses = responses
        self.limits = limits or Limits()
        self.access_log = access_log
        self._date_second = -1
        self._encodings: dict[tuple[bytes, tuple[bytes, ...]], bytes | None] = {}
        self._date_line = b""
        self._h2_owner: object = None
        self._h2_memo: dict[tuple[bytes, bytes, bytes | None], Any] = {}

    def h2_memo(self, responses: object, key: tuple[bytes, bytes, bytes | None],
                value: Any = None
                ) -> Any:
        """HTTP/2's memoised answers (``fata_www.h2engine``) of these ``responses``: the one
        under ``key``, or store ``value`` there; a reload's new responses start afresh."""
        if self._h2_owner is not responses:
            self._h2_owner, self._h2_memo = responses, {}
        if value is None:
            return self._h2_memo.get(key)
        self._h2_memo[key] = value
        return value

    def choose_encoding(self, accept_encoding: bytes, codings: tuple[bytes, ...]
                        ) -> bytes | None:
        """:func:`~fata_www.responses.choose_encoding`, remembered for the few values
        clients send (at most :data:`ENCODING_MEMO` of them: an attacker's variety is just
        recomputed)."""
        key = (accept_encoding, codings)
        try:
            return self._encodings[key]
        except KeyError:
            answer = choose_encoding(accept_encoding.strip(), codings)
            if len(self._encodings) < ENCODING_MEMO:
                self._encodings[key] = answer
            return answer

    def date_line(self, wall: float) -> bytes:
        """``Date: ...\\r\\n`` for ``wall``, formatted once per second."""
        second = int(wall)
        if second != self._date_second:
            self._date_second = second
            self._date_line = b"Date: " + http_date(second) + b"\r\n"
        return self._date_line


class HttpConnection:
    """The HTTP/1.1 state of one connection."""

    def __init__(self, server: HttpServer, now: float) -> None:
        self.server = server
        self.limits = server.limits
        self.closed = False  # no more input is processed; close after writing what was given
        self.pending = False  # complete requests may wait in the buffer (max_pipeline reached)
        self.requests = 0
        self.fast_answers = 0
        self.timed_out: str | None = None  # "header" or "idle" once a deadline passed
        self.log: list[LogEntry] = []
        self._buf = bytearray()
        self._h11: h11.Connection | None = None
        self._request: h11.Request | None = None
        self._body_len = 0
        self._eof = False
        self._wall = 0.0  # the wall time of the latest input, for the Date of a failure
        self._head_started: float | None = now  # the first request's clock runs from the accept
        self._idle_since = now

    # -- input -------------------------------------------------------------------------

    def receive(self, data: bytes, now: float, wall: float) -> list[bytes]:
        """Feed received bytes (``b""`` to go on after :attr:`pending`); the bytes to write."""
        if self.closed:
            return []
        self._wall = wall
        if data:
            if self._h11 is not None:
                self._h11.receive_data(data)
            else:
                if not self._buf and self._head_started is None:
                    self._head_started = now
                self._buf += data
        return self._process(now, wall)

    def receive_eof(self, now: float, wall: float) -> list[bytes]:
        """The peer closed its side: answer what is complete, then the connection is closed."""
        out: list[bytes] = []
        if self.closed:
            return out
        self._eof = True
        self._wall = wall
        if self._h11 is not None:
            self._h11.receive_data(b"")
        while not self.closed:
            before = self.requests
            out += self._process(now, wall)
            if self.requests == before:
                break
        self.closed = True
        return out

    # -- timers ------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` wants to run (None once closed)."""
        if self.closed:
            return None
        if self._head_started is not None:
            return self._head_started + self.limits.header_timeout
        return self._idle_since + self.limits.idle_timeout

    def on_timer(self, now: float) -> list[bytes]:
        """Close the connection if its deadline passed: a partial request gets 408."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        self.closed = True
        if self._head_started is not None and (self._buf or self._h11 is not None):
            self.timed_out = "header"
            return [closing_bytes(408, self.server.date_line(self._wall))]
        self.timed_out = "idle"
        return []

    # -- the request loop --------------------------------------------------------------

    def _process(self, now: float, wall: float) -> list[bytes]:
        out: list[bytes] = []
        answered = 0
        limits = self.limits
        while not self.closed and answered < limits.max_pipeline:
            if self._h11 is not None:
                if not self._step_h11(out, now, wall):
                    break
                answered += 1
                continue
            buf = self._buf
            if not buf:
                break
            end = buf.find(b"\r\n\r\n")
            line_end = buf.find(b"\n")
            if line_end > limits.max_request_line or (
                    line_end < 0 and len(buf) > limits.max_request_line):
                self._fail(out, 414)
                break
            if end < 0 or end + 4 > limits.max_header_bytes:
                if end < 0 and b"\n\n" in buf:  # bare LF line ends: h11's business
                    self._start_h11()
                    continue
                if len(buf) > limits.max_header_bytes:
                    self._fail(out, 431)
                break  # wait for the rest of the head
            if self._fast(buf, end, out, now, wall):
                answered += 1
                continue
            self._start_h11()
        self.pending = not self.closed and answered >= limits.max_pipeline and bool(
            self._buf or self._h11 is not None)
        return out

    def _fast(self, buf: bytearray, end: int, out: list[bytes], now: float, wall: float
              ) -> bool:
        """Answer the request at the head of ``buf`` from the prepared table if it is plain."""
        line_end = buf.find(b"\r\n")
        line = bytes(buf[:line_end])
        if line[:4] == b"GET ":
            target, head = line[4:-9], False
        elif line[:5] == b"HEAD ":
            target, head = line[5:-9], True
        else:
            return False
        if line[-9:] != b" HTTP/1.1":
            return False
        prepared = self.server.responses.fast.get(target)
        if prepared is None:
            return False
        hosts = 0
        close = False
        accept_encoding: bytes | None = None
        if end > line_end:
            for field in bytes(buf[line_end + 2 : end]).split(b"\r\n"):
                name, sep, value = field.partition(b":")
                lname = name.lower()
                if not sep or lname not in FAST_HEADERS or not _FIELD_VALUE.fullmatch(value):
                    return False
                if lname == b"host":
                    hosts += 1
                elif lname == b"accept-encoding":
                    if accept_encoding is not None:
                        return False  # a repeated one is joined by the slow path
                    accept_encoding = value
                elif lname == b"connection":
                    option = value.strip().lower()
                    if option == b"close":
                        close = True
                    elif option != b"keep-alive":
                        return False
        if hosts != 1:
            return False
        head_bytes, body = prepared.head, prepared.body
        if prepared.codings and accept_encoding is not None:
            coding = self.server.choose_encoding(accept_encoding, prepared.codings)
            if coding is not None:
                head_bytes, body = prepared.encoded[coding]
        del buf[: end + 4]
        date = self.server.date_line(wall)
        if close:  # the answer says so, and nothing after this request is read
            date += b"Connection: close\r\n"
            buf.clear()
            self.closed = True
        if head:
            out.append(head_bytes + date + b"\r\n")
        elif len(body) > JOIN_BODY:  # written after the head, not copied into one buffer
            out.append(head_bytes + date + b"\r\n")
            out.append(body)
        else:
            out.append(head_bytes + date + b"\r\n" + body)
        self.requests += 1
        self.fast_answers += 1
        if self.server.access_log:
            self.log.append(LogEntry(line, 200, 0 if head else len(body)))
        self._request_done(now)
        return True

    def _start_h11(self) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        conn.receive_data(bytes(self._buf))
        if self._eof:
            conn.receive_data(b"")
        self._buf.clear()
        self._h11 = conn
        self._request = None
        self._body_len = 0

    def _step_h11(self, out: list[bytes], now: float, wall: float) -> bool:
        """Run h11 until one request is answered (True) or it needs more bytes (False)."""
        conn = self._h11
        assert conn is not None
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint if exc.error_status_hint in REASONS else 400
                self._fail(out, status)
                return True
            if event is h11.NEED_DATA:
                return False
            if isinstance(event, h11.Request):
                self._request = event
                if not event.http_version.startswith(b"1."):  # h11 parses any d.d
                    self._fail(out, 505)
                    return True
                length = _content_length(event.headers)
                if length is not None and length > self.limits.max_body:
                    self._fail(out, 413)
                    return True
            elif isinstance(event, h11.Data):
                self._body_len += len(event.data)
                if self._body_len > self.limits.max_body:
                    self._fail(out, 413)
                    return True
            elif isinstance(event, h11.EndOfMessage):
                self._respond_h11(conn, out, now, wall)
                return True
            else:  # ConnectionClosed, or PAUSED (cannot happen before we answer)
                self.closed = True
                return False

    def _respond_h11(self, conn: h11.Connection, out: list[bytes], now: float,
                     wall: float) -> None:
        request = self._request
        assert request is not None
        headers: dict[bytes, bytes] = {}
        for name, value in request.headers:
            headers[name] = headers[name] + b", " + value if name in headers else value
        reply: Reply = self.server.responses.answer(request.method, request.target, headers)
        date = self.server.date_line(wall)[6:-2]
        sends_body = request.method != b"HEAD" and reply.status not in (204, 304)
        try:
            out.append(conn.send(h11.Response(
                status_code=reply.status, headers=[*reply.headers, (b"Date", date)],
                reason=REASONS.get(reply.status, "").encode())))
            if sends_body and reply.body:
                out.append(conn.send(h11.Data(data=reply.body)))
            end = conn.send(h11.EndOfMessage())
            if end:
                out.append(end)
        except h11.LocalProtocolError:  # a reply h11 refuses is our bug; end the connection
            self._fail(out, 500)
            return
        self.requests += 1
        if self.server.access_log:
            line = b"%s %s HTTP/%s" % (request.method, request.target, request.http_version)
            self.log.append(LogEntry(line, reply.status, len(reply.body) if sends_body else 0))
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
            self.closed = True
            return
        conn.start_next_cycle()
        data, closed = conn.trailing_data
        self._h11 = None
        self._request = None
        self._buf = bytearray(data)
        if closed:
            self._eof = True
        self._request_done(now)

    def _request_done(self, now: float) -> None:
        self._idle_since = now
        self._head_started = now if self._buf else None

    def _fail(self, out: list[bytes], status: int) -> None:
        """Answer ``status`` and end the connection (used where h11 cannot frame a reply)."""
        out.append(closing_bytes(status, self.server.date_line(self._wall)))
        self.requests += 1
        if self.server.access_log:
            self.log.append(LogEntry(b"-", status, 0))
        self.closed = True
        self._buf.clear()
        self._h11 = None


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
