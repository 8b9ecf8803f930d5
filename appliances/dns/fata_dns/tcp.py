"""DNS over TCP (RFC 7766, RFC 1035 section 4.2.2): framing, deadlines, connection limits.

A :class:`TcpSession` takes the bytes of one connection as they arrive and returns the
framed replies, in order, for every complete message (several queries per connection and
pipelining come for free).  Time is passed in: :meth:`TcpSession.next_deadline` says when
the connection expires and the adapter closes it then (it waits on its clock; nothing here
reads one).  Three deadlines, as BIND and Knot have them:

- *initial*: the first complete message must arrive within ``initial_timeout`` of the
  accept (BIND's ``tcp-initial-timeout``); a client that connects and says nothing, or
  trickles its query a byte at a time, gives its slot back after that, whatever it sends;
- *message*: once the first byte of a message arrived, the whole message must arrive within
  ``message_timeout`` (Knot's ``tcp-io-timeout``); bytes trickling in do not extend it;
- *idle*: between messages, the connection is closed after ``idle_timeout`` without a new
  one (RFC 7766 section 6.2.3; BIND's ``tcp-idle-timeout``, Knot's ``tcp-idle-timeout``).

Before the first message the earliest of the three that applies wins.

A :class:`ConnectionTable` decides which connections may have a slot: at most
``max_per_client`` per client (an IPv4 address, an IPv6 /64: one host's or one site's
addresses) and ``max_connections`` in all.  When the table is full, a new connection takes
the slot of the oldest one still waiting for its first complete message (the slot an
attacker holds longest; a well-behaved client sends its query one round trip after the
accept); when every connection has completed a message, the new one is refused.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import Counter
from typing import NamedTuple

from fata_dns.server import Server

IDLE_TIMEOUT = 10.0  # seconds (Knot's default; RFC 7766 section 6.2.3 asks for seconds)
INITIAL_TIMEOUT = 5.0  # seconds to the first complete message (BIND: 30 s, at least 2.5 s)
MESSAGE_TIMEOUT = 2.0  # seconds from a message's first byte to its last (Knot: 0.5 s)
MAX_CONNECTIONS = 100
MAX_PER_CLIENT = 10


class TcpState(enum.Enum):
    """Where a connection is: which deadline applies."""

    INITIAL = "initial"  # no complete message yet
    MESSAGE = "message"  # part of a message received (after the first message)
    IDLE = "idle"  # between messages
    CLOSED = "closed"


class TcpSession:
    """The DNS state of one TCP connection."""

    def __init__(self, peer: tuple[str, int] | None, now: float,
                 idle_timeout: float = IDLE_TIMEOUT, *,
                 initial_timeout: float = INITIAL_TIMEOUT,
                 message_timeout: float = MESSAGE_TIMEOUT) -> None:
        self.peer = peer
        self.opened = now
        self.idle_timeout = idle_timeout
        self.initial_timeout = initial_timeout
        self.message_timeout = message_timeout
        self.closed = False
        self.messages = 0
        self._buf = bytearray()
        self._idle_since = now  # the accept, or the end of the last complete message
        self._message_started: float | None = None  # when the pending message's first byte came
        self.deadline = self._deadline()

    @property
    def state(self) -> TcpState:
        if self.closed:
            return TcpState.CLOSED
        if self.messages == 0:
            return TcpState.INITIAL
        return TcpState.MESSAGE if self._message_started is not None else TcpState.IDLE

    def _deadline(self) -> float:
        if self._message_started is not None:
            deadline = self._message_started + self.message_timeout
        else:
            deadline = self._idle_since + self.idle_timeout
        if self.messages == 0:
            deadline = min(deadline, self.opened + self.initial_timeout)
        return deadline

    def receive(self, data: bytes, now: float, server: Server) -> list[bytes]:
        """Feed received bytes; return the framed replies to write, in order.

        After a message that cannot be answered (no readable header) the session is
        closed: the framing can no longer be trusted.
        """
        if self.closed:
            return []
        buf = self._buf
        if data and not buf:
            self._message_started = now
        buf += data
        out: list[bytes] = []
        pos = 0
        while len(buf) - pos >= 2:
            length = (buf[pos] << 8) | buf[pos + 1]
            if len(buf) - pos - 2 < length:
                break
            message = bytes(buf[pos + 2 : pos + 2 + length])
            pos += 2 + length
            self.messages += 1
            replies = server.handle_tcp(message, self.peer)
            if not replies:
                self.closed = True
                break
            for reply in replies:
                out.append(len(reply).to_bytes(2, "big") + reply)
        if pos:
            del buf[:pos]
            self._idle_since = now
            # what is left is the start of the next message, which began arriving now
            self._message_started = now if buf else None
        self.deadline = self._deadline()
        return out

    def next_deadline(self) -> float | None:
        """When the connection expires (``None`` once closed)."""
        return None if self.closed else self.deadline

    def expired(self, now: float) -> bool:
        """Whether the deadline that applies has passed."""
        return now >= self.deadline


def client_key(peer: tuple[str, int] | None) -> str:
    """Whose connection this is, for the per-client limit: an IPv4 address (an IPv4-mapped
    IPv6 address counts as its IPv4 one), an IPv6 /64."""
    if peer is None:
        return ""
    host = str(peer[0])  # a string on host sockets, an address object on Fata's own stack
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Admission(NamedTuple):
    admitted: bool
    evicted: TcpSession | None  # the connection that gave up its slot; the adapter closes it


class ConnectionTable:
    """The TCP connections that hold a slot, and the policy for a new one."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS,
                 max_per_client: int = MAX_PER_CLIENT) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self._sessions: dict[TcpSession, str] = {}  # in the order they were admitted
        self._per_client: Counter[str] = Counter()
        self.refused_full = 0
        self.refused_per_client = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def admit(self, session: TcpSession) -> Admission:
        """Give ``session`` a slot, maybe taking that of the oldest connection still waiting
        for its first message (then removed here), or refuse it."""
        key = client_key(session.peer)
        if self._per_client[key] >= self.max_per_client:
            self.refused_per_client += 1
            return Admission(False, None)
        victim = None
        if len(self._sessions) >= self.max_connections:
            victim = next((s for s in self._sessions
                           if s.messages == 0 and not s.closed), None)
            if victim is None:
                self.refused_full += 1
                return Admission(False, None)
            self.remove(victim)
            victim.closed = True
            self.evicted += 1
        self._sessions[session] = key
        self._per_client[key] += 1
        return Admission(True, victim)

    def remove(self, session: TcpSession) -> None:
        """The connection is gone (closed, expired, evicted); removing twice is harmless."""
        key = self._sessions.pop(session, None)
        if key is None:
            return
        self._per_client[key] -= 1
        if not self._per_client[key]:
            del self._per_client[key]
