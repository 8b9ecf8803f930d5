"""The send side: the send buffer, what goes out when (``_output``), and ACKs of our data.

``_output`` sends what the windows allow: ``min(cwnd, snd_wnd)`` past ``snd_una`` (plus
limited transmit, RFC 3042), in segments of one MSS or, with ``cfg.tso_max``, of up to that
many bytes for the device to cut (GSO).  It holds back a short segment while another is in
flight (Nagle, Minshall's form as in Linux) and a segment that would be silly (sender SWS
avoidance, RFC 9293 §3.8.6.2.1); in loss recovery it first sends the holes the SACK
scoreboard shows, within PRR's budget (``Recovery``).  When the window is too small to send
into and nothing is in flight, it arms the persist timer (zero-window probes, ``Timers``).

``_process_ack`` takes an acceptable segment's ACK: SACK blocks onto the scoreboard, new
data acknowledged (``_on_new_ack``: the buffer trimmed, RTT sampled, the congestion window
grown by the controller, recovery left, our FIN acknowledged) or a duplicate ACK counted,
the send window updated (RFC 9293 §3.10.7.4), and fast retransmit entered when duplicate
ACKs or SACKed bytes pass the (reordering-adapted) threshold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fata.net.tcp.seq import seq_lt
from fata.net.tcp.state import APP_CAN_SEND, SENDING, Event, State
from fata.net.tcp_wire import ACK, FIN, PSH, SYN, Segment

if TYPE_CHECKING:
    from fata.net.tcp.config import TcpConfig
    from fata.net.tcp.congestion import CongestionControl
    from fata.net.tcp.engine import TcpEngine


class Sender:
    """Send-side state and algorithms (a part of ``Connection``)."""

    cfg: TcpConfig
    engine: TcpEngine
    state: State
    error: Exception | None
    nagle: bool
    iss: int                  # our initial sequence number
    snd_una: int              # oldest unacknowledged
    snd_nxt: int              # next to send (rewound by a timeout: go-back-N)
    snd_max: int              # highest sent
    snd_wnd: int              # the peer's window, scaled
    max_snd_wnd: int
    snd_wl1: int              # seq and ack of the segment that last updated snd_wnd
    snd_wl2: int
    sndbuf: bytearray         # unacknowledged and unsent data; sndbuf[0] is at snd_buf_seq
    snd_buf_seq: int
    fin_queued: bool          # the application closed: our FIN follows the data
    snd_sml: int              # end of the last small segment sent (Nagle)
    cwnd: int                 # congestion window and slow-start threshold, bytes
    ssthresh: int
    cc: CongestionControl     # grows cwnd and sets ssthresh (``congestion``)

    def _init_sender(self, iss: int, cc: CongestionControl) -> None:
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
        self.snd_sml = iss
        self.cwnd = 0
        self.ssthresh = 1 << 30
        self.cc = cc

    @property
    def send_space(self) -> int:
        """Bytes ``app_send`` would accept now."""
        return max(0, self.cfg.snd_buffer - len(self.sndbuf))

    def app_send(self, data: bytes | memoryview, now: float) -> int:
        """Queue as much of ``data`` as fits; returns how much.  Raises ``ConnectionError``."""
        if self.error is not None:
            raise ConnectionResetError(str(self.error))
        if self.fin_queued or self.state not in APP_CAN_SEND:
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
        if self.state not in SENDING:
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
            if self.rto_deadline is None:  # nothing was in flight (or a timeout cleared it)
                self.rto_deadline = now + self.rto
                self.cc.on_tx_start(self, now)
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
                self._undo_recovery(now)  # the original arrived: the retransmission was needless
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
        else:
            self.cc.on_ack(self, acked, now)  # slow start or congestion avoidance
        self.rto_deadline = None if self.snd_una >= self.snd_max else now + self.rto
        self._arm_tlp(now)
        fin_acked = self.fin_queued and ack >= data_end + 1
        if fin_acked:
            state = self.state
            if state == State.FIN_WAIT_1:
                self._to(Event.FIN_ACKED)
            elif state == State.CLOSING:
                self._enter_time_wait(now, Event.FIN_ACKED)
            elif state == State.LAST_ACK:
                self._set_closed(None, Event.FIN_ACKED)
                return
        self._touch()

    if TYPE_CHECKING:  # provided by the other parts of ``Connection``
        def _emit(self, seq: int, flags: int, payload: bytes = b"", now: float = 0.0,
                  syn_options: bool = False, window: int | None = None) -> Segment: ...
        def _count(self, name: str) -> None: ...
        def _touch(self) -> None: ...
        def _to(self, event: Event) -> None: ...
        def _set_closed(self, error: Exception | None, event: Event = ...) -> None: ...
        def _enter_time_wait(self, now: float, event: Event) -> None: ...
        def _update_scoreboard(self, blocks: list[tuple[int, int]], ack: int) -> None: ...
        def _enter_recovery(self, now: float) -> None: ...
        def _undo_recovery(self, now: float) -> None: ...
        def _prr(self, delivered: int) -> None: ...
        def _next_hole(self) -> tuple[int, int] | None: ...
        def _rtt_sample(self, rtt: float) -> None: ...
        def _ts_rtt(self, tsecr: int, now: float) -> float | None: ...
        def _arm_tlp(self, now: float) -> None: ...
