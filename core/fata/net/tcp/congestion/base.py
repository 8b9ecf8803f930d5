"""The interface between a connection and its congestion controller.

The connection owns the two numbers every controller shares, ``cwnd`` and ``ssthresh`` (in
bytes), and the loss machinery around them: fast retransmit, SACK-based recovery with PRR
(RFC 6937) deciding how much goes out while recovering, the deflation to ``ssthresh`` when
recovery ends, Eifel undo, the RTO.  A controller decides only how the window grows on new
ACKs and how far it falls on a congestion signal, as Linux's ``tcp_congestion_ops`` do
(``cong_avoid``, ``ssthresh``, ``undo_cwnd``, ``cwnd_event``).  It keeps its own state on
itself, one instance per connection, and reads and writes the connection's fields through
the ``Controlled`` protocol below.

Each hook is called once per event, never per segment: ``on_ack`` on an ACK that advances
``snd_una`` outside recovery, the others on losses, timeouts, undos and restarts.
"""

from __future__ import annotations

from typing import Protocol


class Controlled(Protocol):
    """What a controller sees of a connection."""

    cwnd: int             # congestion window, bytes
    ssthresh: int         # slow-start threshold, bytes
    snd_mss: int          # the segment size the window is counted in
    snd_una: int          # (already advanced past the data an ``on_ack`` reports)
    snd_max: int          # highest sequence number sent
    srtt: float | None    # smoothed RTT (RFC 6298), None before the first sample
    prior_cwnd: int       # cwnd and ssthresh saved when the last recovery began (for undo)
    prior_ssthresh: int


class CongestionControl:
    """A congestion controller: subclasses implement the four hooks."""

    name = ""

    def on_ack(self, conn: Controlled, acked: int, now: float) -> None:
        """``acked`` new bytes were acknowledged outside loss recovery: grow ``cwnd``
        (slow start below ``ssthresh``, congestion avoidance above)."""
        raise NotImplementedError

    def on_loss(self, conn: Controlled, flight: int, now: float) -> None:
        """Fast recovery begins with ``flight`` bytes outstanding: set ``ssthresh`` (PRR
        then brings the sending rate down to it, and recovery's end sets ``cwnd``)."""
        raise NotImplementedError

    def on_timeout(self, conn: Controlled, flight: int, first: bool, now: float) -> None:
        """The retransmission timer expired (``first``: the first of a series): set
        ``ssthresh`` on the first and fall back to one segment."""
        raise NotImplementedError

    def on_undo(self, conn: Controlled, now: float) -> None:
        """The last recovery was spurious (RFC 3522): restore what ``on_loss`` reduced."""
        raise NotImplementedError

    def on_tx_start(self, conn: Controlled, now: float) -> None:
        """Data goes out with nothing in flight before it (after idle, a timeout, or the
        first data of the connection)."""
