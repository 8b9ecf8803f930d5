"""TCP options a connection negotiates: MSS, window scaling and timestamps (RFC 7323), SACK
permitted (RFC 2018).  Their encoding is in ``fata.net.tcp_wire``.

Both SYNs carry our offer (``_syn_options``); the peer's SYN decides what is used
(``_negotiate``): an option is on only if both sides sent it.  With timestamps on, every
segment carries TSval (a millisecond clock plus a random per-connection offset) and echoes
the peer's ``ts_recent``; ``Connection._emit`` sets them inline, being on the per-segment path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fata.net.tcp.seq import MASK
from fata.net.tcp.state import State
from fata.net.tcp_wire import ACK, Segment

if TYPE_CHECKING:
    from fata.net.tcp.config import TcpConfig


class Options:
    """The negotiated options of one connection (a part of ``Connection``)."""

    cfg: TcpConfig
    state: State
    snd_mss: int        # the largest payload we send: the peer's MSS, less 12 with timestamps
    rcv_mss: int        # what we advertised
    snd_wscale: int     # the peer's window is ``field << snd_wscale``
    rcv_wscale: int     # ours is ``field << rcv_wscale``
    ws_ok: bool
    sack_ok: bool
    ts_ok: bool
    ts_recent: int      # the peer's latest TSval, echoed (RFC 7323 §4.3)
    ts_recent_time: float
    ts_offset: int

    def _init_options(self, cfg: TcpConfig, ts_offset: int) -> None:
        self.snd_mss = 536
        self.rcv_mss = cfg.mss
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.ws_ok = False
        self.sack_ok = False
        self.ts_ok = False
        self.ts_recent = 0
        self.ts_recent_time = 0.0
        self.ts_offset = ts_offset

    def _ts_now(self, now: float) -> int:
        """Our TSval at ``now``."""
        return (int(now * 1000) + self.ts_offset) & MASK

    def _syn_options(self, seg: Segment, flags: int, now: float) -> None:
        """Our offer on a SYN (everything configured) or SYN-ACK (what the peer offered)."""
        cfg = self.cfg
        seg.mss = cfg.mss
        if cfg.window_scaling and (self.state == State.SYN_SENT or self.ws_ok):
            seg.wscale = self.rcv_wscale
        seg.sack_permitted = cfg.sack and (self.state == State.SYN_SENT or self.sack_ok)
        if cfg.timestamps and (self.state == State.SYN_SENT or self.ts_ok):
            seg.tsval = self._ts_now(now)
            seg.tsecr = self.ts_recent if flags & ACK else 0

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
