"""TCP (RFC 9293), sans-IO: connections, listeners and demultiplexing.

What is implemented, and where:

- the full state machine, simultaneous open and close, TIME_WAIT (``Connection.input``);
- MSS, window scaling, timestamps with PAWS (RFC 7323), SACK (RFC 2018) both ways, and
  D-SACK (RFC 2883) on receive, so that a sender like Linux's learns of its spurious
  retransmissions;
- RTO per RFC 6298 with Karn's rule and exponential backoff (``_on_rto``); while Karn's
  rule leaves no timed segment (heavy loss), RTT samples come from timestamp echoes
  (RFC 7323 §4); retransmitting the head restarts the RTO, as in Linux;
- slow start with an initial window of 10 segments (RFC 6928), congestion avoidance,
  fast retransmit and NewReno recovery (RFC 6582: stay in recovery until ``recover``,
  retransmit on partial ACKs), with SACK holes retransmitted first and the amount sent
  during recovery paced by Proportional Rate Reduction (RFC 6937);
- loss detection beyond the RFCs' minimum, as Linux does: tail loss probes (RFC 8985
  §7), a reordering timer that declares a stuck head lost when later data was SACKed
  (RFC 8985 §6.3), re-retransmission of holes still missing an RTT after their
  retransmission (so a lost retransmission is repaired without an RTO), and
  undo of recoveries that timestamps prove spurious (Eifel detection, RFC 3522) with a
  duplicate-ACK threshold that grows with the reordering seen;
- delayed ACKs (every second full segment or ``delayed_ack`` seconds), Nagle (switchable;
  Minshall's variant, as in Linux, so a write ending in a short segment is not held
  hostage by the peer's delayed ACK),
  sender and receiver silly-window avoidance, zero-window probes, keepalive;
- RFC 5961 challenge ACKs for RSTs and SYNs in window and for ACKs out of range;
- ISNs per RFC 6528 (a keyed hash of the 4-tuple plus a 4-microsecond clock);
- listen backlogs that bound half-open plus unaccepted connections (SYN-flood limit).

Internally sequence numbers are unbounded integers (``iss``/``irs`` plus bytes since), so
comparisons are plain ``<``; they are masked to 32 bits on the wire and incoming values are
unwrapped against ``rcv_nxt``/``snd_una``.  Time is passed in as ``now`` (seconds).
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from fata.net.tcp_wire import ACK, FIN, PSH, RST, SYN, Segment

MASK = 0xFFFFFFFF
HALF = 1 << 31


class State(enum.IntEnum):
    """RFC 9293 connection states (LISTEN lives in ``Listener``)."""

    CLOSED = 0
    SYN_SENT = 1
    SYN_RECEIVED = 2
    ESTABLISHED = 3
    FIN_WAIT_1 = 4
    FIN_WAIT_2 = 5
    CLOSE_WAIT = 6
    CLOSING = 7
    LAST_ACK = 8
    TIME_WAIT = 9


_SENDING = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING,
                      State.LAST_ACK})
_RECEIVING = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})
_APP_CAN_SEND = frozenset({State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED,
                           State.CLOSE_WAIT})


@dataclass
class TcpConfig:
    """Tunables; the defaults follow Linux where the RFCs leave room."""

    mss: int = 1460                  # what we advertise (MTU - 40)
    rcv_buffer: int = 1 << 20
    snd_buffer: int = 1 << 20
    window_scaling: bool = True
    timestamps: bool = True
    sack: bool = True
    nagle: bool = True
    delayed_ack: float = 0.04
    initial_window: int = 10         # segments (RFC 6928)
    rto_initial: float = 1.0
    rto_min: float = 0.2             # Linux's floor; RFC 6298 suggests 1 s
    rto_max: float = 60.0
    max_retries: int = 12
    syn_retries: int = 6
    msl: float = 30.0                # TIME_WAIT lasts 2 * msl
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    tso_max: int = 0                 # >0: build segments up to this many bytes (GSO offload)
    challenge_acks_per_second: int = 10
    max_half_open: int = 4096        # across all listeners


def seq_lt(a: int, b: int) -> bool:
    """32-bit sequence comparison a < b (RFC 1982)."""
    return ((a - b) & MASK) > HALF


def _unwrap(wire: int, ref: int) -> int:
    return ref + ((wire - ref + HALF) & MASK) - HALF


class Listener:
    """A passive open: SYNs to ``(ip, port)`` become connections, bounded by ``backlog``."""

    def __init__(self, ip: bytes, port: int, backlog: int) -> None:
        self.ip = ip
        self.port = port
        self.backlog = max(1, backlog)
        self.half_open = 0
        self.unaccepted = 0
        self.open = True


class Connection:
    """One TCP connection's control block and the algorithms that drive it."""

    def __init__(self, engine: TcpEngine, local_ip: bytes, local_port: int, remote_ip: bytes,
                 remote_port: int, iss: int, now: float, listener: Listener | None = None):
        cfg = engine.config
        self.engine = engine
        self.cfg = cfg
        self.key = (local_ip, local_port, remote_ip, remote_port)
        self.local_ip = local_ip
        self.local_port = local_port
        self.remote_ip = remote_ip
        self.remote_port = remote_port
        self.listener = listener
        self.state = State.CLOSED
        self.error: Exception | None = None
        self.user: object = None          # the adapter's object (a Flow)
        self.nagle = cfg.nagle
        # send side
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss
        self.snd_wnd = 0
        self.max_snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = iss
        self.sndbuf = bytearray()
        self.snd_buf_seq = iss + 1
        self.fin_queued = False
        self.snd_sml = iss                # end of the last small segment sent (Nagle)
        self.snd_mss = 536
        self.snd_wscale = 0
        # receive side
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0                  # right edge of the window we advertised
        self.rcvbuf = bytearray()
        self.ooo: list[list] = []         # [start, end, bytearray], sorted, disjoint
        self.ooo_fin: int | None = None
        self.last_sack_start: int | None = None
        self.dsack: tuple[int, int] | None = None  # a duplicate to report (RFC 2883)
        self.rcv_wscale = 0
        self.peer_fin = False
        self.rcv_mss = cfg.mss
        self.unacked_bytes = 0
        self.last_ack_sent = 0
        # options
        self.ts_ok = False
        self.ts_recent = 0
        self.ts_recent_time = 0.0
        self.ts_offset = int.from_bytes(engine.rand(4), "big")
        self.sack_ok = False
        self.ws_ok = False
        # congestion control and recovery
        self.cwnd = 0
        self.ssthresh = 1 << 30
        self.ca_acked = 0
        self.dupacks = 0
        self.in_recovery = False
        self.recover = iss
        self.sacked: list[list[int]] = []  # peer's SACK scoreboard, sorted, merged
        self.sacked_bytes = 0
        self.rexmit_next = iss
        self.rexmit_head = False
        self.prr_delivered = 0
        self.prr_out = 0
        self.recover_fs = 1
        self.budget = 0
        self.dupthresh = 3                # grows when reordering made a recovery spurious
        self.rexmit_round = 0.0
        self.undo_tsval: int | None = None
        self.prior_cwnd = 0
        self.prior_ssthresh = 0
        self.tlp_deadline: float | None = None
        self.tlp_fired = False
        self.probe_rearms = 0             # RTO restarts by head retransmissions since an ACK
        # RTT and timers
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = cfg.rto_initial
        self.rtt_seq: int | None = None
        self.rtt_time = 0.0
        self.ts_sample_after = 0.0        # next RTT sample from a timestamp echo, not before
        self.retries = 0
        self.rto_deadline: float | None = None
        self.delack_deadline: float | None = None
        self.persist_deadline: float | None = None
        self.persist_backoff = 0
        self.timewait_deadline: float | None = None
        self.last_recv = now
        self.keepalive_probes = 0
        self.challenge_tokens = float(cfg.challenge_acks_per_second)
        self.challenge_time = now
        self.sched: float | None = None   # the engine's timer heap bookkeeping
        self.touched = False
        self.counters = engine.counters

    # ------------------------------------------------------------------ helpers

    def __repr__(self) -> str:
        return f"<Connection {self.local_port}->{self.remote_port} {self.state.name}>"

    def _space(self) -> int:
        return max(0, self.cfg.rcv_buffer - len(self.rcvbuf))

    def _window_field(self, syn: bool = False) -> int:
        space = self._space()
        if syn:
            self.rcv_adv = self.rcv_nxt + min(space, 65535)
            return min(space, 65535)
        ws = self.rcv_wscale
        raw = min(space >> ws, 65535)
        edge = self.rcv_nxt + (raw << ws)
        if edge - self.rcv_adv < min(self.cfg.rcv_buffer // 2, self.rcv_mss):
            edge = self.rcv_adv  # receiver silly-window avoidance (RFC 9293 §3.8.6.2.2)
        if edge <= self.rcv_adv:  # never shrink the window we offered (RFC 9293 §3.8.6)
            raw = min((self.rcv_adv - self.rcv_nxt + (1 << ws) - 1) >> ws, 65535)
            edge = self.rcv_nxt + (raw << ws)
        if edge > self.rcv_adv:
            self.rcv_adv = edge
        return raw

    def _emit(self, seq: int, flags: int, payload: bytes = b"", now: float = 0.0,
              syn_options: bool = False, window: int | None = None) -> Segment:
        seg = Segment(self.local_port, self.remote_port, seq & MASK,
                      self.rcv_nxt & MASK if flags & ACK else 0, flags,
                      self._window_field(bool(flags & SYN)) if window is None else window,
                      payload)
        if syn_options:
            seg.mss = self.cfg.mss
            if self.cfg.window_scaling and (self.state == State.SYN_SENT or self.ws_ok):
                seg.wscale = self.rcv_wscale
            seg.sack_permitted = self.cfg.sack and (self.state == State.SYN_SENT or self.sack_ok)
            if self.cfg.timestamps and (self.state == State.SYN_SENT or self.ts_ok):
                seg.tsval = (int(now * 1000) + self.ts_offset) & MASK
                seg.tsecr = self.ts_recent if flags & ACK else 0
        elif self.ts_ok:
            seg.tsval = (int(now * 1000) + self.ts_offset) & MASK
            seg.tsecr = self.ts_recent
        if self.sack_ok and (self.ooo or self.dsack) and flags & ACK and not flags & SYN:
            # SACK blocks share the MSS with data: a full segment carries fewer (or none)
            room = (self.snd_mss - len(payload) - 4) // 8 if payload else 4
            if room > 0:
                seg.sack = self._sack_blocks()[:room]
            self.dsack = None
        if flags & ACK:
            self.last_ack_sent = self.rcv_nxt
            self.unacked_bytes = 0
            self.delack_deadline = None
        self.engine.outbox.append((self.local_ip, self.remote_ip, seg, self.snd_mss))
        return seg

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

    def _note_duplicate(self, start: int, end: int) -> None:
        """Report [start, end) in the next ACK's first SACK block (a D-SACK, RFC 2883)."""
        if self.sack_ok:
            self.dsack = (start, end)

    def _ack_now(self, now: float) -> None:
        self._emit(self.snd_nxt, ACK, now=now)

    def _challenge_ack(self, now: float) -> None:
        rate = self.cfg.challenge_acks_per_second
        elapsed = now - self.challenge_time
        self.challenge_tokens = min(rate, self.challenge_tokens + elapsed * rate)
        self.challenge_time = now
        if self.challenge_tokens >= 1:
            self.challenge_tokens -= 1
            self._count("challenge_acks")
            self._ack_now(now)
        else:
            self._count("challenge_acks_suppressed")

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _touch(self) -> None:
        if not self.touched:
            self.touched = True
            self.engine.touched.append(self)

    def _set_closed(self, error: Exception | None) -> None:
        if self.state == State.CLOSED:
            return
        if self.listener is not None and self.state == State.SYN_RECEIVED:
            self.listener.half_open -= 1
            self.engine.half_open -= 1
        self.state = State.CLOSED
        if error is not None and self.error is None:
            self.error = error
        self.rto_deadline = self.delack_deadline = self.persist_deadline = None
        self.timewait_deadline = None
        self.engine._remove(self)
        self._touch()

    def _established(self, now: float) -> None:
        if self.listener is not None and self.state == State.SYN_RECEIVED:
            self.listener.half_open -= 1
            self.engine.half_open -= 1
            self.listener.unaccepted += 1
            self.engine.accepted.append(self)
        self.state = State.ESTABLISHED
        self.cwnd = self.cfg.initial_window * self.snd_mss
        self.retries = 0
        self._touch()

    def _rtt_sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(self.cfg.rto_max, max(self.cfg.rto_min, self.srtt + max(0.001,
                                                                              4 * self.rttvar)))

    def _negotiate(self, seg: Segment, now: float) -> None:
        """Adopt the peer's SYN options (ours were offered in our SYN or are echoed now)."""
        mss = seg.mss if seg.mss else 536
        self.snd_mss = max(64, min(mss, self.cfg.mss))
        if self.cfg.window_scaling and seg.wscale is not None:
            self.ws_ok = True
            self.snd_wscale = seg.wscale
            if self.state != State.SYN_SENT:
                self.rcv_wscale = self._our_wscale()
        else:
            self.snd_wscale = 0
            self.rcv_wscale = 0
        self.sack_ok = self.cfg.sack and seg.sack_permitted
        if self.cfg.timestamps and seg.tsval is not None:
            self.ts_ok = True
            self.ts_recent = seg.tsval
            self.ts_recent_time = now
            self.snd_mss -= 12
        else:
            self.ts_ok = False

    def _our_wscale(self) -> int:
        ws = 0
        while (65535 << ws) < self.cfg.rcv_buffer and ws < 14:
            ws += 1
        return ws

    # ------------------------------------------------------------------ opening

    def open_active(self, now: float) -> None:
        """Send a SYN (called by ``TcpEngine.connect``)."""
        self.state = State.SYN_SENT
        self.rcv_wscale = self._our_wscale() if self.cfg.window_scaling else 0
        self._send_syn(now)

    def _send_syn(self, now: float) -> None:
        flags = SYN | ACK if self.state == State.SYN_RECEIVED else SYN
        self._emit(self.iss, flags, now=now, syn_options=True)
        self.snd_nxt = self.iss + 1
        self.snd_max = max(self.snd_max, self.snd_nxt)
        self.rto_deadline = now + self.rto

    def open_passive(self, seg: Segment, now: float) -> None:
        """Answer a SYN that arrived at a listener with a SYN-ACK."""
        self.irs = seg.seq
        self.rcv_nxt = self.irs + 1
        self.last_ack_sent = self.rcv_nxt
        self.state = State.SYN_RECEIVED
        self._negotiate(seg, now)
        self.snd_wnd = seg.window
        self.max_snd_wnd = seg.window
        self._send_syn(now)
        self.rtt_seq = self.iss
        self.rtt_time = now

    def _input_syn_sent(self, seg: Segment, now: float) -> None:
        flags = seg.flags
        if flags & ACK:
            ack = _unwrap(seg.ack, self.iss)
            if ack <= self.iss or ack > self.snd_max:
                if not flags & RST:
                    self.engine._reset_for(self.local_ip, self.remote_ip, seg)
                return
            if flags & RST:
                self._set_closed(ConnectionRefusedError("connection refused"))
                return
        elif flags & RST:
            return
        if not flags & SYN:
            return
        self.irs = seg.seq
        self.rcv_nxt = self.irs + 1
        self.rcv_adv = self.rcv_nxt + min(self._space(), 65535)  # what our SYN offered
        self._negotiate(seg, now)
        if flags & ACK:
            self._handshake_acked(ack, seg.window, self.rcv_nxt, now)
            self._ack_now(now)
            self._output(now)
        else:  # simultaneous open (RFC 9293 §3.5, figure 7)
            self.state = State.SYN_RECEIVED
            self.snd_wnd = seg.window
            self._emit(self.iss, SYN | ACK, now=now, syn_options=True)

    # ------------------------------------------------------------------ input

    def input(self, seg: Segment, now: float) -> None:
        """Process one segment addressed to this connection."""
        self.last_recv = now
        self.keepalive_probes = 0
        state = self.state
        if state == State.SYN_SENT:
            self._input_syn_sent(seg, now)
            return
        flags = seg.flags
        seq = _unwrap(seg.seq, self.rcv_nxt)
        payload = seg.payload
        plen = len(payload)
        seglen = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        if state == State.SYN_RECEIVED and flags & SYN and flags & ACK and seq == self.irs \
                and self.snd_una < _unwrap(seg.ack, self.snd_una) <= self.snd_max:
            # simultaneous open: the peer's SYN-ACK acknowledges our SYN; its SYN is old news
            flags &= ~SYN
            seq += 1
            seglen -= 1

        # PAWS (RFC 7323 §5)
        if self.ts_ok and seg.tsval is not None and not flags & RST and seq_lt(seg.tsval,
                                                                               self.ts_recent):
            if now - self.ts_recent_time > 24 * 86400:
                self.ts_recent = seg.tsval
            else:
                self._count("paws_drops")
                self._ack_now(now)
                return

        if state == State.TIME_WAIT and flags & SYN and not flags & ACK and seq > self.rcv_nxt:
            # a new incarnation of the connection (RFC 9293 §3.6.1): let the listener have it
            self._set_closed(None)
            self.engine.input(self.remote_ip, self.local_ip, seg, now)
            return

        # acceptability (RFC 9293 §3.10.7.4)
        wnd = max(0, self.rcv_adv - self.rcv_nxt)
        rcv_nxt = self.rcv_nxt
        if seglen == 0:
            ok = seq == rcv_nxt if wnd == 0 else rcv_nxt <= seq < rcv_nxt + wnd
        elif wnd == 0:
            ok = False
        else:
            ok = (rcv_nxt <= seq < rcv_nxt + wnd) or (rcv_nxt <= seq + seglen - 1 < rcv_nxt + wnd)
        if not ok:
            if not flags & RST:
                if state == State.SYN_RECEIVED and flags & SYN and seq == self.irs:
                    self._emit(self.iss, SYN | ACK, now=now, syn_options=True)
                    return
                self._count("out_of_window")
                if plen and seq < rcv_nxt:  # a duplicate of data we hold
                    self._note_duplicate(seq, min(seq + plen, rcv_nxt))
                self._ack_now(now)
            return

        if flags & RST:  # RFC 5961 §3
            if seq == rcv_nxt:
                if state == State.SYN_RECEIVED and self.listener is not None:
                    self._set_closed(None)
                else:
                    self._set_closed(ConnectionResetError("connection reset by peer"))
            else:
                self._challenge_ack(now)
            return

        if flags & SYN:  # RFC 5961 §4
            if state == State.SYN_RECEIVED and seq == self.irs:
                self._emit(self.iss, SYN | ACK, now=now, syn_options=True)
            else:
                self._challenge_ack(now)
            return

        if not flags & ACK:
            return
        ack = _unwrap(seg.ack, self.snd_una)

        if state == State.SYN_RECEIVED:
            if self.snd_una < ack <= self.snd_max:
                self._handshake_acked(ack, seg.window, seq, now)
                state = self.state
                if self.fin_queued:
                    self.state = state = State.FIN_WAIT_1
            else:
                self.engine._reset_for(self.local_ip, self.remote_ip, seg)
                return

        # RFC 5961 §5: an ACK outside [snd_una - max_snd_wnd, snd_max] is dropped
        if ack > self.snd_max or ack < self.snd_una - max(self.max_snd_wnd, 65535):
            self._challenge_ack(now)
            return

        # RFC 7323 §4.3: remember the peer's clock from in-order segments
        if self.ts_ok and seg.tsval is not None and seq <= self.last_ack_sent and \
                not seq_lt(seg.tsval, self.ts_recent):
            self.ts_recent = seg.tsval
            self.ts_recent_time = now

        self._process_ack(seg, seq, ack, plen, now)
        if self.state == State.CLOSED:
            return

        state = self.state
        if state == State.TIME_WAIT:
            if flags & FIN:
                self.timewait_deadline = now + 2 * self.cfg.msl
                self._ack_now(now)
            return

        if (plen or flags & FIN) and state in _RECEIVING:
            self._receive(seq, payload, bool(flags & FIN), now)
        elif flags & FIN and state in (State.CLOSE_WAIT, State.CLOSING, State.LAST_ACK):
            self._ack_now(now)  # a retransmitted FIN

        self._output(now)

    def _process_ack(self, seg: Segment, seq: int, ack: int, plen: int, now: float) -> None:
        mss = self.snd_mss
        prev_sacked = self.sacked_bytes
        if self.sack_ok and seg.sack:
            self._update_scoreboard(seg.sack, ack)
        acked = ack - self.snd_una
        window = seg.window << self.snd_wscale
        if acked > 0:
            self._count("acks_new")
            self._on_new_ack(ack, acked, now, seg.tsecr if seg.tsval is not None else None)
            if self.state == State.CLOSED:
                return
        elif (ack == self.snd_una and self.snd_una < self.snd_max and plen == 0
              and not seg.flags & (SYN | FIN) and window == self.snd_wnd):
            self.dupacks += 1
            self._count("dupacks")
        # window update (RFC 9293 §3.10.7.4)
        if self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack):
            if window > self.snd_wnd:
                self.persist_backoff = 0
            self.snd_wnd = window
            self.max_snd_wnd = max(self.max_snd_wnd, window)
            self.snd_wl1 = seq
            self.snd_wl2 = ack
        delivered = max(acked, 0) + (self.sacked_bytes - prev_sacked)
        if self.in_recovery and acked > 0 and self.undo_tsval is not None:
            if seg.tsval is not None and seq_lt(seg.tsecr, self.undo_tsval):
                self._undo_recovery()  # the original arrived: the retransmission was needless
                return
            self.undo_tsval = None
        if self.in_recovery:
            if self.srtt is not None and self.rexmit_next > self.snd_una and \
                    now - self.rexmit_round > 1.25 * self.srtt + 0.002:
                # a retransmission one RTT old and still not acknowledged was lost too
                self.rexmit_next = self.snd_una
                self.rexmit_head = True
                self.rexmit_round = now
                self._count("lost_retransmits")
            self._prr(delivered)
            self._arm_tlp(now)
        elif self.snd_una < self.snd_max and (self.snd_una > self.recover or self.sacked):
            outstanding = -(-(self.snd_max - self.snd_una) // mss)
            # reordering raised dupthresh; a small flight still recovers at three
            threshold = min(self.dupthresh, max(3, outstanding // 3))
            if outstanding < 4 and self.snd_nxt >= self.snd_buf_seq + len(self.sndbuf):
                # early retransmit (RFC 5827): a small flight with nothing new to send
                # cannot produce three duplicate ACKs
                threshold = min(threshold, max(1, outstanding - 1))
            if self.dupacks >= threshold or (self.sack_ok and
                                             self.sacked_bytes >= threshold * mss):
                self._enter_recovery(now)

    def _update_scoreboard(self, blocks: list[tuple[int, int]], ack: int) -> None:
        for left_w, right_w in blocks:
            left = _unwrap(left_w, self.snd_una)
            right = _unwrap(right_w, self.snd_una)
            if right <= left or left < ack or right > self.snd_max:
                continue  # D-SACK or bogus: ignored
            merged = [left, right]
            out = []
            for blk in self.sacked:
                if blk[1] < merged[0] or blk[0] > merged[1]:
                    out.append(blk)
                else:
                    merged = [min(blk[0], merged[0]), max(blk[1], merged[1])]
            out.append(merged)
            out.sort()
            self.sacked = out
        self.sacked_bytes = sum(b[1] - b[0] for b in self.sacked)

    def _handshake_acked(self, ack: int, window: int, wl1: int, now: float) -> None:
        """Our SYN is acknowledged (from SYN-SENT or SYN-RECEIVED): take the peer's window,
        time the SYN unless it was retransmitted (Karn), and become ESTABLISHED."""
        self.snd_una = ack
        self.snd_wnd = window << self.snd_wscale
        self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
        self.snd_wl1 = wl1
        self.snd_wl2 = ack
        if self.rtt_seq is not None and self.retries == 0:
            self._rtt_sample(now - self.rtt_time)
        self.rtt_seq = None
        self.rto_deadline = None
        self._established(now)

    def _ts_rtt(self, tsecr: int, now: float) -> float | None:
        """The RTT a timestamp echo measures (RFC 7323 §4), or None if implausible."""
        rtt = ((int(now * 1000) + self.ts_offset - tsecr) & MASK) / 1000
        return rtt if rtt < self.cfg.rto_max else None

    def _on_new_ack(self, ack: int, acked: int, now: float, tsecr: int | None = None) -> None:
        mss = self.snd_mss
        data_end = self.snd_buf_seq + len(self.sndbuf)
        n = min(ack, data_end) - self.snd_buf_seq
        if n > 0:
            del self.sndbuf[:n]
            self.snd_buf_seq += n
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        if self.sacked:
            while self.sacked and self.sacked[0][1] <= ack:
                self.sacked.pop(0)
            if self.sacked and self.sacked[0][0] < ack:
                self.sacked[0][0] = ack
            self.sacked_bytes = sum(b[1] - b[0] for b in self.sacked)
        if self.rtt_seq is not None and ack > self.rtt_seq:
            self._rtt_sample(now - self.rtt_time)
            self.rtt_seq = None
        elif tsecr is not None and self.ts_ok and self.srtt is not None and self.rtt_seq is None and \
                now >= self.ts_sample_after and (rtt := self._ts_rtt(tsecr, now)) is not None:
            # Karn's rule leaves no timed segment while retransmissions are in flight, which
            # under heavy loss is most of the time; an ACK that advances snd_una still
            # measures the RTT through its timestamp echo (RFC 7323 §4.1, §4.2: the echo is
            # of the segment that filled the hole, original or retransmission).  One sample
            # per RTT keeps RFC 6298's gains meaning what they mean (RFC 7323 appendix G).
            # The timestamp clock ticks in milliseconds: such samples count as at least 1 ms,
            # which only matters on sub-millisecond paths, where rto_min dominates anyway.
            self._rtt_sample(max(rtt, 0.001))
            self._count("rtt_ts_samples")
            self.ts_sample_after = now + self.srtt
        elif self.srtt is not None:
            self.rto = min(self.cfg.rto_max, max(self.cfg.rto_min,
                                                 self.srtt + max(0.001, 4 * self.rttvar)))
        self.retries = 0
        self.dupacks = 0
        self.tlp_fired = False
        self.probe_rearms = 0
        if self.in_recovery:
            if ack >= self.recover:
                self.in_recovery = False
                self.cwnd = max(self.ssthresh, 2 * mss)
                self._count("recoveries")
            else:
                self.rexmit_head = True  # NewReno partial ACK: the next hole is at snd_una
        elif self.cwnd < self.ssthresh:
            self.cwnd = min(self.cwnd + acked, max(self.ssthresh, self.cwnd + mss))
        else:
            self.ca_acked += acked
            if self.ca_acked >= self.cwnd:
                self.ca_acked -= self.cwnd
                self.cwnd += mss
        self.rto_deadline = None if self.snd_una >= self.snd_max else now + self.rto
        self._arm_tlp(now)
        fin_acked = self.fin_queued and ack >= data_end + 1
        if fin_acked:
            state = self.state
            if state == State.FIN_WAIT_1:
                self.state = State.FIN_WAIT_2
            elif state == State.CLOSING:
                self._enter_time_wait(now)
            elif state == State.LAST_ACK:
                self._set_closed(None)
                return
        self._touch()

    def _undo_recovery(self) -> None:
        self.cwnd = max(self.cwnd, self.prior_cwnd)
        self.ssthresh = max(self.ssthresh, self.prior_ssthresh)
        self.in_recovery = False
        self.undo_tsval = None
        self.dupthresh = min(self.dupthresh * 2, 64)
        self._count("spurious_recoveries")

    def _enter_recovery(self, now: float) -> None:
        mss = self.snd_mss
        flight = self.snd_max - self.snd_una
        self.prior_cwnd = self.cwnd
        self.prior_ssthresh = self.ssthresh
        self.undo_tsval = ((int(now * 1000) + self.ts_offset) & MASK) if self.ts_ok else None
        self.rexmit_round = now
        self.tlp_deadline = None
        self.in_recovery = True
        self._arm_tlp(now)
        self.ssthresh = max(flight // 2, 2 * mss)
        self.recover = self.snd_max
        self.in_recovery = True
        self.rexmit_next = self.snd_una
        self.rexmit_head = True
        self.prr_delivered = 0
        self.prr_out = 0
        self.recover_fs = max(flight, 1)
        self.budget = mss  # the fast retransmission itself
        self.rtt_seq = None  # Karn
        self._count("fast_retransmits")

    def _unsacked(self, lo: int, hi: int) -> int:
        """Bytes in [lo, hi) the peer has not SACKed."""
        if hi <= lo:
            return 0
        n = hi - lo
        for a, b in self.sacked:
            if b <= lo:
                continue
            if a >= hi:
                break
            n -= min(b, hi) - max(a, lo)
        return n

    def _pipe(self) -> int:
        """RFC 6675's estimate of the bytes in flight: sent, not SACKed, not deemed lost.

        Data above ``snd_nxt`` is not in flight (a timeout rewound ``snd_nxt``); holes below
        the highest SACK that have not been retransmitted yet are deemed lost.
        """
        if not self.sack_ok or not self.sacked:
            return max(0, self.snd_nxt - self.snd_una - self.dupacks * self.snd_mss)
        high = self.sacked[-1][1]
        lost = self._unsacked(max(self.rexmit_next, self.snd_una), min(high, self.snd_nxt))
        return max(0, self._unsacked(self.snd_una, self.snd_nxt) - lost)

    def _prr(self, delivered: int) -> None:
        """Proportional Rate Reduction (RFC 6937): how much may be sent on this ACK."""
        self.prr_delivered += delivered
        pipe = self._pipe()
        if pipe > self.ssthresh:
            sndcnt = -(-self.prr_delivered * self.ssthresh // self.recover_fs) - self.prr_out
        else:
            sndcnt = min(self.ssthresh - pipe,
                         max(self.prr_delivered - self.prr_out, delivered) + self.snd_mss)
        self.budget = max(sndcnt, 0)

    def _next_hole(self) -> tuple[int, int] | None:
        mss = self.snd_mss
        start = max(self.rexmit_next, self.snd_una)
        if self.sacked:
            for a, b in self.sacked:
                if start < a:
                    return start, min(a - start, mss)
                start = max(start, b)
        if self.rexmit_head and not self.sacked and self.snd_una < self.snd_max:
            return self.snd_una, min(mss, self.snd_max - self.snd_una)
        return None

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
                while self.ooo and self.ooo[0][0] <= self.rcv_nxt:
                    a, b, data = self.ooo.pop(0)
                    if b > self.rcv_nxt:
                        self.rcvbuf += data[self.rcv_nxt - a:]
                        self.rcv_nxt = b
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
                for a, b, _ in self.ooo:
                    if a <= seq and end <= b:  # all of it is held already
                        self._note_duplicate(seq, end)
                        break
                self._ooo_insert(seq, end, payload)
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
            state = self.state
            if state == State.ESTABLISHED:
                self.state = State.CLOSE_WAIT
            elif state == State.FIN_WAIT_1:
                self.state = State.CLOSING
            elif state == State.FIN_WAIT_2:
                self._enter_time_wait(now)
            self._ack_now(now)
            self._touch()

    def _ooo_insert(self, start: int, end: int, payload: memoryview | bytes) -> None:
        data = bytearray(payload)
        keep = []
        for blk in self.ooo:
            a, b, d = blk
            if b < start or a > end:
                keep.append(blk)
                continue
            if a < start:
                data[0:0] = d[:start - a]
                start = a
            if b > end:
                data += d[end - a:]
                end = b
        keep.append([start, end, data])
        keep.sort(key=lambda blk: blk[0])
        self.ooo = keep
        self.last_sack_start = start

    def _enter_time_wait(self, now: float) -> None:
        self.state = State.TIME_WAIT
        self.rto_deadline = self.persist_deadline = self.delack_deadline = None
        self.timewait_deadline = now + 2 * self.cfg.msl
        self.sndbuf = bytearray()
        self._touch()

    # ------------------------------------------------------------------ output

    def _send_range(self, seq: int, n: int, now: float) -> None:
        data_end = self.snd_buf_seq + len(self.sndbuf)
        off = seq - self.snd_buf_seq
        payload = bytes(self.sndbuf[off:off + n])
        flags = ACK
        if seq + n == data_end:
            flags |= PSH
            if self.fin_queued:
                flags |= FIN
        self._emit(seq, flags, payload, now)

    def _output(self, now: float) -> None:
        if self.state not in _SENDING:
            return
        mss = self.snd_mss
        data_end = self.snd_buf_seq + len(self.sndbuf)
        fin_end = data_end + 1 if self.fin_queued else data_end
        if self.in_recovery:
            while self.budget > 0:
                hole = self._next_hole()
                if hole is None:
                    break
                start, n = hole
                if start == self.snd_una and self.probe_rearms < 4:
                    # the head goes again: restart the RTO for it, as Linux does, so that
                    # its repair gets a full RTO before a go-back-N timeout (bounded, so a
                    # dead peer still times out)
                    self.probe_rearms += 1
                    self.rto_deadline = now + self.rto
                if start >= data_end:  # only the FIN is missing
                    self._emit(data_end, ACK | FIN, now=now)
                    n = 1
                else:
                    n = min(n, data_end - start)
                    self._send_range(start, n, now)
                self.rexmit_next = start + n
                self.rexmit_head = False
                self.budget -= n
                self.prr_out += n
                self._count("retransmits")
        max_seg = (self.cfg.tso_max // mss) * mss if self.cfg.tso_max > mss else mss
        while self.snd_nxt < fin_end:
            snd_nxt = self.snd_nxt
            win_left = self.snd_una + self.snd_wnd - snd_nxt
            if self.in_recovery:
                allowed = min(self.budget, win_left)
            else:
                # limited transmit (RFC 3042): each of the first two duplicate ACKs (or
                # SACKed segments) lets one more segment out, so that a small window still
                # gathers the duplicate ACKs fast retransmit needs
                extra = min(2, max(self.dupacks, self.sacked_bytes // mss)) * mss
                allowed = min(self.snd_una + self.cwnd + extra - snd_nxt, win_left)
            avail = data_end - snd_nxt
            if avail <= 0:  # only the FIN remains to be sent
                self._emit(data_end, ACK | FIN, now=now)
                self.snd_nxt = data_end + 1
                if self.snd_nxt > self.snd_max:
                    self.snd_max = self.snd_nxt
                break
            n = min(avail, max_seg, allowed)
            if n <= 0:
                break
            if snd_nxt < self.snd_max and self.sacked:  # resending after a timeout
                skipped = False
                for a, b in self.sacked:
                    if a <= snd_nxt < b:
                        self.snd_nxt = b
                        skipped = True
                        break
                    if snd_nxt < a:
                        n = min(n, a - snd_nxt)
                        break
                if skipped:
                    continue
            retransmit = snd_nxt < self.snd_max
            if not retransmit:
                if n < mss and n < avail and n < self.max_snd_wnd // 2:
                    break  # sender silly-window avoidance
                if n == avail and n < mss and self.nagle and self.snd_sml > self.snd_una \
                        and not self.fin_queued:
                    break  # Nagle, Minshall's form: one small segment in flight at a time
            self._send_range(snd_nxt, n, now)
            if n < mss:
                self.snd_sml = snd_nxt + n
            self.snd_nxt = snd_nxt + n + (1 if self.fin_queued and snd_nxt + n == data_end else 0)
            if self.in_recovery:
                self.budget -= n
                self.prr_out += n
            if retransmit:
                self._count("retransmits")
                self.rtt_seq = None
            elif self.rtt_seq is None:
                self.rtt_seq = snd_nxt
                self.rtt_time = now
            if self.snd_nxt > self.snd_max:
                self.snd_max = self.snd_nxt
        if self.snd_una < self.snd_max:
            if self.rto_deadline is None:
                self.rto_deadline = now + self.rto
            self.persist_deadline = None
            if self.tlp_deadline is None:
                self._arm_tlp(now)
        elif data_end > self.snd_nxt and self.snd_nxt + self.snd_mss > self.snd_una + self.snd_wnd:
            # window too small to send into and nothing in flight to bring an update:
            # probe (zero window) or override silly-window avoidance (RFC 9293 §3.8.6.2.1)
            if self.persist_deadline is None:
                self.persist_deadline = now + min(self.rto * (1 << self.persist_backoff),
                                                  self.cfg.rto_max)
        else:
            self.persist_deadline = None

    # ------------------------------------------------------------------ timers

    def _arm_tlp(self, now: float) -> None:
        """RFC 8985 §7.2: probe after 2 SRTT of silence, so a lost tail is SACKed, not timed out.

        In recovery the same timer runs RACK's role (RFC 8985 §6.3): when no ACK has come
        for 1.25 SRTT, the ACK clock has stopped, and one more hole is sent to restart it.
        """
        if self.in_recovery and self.srtt is not None:
            pto = max(1.25 * self.srtt + 0.002, 0.005)
            if self.rto_deadline is None or now + pto < self.rto_deadline:
                self.tlp_deadline = now + pto
            return
        if self.in_recovery or self.tlp_fired or self.srtt is None or \
                self.state not in _SENDING or self.snd_nxt < self.snd_max:
            self.tlp_deadline = None
            return
        pto = 2 * self.srtt
        if self.snd_max - self.snd_una <= self.snd_mss:
            pto += self.cfg.delayed_ack * 5  # the peer may be delaying its only ACK (200 ms)
        pto = max(pto, 0.01)
        if self.rto_deadline is not None and now + pto >= self.rto_deadline:
            self.tlp_deadline = None  # the RTO comes first anyway
            return
        self.tlp_deadline = now + pto

    def _recovery_probe(self, now: float) -> None:
        self._count("recovery_probes")
        assert self.srtt is not None
        if now - self.rexmit_round > self.srtt:  # (the probe itself waits 1.25 SRTT)
            self.rexmit_next = self.snd_una
            self.rexmit_head = True
            self.rexmit_round = now
        self.budget = max(self.budget, self.snd_mss)
        if self._next_hole() is not None:
            self._output(now)
        else:  # nothing known missing below the highest SACK: probe above it
            data_end = self.snd_buf_seq + len(self.sndbuf)
            high = self.sacked[-1][1] if self.sacked else self.snd_una
            start = max(high, self.rexmit_next, self.snd_una)
            if start < data_end and start < self.snd_max:
                n = min(self.snd_mss, data_end - start, self.snd_max - start)
                self._send_range(start, n, now)
                self.rexmit_next = start + n
                self.prr_out += n
            elif self.fin_queued and self.snd_max > data_end and self.snd_una <= data_end:
                self._emit(data_end, ACK | FIN, now=now)
        self._arm_tlp(now)

    def _tail_loss_probe(self, now: float) -> None:
        self.tlp_fired = True
        self._count("tail_loss_probes")
        data_end = self.snd_buf_seq + len(self.sndbuf)
        fin_end = data_end + 1 if self.fin_queued else data_end
        before = self.snd_nxt
        if self.snd_nxt < fin_end:
            self._output(now)
        if self.snd_nxt == before:  # nothing new could go: resend the last segment sent
            sent_end = min(data_end, self.snd_max)
            start = max(self.snd_una, sent_end - self.snd_mss)
            if start < sent_end:
                self._send_range(start, sent_end - start, now)
            elif self.fin_queued:
                self._emit(data_end, ACK | FIN, now=now)
            self.rtt_seq = None
        self.rto_deadline = now + self.rto

    def next_deadline(self) -> float | None:
        """The earliest time ``on_timer`` has something to do."""
        best = None
        for d in (self.rto_deadline, self.delack_deadline, self.persist_deadline,
                  self.timewait_deadline, self.tlp_deadline):
            if d is not None and (best is None or d < best):
                best = d
        if self.cfg.keepalive and self.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            ka = self.last_recv + self.cfg.keepalive_idle + \
                self.cfg.keepalive_interval * self.keepalive_probes
            if best is None or ka < best:
                best = ka
        return best

    def on_timer(self, now: float) -> None:
        """Run whatever timers are due."""
        if self.timewait_deadline is not None and now >= self.timewait_deadline:
            self._set_closed(None)
            return
        if self.delack_deadline is not None and now >= self.delack_deadline:
            self._ack_now(now)
        if self.tlp_deadline is not None and now >= self.tlp_deadline:
            self.tlp_deadline = None
            if self.in_recovery and self.srtt is not None:
                self._recovery_probe(now)
            elif self.snd_una < self.snd_max and self.sacked and self.snd_nxt == self.snd_max:
                # RACK's reordering timer (RFC 8985 §6.3): the head is two RTTs old while
                # later data was SACKed, so it is lost whatever the duplicate-ACK count says
                self._count("rack_timeouts")
                self._enter_recovery(now)
                self._output(now)
            elif self.snd_una < self.snd_max:
                self._tail_loss_probe(now)
        if self.rto_deadline is not None and now >= self.rto_deadline:
            self.rto_deadline = None
            self.tlp_deadline = None
            self._on_rto(now)
            if self.state == State.CLOSED:
                return
        if self.persist_deadline is not None and now >= self.persist_deadline:
            self.persist_deadline = None
            data_end = self.snd_buf_seq + len(self.sndbuf)
            room = min(self.snd_una + self.snd_wnd - self.snd_nxt, data_end - self.snd_nxt,
                       self.snd_mss)
            if room > 0 and self.snd_una == self.snd_max:  # SWS override: send what fits
                self._count("sws_overrides")
                self._send_range(self.snd_nxt, room, now)
                self.snd_nxt += room
                self.snd_max = max(self.snd_max, self.snd_nxt)
                self.rto_deadline = now + self.rto
            else:
                self._count("window_probes")
                self._emit(self.snd_una - 1, ACK, now=now)
                self.persist_backoff = min(self.persist_backoff + 1, 10)
            self._output(now)
            if self.persist_deadline is None and self.snd_wnd == 0:
                self.persist_deadline = now + min(self.rto * (1 << self.persist_backoff),
                                                  self.cfg.rto_max)
        if self.cfg.keepalive and self.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            self._keepalive(now)

    def _keepalive(self, now: float) -> None:
        cfg = self.cfg
        due = self.last_recv + cfg.keepalive_idle + cfg.keepalive_interval * self.keepalive_probes
        if now < due:
            return
        if self.keepalive_probes >= cfg.keepalive_count:
            self._count("keepalive_timeouts")
            self._emit(self.snd_nxt, RST | ACK, now=now)
            self._set_closed(TimeoutError("keepalive: peer not answering"))
            return
        self.keepalive_probes += 1
        self._count("keepalive_probes")
        self._emit(self.snd_una - 1, ACK, now=now)

    def _on_rto(self, now: float) -> None:
        self.retries += 1
        self.rto = min(self.rto * 2, self.cfg.rto_max)
        self.rtt_seq = None
        self._count("timeouts")
        if self.state in (State.SYN_SENT, State.SYN_RECEIVED):
            if self.retries > self.cfg.syn_retries:
                self._set_closed(TimeoutError("connection timed out"))
                return
            self.snd_nxt = self.iss
            self._send_syn(now)
            return
        if self.retries > self.cfg.max_retries:
            self._emit(self.snd_nxt, RST | ACK, now=now)
            self._set_closed(TimeoutError("connection timed out (no acknowledgement)"))
            return
        if self.snd_una >= self.snd_max:
            return
        if self.retries == 1:
            self.ssthresh = max((self.snd_max - self.snd_una) // 2, 2 * self.snd_mss)
        self.cwnd = self.snd_mss
        self.ca_acked = 0
        self.in_recovery = False
        self.recover = self.snd_max
        self.dupacks = 0
        # SACKed data is kept after a first timeout (RFC 6675 §5.1 allows it), so the
        # go-back-N below skips what the peer already holds; a second timeout in a row
        # means the peer may have reneged (RFC 2018 §8), and everything is resent.
        if self.retries >= 2 and self.sacked:
            self.sacked = []
            self.sacked_bytes = 0
            self._count("sack_reneging_resets")
        self.snd_nxt = self.snd_una
        self.rexmit_next = self.snd_una
        self._output(now)
        self.rto_deadline = now + self.rto

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
        if self.state in _RECEIVING:
            old_right = self.rcv_adv
            new_right = self.rcv_nxt + (self._space() >> self.rcv_wscale << self.rcv_wscale)
            if old_right - self.rcv_nxt < self.cfg.rcv_buffer // 2 and \
                    new_right - old_right >= 2 * self.rcv_mss:
                self._count("window_updates")
                self._ack_now(now)
        return data

    @property
    def send_space(self) -> int:
        """Bytes ``app_send`` would accept now."""
        return max(0, self.cfg.snd_buffer - len(self.sndbuf))

    @property
    def readable(self) -> bool:
        """Whether ``app_read`` has data or the stream ended."""
        return bool(self.rcvbuf) or self.peer_fin or self.state == State.CLOSED

    def app_send(self, data: bytes | memoryview, now: float) -> int:
        """Queue as much of ``data`` as fits; returns how much.  Raises ``ConnectionError``."""
        if self.error is not None:
            raise ConnectionResetError(str(self.error))
        if self.fin_queued or self.state not in _APP_CAN_SEND:
            raise BrokenPipeError("connection is closing")
        n = min(len(data), self.send_space)
        if n:
            self.sndbuf += data[:n]
            self._output(now)
            # the adapter wakes only at ``TcpEngine.next_deadline``: a retransmission timer
            # armed here but not put in the engine's heap would leave data written on an
            # idle connection (a reply, a FIN) unrepaired if it were lost
            self.engine.schedule(self)
        return n

    def app_close(self, now: float) -> None:
        """Graceful close: a FIN after the queued data."""
        state = self.state
        if state == State.SYN_SENT:
            self._set_closed(None)
            return
        if self.fin_queued or state not in (State.SYN_RECEIVED, State.ESTABLISHED,
                                            State.CLOSE_WAIT):
            return
        self.fin_queued = True
        if state == State.ESTABLISHED:
            self.state = State.FIN_WAIT_1
        elif state == State.CLOSE_WAIT:
            self.state = State.LAST_ACK
        self._output(now)
        self.engine.schedule(self)

    def app_abort(self, now: float) -> None:
        """Send RST (in synchronized states) and forget the connection."""
        if self.state in (State.SYN_RECEIVED, State.ESTABLISHED, State.FIN_WAIT_1,
                          State.FIN_WAIT_2, State.CLOSE_WAIT):
            self._emit(self.snd_nxt, RST | ACK, now=now)
        self._set_closed(ConnectionAbortedError("connection aborted"))


class TcpEngine:
    """All connections and listeners of one stack, demultiplexed by 4-tuple."""

    def __init__(self, config: TcpConfig, rand: Callable[[int], bytes]) -> None:
        self.config = config
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
        """When ``poll`` should next be called."""
        heap = self._heap
        while heap and (heap[0][2].sched != heap[0][0] or heap[0][2].state == State.CLOSED):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def poll(self, now: float) -> None:
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


