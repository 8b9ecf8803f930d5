"""CUBIC (RFC 9438): window growth as a cubic function of the time since the last loss.

After a congestion event the window grows along

    W_cubic(t) = C * (t - K)**3 + W_max,   K = cbrt((W_max - cwnd_epoch) / C)

(windows in segments, t in seconds since the congestion avoidance stage began): quickly
while far below the window at which the loss happened (``W_max``, the concave region), flat
around it, then faster again as it probes for more (the convex region).  Each new ACK moves
cwnd towards ``target = W_cubic(t + RTT)`` (bounded to [cwnd, 1.5 cwnd], §4.2) by
``(target - cwnd) / cwnd`` per segment acknowledged, as byte-counting implementations
(Linux, quiche, neqo) read §4.4-§4.5, so that stretch ACKs do not slow the growth down.

- Reno-friendly region (§4.3): ``W_est`` follows what Reno would have, growing by
  ``alpha = 3 (1 - beta) / (1 + beta)`` segments per RTT until it reaches the window before
  the last reduction (``cwnd_prior``), 1 per RTT after that; while W_cubic(t) is below it,
  cwnd follows W_est (never shrinking on an ACK);
- multiplicative decrease (§4.6): ``ssthresh = beta * flight`` with beta = 0.7 (the
  connection's PRR then brings the sending rate there); fast convergence (§4.7) lowers
  W_max to ``cwnd (1 + beta) / 2`` when a loss comes below the previous W_max;
- timeout (§4.8): ssthresh as on a loss, cwnd one segment, and the first congestion
  avoidance stage after it starts with K = 0 from its own cwnd;
- spurious losses (§4.9.2): the state before the reduction is saved and restored on undo;
- slow start is Reno's (§4.10 allows it; HyStart++ is not implemented);
- application-limited periods (§5.8): cwnd does not grow while the flight stays a segment
  or more below it (less than half of it in slow start, as Linux), and time spent so
  limited, or idle, is left out of t.
"""

from __future__ import annotations

from fata.net.tcp.congestion.base import CongestionControl, Controlled

C = 0.4
"""Aggressiveness, segments / second**3 (§5)."""
BETA = 0.7
"""Multiplicative decrease factor (§4.6)."""


class Cubic(CongestionControl):
    """RFC 9438 CUBIC, one instance per connection."""

    name = "cubic"

    def __init__(self, fast_convergence: bool = True, c: float = C, beta: float = BETA) -> None:
        self.fast_convergence = fast_convergence
        self.c = c
        self.beta = beta
        self.alpha = 3 * (1 - beta) / (1 + beta)
        # all windows below are in segments (floats); the connection's cwnd is in bytes
        self.w_max = 0.0                  # 0: none (no loss yet, or reset by a timeout)
        self.k = 0.0
        self.epoch: float | None = None   # t_epoch; None outside congestion avoidance
        self.cwnd_epoch = 0.0
        self.w_est = 0.0
        self.cwnd_prior = 0.0
        self.stamp = 0.0                  # up to when t has been accounted (limited time left out)
        self.frac = 0.0                   # growth below one byte, carried to the next ACK
        self.undo: tuple[float, float, float, float | None, float] | None = None

    def w_cubic(self, t: float) -> float:
        """Equation 1: the window ``t`` seconds into the current congestion avoidance stage."""
        return self.c * (t - self.k) ** 3 + self.w_max

    def on_ack(self, conn: Controlled, acked: int, now: float) -> None:
        cwnd = conn.cwnd
        mss = conn.snd_mss
        flight = conn.snd_max - conn.snd_una + acked  # outstanding before this ACK
        if cwnd < conn.ssthresh:  # slow start (RFC 5681)
            if 2 * flight > cwnd:
                conn.cwnd = min(cwnd + acked, max(conn.ssthresh, cwnd + mss))
            return
        seg = cwnd / mss
        if self.epoch is None:
            self._begin_epoch(seg, now)
        elif flight + mss <= cwnd:  # not limited by cwnd: no growth, and the time is not t
            self.epoch += now - self.stamp
            self.stamp = now
            return
        self.stamp = now
        t = now - self.epoch
        segments = acked / mss
        self.w_est += (self.alpha if self.w_est < self.cwnd_prior else 1.0) * segments / seg
        if self.w_cubic(t) < self.w_est:  # Reno-friendly region
            new = max(seg, self.w_est)
        else:  # concave (below W_max) or convex (above) region
            target = self.w_cubic(t + (conn.srtt or 0.0))
            if target < seg:
                target = seg
            elif target > 1.5 * seg:
                target = 1.5 * seg
            new = seg + (target - seg) / seg * segments
        grow = (new - seg) * mss + self.frac
        whole = int(grow)
        conn.cwnd = cwnd + whole
        self.frac = grow - whole

    def _begin_epoch(self, seg: float, now: float) -> None:
        self.epoch = self.stamp = now
        self.cwnd_epoch = self.w_est = seg
        self.frac = 0.0
        if self.w_max <= seg:  # after a timeout, or already past the last W_max: K = 0
            self.w_max = seg
            self.k = 0.0
        else:
            self.k = ((self.w_max - seg) / self.c) ** (1 / 3)

    def _congestion_event(self, seg: float) -> None:
        if self.fast_convergence and seg < self.w_max:
            self.w_max = seg * (1 + self.beta) / 2
        else:
            self.w_max = seg
        self.cwnd_prior = seg

    def on_loss(self, conn: Controlled, flight: int, now: float) -> None:
        self.undo = (self.cwnd_prior, self.w_max, self.k, self.epoch, self.w_est)
        self._congestion_event(conn.cwnd / conn.snd_mss)
        conn.ssthresh = max(int(flight * self.beta), 2 * conn.snd_mss)
        self.epoch = None

    def on_timeout(self, conn: Controlled, flight: int, first: bool, now: float) -> None:
        if first:
            self._congestion_event(conn.cwnd / conn.snd_mss)
            conn.ssthresh = max(int(flight * self.beta), 2 * conn.snd_mss)
        conn.cwnd = conn.snd_mss
        self.epoch = None
        self.w_max = 0.0
        self.undo = None

    def on_undo(self, conn: Controlled, now: float) -> None:
        # The connection detects a spurious recovery before recovery ends, while the
        # reduction is still in force, so the saved state always comes back (§4.9.2).
        if self.undo is not None:
            self.cwnd_prior, self.w_max, self.k, self.epoch, self.w_est = self.undo
            self.undo = None
            self.stamp = now
        conn.cwnd = max(conn.cwnd, conn.prior_cwnd)
        conn.ssthresh = max(conn.ssthresh, conn.prior_ssthresh)

    def on_tx_start(self, conn: Controlled, now: float) -> None:
        if self.epoch is not None:  # the idle time since the last ACK is not t
            self.epoch += now - self.stamp
            self.stamp = now
