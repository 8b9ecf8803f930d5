"""The out-of-order queue: data received beyond ``rcv_nxt``, held until the gap fills.

The queue is a plain list of ``[start, end, data]`` blocks (``data`` a bytearray of
``end - start`` bytes), sorted by ``start`` and disjoint: overlapping and touching arrivals
merge into one block.  These blocks are also what the receiver reports in SACK options
(RFC 2018), the most recently changed one first.  Functions, not a class, so that the
in-order path pays nothing for the queue while it is empty (``if conn.ooo``).
"""

from __future__ import annotations


def holds(blocks: list[list], start: int, end: int) -> bool:
    """Whether [start, end) is held already (a duplicate, to report as D-SACK)."""
    for a, b, _ in blocks:
        if a <= start and end <= b:
            return True
    return False


def insert(blocks: list[list], start: int, end: int,
           payload: memoryview | bytes) -> tuple[list[list], int]:
    """Add [start, end) to the queue: the new queue, and the start of the block that now
    holds the arrival (the block to report first)."""
    data = bytearray(payload)
    keep = []
    for blk in blocks:
        a, b, d = blk
        if b < start or a > end:
            keep.append(blk)
            continue
        if a < start:
            data[0:0] = d[:start - a]
            start = a
        if b > end:
            data += d[end - a:]
            end = b
    keep.append([start, end, data])
    keep.sort(key=lambda blk: blk[0])
    return keep, start


def drain(blocks: list[list], rcv_nxt: int, rcvbuf: bytearray) -> int:
    """Move the blocks ``rcv_nxt`` has reached from the queue to ``rcvbuf``; the new
    ``rcv_nxt``."""
    while blocks and blocks[0][0] <= rcv_nxt:
        a, b, data = blocks.pop(0)
        if b > rcv_nxt:
            rcvbuf += data[rcv_nxt - a:]
            rcv_nxt = b
    return rcv_nxt
