"""``Connection``: one TCP connection's control block, and the segment arrival path.

The control block's state and algorithms are split by concern into the parts it is made
of, one module each: ``options`` (what the SYNs negotiate), ``window`` (the receive window
offered), ``receiver`` (in-order and out-of-order data, ACK policy, the peer's FIN),
``sender`` (what goes out when, ACKs of our data), ``recovery`` (SACK scoreboard, fast
recovery, PRR), ``timers`` (RTT and RTO, probes, delayed ACK, persist, keepalive,
TIME-WAIT); the congestion controller is a separate object (``congestion``).  The parts
are mixins of this one class rather than objects of their own so that the per-segment
paths read and write plain attributes of one object, as the single class did.

What stays here: the life cycle (every state change goes through ``_to``, which checks it
against ``state.TRANSITIONS``), opening and closing, ``input`` (RFC 9293 §3.10.7: PAWS,
acceptability, RST and SYN handling with RFC 5961's challenge ACKs, then the ACK, then the
data), and ``_emit``, which builds every segment we send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fata.net.tcp.options import Options
from fata.net.tcp.receiver import Receiver
from fata.net.tcp.recovery import Recovery
from fata.net.tcp.sender import Sender
from fata.net.tcp.seq import MASK, seq_lt, unwrap
from fata.net.tcp.state import RECEIVING, Event, State, transition
from fata.net.tcp.timers import Timers
from fata.net.tcp.window import ReceiveWindow
from fata.net.tcp_wire import ACK, FIN, RST, SYN, Segment

if TYPE_CHECKING:
    from fata.net.tcp.engine import Listener, TcpEngine


class Connection(Options, ReceiveWindow, Receiver, Sender, Recovery, Timers):
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
        self._init_sender(iss, engine.congestion())
        self._init_receiver()
        self._init_options(cfg, int.from_bytes(engine.rand(4), "big"))
        self._init_recovery(iss)
        self._init_timers(cfg, now)
        self.challenge_tokens = float(cfg.challenge_acks_per_second)
        self.challenge_time = now
        self.sched: float | None = None   # the engine's timer heap bookkeeping
        self.touched = False
        self.counters = engine.counters

    def __repr__(self) -> str:
        return f"<Connection {self.local_port}->{self.remote_port} {self.state.name}>"


    # ------------------------------------------------------------------ life cycle

    def _to(self, event: Event) -> None:
        """Change state as ``event`` demands; ``TcpStateError`` if the table forbids it."""
        self.state = transition(self.state, event)

    def _set_closed(self, error: Exception | None, event: Event = Event.DELETE) -> None:
        if self.state == State.CLOSED:
            return
        if self.listener is not None and self.state == State.SYN_RECEIVED:
            self.listener.half_open -= 1
            self.engine.half_open -= 1
        self._to(event)
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
        self._to(Event.SYN_ACKED)
        self.cwnd = self.cfg.initial_window * self.snd_mss
        self.retries = 0
        self._touch()

    def _enter_time_wait(self, now: float, event: Event) -> None:
        self._to(event)
        self.rto_deadline = self.persist_deadline = self.delack_deadline = None
        self.timewait_deadline = now + 2 * self.cfg.msl
        self.sndbuf = bytearray()
        self._touch()


    # ------------------------------------------------------------------ opening

    def open_active(self, now: float) -> None:
        """Send a SYN (called by ``TcpEngine.connect``)."""
        self._to(Event.OPEN)
        self.rcv_wscale = self._our_wscale() if self.cfg.window_scaling else 0
        self._send_syn(now)

    def open_passive(self, seg: Segment, now: float) -> None:
        """Answer a SYN that arrived at a listener with a SYN-ACK."""
        self.irs = seg.seq
        self.rcv_nxt = self.irs + 1
        self.last_ack_sent = self.rcv_nxt
        self._to(Event.RCV_SYN)
        self._negotiate(seg, now)
        self.snd_wnd = seg.window
        self.max_snd_wnd = seg.window
        self._send_syn(now)
        self.rtt_seq = self.iss
        self.rtt_time = now

    def _send_syn(self, now: float) -> None:
        flags = SYN | ACK if self.state == State.SYN_RECEIVED else SYN
        self._emit(self.iss, flags, now=now, syn_options=True)
        self.snd_nxt = self.iss + 1
        self.snd_max = max(self.snd_max, self.snd_nxt)
        self.rto_deadline = now + self.rto

    def _input_syn_sent(self, seg: Segment, now: float) -> None:
        flags = seg.flags
        if flags & ACK:
            ack = unwrap(seg.ack, self.iss)
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
            self._to(Event.RCV_SYN)
            self.snd_wnd = seg.window
            self._emit(self.iss, SYN | ACK, now=now, syn_options=True)

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


    # ------------------------------------------------------------------ segment arrival

    def input(self, seg: Segment, now: float) -> None:
        """Process one segment addressed to this connection."""
        self.last_recv = now
        self.keepalive_probes = 0
        state = self.state
        if state == State.SYN_SENT:
            self._input_syn_sent(seg, now)
            return
        flags = seg.flags
        seq = unwrap(seg.seq, self.rcv_nxt)
        payload = seg.payload
        plen = len(payload)
        seglen = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        if state == State.SYN_RECEIVED and flags & SYN and flags & ACK and seq == self.irs \
                and self.snd_una < unwrap(seg.ack, self.snd_una) <= self.snd_max:
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
        ack = unwrap(seg.ack, self.snd_una)

        if state == State.SYN_RECEIVED:
            if self.snd_una < ack <= self.snd_max:
                self._handshake_acked(ack, seg.window, seq, now)
                state = self.state
                if self.fin_queued:  # closed in SYN-RECEIVED: the FIN can go now
                    self._to(Event.CLOSE)
                    state = self.state
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

        if (plen or flags & FIN) and state in RECEIVING:
            self._receive(seq, payload, bool(flags & FIN), now)
        elif flags & FIN and state in (State.CLOSE_WAIT, State.CLOSING, State.LAST_ACK):
            self._ack_now(now)  # a retransmitted FIN

        self._output(now)


    # ------------------------------------------------------------------ segments out

    def _emit(self, seq: int, flags: int, payload: bytes = b"", now: float = 0.0,
              syn_options: bool = False, window: int | None = None) -> Segment:
        seg = Segment(self.local_port, self.remote_port, seq & MASK,
                      self.rcv_nxt & MASK if flags & ACK else 0, flags,
                      self._window_field(bool(flags & SYN)) if window is None else window,
                      payload)
        if syn_options:
            self._syn_options(seg, flags, now)
        elif self.ts_ok:
            seg.tsval = (int(now * 1000) + self.ts_offset) & MASK  # (``_ts_now``, inline)
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


    # ------------------------------------------------------------------ bookkeeping

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _touch(self) -> None:
        if not self.touched:
            self.touched = True
            self.engine.touched.append(self)


    # ------------------------------------------------------------------ application

    def app_close(self, now: float) -> None:
        """Graceful close: a FIN after the queued data."""
        state = self.state
        if state == State.SYN_SENT:
            self._set_closed(None, Event.CLOSE)
            return
        if self.fin_queued or state not in (State.SYN_RECEIVED, State.ESTABLISHED,
                                            State.CLOSE_WAIT):
            return
        self.fin_queued = True
        if state in (State.ESTABLISHED, State.CLOSE_WAIT):  # to FIN-WAIT-1, LAST-ACK
            self._to(Event.CLOSE)
        self._output(now)
        self.engine.schedule(self)

    def app_abort(self, now: float) -> None:
        """Send RST (in synchronized states) and forget the connection."""
        if self.state in (State.SYN_RECEIVED, State.ESTABLISHED, State.FIN_WAIT_1,
                          State.FIN_WAIT_2, State.CLOSE_WAIT):
            self._emit(self.snd_nxt, RST | ACK, now=now)
        self._set_closed(ConnectionAbortedError("connection aborted"))
