"""``TcpConfig``: the engine's tunables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TcpConfig:
    """Tunables; the defaults follow Linux where the RFCs leave room."""

    mss: int = 1460                  # what we advertise (MTU - 40)
    rcv_buffer: int = 1 << 20
    snd_buffer: int = 1 << 20
    window_scaling: bool = True
    timestamps: bool = True
    sack: bool = True
    nagle: bool = True
    delayed_ack: float = 0.04
    initial_window: int = 10         # segments (RFC 6928)
    rto_initial: float = 1.0
    rto_min: float = 0.2             # Linux's floor; RFC 6298 suggests 1 s
    rto_max: float = 60.0
    max_retries: int = 12
    syn_retries: int = 6
    msl: float = 30.0                # TIME_WAIT lasts 2 * msl
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    tso_max: int = 0                 # >0: build segments up to this many bytes (GSO offload)
    challenge_acks_per_second: int = 10
    max_half_open: int = 4096        # across all listeners
    congestion: str = "newreno"      # "newreno" (RFC 5681/6582) or "cubic" (RFC 9438)
