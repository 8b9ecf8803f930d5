"""NewReno (RFC 5681 window growth; RFC 6582 recovery is the connection's).

Slow start adds the bytes acknowledged (at most one segment past ``ssthresh`` per ACK);
congestion avoidance adds one segment per window of acknowledged bytes; a loss halves the
flight; a timeout halves it on the first expiry and restarts from one segment.
"""

from __future__ import annotations

from fata.net.tcp.congestion.base import CongestionControl, Controlled


class NewReno(CongestionControl):
    """RFC 5681 congestion control, the engine's default."""

    name = "newreno"

    def __init__(self) -> None:
        self.ca_acked = 0  # bytes acknowledged towards the next one-segment increase

    def on_ack(self, conn: Controlled, acked: int, now: float) -> None:
        cwnd = conn.cwnd
        ssthresh = conn.ssthresh
        if cwnd < ssthresh:
            conn.cwnd = min(cwnd + acked, max(ssthresh, cwnd + conn.snd_mss))
        else:
            self.ca_acked += acked
            if self.ca_acked >= cwnd:
                self.ca_acked -= cwnd
                conn.cwnd = cwnd + conn.snd_mss

    def on_loss(self, conn: Controlled, flight: int, now: float) -> None:
        conn.ssthresh = max(flight // 2, 2 * conn.snd_mss)

    def on_timeout(self, conn: Controlled, flight: int, first: bool, now: float) -> None:
        if first:
            conn.ssthresh = max(flight // 2, 2 * conn.snd_mss)
        conn.cwnd = conn.snd_mss
        self.ca_acked = 0

    def on_undo(self, conn: Controlled, now: float) -> None:
        conn.cwnd = max(conn.cwnd, conn.prior_cwnd)
        conn.ssthresh = max(conn.ssthresh, conn.prior_ssthresh)
