"""Timers: RTT estimation and the RTO, and everything a connection does when time passes.

- RTO (RFC 6298): SRTT/RTTVAR from one timed segment per RTT, never a retransmitted one
  (Karn's rule); while Karn's rule leaves nothing timed (heavy loss), from timestamp echoes
  (RFC 7323 §4), one sample per RTT.  The RTO is ``SRTT + 4 RTTVAR`` within
  ``[rto_min, rto_max]``, doubles on each expiry (backoff) and is recomputed on the next
  new ACK.  An expiry (``_on_rto``) resends the SYN, or tells the congestion controller and
  goes back to ``snd_una`` (skipping what the peer SACKed, unless timeouts repeat and the
  peer may have reneged); too many in a row end the connection.
- Tail loss probe (RFC 8985 §7) and RACK's timers (§6.3), one deadline (``tlp_deadline``):
  outside recovery, after 2 SRTT of silence, resend the tail (or send new data) so that a
  lost tail is SACKed instead of timed out; with SACKed data above a stuck head, declare
  the head lost; in recovery, after 1.25 SRTT without an ACK, send the next hole.
- Delayed ACK (the receiver arms it), persist (zero-window probes with backoff, or a
  silly-window override when the window can take a little), keepalive, and TIME-WAIT's 2 MSL.

``next_deadline`` is the earliest of these; the engine's heap calls ``on_timer`` then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fata.net.tcp.seq import MASK
from fata.net.tcp.state import SENDING, Event, State
from fata.net.tcp_wire import ACK, FIN, RST

if TYPE_CHECKING:
    from fata.net.tcp.config import TcpConfig
    from fata.net.tcp.congestion import CongestionControl


class Timers:
    """RTT estimation and timer state and handlers (a part of ``Connection``)."""

    cfg: TcpConfig
    state: State
    cc: CongestionControl
    srtt: float | None
    rttvar: float
    rto: float
    rtt_seq: int | None       # the segment being timed (Karn: None once retransmitted)
    rtt_time: float
    ts_sample_after: float    # next RTT sample from a timestamp echo, not before
    retries: int              # expiries in a row
    rto_deadline: float | None
    delack_deadline: float | None
    persist_deadline: float | None
    persist_backoff: int
    timewait_deadline: float | None
    tlp_deadline: float | None
    tlp_fired: bool
    probe_rearms: int         # RTO restarts by head retransmissions since an ACK
    last_recv: float          # keepalive idles from here
    keepalive_probes: int

    def _init_timers(self, cfg: TcpConfig, now: float) -> None:
        self.srtt = None
        self.rttvar = 0.0
        self.rto = cfg.rto_initial
        self.rtt_seq = None
        self.rtt_time = 0.0
        self.ts_sample_after = 0.0
        self.retries = 0
        self.rto_deadline = None
        self.delack_deadline = None
        self.persist_deadline = None
        self.persist_backoff = 0
        self.timewait_deadline = None
        self.tlp_deadline = None
        self.tlp_fired = False
        self.probe_rearms = 0
        self.last_recv = now
        self.keepalive_probes = 0

    # ------------------------------------------------------------------ RTT and RTO

    def _rtt_sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(self.cfg.rto_max, max(self.cfg.rto_min, self.srtt + max(0.001,
                                                                              4 * self.rttvar)))

    def _ts_rtt(self, tsecr: int, now: float) -> float | None:
        """The RTT a timestamp echo measures (RFC 7323 §4), or None if implausible."""
        rtt = ((self._ts_now(now) - tsecr) & MASK) / 1000
        return rtt if rtt < self.cfg.rto_max else None

    # ------------------------------------------------------------------ deadlines

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
            self._set_closed(None, Event.TIMEWAIT_EXPIRED)
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
            self._on_persist(now)
        if self.cfg.keepalive and self.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            self._keepalive(now)

    def _on_persist(self, now: float) -> None:
        """The window was too small to send into with nothing in flight: probe it (zero
        window, with backoff) or send what fits (silly-window override, RFC 9293 §3.8.6.2.1)."""
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
        self.cc.on_timeout(self, self.snd_max - self.snd_una, self.retries == 1, now)
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

    # ------------------------------------------------------------------ probes

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
                self.state not in SENDING or self.snd_nxt < self.snd_max:
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

    if TYPE_CHECKING:  # provided by the other parts of ``Connection``
        def _emit(self, seq: int, flags: int, payload: bytes = b"", now: float = 0.0,
                  syn_options: bool = False, window: int | None = None) -> object: ...
        def _ack_now(self, now: float) -> None: ...
        def _count(self, name: str) -> None: ...
        def _set_closed(self, error: Exception | None, event: Event = ...) -> None: ...
        def _send_syn(self, now: float) -> None: ...
        def _output(self, now: float) -> None: ...
        def _send_range(self, seq: int, n: int, now: float) -> None: ...
        def _enter_recovery(self, now: float) -> None: ...
        def _next_hole(self) -> tuple[int, int] | None: ...
        def _ts_now(self, now: float) -> int: ...
