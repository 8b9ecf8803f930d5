"""Sequence space: 32-bit sequence numbers on the wire, unbounded integers inside.

A connection counts in plain integers (``iss``/``irs`` plus the bytes since), so comparisons
inside the engine are ordinary ``<`` and never wrap.  Numbers are masked to 32 bits when a
segment is built (``& MASK``) and a number read from the wire is unwrapped against a
reference the connection holds (``rcv_nxt`` for sequence numbers, ``snd_una`` for
acknowledgements and SACK edges): the one integer within 2**31 of the reference that has
those 32 bits.
"""

from __future__ import annotations

MASK = 0xFFFFFFFF
HALF = 1 << 31


def seq_lt(a: int, b: int) -> bool:
    """32-bit sequence comparison a < b (RFC 1982); also used for timestamps (PAWS)."""
    return ((a - b) & MASK) > HALF


def unwrap(wire: int, ref: int) -> int:
    """The unbounded number nearest ``ref`` whose low 32 bits are ``wire``."""
    return ref + ((wire - ref + HALF) & MASK) - HALF
