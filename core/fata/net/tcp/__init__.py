"""TCP (RFC 9293), sans-IO: connections, listeners and demultiplexing.

What is implemented, and where (one concern per module, as in mirage-tcpip):

- ``state``: the states and the transition table every state change is checked against:
  the full state machine, simultaneous open and close, TIME_WAIT;
- ``seq``: sequence space (unbounded integers inside, 32 bits on the wire);
- ``options``: MSS, window scaling, timestamps with PAWS (RFC 7323), SACK permitted
  (RFC 2018); the encoding is ``fata.net.tcp_wire``;
- ``window``: the receive window offered (receiver silly-window avoidance, never shrunk);
- ``receiver`` and ``reassembly``: in-order delivery, the out-of-order queue, delayed ACKs
  (every second full segment or ``delayed_ack`` seconds), SACK and D-SACK (RFC 2883) on
  receive, so that a sender like Linux's learns of its spurious retransmissions;
- ``sender``: Nagle (switchable; Minshall's variant, as in Linux, so a write ending in a
  short segment is not held hostage by the peer's delayed ACK), sender silly-window
  avoidance, limited transmit, TSO-sized segments, ACK processing;
- ``recovery``: fast retransmit and NewReno recovery (RFC 6582: stay in recovery until
  ``recover``, retransmit on partial ACKs), with SACK holes retransmitted first (RFC 6675)
  and the amount sent during recovery paced by Proportional Rate Reduction (RFC 6937);
  re-retransmission of holes still missing an RTT after their retransmission (so a lost
  retransmission is repaired without an RTO); undo of recoveries that timestamps prove
  spurious (Eifel detection, RFC 3522) with a duplicate-ACK threshold that grows with the
  reordering seen; early retransmit (RFC 5827);
- ``timers``: RTO per RFC 6298 with Karn's rule and exponential backoff; while Karn's rule
  leaves no timed segment (heavy loss), RTT samples come from timestamp echoes (RFC 7323
  §4); retransmitting the head restarts the RTO, as in Linux; tail loss probes (RFC 8985
  §7) and a reordering timer that declares a stuck head lost when later data was SACKed
  (RFC 8985 §6.3); zero-window probes, keepalive, TIME_WAIT;
- ``congestion``: pluggable congestion control behind a small interface, chosen by
  ``TcpConfig.congestion``: ``newreno`` (the default: slow start from an initial window of
  10 segments, RFC 6928, and congestion avoidance, RFC 5681) or ``cubic`` (RFC 9438);
- ``connection``: the control block, its life cycle and segment arrival: RFC 5961
  challenge ACKs for RSTs and SYNs in window and for ACKs out of range;
- ``engine``: demultiplexing, ISNs per RFC 6528 (a keyed hash of the 4-tuple plus a
  4-microsecond clock), listen backlogs that bound half-open plus unaccepted connections
  (SYN-flood limit), one timer heap.

Time is passed in as ``now`` (seconds).
"""

from __future__ import annotations

from fata.net.tcp.config import TcpConfig
from fata.net.tcp.congestion import ALGORITHMS, CongestionControl, Cubic, NewReno
from fata.net.tcp.connection import Connection
from fata.net.tcp.engine import Listener, TcpEngine
from fata.net.tcp.seq import HALF, MASK, seq_lt, unwrap
from fata.net.tcp.state import TRANSITIONS, Event, State, TcpStateError, transition

__all__ = [
    "ALGORITHMS",
    "HALF",
    "MASK",
    "TRANSITIONS",
    "CongestionControl",
    "Connection",
    "Cubic",
    "Event",
    "Listener",
    "NewReno",
    "State",
    "TcpConfig",
    "TcpEngine",
    "TcpStateError",
    "seq_lt",
    "transition",
    "unwrap",
]
