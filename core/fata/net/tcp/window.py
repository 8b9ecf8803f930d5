"""The receive window we offer: buffer space, the advertised edge, its scale, its updates.

The window is what is left of ``cfg.rcv_buffer`` after the bytes the application has not
read, offered as ``field << rcv_wscale``.  Its right edge (``rcv_adv``) never moves left
(RFC 9293 §3.8.6), and it moves right only in steps of at least min(half the buffer, one
MSS) (receiver silly-window avoidance, RFC 9293 §3.8.6.2.2).  When the application drains
a window that had closed to below half the buffer, an ACK announces the reopened window at
once (``_window_opened``) instead of waiting for the peer's next segment or probe.

The send window (``snd_wnd``, updated from segments per RFC 9293 §3.10.7.4 with
``snd_wl1``/``snd_wl2``) is kept by ``Sender._process_ack``, inline on the per-ACK path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fata.net.tcp.config import TcpConfig


class ReceiveWindow:
    """Receive window bookkeeping (a part of ``Connection``)."""

    cfg: TcpConfig
    rcvbuf: bytearray
    rcv_nxt: int
    rcv_adv: int        # right edge of the window we advertised
    rcv_wscale: int
    rcv_mss: int

    def _space(self) -> int:
        return max(0, self.cfg.rcv_buffer - len(self.rcvbuf))

    def _window_field(self, syn: bool = False) -> int:
        """The window field of the segment being built (and the edge it advertises)."""
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

    def _window_opened(self) -> bool:
        """Whether a read reopened a window that had closed below half the buffer by two
        segments or more: worth an ACK now (a window update)."""
        old_right = self.rcv_adv
        new_right = self.rcv_nxt + (self._space() >> self.rcv_wscale << self.rcv_wscale)
        return old_right - self.rcv_nxt < self.cfg.rcv_buffer // 2 and \
            new_right - old_right >= 2 * self.rcv_mss

    def _our_wscale(self) -> int:
        """The smallest window scale that lets the receive buffer be offered whole."""
        ws = 0
        while (65535 << ws) < self.cfg.rcv_buffer and ws < 14:
            ws += 1
        return ws
