"""Loss recovery: the SACK scoreboard, fast retransmit, NewReno/SACK recovery with PRR, undo.

Recovery begins (``_enter_recovery``) when duplicate ACKs or SACKed bytes reach the
threshold (``Sender._process_ack``; the threshold grows with reordering seen), when RACK's
reordering timer declares the head lost, and ends when ``snd_una`` passes ``recover``
(RFC 6582).  While it lasts, the holes below the highest SACK are retransmitted first
(``_next_hole``, RFC 6675), as much per ACK as Proportional Rate Reduction allows (``_prr``,
RFC 6937, which brings the flight down to the ``ssthresh`` the congestion controller set);
a partial ACK makes the next hole at ``snd_una`` due (NewReno), and a retransmission still
missing an RTT later is deemed lost again.  A recovery that timestamps prove spurious (the
original, not the retransmission, was acknowledged: Eifel, RFC 3522) is undone, and the
duplicate-ACK threshold doubled.

Without SACK the scoreboard stays empty and this is plain NewReno.  Timer-driven loss
detection (tail loss probes, RACK's reordering timer, the RTO) is in ``timers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fata.net.tcp.seq import unwrap

if TYPE_CHECKING:
    from fata.net.tcp.congestion import CongestionControl


class Recovery:
    """Loss-recovery state and algorithms (a part of ``Connection``)."""

    cc: CongestionControl
    dupacks: int
    dupthresh: int            # grows when reordering made a recovery spurious
    in_recovery: bool
    recover: int              # recovery ends when snd_una passes this (RFC 6582)
    sacked: list[list[int]]   # the peer's SACK scoreboard: [start, end), sorted, merged
    sacked_bytes: int
    rexmit_next: int          # holes below this have been retransmitted
    rexmit_head: bool         # the segment at snd_una is due for retransmission
    rexmit_round: float       # when the current round of retransmissions began
    prr_delivered: int        # PRR's counters (RFC 6937)
    prr_out: int
    recover_fs: int
    budget: int               # bytes this ACK lets out during recovery
    undo_tsval: int | None    # our TSval when recovery began (Eifel detection)
    prior_cwnd: int           # what undo restores
    prior_ssthresh: int

    def _init_recovery(self, iss: int) -> None:
        self.dupacks = 0
        self.dupthresh = 3
        self.in_recovery = False
        self.recover = iss
        self.sacked = []
        self.sacked_bytes = 0
        self.rexmit_next = iss
        self.rexmit_head = False
        self.rexmit_round = 0.0
        self.prr_delivered = 0
        self.prr_out = 0
        self.recover_fs = 1
        self.budget = 0
        self.undo_tsval = None
        self.prior_cwnd = 0
        self.prior_ssthresh = 0

    def _update_scoreboard(self, blocks: list[tuple[int, int]], ack: int) -> None:
        for left_w, right_w in blocks:
            left = unwrap(left_w, self.snd_una)
            right = unwrap(right_w, self.snd_una)
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

    def _enter_recovery(self, now: float) -> None:
        mss = self.snd_mss
        flight = self.snd_max - self.snd_una
        self.prior_cwnd = self.cwnd
        self.prior_ssthresh = self.ssthresh
        self.undo_tsval = self._ts_now(now) if self.ts_ok else None
        self.rexmit_round = now
        self.tlp_deadline = None
        self.in_recovery = True
        self._arm_tlp(now)
        self.cc.on_loss(self, flight, now)  # ssthresh: where PRR brings the flight down to
        self.recover = self.snd_max
        self.rexmit_next = self.snd_una
        self.rexmit_head = True
        self.prr_delivered = 0
        self.prr_out = 0
        self.recover_fs = max(flight, 1)
        self.budget = mss  # the fast retransmission itself
        self.rtt_seq = None  # Karn
        self._count("fast_retransmits")

    def _undo_recovery(self, now: float) -> None:
        self.cc.on_undo(self, now)
        self.in_recovery = False
        self.undo_tsval = None
        self.dupthresh = min(self.dupthresh * 2, 64)
        self._count("spurious_recoveries")

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

    if TYPE_CHECKING:  # provided by the other parts of ``Connection``
        def _count(self, name: str) -> None: ...
        def _arm_tlp(self, now: float) -> None: ...
        def _ts_now(self, now: float) -> int: ...
