"""DNS over TCP (RFC 7766, RFC 1035 section 4.2.2): framing and connection policy, sans-IO.

A :class:`TcpSession` takes the bytes of one connection as they arrive and returns the
framed replies, in order, for every complete message (several queries per connection and
pipelining come for free).  Time is passed in: the session tracks its idle deadline and
the adapter closes the connection once :meth:`TcpSession.expired` says so.
"""

from __future__ import annotations

from fata_dns.server import Server

IDLE_TIMEOUT = 10.0  # seconds (Knot's default; RFC 7766 section 6.2.3 asks for seconds)
MAX_CONNECTIONS = 100


class TcpSession:
    """The DNS state of one TCP connection."""

    def __init__(self, peer: tuple[str, int] | None, now: float,
                 idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.peer = peer
        self.idle_timeout = idle_timeout
        self.deadline = now + idle_timeout
        self.closed = False
        self.messages = 0
        self._buf = bytearray()

    def receive(self, data: bytes, now: float, server: Server) -> list[bytes]:
        """Feed received bytes; return the framed replies to write, in order.

        After a message that cannot be answered (no readable header) the session is
        closed: the framing can no longer be trusted.
        """
        if self.closed:
            return []
        self.deadline = now + self.idle_timeout
        buf = self._buf
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
        del buf[:pos]
        return out

    def expired(self, now: float) -> bool:
        """Whether the connection has been idle past its timeout."""
        return now >= self.deadline
