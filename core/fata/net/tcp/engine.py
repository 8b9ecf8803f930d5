"""``TcpEngine``: all connections and listeners of one stack, and ``Listener``.

The engine demultiplexes arriving segments by 4-tuple (then to a listener by address and
port, or answers with a reset, RFC 9293 §3.10.7.1), creates connections with RFC 6528 ISNs,
bounds half-open connections (per listener backlog and in total: the SYN-flood limit),
collects what the connections send in ``outbox`` and which of them changed in
``touched``, and keeps one timer heap for all of them (``next_deadline``/``on_timer``).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Callable

from fata.net.tcp import congestion
from fata.net.tcp.config import TcpConfig
from fata.net.tcp.connection import Connection
from fata.net.tcp.seq import MASK
from fata.net.tcp.state import State
from fata.net.tcp_wire import ACK, FIN, RST, SYN, Segment


class Listener:
    """A passive open: SYNs to ``(ip, port)`` become connections, bounded by ``backlog``."""

    def __init__(self, ip: bytes, port: int, backlog: int) -> None:
        self.ip = ip
        self.port = port
        self.backlog = max(1, backlog)
        self.half_open = 0
        self.unaccepted = 0
        self.open = True


class TcpEngine:
    """All connections and listeners of one stack, demultiplexed by 4-tuple."""

    def __init__(self, config: TcpConfig, rand: Callable[[int], bytes]) -> None:
        self.config = config
        self.congestion = congestion.algorithm(config.congestion)  # a class: one per connection
        self.rand = rand
        self.secret = rand(32)
        self.conns: dict[tuple[bytes, int, bytes, int], Connection] = {}
        self.listeners: dict[tuple[bytes, int], Listener] = {}
        self.outbox: list[tuple[bytes, bytes, Segment, int]] = []
        self.touched: list[Connection] = []
        self.accepted: list[Connection] = []
        self.counters: dict[str, int] = {}
        self.half_open = 0
        self._heap: list[tuple[float, int, Connection]] = []
        self._ids = itertools.count()

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def isn(self, key: tuple[bytes, int, bytes, int], now: float) -> int:
        """RFC 6528: ISN = M + F(4-tuple, secret), M a 4-microsecond timer."""
        h = hashlib.blake2s(key[0] + key[1].to_bytes(2, "big") + key[2]
                            + key[3].to_bytes(2, "big"), key=self.secret, digest_size=4)
        return (int(now * 250_000) + int.from_bytes(h.digest(), "big")) & MASK

    def listen(self, ip: bytes, port: int, backlog: int) -> Listener:
        """Accept connections to ``ip:port`` (``ip`` may be 0.0.0.0)."""
        if (ip, port) in self.listeners:
            raise OSError(98, f"port {port} already in use")
        listener = Listener(ip, port, backlog)
        self.listeners[(ip, port)] = listener
        return listener

    def unlisten(self, listener: Listener) -> None:
        """Stop accepting on ``listener``."""
        listener.open = False
        self.listeners.pop((listener.ip, listener.port), None)

    def connect(self, local_ip: bytes, local_port: int, remote_ip: bytes, remote_port: int,
                now: float) -> Connection:
        """Start an active open."""
        key = (local_ip, local_port, remote_ip, remote_port)
        if key in self.conns:
            raise OSError(98, "address in use")
        conn = Connection(self, *key, self.isn(key, now), now)
        self.conns[key] = conn
        conn.rtt_seq = conn.iss
        conn.rtt_time = now
        conn.open_active(now)
        self.schedule(conn)
        return conn

    def input(self, src_ip: bytes, dst_ip: bytes, seg: Segment, now: float) -> None:
        """Deliver one segment (already checksummed) from ``src_ip`` to ``dst_ip``."""
        conn = self.conns.get((dst_ip, seg.dport, src_ip, seg.sport))
        if conn is not None:
            conn.input(seg, now)
            if conn.state != State.CLOSED:
                self.schedule(conn)
            return
        listener = self.listeners.get((dst_ip, seg.dport)) or \
            self.listeners.get((b"\0\0\0\0", seg.dport))
        flags = seg.flags
        if listener is None:
            self._count("closed_port")
            self._reset_for(dst_ip, src_ip, seg)
            return
        if flags & RST:
            return
        if flags & ACK:
            self._reset_for(dst_ip, src_ip, seg)
            return
        if not flags & SYN or flags & FIN:
            return
        if listener.half_open + listener.unaccepted >= listener.backlog or \
                self.half_open >= self.config.max_half_open:
            self._count("syn_backlog_drops")
            return
        key = (dst_ip, seg.dport, src_ip, seg.sport)
        conn = Connection(self, *key, self.isn(key, now), now, listener)
        self.conns[key] = conn
        listener.half_open += 1
        self.half_open += 1
        conn.open_passive(seg, now)
        self.schedule(conn)

    def _reset_for(self, local_ip: bytes, remote_ip: bytes, seg: Segment) -> None:
        """RFC 9293 §3.10.7.1: the reset answering an unacceptable segment."""
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            rst = Segment(seg.dport, seg.sport, seg.ack, 0, RST, 0)
        else:
            seglen = len(seg.payload) + (1 if seg.flags & SYN else 0) + \
                (1 if seg.flags & FIN else 0)
            rst = Segment(seg.dport, seg.sport, 0, (seg.seq + seglen) & MASK, RST | ACK, 0)
        self._count("resets_sent")
        self.outbox.append((local_ip, remote_ip, rst, 0))

    def _remove(self, conn: Connection) -> None:
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]

    def accepted_by_app(self, conn: Connection) -> None:
        """The adapter took a connection from the accept queue."""
        if conn.listener is not None:
            conn.listener.unaccepted -= 1

    def schedule(self, conn: Connection) -> None:
        """Make sure the timer heap wakes ``conn`` at its next deadline."""
        deadline = conn.next_deadline()
        if deadline is not None and (conn.sched is None or deadline < conn.sched):
            conn.sched = deadline
            heapq.heappush(self._heap, (deadline, next(self._ids), conn))
            if len(self._heap) > 2 * len(self.conns) + 64:
                # entries of closed connections and superseded deadlines would otherwise
                # linger (and keep their connections alive) until their time comes
                self._heap = [e for e in self._heap
                              if e[2].sched == e[0] and e[2].state != State.CLOSED]
                heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        """When ``on_timer`` should next be called."""
        heap = self._heap
        while heap and (heap[0][2].sched != heap[0][0] or heap[0][2].state == State.CLOSED):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def on_timer(self, now: float) -> None:
        """Run every due timer."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, conn = heapq.heappop(heap)
            if conn.sched != deadline or conn.state == State.CLOSED:
                continue
            conn.sched = None
            conn.on_timer(now)
            if conn.state != State.CLOSED:
                self.schedule(conn)

    def take_touched(self) -> list[Connection]:
        """Connections whose readable/writable/closed state may have changed."""
        touched = self.touched
        self.touched = []
        for conn in touched:
            conn.touched = False
        return touched
