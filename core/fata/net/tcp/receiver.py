"""The receive side: in-order delivery, the out-of-order queue, ACK policy, the peer's FIN.

A segment that ``Connection.input`` found acceptable lands in ``_receive``: it is trimmed
to the window, appended to ``rcvbuf`` when it starts at ``rcv_nxt`` (then whatever the
out-of-order queue holds from there follows it, ``reassembly.drain``) or queued out of
order (``reassembly.insert``).  ACKs follow RFC 9293 §3.8.6.3 and RFC 5681 §4.2: delayed
(every second full segment, or after ``cfg.delayed_ack``), but immediate for out-of-order
data, for data filling a gap, and when a duplicate is to be reported as D-SACK (RFC 2883),
so that the sender's recovery is clocked.  SACK blocks (RFC 2018 §4) are the queue's
blocks, the most recently changed first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fata.net.tcp import reassembly
from fata.net.tcp.seq import MASK
from fata.net.tcp.state import RECEIVING, Event, State

if TYPE_CHECKING:
    from fata.net.tcp.config import TcpConfig


class Receiver:
    """Receive-side state and algorithms (a part of ``Connection``)."""

    cfg: TcpConfig
    state: State
    sack_ok: bool
    ts_ok: bool
    irs: int                  # the peer's initial sequence number
    rcv_nxt: int
    rcv_adv: int
    rcvbuf: bytearray         # in order, not yet read by the application
    ooo: list[list]           # out-of-order blocks [start, end, bytearray] (``reassembly``)
    ooo_fin: int | None       # where the peer's FIN sits, if it came before the gap filled
    last_sack_start: int | None
    dsack: tuple[int, int] | None  # a duplicate to report (RFC 2883)
    peer_fin: bool
    unacked_bytes: int        # received since our last ACK (delayed ACK)
    last_ack_sent: int        # the ACK number we last sent (RFC 7323 §4.3)
    delack_deadline: float | None

    def _init_receiver(self) -> None:
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0
        self.rcvbuf = bytearray()
        self.ooo = []
        self.ooo_fin = None
        self.last_sack_start = None
        self.dsack = None
        self.peer_fin = False
        self.unacked_bytes = 0
        self.last_ack_sent = 0

    def _receive(self, seq: int, payload: memoryview | bytes, fin: bool, now: float) -> None:
        rcv_nxt = self.rcv_nxt
        end = seq + len(payload)
        fin_seq = end if fin else None
        if seq < rcv_nxt:
            if end > seq:
                self._note_duplicate(seq, min(end, rcv_nxt))
            payload = payload[rcv_nxt - seq:]
            seq = rcv_nxt
        wnd_end = self.rcv_adv
        if end > wnd_end:
            payload = payload[:max(0, wnd_end - seq)]
            end = seq + len(payload)
            fin_seq = None
        if fin_seq is not None and fin_seq > rcv_nxt and fin_seq != seq + len(payload):
            fin_seq = None
        if payload:
            if seq == rcv_nxt:
                had_gap = bool(self.ooo)
                self.rcvbuf += payload
                self.rcv_nxt = end
                if had_gap:
                    self.rcv_nxt = reassembly.drain(self.ooo, end, self.rcvbuf)
                self._touch()
                if had_gap or self.dsack is not None:
                    self._ack_now(now)
                else:
                    self.unacked_bytes += len(payload)
                    if self.unacked_bytes >= 2 * self.rcv_mss or \
                            self._space() < self.rcv_mss:
                        self._ack_now(now)
                    elif self.delack_deadline is None:
                        self.delack_deadline = now + self.cfg.delayed_ack
            else:
                if reassembly.holds(self.ooo, seq, end):  # all of it is held already
                    self._note_duplicate(seq, end)
                self.ooo, self.last_sack_start = reassembly.insert(self.ooo, seq, end, payload)
                self._count("out_of_order")
                self._ack_now(now)
        if fin_seq is not None and fin_seq > self.rcv_nxt:
            self.ooo_fin = fin_seq
        if self.ooo_fin is not None and self.ooo_fin == self.rcv_nxt:
            fin_seq = self.rcv_nxt
        if fin_seq is not None and fin_seq == self.rcv_nxt and not self.peer_fin:
            self.rcv_nxt += 1
            self.peer_fin = True
            self.ooo_fin = None
            if self.state == State.FIN_WAIT_2:
                self._enter_time_wait(now, Event.RCV_FIN)
            else:  # ESTABLISHED -> CLOSE_WAIT, FIN_WAIT_1 -> CLOSING
                self._to(Event.RCV_FIN)
            self._ack_now(now)
            self._touch()

    def _note_duplicate(self, start: int, end: int) -> None:
        """Report [start, end) in the next ACK's first SACK block (a D-SACK, RFC 2883)."""
        if self.sack_ok:
            self.dsack = (start, end)

    def _sack_blocks(self) -> list[tuple[int, int]]:
        """The most recently changed block first (RFC 2018 §4), after a D-SACK block if a
        duplicate just arrived (RFC 2883): the peer's sender uses D-SACKs to learn that its
        retransmissions were spurious and to widen its reordering window (Linux does)."""
        limit = 3 if self.ts_ok else 4
        out = []
        if self.dsack is not None:
            out.append((self.dsack[0] & MASK, self.dsack[1] & MASK))
            limit -= 1
        blocks = sorted(self.ooo, key=lambda b: b[0] != self.last_sack_start)[:limit]
        return out + [(b[0] & MASK, b[1] & MASK) for b in blocks]

    # ------------------------------------------------------------------ application

    def app_read(self, max_bytes: int, now: float) -> bytes:
        """Take up to ``max_bytes`` of received data, opening the window as it drains."""
        buf = self.rcvbuf
        if not buf:
            return b""
        if max_bytes >= len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:max_bytes])
            del buf[:max_bytes]
        if self.state in RECEIVING and self._window_opened():
            self._count("window_updates")
            self._ack_now(now)
        return data

    @property
    def readable(self) -> bool:
        """Whether ``app_read`` has data or the stream ended."""
        return bool(self.rcvbuf) or self.peer_fin or self.state == State.CLOSED

    if TYPE_CHECKING:  # provided by the other parts of ``Connection``
        def _touch(self) -> None: ...
        def _ack_now(self, now: float) -> None: ...
        def _count(self, name: str) -> None: ...
        def _space(self) -> int: ...
        def _window_opened(self) -> bool: ...
        def _to(self, event: Event) -> None: ...
        def _enter_time_wait(self, now: float, event: Event) -> None: ...
