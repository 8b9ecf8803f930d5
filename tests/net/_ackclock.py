"""An ACK clock on a virtual clock, for driving a congestion controller without a link.

``Path`` stands for a bulk sender that fills its window (or keeps a fixed amount in flight,
as an application-limited one): each RTT, what is in flight is acknowledged, evenly spread
over the RTT, and the sender refills at once.
"""

from __future__ import annotations

from fata.net.tcp.congestion import CongestionControl

MSS = 1000


class Path:
    """The connection fields a controller sees (``congestion.Controlled``), on an ACK clock."""

    def __init__(self, segments: float, rtt: float) -> None:
        self.snd_mss = MSS
        self.cwnd = int(segments * MSS)
        self.ssthresh = 1 << 30
        self.srtt: float | None = rtt
        self.snd_una = 0
        self.snd_max = self.cwnd
        self.prior_cwnd = 0
        self.prior_ssthresh = 0
        self.now = 0.0

    @property
    def segments(self) -> float:
        return self.cwnd / MSS

    def loss(self, cc: CongestionControl) -> None:
        """A congestion event with the window full, and the end of its recovery (the
        connection deflates cwnd to ssthresh)."""
        self.prior_cwnd, self.prior_ssthresh = self.cwnd, self.ssthresh
        cc.on_loss(self, self.cwnd, self.now)
        self.cwnd = self.ssthresh

    def rtts(self, cc: CongestionControl, n: int, per_ack: int = 1, in_flight: int | None = None) -> None:
        """``n`` RTTs of ACKs, each for ``per_ack`` segments (2: delayed ACKs); with
        ``in_flight``, the application keeps only that many bytes outstanding."""
        assert self.srtt is not None
        for _ in range(n):
            flight = self.cwnd if in_flight is None else in_flight
            self.snd_max = self.snd_una + flight
            acks = max(1, flight // (MSS * per_ack))
            start = self.now
            for i in range(acks):
                self.now = start + self.srtt * (i + 1) / acks
                self.snd_una += per_ack * MSS
                cc.on_ack(self, per_ack * MSS, self.now)
                self.snd_max = self.snd_una + (self.cwnd if in_flight is None else in_flight)
